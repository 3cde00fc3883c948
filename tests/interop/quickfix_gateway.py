"""A fake Coinbase FIX gateway built on QuickFIX (PyPI quickfix-ssl): the acceptor
application that records what the bridge sends, its settings file, Coinbase's Logon
signature, and a sender of messages built by QuickFIX's own encoder. Used by the interop
suite (tests/interop) and, inside a container, by the Docker suite's coinbase profile test
(tests/docker/coinbase_gateway)."""

import base64
import hashlib
import hmac
import threading
import time
from pathlib import Path

import quickfix as fix

API_KEY = "interop-key"
SECRET = base64.b64encode(b"interop secret \x00\x01\x02 bytes").decode()
PASSPHRASE = "interop-pass"
SOH = "\x01"


def fields(message) -> dict:
    """All tag=value pairs of a QuickFIX message (first occurrence wins)."""
    out = {}
    for kv in message.toString().split(SOH):
        if "=" in kv:
            tag, value = kv.split("=", 1)
            out.setdefault(int(tag), value)
    return out


class Gateway(fix.Application):
    """The gateway side: records what the bridge sends (admin and application messages)."""

    def __init__(self):
        super().__init__()
        self.cond = threading.Condition()
        self.admin = []  # fields of each admin message from the bridge
        self.app = []
        self.sent_admin = []  # admin messages QuickFIX sent (e.g. its rejects)
        self.logons = 0
        self.logouts = 0
        self.session_id = None

    def _add(self, target, message):
        with self.cond:
            target.append(fields(message))
            self.cond.notify_all()

    def onCreate(self, session_id):
        self.session_id = session_id

    def onLogon(self, session_id):
        with self.cond:
            self.logons += 1
            self.cond.notify_all()

    def onLogout(self, session_id):
        with self.cond:
            self.logouts += 1
            self.cond.notify_all()

    def toAdmin(self, message, session_id):
        self._add(self.sent_admin, message)

    def fromAdmin(self, message, session_id):
        self._add(self.admin, message)

    def toApp(self, message, session_id):
        pass

    def fromApp(self, message, session_id):
        self._add(self.app, message)

    bridge = None  # set by a test, for failure messages

    def wait(self, predicate, timeout=60.0, what="condition"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    log = self.bridge.log() if self.bridge else ""
                    raise AssertionError(
                        f"timed out waiting for {what}; admin={self.admin} app={self.app}"
                        f"\nbridge log:\n{log}"
                    )
                self.cond.wait(left)


def settings_file(tmp_path: Path, port: int, cert: Path, key: Path, dictionary=None,
                  host: str = "127.0.0.1") -> Path:
    """QuickFIX acceptor settings; `dictionary` is (FIXT11.xml, FIX50SP2.xml) to validate
    every message, or None."""
    cfg = tmp_path / "acceptor.cfg"
    if dictionary:
        transport, app = dictionary
        dictionary_settings = (
            f"UseDataDictionary=Y\nTransportDataDictionary={transport}\n"
            f"AppDataDictionary={app}"
        )
    else:
        dictionary_settings = "UseDataDictionary=N"
    cfg.write_text(
        f"""[DEFAULT]
ConnectionType=acceptor
SocketAcceptPort={port}
SocketAcceptHost={host}
SocketReuseAddress=Y
FileStorePath={tmp_path / "store"}
FileLogPath={tmp_path / "qflog"}
StartTime=00:00:00
EndTime=00:00:00
{dictionary_settings}
DefaultApplVerID=FIX.5.0SP2
ResetOnLogon=Y
ResetOnLogout=Y
ResetOnDisconnect=Y
SSLEnable=Y
SSLProtocol=+TLSv1_2
ServerCertificateFile={cert}
ServerCertificateKeyFile={key}
CertificateVerifyLevel=0

[SESSION]
BeginString=FIXT.1.1
SenderCompID=Coinbase
TargetCompID={API_KEY}
HeartBtInt=1
"""
    )
    return cfg


def expected_signature(sending_time: str) -> str:
    message = SOH.join([sending_time, "A", "1", API_KEY, "Coinbase", PASSPHRASE])
    digest = hmac.new(base64.b64decode(SECRET), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def send(session_id, msg_type: str, body=(), group=None):
    """Sends a message built by QuickFIX's own encoder. `group` is (count_tag, delimiter,
    entries); QuickFIX orders fields itself (ascending tags after the delimiter)."""
    m = fix.Message()
    m.getHeader().setField(fix.BeginString("FIXT.1.1"))
    m.getHeader().setField(fix.MsgType(msg_type))
    for tag, value in body:
        m.setField(tag, value)
    if group:
        count_tag, delimiter, entries = group
        for entry in entries:
            g = fix.Group(count_tag, delimiter)
            for tag, value in entry:
                g.setField(tag, value)
            m.addGroup(g)
    assert fix.Session.sendToTarget(m, session_id)


def start_acceptor(state_dir: Path, port: int, cert: Path, key: Path, dictionary=None,
                   host: str = "127.0.0.1"):
    """A started SSLSocketAcceptor playing the gateway; returns (acceptor, Gateway)."""
    app = Gateway()
    settings = fix.SessionSettings(
        str(settings_file(state_dir, port, cert, key, dictionary, host)))
    acceptor = fix.SSLSocketAcceptor(
        app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
    )
    acceptor.start()
    return acceptor, app
