"""STRP wire format: frame header, payload encoders and decoders, the Message layout.

Pure functions over bytes, no I/O, so they can be unit-tested without a server. Layouts follow
shared/specs/stream-protocol.md (the original C++ protocol) and docs/protocol.md (our
additions, which use new type ids and never change an existing layout).
"""

import struct
import zlib
from typing import List, NamedTuple, Optional, Tuple

from . import errors

MAGIC = 0x53545250  # "STRP"; on the wire the bytes are 50 52 54 53
VERSION = 1
HEADER = struct.Struct("<IIII")
HEADER_LEN = HEADER.size
# Same bound as the server: a response larger than this is malformed, never allocated.
MAX_FRAME = 16 * 1024 * 1024


class RequestType:
    """Request type ids. A response echoes its request's type."""

    API_VERSIONS = 0
    METADATA = 1
    CREATE_TOPIC = 10
    DELETE_TOPIC = 11
    LIST_TOPICS = 12
    PRODUCE = 20
    FETCH = 21
    # Our additions (docs/protocol.md).
    BATCH_PRODUCE = 22
    FETCH_WAIT = 23
    JOIN_GROUP = 30
    LEAVE_GROUP = 31
    COMMIT_OFFSET = 32
    FETCH_OFFSET = 33
    # Our additions (docs/protocol.md): group membership with member id and generation.
    JOIN_GROUP_V2 = 34
    GROUP_COMMIT = 35
    HEARTBEAT = 40
    DISCONNECT = 41


