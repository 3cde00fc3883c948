//! The server: one network I/O thread (a single-threaded tokio runtime) running the TCP and UDP
//! transports, plus either an in-thread engine (single-threaded mode) or the processor threads
//! of [`crate::router`] (threaded mode).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;
use bytes::{Buf, BytesMut};
use engine_core::{ClientId, Engine, InputMsg, OutputMsg, Route, Sink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;

use crate::accept::{accept_loop, ConnSlot};
use crate::config::ServerConfig;
use crate::hub::{Hub, OutState, TcpOut};
use crate::mcast::Multicast;
use crate::msglog::MessageLog;
use crate::router::Router;
use crate::wire::{decode_payload, next_frame, Frame, Proto, FRAME_HEADER, MAX_FRAME};

/// Where matching happens.
enum Matcher {
    /// On the I/O thread.
    Single(Engine),
    /// On processor threads.
    Threaded(Router),
}

/// Routes the in-thread engine's output straight to the hub.
struct HubSink<'a> {
    hub: &'a mut Hub,
    origin: ClientId,
}

impl Sink for HubSink<'_> {
    fn emit(&mut self, msg: &OutputMsg, route: Route) {
        self.hub.deliver(self.origin, msg, route);
    }
}

/// Decoded messages are matched in batches of at most this many (those of every complete
/// frame of one read, or of one burst of datagrams), so that the engine can prefetch ahead.
const BATCH_MAX: usize = 256;

/// How far ahead of the message being matched the engine's order-index bucket is prefetched
/// (`Engine::prefetch`); the orders it names are prefetched half as far ahead
/// (`Engine::prefetch_orders`). The core bench's best distance (docs/performance.md).
pub const PREFETCH_AHEAD: usize = 4;

/// A decoded message waiting in the batch: its client, and whether the order log shows it.
type Queued = (ClientId, InputMsg, bool);

/// State owned by the I/O thread.
pub struct Server {
    hub: Hub,
    matcher: Matcher,
    cancel_on_disconnect: bool,
    parse_errors: u64,
    io_spin: std::time::Duration,
    /// Decoded input not matched yet (see [`BATCH_MAX`]); empty between reads.
    batch: Vec<Queued>,
}

impl Server {
    /// Handles one TCP frame payload or UDP datagram from a client.
    fn handle_payload(&mut self, id: ClientId, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let shown = self.hub.note_proto(id, Proto::detect(payload));
        let mut errors = Vec::new();
        decode_payload(
            payload,
            |msg| {
                self.batch.push((id, msg, shown));
                if self.batch.len() >= BATCH_MAX {
                    self.run_batch();
                }
            },
            |e| errors.push(e),
        );
        for e in errors {
            self.parse_errors += 1;
            // The first 100, then every 1000th: a client streaming garbage cannot flood the log.
            if self.parse_errors > 100 && !self.parse_errors.is_multiple_of(1000) {
                continue;
            }
            tracing::warn!(
                "client {id} ({}): message dropped ({} so far): {e}",
                self.hub
                    .peer(id)
                    .map_or_else(|| "?".to_string(), |p| p.to_string()),
                self.parse_errors
            );
        }
    }

    /// Matches the decoded batch, in order. Single-threaded, the engine prefetches the memory
    /// of the messages a few places ahead while it matches the current one (with large books
    /// those are cache misses: see docs/performance.md); threaded, the processors do so as
    /// they drain their queues.
    fn run_batch(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        for (i, (origin, msg, shown)) in batch.iter().enumerate() {
            if *shown {
                self.hub.log_input(*origin, msg);
            } else {
                self.hub.count_input();
            }
            match &mut self.matcher {
                Matcher::Single(engine) => {
                    if let Some(ahead) = batch.get(i + PREFETCH_AHEAD) {
                        engine.prefetch(&ahead.1);
                    }
                    if let Some(ahead) = batch.get(i + PREFETCH_AHEAD / 2) {
                        engine.prefetch_orders(&ahead.1);
                    }
                    engine.process(
                        *origin,
                        msg,
                        &mut HubSink {
                            hub: &mut self.hub,
                            origin: *origin,
                        },
                    );
                }
                Matcher::Threaded(router) => router.submit(*origin, *msg, &mut self.hub),
            }
        }
        // Keep the allocation for the next batch.
        self.batch = batch;
        self.batch.clear();
    }

