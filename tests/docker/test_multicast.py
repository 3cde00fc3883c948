"""Multicast market data between two containers: the engine image publishing (the guide's
ENGINE_MCAST_ENABLED=true) and a second container of the same image subscribing with
`matching_engine subscribe`, on an internal Docker network (`--internal`: nothing reaches
beyond it). Docker drops traffic to addresses outside an internal network's subnet, multicast
included, so the test lets multicast through on that one bridge (in the DOCKER-USER chain,
Docker's place for such rules) and removes the rule afterwards; docs/operations.md says so."""

from __future__ import annotations

import pytest

from docker_support import in_guide, logs, sh, wait_log

NETWORK = "md-test"
BRIDGE = "mdtest0"
RULE = f"DOCKER-USER -i {BRIDGE} -o {BRIDGE} -d 224.0.0.0/4 -j ACCEPT"


@pytest.fixture
def internal_network(docker):
    sh(f"docker network create --internal -o com.docker.network.bridge.name={BRIDGE} {NETWORK}")
    sh(f"iptables -I {RULE}")
    try:
        yield NETWORK
    finally:
        sh(f"iptables -D {RULE}", check=False)
        sh("docker rm -f md-subscriber matching-engine", check=False)
        sh(f"docker network rm {NETWORK}", check=False)


def test_feed_reaches_a_subscriber_container_in_order(engine_image, internal_network):
    in_guide("matching-engine-docker.md", "-e ENGINE_MCAST_ENABLED=true")
    sh(f"docker run -d --name matching-engine --network {internal_network} "
       "-e ENGINE_MCAST_ENABLED=true -e ENGINE_MCAST_GROUP=239.255.0.1 zig-matching-engine")
    wait_log("matching-engine", "matching_engine ready")
    assert "multicast market data to 239.255.0.1:1236" in logs("matching-engine")
    sh(f"docker run -d --name md-subscriber --network {internal_network} zig-matching-engine "
       "/usr/local/bin/matching_engine subscribe --count 5 --timeout-ms 60000")
    wait_log("md-subscriber", "subscribed to 239.255.0.1:1236")
    # Orders from inside the engine's container (the internal network has no way in).
    for line in ("N, 1, IBM, 10, 100, B, 1", "N, 2, IBM, 10, 60, S, 1",
                 "N, 3, IBM, 11, 5, S, 1", "C, 1, 1, IBM"):
        sh(f"docker exec matching-engine sh -c 'echo \"{line}\" | nc -u -w1 localhost 1235'")
    assert sh("docker wait md-subscriber", timeout=90).stdout.strip() == "0", logs("md-subscriber")
    r = sh("docker logs md-subscriber")
    assert r.stdout.splitlines() == [
        "1 B, IBM, B, 10, 100",
        "2 T, IBM, 1, 1, 2, 1, 10, 60",
        "3 B, IBM, B, 10, 40",
        "4 B, IBM, S, 11, 5",
        "5 B, IBM, B, -, -",
    ], r.stdout + r.stderr
    assert "seq 1..=5, 0 gaps" in r.stderr, r.stderr
