//! The client table and output routing: turns the engine's (message, route) pairs into bytes
//! queued for TCP clients, datagrams to UDP peers, and multicast market data.
//!
//! Everything here runs on the network I/O thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;

use engine_core::{ClientId, OutputMsg, Route};
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use crate::mcast::Multicast;
use crate::msglog::MessageLog;
use crate::wire::{encode, encode_framed, Proto};

/// Life cycle of a TCP client's output side.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OutState {
    /// Normal operation.
    Open,
    /// The client went away or stopped sending: write what is queued, then close.
    Finishing,
    /// Drop the connection now without writing more (slow consumer, protocol violation).
    Aborted,
}

/// The bounded output queue of one TCP client, shared between the I/O thread's routing code
/// and the client's writer task.
pub struct TcpOut {
    /// Framed bytes waiting to be written.
    pub buf: RefCell<Vec<u8>>,
    /// Wakes the writer task (data queued or state changed).
    pub wake_writer: Notify,
    /// Wakes the reader task when the server decides to drop the client.
    pub wake_reader: Notify,
    /// Current state.
    pub state: Cell<OutState>,
    /// True while the writer waits for the socket to accept a batch: only then does queued
    /// output mean the client is not keeping up (otherwise the writer simply has not run yet,
    /// e.g. during a large flush).
    pub write_pending: Cell<bool>,
}

impl TcpOut {
    /// A fresh open queue.
    pub fn new() -> TcpOut {
        TcpOut {
            buf: RefCell::new(Vec::with_capacity(4096)),
            wake_writer: Notify::new(),
            wake_reader: Notify::new(),
            state: Cell::new(OutState::Open),
            write_pending: Cell::new(false),
        }
    }

    /// Moves to `state` (never back to `Open`, never from `Aborted`) and wakes both tasks.
    pub fn set_state(&self, state: OutState) {
        if self.state.get() == OutState::Aborted {
            return;
        }
        self.state.set(state);
        self.wake_writer.notify_one();
        self.wake_reader.notify_one();
    }
}

impl Default for TcpOut {
    fn default() -> Self {
        TcpOut::new()
    }
}

/// UDP has no disconnect, so every sender address ever seen would stay registered: beyond this
/// many, the oldest is forgotten (trades for its resting orders then reach it only through
/// multicast). Bounds memory against a flood of spoofed or ephemeral source ports.
pub const MAX_UDP_PEERS: usize = 65_536;

/// How to reach a client.
enum Transport {
    Tcp(Rc<TcpOut>),
    Udp(SocketAddr),
}

struct Client {
    /// The protocol its first message used; it is answered in it.
    proto: Option<Proto>,
    transport: Transport,
    peer: SocketAddr,
    /// Messages to and from this client shown in the order log so far.
    logged: u32,
}

/// Clients and the output side of every transport.
pub struct Hub {
    clients: FxHashMap<ClientId, Client>,
    udp_peers: FxHashMap<SocketAddr, ClientId>,
    /// UDP peers in registration order, to forget the oldest beyond [`MAX_UDP_PEERS`].
    udp_order: VecDeque<(SocketAddr, ClientId)>,
    next_id: ClientId,
    udp: Option<Rc<tokio::net::UdpSocket>>,
    mcast: Option<Multicast>,
    scratch: Vec<u8>,
    queue_limit: usize,
    /// UDP replies that could not be sent (counted, logged sparsely).
    udp_send_errors: u64,
    msglog: MessageLog,
}

impl Hub {
    /// An empty hub; `queue_limit` bounds each TCP client's queued output bytes, and `msglog`
    /// decides which messages are logged.
    pub fn new(queue_limit: usize, msglog: MessageLog) -> Hub {
        Hub {
            clients: FxHashMap::default(),
            udp_peers: FxHashMap::default(),
            udp_order: VecDeque::new(),
            // 0 is what single-client users of engine-core pass; start real clients at 1.
            next_id: 1,
            udp: None,
            mcast: None,
            scratch: Vec::with_capacity(256),
            queue_limit,
            udp_send_errors: 0,
            msglog,
        }
    }

    /// Sets the UDP socket used for replies.
    pub fn set_udp(&mut self, sock: Rc<tokio::net::UdpSocket>) {
        self.udp = Some(sock);
    }

    /// Sets the multicast publisher.
    pub fn set_mcast(&mut self, mcast: Multicast) {
        self.mcast = Some(mcast);
    }