class Priority:
    """Message priority carried by PRODUCE."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


class Message(NamedTuple):
    """One stored message as returned by FETCH."""

    offset: int
    timestamp_ms: int
    partition: int
    crc32: int
    priority: int
    codec: int
    key: bytes
    value: bytes


class Produced(NamedTuple):
    """Where a produced message landed."""

    partition: int
    offset: int


class Fetched(NamedTuple):
    """A FETCH answer: the partition's high watermark (next offset to be written) and messages.

    `log_start_offset` (the oldest offset still stored) comes with FETCH_WAIT answers only.
    """

    high_watermark: int
    messages: List[Message]
    log_start_offset: int = 0


class Assignment(NamedTuple):
    """A JOIN_GROUP answer: this member's id and the partitions it owns.

    `generation` comes with JOIN_GROUP_V2 answers (0 from the original JOIN_GROUP).
    """

    consumer_id: str
    partitions: List[int]
    generation: int = 0


def encode_header(req_type: int, length: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, req_type, length)


def decode_header(data: bytes) -> Tuple[int, int]:
    """Returns (type, payload length); raises MalformedResponse on a bad magic/version/length."""
    magic, version, req_type, length = HEADER.unpack(data)
    if magic != MAGIC:
        raise errors.MalformedResponse("bad magic 0x%08x in response header" % magic)
    if version != VERSION:
        raise errors.MalformedResponse("unsupported response version %d" % version)
    if length > MAX_FRAME:
        raise errors.MalformedResponse("response length %d exceeds 16 MiB" % length)
    return req_type, length


def frame(req_type: int, payload: bytes) -> bytes:
    return encode_header(req_type, len(payload)) + payload


def _to_bytes(value, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError("%s must be bytes or str, not %s" % (what, type(value).__name__))


class Writer:
    """Little-endian payload builder."""

    __slots__ = ("parts",)

    def __init__(self):
        self.parts = []

    def u8(self, v: int) -> "Writer":
        self.parts.append(struct.pack("<B", v))
        return self

    def u32(self, v: int) -> "Writer":
        self.parts.append(struct.pack("<I", v))
        return self

    def u64(self, v: int) -> "Writer":
        self.parts.append(struct.pack("<Q", v))
        return self

    def string(self, v, what: str = "string") -> "Writer":
        b = _to_bytes(v, what)
        self.parts.append(struct.pack("<I", len(b)))
        self.parts.append(b)
        return self

    def raw(self, b: bytes) -> "Writer":
        self.parts.append(b)
        return self

    def build(self) -> bytes:
        return b"".join(self.parts)


class Reader:
    """Little-endian payload parser; every read is bounds-checked."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes):
        self.buf = memoryview(buf)
        self.pos = 0

    def _take(self, n: int, what: str) -> memoryview:
        end = self.pos + n
        if end > len(self.buf):
            raise errors.MalformedResponse(
                "truncated response: %s needs %d bytes at offset %d, payload is %d bytes"
                % (what, n, self.pos, len(self.buf))
            )
        view = self.buf[self.pos:end]
        self.pos = end
        return view

    def i16(self, what: str = "i16") -> int:
        return struct.unpack("<h", self._take(2, what))[0]

    def u8(self, what: str = "u8") -> int:
        return self._take(1, what)[0]

    def u32(self, what: str = "u32") -> int:
        return struct.unpack("<I", self._take(4, what))[0]

    def u64(self, what: str = "u64") -> int:
        return struct.unpack("<Q", self._take(8, what))[0]

    def bytes_(self, what: str = "bytes") -> bytes:
        n = self.u32(what + " length")
        return bytes(self._take(n, what))

    def string(self, what: str = "string") -> str:
        raw = self.bytes_(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise errors.MalformedResponse("%s is not UTF-8: %s" % (what, e)) from None

    def remaining(self) -> int:
        return len(self.buf) - self.pos


def check(code: int, message: str = "") -> None:
    """Raises the typed exception for a non-zero error code."""
    if code != 0:
        raise errors.from_code(code, message)


# ---- messages -------------------------------------------------------------------------------

MESSAGE_FIXED = 34
_MSG_HEAD = struct.Struct("<QQIIBB")
_CRC_HEAD = struct.Struct("<QQBB")


def message_crc(offset: int, timestamp_ms: int, priority: int, codec: int, key: bytes,
                value: bytes) -> int:
    """IEEE CRC-32 over offset, timestamp_ms, priority, codec, key, value (spec order)."""
    crc = zlib.crc32(struct.pack("<QQBB", offset, timestamp_ms, priority, codec))
    crc = zlib.crc32(key, crc)
    return zlib.crc32(value, crc) & 0xFFFFFFFF


def encode_message(offset: int, timestamp_ms: int, partition: int, priority: int, codec: int,
                   key: bytes, value: bytes, crc: Optional[int] = None) -> bytes:
    """Encodes a Message (as found inside FETCH answers); used by tests."""
    if crc is None:
        crc = message_crc(offset, timestamp_ms, priority, codec, key, value)
    return (_MSG_HEAD.pack(offset, timestamp_ms, partition, crc, priority, codec)
            + struct.pack("<I", len(key)) + key + struct.pack("<I", len(value)) + value)


def decode_message(buf: bytes, verify_crc: bool = True) -> Message:
    """Decodes one Message; raises CrcMismatch when the checksum does not match."""
    if len(buf) < MESSAGE_FIXED:
        raise errors.MalformedResponse("message of %d bytes is shorter than 34" % len(buf))
    offset, ts, partition, crc, priority, codec = _MSG_HEAD.unpack_from(buf, 0)
    r = Reader(buf)
    r.pos = _MSG_HEAD.size
    key = r.bytes_("message key")
    value = r.bytes_("message value")
    if r.remaining() != 0:
        raise errors.MalformedResponse("message has %d trailing bytes" % r.remaining())
    if verify_crc:
        actual = message_crc(offset, ts, priority, codec, key, value)
        if actual != crc:
            raise errors.CrcMismatch(
                "message at offset %d of partition %d: crc32 0x%08x, computed 0x%08x"
                % (offset, partition, crc, actual)
            )
    return Message(offset, ts, partition, crc, priority, codec, key, value)


# ---- request payloads -----------------------------------------------------------------------

def create_topic(name: str, partitions: int) -> bytes:
    return Writer().string(name, "topic").u32(partitions).build()


def topic_name(name: str) -> bytes:
    return Writer().string(name, "topic").build()


def produce(topic: str, key, value, priority: int = Priority.NORMAL) -> bytes:
    return (Writer().string(topic, "topic").string(key, "key").string(value, "value")
            .u8(priority).build())


def fetch(topic: str, partition: int, offset: int, max_messages: int) -> bytes:
    return Writer().string(topic, "topic").u32(partition).u64(offset).u32(max_messages).build()


def join_group(group: str, topic: str) -> bytes:
    return Writer().string(group, "group").string(topic, "topic").build()


def leave_group(group: str, consumer_id: str) -> bytes:
    return Writer().string(group, "group").string(consumer_id, "consumer_id").build()


def commit_offset(group: str, topic: str, partition: int, offset: int) -> bytes:
    return (Writer().string(group, "group").string(topic, "topic").u32(partition).u64(offset)
            .build())


def fetch_offset(group: str, topic: str, partition: int) -> bytes:
    return Writer().string(group, "group").string(topic, "topic").u32(partition).build()


PARTITION_ANY = 0xFFFFFFFF  # BATCH_PRODUCE: place each message by its key


def produce_batch(topic: str, records, partition: Optional[int] = None,
                  priority: int = Priority.NORMAL) -> bytes:
    """BATCH_PRODUCE: `str topic, u32 partition, u32 n, n x (str key, str value, u8 priority)`.

    A record is (key, value) or (key, value, priority).
    """
    w = Writer().string(topic, "topic").u32(PARTITION_ANY if partition is None else partition)
    records = list(records)
    w.u32(len(records))
    # The hot path of producing from Python: one list of parts, joined once.
    parts = w.parts
    pack = _U32.pack
    default_pri = bytes([priority])
    for rec in records:
        k = rec[0] if type(rec[0]) is bytes else _to_bytes(rec[0], "key")
        v = rec[1] if type(rec[1]) is bytes else _to_bytes(rec[1], "value")
        parts += (pack(len(k)), k, pack(len(v)), v,
                  bytes([rec[2]]) if len(rec) > 2 else default_pri)
    return w.build()


def fetch_wait(topic: str, partition: int, offset: int, max_messages: int, max_bytes: int,
               max_wait_ms: int) -> bytes:
    return (Writer().string(topic, "topic").u32(partition).u64(offset).u32(max_messages)
            .u32(max_bytes).u32(max_wait_ms).build())


def join_group_v2(group: str, topic: str, consumer_id: str = "",
                  session_timeout_ms: int = 0) -> bytes:
    return (Writer().string(group, "group").string(topic, "topic")
            .string(consumer_id, "consumer_id").u32(session_timeout_ms).build())


def group_commit(group: str, consumer_id: str, generation: int, topic: str, partition: int,
                 offset: int) -> bytes:
    return (Writer().string(group, "group").string(consumer_id, "consumer_id").u32(generation)
            .string(topic, "topic").u32(partition).u64(offset).build())


def heartbeat(group: str, consumer_id: str, generation: int = 0) -> bytes:
    return (Writer().string(group, "group").string(consumer_id, "consumer_id").u32(generation)
            .build())


# ---- response payloads ----------------------------------------------------------------------

def status(payload: bytes) -> str:
    """`i16 err, str msg` answers (CREATE/DELETE_TOPIC, LEAVE_GROUP, COMMIT_OFFSET, ...)."""
    r = Reader(payload)
    code = r.i16("error code")
    msg = r.string("message")
    check(code, msg)
    return msg


def metadata(payload: bytes) -> List[Tuple[str, int]]:
    r = Reader(payload)
    check(r.i16("error code"))
    n = r.u32("topic count")
    out = []
    for _ in range(n):
        name = r.string("topic name")
        out.append((name, r.u32("partition count")))
    return out


def list_topics(payload: bytes) -> List[str]:
    r = Reader(payload)
    check(r.i16("error code"))
    n = r.u32("topic count")
    return [r.string("topic name") for _ in range(n)]


def produced(payload: bytes) -> Produced:
    r = Reader(payload)
    code = r.i16("error code")
    msg = r.string("message")
    check(code, msg)
    return Produced(r.u32("partition"), r.u64("offset"))


_REC_HEAD = struct.Struct("<IQQIIBBI")  # record len, then the message's fixed part + key_len
_U32 = struct.Struct("<I")


def _records(r: Reader, verify_crc: bool) -> List[Message]:
    """`u32 n, n x (u32 len, Message)`. The hot path of consuming: one unpack per message
    header, slices for key and value, bounds checked against the record length."""
    n = r.u32("message count")
    buf = r.buf
    end = len(buf)
    pos = r.pos
    msgs = []
    crc32 = zlib.crc32
    pack_crc_head = _CRC_HEAD.pack
    for _ in range(n):
        if pos + _REC_HEAD.size > end:
            raise errors.MalformedResponse("truncated message header at byte %d" % pos)
        length, offset, ts, partition, crc, priority, codec, klen = _REC_HEAD.unpack_from(buf, pos)
        rec_end = pos + 4 + length
        kstart = pos + _REC_HEAD.size
        vlen_at = kstart + klen
        if length < MESSAGE_FIXED or rec_end > end or vlen_at + 4 > rec_end:
            raise errors.MalformedResponse("message at byte %d overruns its record" % pos)
        vlen = _U32.unpack_from(buf, vlen_at)[0]
        vstart = vlen_at + 4
        if vstart + vlen != rec_end:
            raise errors.MalformedResponse(
                "message at byte %d: key/value lengths do not match the record length" % pos)
        key = bytes(buf[kstart:vlen_at])
        value = bytes(buf[vstart:rec_end])
        if verify_crc:
            actual = crc32(value, crc32(key, crc32(pack_crc_head(offset, ts, priority, codec))))
            if actual != crc:
                raise errors.CrcMismatch(
                    "message at offset %d of partition %d: crc32 0x%08x, computed 0x%08x"
                    % (offset, partition, crc, actual))
        msgs.append(Message(offset, ts, partition, crc, priority, codec, key, value))
        pos = rec_end
    if pos != end:
        raise errors.MalformedResponse("%d trailing bytes after the messages" % (end - pos))
    r.pos = pos
    return msgs


def fetched(payload: bytes, verify_crc: bool = True) -> Fetched:
    """FETCH: `i16 err, str msg, u64 high_watermark, u32 n, n x (u32 len, Message)`."""
    r = Reader(payload)
    code = r.i16("error code")
    msg = r.string("message")
    check(code, msg)
    hw = r.u64("high watermark")
    return Fetched(hw, _records(r, verify_crc))


def fetched_wait(payload: bytes, verify_crc: bool = True) -> Fetched:
    """FETCH_WAIT: `i16 err, str msg, u64 high_watermark, u64 log_start_offset, u32 n, ...`."""
    r = Reader(payload)
    code = r.i16("error code")
    msg = r.string("message")
    check(code, msg)
    hw = r.u64("high watermark")
    start = r.u64("log start offset")
    return Fetched(hw, _records(r, verify_crc), start)


def batch_produced(payload: bytes) -> List[Produced]:
    """BATCH_PRODUCE: `i16 err, str msg, u32 n, n x (u32 partition, u64 offset)`."""
    r = Reader(payload)
    code = r.i16("error code")
    msg = r.string("message")
    check(code, msg)
    n = r.u32("offset count")
    return [Produced(r.u32("partition"), r.u64("offset")) for _ in range(n)]


def api_versions(payload: bytes) -> List[Tuple[int, int]]:
    """API_VERSIONS: `i16 err, u32 n, n x (u32 type_id, u32 version)`."""
    r = Reader(payload)
    check(r.i16("error code"))
    n = r.u32("version count")
    return [(r.u32("type id"), r.u32("version")) for _ in range(n)]


def joined_v2(payload: bytes) -> Assignment:
    """JOIN_GROUP_V2: `i16 err, str msg, str consumer_id, u32 generation, u32 n, n x u32`."""
    r = Reader(payload)
    code = r.i16("error code")
    msg = r.string("message")
    check(code, msg)
    cid = r.string("consumer id")
    gen = r.u32("generation")
    n = r.u32("partition count")
    return Assignment(cid, [r.u32("partition") for _ in range(n)], gen)


def joined(payload: bytes) -> Assignment:
    r = Reader(payload)
    code = r.i16("error code")
    msg = r.string("message")
    check(code, msg)
    cid = r.string("consumer id")
    n = r.u32("partition count")
    return Assignment(cid, [r.u32("partition") for _ in range(n)])


def offset(payload: bytes) -> int:
    r = Reader(payload)
    check(r.i16("error code"))
    return r.u64("offset")


# ---- partitioning ---------------------------------------------------------------------------

def murmur3_x86_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32, the hash the server uses to place a keyed message."""
    m = 0xFFFFFFFF
    c1, c2 = 0xCC9E2D51, 0x1B873593

    def scramble(k):
        k = (k * c1) & m
        k = ((k << 15) | (k >> 17)) & m
        return (k * c2) & m

    h = seed & m
    n = len(data)
    full = n - n % 4
    for i in range(0, full, 4):
        h ^= scramble(int.from_bytes(data[i:i + 4], "little"))
        h = ((h << 13) | (h >> 19)) & m
        h = (h * 5 + 0xE6546B64) & m
    if n % 4:
        h ^= scramble(int.from_bytes(data[full:], "little"))
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & m
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & m
    h ^= h >> 16
    return h


def partition_for_key(key, partitions: int) -> int:
    """The partition the server picks for a non-empty key."""
    if partitions <= 0:
        return 0
    return murmur3_x86_32(_to_bytes(key, "key")) % partitions
