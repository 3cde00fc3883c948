//! Shared helpers: start the real binary, and a tiny blocking STRP client over std TcpStream
//! built on stream-proto (the Rust client crate is tested separately).

#![allow(dead_code)]

pub mod kafka;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use stream_proto::*;
use test_support::{bin_path, parse_addr, ServerProcess};

/// Starts stream-server on port 0 over `dir`, with extra flags; returns it and its address.
pub fn start(dir: &Path, extra: &[&str]) -> (ServerProcess, SocketAddr) {
    let mut cmd = Command::new(bin_path("stream-server"));
    cmd.arg(format!("--data-dir={}", dir.display()))
        .args(["--port=0", "--bind=127.0.0.1"])
        .args(extra)
        .env("RUST_LOG", "info");
    // Metrics off unless the caller asks for them (clap refuses the flag twice).
    if !extra.iter().any(|a| a.starts_with("--metrics-port")) {
        cmd.arg("--metrics-port=off");
    }
    let (p, line) = ServerProcess::spawn(cmd, "listening on");
    let addr = parse_addr(&line).expect("address in the listening line");
    (p, addr)
}

/// `VmRSS` and `VmHWM` (peak) of a process, in bytes.
pub fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts measuring a phase: resets the process's peak to its current resident set
/// (`clear_refs` 5) and returns that as the baseline.
pub fn reset_peak(pid: u32) -> u64 {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset peak RSS");
    rss(pid).0
}

/// Blocking client: one request at a time, or pipelined with send/recv.
pub struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
    dec: FrameDecoder,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
            dec: FrameDecoder::new(),
        }
    }

    pub fn send(&mut self, req: &Request) {
        self.stream.write_all(&req.to_frame()).expect("send");
    }

    /// Sends `req`; false when the server is gone (a load thread racing a kill ends there).
    pub fn try_send(&mut self, req: &Request) -> bool {
        self.stream.write_all(&req.to_frame()).is_ok()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send raw");
    }

    /// Next frame, or None when the server closed the connection.
    pub fn recv_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self
                .dec
                .decode(&mut self.buf)
                .expect("valid response header")
            {
                return Some(f);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    pub fn recv(&mut self) -> Response {
        let f = self.recv_frame().expect("a response before close");
        Response::decode(f.header.type_id, f.payload).expect("decodable response")
    }

    pub fn call(&mut self, req: &Request) -> Response {
        self.send(req);
        let r = self.recv();
        assert_eq!(r.type_id(), req.type_id(), "response echoes the type");
        r
    }

    /// True when the server closed the connection (EOF or reset) within the read timeout.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1024];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    // ---- typed helpers -------------------------------------------------------------

    pub fn create_topic(&mut self, name: &str, partitions: u32) -> Status {
        match self.call(&Request::CreateTopic {
            name: name.into(),
            partitions,
        }) {
            Response::CreateTopic(s) => s,
            r => panic!("unexpected {r:?}"),
        }
    }

    pub fn produce(&mut self, topic: &str, key: &[u8], value: &[u8]) -> (u32, u64) {
        match self.call(&produce_req(topic, key, value)) {
            Response::Produce {
                error,
                message,
                partition,
                offset,
            } => {
                assert_eq!(error, ErrorCode::None, "{message}");
                (partition, offset)
            }
            r => panic!("unexpected {r:?}"),
        }
    }

    pub fn fetch(&mut self, topic: &str, partition: u32, offset: u64, max: u32) -> FetchResponse {
        match self.call(&Request::Fetch {
            topic: topic.into(),
            partition,
            offset,
            max_messages: max,
        }) {
            Response::Fetch(f) => f,
            r => panic!("unexpected {r:?}"),
        }
    }

    /// All messages of a partition from `offset` to the high watermark.
    pub fn fetch_all(&mut self, topic: &str, partition: u32, mut offset: u64) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            let f = self.fetch(topic, partition, offset, 10_000);
            assert_eq!(f.error, ErrorCode::None, "{}", f.message);
            let msgs = f.messages().unwrap();
            if msgs.is_empty() {
                return out;
            }
            offset = msgs.last().unwrap().offset + 1;
            out.extend(msgs);
        }
    }
}

pub fn produce_req(topic: &str, key: &[u8], value: &[u8]) -> Request {
    Request::Produce {
        topic: topic.into(),
        key: Bytes::copy_from_slice(key),
        value: Bytes::copy_from_slice(value),
        priority: 2,
    }
}
