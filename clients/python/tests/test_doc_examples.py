"""The Python codec against the worked hex examples of docs/protocol.md.

Those examples are generated from the Rust codec (crates/stream-proto/tests/doc_examples.rs
fails when they drift), so checking the Python encoders and decoders against the same bytes
ties the two implementations of the protocol together.
"""

import pathlib
import re

import pytest

from stream_client import errors
from stream_client import protocol as p

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
BEGIN = "<!-- examples:begin"
END = "<!-- examples:end -->"


def _hex_block(block: str) -> bytes:
    out = bytearray()
    for line in block.strip().splitlines():
        _, _, hexes = line.partition("  ")
        out += bytes.fromhex(hexes)
    return bytes(out)


def _examples():
    text = DOC.read_text()
    section = text[text.index(BEGIN):text.index(END)]
    found = {}
    for chunk in section.split("\n### ")[1:]:
        title = chunk.splitlines()[0].strip()
        blocks = re.findall(r"```\n(.*?)```", chunk, re.S)
        assert len(blocks) in (1, 2), "%s: expected a request and a response block" % title
        # An answer to a header the server refuses is shown without its request.
        found[title] = tuple(_hex_block(b) for b in blocks)

    return found


EXAMPLES = _examples()


def example(prefix: str):
    """(request payload, response payload, request type) of the example titled `prefix...`."""
    matches = [t for t in EXAMPLES if t.startswith(prefix)]
    assert len(matches) == 1, "no single example titled %r in %s: %s" % (prefix, DOC, matches)
    req, resp = EXAMPLES[matches[0]]
    req_type, req_len = p.decode_header(req[:16])
    resp_type, resp_len = p.decode_header(resp[:16])
    assert (req_len, resp_len) == (len(req) - 16, len(resp) - 16)
    assert resp_type == req_type, "a response echoes its request's type"
    return req[16:], resp[16:], req_type


def test_every_example_is_checked_here():
    checked = {"API_VERSIONS", "METADATA", "CREATE_TOPIC", "DELETE_TOPIC", "LIST_TOPICS",
               "PRODUCE", "FETCH", "BATCH_PRODUCE", "FETCH_WAIT", "JOIN_GROUP", "LEAVE_GROUP",
               "COMMIT_OFFSET", "FETCH_OFFSET", "JOIN_GROUP_V2", "GROUP_COMMIT", "HEARTBEAT",
               "DISCONNECT", "A PROTOCOL_ERROR"}
    for title in EXAMPLES:
        name = re.split(r" \(|:| answer", title)[0]
        assert name in checked, "docs/protocol.md has an example this test does not check: " + title


def test_header_only_requests():
    for prefix, req_type in [("API_VERSIONS", p.RequestType.API_VERSIONS),
                             ("METADATA", p.RequestType.METADATA),
                             ("LIST_TOPICS", p.RequestType.LIST_TOPICS),
                             ("DISCONNECT", p.RequestType.DISCONNECT)]:
        req, _, t = example(prefix)
        assert (req, t) == (b"", req_type)
        assert p.frame(t, b"") == p.encode_header(req_type, 0)


def test_api_versions_and_metadata_answers():
    _, resp, _ = example("API_VERSIONS")
    assert p.api_versions(resp) == [(0, 1), (20, 1)]
    _, resp, _ = example("METADATA")
    assert p.metadata(resp) == [("orders", 4)]
    _, resp, _ = example("LIST_TOPICS")
    assert p.list_topics(resp) == ["orders"]


def test_topic_admin():
    req, resp, t = example("CREATE_TOPIC")
    assert t == p.RequestType.CREATE_TOPIC
    assert req == p.create_topic("orders", 4)
    p.status(resp)
    req, resp, t = example("DELETE_TOPIC")
    assert t == p.RequestType.DELETE_TOPIC
    assert req == p.topic_name("gone")
    with pytest.raises(errors.TopicNotFound):
        p.status(resp)


def test_produce_and_fetch():
    req, resp, _ = example("PRODUCE")
    assert req == p.produce("orders", b"k1", b"hi", p.Priority.NORMAL)
    produced = p.produced(resp)
    assert produced.partition == p.partition_for_key(b"k1", 4)

    req, resp, _ = example("FETCH (21)")
    assert req == p.fetch("orders", 0, 0, 10)
    fetched = p.fetched(resp)
    assert fetched.high_watermark == 1
    [m] = fetched.messages
    assert (m.offset, m.timestamp_ms, m.partition, m.priority, m.codec, m.key, m.value) == \
        (0, 1_700_000_000_000, 0, p.Priority.NORMAL, 0, b"k1", b"hi")
    # The record bytes are exactly what the Python encoder writes for the same message.
    assert p.encode_message(0, 1_700_000_000_000, 0, 2, 0, b"k1", b"hi") in resp


def test_batch_produce_and_fetch_wait():
    req, resp, _ = example("BATCH_PRODUCE")
    assert req == p.produce_batch("orders", [(b"", b"a"), (b"", b"b")], partition=1)
    assert p.batch_produced(resp) == [p.Produced(1, 7), p.Produced(1, 8)]

    req, resp, _ = example("FETCH_WAIT")
    assert req == p.fetch_wait("orders", 0, 0, 100, 1 << 20, 500)
    fetched = p.fetched_wait(resp)
    assert [m.value for m in fetched.messages] == [b"hi"]


def test_groups():
    req, resp, _ = example("JOIN_GROUP (30)")
    assert req == p.join_group("g", "orders")
    assert p.joined(resp).consumer_id
    req, resp, _ = example("LEAVE_GROUP")
    assert req == p.leave_group("g", "g-1")
    p.status(resp)
    req, resp, _ = example("COMMIT_OFFSET")
    assert req == p.commit_offset("g", "orders", 0, 42)
    p.status(resp)
    req, resp, _ = example("FETCH_OFFSET")
    assert req == p.fetch_offset("g", "orders", 0)
    assert p.offset(resp) == 42
    req, resp, _ = example("JOIN_GROUP_V2")
    assert req == p.join_group_v2("g", "orders", "", 10_000)
    assert p.joined_v2(resp).generation >= 1
    req, resp, _ = example("GROUP_COMMIT")
    assert req == p.group_commit("g", "g-2", 2, "orders", 2, 5)
    with pytest.raises(errors.IllegalGeneration):
        p.status(resp)
    req, resp, _ = example("HEARTBEAT (40), empty")
    assert req == b""
    p.status(resp)
    req, resp, _ = example("HEARTBEAT (40) with")
    assert req == p.heartbeat("g", "g-1", 2)
    with pytest.raises(errors.RebalanceInProgress):
        p.status(resp)


def test_protocol_error_answer():
    [title] = [t for t in EXAMPLES if t.startswith("A PROTOCOL_ERROR")]
    [resp] = EXAMPLES[title]
    resp_type, length = p.decode_header(resp[:16])
    assert (resp_type, length) == (p.RequestType.LIST_TOPICS, len(resp) - 16)
    with pytest.raises(errors.ProtocolError):
        p.status(resp[16:])
