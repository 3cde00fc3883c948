"""Codec unit tests (no server): layouts, CRC, murmur3, exceptions, partial reads."""

import socket
import struct
import threading

import pytest

import stream_client as sc
from stream_client import errors
from stream_client import protocol as p


def test_header_layout_matches_spec():
    h = p.encode_header(12, 0)
    assert h[:4] == bytes.fromhex("50525453")
    assert struct.unpack("<IIII", h) == (0x53545250, 1, 12, 0)


def test_bad_response_header_is_malformed():
    with pytest.raises(errors.MalformedResponse):
        p.decode_header(struct.pack("<IIII", 0xDEADBEEF, 1, 12, 0))
    with pytest.raises(errors.MalformedResponse):
        p.decode_header(struct.pack("<IIII", p.MAGIC, 2, 12, 0))
    with pytest.raises(errors.MalformedResponse):
        p.decode_header(struct.pack("<IIII", p.MAGIC, 1, 12, 16 * 1024 * 1024 + 1))


def test_request_layouts():
    assert p.create_topic("ab", 4) == b"\x02\x00\x00\x00ab\x04\x00\x00\x00"
    assert p.produce("t", b"k", b"v", 2) == (b"\x01\x00\x00\x00t" b"\x01\x00\x00\x00k"
                                              b"\x01\x00\x00\x00v" b"\x02")
    assert p.fetch("t", 1, 7, 100) == (b"\x01\x00\x00\x00t" + struct.pack("<IQI", 1, 7, 100))
    assert p.commit_offset("g", "t", 3, 9) == (b"\x01\x00\x00\x00g\x01\x00\x00\x00t"
                                               + struct.pack("<IQ", 3, 9))


def test_message_roundtrip_and_crc():
    raw = p.encode_message(5, 1736845200000, 2, 1, 0, b"key", b"value")
    assert len(raw) == 34 + 3 + 5
    m = p.decode_message(raw)
    assert (m.offset, m.timestamp_ms, m.partition, m.priority, m.key, m.value) == \
        (5, 1736845200000, 2, 1, b"key", b"value")
    # zlib CRC over offset, timestamp, priority, codec, key, value
    import zlib
    expect = zlib.crc32(struct.pack("<QQBB", 5, 1736845200000, 1, 0) + b"keyvalue")
    assert m.crc32 == expect


def test_corrupt_message_raises_crc_mismatch():
    raw = bytearray(p.encode_message(1, 2, 0, 2, 0, b"k", b"hello"))
    raw[-1] ^= 0xFF
    with pytest.raises(errors.CrcMismatch):
        p.decode_message(bytes(raw))
    assert p.decode_message(bytes(raw), verify_crc=False).value == b"hell" + bytes([ord("o") ^ 0xFF])


def test_truncated_payloads_raise_malformed_never_crash():
    payload = struct.pack("<hI", 0, 2) + b"\x05\x00\x00\x00abc"
    with pytest.raises(errors.MalformedResponse):
        p.list_topics(payload)
    for cut in range(0, 30):
        raw = p.encode_message(1, 2, 0, 2, 0, b"key", b"value")[:cut]
        with pytest.raises(errors.MalformedResponse):
            p.decode_message(raw)


def test_error_codes_map_to_exceptions():
    assert isinstance(errors.from_code(-6, "x"), errors.TopicAlreadyExists)
    assert isinstance(errors.from_code(-13), errors.RebalanceInProgress)
    e = errors.from_code(-99, "future")
    assert type(e) is errors.ServerError and e.code == -99
    with pytest.raises(errors.TopicNotFound) as info:
        p.status(struct.pack("<h", -3) + b"\x03\x00\x00\x00bad")
    assert info.value.code == -3 and info.value.message == "bad"
    assert "TopicNotFound" in str(info.value)


def test_murmur3_known_vectors():
    # Same vectors as crates/stream-proto/src/murmur3.rs.
    assert p.murmur3_x86_32(b"", 0) == 0
    assert p.murmur3_x86_32(b"", 1) == 0x514E28B7
    assert p.murmur3_x86_32(b"", 0xFFFFFFFF) == 0x81F16F39
    assert p.murmur3_x86_32(b"hello") == 0x248BFA47
    assert p.murmur3_x86_32(bytes([0x21, 0x43, 0x65, 0x87])) == 0xF55B516B
    assert p.murmur3_x86_32(bytes([0x21, 0x43, 0x65])) == 0x7E4A8634
    assert p.murmur3_x86_32(bytes([0x21, 0x43])) == 0xA0F7B07A
    assert p.murmur3_x86_32(bytes([0x21])) == 0x72661CF4
    assert p.murmur3_x86_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723


def _dribbling_server(response: bytes):
    """A fake server that answers one request one byte per send (worst-case partial reads)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def serve():
        conn, _ = lsock.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            hdr = b""
            while len(hdr) < 16:
                hdr += conn.recv(16 - len(hdr))
            for i in range(len(response)):
                conn.sendall(response[i:i + 1])
        lsock.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return lsock.getsockname()[1], t


def test_client_reads_exactly_n_bytes_across_partial_reads():
    names = ["topic-%03d" % i for i in range(50)]
    body = struct.pack("<hI", 0, len(names)) + b"".join(
        struct.pack("<I", len(n)) + n.encode() for n in names)
    port, t = _dribbling_server(p.frame(12, body))
    with sc.StreamClient("127.0.0.1", port, timeout=10) as c:
        assert c.list_topics() == names
    t.join(10)


def test_server_closing_mid_frame_raises_connection_closed():
    body = struct.pack("<hI", 0, 0)
    port, t = _dribbling_server(p.frame(12, body)[:10])
    with sc.StreamClient("127.0.0.1", port, timeout=10) as c:
        with pytest.raises(errors.ConnectionClosed):
            c.list_topics()
        assert not c.connected
    t.join(10)


def _fetch_payload(records):
    body = b"".join(struct.pack("<I", len(r)) + r for r in records)
    return struct.pack("<h", 0) + b"\x00\x00\x00\x00" + struct.pack("<QI", 99, len(records)) + body


def test_fetch_answer_decodes_and_verifies_each_message():
    recs = [p.encode_message(i, 1000 + i, 3, 2, 0, b"k%d" % i, b"v" * i) for i in range(20)]
    f = p.fetched(_fetch_payload(recs))
    assert f.high_watermark == 99
    assert [(m.offset, m.key, m.value) for m in f.messages] == \
        [(i, b"k%d" % i, b"v" * i) for i in range(20)]
    assert all(m == p.decode_message(r) for m, r in zip(f.messages, recs))
    bad = bytearray(recs[5])
    bad[-1] ^= 1
    with pytest.raises(errors.CrcMismatch):
        p.fetched(_fetch_payload(recs[:5] + [bytes(bad)]))
    assert len(p.fetched(_fetch_payload([bytes(bad)]), verify_crc=False).messages) == 1


def test_fetch_answer_with_lying_lengths_is_malformed_never_crashes():
    import random
    rng = random.Random(7)
    good = _fetch_payload([p.encode_message(i, 5, 0, 2, 0, b"key", b"value") for i in range(3)])
    for _ in range(2000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = rng.randint(0, len(data))
        try:
            p.fetched(bytes(data[:cut]))
        except errors.StreamError:
            pass
