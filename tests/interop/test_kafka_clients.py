"""Real Kafka clients against stream-server's Kafka listener (docs/kafka.md): kcat (Debian's,
on librdkafka), confluent-kafka (PyPI, bundling its own librdkafka) and kafka-python (PyPI,
pure Python), and stream-cli next to them over the same port, byte for byte."""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from interop_support import Process, binary

confluent_kafka = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # noqa: E402

KCAT = shutil.which("kcat")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """stream-server on a fixed port, so that it can be restarted where clients expect it."""

    def __init__(self, data):
        self.exe = binary("STREAM_SERVER_BIN", "stream-server")
        self.data = data
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.proc = None
        self.start()

    def start(self):
        self.proc = Process(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--metrics-port", "off",
             "--data-dir", str(self.data), "--advertised-host", "127.0.0.1"]
        )
        self.proc.wait_for(r"listening on")

    def restart(self):
        self.proc.stop()
        self.start()


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "stream-data"
    data.mkdir()
    s = Server(data)
    try:
        yield s
    finally:
        s.proc.stop()


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(addr: str, topic: str, partitions: int):
    admin = AdminClient({"bootstrap.servers": addr})
    for _, f in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).items():
        f.result(30)


def kcat(*args, input_bytes=None, timeout=60):
    if KCAT is None:
        pytest.fail("kcat is not installed (scripts/install-test-deps installs it)")
    r = subprocess.run([KCAT, *args], input=input_bytes, capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"kcat {args}: {r.stderr.decode()}"
    return r.stdout


# ---- kcat -----------------------------------------------------------------------------------


def test_kcat_lists_brokers_and_topics(server):
    topic = topic_name("meta")
    create(server.addr, topic, 3)
    out = kcat("-b", server.addr, "-L").decode()
    assert f"broker 0 at 127.0.0.1:{server.port}" in out
    assert re.search(rf'topic "{topic}" with 3 partitions', out), out


def test_kcat_produces_keys_from_a_file_and_consumes_by_offset(server, tmp_path):
    topic = topic_name("keys")
    create(server.addr, topic, 1)
    lines = tmp_path / "in.txt"
    lines.write_text("k1:first\nk2:second\n:no key\nk3:third\n")
    kcat("-b", server.addr, "-P", "-t", topic, "-K:", "-l", str(lines))
    out = kcat("-b", server.addr, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k|%s|%o\n")
    assert out.decode().splitlines() == ["k1|first|0", "k2|second|1", "|no key|2", "k3|third|3"]
    out = kcat("-b", server.addr, "-C", "-t", topic, "-o", "2", "-e", "-f", "%s\n")
    assert out.decode().splitlines() == ["no key", "third"]
    out = kcat("-b", server.addr, "-C", "-t", topic, "-o", "-1", "-e", "-f", "%s\n")
    assert out.decode().splitlines() == ["third"]


def test_kcat_consumes_from_a_timestamp(server):
    topic = topic_name("time")
    create(server.addr, topic, 1)
    p = Producer({"bootstrap.servers": server.addr, "acks": "all"})
    for i, ts in enumerate([1_000_000, 2_000_000, 3_000_000, 4_000_000]):
        p.produce(topic, value=b"at-%d" % i, timestamp=ts)
        p.flush(30)
    out = kcat("-b", server.addr, "-C", "-t", topic, "-o", "s@2500000", "-e", "-f", "%s@%T\n")
    assert out.decode().splitlines() == ["at-2@3000000", "at-3@4000000"]


def group_assignments(proc: Process) -> set:
    """The partitions a kcat -G consumer holds now, from its last rebalance line."""
    rx = re.compile(r"rebalanced \(memberid [^)]*\): assigned: (.*)$")
    assigned = None
    for line in proc.log().splitlines():
        if "revoked" in line:
            assigned = set()
        m = rx.search(line)
        if m:
            assigned = set(int(p) for p in re.findall(r"\[(\d+)\]", m.group(1)))
    return assigned or set()


def wait_until(cond, what: str, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_kcat_group_members_rebalance_when_a_third_joins(server):
    topic = topic_name("grp")
    create(server.addr, topic, 6)
    group = topic_name("g")
    consumers = []
    try:
        def join():
            p = Process([KCAT, "-u", "-b", server.addr, "-G", group, topic, "-f", "MSG %p %s\n",
                         "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000",
                         "-X", "heartbeat.interval.ms=500"])
            consumers.append(p)
            return p

        def settled(n):
            held = [group_assignments(c) for c in consumers[:n]]
            covered = set().union(*held)
            return all(held) and covered == set(range(6)) and sum(map(len, held)) == 6

        join(), join()
        wait_until(lambda: settled(2), "two members to share six partitions")
        join()
        wait_until(lambda: settled(3), "three members to share six partitions")
        # And what is produced now reaches the group exactly once.
        kcat("-b", server.addr, "-P", "-t", topic, "-k", "k",
             input_bytes=b"\n".join(b"m%d" % i for i in range(30)) + b"\n")
        wait_until(
            lambda: sum(len([l for l in c.log().splitlines() if l.startswith("MSG ")]) for c in consumers) >= 30,
            "the group to read thirty messages",
        )
        got = sorted(l.split()[2] for c in consumers for l in c.log().splitlines() if l.startswith("MSG "))
        assert got == sorted("m%d" % i for i in range(30))
    finally:
        for c in consumers:
            c.stop()


# ---- confluent-kafka (its own librdkafka) ---------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_idempotent_producer_with_acks_all(server, codec):
    topic = topic_name(f"idem-{codec}")
    create(server.addr, topic, 3)
    p = Producer({"bootstrap.servers": server.addr, "acks": "all", "enable.idempotence": True,
                  "compression.type": codec, "linger.ms": 5})
    failures = []
    for i in range(2000):
        p.produce(topic, key=b"k%d" % (i % 11), value=b"value-%d" % i,
                  on_delivery=lambda err, msg: failures.append(err) if err else None)
    assert p.flush(60) == 0
    assert failures == []
    c = Consumer({"bootstrap.servers": server.addr, "group.id": topic, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, i, 0) for i in range(3)])
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < 2000 and time.monotonic() < deadline:
        for m in c.consume(1000, 1.0):
            assert m.error() is None, m.error()
            seen.append(m.value())
    c.close()
    assert sorted(seen) == sorted(b"value-%d" % i for i in range(2000)), "each exactly once"


def consume_and_commit(addr, topic, group, n):
    """A group member that reads n messages, committing each, and returns their values; then
    it vanishes without leaving the group (as a killed process does)."""
    c = Consumer({"bootstrap.servers": addr, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m.value())
        c.commit(message=m, asynchronous=False)
    return got


def test_confluent_group_resumes_after_its_last_commit_across_a_server_restart(server, tmp_path):
    topic = topic_name("resume")
    create(server.addr, topic, 1)
    p = Producer({"bootstrap.servers": server.addr, "acks": "all"})
    for i in range(100):
        p.produce(topic, value=b"%03d" % i)
    assert p.flush(30) == 0
    # The first member runs in a child process that is killed after 40 commits.
    script = tmp_path / "member.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
        "from test_kafka_clients import consume_and_commit\n"
        f"got = consume_and_commit({server.addr!r}, {topic!r}, {topic!r}, 40)\n"
        "print('LAST', got[-1].decode(), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    member = subprocess.run(["python3", str(script)], capture_output=True, text=True, timeout=120)
    assert "LAST 039" in member.stdout, member.stdout + member.stderr
    server.restart()
    got = consume_and_commit(server.addr, topic, topic, 60)
    assert got[0] == b"040", "resumes exactly after the last commit"
    assert got == [b"%03d" % i for i in range(40, 100)]


def test_confluent_admin_creates_and_deletes_topics(server):
    admin = AdminClient({"bootstrap.servers": server.addr})
    topic = topic_name("admin")
    for _, f in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).items():
        f.result(30)
    assert len(admin.list_topics(timeout=10).topics[topic].partitions) == 2
    with pytest.raises(confluent_kafka.KafkaException, match="TOPIC_ALREADY_EXISTS"):
        for _, f in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).items():
            f.result(30)
    with pytest.raises(confluent_kafka.KafkaException, match="INVALID_REPLICATION_FACTOR"):
        for _, f in admin.create_topics([NewTopic(topic + "x", num_partitions=1, replication_factor=3)]).items():
            f.result(30)
    # Growing a topic: to 5 partitions, then a refused "grow" to fewer.
    for _, f in admin.create_partitions([NewPartitions(topic, 5)]).items():
        f.result(30)
    assert len(admin.list_topics(timeout=10).topics[topic].partitions) == 5
    with pytest.raises(confluent_kafka.KafkaException, match="INVALID_PARTITIONS"):
        for _, f in admin.create_partitions([NewPartitions(topic, 3)]).items():
            f.result(30)
    p = Producer({"bootstrap.servers": server.addr, "acks": "all"})
    p.produce(topic, value=b"on the new partition", partition=4)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": server.addr, "group.id": topic, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 4, 0)])
    m = c.poll(30)
    assert m is not None and m.error() is None and m.value() == b"on the new partition"
    c.close()
    for _, f in admin.delete_topics([topic]).items():
        f.result(30)
    assert topic not in admin.list_topics(timeout=10).topics


# ---- kafka-python ---------------------------------------------------------------------------


def test_kafka_python_produce_consume_group_and_admin(server):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic

    topic = topic_name("kp")
    admin = KafkaAdminClient(bootstrap_servers=server.addr)
    admin.create_topics([KNewTopic(topic, 2, 1)])
    assert topic in admin.list_topics()
    producer = KafkaProducer(bootstrap_servers=server.addr, acks="all")
    for i in range(200):
        producer.send(topic, key=b"k%d" % (i % 5), value=b"v%d" % i)
    producer.flush(30)
    consumer = KafkaConsumer(topic, bootstrap_servers=server.addr, group_id=topic,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=10_000)
    values = []
    for m in consumer:
        values.append(m.value)
        if len(values) == 200:
            break
    consumer.commit()
    consumer.close()
    assert sorted(values) == sorted(b"v%d" % i for i in range(200))
    offsets = admin.list_group_offsets(topic)
    # kafka-python 3 answers {group: {TopicPartition: OffsetAndMetadata}}.
    assert sum(o.offset for o in offsets[topic].values()) == 200, offsets
    listed = admin.list_groups()
    assert any(topic in str(g) for g in listed), listed
    described = admin.describe_groups([topic])
    assert topic in str(described), described
    admin.delete_topics([topic])
    assert topic not in admin.list_topics()


# ---- the same port, both protocols ----------------------------------------------------------


def test_stream_cli_and_kcat_see_each_others_messages_byte_for_byte(server):
    cli = binary("STREAM_CLI_BIN", "stream-cli")
    topic = topic_name("cross")
    create(server.addr, topic, 1)
    env = {**os.environ, "STREAM_ADDR": server.addr}
    # stream-cli reads `key<TAB>value` or a bare value per line.
    subprocess.run([cli, "produce", topic], input="key0\tplain\nno key here\n", text=True, env=env,
                   check=True, capture_output=True)
    out = kcat("-b", server.addr, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k=%s|%o\n").decode()
    assert out.splitlines() == ["key0=plain|0", "=no key here|1"]
    values = ["ünïcödé ✓", "x" * 5000, "tabs\tinside"]
    kcat("-b", server.addr, "-P", "-t", topic, "-k", "kc", input_bytes="\n".join(values).encode() + b"\n")
    out = subprocess.run([cli, "--json", "consume", topic, "--offset", "2"], env=env, check=True,
                         capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [(r["key"], r["value"], r["offset"]) for r in rows] == [
        ("kc", v, 2 + i) for i, v in enumerate(values)
    ]
