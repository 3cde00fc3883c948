"""Helpers for the interop suite (a module with a unique name, so that running several
pytest suites in one invocation cannot confuse it with another directory's conftest)."""

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def binary(var: str, name: str) -> str:
    """Path of a workspace binary: $VAR (must exist: scripts/test sets it after building),
    else target/debug/NAME, skipping the test when that was never built."""
    path = os.environ.get(var)
    if path:
        assert Path(path).exists(), f"{var}={path} does not exist"
        return path
    path = str(ROOT / "target" / "debug" / name)
    if not Path(path).exists():
        pytest.skip(f"{name} not built ({path}); run cargo build --workspace --bins")
    return path


class Process:
    """A child process whose combined output is collected by a thread, line by line."""

    def __init__(self, args, env=None, cwd=None):
        self.args = args
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            text=True,
        )
        self.lines = []
        self.eof = False
        self.cond = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def log(self) -> str:
        with self.cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60.0) -> str:
        """Waits until `count` lines match `pattern` (regex); returns the last one."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hits = [l for l in self.lines if rx.search(l)]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError(
                        f"{self.args[0]}: fewer than {count} line(s) matching {pattern!r} "
                        f"(exit {self.proc.poll()}); log:\n" + "\n".join(self.lines)
                    )
                self.cond.wait(min(left, 0.5))

    def stop(self, sig_term=True, timeout=30.0):
        if self.proc.poll() is None:
            if sig_term:
                self.proc.terminate()
            else:
                self.proc.kill()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def free_port() -> int:
    """A port free right now (QuickFIX needs the port in its settings, not port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
