"""Helpers for the deployment tests: paths, binaries, free ports, and the running stack.

The binaries come from STREAM_SERVER_BIN, MATCHING_ENGINE_BIN, STREAM_CLI_BIN and
COINBASE_BRIDGE_BIN (scripts/test points them at target/debug), else from target/debug.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Generous: CI is a loaded 2-core machine.
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


def bin_path(name: str) -> Path:
    """Path of one of the workspace's binaries (env `<NAME>_BIN` wins, else target/debug)."""
    var = name.upper().replace("-", "_") + "_BIN"
    path = Path(os.environ.get(var) or REPO / "target" / "debug" / name)
    if not path.exists():
        pytest.fail(f"{path} not found: run `cargo build --workspace --bins` or set {var}")
    return path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel just handed out for `kind` (TCP or UDP) on 127.0.0.1."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """A running `scripts/stack`, its ports and everything it printed so far."""

    proc: subprocess.Popen
    stream_port: int
    tcp_port: int
    udp_port: int
    metrics_port: int
    data_dir: Path
    bin_dir: Path
    lines: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, needle: str, timeout: float = READY_TIMEOUT) -> str:
        """Waits until a printed line contains `needle`; fails if the stack exits first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if needle in line:
                        return line
                seen = len(self.lines)
                if self.proc.poll() is not None and seen == len(self.lines):
                    # Give the reader thread a moment to deliver the last lines.
                    self._cond.wait(0.5)
                    if seen == len(self.lines):
                        pytest.fail(
                            f"stack exited ({self.proc.returncode}) before printing {needle!r}:\n"
                            + self.output()
                        )
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no line with {needle!r} after {timeout} s:\n" + self.output())
                self._cond.wait(min(left, 1.0))

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Sends `sig` to the stack script and returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("stack did not stop within %s s:\n%s" % (STOP_TIMEOUT, self.output()))

    def server_pids(self) -> dict[str, int]:
        """Server pids from the stack's "ready" lines (`... (pid N)`)."""
        out = {}
        for line in self.output().splitlines():
            m = re.search(r"^\[stack\].*\b(stream-server|matching_engine)\b.*\(pid (\d+)\)", line)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    def kill(self) -> None:
        """Last resort cleanup: kills the script's process group and the servers it started
        (which run in process groups of their own)."""
        if self.proc.poll() is None:
            for pid in self.server_pids().values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


def builds_in_ci() -> bool:
    """True when scripts/stack may run its own `cargo build` in a test: in CI (nobody else
    builds there, and scripts/test has just built the same dev-profile binaries, so it is a
    quick no-op) and when the binaries under test are this checkout's target/debug ones."""
    debug = REPO / "target" / "debug"
    return os.environ.get("CI") == "true" and all(
        bin_path(n).parent == debug for n in ("stream-server", "matching_engine", "stream-cli"))


def start_stack(tmp_path: Path, extra_env: dict[str, str | None] | None = None,
                build: bool = False) -> Stack:
    """Starts scripts/stack on free ports with a temporary data dir. With `build`, the script
    runs `cargo build` (dev profile) itself, as the README's command does; otherwise it runs the
    binaries under test (STACK_BIN_DIR)."""
    server = bin_path("stream-server")
    engine = bin_path("matching_engine")
    bin_dir = server.parent
    if build:
        bin_dir = REPO / "target" / "debug"
    elif engine.parent != bin_dir or not (bin_dir / "stream-cli").exists():
        # STACK_BIN_DIR wants one directory holding them all; link them together.
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        for name in ("stream-server", "matching_engine", "stream-cli", "coinbase-bridge"):
            var = name.upper().replace("-", "_") + "_BIN"
            src = Path(os.environ.get(var) or REPO / "target" / "debug" / name)
            if src.exists() and not (bin_dir / name).exists():
                (bin_dir / name).symlink_to(src)
    data_dir = tmp_path / "data"
    env = dict(os.environ)
    env.update(
        STACK_PROFILE="debug",
        STACK_DATA_DIR=str(data_dir),
        STREAM_PORT=str(free_port()),
        ENGINE_TCP_PORT=str(free_port()),
        ENGINE_UDP_PORT=str(free_port(socket.SOCK_DGRAM)),
        STREAM_METRICS_PORT=str(free_port()),
        STACK_READY_TIMEOUT=str(int(READY_TIMEOUT)),
    )
    if not build:
        env["STACK_BIN_DIR"] = str(bin_dir)
    for key, value in (extra_env or {}).items():
        # None unsets a variable, to test the script's own default.
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "stack")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own session: a failing test can kill the script and its servers as a group.
        start_new_session=True,
    )
    stack = Stack(
        proc=proc,
        stream_port=int(env["STREAM_PORT"]),
        tcp_port=int(env["ENGINE_TCP_PORT"]),
        udp_port=int(env["ENGINE_UDP_PORT"]),
        metrics_port=int(env.get("STREAM_METRICS_PORT") or int(env["STREAM_PORT"]) + 8),
        data_dir=Path(env["STACK_DATA_DIR"]) if "STACK_DATA_DIR" in env else None,
        bin_dir=bin_dir,
    )
    threading.Thread(target=stack._pump, daemon=True).start()
    return stack


@pytest.fixture
def stack(tmp_path):
    """A ready stack; stopped (SIGINT) after the test unless the test stopped it."""
    s = start_stack(tmp_path)
    try:
        s.wait_for("press Ctrl-C")
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGINT)
            try:
                s.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                s.kill()