    fn alloc_id(&mut self) -> ClientId {
        let id = self.next_id;
        // Ids are never reused while the process lives (u32 wraps only after 4 billion clients).
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Registers a TCP connection.
    pub fn add_tcp(&mut self, peer: SocketAddr, out: Rc<TcpOut>) -> ClientId {
        let id = self.alloc_id();
        self.clients.insert(
            id,
            Client {
                proto: None,
                transport: Transport::Tcp(out),
                peer,
                logged: 0,
            },
        );
        id
    }

    /// The client id of a UDP peer address, registering it on first sight.
    pub fn udp_client(&mut self, peer: SocketAddr) -> ClientId {
        if let Some(&id) = self.udp_peers.get(&peer) {
            return id;
        }
        let id = self.alloc_id();
        self.udp_peers.insert(peer, id);
        self.udp_order.push_back((peer, id));
        if self.udp_order.len() > MAX_UDP_PEERS {
            if let Some((old, old_id)) = self.udp_order.pop_front() {
                if self.udp_peers.get(&old) == Some(&old_id) {
                    self.udp_peers.remove(&old);
                    self.clients.remove(&old_id);
                }
            }
        }
        self.clients.insert(
            id,
            Client {
                proto: None,
                transport: Transport::Udp(peer),
                peer,
                logged: 0,
            },
        );
        id
    }

    /// Records the protocol of a client's first message.
    /// Also tells whether the order log still shows this client's messages, so that the
    /// messages of a client past its budget are only counted, without a lookup each.
    pub fn note_proto(&mut self, id: ClientId, proto: Proto) -> bool {
        match self.clients.get_mut(&id) {
            Some(c) => {
                c.proto.get_or_insert(proto);
                self.msglog.shows(c.logged)
            }
            None => false,
        }
    }

    /// Removes a client; true when it was present (so cancel-on-disconnect runs once).
    pub fn remove(&mut self, id: ClientId) -> bool {
        match self.clients.remove(&id) {
            Some(c) => {
                if let Transport::Udp(peer) = c.transport {
                    self.udp_peers.remove(&peer);
                }
                true
            }
            None => false,
        }
    }

    /// Shows a client's message in the order log (within its budget) or counts it.
    pub fn log_input(&mut self, id: ClientId, msg: &engine_core::InputMsg) {
        if let Some(c) = self.clients.get_mut(&id) {
            self.msglog.input(id, c.peer, &mut c.logged, msg);
        }
    }

    /// Counts a message of a client the order log no longer shows ([`Hub::note_proto`] said).
    pub fn count_input(&mut self) {
        self.msglog.count_input();
    }

    /// The order log's once-a-second summary of what it did not show.
    pub fn log_summary(&mut self) {
        self.msglog.summary();
    }

    /// The peer address of a client (for log lines).
    pub fn peer(&self, id: ClientId) -> Option<SocketAddr> {
        self.clients.get(&id).map(|c| c.peer)
    }

    /// Routes one output message produced while processing a message from `origin`.
    pub fn deliver(&mut self, origin: ClientId, msg: &OutputMsg, route: Route) {
        match route {
            Route::Origin => self.send_to(origin, msg),
            Route::Client(c) => self.send_to(c, msg),
            Route::Trade { buyer, seller } => {
                self.send_to(buyer, msg);
                if seller != buyer {
                    self.send_to(seller, msg);
                }
                self.publish(msg);
            }
            Route::MarketData => {
                self.send_to(origin, msg);
                self.publish(msg);
            }
        }
    }

    fn publish(&mut self, msg: &OutputMsg) {
        if let Some(m) = &mut self.mcast {
            m.publish(msg);
        }
    }

    /// Sends to one client; unknown (departed) clients are skipped.
    pub fn send_to(&mut self, id: ClientId, msg: &OutputMsg) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        self.msglog.output(id, client.peer, &mut client.logged, msg);
        let proto = client.proto.unwrap_or(Proto::Csv);
        match &client.transport {
            Transport::Tcp(out) => {
                if out.state.get() != OutState::Open {
                    return;
                }
                let mut buf = out.buf.borrow_mut();
                let was_empty = buf.is_empty();
                encode_framed(proto, msg, &mut buf);
                if buf.len() > self.queue_limit && out.write_pending.get() {
                    buf.clear();
                    drop(buf);
                    tracing::warn!(
                        "client {id} ({}) disconnected: output queue over {} bytes (slow consumer)",
                        client.peer,
                        self.queue_limit
                    );
                    out.set_state(OutState::Aborted);
                } else if was_empty {
                    // One wake per batch: the writer takes everything queued in one write.
                    out.wake_writer.notify_one();
                }
            }
            Transport::Udp(peer) => {
                let Some(sock) = &self.udp else { return };
                self.scratch.clear();
                encode(proto, msg, &mut self.scratch);
                if let Err(e) = sock.try_send_to(&self.scratch, *peer) {
                    self.udp_send_errors += 1;
                    if self.udp_send_errors == 1 || self.udp_send_errors.is_multiple_of(1024) {
                        tracing::warn!(
                            "UDP reply to {peer} failed ({} so far): {e}",
                            self.udp_send_errors
                        );
                    }
                }
            }
        }
    }
}

/// The threaded router's output goes to the clients through the hub, like the in-thread
/// engine's.
impl crate::router::Deliver for Hub {
    fn deliver(&mut self, origin: ClientId, msg: &OutputMsg, route: Route) {
        Hub::deliver(self, origin, msg, route);
    }
}
