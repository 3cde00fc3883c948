"""coinbase-bridge against a real FIX engine: QuickFIX (PyPI quickfix-ssl) as a FIXT.1.1
SSLSocketAcceptor plays the Coinbase market data gateway.

Checks: the bridge's Logon is accepted by QuickFIX and carries Coinbase's fields and a
signature recomputed here with Python's hmac; heartbeats flow both ways at HeartBtInt=1;
a TestRequest is answered; a Logout from the gateway is answered and followed by a
reconnect; market data sent by QuickFIX (snapshot and incremental, built by QuickFIX's
own encoder) ends up on the stream server in the documented format; SIGTERM makes the
bridge log out cleanly.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

quickfix = pytest.importorskip("quickfix")
fix = quickfix

from interop_support import Process, binary, free_port  # noqa: E402
from quickfix_gateway import (API_KEY, PASSPHRASE, SECRET, expected_signature,  # noqa: E402
                              send, start_acceptor)


def dictionaries():
    """QuickFIX's FIXT11.xml and FIX50SP2.xml, as the quickfix-ssl wheel installs them."""
    import site
    import sys

    for base in (sys.prefix, site.getuserbase(), "/usr/local", "/usr"):
        d = Path(base) / "share" / "quickfix"
        if (d / "FIXT11.xml").exists() and (d / "FIX50SP2.xml").exists():
            return d / "FIXT11.xml", d / "FIX50SP2.xml"
    pytest.skip("QuickFIX data dictionaries not found")


@pytest.fixture
def strict_gateway(tmp_path, tls_cert):
    """The acceptor validating every message against QuickFIX's FIXT.1.1 dictionary."""
    cert, key = tls_cert
    port = free_port()
    acceptor, app = start_acceptor(tmp_path, port, cert, key, dictionaries())
    try:
        yield app, port, cert
    finally:
        acceptor.stop()


@pytest.fixture
def gateway(tmp_path, tls_cert):
    cert, key = tls_cert
    port = free_port()
    acceptor, app = start_acceptor(tmp_path, port, cert, key)
    try:
        yield app, port, cert
    finally:
        acceptor.stop()


def start_bridge(tmp_path, port, cert, stream_addr):
    env = dict(os.environ)
    env.update(
        COINBASE_API_KEY=API_KEY,
        COINBASE_API_SECRET=SECRET,
        COINBASE_PASSPHRASE=PASSPHRASE,
        RUST_LOG="info",
    )
    args = [
        binary("COINBASE_BRIDGE_BIN", "coinbase-bridge"),
        "--md-host", "127.0.0.1",
        "--md-port", str(port),
        "--executions", "none",
        "--ca-file", str(cert),
        "--heartbeat-secs", "1",
        "--symbols", "BTC-USD",
        "--reconnect-min-ms", "100",
        "--reconnect-max-ms", "1000",
        "--stream-addr", stream_addr,
    ]
    return Process(args, env=env, cwd=str(tmp_path))


