"""scripts/stack, the README's first command: it starts both servers, they serve, Ctrl-C
(SIGINT) or SIGTERM stops them cleanly, and a server that dies takes the stack down."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from deploy_helpers import REPO, free_port, stack, start_stack  # noqa: F401 (stack is a fixture)
from deploy_strp import Strp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guides"))
from guide_snippets import snippet  # noqa: E402


def framed(sock: socket.socket, msg: bytes) -> None:
    sock.sendall(struct.pack(">I", len(msg)) + msg)


def read_frame(sock: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "engine closed the connection"
            buf += chunk
        return buf

    (n,) = struct.unpack(">I", exact(4))
    return exact(n)


def read_until(sock: socket.socket, prefix: bytes, limit: int = 20) -> bytes:
    """Reads frames until one starts with `prefix` (acks and book lines come first)."""
    seen = []
    for _ in range(limit):
        frame = read_frame(sock)
        seen.append(frame)
        if frame.startswith(prefix):
            return frame
    pytest.fail(f"no {prefix!r} frame in {seen}")


def pids(stack) -> dict[str, int]:
    return stack.server_pids()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still "exists"; the stack reaps its children, so check the state too.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_stack_serves_orders_and_messages_and_stops_cleanly_on_sigint(stack):
    # An order over TCP (length-framed) is acknowledged in CSV.
    buyer = socket.create_connection(("127.0.0.1", stack.tcp_port), timeout=30)
    framed(buyer, b"N, 1, IBM, 10000, 100, B, 1\n")
    assert read_frame(buyer) == b"A, IBM, 1, 1\n"

    # A crossing sell over UDP (the guide's nc command) trades with it; both sides hear of it.
    r = subprocess.run(
        ["nc", "-u", "-w1", "127.0.0.1", str(stack.udp_port)],
        input=b"N, 2, IBM, 10000, 40, S, 7\n",
        capture_output=True,
        timeout=30,
    )
    assert b"A, IBM, 2, 7" in r.stdout, r
    assert b"T, IBM, 1, 1, 2, 7, 10000, 40" in r.stdout, r
    assert read_until(buyer, b"T, ") == b"T, IBM, 1, 1, 2, 7, 10000, 40\n"
    buyer.close()

    # A message through the stream server, in its own wire protocol.
    c = Strp("127.0.0.1", stack.stream_port)
    assert c.create_topic("orders", 2) == 0
    err, partition, offset = c.produce("orders", b"IBM", b"T|10000|40")
    assert (err, offset) == (0, 0)
    err, msgs = c.fetch("orders", partition, 0, 10)
    assert err == 0
    assert msgs == [(0, b"IBM", b"T|10000|40")]
    c.close()

    procs = pids(stack)
    assert set(procs) == {"stream-server", "matching_engine"}, stack.output()

    assert stack.stop(signal.SIGINT) == 0, stack.output()
    out = stack.output()
    assert "stream-server stopped cleanly" in out
    assert "matching_engine stopped cleanly" in out
    # Logs are prefixed by program and also kept under the data dir.
    assert re.search(r"^\[stream-server\]\s+.*listening on", out, re.M), out
    assert re.search(r"^\[matching_engine\]\s+.*listening on", out, re.M), out
    assert "listening on" in (stack.data_dir / "logs" / "stream-server.log").read_text()
    assert (stack.data_dir / "stream").is_dir()
    assert not any(alive(p) for p in procs.values())


def test_sigterm_stops_cleanly_and_data_survives_a_restart(tmp_path):
    first = start_stack(tmp_path)
    try:
        first.wait_for("press Ctrl-C")
        c = Strp("127.0.0.1", first.stream_port)
        assert c.create_topic("kept", 1) == 0
        assert c.produce("kept", b"k", b"v")[0] == 0
        c.close()
        assert first.stop(signal.SIGTERM) == 0, first.output()
        assert "terminated (SIGTERM)" in first.output()
    finally:
        first.kill()

    # Same data dir (tmp_path/data), new ports: the topic and its message are still there.
    second = start_stack(tmp_path)
    try:
        second.wait_for("press Ctrl-C")
        c = Strp("127.0.0.1", second.stream_port)
        assert "kept" in c.list_topics()
        assert c.fetch("kept", 0, 0, 10) == (0, [(0, b"k", b"v")])
        c.close()
        assert second.stop(signal.SIGINT) == 0, second.output()
    finally:
        second.kill()


def test_a_server_that_dies_stops_the_stack_with_failure(stack):
    procs = pids(stack)
    os.kill(procs["matching_engine"], signal.SIGKILL)
    assert stack.proc.wait(timeout=60) == 1, stack.output()
    out = stack.output()
    assert "matching_engine exited with status 137" in out, out
    assert "stream-server stopped cleanly" in out, out
    assert not alive(procs["stream-server"])


def test_refuses_a_port_already_in_use(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        s = start_stack(tmp_path, {"STREAM_PORT": str(port)})
        try:
            assert s.proc.wait(timeout=60) == 1
        finally:
            s.kill()
        assert f"port {port} on 127.0.0.1 is already in use" in s.output(), s.output()
        assert "listening" not in s.output()


def test_a_second_stack_on_the_same_data_dir_is_refused(stack, tmp_path):  # noqa: F811
    """Other ports but the same data directory (STACK_DATA_DIR given explicitly) next to a
    running stack: the second stream server must refuse the directory (two servers would
    overwrite each other's logs), so the second stack exits 1 and says why, while the first
    goes on serving."""
    second = start_stack(tmp_path)
    assert second.data_dir == stack.data_dir
    try:
        second.wait_for("is in use by another stream-server")
        assert second.proc.wait(timeout=60) == 1
    finally:
        second.kill()
    c = Strp("127.0.0.1", stack.stream_port)
    try:
        assert c.create_topic("still-serving", 1) == 0
        assert "still-serving" in c.list_topics()
    finally:
        c.close()


def test_a_failed_start_reports_only_the_real_failure(stack, tmp_path):  # noqa: F811
    """A stream server refused at start stops the stack; the engine, stopped by the script
    while it may still be starting, is not reported as a second failure (no bash
    `Terminated` line, no `exited with status 143`). Three tries: the race is a coin toss."""
    for attempt in range(3):
        (tmp_path / f"second-{attempt}").mkdir()
        second = start_stack(tmp_path / f"second-{attempt}",
                             {"STACK_DATA_DIR": str(stack.data_dir)})
        try:
            assert second.proc.wait(timeout=60) == 1
        finally:
            second.kill()
        out = second.output()
        assert "is in use by another stream-server" in out, out
        assert "stream-server exited with status 1" in out, out
        assert "Terminated" not in out, out
        assert "matching_engine exited with status" not in out, out


def test_a_second_stack_needs_only_other_ports(stack, tmp_path):  # noqa: F811
    """STREAM_PORT alone gives a stack its own data directory and metrics port, so the
    README's "pick other ports" command starts a second stack beside the first."""
    port = free_port()
    data = REPO / f"data-{port}"
    (tmp_path / "second").mkdir()
    second = start_stack(tmp_path / "second", {
        "STREAM_PORT": str(port), "STACK_DATA_DIR": None, "STREAM_METRICS_PORT": None})
    try:
        second.wait_for("press Ctrl-C")
        out = second.output()
        assert f"data in ./data-{port}/stream" in out, out
        assert f"http://127.0.0.1:{port + 8}/metrics" in out, out
        c = Strp("127.0.0.1", port)
        try:
            assert c.create_topic("second-stack", 1) == 0
        finally:
            c.close()
        assert second.stop() == 0, second.output()
    finally:
        second.kill()
        shutil.rmtree(data, ignore_errors=True)


def test_sighup_stops_both_servers_and_cleans_up(tmp_path):
    """Closing the terminal (SIGHUP) stops the stack as Ctrl-C does, leaving no server and no
    temporary directory behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    s = start_stack(tmp_path, {"TMPDIR": str(tmp)})
    try:
        s.wait_for("press Ctrl-C")
        procs = pids(s)
        assert s.stop(signal.SIGHUP) == 0, s.output()
    finally:
        s.kill()
    out = s.output()
    assert "hung up (SIGHUP" in out, out
    assert "stream-server stopped cleanly" in out and "matching_engine stopped cleanly" in out, out
    assert not any(alive(pid) for pid in procs.values())
    assert list(tmp.iterdir()) == []


def test_help_prints_usage_and_starts_nothing():
    for arg in ("--help", "-h"):
        r = subprocess.run([str(REPO / "scripts" / "stack"), arg], capture_output=True, text=True,
                           timeout=30, env={**os.environ, "STACK_BUILD": "0"})
        assert r.returncode == 0, r.stderr
        assert "STACK_DATA_DIR" in r.stdout and "STREAM_PORT" in r.stdout
        assert "[stack]" not in r.stdout
    r = subprocess.run([str(REPO / "scripts" / "stack"), "--port"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2
    assert "unknown argument --port" in r.stderr and "STREAM_PORT" in r.stderr


def test_a_port_that_is_not_a_number_is_named(tmp_path):
    r = subprocess.run([str(REPO / "scripts" / "stack")], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "STACK_BUILD": "0",
                                        "STACK_DATA_DIR": str(tmp_path / "data"),
                                        "ENGINE_TCP_PORT": "abc"})
    assert r.returncode == 1
    assert "ENGINE_TCP_PORT=abc is not a port number" in r.stderr, r.stderr


def test_refuses_a_metrics_port_already_in_use(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        s = start_stack(tmp_path, {"STREAM_METRICS_PORT": str(port)})
        try:
            assert s.proc.wait(timeout=60) == 1
        finally:
            s.kill()
        out = s.output()
        assert f"metrics port {port} on 127.0.0.1 is already in use" in out, out
        assert "STREAM_METRICS_PORT=off" in out, out
        assert "listening" not in out


def test_a_data_dir_that_is_a_file_is_refused_with_its_name(tmp_path):
    not_a_dir = tmp_path / "data-file"
    not_a_dir.write_text("not a directory\n")
    s = start_stack(tmp_path, {"STACK_DATA_DIR": str(not_a_dir)})
    try:
        assert s.proc.wait(timeout=60) == 1
    finally:
        s.kill()
    out = s.output()
    assert f"STACK_DATA_DIR={not_a_dir} exists and is not a directory" in out, out
    assert not_a_dir.read_text() == "not a directory\n"


def test_engine_variables_pass_through_to_the_matching_engine(tmp_path):
    s = start_stack(tmp_path, {"ENGINE_THREADED": "false", "ENGINE_BUSY_POLL": "true"})
    try:
        s.wait_for("press Ctrl-C")
        out = s.output()
        assert "single-threaded mode" in out and "busy-polling" in out, out
        assert s.stop() == 0, s.output()
    finally:
        s.kill()


def test_stack_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(REPO / "scripts" / "stack")], check=True)
    assert os.access(REPO / "scripts" / "stack", os.X_OK)


def test_guide_commands_work_against_the_stack(stack):
    """The matching-engine guide's non-Docker commands (kept in tests/guides, checked against
    the guide by test_guide_snippets.py), with its ports replaced by the stack's."""

    def run(name: str) -> str:
        cmd = snippet(name, stack.tcp_port, stack.udp_port)
        r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        return r.stdout

    assert run("matching-engine/tcp_health.sh").strip() == "TCP OK"
    assert "A, IBM, 1, 1" in run("matching-engine/udp_order.sh")
    # The guide flushes (its UDP health check) before it cancels: the cancel finds nothing.
    run("matching-engine/udp_flush.sh")
    assert "R, IBM, 1, 1, 4" in run("matching-engine/udp_cancel.sh")

    # The guide's TCP clients: the quick start's one-way order, and one framed request with
    # its framed response.
    assert run("matching-engine/tcp_quick.sh").strip() == "Sent order, check container logs"
    out = run_python(snippet("matching-engine/send_tcp_order.py", stack.tcp_port))
    assert "Response: A, AAPL, 1, 1" in out, out
    out = run_python(snippet("matching-engine/binary_udp.py", udp_port=stack.udp_port))
    assert out.startswith("Sent 27 bytes: 4d4e00000001"), out


def run_python(script: str) -> str:
    r = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, (script, r.stdout, r.stderr)
    return r.stdout
