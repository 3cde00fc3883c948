//! Multicast market data, tested inside a private network namespace so that no datagram can
//! leave the machine: each outer test re-runs one of this test binary's inner tests under
//! `unshare --net`, after `ip link set lo up multicast on` and a 239.0.0.0/8 route on lo.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;

const INNER_MARKER: &str = "ENGINE_SERVER_MCAST_NETNS";

#[test]
fn multicast_feed_in_private_network_namespace() {
    run_in_private_network_namespace("multicast_inner");
}

#[test]
fn subscribe_tool_in_private_network_namespace() {
    run_in_private_network_namespace("subscribe_inner");
}

/// Runs the ignored test `inner` of this binary in a new network namespace; it prints
/// `INNER-OK <inner>` when it ran to the end.
fn run_in_private_network_namespace(inner: &str) {
    let exe = std::env::current_exe().unwrap();
    let script = r#"set -e
ip link set lo up multicast on
ip route add 239.0.0.0/8 dev lo
exec "$0" --exact "$1" --include-ignored --nocapture --test-threads 1"#;
    let probe = Command::new("unshare").args(["--net", "true"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            println!(
                "SKIPPED multicast test: `unshare --net` is not permitted here ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!("SKIPPED multicast test: cannot run `unshare`: {e}");
            return;
        }
    }
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", script])
        .arg(&exe)
        .arg(inner)
        .env(INNER_MARKER, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("INNER-OK {inner}")),
        "inner multicast test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// A subscriber joined to `group` on loopback.
fn subscribe(group: Ipv4Addr) -> (UdpSocket, u16) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).into())
        .unwrap();
    s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn recv_seq(s: &UdpSocket) -> (u64, Vec<u8>) {
    let d = udp_recv(s);
    assert!(
        d.len() > 8,
        "datagram carries a sequence number and a message"
    );
    (
        u64::from_be_bytes(d[..8].try_into().unwrap()),
        d[8..].to_vec(),
    )
}

/// False (with a note) unless running inside the namespace an outer test created: run directly
/// (e.g. `--include-ignored`), an inner test would publish on the real network.
fn in_private_namespace(inner: &str) -> bool {
    let inside = std::env::var(INNER_MARKER).as_deref() == Ok("1");
    if !inside {
        println!("SKIPPED {inner}: only runs inside the namespace the outer test creates");
    }
    inside
}

#[test]
#[ignore = "run by multicast_feed_in_private_network_namespace inside a network namespace"]
fn multicast_inner() {
    if !in_private_namespace("multicast_inner") {
        return;
    }
    let group = Ipv4Addr::new(239, 255, 0, 1);
    for (mode, binary) in [("", false), ("--threaded", false), ("", true)] {
        let (sub, port) = subscribe(group);
        let mut args = vec![
            "--mcast-enabled",
            "--mcast-group",
            "239.255.0.1",
            "--mcast-interface",
            "127.0.0.1",
        ];
        let port_s = port.to_string();
        args.extend_from_slice(&["--mcast-port", &port_s]);
        if !mode.is_empty() {
            args.push(mode);
        }
        if binary {
            args.push("--mcast-binary");
        }
        let e = start(&args);
        assert!(e
            .proc
            .log_text()
            .contains(&format!("multicast market data to 239.255.0.1:{port}")));
        // Kept to the end: a client's disconnect would cancel its order and publish more.
        let _clients = trade_for_the_feed(&e);
        let got: Vec<(u64, Vec<u8>)> = (0..4).map(|_| recv_seq(&sub)).collect();
        let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(seqs, [1, 2, 3, 4], "consecutive sequence numbers");
        if binary {
            assert_eq!(got[0].1, binary_tob("IBM", b'B', 10, 100));
            assert_eq!(&got[1].1[..2], &[0x4D, b'T']);
            assert_eq!(got[2].1, binary_tob("IBM", b'B', 0, 0));
            assert_eq!(got[3].1, binary_tob("IBM", b'S', 12, 5));
        } else {
            let lines: Vec<String> = got
                .iter()
                .map(|g| String::from_utf8(g.1.clone()).unwrap())
                .collect();
            assert_eq!(
                lines,
                [
                    "B, IBM, B, 10, 100\n",
                    "T, IBM, 1, 1, 2, 2, 10, 100\n",
                    "B, IBM, B, -, -\n",
                    "B, IBM, S, 12, 5\n"
                ],
                "mode {mode:?}"
            );
        }
        // Acks are private: nothing else was published.
        sub.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(sub.recv(&mut [0u8; 64]).is_err(), "no further datagram");
    }
    println!("INNER-OK multicast_inner");
}