    /// Delivers processor output that is ready (threaded mode).
    fn drain(&mut self) {
        if let Matcher::Threaded(router) = &mut self.matcher {
            router.drain(&mut self.hub);
        }
    }

    /// After a batch of input: drain, and while output is still pending poll for it for up to
    /// `io_spin` before going back to the event loop. The answer to a lone order usually comes
    /// back within a few microseconds; waiting for it here saves the processor's cross-thread
    /// wake-up of the runtime (an eventfd write and an epoll round trip).
    fn drain_after_input(&mut self) {
        let Matcher::Threaded(router) = &mut self.matcher else {
            return;
        };
        router.drain(&mut self.hub);
        if self.io_spin.is_zero() || router.idle() {
            return;
        }
        let start = std::time::Instant::now();
        while !router.idle() && start.elapsed() < self.io_spin {
            std::hint::spin_loop();
            router.drain(&mut self.hub);
        }
    }

    /// A client went away: forget it and, when configured, cancel its resting orders.
    fn client_gone(&mut self, id: ClientId) {
        if !self.hub.remove(id) || !self.cancel_on_disconnect {
            return;
        }
        match &mut self.matcher {
            Matcher::Single(engine) => engine.cancel_client_orders(
                id,
                &mut HubSink {
                    hub: &mut self.hub,
                    origin: id,
                },
            ),
            Matcher::Threaded(router) => router.disconnect(id, &mut self.hub),
        }
    }
}

type Shared = Rc<RefCell<Server>>;

/// Runs the server until SIGINT or SIGTERM. Prints one "listening" line per transport with the
/// bound address, then a "ready" line.
pub fn run(cfg: ServerConfig) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build the I/O runtime")?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve(cfg))
}