def consume(stream_addr: str, topic: str, count: int) -> list:
    """(key, value) of the first `count` messages of `topic`, via stream-cli."""
    cli = binary("STREAM_CLI_BIN", "stream-cli")
    out = subprocess.run(
        [cli, "-a", stream_addr, "--json", "consume", topic, "-n", str(count), "-f"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.strip()]
    return [(r["key"], r["value"]) for r in rows]


def millis(utc_timestamp: str) -> int:
    """FIX UTCTimestamp (any fraction) to ms since the epoch, independently of the bridge."""
    from datetime import datetime, timezone

    base, _, frac = utc_timestamp.partition(".")
    dt = datetime.strptime(base, "%Y%m%d-%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1000 + int((frac + "000")[:3])


def logon_checks(logon: dict):
    assert logon[8] == "FIXT.1.1"
    assert logon[49] == API_KEY and logon[56] == "Coinbase"
    assert logon[34] == "1" and logon[141] == "Y" and logon[98] == "0"
    assert logon[108] == "1" and logon[1137] == "9"
    assert logon[553] == API_KEY and logon[554] == PASSPHRASE
    assert len(logon[52]) == 21 and logon[52][17] == ".", logon[52]
    assert logon[96] == expected_signature(logon[52])
    assert int(logon[95]) == len(logon[96])


def test_logon_heartbeats_test_request_market_data_logout(tmp_path, gateway, stream_server):
    app, port, cert = gateway
    bridge = start_bridge(tmp_path, port, cert, stream_server)
    app.bridge = bridge
    try:
        # Logon accepted by QuickFIX; fields and signature as Coinbase requires.
        app.wait(lambda: app.logons >= 1, what="first logon")
        logon_checks(next(f for f in app.admin if f[35] == "A"))
        bridge.wait_for(r"logged on")

        # The subscription, as QuickFIX parsed it.
        app.wait(lambda: any(f.get(35) == "V" for f in app.app), what="35=V")
        sub = next(f for f in app.app if f.get(35) == "V")
        assert sub[263] == "1" and sub[146] == "1" and sub[55] == "BTC-USD"

        # Heartbeats from the bridge at HeartBtInt=1.
        app.wait(
            lambda: sum(1 for f in app.admin if f[35] == "0") >= 3,
            timeout=30,
            what="three heartbeats from the bridge",
        )

        # A TestRequest is answered with the same TestReqID.
        send(app.session_id, "1", [(112, "interop-ping")])
        app.wait(
            lambda: any(f[35] == "0" and f.get(112) == "interop-ping" for f in app.admin),
            what="heartbeat answering the TestRequest",
        )

        # Market data encoded by QuickFIX: a snapshot, then incrementals.
        send(
            app.session_id,
            "W",
            [(262, sub[262]), (83, "100"), (893, "Y"), (55, "BTC-USD")],
            (268, 269, [
                [(269, "0"), (278, "ob1"), (270, "45230.50"), (271, "1.5")],
                [(269, "1"), (278, "oa1"), (270, "45231.00"), (271, "0.25")],
            ]),
        )
        t_x = "20250114-09:00:01.000456"
        for entry in (
            [(279, "0"), (269, "0"), (278, "ob2"), (83, "101"), (55, "BTC-USD"),
             (270, "45229.99"), (271, "2"), (60, t_x)],
            [(279, "2"), (269, "0"), (278, "ob1"), (83, "102"), (55, "BTC-USD"),
             (270, "45230.50"), (271, "1.5"), (60, t_x)],
            [(279, "0"), (269, "2"), (278, "ot1"), (83, "103"), (55, "BTC-USD"),
             (270, "45231.00"), (271, "0.05"), (60, t_x), (5797, "1")],
        ):
            send(app.session_id, "X", [], (268, 279, [entry]))
        bridge.wait_for(r"topic ready topic=coinbase.BTC_USD")
        got = consume(stream_server, "coinbase.BTC_USD", 5)
        # The snapshot's timestamp is its SendingTime, which QuickFIX stamped: read it back
        # from the published value and check it is a plausible "now".
        snap_ms = int(got[0][1].rsplit("|", 1)[1])
        assert abs(snap_ms - time.time() * 1000) < 120_000, got
        x_ms = millis(t_x)
        assert got == [
            ("ob1", f"BID|45230.50|1.5|{snap_ms}"),
            ("oa1", f"ASK|45231.00|0.25|{snap_ms}"),
            ("ob2", f"BID|45229.99|2|{x_ms}"),
            ("ob1", f"BID|45230.50|0|{x_ms}"),
            ("ot1", f"TRADE|45231.00|0.05|{x_ms}"),
        ], got

        # Logout from the gateway (Coinbase's Saturday logout): the bridge answers it and
        # logs on again by itself.
        session = fix.Session.lookupSession(app.session_id)
        session.logout("weekly maintenance")
        app.wait(lambda: app.logouts >= 1, what="logout completed")
        assert any(f[35] == "5" for f in app.admin), "bridge did not answer the Logout"
        # QuickFIX disables a session it logged out; the gateway "comes back" now. Until
        # then the bridge's attempts are refused, which exercises its backoff.
        bridge.wait_for(r"reconnecting", count=2)
        session.logon()
        app.wait(lambda: app.logons >= 2, timeout=60, what="logon after the logout")
        logons = [f for f in app.admin if f[35] == "A"]
        logon_checks(logons[-1])
        bridge.wait_for(r"logged on", count=2)

        # SIGTERM: the bridge logs out and exits 0.
        app.wait(lambda: sum(1 for f in app.admin if f[35] == "5") >= 1, what="first logout")
        before = sum(1 for f in app.admin if f[35] == "5")
        assert bridge.stop() == 0, bridge.log()
        app.wait(
            lambda: sum(1 for f in app.admin if f[35] == "5") > before,
            what="bridge Logout on SIGTERM",
        )
        log = bridge.log()
        assert SECRET not in log and PASSPHRASE not in log
    finally:
        bridge.stop(sig_term=False)


def test_logon_and_session_messages_pass_quickfix_dictionary_validation(
    tmp_path, strict_gateway, stream_server
):
    """With UseDataDictionary=Y (FIXT11.xml), QuickFIX rejects any session message whose
    fields, header order or data field (95/96) it finds invalid: the bridge's Logon,
    Heartbeats, TestRequest answer and Logout must all pass."""
    app, port, cert = strict_gateway
    bridge = start_bridge(tmp_path, port, cert, stream_server)
    app.bridge = bridge
    try:
        app.wait(lambda: app.logons >= 1, what="logon accepted by the validating acceptor")
        logon_checks(next(f for f in app.admin if f[35] == "A"))
        app.wait(
            lambda: sum(1 for f in app.admin if f[35] == "0") >= 2,
            timeout=30,
            what="heartbeats",
        )
        send(app.session_id, "1", [(112, "strict-ping")])
        app.wait(
            lambda: any(f[35] == "0" and f.get(112) == "strict-ping" for f in app.admin),
            what="TestRequest answer",
        )
        before = sum(1 for f in app.admin if f[35] == "5")
        assert bridge.stop() == 0, bridge.log()
        app.wait(
            lambda: sum(1 for f in app.admin if f[35] == "5") > before,
            what="bridge Logout on SIGTERM",
        )
        # QuickFIX rejected no session message of the bridge. The only reject allowed is
        # for the MarketDataRequest: Coinbase's 35=V (262, 263, 146/55) lacks MarketDepth
        # (264) and NoMDEntryTypes (267), which the standard FIX 5.0 SP2 dictionary requires.
        rejects = [f for f in app.sent_admin if f[35] == "3"]
        assert all(f.get(372) == "V" for f in rejects), rejects
    finally:
        bridge.stop(sig_term=False)
