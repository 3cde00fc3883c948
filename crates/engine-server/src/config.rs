//! Server configuration: the spec's `ENGINE_*` environment variables and matching flags.
//!
//! Precedence: a command-line flag wins over its environment variable, which wins over the
//! built-in default (clap's `env` feature gives exactly this order).
//!
//! Threading default: the spec lists `ENGINE_THREADED=true` as the *deployment* default, while the
//! deployment guide says that running `/usr/local/bin/matching_engine` without `--threaded` in the
//! image gives single-threaded mode. Both hold with this rule: the bare binary (no flag, no
//! variable) is single-threaded; `--threaded` (or `--threaded=true|false`) and `ENGINE_THREADED`
//! choose explicitly; the image's default command passes `--threaded` (see
//! docs/matching-engine.md, "Threading mode selection").

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::{ArgAction, Args};

/// Default multicast market-data group (`--mcast-group`; also `subscribe --group`).
pub const DEFAULT_MCAST_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 0, 1);

/// Default multicast port (`--mcast-port`; also `subscribe --port`).
pub const DEFAULT_MCAST_PORT: u16 = 1236;

/// Default multicast interface: the kernel's choice by route (`--mcast-interface`; also
/// `subscribe --interface`).
pub const DEFAULT_MCAST_INTERFACE: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

/// Default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// Everything the server needs to start.
#[derive(Args, Debug, Clone)]
pub struct ServerConfig {
    /// Threaded mode: network I/O on one thread, matching on `--processors` threads. Without the
    /// flag and without ENGINE_THREADED the server runs single-threaded.
    #[arg(
        long,
        env = "ENGINE_THREADED",
        value_parser = cli_support::bool_value(),
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub threaded: bool,

    /// Number of processor (matching) threads in threaded mode; each symbol always lands on the
    /// same one.
    #[arg(long, env = "ENGINE_PROCESSORS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub processors: u16,

    /// Address the TCP and UDP listeners bind to.
    #[arg(long, env = "ENGINE_BIND", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED),
          value_parser = cli_support::ip_or_host)]
    pub bind: IpAddr,

    /// Enable the TCP transport.
    #[arg(long, env = "ENGINE_TCP_ENABLED", value_parser = cli_support::bool_value(),
          action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "true")]
    pub tcp_enabled: bool,

    /// TCP port (0 picks a free one; the startup log prints the bound address).
    #[arg(long, env = "ENGINE_TCP_PORT", default_value_t = 1234)]
    pub tcp_port: u16,

    /// Enable the UDP transport.
    #[arg(long, env = "ENGINE_UDP_ENABLED", value_parser = cli_support::bool_value(),
          action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "true")]
    pub udp_enabled: bool,

    /// UDP port (0 picks a free one).
    #[arg(long, env = "ENGINE_UDP_PORT", default_value_t = 1235)]
    pub udp_port: u16,

    /// Publish trades and top-of-book changes on the multicast market-data feed.
    #[arg(long, env = "ENGINE_MCAST_ENABLED", value_parser = cli_support::bool_value(),
          action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "false")]
    pub mcast_enabled: bool,

    /// Multicast group.
    #[arg(long, env = "ENGINE_MCAST_GROUP", default_value_t = DEFAULT_MCAST_GROUP)]
    pub mcast_group: Ipv4Addr,

    /// Multicast destination port.
    #[arg(long, env = "ENGINE_MCAST_PORT", default_value_t = DEFAULT_MCAST_PORT)]
    pub mcast_port: u16,

    /// Multicast TTL (1 = local subnet).
    #[arg(long, env = "ENGINE_MCAST_TTL", default_value_t = 1)]
    pub mcast_ttl: u32,

    /// IPv4 address of the interface multicast is sent from (0.0.0.0 = the kernel's choice by
    /// route).
    #[arg(long, env = "ENGINE_MCAST_INTERFACE", default_value_t = DEFAULT_MCAST_INTERFACE)]
    pub mcast_interface: Ipv4Addr,

    /// Loop multicast back to local subscribers on this host.
    #[arg(long, env = "ENGINE_MCAST_LOOPBACK", value_parser = cli_support::bool_value(),
          action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "true")]
    pub mcast_loopback: bool,

    /// Publish the multicast feed in the binary protocol instead of CSV.
    #[arg(long, env = "ENGINE_MCAST_BINARY", value_parser = cli_support::bool_value(),
          action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "false")]
    pub mcast_binary: bool,

    /// Cancel a TCP client's resting orders (only its own) when it disconnects.
    #[arg(long, env = "ENGINE_CANCEL_ON_DISCONNECT", value_parser = cli_support::bool_value(),
          action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "true")]
    pub cancel_on_disconnect: bool,

    /// Bytes of framed output that may wait for one TCP client; a client that falls further
    /// behind is disconnected (it never stalls matching for the others).
    #[arg(long, env = "ENGINE_CLIENT_QUEUE_BYTES", default_value_t = 4 << 20)]
    pub client_queue_bytes: usize,

    /// Microseconds an idle processor thread polls its queue before parking (threaded mode).
    #[arg(long, env = "ENGINE_PROCESSOR_SPIN_US", default_value_t = 20)]
    pub processor_spin_us: u64,

    /// Microseconds the I/O thread polls for processor output after a batch of input before
    /// returning to the event loop (threaded mode; 0 = never).
    #[arg(long, env = "ENGINE_IO_SPIN_US", default_value_t = 0)]
    pub io_spin_us: u64,

    /// Busy-poll: the network I/O thread never sleeps; it polls its sockets (and, threaded, the
    /// processors' output) in a loop. Saves the scheduler wake-up on every message, which on a VM
    /// is most of a loopback round trip, at the cost of one core spinning at 100 %.
    #[arg(long, env = "ENGINE_BUSY_POLL", value_parser = cli_support::bool_value(),
          action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "false")]
    pub busy_poll: bool,

    /// Messages to and from each client that the log shows in full (in CSV), at most 200
    /// lines a second in all; the rest are counted in one line a second.
    #[arg(long, env = "ENGINE_LOG_MESSAGES", default_value_t = 20)]
    pub log_messages: u32,

    /// Log no orders or results at all (connections, errors and the startup lines still are).
    #[arg(long, env = "ENGINE_QUIET", value_parser = cli_support::bool_value(),
          action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", default_value = "false")]
    pub quiet: bool,

    /// Most TCP connections open at once; a connection beyond it is accepted and closed at
    /// once (with a rate-limited warning), so the engine never runs out of file descriptors
    /// because of clients.
    #[arg(long, env = "ENGINE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,

    /// Most orders one user may have resting at once, across all books (and all processors in
    /// threaded mode); a new order that would rest beyond it is rejected with code 6 (pool
    /// exhausted). Orders filled at once need no slot; fills and cancels free slots.
    #[arg(long, env = "ENGINE_MAX_ORDERS_PER_USER",
          default_value_t = engine_core::DEFAULT_MAX_ORDERS_PER_USER as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_orders_per_user: u64,

    /// Most symbols (books) in which one user may have resting orders at once, across all
    /// processors in threaded mode; a new order that would rest in one more is rejected with
    /// code 6 (pool exhausted). Keeps one user from holding the whole symbol table (4,096
    /// books per processor; orders that do not rest need no book, and empty books are
    /// reclaimed).
    #[arg(long, env = "ENGINE_MAX_SYMBOLS_PER_USER",
          default_value_t = engine_core::DEFAULT_MAX_SYMBOLS_PER_USER as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_symbols_per_user: u64,

    /// Capacity (messages) of each lock-free queue between the I/O thread and a processor.
    #[arg(long, env = "ENGINE_QUEUE_CAPACITY", default_value_t = 65536)]
    pub queue_capacity: usize,
}

