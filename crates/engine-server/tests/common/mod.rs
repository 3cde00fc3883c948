//! Helpers for the matching_engine integration tests: start the real binary on port 0, learn
//! its addresses from the startup log, and talk to it over real sockets.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use test_support::{bin_path, parse_addr, ServerProcess};

/// Generous per-read timeout: CI is a loaded 2-core machine.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Every ENGINE_* variable the server reads, cleared so the caller's environment cannot leak in.
const ENGINE_VARS: &[&str] = &[
    "ENGINE_THREADED",
    "ENGINE_PROCESSORS",
    "ENGINE_BIND",
    "ENGINE_TCP_ENABLED",
    "ENGINE_TCP_PORT",
    "ENGINE_UDP_ENABLED",
    "ENGINE_UDP_PORT",
    "ENGINE_MCAST_ENABLED",
    "ENGINE_MCAST_GROUP",
    "ENGINE_MCAST_PORT",
    "ENGINE_MCAST_TTL",
    "ENGINE_MCAST_INTERFACE",
    "ENGINE_MCAST_LOOPBACK",
    "ENGINE_MCAST_BINARY",
    "ENGINE_CANCEL_ON_DISCONNECT",
    "ENGINE_CLIENT_QUEUE_BYTES",
    "ENGINE_QUEUE_CAPACITY",
    "ENGINE_PROCESSOR_SPIN_US",
    "ENGINE_IO_SPIN_US",
    "ENGINE_BUSY_POLL",
    "ENGINE_LOG_MESSAGES",
    "ENGINE_QUIET",
    "ENGINE_MAX_CONNECTIONS",
    "ENGINE_MAX_ORDERS_PER_USER",
    "ENGINE_MAX_SYMBOLS_PER_USER",
];

/// Single-threaded and threaded mode: the flags most tests run under, each in turn.
pub const MODES: [&[&str]; 2] = [&[], &["--threaded"]];

/// The same two modes with the I/O thread busy-polling instead of sleeping.
pub const BUSY_MODES: [&[&str]; 2] = [&["--busy-poll"], &["--threaded", "--busy-poll"]];

/// A running matching_engine.
pub struct Engine {
    pub proc: ServerProcess,
    pub tcp: Option<SocketAddr>,
    pub udp: Option<SocketAddr>,
}

/// A command for the binary with a clean ENGINE_* environment.
pub fn command() -> Command {
    let mut cmd = Command::new(bin_path("matching_engine"));
    for v in ENGINE_VARS {
        cmd.env_remove(v);
    }
    cmd
}

/// Starts the engine on ports 0 (TCP and UDP) with extra `args`.
pub fn start(args: &[&str]) -> Engine {
    start_with_env(&[], args)
}

/// Starts the engine on ports 0 (TCP and UDP) with `ENGINE_*` variables `env` and extra `args`.
pub fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> Engine {
    let mut cmd = command();
    cmd.envs(env.iter().copied());
    cmd.args(["--bind", "127.0.0.1", "--tcp-port", "0", "--udp-port", "0"]);
    cmd.args(args);
    start_cmd(cmd)
}

/// Starts a prepared command and waits for its ready line.
pub fn start_cmd(cmd: Command) -> Engine {
    let (proc, _ready) = ServerProcess::spawn(cmd, "matching_engine ready");
    let log = proc.log_text();
    let find = |marker: &str| {
        log.lines()
            .find(|l| l.contains(marker))
            .map(|l| parse_addr(l).unwrap_or_else(|| panic!("no address in {l:?}")))
    };
    let tcp = find("TCP listening");
    let udp = find("UDP listening");
    Engine { proc, tcp, udp }
}

impl Engine {
    /// The TCP address (panics when TCP is off).
    pub fn tcp(&self) -> SocketAddr {
        self.tcp.expect("TCP enabled")
    }

    /// The UDP address (panics when UDP is off).
    pub fn udp(&self) -> SocketAddr {
        self.udp.expect("UDP enabled")
    }

    /// A connected TCP client.
    pub fn client(&self) -> Client {
        Client::connect(self.tcp())
    }
}

