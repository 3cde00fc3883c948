"""docker-compose.yml and docker-compose.host.yml: valid for Compose (checked by Debian's
docker-compose, whose `config` validates against the Compose schema without a Docker engine),
with the services, ports, health checks and overrides the deployment guides rely on."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy_helpers import REPO

COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose not installed (scripts/install-test-deps installs it)"
)

# Variables the files interpolate: cleared so the developer's shell cannot leak into the test.
INTERPOLATED = [
    "TAG", "TCP_PORT", "UDP_PORT", "CPU_LIMIT", "MEMORY_LIMIT", "STREAM_PORT", "STREAM_BIND",
    "STREAM_CPU_LIMIT", "STREAM_MEMORY_LIMIT", "STREAM_IO_THREADS", "STREAM_WORKER_THREADS",
    "STREAM_MAX_CONNECTIONS", "RUST_LOG", "ENGINE_THREADED", "ENGINE_BUSY_POLL", "MCAST_GROUP",
    "MCAST_PORT", "MCAST_TTL", "MCAST_INTERFACE", "COINBASE_API_KEY", "COINBASE_API_SECRET",
    "COINBASE_PASSPHRASE", "COINBASE_SENDER_COMP_ID", "COINBASE_USE_SANDBOX", "COINBASE_SYMBOLS",
    "COINBASE_EXEC_API_KEY", "COINBASE_EXEC_API_SECRET", "COINBASE_EXEC_PASSPHRASE",
    "COINBASE_EXECUTIONS",
]


def compose_config(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                   env_file: str = "", file: str = "docker-compose.yml") -> dict:
    """`docker-compose config` of `file` with only `env` and `env_file` as variables."""
    dotenv = tmp_path / "compose.env"
    dotenv.write_text(env_file)
    full_env = {k: v for k, v in os.environ.items() if k not in INTERPOLATED}
    full_env.update(env or {})
    r = subprocess.run(
        [COMPOSE, "--env-file", str(dotenv), "-f", str(REPO / file), *args, "config"],
        cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def ports(service: dict) -> set[tuple[int, int, str]]:
    """(published, target, protocol) of every port, from the long or the short syntax."""
    out = set()
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.add((int(p["published"]), int(p["target"]), p.get("protocol", "tcp")))
        else:
            spec, _, proto = str(p).partition("/")
            published, _, target = spec.rpartition(":")
            out.add((int(published), int(target), proto or "tcp"))
    return out


def raw(file: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((REPO / file).read_text())


def test_files_parse_and_declare_the_services():
    main = raw()
    assert set(main["services"]) == {"stream-processor", "matching-engine", "coinbase-bridge"}
    assert main["services"]["coinbase-bridge"]["profiles"] == ["coinbase"]
    host = raw("docker-compose.host.yml")
    for svc in host["services"].values():
        assert svc["network_mode"] == "host"
        assert "ports" not in svc  # host networking forbids port mappings


@needs_compose
def test_defaults(tmp_path):
    cfg = compose_config(tmp_path)
    sp = cfg["services"]["stream-processor"]
    assert ports(sp) == {(9092, 9092, "tcp")}
    assert sp["build"]["target"] == "stream-processor"
    assert sp["environment"]["STREAM_DATA_DIR"] == "/data"
    assert sp["environment"]["STREAM_PORT"] == "9092"
    assert any(str(v).split(":")[1:2] == ["/data"]
               or (isinstance(v, dict) and v.get("target") == "/data") for v in sp["volumes"])
    assert sp["healthcheck"]["test"] == ["CMD", "nc", "-z", "localhost", "9092"]

    me = cfg["services"]["matching-engine"]
    assert ports(me) == {(1234, 1234, "tcp"), (1235, 1235, "udp")}
    assert me["image"] == "matching-engine:latest"
    assert me["restart"] == "unless-stopped"
    assert me["healthcheck"]["test"] == ["CMD", "nc", "-z", "localhost", "1234"]
    env = me["environment"]
    assert env["ENGINE_TCP_PORT"] == "1234" and env["ENGINE_UDP_PORT"] == "1235"
    assert env["ENGINE_THREADED"] == "true" and env["ENGINE_MCAST_ENABLED"] == "false"
    assert env["ENGINE_BUSY_POLL"] == "false"
    limits = me["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) == 2.0 and limits["memory"] == "1G"


def gib(size: str) -> float:
    units = {"k": 1 / (1 << 20), "m": 1 / 1024, "g": 1.0}
    size = str(size).lower().rstrip("b")
    return float(size[:-1]) * units[size[-1]] if size[-1] in units else int(size) / (1 << 30)


@needs_compose
@pytest.mark.parametrize("file", ["docker-compose.yml", "docker-compose.host.yml"])
def test_defaults_fit_a_small_host(tmp_path, file):
    """Docker refuses a CPU limit above the host's cores and a nofile ulimit above its hard
    limit: the defaults must start on a 2-core, 4 GiB machine."""
    cfg = compose_config(tmp_path, file=file)
    memory = 0.0
    for name, svc in cfg["services"].items():
        assert "ulimits" not in svc, name
        if "cpus" in svc:
            assert float(svc["cpus"]) <= 2.0, (name, svc["cpus"])
            assert float(svc["deploy"]["resources"]["limits"]["cpus"]) <= 2.0, name
        if "mem_limit" in svc and "profiles" not in svc:
            memory += gib(svc["mem_limit"])
    assert memory <= 4.0, memory


@needs_compose
def test_guide_overrides(tmp_path):
    # The guide: TCP_PORT=8000 UDP_PORT=8001 / CPU_LIMIT=4.0 MEMORY_LIMIT=2G / TAG=v0.1.0
    cfg = compose_config(tmp_path, env={
        "TCP_PORT": "8000", "UDP_PORT": "8001", "CPU_LIMIT": "4.0", "MEMORY_LIMIT": "2G",
        "TAG": "v0.1.0",
    })
    me = cfg["services"]["matching-engine"]
    assert ports(me) == {(8000, 8000, "tcp"), (8001, 8001, "udp")}
    assert me["environment"]["ENGINE_TCP_PORT"] == "8000"
    assert me["environment"]["ENGINE_UDP_PORT"] == "8001"
    assert me["healthcheck"]["test"][-1] == "8000"
    limits = me["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) == 4.0 and limits["memory"] == "2G"
    # The service-level twins (what docker-compose v1 applies outside Swarm).
    assert float(me["cpus"]) == 4.0
    assert str(me["mem_limit"]).lower() in ("2g", str(2 << 30))
    for svc in cfg["services"].values():
        assert svc["image"].endswith(":v0.1.0")


@needs_compose
def test_coinbase_profile_reads_dotenv(tmp_path):
    # Compose reads .env (here: the --env-file) for the bridge's credentials.
    cfg = compose_config(tmp_path, "--profile", "coinbase", env_file="\n".join([
        "COINBASE_API_KEY=key123", "COINBASE_API_SECRET=c2VjcmV0",
        "COINBASE_PASSPHRASE=pass", "COINBASE_SENDER_COMP_ID=sender",
        "COINBASE_USE_SANDBOX=true",
    ]))
    br = cfg["services"]["coinbase-bridge"]
    assert br["profiles"] == ["coinbase"]
    env = br["environment"]
    assert env["COINBASE_API_KEY"] == "key123"
    assert env["COINBASE_API_SECRET"] == "c2VjcmV0"
    assert env["COINBASE_PASSPHRASE"] == "pass"
    assert env["COINBASE_SENDER_COMP_ID"] == "sender"
    assert env["COINBASE_USE_SANDBOX"] == "true"
    assert env["STREAM_SERVER"] == "stream-processor:9092"
    assert "stream-processor" in br["depends_on"]


@needs_compose
def test_compose_works_without_dotenv(tmp_path):
    # The guide runs `docker-compose up -d` before anyone has copied .env.example.
    cfg = compose_config(tmp_path)
    assert cfg["services"]["coinbase-bridge"]["environment"]["COINBASE_USE_SANDBOX"] == "true"


@needs_compose
def test_host_network_variant(tmp_path):
    cfg = compose_config(tmp_path, file="docker-compose.host.yml",
                         env={"MCAST_GROUP": "239.255.0.9", "ENGINE_BUSY_POLL": "true"})
    me = cfg["services"]["matching-engine"]
    assert me["network_mode"] == "host"
    assert me["environment"]["ENGINE_MCAST_ENABLED"] == "true"
    assert me["environment"]["ENGINE_MCAST_GROUP"] == "239.255.0.9"
    assert me["environment"]["ENGINE_BUSY_POLL"] == "true"
    assert cfg["services"]["stream-processor"]["network_mode"] == "host"


@needs_compose
def test_compose_rejects_an_invalid_file(tmp_path):
    # The validator is real: a wrong type is refused.
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  x:\n    image: a\n    ports: 12\n")
    r = subprocess.run([COMPOSE, "-f", str(bad), "config"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert r.returncode != 0