async fn serve(cfg: ServerConfig) -> anyhow::Result<()> {
    // Handlers first: a signal that arrives right after the ready line must still be graceful.
    let signals = Signals::install()?;
    let wake_io = Arc::new(Notify::new());
    let matcher = if cfg.threaded {
        Matcher::Threaded(Router::start(
            cfg.processors as usize,
            cfg.queue_capacity.max(16),
            std::time::Duration::from_micros(cfg.processor_spin_us),
            wake_io.clone(),
            cfg.engine_config(),
        )?)
    } else {
        Matcher::Single(Engine::new(cfg.engine_config()))
    };
    let server: Shared = Rc::new(RefCell::new(Server {
        hub: Hub::new(
            cfg.client_queue_bytes,
            MessageLog::new(if cfg.quiet { 0 } else { cfg.log_messages }),
        ),
        matcher,
        cancel_on_disconnect: cfg.cancel_on_disconnect,
        parse_errors: 0,
        io_spin: std::time::Duration::from_micros(cfg.io_spin_us),
        batch: Vec::with_capacity(BATCH_MAX),
    }));

    if cfg.tcp_enabled {
        log_connection_capacity(cfg.max_connections);
    }
    if !cfg.tcp_enabled && !cfg.udp_enabled {
        tracing::warn!("both TCP and UDP are disabled: no client can reach this engine");
    }

    if cfg.tcp_enabled {
        let addr = cfg.tcp_addr();
        let bound = crate::listen::tcp(addr).with_context(|| format!("bind TCP {addr}"))?;
        let listener = TcpListener::from_std(bound.socket.into())
            .with_context(|| format!("register TCP listener {addr}"))?;
        tracing::info!(
            "TCP listening on {} (4-byte big-endian length framing)",
            bound.describe
        );
        let server = server.clone();
        tokio::task::spawn_local(accept_loop(
            listener,
            cfg.max_connections,
            move |stream, peer, slot| start_client(stream, peer, slot, &server),
        ));
    }
    if cfg.udp_enabled {
        let addr = cfg.udp_addr();
        let bound = crate::listen::udp(addr).with_context(|| format!("bind UDP {addr}"))?;
        let sock = UdpSocket::from_std(bound.socket.into())
            .with_context(|| format!("register UDP socket {addr}"))?;
        tracing::info!(
            "UDP listening on {} (one message per datagram)",
            bound.describe
        );
        let sock = Rc::new(sock);
        server.borrow_mut().hub.set_udp(sock.clone());
        tokio::task::spawn_local(udp_loop(sock, server.clone()));
    }
    if cfg.mcast_enabled {
        let m = Multicast::open(&cfg)?;
        tracing::info!(
            "multicast market data to {} (for subscribers listening on that group; ttl {}, loopback {}, interface {}, {})",
            m.dest(),
            cfg.mcast_ttl,
            cfg.mcast_loopback,
            cfg.mcast_interface,
            if m.proto() == Proto::Binary {
                "binary"
            } else {
                "csv"
            }
        );
        server.borrow_mut().hub.set_mcast(m);
    }
    if cfg.busy_poll {
        warn_if_spinners_outnumber_cores(&cfg);
        tokio::task::spawn_local(busy_poll_loop(server.clone()));
    }
    if cfg.threaded {
        tokio::task::spawn_local(drain_loop(wake_io, server.clone()));
    }
    tokio::task::spawn_local(log_summary_loop(server.clone()));
    tracing::info!(
        "matching_engine ready: {} mode{}, cancel-on-disconnect {}{}",
        if cfg.threaded {
            "threaded"
        } else {
            "single-threaded"
        },
        if cfg.threaded {
            format!(
                " with {} processor thread{}",
                cfg.processors,
                if cfg.processors == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        },
        if cfg.cancel_on_disconnect {
            "on"
        } else {
            "off"
        },
        if cfg.busy_poll {
            ", busy-polling (the I/O thread uses a whole core)"
        } else {
            ""
        },
    );

    let signal = signals.wait().await;
    tracing::info!("received {signal}, shutting down");
    let mut s = server.borrow_mut();
    s.drain();
    if let Matcher::Threaded(router) = &mut s.matcher {
        router.shutdown();
    }
    tracing::info!("matching_engine stopped");
    Ok(())
}

/// Raises the soft open-files limit to the hard one (so no deployment needs a `ulimit` setting
/// a host may refuse) and says how many TCP clients that leaves room for, warning when
/// `--max-connections` is above it (the accept loop then backs off on EMFILE instead).
fn log_connection_capacity(max_connections: u64) {
    match process_limits::raise_open_files() {
        Ok(limit) => {
            let in_use = process_limits::open_descriptors().unwrap_or(0);
            let room = limit.connections(in_use + 16);
            tracing::info!(
                "{limit}: room for {room} TCP connections (--max-connections {max_connections})"
            );
            if max_connections > room {
                tracing::warn!(
                    "--max-connections {max_connections} (ENGINE_MAX_CONNECTIONS) exceeds the \
                     room for {room} TCP connections the open-files limit leaves: beyond that, \
                     accepts fail (and are retried with a back-off) until clients leave"
                );
            }
        }
        Err(e) => tracing::warn!("cannot read or raise the open-files limit: {e}"),
    }
}

/// SIGTERM and SIGINT handlers.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("install SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("install SIGINT handler")?,
        })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Busy-polling pays off only while every spinning thread has a core of its own: threads that
/// spin on a shared core take turns by timer tick, and the tail latency gets far worse than
/// with sleeping threads. Say so at startup, when the operator can still fix it.
fn warn_if_spinners_outnumber_cores(cfg: &ServerConfig) {
    // The I/O thread always spins; in threaded mode each processor polls its queue too while
    // orders flow.
    let spinners = 1 + if cfg.threaded {
        usize::from(cfg.processors)
    } else {
        0
    };
    match std::thread::available_parallelism() {
        Ok(cores) if cores.get() < spinners => tracing::warn!(
            "busy-polling with {spinners} spinning threads on {cores} CPU cores: they will \
             compete for cores and latency will suffer; give the engine more cores, use fewer \
             --processors, or run without --busy-poll"
        ),
        Ok(_) => {}
        Err(e) => tracing::debug!("cannot tell how many cores are available: {e}"),
    }
}