impl ServerConfig {
    /// TCP listen address.
    pub fn tcp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.tcp_port)
    }

    /// UDP listen address.
    pub fn udp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.udp_port)
    }

    /// The matching core's limits.
    pub fn engine_config(&self) -> engine_core::EngineConfig {
        engine_core::EngineConfig {
            max_orders_per_user: usize::try_from(self.max_orders_per_user).unwrap_or(usize::MAX),
            max_symbols_per_user: usize::try_from(self.max_symbols_per_user).unwrap_or(usize::MAX),
            ..engine_core::EngineConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: ServerConfig,
    }

    #[test]
    fn defaults_and_flag_forms() {
        let t = T::try_parse_from(["x"]).unwrap();
        assert!(!t.c.threaded);
        assert_eq!(t.c.processors, 2);
        assert_eq!(t.c.tcp_port, 1234);
        assert!(t.c.tcp_enabled && t.c.udp_enabled && !t.c.mcast_enabled);
        let t = T::try_parse_from(["x", "--threaded"]).unwrap();
        assert!(t.c.threaded);
        let t = T::try_parse_from(["x", "--threaded=false", "--udp-enabled=no"]).unwrap();
        assert!(!t.c.threaded && !t.c.udp_enabled);
        let t =
            T::try_parse_from(["x", "--tcp-port", "0", "--threaded", "--processors", "4"]).unwrap();
        assert!(t.c.threaded);
        assert_eq!(t.c.tcp_port, 0);
        assert_eq!(t.c.processors, 4);
        assert_eq!(t.c.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(t.c.max_orders_per_user, 100_000);
        let t = T::try_parse_from(["x", "--max-connections", "2", "--max-orders-per-user", "5"])
            .unwrap();
        assert_eq!(t.c.max_connections, 2);
        assert_eq!(t.c.engine_config().max_orders_per_user, 5);
        assert!(T::try_parse_from(["x", "--max-connections", "0"]).is_err());
    }
}
