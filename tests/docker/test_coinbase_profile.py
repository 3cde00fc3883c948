"""The stream processor guide's Coinbase section: `docker-compose --profile coinbase up -d`
starts the bridge beside the stream server, the bridge logs on over TLS to a gateway (here a
fake one in a container of its own, QuickFIX with the interop suite's gateway code) and its
market data lands in the `coinbase.BTC_USD` topic."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys

import pytest

from docker_support import REPO, in_guide, sh, wait_log
from test_compose_stack import stream_cli, up

GUIDE = "stream-processor-deployment.md"
GATEWAY_DIR = REPO / "tests" / "docker" / "coinbase_gateway"
# The interop suite's credentials: the gateway's session is set up for this key.
sys.path.insert(0, str(REPO / "tests" / "interop"))
from quickfix_gateway import API_KEY, PASSPHRASE, SECRET  # noqa: E402


@pytest.fixture(scope="session")
def gateway_image(docker, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("gateway-context")
    for f in ("Dockerfile", "serve.py"):
        shutil.copy(GATEWAY_DIR / f, ctx / f)
    shutil.copy(REPO / "tests" / "interop" / "quickfix_gateway.py", ctx)
    arch = {"x86_64": "x86_64", "aarch64": "aarch64"}[platform.machine()]
    # The wheel for the image's Python (Debian bookworm: 3.11), whatever the host runs.
    sh(f"{sys.executable} -m pip download --quiet --no-deps --only-binary=:all: "
       f"--python-version 3.11 --platform manylinux2014_{arch} quickfix-ssl -d {ctx}/wheels",
       timeout=300)
    sh(f"docker build -q -t coinbase-test-gateway:latest {ctx}", timeout=600)


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2",
         "-subj", "/CN=coinbase-gateway",
         "-addext", "subjectAltName=DNS:coinbase-gateway",
         "-addext", "basicConstraints=critical,CA:FALSE",
         "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
         "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True)
    # Readable by the containers' users (the bridge runs as uid 10001).
    d.chmod(0o755)
    tmp_path.chmod(0o755)
    for f in d.iterdir():
        f.chmod(0o644)
    return d


def test_coinbase_profile_streams_market_data(compose_images, gateway_image, certs):
    command = "docker-compose --profile coinbase up -d"
    in_guide(GUIDE, command)
    env = {
        "COMPOSE_FILE": f"docker-compose.yml:{GATEWAY_DIR.relative_to(REPO)}/compose.yml",
        "GATEWAY_CERTS": str(certs),
        # What the guide has the user put in .env, given here through the environment (which
        # Compose prefers to .env), so a developer's own .env is neither read nor touched.
        "COINBASE_API_KEY": API_KEY,
        "COINBASE_API_SECRET": SECRET,
        "COINBASE_PASSPHRASE": PASSPHRASE,
        "COINBASE_SENDER_COMP_ID": API_KEY,
        "COINBASE_USE_SANDBOX": "true",
        "COINBASE_SYMBOLS": "BTC-USD",
    }
    try:
        up(command, env=env)
        wait_log("coinbase-test-gateway", "gateway: snapshot sent for BTC-USD", timeout=180)
        wait_log("coinbase-bridge", "logged on")
        out = sh(f"timeout 60 {stream_cli()} -a 127.0.0.1:9092 --json consume "
                 f"coinbase.BTC_USD -n 2 -f", timeout=90).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        got = [(r["key"], r["value"].rsplit("|", 1)[0]) for r in rows]
        assert got == [("ob1", "BID|45230.50|1.5"), ("oa1", "ASK|45231.00|0.25")], out
    finally:
        sh("docker-compose --profile coinbase down -v --remove-orphans", env=env,
           check=False, timeout=180)