/// Keeps the I/O thread from ever sleeping. A task that yields makes the current-thread runtime
/// poll its I/O driver with a zero timeout instead of blocking in `epoll_wait`, so socket
/// readiness is picked up on the next turn of the loop rather than after a wake-up; each turn
/// also collects processor output without waiting for their eventfd wake.
async fn busy_poll_loop(server: Shared) {
    loop {
        tokio::task::yield_now().await;
        server.borrow_mut().drain();
    }
}

/// Once a second, the order log's count of the messages it did not show.
async fn log_summary_loop(server: Shared) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        server.borrow_mut().hub.log_summary();
    }
}

async fn drain_loop(wake: Arc<Notify>, server: Shared) {
    loop {
        wake.notified().await;
        server.borrow_mut().drain();
    }
}

fn start_client(stream: TcpStream, peer: SocketAddr, slot: ConnSlot, server: &Shared) {
    // Latency over throughput for every reply; batching comes from the writer taking the whole
    // queued buffer at once.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!("TCP_NODELAY on {peer}: {e}");
    }
    let out = Rc::new(TcpOut::new());
    let id = server.borrow_mut().hub.add_tcp(peer, out.clone());
    // Logged at info once the client sends something (see tcp_reader): a health check's
    // connect-and-close every few seconds would otherwise fill `docker logs`.
    tracing::debug!("client {id} connected from {peer} (TCP)");
    let (rd, wr) = stream.into_split();
    let slot = Rc::new(slot);
    tokio::task::spawn_local(tcp_reader(
        server.clone(),
        id,
        peer,
        rd,
        out.clone(),
        slot.clone(),
    ));
    tokio::task::spawn_local(tcp_writer(id, peer, wr, out, slot));
}

async fn tcp_reader(
    server: Shared,
    id: ClientId,
    peer: SocketAddr,
    mut rd: OwnedReadHalf,
    out: Rc<TcpOut>,
    _slot: Rc<ConnSlot>,
) {
    // Start small (idle connections are cheap) and grow the read size while reads fill it, up
    // to one maximal frame, so a pipelining client is served with few, large reads.
    let mut read_size = 4096;
    let mut buf = BytesMut::with_capacity(read_size);
    let mut announced = false;
    let reason: String = 'conn: loop {
        if buf.capacity() - buf.len() < read_size / 2 {
            buf.reserve(read_size);
        }
        let spare = buf.capacity() - buf.len();
        let n = tokio::select! {
            biased;
            _ = out.wake_reader.notified() => {
                if out.state.get() == OutState::Aborted {
                    break 'conn "dropped by the server".to_string();
                }
                continue;
            }
            r = rd.read_buf(&mut buf) => r,
        };
        match n {
            Ok(0) => {
                break if buf.is_empty() {
                    "disconnected".to_string()
                } else {
                    format!(
                        "disconnected mid-frame ({} bytes of an incomplete frame discarded)",
                        buf.len()
                    )
                };
            }
            Ok(n) => {
                if !announced {
                    announced = true;
                    tracing::info!("client {id} connected from {peer} (TCP)");
                }
                if n == spare {
                    read_size = (read_size * 2).min(FRAME_HEADER + MAX_FRAME);
                }
                if let Err(len) = process_frames(&server, id, &mut buf) {
                    break format!(
                        "protocol error: frame length {len} exceeds {MAX_FRAME}; dropping the client"
                    );
                }
                // Let this client's writer (and everyone else) run before reading more: a
                // pipelining client whose input is already buffered in the kernel would
                // otherwise be read to the end first, its output piling up unwritten, and a
                // consumer that stopped reading would only be noticed after all of it. (Small
                // answers, e.g. to a lone order, are written without this detour.)
                if out.buf.borrow().len() >= YIELD_AFTER_QUEUED {
                    tokio::task::yield_now().await;
                }
            }
            Err(e) => break format!("read error: {e}"),
        }
    };
    let aborted = out.state.get() == OutState::Aborted;
    if aborted || reason.starts_with("protocol error") {
        tracing::warn!("client {id} ({peer}) {reason}");
        out.set_state(OutState::Aborted);
    } else {
        if announced {
            tracing::info!("client {id} ({peer}) {reason}");
        } else {
            tracing::debug!("client {id} ({peer}) closed without sending anything (a probe)");
        }
        out.set_state(OutState::Finishing);
    }
    server.borrow_mut().client_gone(id);
}

