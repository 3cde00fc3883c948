"""Throughput and latency of the pure-Python client against a running stream-server.

    python3 clients/python/tools/bench.py --addr 127.0.0.1:9092
"""

import argparse
import os
import time

from stream_client import StreamClient


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default=os.environ.get("STREAM_ADDR", "127.0.0.1:9092"))
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--samples", type=int, default=5_000)
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    value = b"x" * a.size
    topic = "py-bench-%d" % os.getpid()
    with StreamClient(host, int(port)) as c:
        c.create_topic(topic, 1)

        t0 = time.perf_counter()
        batch = [(b"", value)] * 5000
        for _ in range(a.messages // len(batch)):
            c.produce_batch(topic, batch, partition=0)
        dt = time.perf_counter() - t0
        n = a.messages // len(batch) * len(batch)
        print("%-36s %d msgs in %.2f s = %.0f msgs/s" % ("produce_batch (5000/request)", n, dt, n / dt))

        m = a.messages // 10
        t0 = time.perf_counter()
        for _ in range(m // 1000):
            c.produce_many(topic, [(b"", value)] * 1000)
        dt = time.perf_counter() - t0
        print("%-36s %d msgs in %.2f s = %.0f msgs/s" % ("produce_many (1000 pipelined)", m, dt, m / dt))

        t0 = time.perf_counter()
        pos, total = 0, 0
        hw = c.partition_offsets(topic, 0)[1]
        while pos < hw:
            f = c.fetch_wait(topic, 0, pos, max_messages=10000, max_bytes=4 << 20, max_wait_ms=0)
            total += len(f.messages)
            pos = f.messages[-1].offset + 1
        dt = time.perf_counter() - t0
        print("%-36s %d msgs in %.2f s = %.0f msgs/s" % ("fetch_wait (CRC-verified)", total, dt, total / dt))

        lat = []
        for _ in range(a.samples):
            t = time.perf_counter()
            c.produce(topic, b"", value)
            lat.append((time.perf_counter() - t) * 1e6)
        lat.sort()
        print("%-36s p50 %.0f us  p99 %.0f us  (%d samples)" % (
            "produce round trip (1 in flight)", lat[len(lat) // 2], lat[int(len(lat) * 0.99)],
            len(lat)))
        c.delete_topic(topic)


if __name__ == "__main__":
    main()
