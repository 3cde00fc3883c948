"""Fixtures for the cross-program interop suite: certificates and a stream server."""

import re
import shutil
import subprocess

import pytest

from interop_support import Process, binary


@pytest.fixture
def tls_cert(tmp_path):
    """A self-signed RSA certificate for localhost/127.0.0.1 (QuickFIX fails with P-256)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            # An end-entity certificate: rustls (webpki) refuses a CA certificate as a
            # server certificate, and openssl's default for -x509 is CA:TRUE.
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
            "-addext", "extendedKeyUsage=serverAuth",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def stream_server(tmp_path):
    """A real stream-server on a free port; yields its host:port."""
    exe = binary("STREAM_SERVER_BIN", "stream-server")
    data = tmp_path / "stream-data"
    data.mkdir()
    # --metrics-port off: the default 9100 would collide with parallel servers.
    p = Process(
        [exe, "--port", "0", "--bind", "127.0.0.1", "--metrics-port", "off", "--data-dir", str(data)]
    )
    try:
        line = p.wait_for(r"listening on")
        addr = re.search(r"(\d+\.\d+\.\d+\.\d+:\d+)", line).group(1)
        yield addr
    finally:
        p.stop()