/// Output bytes queued for a TCP client after which its reader yields to the writer.
const YIELD_AFTER_QUEUED: usize = 16 * 1024;

/// Handles every complete frame at the start of `buf` and removes them; `Err(length)` when a
/// frame header announces more than the maximum (the stream cannot be resynchronised).
fn process_frames(server: &Shared, id: ClientId, buf: &mut BytesMut) -> Result<(), u32> {
    let mut s = server.borrow_mut();
    let mut off = 0;
    let result = loop {
        match next_frame(&buf[off..]) {
            Frame::Complete(len) => {
                let start = off + FRAME_HEADER;
                s.handle_payload(id, &buf[start..start + len]);
                off = start + len;
            }
            Frame::Partial => break Ok(()),
            Frame::TooLarge(len) => break Err(len),
        }
    };
    buf.advance(off);
    s.run_batch();
    s.drain_after_input();
    result
}

async fn tcp_writer(
    id: ClientId,
    peer: SocketAddr,
    mut wr: OwnedWriteHalf,
    out: Rc<TcpOut>,
    _slot: Rc<ConnSlot>,
) {
    let mut batch: Vec<u8> = Vec::with_capacity(4096);
    loop {
        out.wake_writer.notified().await;
        loop {
            if out.state.get() == OutState::Aborted {
                return;
            }
            // Swap buffers so the I/O thread keeps queueing while this batch is written.
            std::mem::swap(&mut batch, &mut *out.buf.borrow_mut());
            if batch.is_empty() {
                break;
            }
            // A client that stops reading must not pin this task forever: an abort (slow
            // consumer, server shutdown of the client) interrupts a blocked write.
            // Try without waiting first: the socket usually takes the whole batch.
            let mut done = 0;
            while done < batch.len() {
                match wr.try_write(&batch[done..]) {
                    Ok(n) => done += n,
                    Err(_) => break,
                }
            }
            out.write_pending.set(done < batch.len());
            let written = tokio::select! {
                r = wr.write_all(&batch[done..]) => r,
                _ = aborted(&out) => return,
            };
            out.write_pending.set(false);
            if let Err(e) = written {
                tracing::info!("client {id} ({peer}) write failed: {e}");
                out.set_state(OutState::Aborted);
                return;
            }
            batch.clear();
        }
        if out.state.get() == OutState::Finishing {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// Resolves once the client's output is aborted.
async fn aborted(out: &TcpOut) {
    while out.state.get() != OutState::Aborted {
        out.wake_writer.notified().await;
    }
}

async fn udp_loop(sock: Rc<UdpSocket>, server: Shared) {
    // A UDP message can be at most one datagram; 64 KiB covers every datagram size.
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // e.g. ICMP port unreachable from an earlier reply: not fatal for the listener.
                tracing::debug!("UDP receive: {e}");
                continue;
            }
        };
        let mut s = server.borrow_mut();
        let id = s.hub.udp_client(peer);
        s.handle_payload(id, &buf[..n]);
        // Take whatever else already arrived before delivering output, to batch under load.
        for _ in 0..64 {
            match sock.try_recv_from(&mut buf) {
                Ok((n, peer)) => {
                    let id = s.hub.udp_client(peer);
                    s.handle_payload(id, &buf[..n]);
                }
                Err(_) => break,
            }
        }
        s.run_batch();
        s.drain_after_input();
    }
}