/// A blocking framed TCP client.
pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream }
    }

    /// Sends one frame.
    pub fn send(&mut self, payload: &[u8]) {
        let mut buf = (payload.len() as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(payload);
        self.stream.write_all(&buf).unwrap();
    }

    /// Sends one CSV line (newline added) as a frame.
    pub fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\n").as_bytes());
    }

    /// Reads one frame's payload.
    pub fn recv(&mut self) -> Vec<u8> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).expect("read frame length");
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream
            .read_exact(&mut payload)
            .expect("read frame payload");
        payload
    }

    /// Reads one CSV frame as a line without its trailing newline.
    pub fn recv_line(&mut self) -> String {
        let p = self.recv();
        let s = String::from_utf8(p).unwrap();
        assert!(s.ends_with('\n'), "CSV frames end with a newline: {s:?}");
        s.trim_end_matches('\n').to_string()
    }

    /// Reads `n` CSV lines.
    pub fn recv_lines(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.recv_line()).collect()
    }

    /// Reads CSV lines up to and including the first equal to `last`.
    pub fn recv_until(&mut self, last: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.recv_line();
            let done = l == last;
            out.push(l);
            if done {
                return out;
            }
        }
    }

    /// True when the server closed the connection (EOF or reset) within the read timeout.
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A UDP client bound to loopback.
pub fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Receives one datagram.
pub fn udp_recv(s: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf).expect("UDP reply");
    buf[..n].to_vec()
}

/// The 27-byte binary new order of the guide's `make_binary_order`.
pub fn binary_order(user: u32, symbol: &str, price: u32, qty: u32, side: u8, oid: u32) -> Vec<u8> {
    let mut b = vec![0x4D, b'N'];
    b.extend_from_slice(&user.to_be_bytes());
    let mut sym = [0u8; 8];
    sym[..symbol.len()].copy_from_slice(symbol.as_bytes());
    b.extend_from_slice(&sym);
    b.extend_from_slice(&price.to_be_bytes());
    b.extend_from_slice(&qty.to_be_bytes());
    b.push(side);
    b.extend_from_slice(&oid.to_be_bytes());
    assert_eq!(b.len(), engine_core::binary::NEW_ORDER_LEN);
    b
}

/// Binary ack `A` (18 bytes).
pub fn binary_ack(symbol: &str, user: u32, oid: u32) -> Vec<u8> {
    let mut b = vec![0x4D, b'A'];
    let mut sym = [0u8; 8];
    sym[..symbol.len()].copy_from_slice(symbol.as_bytes());
    b.extend_from_slice(&sym);
    b.extend_from_slice(&user.to_be_bytes());
    b.extend_from_slice(&oid.to_be_bytes());
    b
}

/// The 10-byte binary cancel of the C engine (no symbol): magic, `C`, user, userOrderId.
pub fn binary_short_cancel(user: u32, oid: u32) -> Vec<u8> {
    let mut b = vec![0x4D, b'C'];
    b.extend_from_slice(&user.to_be_bytes());
    b.extend_from_slice(&oid.to_be_bytes());
    assert_eq!(b.len(), engine_core::binary::CANCEL_SHORT_LEN);
    b
}

/// Binary cancel ack `X` (18 bytes).
pub fn binary_cancel_ack(symbol: &str, user: u32, oid: u32) -> Vec<u8> {
    let mut b = binary_ack(symbol, user, oid);
    b[1] = b'X';
    b
}

/// Binary top of book `B` (20 bytes).
pub fn binary_tob(symbol: &str, side: u8, price: u32, qty: u32) -> Vec<u8> {
    let mut b = vec![0x4D, b'B'];
    let mut sym = [0u8; 8];
    sym[..symbol.len()].copy_from_slice(symbol.as_bytes());
    b.extend_from_slice(&sym);
    b.push(side);
    b.extend_from_slice(&price.to_be_bytes());
    b.extend_from_slice(&qty.to_be_bytes());
    b.push(0);
    b
}

/// Runs a shell command and returns its stdout (panics on failure, with stderr).
pub fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Engine {
    /// Waits for a log line containing `marker` (after those already consumed).
    pub fn proc_wait(&mut self, marker: &str) -> String {
        self.proc.wait_for_line(marker, test_support::READY_TIMEOUT)
    }
}
