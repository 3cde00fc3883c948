"""GroupConsumer: iterate a topic's messages as a member of a consumer group.

Single-threaded by design: heartbeats are sent between fetches (each long-poll wait is kept
well below the heartbeat interval), so no background thread shares the socket. Delivery is
at-least-once: a message's offset is committed only after the loop body that received it has
finished (i.e. when the next message is asked for), so a crash re-delivers at most the messages
since the last commit.
"""

import time
from typing import Dict, Iterator, List, Optional

from . import errors
from .protocol import Message


class GroupConsumer:
    """A consumer-group member over one topic. Use as an iterator and a context manager:

        with client.consumer("billing", "orders") as consumer:
            for msg in consumer:
                handle(msg)

    Args:
        client: a connected StreamClient (the consumer uses it exclusively while iterating).
        group, topic: what to join.
        session_timeout_ms: how long the server keeps this member without a heartbeat
            (0 = server default).
        heartbeat_interval: seconds between heartbeats (keep it well below the session timeout).
        max_messages, max_bytes: per fetch.
        poll_wait_ms: long-poll wait per fetch when a partition has no new data.
        idle_timeout: stop iterating after this many seconds without a message (None = never).
        auto_commit: commit processed offsets after each fetched batch and on close.
        start: "earliest" or "latest", where to begin on partitions without a committed offset.
        reconnect_timeout: after a lost connection, keep trying to reconnect (and rejoin) for
            this many seconds before raising (0 = raise at once).
    """

    def __init__(self, client, group: str, topic: str, session_timeout_ms: int = 0,
                 heartbeat_interval: float = 1.0, max_messages: int = 500,
                 max_bytes: int = 1 << 20, poll_wait_ms: int = 100,
                 idle_timeout: Optional[float] = None, auto_commit: bool = True,
                 start: str = "earliest", reconnect_timeout: float = 30.0):
        if start not in ("earliest", "latest"):
            raise ValueError("start must be 'earliest' or 'latest'")
        self.client = client
        self.group = group
        self.topic = topic
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval = heartbeat_interval
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.poll_wait_ms = min(poll_wait_ms, int(heartbeat_interval * 1000 / 2))
        self.idle_timeout = idle_timeout
        self.auto_commit = auto_commit
        self.start = start
        self.reconnect_timeout = reconnect_timeout
        self.consumer_id = ""
        self.generation = 0
        self.partitions: List[int] = []
        self.positions: Dict[int, int] = {}  # next offset to consume, per owned partition
        self._committed: Dict[int, int] = {}
        self._last_heartbeat = 0.0
        self._closed = False
        self.rebalances = 0

    # ---- membership ---------------------------------------------------------------------

    def join(self) -> None:
        """Joins (or rejoins with our member id) and positions on the committed offsets."""
        try:
            a = self.client.join_group_v2(self.group, self.topic, self.consumer_id,
                                          self.session_timeout_ms)
        except errors.ConsumerNotFound:
            # Evicted: come back as a new member.
            self.consumer_id = ""
            a = self.client.join_group_v2(self.group, self.topic, "", self.session_timeout_ms)
        self.consumer_id, self.generation = a.consumer_id, a.generation
        self.partitions = sorted(a.partitions)
        previous, self.positions, self._committed = self.positions, {}, {}
        for part in self.partitions:
            committed = self._committed_offset(part)
            if committed is not None:
                self._committed[part] = committed
            # A partition we keep across the rebalance: our own progress may be ahead of the
            # last commit (a stale generation's commit is refused); messages up to it were
            # handled, so resume there (the next commit records it).
            pos = max(x for x in (committed, previous.get(part)) if x is not None) \
                if committed is not None or part in previous else self._reset(part)
            self.positions[part] = pos
        self._last_heartbeat = time.monotonic()

    def _reset(self, partition: int) -> int:
        """Start position without a committed offset (or after an out-of-range one)."""
        start, hw = self.client.partition_offsets(self.topic, partition)
        return start if self.start == "earliest" else hw

    def _committed_offset(self, partition: int) -> Optional[int]:
        try:
            return self.client.fetch_offset(self.group, self.topic, partition)
        except (errors.InvalidOffset, errors.GroupNotFound, errors.ConsumerNotFound):
            return None

    def heartbeat(self) -> bool:
        """Sends a group heartbeat; on a rebalance (or eviction) commits and rejoins.

        Returns True when the assignment was renewed.
        """
        self._last_heartbeat = time.monotonic()
        try:
            self.client.heartbeat(self.group, self.consumer_id, self.generation)
            return False
        except (errors.RebalanceInProgress, errors.IllegalGeneration, errors.ConsumerNotFound):
            pass
        # Our old generation may still commit when only a rebalance is pending; a refused
        # commit is fine: the new owner resumes from what was committed before.
        self._commit_quietly()
        self.rebalances += 1
        self.join()
        return True

    def _maybe_heartbeat(self) -> None:
        if time.monotonic() - self._last_heartbeat >= self.heartbeat_interval:
            self.heartbeat()

    # ---- offsets ------------------------------------------------------------------------

    def commit(self) -> None:
        """Commits the position of every owned partition that moved since the last commit.

        Raises IllegalGeneration / RebalanceInProgress when this member is stale.
        """
        for part, pos in self.positions.items():
            if self._committed.get(part) != pos:
                self.client.group_commit(self.group, self.consumer_id, self.generation,
                                         self.topic, part, pos)
                self._committed[part] = pos

    def _commit_quietly(self) -> None:
        try:
            self.commit()
        except (errors.RebalanceInProgress, errors.IllegalGeneration,
                errors.ConsumerNotFound):
            pass

    # ---- iteration ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Message]:
        if not self.consumer_id:
            self.join()
        idle_since = time.monotonic()
        turn = 0
        while not self._closed:
            try:
                self._maybe_heartbeat()
                if not self.partitions:
                    # More members than partitions: stay alive and wait for a rebalance.
                    if self._idle(idle_since):
                        return
                    time.sleep(min(self.heartbeat_interval, 0.1))
                    continue
                part = self.partitions[turn % len(self.partitions)]
                turn += 1
                # Wait only when a full round of partitions came back empty.
                wait = self.poll_wait_ms if turn % len(self.partitions) == 0 else 0
                gen = self.generation
                try:
                    fetched = self.client.fetch_wait(self.topic, part, self.positions[part],
                                                     self.max_messages, self.max_bytes, wait)
                except errors.InvalidOffset:
                    # Below the log start (retention) or past the end (topic recreated).
                    self.positions[part] = self._reset(part)
                    continue
            except (errors.ConnectionClosed, errors.ClientTimeout):
                self._recover()
                continue
            if fetched.messages:
                idle_since = time.monotonic()
            for m in fetched.messages:
                yield m
                if self.generation != gen or part not in self.positions:
                    break  # rebalanced while the caller processed the message
                self.positions[part] = m.offset + 1
                try:
                    self._maybe_heartbeat()
                except (errors.ConnectionClosed, errors.ClientTimeout):
                    self._recover()
                if self.generation != gen:
                    break
            if self.auto_commit and fetched.messages:
                try:
                    self._commit_quietly()
                except (errors.ConnectionClosed, errors.ClientTimeout):
                    self._recover()
            if not fetched.messages and self._idle(idle_since):
                return

    def _recover(self) -> None:
        """Reconnects and rejoins after a lost connection (e.g. a server restart), resuming
        from the committed offsets or our own positions, whichever is further."""
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.05
        while True:
            self.client.close()
            try:
                self.client.connect()
                self.join()
                return
            except (errors.ConnectionClosed, errors.ClientTimeout):
                if time.monotonic() >= deadline:
                    raise
            # Backoff between attempts: there is nothing to wait on but time.
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _idle(self, since: float) -> bool:
        return self.idle_timeout is not None and time.monotonic() - since >= self.idle_timeout

    def close(self) -> None:
        """Commits (when auto_commit) and leaves the group, so others take over at once."""
        if self._closed:
            return
        self._closed = True
        if not self.consumer_id or not self.client.connected:
            return
        if self.auto_commit:
            self._commit_quietly()
        try:
            self.client.leave_group(self.group, self.consumer_id)
        except (errors.ConsumerNotFound, errors.GroupNotFound):
            pass

    def __enter__(self) -> "GroupConsumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
