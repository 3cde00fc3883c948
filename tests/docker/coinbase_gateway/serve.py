"""The fake Coinbase market data gateway, run as a container's program: accepts the bridge's
TLS FIX session (checking nothing beyond what QuickFIX checks; the interop suite checks the
Logon itself), and answers every MarketDataRequest with a two-entry snapshot. Prints one line
per event for the test to wait on. Certificate and key come from /certs."""

import os
import signal
import threading
from pathlib import Path

from quickfix_gateway import send, start_acceptor

SNAPSHOT = [
    [(269, "0"), (278, "ob1"), (270, "45230.50"), (271, "1.5")],
    [(269, "1"), (278, "oa1"), (270, "45231.00"), (271, "0.25")],
]


def main() -> None:
    port = int(os.environ.get("GATEWAY_PORT", "6121"))
    state = Path("/tmp/gateway")
    state.mkdir(exist_ok=True)
    acceptor, app = start_acceptor(state, port, Path("/certs/cert.pem"),
                                   Path("/certs/key.pem"), host="0.0.0.0")
    stop = threading.Event()

    def on_term(*_):
        stop.set()
        with app.cond:
            app.cond.notify_all()

    signal.signal(signal.SIGTERM, on_term)
    print(f"gateway: listening on 0.0.0.0:{port}", flush=True)
    answered, logons = 0, 0
    while not stop.is_set():
        with app.cond:
            app.cond.wait_for(lambda: stop.is_set() or app.logons > logons
                              or len(requests(app)) > answered)
            new = requests(app)[answered:]
            if app.logons > logons:
                logons = app.logons
                print(f"gateway: logon {logons}", flush=True)
        for req in new:
            send(app.session_id, "W", [(262, req[262]), (83, "1"), (893, "Y"), (55, req[55])],
                 (268, 269, SNAPSHOT))
            print(f"gateway: snapshot sent for {req[55]}", flush=True)
        answered += len(new)
    acceptor.stop()


def requests(app) -> list:
    return [f for f in app.app if f.get(35) == "V"]


if __name__ == "__main__":
    main()
