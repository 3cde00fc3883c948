"""Fixtures: run the real stream-server binary on an ephemeral port with a temp data dir."""

import os
import re
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
READY_TIMEOUT = 60.0  # generous: CI is a loaded 2-core machine
_ADDR = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]|localhost):(\d+)")


def server_bin() -> str:
    path = os.environ.get("STREAM_SERVER_BIN") or str(REPO / "target" / "debug" / "stream-server")
    if not Path(path).exists():
        pytest.fail("stream-server binary not found at %s: run `cargo build -p stream-server` "
                    "or set STREAM_SERVER_BIN" % path)
    return path


class Server:
    """A running stream-server; `host`/`port` come from its "listening on" log line."""

    def __init__(self, data_dir, extra_args=(), port=0):
        self.data_dir = str(data_dir)
        self.extra_args = tuple(extra_args)
        self.log = []
        self.proc = subprocess.Popen(
            # No metrics endpoint: its fixed default port would clash between test servers.
            [server_bin(), "--port", str(port), "--bind", "127.0.0.1", "--data-dir", self.data_dir,
             "--metrics-port", "off", *extra_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready = threading.Event()
        self.host, self.port = None, None

        def pump():
            # Keep draining after readiness, or a chatty server would block on a full pipe.
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                self.log.append(line)
                if not ready.is_set() and "listening on" in line:
                    m = _ADDR.search(line.split("listening on", 1)[1])
                    if m:
                        host = m.group(1).strip("[]")
                        if host in ("0.0.0.0", "::"):
                            host = "127.0.0.1"
                        self.host, self.port = host, int(m.group(2))
                        ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(READY_TIMEOUT) or self.port is None:
            self.stop()
            raise RuntimeError("stream-server did not report 'listening on <addr>':\n"
                               + "\n".join(self.log))

    @property
    def addr(self):
        return (self.host, self.port)

    def client(self, **kwargs):
        from stream_client import StreamClient

        return StreamClient(self.host, self.port, **kwargs).connect()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self):
        """Stops the server (SIGTERM) and starts it again on the same port and data."""
        self.stop()
        port = self.port
        self.__init__(self.data_dir, self.extra_args, port)
        assert self.port == port

    def kill(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server shared by the tests that use unique topic names."""
    srv = Server(tmp_path_factory.mktemp("stream-data"))
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A server of its own (for tests that look at the whole topic list, restarts, ...)."""
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture
def topic():
    """A unique topic name per test."""
    return "t-" + uuid.uuid4().hex[:12]
