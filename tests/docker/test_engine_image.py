"""The matching engine guide (shared/guides/matching-engine-docker.md), run as written
against the image of this repository's Dockerfile: build, quick start, the UDP, TCP and binary
snippets, the run options, health, graceful stop, production hardening, troubleshooting and
image management commands."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from docker_support import (docker_json, in_guide, logs, sh, udp, wait_healthy,
                            wait_log)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guides"))
from guide_snippets import snippet  # noqa: E402

GUIDE = "matching-engine-docker.md"
READY = "matching_engine ready"

QUICK_RUN = ("docker run -d --name matching-engine -p 1234:1234 -p 1235:1235/udp "
             "zig-matching-engine")
# The guide's snippets, kept in tests/guides (run here with the guide's own ports).
UDP_ORDER = snippet("matching-engine/udp_order.sh").strip()
UDP_CANCEL = snippet("matching-engine/udp_cancel.sh").strip()
UDP_FLUSH = snippet("matching-engine/udp_flush.sh").strip()
TCP_HEALTH = snippet("matching-engine/tcp_health.sh").strip()
TCP_QUICK = snippet("matching-engine/tcp_quick.sh").strip()
TCP_FUNCTION = snippet("matching-engine/send_tcp_order.py")
BINARY_UDP = snippet("matching-engine/binary_udp.py")


def run_engine(command: str) -> None:
    in_guide(GUIDE, command)
    sh(command)
    wait_log("matching-engine", READY)


def test_build_and_image(engine_image):
    in_guide(GUIDE, "docker build -t zig-matching-engine .")
    base = docker_json("image", "inspect", "debian:bookworm-slim")[0]["Size"]
    size = docker_json("image", "inspect", "zig-matching-engine")[0]["Size"]
    assert size - base <= 60e6, f"the image adds {(size - base) / 1e6:.1f} MB over its base"


def test_binaries_carry_no_debug_info(engine_image, tmp_path):
    sh("docker create --name strip-check zig-matching-engine")
    for name in ("matching_engine", "stream-server", "coinbase-bridge", "stream-cli"):
        sh(f"docker cp strip-check:/usr/local/bin/{name} {tmp_path}/{name}")
        sections = elf_sections((tmp_path / name).read_bytes())
        assert not {s for s in sections if s.startswith(".debug")}, (name, sections)
        assert ".symtab" not in sections, f"{name} is not stripped"


def elf_sections(data: bytes) -> list[str]:
    """Section names of a 64-bit little-endian ELF file."""
    import struct

    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)

    strtab_off = header(shstrndx)[4]
    names = []
    for i in range(shnum):
        start = strtab_off + header(i)[0]
        names.append(data[start:data.index(b"\0", start)].decode())
    return names


def test_quick_start(engine_image):
    run_engine(QUICK_RUN)
    out = udp(UDP_ORDER, ["A, IBM, 1, 1", "B, IBM, B, 10000, 100"])
    assert "A, IBM, 1, 1" in out
    in_guide(GUIDE, UDP_ORDER)
    r = sh(TCP_QUICK)
    assert r.stdout.strip() == "Sent order, check container logs"
    # "check container logs": they show the order and what the engine answered.
    wait_log("matching-engine", "-> N, 1, IBM, 10000, 100, B, 1", nth=2)
    log = wait_log("matching-engine", "connected from")
    assert "(TCP)" in log
    wait_log("matching-engine", ") disconnected")
    # `docker logs -f` follows (bounded here: it returns once the line is there).
    in_guide(GUIDE, "docker logs -f matching-engine")
    wait_log("matching-engine", "<- A, IBM, 1, 1")
    for cmd in ("docker logs --tail 100 matching-engine", "docker logs -t matching-engine"):
        in_guide(GUIDE, cmd)
        r = sh(cmd)
        assert "matching_engine ready" in r.stdout + r.stderr, cmd

    # The health check the image declares turns healthy.
    in_guide(GUIDE, "docker inspect --format='{{.State.Health.Status}}' matching-engine")
    wait_healthy("matching-engine")
    in_guide(GUIDE, TCP_HEALTH)
    assert sh(TCP_HEALTH).stdout.strip() == "TCP OK"

    # A graceful stop, well inside Docker's 10 s before SIGKILL.
    start = time.monotonic()
    sh("docker stop matching-engine")
    took = time.monotonic() - start
    assert took < 5, f"docker stop took {took:.1f} s"
    assert sh("docker inspect matching-engine --format='{{.State.ExitCode}}'").stdout.strip() == "0"
    assert "matching_engine stopped" in logs("matching-engine")
    in_guide(GUIDE, "docker stop matching-engine && docker rm matching-engine")
    sh("docker rm matching-engine")


def test_testing_section_snippets(engine_image):
    run_engine(QUICK_RUN)
    udp(UDP_ORDER, ["A, IBM, 1, 1"])
    in_guide(GUIDE, UDP_CANCEL)
    udp(UDP_CANCEL, ["C, IBM, 1, 1"])
    in_guide(GUIDE, UDP_FLUSH)
    sh(UDP_FLUSH)
    r = sh("python3 -", input=TCP_FUNCTION)
    assert r.stdout.strip() == "Response: A, AAPL, 1, 1", r.stdout
    r = sh("python3 -", input=BINARY_UDP)
    assert r.stdout.startswith("Sent 27 bytes: 4d4e00000001"), r.stdout
    # The TCP order, then the binary one over UDP (logged in CSV).
    wait_log("matching-engine", "-> N, 1, AAPL, 15000, 100, B, 1", nth=2)


def test_single_threaded(engine_image):
    run_engine("docker run -d --name matching-engine -p 1234:1234 -p 1235:1235/udp "
               "zig-matching-engine /usr/local/bin/matching_engine")
    assert "single-threaded mode" in logs("matching-engine")
    udp(UDP_ORDER, ["A, IBM, 1, 1"])


def test_threaded_by_default(engine_image):
    run_engine(QUICK_RUN)
    assert "threaded mode with 2 processor threads" in logs("matching-engine")


def test_custom_ports(engine_image):
    run_engine("docker run -d --name matching-engine -p 8000:8000 -p 8001:8001/udp "
               "-e ENGINE_TCP_PORT=8000 -e ENGINE_UDP_PORT=8001 zig-matching-engine")
    udp('echo "N, 1, IBM, 10000, 100, B, 1" | nc -u -w1 localhost 8001', ["A, IBM, 1, 1"])
    assert sh("nc -z localhost 8000 && echo ok").stdout.strip() == "ok"
    wait_healthy("matching-engine")


def test_tcp_only(engine_image):
    run_engine("docker run -d --name matching-engine -p 1234:1234 -e ENGINE_UDP_ENABLED=false "
               "-e ENGINE_MCAST_ENABLED=false zig-matching-engine")
    text = logs("matching-engine")
    assert "TCP listening" in text and "UDP listening" not in text, text
    r = sh("python3 -", input=TCP_FUNCTION)
    assert r.stdout.strip() == "Response: A, AAPL, 1, 1"


def test_udp_only(engine_image):
    run_engine("docker run -d --name matching-engine -p 1235:1235/udp -e ENGINE_TCP_ENABLED=false "
               "-e ENGINE_MCAST_ENABLED=false zig-matching-engine")
    text = logs("matching-engine")
    assert "UDP listening" in text and "TCP listening" not in text, text
    udp(UDP_ORDER, ["A, IBM, 1, 1"])
    # With nothing to probe over TCP, the health check still reports the server healthy.
    wait_healthy("matching-engine")


def test_full_configuration_example(engine_image):
    run_engine("docker run -d --name matching-engine -p 1234:1234 -p 1235:1235/udp "
               "-e ENGINE_TCP_ENABLED=true -e ENGINE_TCP_PORT=1234 -e ENGINE_UDP_ENABLED=true "
               "-e ENGINE_UDP_PORT=1235 -e ENGINE_MCAST_ENABLED=false -e ENGINE_THREADED=true "
               "zig-matching-engine")
    udp(UDP_ORDER, ["A, IBM, 1, 1"])


def host_nofile() -> int:
    return int(sh("ulimit -Hn").stdout.strip())


def hardening(command: str) -> str:
    """A Production Hardening command, checked against the guide as written, with its
    `--ulimit nofile=65536:65536` lowered to what this host allows (Docker refuses more than
    the host's hard limit)."""
    in_guide(GUIDE, command)
    n = min(65536, host_nofile())
    return command.replace("--ulimit nofile=65536:65536", f"--ulimit nofile={n}:{n}")


@pytest.mark.parametrize("options", [
    "--memory=1g --memory-swap=1g --cpus=2 --ulimit nofile=65536:65536",
    "--read-only --security-opt=no-new-privileges:true --cap-drop=ALL "
    "--cap-add=NET_BIND_SERVICE",
    "--log-driver=json-file --log-opt max-size=100m --log-opt max-file=5",
    "--restart=unless-stopped",
], ids=["resource-limits", "security-options", "logging", "restart-policy"])
def test_production_hardening(engine_image, options):
    command = hardening(f"docker run -d --name matching-engine {options} -p 1234:1234 "
                        f"-p 1235:1235/udp zig-matching-engine")
    sh(command)
    wait_log("matching-engine", READY)
    udp(UDP_ORDER, ["A, IBM, 1, 1"])
    text = logs("matching-engine")
    assert "open-files limit" in text, text


def test_all_production_options_combined(engine_image, tmp_path):
    command = hardening(
        "docker run -d --name matching-engine --restart=unless-stopped --memory=1g --cpus=2 "
        "--ulimit nofile=65536:65536 --read-only --security-opt=no-new-privileges:true "
        "--cap-drop=ALL --cap-add=NET_BIND_SERVICE --log-driver=json-file "
        "--log-opt max-size=100m --log-opt max-file=5 -p 1234:1234 -p 1235:1235/udp "
        "-e ENGINE_THREADED=true zig-matching-engine")
    sh(command)
    log = wait_log("matching-engine", "open-files limit")
    n = host_nofile()
    assert f"open-files limit {min(65536, n)}" in log, log
    wait_log("matching-engine", READY)
    udp(UDP_ORDER, ["A, IBM, 1, 1"])
    info = docker_json("inspect", "matching-engine")[0]["HostConfig"]
    assert info["ReadonlyRootfs"] is True and info["CapDrop"] == ["ALL"]
    assert info["Memory"] == 1 << 30 and info["NanoCpus"] == 2_000_000_000

    # Troubleshooting, as the guide uses them.
    wait_healthy("matching-engine")
    r = sh("docker inspect --format='{{json .State.Health}}' matching-engine | jq")
    assert '"Status": "healthy"' in r.stdout
    ports = sh("docker port matching-engine").stdout
    assert "1234/tcp -> 0.0.0.0:1234" in ports and "1235/udp -> 0.0.0.0:1235" in ports, ports
    # `nc -z` probes TCP: the guide's line runs inside the container (nc is there) and its
    # UDP twin, `nc -zu`, answers for the UDP port.
    tty = "script -qec '{}' /dev/null"
    r = sh(tty.format('docker exec -it matching-engine sh -c "nc -z localhost 1234"'))
    assert r.returncode == 0
    r = sh(tty.format('docker exec -it matching-engine sh -c "nc -zu localhost 1235"'))
    assert r.returncode == 0
    r = sh(tty.format('docker exec -it matching-engine sh -c "nc -z localhost 1235"'),
           check=False)
    assert r.returncode == 1, r  # nc ran (not 126/127), and no TCP listens on 1235
    in_guide(GUIDE, 'docker exec -it matching-engine sh -c "nc -z localhost 1235"')
    stats = sh("docker stats --no-stream matching-engine").stdout
    assert "matching-engine" in stats
    for fmt in ("{{.State.ExitCode}}", "{{.State.OOMKilled}}", "{{json .HostConfig.CpuQuota}}"):
        in_guide(GUIDE, f"docker inspect matching-engine --format='{fmt}'")
        sh(f"docker inspect matching-engine --format='{fmt}'")


def test_save_and_load(engine_image, tmp_path):
    save = "docker save zig-matching-engine:latest | gzip > matching-engine.tar.gz"
    load = "docker load < matching-engine.tar.gz"
    in_guide(GUIDE, save)
    in_guide(GUIDE, load)
    archive = tmp_path / "matching-engine.tar.gz"
    sh(save.replace("matching-engine.tar.gz", str(archive)), timeout=300)
    assert archive.stat().st_size > 1e6
    r = sh(load.replace("matching-engine.tar.gz", str(archive)), timeout=300)
    assert "zig-matching-engine:latest" in r.stdout, r.stdout
    assert "zig-matching-engine" in sh("docker images | grep matching-engine").stdout
