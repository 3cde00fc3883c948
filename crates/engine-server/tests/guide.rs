//! The deployment guide's commands, run exactly as a user would type them (with the port the
//! test's server got), against the real binary in both threading modes.

mod common;

use common::*;

/// The server as the guide runs it (all interfaces), on free ports.
fn guide_engine(threaded: bool) -> Engine {
    let mut cmd = command();
    cmd.args(["--tcp-port", "0", "--udp-port", "0"]);
    if threaded {
        cmd.arg("--threaded");
    }
    start_cmd(cmd)
}

#[test]
fn udp_nc_order_gets_ack_and_top_of_book() {
    for threaded in [false, true] {
        let e = guide_engine(threaded);
        let port = e.udp().port();
        let out = sh(&format!(
            "echo \"N, 1, IBM, 10000, 100, B, 1\" | nc -u -w1 localhost {port}"
        ));
        assert_eq!(
            out, "A, IBM, 1, 1\nB, IBM, B, 10000, 100\n",
            "threaded={threaded}"
        );
        // The guide's cancel and flush checks.
        let out = sh(&format!(
            "echo \"C, 1, 1, IBM\" | nc -u -w1 localhost {port}"
        ));
        assert_eq!(
            out, "C, IBM, 1, 1\nB, IBM, B, -, -\n",
            "threaded={threaded}"
        );
        let out = sh(&format!("echo \"F\" | nc -u -w1 localhost {port}"));
        assert_eq!(out, "", "flush of empty books prints nothing");
    }
}

#[test]
fn nc_z_health_check_succeeds() {
    let e = guide_engine(true);
    let port = e.tcp().port();
    assert_eq!(
        sh(&format!(
            "nc -z localhost {port} && echo \"TCP OK\" || echo \"TCP FAIL\""
        )),
        "TCP OK\n"
    );
}

#[test]
fn python_tcp_client_reads_framed_ack() {
    for threaded in [false, true] {
        let e = guide_engine(threaded);
        let port = e.tcp().port();
        // The guide's send_tcp_order, verbatim apart from the port.
        let script = format!(
            r#"
import socket
import struct

def send_tcp_order(host, port, msg):
    """Send order with 4-byte big-endian length prefix."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((host, port))
    sock.send(struct.pack('>I', len(msg)) + msg)
    
    # Read response
    length = struct.unpack('>I', sock.recv(4))[0]
    response = sock.recv(length)
    sock.close()
    return response

# Send buy order
msg = b"N, 1, AAPL, 15000, 100, B, 1\n"
response = send_tcp_order('localhost', {port}, msg)
print(f"Response: {{response.decode()}}")
"#
        );
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "Response: A, AAPL, 1, 1\n\n",
            "threaded={threaded}"
        );
    }
}

#[test]
fn python_quick_start_tcp_and_binary_udp_scripts_run() {
    let e = guide_engine(true);
    let (tcp, udp) = (e.tcp().port(), e.udp().port());
    let quick = format!(
        r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(('localhost', {tcp}))
msg = b'N, 1, IBM, 10000, 100, B, 1\n'
s.send(struct.pack('>I', len(msg)) + msg)
print('Sent order, check container logs')
s.close()
"#
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&quick)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Sent order, check container logs\n"
    );

    // The guide's binary UDP script, extended by one recvfrom to check the binary answer.
    let binary = format!(
        r#"
import socket
import struct

def make_binary_order(user_id, symbol, price, qty, side, order_id):
    """Create binary new order (27 bytes, big-endian)."""
    return struct.pack(
        '>BB I 8s I I B I',
        0x4D,                              # magic
        ord('N'),                          # msg_type
        user_id,
        symbol.encode().ljust(8, b'\x00'),
        price,
        qty,
        ord(side),
        order_id
    )

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
msg = make_binary_order(1, "AAPL", 15000, 100, 'B', 1)
sock.sendto(msg, ('localhost', {udp}))
print(f"Sent {{len(msg)}} bytes: {{msg.hex()}}")
sock.settimeout(20)
print(sock.recvfrom(100)[0].hex())
print(sock.recvfrom(100)[0].hex())
"#
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&binary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
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
