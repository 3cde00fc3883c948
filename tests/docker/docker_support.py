"""Helpers for the Docker suite: running the guides' commands as written, waiting for a
container's log line or health status, and leaving no container, network or volume behind.

The Docker engine is started by scripts/test (scripts/docker-engine) and the base images made
by scripts/docker-base-images, so this suite only needs `docker` to answer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUIDES = REPO.parent / "shared" / "guides"

# Generous: CI is a loaded 2-core machine, and an image build runs cargo.
BUILD_TIMEOUT = 1800.0
READY_TIMEOUT = 120.0
# Docker's first health probe runs one interval (30 s in the guides) after the start.
HEALTH_TIMEOUT = 150.0


def sh(command: str, timeout: float = 120.0, check: bool = True, env: dict | None = None,
       input: str | None = None) -> subprocess.CompletedProcess:
    """Runs `command` with bash in the repository root, as a user types it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    r = subprocess.run(["bash", "-c", command], cwd=REPO, env=full_env, capture_output=True,
                       text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        pytest.fail(f"`{command}` exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def docker_json(*args: str) -> object:
    return json.loads(sh("docker " + " ".join(args)).stdout)


def wait_log(container: str, needle: str, timeout: float = READY_TIMEOUT, nth: int = 1) -> str:
    """Follows `docker logs -f` until the `nth` line that contains `needle`; fails with the
    log if the time runs out (a container that exited shows its whole log)."""
    proc = subprocess.Popen(["docker", "logs", "-f", container], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    found: list[str] = []
    seen: list[str] = []

    def pump():
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            if needle in line:
                found.append(line.rstrip("\n"))
                if len(found) == nth:
                    return

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    t.join(timeout)
    proc.kill()
    proc.wait()
    if len(found) < nth:
        state = sh(f"docker inspect -f '{{{{.State.Status}}}} exit={{{{.State.ExitCode}}}}' "
                   f"{container}", check=False).stdout.strip()
        pytest.fail(f"{container} ({state}): no log line with {needle!r} within {timeout} s:\n"
                    + "\n".join(seen))
    return found[-1]


def logs(container: str) -> str:
    r = sh(f"docker logs {container}")
    return r.stdout + r.stderr


def health(container: str) -> str:
    return sh(f"docker inspect --format='{{{{.State.Health.Status}}}}' {container}").stdout.strip()


def wait_healthy(container: str, timeout: float = HEALTH_TIMEOUT) -> None:
    """Polls the health status Docker keeps (there is no event to wait on from here)."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = health(container)
        if status == "healthy":
            return
        if status == "unhealthy":
            break
        time.sleep(1)
    pytest.fail(f"{container} is {status!r}, not healthy:\n" + sh(
        f"docker inspect --format='{{{{json .State.Health}}}}' {container}", check=False).stdout
        + logs(container))


def udp(command: str, needles: list[str], tries: int = 3) -> str:
    """Runs a guide's `... | nc -u -w1 HOST PORT` line and returns what came back. A datagram
    sent while docker-proxy is still setting up its UDP forwarding can be lost (UDP promises
    nothing), so the command is tried again a few times; each try waits on nc's own -w1."""
    out = ""
    for _ in range(tries):
        out = sh(command, timeout=30, check=False).stdout
        if all(n in out for n in needles):
            return out
    pytest.fail(f"`{command}` printed {out!r}, missing {needles}")


def normalized(text: str) -> str:
    """Shell text with line continuations joined, comments dropped and blanks folded, so a
    command can be found in a guide however the guide wraps it."""
    text = text.replace("\\\n", " ")
    lines = [re.sub(r"\s+#.*$", "", line) for line in text.splitlines()]
    return re.sub(r"\s+", " ", " ".join(lines)).strip()


def in_guide(guide: str, command: str) -> None:
    """When the guides sit beside the repository, `command` must be one of `guide`'s (so the
    commands this suite runs cannot drift from what users are told). A fresh clone without
    them still runs every command."""
    path = GUIDES / guide
    if not path.exists():
        return
    assert normalized(command) in normalized(path.read_text()), (
        f"{guide} no longer shows: {command}")


class Leftovers:
    """What exists before a test, so that everything the test made can be removed after it,
    whether it passed or failed."""

    KINDS = {
        "container": ("docker ps -aq --no-trunc", "docker rm -f -v"),
        "network": ("docker network ls -q --no-trunc", "docker network rm"),
        "volume": ("docker volume ls -q", "docker volume rm -f"),
    }

    def __init__(self) -> None:
        self.before = {k: self._ids(k) for k in self.KINDS}

    def _ids(self, kind: str) -> set[str]:
        return set(sh(self.KINDS[kind][0]).stdout.split())

    def clean(self) -> None:
        for kind in ("container", "network", "volume"):  # containers first: they hold the rest
            new = sorted(self._ids(kind) - self.before[kind])
            if new:
                sh(f"{self.KINDS[kind][1]} {' '.join(new)}", check=False, timeout=120)
