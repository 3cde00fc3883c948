//! The deployment guide's commands, run exactly as a user would type them (with the port the
//! test's server got), against the real binary in both threading modes. The commands are kept
//! in tests/guides/ (see its README), which also checks them against the guide when present.

mod common;

use common::*;

/// A snippet of tests/guides/matching-engine/, with the guide's ports (1234 TCP, 1235 UDP)
/// replaced by the server's.
fn guide_snippet(text: &str, e: &Engine) -> String {
    // Through markers, so that a TCP port containing "1235" is not replaced again.
    text.replace("1234", "\0tcp\0")
        .replace("1235", "\0udp\0")
        .replace("\0tcp\0", &e.tcp().port().to_string())
        .replace("\0udp\0", &e.udp().port().to_string())
}

const UDP_ORDER: &str = include_str!("../../../tests/guides/matching-engine/udp_order.sh");
const UDP_CANCEL: &str = include_str!("../../../tests/guides/matching-engine/udp_cancel.sh");
const UDP_FLUSH: &str = include_str!("../../../tests/guides/matching-engine/udp_flush.sh");
const TCP_HEALTH: &str = include_str!("../../../tests/guides/matching-engine/tcp_health.sh");
const TCP_QUICK: &str = include_str!("../../../tests/guides/matching-engine/tcp_quick.sh");
const SEND_TCP_ORDER: &str =
    include_str!("../../../tests/guides/matching-engine/send_tcp_order.py");
const BINARY_UDP: &str = include_str!("../../../tests/guides/matching-engine/binary_udp.py");

/// The server as the guide runs it (all interfaces), on free ports.
fn guide_engine(threaded: bool) -> Engine {
    let mut cmd = command();
    cmd.args(["--tcp-port", "0", "--udp-port", "0"]);
    if threaded {
        cmd.arg("--threaded");
    }
    start_cmd(cmd)
}

/// Runs a Python script on stdin-free `python3 -c`, returning its standard output.
fn python(script: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn udp_nc_order_gets_ack_and_top_of_book() {
    for threaded in [false, true] {
        let e = guide_engine(threaded);
        let out = sh(&guide_snippet(UDP_ORDER, &e));
        assert_eq!(
            out, "A, IBM, 1, 1\nB, IBM, B, 10000, 100\n",
            "threaded={threaded}"
        );
        // The guide's cancel and flush checks.
        let out = sh(&guide_snippet(UDP_CANCEL, &e));
        assert_eq!(
            out, "C, IBM, 1, 1\nB, IBM, B, -, -\n",
            "threaded={threaded}"
        );
        let out = sh(&guide_snippet(UDP_FLUSH, &e));
        assert_eq!(out, "", "flush of empty books prints nothing");
    }
}

#[test]
fn nc_z_health_check_succeeds() {
    let e = guide_engine(true);
    assert_eq!(sh(&guide_snippet(TCP_HEALTH, &e)), "TCP OK\n");
}

#[test]
fn python_tcp_client_reads_framed_ack() {
    for threaded in [false, true] {
        let e = guide_engine(threaded);
        assert_eq!(
            python(&guide_snippet(SEND_TCP_ORDER, &e)),
            "Response: A, AAPL, 1, 1\n\n",
            "threaded={threaded}"
        );
    }
}

#[test]
fn python_quick_start_tcp_and_binary_udp_scripts_run() {
    let e = guide_engine(true);
    assert_eq!(
        sh(&guide_snippet(TCP_QUICK, &e)),
        "Sent order, check container logs\n"
    );

    // The guide's binary UDP script, extended by two recvfrom to check the binary answers.
    let binary = guide_snippet(BINARY_UDP, &e)
        + "sock.settimeout(20)\nprint(sock.recvfrom(100)[0].hex())\nprint(sock.recvfrom(100)[0].hex())\n";
    let text = python(&binary);
    let lines: Vec<&str> = text.lines().collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        lines[0],
        format!(
            "Sent 27 bytes: {}",
            hex(&binary_order(1, "AAPL", 15000, 100, b'B', 1))
        )
    );
    assert_eq!(lines[1], hex(&binary_ack("AAPL", 1, 1)));
    assert_eq!(lines[2], hex(&binary_tob("AAPL", b'B', 15000, 100)));
}

/// Hosts whose `localhost` resolves to `::1` first send the guide's `nc -u localhost 1235`
/// datagram over IPv6 only: the default (wildcard) bind must take IPv6 clients as well as IPv4.
#[test]
fn default_bind_serves_ipv6_and_ipv4_clients() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: this host has no IPv6 loopback (::1)");
        return;
    }
    let e = guide_engine(false);
    let udp = e.udp().port();
    let out = sh(&format!(
        "echo \"N, 1, IBM, 10000, 100, B, 1\" | nc -u -w1 ::1 {udp}"
    ));
    assert_eq!(out, "A, IBM, 1, 1\nB, IBM, B, 10000, 100\n");
    let out = sh(&format!(
        "echo \"N, 2, IBM, 10000, 100, S, 1\" | nc -u -w1 127.0.0.1 {udp}"
    ));
    assert_eq!(
        out,
        "A, IBM, 2, 1\nT, IBM, 1, 1, 2, 1, 10000, 100\nB, IBM, B, -, -\n"
    );
    let tcp = e.tcp().port();
    let mut v6 = Client::connect(format!("[::1]:{tcp}").parse().unwrap());
    v6.send_line("N, 3, IBM, 9000, 10, B, 1");
    assert_eq!(v6.recv_lines(2), ["A, IBM, 3, 1", "B, IBM, B, 9000, 10"]);
}
