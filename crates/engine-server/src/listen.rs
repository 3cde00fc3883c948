//! Binding the TCP and UDP listeners.
//!
//! The default bind address is the IPv4 wildcard, as in the original engines. On most hosts
//! `localhost` resolves to `::1` first, and `echo ... | nc -u -w1 localhost 1235` (the
//! deployment guide's first test) sends its datagram there and nowhere else: an IPv4-only
//! socket never sees it. So for the IPv4 wildcard we bind the dual-stack IPv6 wildcard instead,
//! which takes IPv4 and IPv6 clients alike, and fall back to IPv4 only where the host (or the
//! container) has no IPv6.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// A bound socket and how to describe it in the startup log.
pub struct Bound {
    /// The socket, bound, non-blocking (and listening, for TCP).
    pub socket: Socket,
    /// What the log line says it listens on; starts with an IPv4 address when the socket takes
    /// IPv4 clients, so tools that read the first address off the line can connect to it.
    pub describe: String,
}

/// Binds a TCP listener (backlog 1024) on `addr`, dual-stack for the IPv4 wildcard.
pub fn tcp(addr: SocketAddr) -> io::Result<Bound> {
    bind(addr, Type::STREAM, Protocol::TCP)
}

/// Binds a UDP socket on `addr`, dual-stack for the IPv4 wildcard.
pub fn udp(addr: SocketAddr) -> io::Result<Bound> {
    bind(addr, Type::DGRAM, Protocol::UDP)
}

fn bind(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Bound> {
    if addr.ip() == Ipv4Addr::UNSPECIFIED {
        let v6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), addr.port());
        match open(v6, ty, proto, false) {
            Ok(socket) => {
                let port = local_port(&socket)?;
                return Ok(Bound {
                    socket,
                    describe: format!("0.0.0.0:{port} and [::]:{port}"),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(e),
            Err(e) => tracing::debug!("no dual-stack socket ({e}); binding IPv4 only"),
        }
    }
    let socket = open(addr, ty, proto, true)?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound address is not an IP address"))?;
    Ok(Bound {
        socket,
        describe: local.to_string(),
    })
}

fn open(addr: SocketAddr, ty: Type, proto: Protocol, only_v6: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        socket.set_only_v6(only_v6)?;
    }
    if ty == Type::STREAM {
        // As std and tokio do for listeners: a restart must not wait out TIME_WAIT.
        socket.set_reuse_address(true)?;
    }
    socket.bind(&addr.into())?;
    if ty == Type::STREAM {
        socket.listen(1024)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn local_port(socket: &Socket) -> io::Result<u16> {
    socket
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| io::Error::other("bound address is not an IP address"))
}