/// A `matching_engine subscribe` process, past its "subscribed to" line.
struct Subscriber {
    child: Child,
    stderr_lines: mpsc::Receiver<String>,
    stderr: Option<thread::JoinHandle<Vec<String>>>,
}

/// What a subscriber printed by the time it exited.
struct Finished {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Subscriber {
    /// Starts `matching_engine subscribe ARGS` with `ENGINE_*` variables `env` (and no others),
    /// and waits until it has joined the group.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Subscriber {
        let mut cmd = command();
        cmd.arg("subscribe")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn matching_engine subscribe");
        let pipe = child.stderr.take().unwrap();
        let (tx, stderr_lines) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        });
        let mut s = Subscriber {
            child,
            stderr_lines,
            stderr: Some(stderr),
        };
        s.wait_stderr("subscribed to ");
        s
    }

    /// Waits for a stderr line containing `marker`.
    fn wait_stderr(&mut self, marker: &str) -> String {
        loop {
            match self.stderr_lines.recv_timeout(test_support::READY_TIMEOUT) {
                Ok(line) if line.contains(marker) => return line,
                Ok(_) => continue,
                Err(e) => panic!(
                    "subscriber printed no {marker:?} ({e}; status {:?})",
                    self.child.try_wait()
                ),
            }
        }
    }

    /// Waits for the subscriber to exit by itself (every test passes `--timeout-ms`, so it
    /// does) and returns what it printed.
    fn finish(mut self) -> Finished {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = self.child.wait().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        Finished {
            status,
            stdout: out.lines().map(str::to_string).collect(),
            stderr,
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Idle timeout of the subscribers that wait for an engine: enough for it to start on a
/// loaded machine; only a failing test waits this long.
const SUBSCRIBER_TIMEOUT_MS: &str = "60000";

#[test]
#[ignore = "run by subscribe_tool_in_private_network_namespace inside a network namespace"]
fn subscribe_inner() {
    if !in_private_namespace("subscribe_inner") {
        return;
    }
    let group = "239.255.0.7";
    let port = "41236";
    let on_lo = "127.0.0.1";
    // The same lines for a CSV and a binary feed: seq numbers from 1, messages in CSV.
    let expected = [
        "1 B, IBM, B, 10, 100",
        "2 T, IBM, 1, 1, 2, 2, 10, 100",
        "3 B, IBM, B, -, -",
        "4 B, IBM, S, 12, 5",
    ];
    for (mode, binary) in [("", false), ("--threaded", false), ("", true)] {
        // Two subscribers on one port (SO_REUSEADDR): one set up by flags, one by the
        // server's ENGINE_MCAST_* variables.
        let common_args = ["--count", "4", "--timeout-ms", SUBSCRIBER_TIMEOUT_MS];
        let mut flag_args = vec!["--group", group, "--port", port, "--interface", on_lo];
        flag_args.extend_from_slice(&common_args);
        let by_flags = Subscriber::start(&flag_args, &[]);
        let by_env = Subscriber::start(
            &common_args,
            &[
                ("ENGINE_MCAST_GROUP", group),
                ("ENGINE_MCAST_PORT", port),
                ("ENGINE_MCAST_INTERFACE", on_lo),
            ],
        );
        let mut args = vec![
            "--mcast-enabled",
            "--mcast-group",
            group,
            "--mcast-port",
            port,
        ];
        args.extend_from_slice(&["--mcast-interface", on_lo]);
        if !mode.is_empty() {
            args.push(mode);
        }
        if binary {
            args.push("--mcast-binary");
        }
        let e = start(&args);
        // Kept to the end: a client's disconnect would cancel its order and publish more.
        let _clients = trade_for_the_feed(&e);
        for (name, sub) in [("flags", by_flags), ("env", by_env)] {
            let f = sub.finish();
            let ctx = format!("mode {mode:?}, binary {binary}, subscriber by {name}");
            assert!(
                f.status.success(),
                "{ctx}: {:?}
{:?}",
                f.status,
                f.stderr
            );
            let seqs: Vec<&str> = f
                .stdout
                .iter()
                .map(|l| l.split(' ').next().unwrap())
                .collect();
            assert_eq!(seqs, ["1", "2", "3", "4"], "{ctx}: consecutive from 1");
            assert_eq!(f.stdout, expected, "{ctx}");
            assert!(
                f.stderr
                    .iter()
                    .any(|l| l == "received 4 datagrams, seq 1..=4, 0 gaps"),
                "{ctx}: {:?}",
                f.stderr
            );
            assert!(
                !f.stderr
                    .iter()
                    .any(|l| l.contains("gap:") || l.contains("bad")),
                "{ctx}: {:?}",
                f.stderr
            );
        }
    }

    // Gaps, garbage and a truncated datagram, sent by hand: reported on stderr, never printed.
    let sub = Subscriber::start(
        &[
            "--group",
            group,
            "--port",
            port,
            "--interface",
            on_lo,
            "--count",
            "3",
            "--timeout-ms",
            &IO_TIMEOUT.as_millis().to_string(),
        ],
        &[],
    );
    let tx = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    tx.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    let tx: UdpSocket = tx.into();
    let dest = format!("{group}:{port}");
    let datagram = |seq: u64, msg: &[u8]| [&seq.to_be_bytes()[..], msg].concat();
    for d in [
        datagram(1, b"B, IBM, B, 10, 100\n"),
        b"\0\0\x01".to_vec(),
        datagram(2, b"hello\n"),
        datagram(2, &binary_tob("IBM", b'S', 12, 5)),
        datagram(5, b"T, IBM, 1, 1, 2, 2, 10, 100\n"),
    ] {
        tx.send_to(&d, &dest).unwrap();
    }
    let f = sub.finish();
    assert!(
        f.status.success(),
        "{:?}
{:?}",
        f.status,
        f.stderr
    );
    assert_eq!(
        f.stdout,
        [
            "1 B, IBM, B, 10, 100",
            "2 B, IBM, S, 12, 5",
            "5 T, IBM, 1, 1, 2, 2, 10, 100"
        ]
    );
    let err = f.stderr.join("\n");
    assert!(err.contains("gap: missing 3..=4 (2 datagrams)"), "{err}");
    assert!(
        err.contains("(3 bytes), skipped: truncated datagram"),
        "{err}"
    );
    assert!(
        err.contains("sequence number 2: bad CSV line \"hello\""),
        "{err}"
    );
    assert!(
        err.contains("received 3 datagrams, seq 1..=5, 1 gaps, 2 bad datagrams"),
        "{err}"
    );

    // Nothing arrives: status 1 and a clear message, after the summary.
    let sub = Subscriber::start(
        &[
            "--group",
            group,
            "--port",
            port,
            "--interface",
            on_lo,
            "--timeout-ms",
            "200",
        ],
        &[],
    );
    let f = sub.finish();
    assert_eq!(f.status.code(), Some(1), "{:?}", f.stderr);
    assert!(f.stdout.is_empty());
    assert_eq!(
        f.stderr[1..],
        [
            "received 0 datagrams, 0 gaps".to_string(),
            format!(
                "matching_engine: error: no datagram on {group}:{port} for 200 ms (--timeout-ms)"
            )
        ]
    );
    println!("INNER-OK subscribe_inner");
}

/// Two clients rest a bid, trade it away and rest an ask: four feed datagrams (top of book,
/// trade, empty bid, new ask), each answer read before the next order. Returns the clients.
fn trade_for_the_feed(e: &Engine) -> (Client, Client) {
    let mut a = e.client();
    let mut b = e.client();
    a.send_line("N, 1, IBM, 10, 100, B, 1");
    a.recv_lines(2);
    b.send_line("N, 2, IBM, 10, 100, S, 2");
    b.recv_lines(3);
    b.send_line("N, 2, IBM, 12, 5, S, 3");
    b.recv_lines(2);
    (a, b)
}
