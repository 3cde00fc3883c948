"""Fixtures of the Docker suite: an engine that answers, the guides' image builds (each run
once per session, as written in the guides), and a clean slate around every test."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from docker_support import BUILD_TIMEOUT, Leftovers, sh

ENGINE_IMAGE = "zig-matching-engine"
# The containers and ports the guides' commands use: nothing else may hold them.
GUIDE_CONTAINERS = ["matching-engine", "stream-processor", "coinbase-bridge"]


def pytest_collection_modifyitems(config, items):
    if shutil.which("docker") is None:
        skip = pytest.mark.skip(reason="no docker client (scripts/test installs docker.io)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def docker():
    r = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.fail("no Docker engine answers; scripts/test starts one with "
                    "`scripts/docker-engine start`:\n" + r.stderr)
    for name in GUIDE_CONTAINERS:
        if sh(f"docker ps -aq -f name=^{name}$").stdout.strip():
            pytest.fail(f"a container named {name} exists already; the guides' commands need "
                        f"the name: `docker rm -f {name}` first")


@pytest.fixture(autouse=True)
def no_leftovers(request):
    """Removes every container, network and volume a test made, also when it fails."""
    if "docker" not in request.fixturenames:
        yield
        return
    before = Leftovers()
    try:
        yield
    finally:
        before.clean()


@pytest.fixture(scope="session")
def engine_image(docker):
    """The matching engine guide's build: `docker build -t zig-matching-engine .`; returns
    the seconds it took (the cache may make it quick)."""
    start = time.monotonic()
    sh(f"docker build -t {ENGINE_IMAGE} .", timeout=BUILD_TIMEOUT)
    return time.monotonic() - start


@pytest.fixture(scope="session")
def compose_images(docker):
    """The stream processor guide's build: `docker-compose build` (all three images)."""
    sh("docker-compose build", timeout=BUILD_TIMEOUT)
