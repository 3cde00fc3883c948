# One Dockerfile, three images (targets), one shared build:
#
#   docker build -t zig-matching-engine .                          # default: the matching engine
#   docker build --target stream-processor -t stream-processor .   # the stream server
#   docker build --target coinbase-bridge  -t coinbase-bridge .    # the Coinbase FIX bridge
#
# Every image carries all four binaries (/usr/local/bin/stream-server, matching_engine,
# coinbase-bridge, stream-cli); the targets differ only in their default command, exposed ports
# and health check, so `docker run IMAGE /usr/local/bin/<other program>` works with any of them.
#
# Multi-architecture: `docker buildx build --platform linux/amd64,linux/arm64 .` builds each
# platform natively in its own builder stage (under QEMU emulation for the non-native one, which
# is slow but needs no cross toolchain). TARGETPLATFORM keys the build cache per platform.
#
# The build works with BuildKit and with the classic builder (docker-compose v1 uses the latter),
# so it caches dependencies with a layer of stub sources instead of `RUN --mount=type=cache`.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
ARG TARGETPLATFORM
ARG BUILDPLATFORM
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

RUN echo "building on ${BUILDPLATFORM:-local} for ${TARGETPLATFORM:-local}"

# 1) Dependencies only: the workspace manifests, with every source file replaced by a stub. This
#    layer is rebuilt only when a Cargo.toml or Cargo.lock changes, not on every source edit.
COPY Cargo.toml Cargo.lock ./
COPY crates/stream-proto/Cargo.toml crates/stream-proto/
COPY crates/stream-log/Cargo.toml crates/stream-log/
COPY crates/stream-server/Cargo.toml crates/stream-server/
COPY crates/stream-client/Cargo.toml crates/stream-client/
COPY crates/stream-cli/Cargo.toml crates/stream-cli/
COPY crates/engine-core/Cargo.toml crates/engine-core/
COPY crates/engine-server/Cargo.toml crates/engine-server/
COPY crates/fix/Cargo.toml crates/fix/
COPY crates/coinbase-bridge/Cargo.toml crates/coinbase-bridge/
COPY crates/test-support/Cargo.toml crates/test-support/
COPY crates/process-limits/Cargo.toml crates/process-limits/
COPY crates/cli-support/Cargo.toml crates/cli-support/
COPY crates/kafka-bench/Cargo.toml crates/kafka-bench/
# Stub sources (deploy/docker/stub-sources.sh) stand behind every target the manifests name.
COPY deploy/docker/stub-sources.sh /usr/local/bin/stub-sources
RUN set -eu; \
    stub-sources; \
    cargo build --profile dist --locked --workspace --bins; \
    rm -rf crates

# 2) The real sources. `touch` makes cargo rebuild our crates over the stubs even when the copied
#    files carry older modification times than the stub build.
COPY crates crates
RUN set -eu; \
    find crates -name '*.rs' -exec touch {} +; \
    cargo build --profile dist --locked --workspace --bins; \
    mkdir -p /out; \
    for bin in stream-server matching_engine coinbase-bridge stream-cli; do \
        install -m 0755 "target/dist/$bin" "/out/$bin"; \
    done

# ---------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# tini: PID 1 that forwards SIGTERM/SIGINT to the server (graceful shutdown) and reaps zombies.
# netcat-openbsd: `nc -z` for health checks. ca-certificates: the bridge verifies Coinbase's TLS.
# Versions are not pinned: the slim release's current packages carry its security fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        tini netcat-openbsd ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed, non-root uid/gid so volume ownership is predictable (k8s fsGroup, host bind mounts).
RUN groupadd --system --gid 10001 trader \
    && useradd --system --uid 10001 --gid trader --home-dir /data --shell /usr/sbin/nologin trader \
    && mkdir -p /data \
    && chown trader:trader /data
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
ENV RUST_LOG=info
ENTRYPOINT ["/usr/bin/tini", "--"]

# ---------------------------------------------------------------------------------------------
FROM runtime AS stream-processor
ENV STREAM_PORT=9092 \
    STREAM_BIND=0.0.0.0 \
    STREAM_DATA_DIR=/data
# 9100: Prometheus /metrics (STREAM_METRICS_PORT, `off` to disable).
EXPOSE 9092/tcp 9100/tcp
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["sh", "-c", "nc -z localhost \"${STREAM_PORT:-9092}\" || exit 1"]
CMD ["/usr/local/bin/stream-server"]

# ---------------------------------------------------------------------------------------------
FROM runtime AS coinbase-bridge
# Reads COINBASE_* (and the stream server address) from the environment; no ports of its own.
CMD ["/usr/local/bin/coinbase-bridge"]

# ---------------------------------------------------------------------------------------------
# Last stage = what a plain `docker build .` produces: the matching engine, threaded by default.
# The bare binary is single-threaded unless told otherwise (--threaded or ENGINE_THREADED), so:
#   docker run IMAGE                                   threaded ("dual-processor"), the default
#   docker run -e ENGINE_THREADED=false IMAGE          single-threaded
#   docker run IMAGE /usr/local/bin/matching_engine    single-threaded (replaces this command)
# The shell only expands the variable and then execs the engine, so tini's signals reach it.
FROM runtime AS matching-engine
EXPOSE 1234/tcp 1235/udp 1236/udp
# Healthy when the TCP port accepts connections; with TCP disabled there is nothing to probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["sh", "-c", "[ \"${ENGINE_TCP_ENABLED:-true}\" = false ] || nc -z localhost \"${ENGINE_TCP_PORT:-1234}\" || exit 1"]
CMD ["/bin/sh", "-c", "exec /usr/local/bin/matching_engine --threaded=\"${ENGINE_THREADED:-true}\""]
