"""A few STRP requests (docs: /work/shared/specs/stream-protocol.md), written from the spec.

Deliberately independent of our own clients, so the stack test checks the server's wire format
and not a client against itself.
"""

from __future__ import annotations

import socket
import struct

MAGIC = 0x53545250
VERSION = 1
CREATE_TOPIC = 10
LIST_TOPICS = 12
PRODUCE = 20
FETCH = 21


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<I", len(b)) + b


class Reader:
    """Cursor over a response payload."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals[0] if len(vals) == 1 else vals

    def bytes_(self) -> bytes:
        n = self.take("<I")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def str_(self) -> str:
        return self.bytes_().decode()


class Strp:
    """One connection; one request at a time."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)

    def close(self) -> None:
        self.sock.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return bytes(buf)

    def request(self, rtype: int, payload: bytes) -> Reader:
        self.sock.sendall(struct.pack("<IIII", MAGIC, VERSION, rtype, len(payload)) + payload)
        magic, version, echoed, length = struct.unpack("<IIII", self._recv_exact(16))
        assert (magic, version, echoed) == (MAGIC, VERSION, rtype)
        return Reader(self._recv_exact(length))

    def create_topic(self, name: str, partitions: int) -> int:
        r = self.request(CREATE_TOPIC, _str(name) + struct.pack("<I", partitions))
        return r.take("<h")

    def list_topics(self) -> list[str]:
        r = self.request(LIST_TOPICS, b"")
        assert r.take("<h") == 0
        return [r.str_() for _ in range(r.take("<I"))]

    def produce(self, topic: str, key: bytes, value: bytes) -> tuple[int, int, int]:
        """Returns (error, partition, offset)."""
        r = self.request(PRODUCE, _str(topic) + _str(key) + _str(value) + b"\x02")
        err = r.take("<h")
        r.str_()
        return err, r.take("<I"), r.take("<Q")

    def fetch(self, topic: str, partition: int, offset: int, max_messages: int):
        """Returns (error, [(offset, key, value)])."""
        r = self.request(
            FETCH, _str(topic) + struct.pack("<IQI", partition, offset, max_messages)
        )
        err = r.take("<h")
        r.str_()
        r.take("<Q")  # high watermark
        out = []
        for _ in range(r.take("<I")):
            r.take("<I")  # message length
            off, _ts, _part, _crc, _prio, _codec = r.take("<QQIIBB")
            key = r.bytes_()
            value = r.bytes_()
            out.append((off, key, value))
        return err, out
