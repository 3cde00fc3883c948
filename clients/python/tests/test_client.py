"""Every request type round-trips through the real stream-server."""

import socket
import struct
import threading
import time

import pytest

import stream_client as sc
from stream_client import errors
from stream_client import protocol as p


def test_api_versions_lists_our_types(client):
    types = dict(client.api_versions())
    for t in (0, 1, 10, 11, 12, 20, 21, 22, 23, 30, 31, 32, 33, 34, 35, 40, 41):
        assert t in types, t


def test_create_list_metadata_delete(client, topic):
    client.create_topic(topic, 3)
    assert topic in client.list_topics()
    assert (topic, 3) in client.metadata()
    with pytest.raises(errors.TopicAlreadyExists) as info:
        client.create_topic(topic, 3)
    assert info.value.code == -6
    client.delete_topic(topic)
    assert topic not in client.list_topics()
    with pytest.raises(errors.TopicNotFound):
        client.delete_topic(topic)


def test_produce_then_fetch_returns_messages_with_valid_crc(client, topic):
    client.create_topic(topic, 1)
    offsets = [client.produce(topic, b"k%d" % i, b"value-%d" % i) for i in range(5)]
    assert offsets == [sc.Produced(0, i) for i in range(5)]
    f = client.fetch(topic, 0, 0, 100)
    assert f.high_watermark == 5
    assert [(m.offset, m.key, m.value) for m in f.messages] == \
        [(i, b"k%d" % i, b"value-%d" % i) for i in range(5)]
    assert all(m.partition == 0 and m.priority == sc.Priority.NORMAL for m in f.messages)
    # from the middle, bounded by max_messages
    f = client.fetch(topic, 0, 2, 2)
    assert [m.offset for m in f.messages] == [2, 3]
    # at the end: nothing yet
    assert client.fetch(topic, 0, 5, 10).messages == []


def test_str_keys_and_values_are_utf8(client, topic):
    client.create_topic(topic, 1)
    client.produce(topic, "clé", "välue", priority=sc.Priority.CRITICAL)
    m = client.fetch(topic, 0, 0, 1).messages[0]
    assert (m.key, m.value, m.priority) == ("clé".encode(), "välue".encode(), 0)


def test_keyed_messages_use_murmur3_and_empty_keys_round_robin(client, topic):
    client.create_topic(topic, 4)
    for key in (b"order-1", b"order-2", b"BTC-USD", b"x"):
        got = client.produce(topic, key, b"v")
        assert got.partition == p.partition_for_key(key, 4)
        assert client.produce(topic, key, b"v").partition == got.partition
    parts = {client.produce(topic, b"", b"rr").partition for _ in range(8)}
    assert parts == {0, 1, 2, 3}


def test_errors_for_missing_topic_and_partition(client, topic):
    with pytest.raises(errors.TopicNotFound):
        client.produce(topic, b"", b"v")
    with pytest.raises(errors.TopicNotFound):
        client.fetch(topic, 0, 0, 1)
    client.create_topic(topic, 2)
    with pytest.raises(errors.PartitionNotFound):
        client.fetch(topic, 7, 0, 1)


def test_pipelined_produce_answers_in_order(client, topic):
    client.create_topic(topic, 1)
    got = client.produce_many(topic, [(b"", b"m%d" % i) for i in range(500)])
    assert [g.offset for g in got] == list(range(500))
    f = client.fetch(topic, 0, 0, 1000)
    assert [m.value for m in f.messages] == [b"m%d" % i for i in range(500)]


def test_long_pipelines_do_not_deadlock(client, topic):
    client.create_topic(topic, 1)
    got = client.produce_many(topic, [(b"", b"v" * 1024)] * 20000)
    assert [g.offset for g in got] == list(range(20000))


def test_batch_produce_to_topic_and_partition(client, topic):
    client.create_topic(topic, 2)
    got = client.produce_batch(topic, [(b"", b"a"), (b"", b"b"), (b"", b"c")], partition=1)
    assert got == [sc.Produced(1, 0), sc.Produced(1, 1), sc.Produced(1, 2)]
    keyed = client.produce_batch(topic, [(b"k1", b"x"), (b"k2", b"y")])
    for (key, _), res in zip([(b"k1", 0), (b"k2", 0)], keyed):
        assert res.partition == p.partition_for_key(key, 2)
    assert [m.value for m in client.fetch(topic, 1, 0, 10).messages][:3] == [b"a", b"b", b"c"]


def test_fetch_wait_returns_early_when_data_arrives(server, client, topic):
    client.create_topic(topic, 1)
    # No data: waits about max_wait_ms, returns nothing.
    t0 = time.monotonic()
    assert client.fetch_wait(topic, 0, 0, max_wait_ms=200).messages == []
    assert time.monotonic() - t0 >= 0.15

    def later():
        with server.client() as other:
            time.sleep(0.3)  # the point is to produce *while* the fetch waits
            other.produce(topic, b"", b"late")

    t = threading.Thread(target=later)
    t.start()
    t0 = time.monotonic()
    f = client.fetch_wait(topic, 0, 0, max_wait_ms=20000)
    assert [m.value for m in f.messages] == [b"late"]
    assert time.monotonic() - t0 < 15
    t.join()
    # byte limit: at least one message even when it is bigger than max_bytes
    client.produce_many(topic, [(b"", b"x" * 100)] * 10)
    f = client.fetch_wait(topic, 0, 1, max_messages=100, max_bytes=250, max_wait_ms=0)
    assert 1 <= len(f.messages) < 10


def test_group_offsets_roundtrip(client, topic):
    client.create_topic(topic, 2)
    group = "g-" + topic
    client.produce_batch(topic, [(b"", b"m")] * 50, partition=1)
    a = client.join_group(group, topic)
    assert a.consumer_id and sorted(a.partitions) == [0, 1]
    with pytest.raises(errors.InvalidOffset):
        client.commit_offset(group, topic, 1, 51)  # past the end of the partition
    client.commit_offset(group, topic, 1, 42)
    assert client.fetch_offset(group, topic, 1) == 42
    client.heartbeat()
    client.leave_group(group, a.consumer_id)
    assert client.fetch_offset(group, topic, 1) == 42


def test_heartbeat_empty_is_keepalive(client):
    assert isinstance(client.heartbeat(), str)


def test_disconnect_answers_then_closes(server):
    c = server.client()
    c.disconnect()
    assert not c.connected
    with pytest.raises(errors.ConnectionClosed):
        c.list_topics()


def test_unknown_type_is_invalid_request(client):
    payload = client.request(99, b"")
    assert p.Reader(payload).i16() == -2
    # the connection still works
    client.list_topics()


def test_bad_magic_gets_protocol_error_and_close(server):
    s = socket.create_connection(server.addr, timeout=30)
    s.sendall(struct.pack("<IIII", 0x12345678, 1, 12, 0))
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert len(data) >= 18
    assert struct.unpack_from("<h", data, 16)[0] == -11


def test_other_clients_unaffected_by_bad_one(server, client):
    bad = socket.create_connection(server.addr, timeout=30)
    bad.sendall(b"\xff" * 64)
    client.list_topics()
    bad.close()


def test_partition_offsets(client, topic):
    client.create_topic(topic, 2)
    client.produce_batch(topic, [(b"", b"x")] * 7, partition=1)
    assert client.partition_offsets(topic, 1) == (0, 7)
    assert client.partition_offsets(topic, 0) == (0, 0)
    with pytest.raises(errors.PartitionNotFound):
        client.partition_offsets(topic, 5)
