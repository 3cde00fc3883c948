"""StreamClient: one TCP connection to a stream server, one method per request type."""

import socket
from typing import Iterable, List, Optional, Sequence, Tuple

from . import errors
from . import protocol as p
from .protocol import Assignment, Fetched, Priority, Produced, RequestType


class StreamClient:
    """A connection to a stream server.

    Requests are synchronous; `pipeline()` sends many requests before reading the answers (the
    server answers in request order), which is how to get throughput without batching.
    Every method raises a `stream_client.errors.ServerError` subclass for a server error code,
    `ConnectionClosed` when the connection is gone and `ClientTimeout` when an answer takes
    longer than `timeout` seconds (the connection is closed then: it cannot be resynchronised).
    """

    def __init__(self, host: str = "localhost", port: int = 9092, timeout: Optional[float] = 30.0,
                 verify_crc: bool = True):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.verify_crc = verify_crc
        self.sock: Optional[socket.socket] = None

    # ---- connection ---------------------------------------------------------------------

    def connect(self) -> "StreamClient":
        """Opens the connection (idempotent). Returns self."""
        if self.sock is not None:
            return self
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as e:
            raise errors.ConnectionClosed(
                "cannot connect to %s:%d: %s" % (self.host, self.port, e)) from e
        # Small request/response frames: Nagle would add up to 40 ms per round trip.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        return self

    def close(self) -> None:
        """Closes the connection (idempotent)."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self) -> "StreamClient":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self.sock is not None

    # ---- framing ------------------------------------------------------------------------

    def _sock(self) -> socket.socket:
        if self.sock is None:
            raise errors.ConnectionClosed("not connected (call connect() first)")
        return self.sock

    def _recv_exact(self, n: int, timeout: Optional[float]) -> bytes:
        """Reads exactly n bytes: recv() may return any part of a frame, so loop until done."""
        sock = self._sock()
        sock.settimeout(timeout)
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        try:
            while got < n:
                k = sock.recv_into(view[got:], n - got)
                if k == 0:
                    raise errors.ConnectionClosed(
                        "server closed the connection (%d of %d bytes read)" % (got, n))
                got += k
        except socket.timeout:
            self.close()
            raise errors.ClientTimeout(
                "no complete answer from %s:%d within %ss" % (self.host, self.port, timeout)
            ) from None
        except OSError as e:
            self.close()
            raise errors.ConnectionClosed("read from %s:%d failed: %s"
                                          % (self.host, self.port, e)) from e
        return bytes(buf)

    def _send(self, data: bytes) -> None:
        sock = self._sock()
        sock.settimeout(self.timeout)
        try:
            sock.sendall(data)
        except OSError as e:
            self.close()
            raise errors.ConnectionClosed("write to %s:%d failed: %s"
                                          % (self.host, self.port, e)) from e

    def _read_response(self, req_type: int, extra_wait: float = 0.0) -> bytes:
        timeout = None if self.timeout is None else self.timeout + extra_wait
        try:
            rtype, length = p.decode_header(self._recv_exact(p.HEADER_LEN, timeout))
        except errors.MalformedResponse:
            self.close()
            raise
        payload = self._recv_exact(length, timeout)
        if rtype != req_type:
            self.close()
            # A PROTOCOL_ERROR answer may carry our type or not; surface the server's code.
            try:
                code = p.Reader(payload).i16()
            except errors.MalformedResponse:
                code = 0
            if code:
                raise errors.from_code(code, "answer to request type %d" % req_type)
            raise errors.MalformedResponse(
                "answer has type %d, expected %d" % (rtype, req_type))
        return payload

    def request(self, req_type: int, payload: bytes = b"", extra_wait: float = 0.0) -> bytes:
        """Sends one request and returns the answer's payload (raw bytes)."""
        self._send(p.frame(req_type, payload))
        return self._read_response(req_type, extra_wait)

    #: Most requests `pipeline()` keeps in flight.
    PIPELINE_WINDOW = 1024

    def pipeline(self, requests: Iterable[Tuple[int, bytes]]) -> List[bytes]:
        """Sends the requests pipelined and returns the answers' payloads, in request order.

        At most PIPELINE_WINDOW requests are in flight, refilled in bursts of half a window:
        writing a long list before reading anything could deadlock (the server stops reading
        while its answers back up unread).
        """
        reqs = list(requests)
        out: List[bytes] = []
        sent = 0
        window = self.PIPELINE_WINDOW
        while len(out) < len(reqs):
            if sent - len(out) <= window // 2:
                end = min(len(reqs), len(out) + window)
                self._send(b"".join(p.frame(t, body) for t, body in reqs[sent:end]))
                sent = end
            out.append(self._read_response(reqs[len(out)][0]))
        return out

    # ---- topics -------------------------------------------------------------------------

    def api_versions(self) -> List[Tuple[int, int]]:
        """[(request type id, version), ...] the server supports."""
        return p.api_versions(self.request(RequestType.API_VERSIONS))

    def metadata(self) -> List[Tuple[str, int]]:
        """[(topic, partition_count), ...]."""
        return p.metadata(self.request(RequestType.METADATA))

    def list_topics(self) -> List[str]:
        return p.list_topics(self.request(RequestType.LIST_TOPICS))

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Raises TopicAlreadyExists when it exists."""
        p.status(self.request(RequestType.CREATE_TOPIC, p.create_topic(name, partitions)))

    def delete_topic(self, name: str) -> None:
        """Raises TopicNotFound when it does not exist."""
        p.status(self.request(RequestType.DELETE_TOPIC, p.topic_name(name)))

    # ---- produce / fetch ----------------------------------------------------------------

    def produce(self, topic: str, key=b"", value=b"", priority: int = Priority.NORMAL) -> Produced:
        """Appends one message; an empty key goes round-robin. Returns (partition, offset)."""
        return p.produced(self.request(RequestType.PRODUCE,
                                       p.produce(topic, key, value, priority)))

    def produce_many(self, topic: str, records: Iterable[Tuple[object, object]],
                     priority: int = Priority.NORMAL) -> List[Produced]:
        """One PRODUCE per (key, value), pipelined; works with any STRP server."""
        reqs = [(RequestType.PRODUCE, p.produce(topic, k, v, priority)) for k, v in records]
        return [p.produced(r) for r in self.pipeline(reqs)] if reqs else []

    def produce_batch(self, topic: str, records: Sequence[Tuple[object, object]],
                      partition: Optional[int] = None,
                      priority: int = Priority.NORMAL) -> List[Produced]:
        """BATCH_PRODUCE: many messages in one request; returns each message's (partition, offset).

        With `partition`, every message goes there; otherwise each is partitioned by its key.
        """
        body = p.produce_batch(topic, records, partition, priority)
        return p.batch_produced(self.request(RequestType.BATCH_PRODUCE, body))

    def fetch(self, topic: str, partition: int, offset: int, max_messages: int = 100) -> Fetched:
        """Messages from `offset` on (at most max_messages); CRCs are verified."""
        body = p.fetch(topic, partition, offset, max_messages)
        return p.fetched(self.request(RequestType.FETCH, body), self.verify_crc)

    def fetch_wait(self, topic: str, partition: int, offset: int, max_messages: int = 1000,
                   max_bytes: int = 1 << 20, max_wait_ms: int = 500) -> Fetched:
        """Long poll: like fetch, but waits up to max_wait_ms for data at `offset` to appear."""
        body = p.fetch_wait(topic, partition, offset, max_messages, max_bytes, max_wait_ms)
        payload = self.request(RequestType.FETCH_WAIT, body, extra_wait=max_wait_ms / 1000.0)
        return p.fetched_wait(payload, self.verify_crc)

    def partition_offsets(self, topic: str, partition: int) -> Tuple[int, int]:
        """(log_start_offset, high_watermark) of a partition: its oldest stored offset and
        the next offset to be written."""
        body = p.fetch_wait(topic, partition, 0, 0, 0, 0)
        r = p.Reader(self.request(RequestType.FETCH_WAIT, body))
        code = r.i16("error code")
        msg = r.string("message")
        # INVALID_OFFSET (offset 0 is below the log start) still carries both numbers.
        if code not in (0, errors.InvalidOffset.code):
            p.check(code, msg)
        hw = r.u64("high watermark")
        return r.u64("log start offset"), hw

    # ---- groups -------------------------------------------------------------------------

    def join_group(self, group: str, topic: str) -> Assignment:
        """Joins (or rejoins) `group` consuming `topic`; returns (consumer_id, partitions)."""
        return p.joined(self.request(RequestType.JOIN_GROUP, p.join_group(group, topic)))

    def leave_group(self, group: str, consumer_id: str) -> None:
        p.status(self.request(RequestType.LEAVE_GROUP, p.leave_group(group, consumer_id)))

    def commit_offset(self, group: str, topic: str, partition: int, offset: int) -> None:
        """Commits `offset` (the next offset to consume) for the group's partition."""
        p.status(self.request(RequestType.COMMIT_OFFSET,
                              p.commit_offset(group, topic, partition, offset)))

    def fetch_offset(self, group: str, topic: str, partition: int) -> int:
        """The group's committed offset for a partition."""
        return p.offset(self.request(RequestType.FETCH_OFFSET,
                                     p.fetch_offset(group, topic, partition)))

    def join_group_v2(self, group: str, topic: str, consumer_id: str = "",
                      session_timeout_ms: int = 0) -> Assignment:
        """JOIN_GROUP_V2: join (empty consumer_id) or rejoin with our member id.

        Returns (consumer_id, partitions, generation); the generation goes with heartbeats and
        commits so that the server can refuse a stale member.
        """
        body = p.join_group_v2(group, topic, consumer_id, session_timeout_ms)
        return p.joined_v2(self.request(RequestType.JOIN_GROUP_V2, body))

    def group_commit(self, group: str, consumer_id: str, generation: int, topic: str,
                     partition: int, offset: int) -> None:
        """GROUP_COMMIT: commit as a member of `generation` (refused with IllegalGeneration
        or RebalanceInProgress when that member or generation is stale)."""
        body = p.group_commit(group, consumer_id, generation, topic, partition, offset)
        p.status(self.request(RequestType.GROUP_COMMIT, body))

    def heartbeat(self, group: Optional[str] = None, consumer_id: Optional[str] = None,
                  generation: int = 0) -> str:
        """Keep-alive; with a group and member id it also keeps that member alive.

        Raises RebalanceInProgress when the group's membership changed (rejoin), and
        ConsumerNotFound when the member was evicted.
        """
        body = b"" if group is None else p.heartbeat(group, consumer_id or "", generation)
        return p.status(self.request(RequestType.HEARTBEAT, body))

    def disconnect(self) -> None:
        """DISCONNECT: the server answers, then closes; so do we."""
        try:
            p.status(self.request(RequestType.DISCONNECT))
        finally:
            self.close()

    def consumer(self, group: str, topic: str, **kwargs):
        """A group-member iterator over `topic`; see stream_client.GroupConsumer."""
        from .consumer import GroupConsumer

        return GroupConsumer(self, group, topic, **kwargs)
