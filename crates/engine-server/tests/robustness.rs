//! Bad clients never hurt good ones: garbage, half frames, oversized lengths, disconnects in the
//! middle of a frame, slow consumers. Also configuration and graceful shutdown.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

#[test]
fn garbage_is_logged_and_dropped_and_the_client_keeps_being_served() {
    for mode in MODES {
        let mut e = start(mode);
        let mut c = e.client();
        c.send(b"this is not a message\n");
        c.send(&[0x4D, 0xFF, 1, 2, 3]);
        c.send(b"N, 1, IBM, notaprice, 1, B, 1\n");
        c.send(b"");
        c.send_line("N, 1, IBM, 10, 1, B, 1");
        assert_eq!(
            c.recv_lines(2),
            ["A, IBM, 1, 1", "B, IBM, B, 10, 1"],
            "{mode:?}"
        );
        let l = e.proc_wait("message dropped");
        assert!(l.contains("bad CSV line"), "{l}");
    }
}

#[test]
fn frames_split_across_writes_are_reassembled() {
    for mode in MODES {
        let e = start(mode);
        let mut c = e.client();
        let mut bytes = Vec::new();
        for line in ["N, 1, IBM, 10, 1, B, 1\n", "N, 1, IBM, 11, 1, B, 2\n"] {
            bytes.extend_from_slice(&(line.len() as u32).to_be_bytes());
            bytes.extend_from_slice(line.as_bytes());
        }
        // One byte per write, each pushed out immediately (TCP_NODELAY).
        for b in &bytes {
            c.stream.write_all(&[*b]).unwrap();
            c.stream.flush().unwrap();
        }
        assert_eq!(
            c.recv_lines(4),
            [
                "A, IBM, 1, 1",
                "B, IBM, B, 10, 1",
                "A, IBM, 1, 2",
                "B, IBM, B, 11, 1"
            ],
            "{mode:?}"
        );
    }
}

#[test]
fn oversized_length_drops_that_client_only() {
    for mode in MODES {
        let mut e = start(mode);
        let mut good = e.client();
        let mut bad = e.client();
        bad.send_line("N, 7, IBM, 10, 1, B, 1");
        assert_eq!(bad.recv_lines(2), ["A, IBM, 7, 1", "B, IBM, B, 10, 1"]);
        bad.stream.write_all(&(65_537u32).to_be_bytes()).unwrap();
        assert!(
            bad.is_closed_by_server(),
            "oversized frame closes the connection"
        );
        let l = e.proc_wait("exceeds");
        assert!(l.contains("65537"), "{l}");
        // The dropped client's order was cancelled (cancel-on-disconnect); others are served.
        good.send_line("C, 7, 1, IBM");
        assert_eq!(good.recv_line(), "R, IBM, 7, 1, 4", "{mode:?}");
        good.send_line("N, 1, IBM, 10, 1, B, 1");
        assert_eq!(good.recv_lines(2), ["A, IBM, 1, 1", "B, IBM, B, 10, 1"]);
        // A maximal frame (65,536 bytes) is still accepted: blank padding lines are skipped.
        let mut big = b"N, 1, IBM, 9, 1, B, 2\n".to_vec();
        big.resize(65_536, b'\n');
        good.send(&big);
        assert_eq!(good.recv_line(), "A, IBM, 1, 2");
    }
}

#[test]
fn disconnect_mid_frame_is_logged_and_others_are_served() {
    for mode in MODES {
        let mut e = start(mode);
        let mut good = e.client();
        {
            let mut half = e.client();
            half.stream.write_all(&[0, 0, 0, 40, b'N', b',']).unwrap();
        }
        let l = e.proc_wait("mid-frame");
        assert!(l.contains("incomplete frame"), "{l}");
        good.send_line("N, 1, IBM, 10, 1, B, 1");
        assert_eq!(
            good.recv_lines(2),
            ["A, IBM, 1, 1", "B, IBM, B, 10, 1"],
            "{mode:?}"
        );
    }
}

#[test]
fn slow_consumer_is_disconnected_and_matching_goes_on() {
    for mode in MODES {
        let mut args = vec!["--client-queue-bytes", "65536"];
        args.extend_from_slice(mode);
        let mut e = start(&args);
        // A client that sends a lot and never reads, with a tiny receive window. Its output
        // (~12 MB) exceeds what the kernel buffers (up to 4 MB of send buffer) plus the queue
        // bound can hold, so the server's writer ends up waiting on it with the queue full.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&e.tcp().into()).unwrap();
        let mut slow: std::net::TcpStream = sock.into();
        let writer = std::thread::spawn(move || {
            let mut buf = Vec::new();
            for i in 0..200_000u32 {
                let p = format!(
                    "N, 5, SLOW, 10, 1, {}, {}\n",
                    if i % 2 == 0 { "B" } else { "S" },
                    i + 1
                );
                buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
                buf.extend_from_slice(p.as_bytes());
            }
            // Fails with a reset once the server drops us; that is the point.
            for chunk in buf.chunks(8192) {
                if slow.write_all(chunk).is_err() {
                    return;
                }
            }
            // Keep the socket open (and unread) until the server gave up on it.
            std::thread::sleep(Duration::from_secs(30));
        });
        let l = e.proc_wait("slow consumer");
        assert!(l.contains("output queue"), "{l}");
        let mut good = e.client();
        good.send_line("N, 1, IBM, 10, 1, B, 1");
        assert_eq!(
            good.recv_lines(2),
            ["A, IBM, 1, 1", "B, IBM, B, 10, 1"],
            "{mode:?}"
        );
        drop(writer);
    }
}

#[test]
fn sigterm_shuts_down_gracefully() {
    // Busy-polling too: the I/O thread never sleeps in epoll, yet signals must still get through.
    for mode in MODES.into_iter().chain(BUSY_MODES) {
        let mut e = start(mode);
        let mut c = e.client();
        c.send_line("N, 1, IBM, 10, 1, B, 1");
        c.recv_lines(2);
        let status = e.proc.terminate(Duration::from_secs(30));
        assert!(status.success(), "{status:?}");
        let log = e.proc.log_text();
        assert!(log.contains("received SIGTERM, shutting down"), "{log}");
        assert!(log.contains("matching_engine stopped"), "{log}");
    }
    let mut e = start(&[]);
    e.proc.signal(libc::SIGINT);
    assert!(e.proc.wait_exit(Duration::from_secs(30)).success());
    assert!(e.proc.log_text().contains("received SIGINT"));
}

#[test]
fn environment_configures_and_flags_override() {
    // ENGINE_TCP_PORT says 1 (not bindable as non-root on most systems, and never free as a
    // test port); the flag overrides it with 0. ENGINE_THREADED and ENGINE_UDP_ENABLED apply.
    let mut cmd = command();
    cmd.env("ENGINE_TCP_PORT", "1")
        .env("ENGINE_THREADED", "true")
        .env("ENGINE_PROCESSORS", "3")
        .env("ENGINE_UDP_ENABLED", "false")
        .args(["--tcp-port", "0", "--bind", "127.0.0.1"]);
    let e = start_cmd(cmd);
    assert!(e.udp.is_none(), "UDP disabled by ENGINE_UDP_ENABLED=false");
    assert_ne!(e.tcp().port(), 1);
    let log = e.proc.log_text();
    assert!(
        log.contains("threaded mode with 3 processor threads"),
        "{log}"
    );
    assert!(
        !log.contains("busy-polling"),
        "busy-poll is off by default: {log}"
    );

    // ENGINE_BUSY_POLL turns busy-polling on, and the flag turns it off again.
    let busy = start_with_env(&[("ENGINE_BUSY_POLL", "true")], &[]);
    assert!(busy.proc.log_text().contains("busy-polling"));
    let mut c = busy.client();
    c.send_line("N, 1, IBM, 10, 1, B, 1");
    assert_eq!(c.recv_lines(2), ["A, IBM, 1, 1", "B, IBM, B, 10, 1"]);
    let off = start_with_env(&[("ENGINE_BUSY_POLL", "true")], &["--busy-poll=false"]);
    assert!(!off.proc.log_text().contains("busy-polling"));
    let one = start(&["--threaded", "--processors", "1"]).proc.log_text();
    assert!(
        one.contains("threaded mode with 1 processor thread,"),
        "{one}"
    );
    // More spinning threads than cores: the operator is told at startup (no machine running
    // this suite has 65 cores).
    let log = start(&["--threaded", "--processors", "64", "--busy-poll"])
        .proc
        .log_text();
    assert!(
        log.contains("busy-polling with 65 spinning threads on"),
        "{log}"
    );

    // --threaded=false beats ENGINE_THREADED=true; the bare binary is single-threaded.
    let mut cmd = command();
    cmd.env("ENGINE_THREADED", "true").args([
        "--threaded=false",
        "--tcp-port",
        "0",
        "--udp-port",
        "0",
    ]);
    assert!(start_cmd(cmd)
        .proc
        .log_text()
        .contains("single-threaded mode"));
    let mut cmd = command();
    cmd.args(["--tcp-port", "0", "--udp-port", "0"]);
    assert!(start_cmd(cmd)
        .proc
        .log_text()
        .contains("single-threaded mode"));

    // Empty variables (docker-compose passing an unset host variable) mean "default".
    let mut cmd = command();
    cmd.env("ENGINE_THREADED", "")
        .env("ENGINE_MCAST_ENABLED", "")
        .args(["--tcp-port", "0", "--udp-port", "0"]);
    assert!(start_cmd(cmd)
        .proc
        .log_text()
        .contains("single-threaded mode"));

    // A port in use: a clear error and a non-zero exit.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = command()
        .args(["--bind", "127.0.0.1", "--udp-port", "0", "--tcp-port"])
        .arg(taken.local_addr().unwrap().port().to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bind TCP 127.0.0.1:"), "{err}");

    // UDP only.
    let mut cmd = command();
    cmd.env("ENGINE_TCP_ENABLED", "false")
        .env("ENGINE_UDP_PORT", "0");
    let e = start_cmd(cmd);
    assert!(e.tcp.is_none());
    let s = udp_client();
    s.send_to(b"N, 1, IBM, 10000, 100, B, 1\n", e.udp())
        .unwrap();
    assert_eq!(udp_recv(&s), b"A, IBM, 1, 1\n");
}

#[test]
fn large_flush_to_a_reading_client_is_not_a_slow_consumer() {
    // A flush produces a burst far larger than the per-client queue bound in one go; a client
    // that keeps reading must get all of it, not be dropped.
    const ORDERS: u32 = 30_000;
    for mode in MODES {
        let mut args = vec!["--client-queue-bytes", "65536"];
        args.extend_from_slice(mode);
        let e = start(&args);
        let mut c = e.client();
        let mut reader = Client {
            stream: c.stream.try_clone().unwrap(),
        };
        let counter = std::thread::spawn(move || {
            let mut cancels = 0u32;
            loop {
                let l = reader.recv_line();
                if l.starts_with("C, FL, 1, ") {
                    cancels += 1;
                }
                if l == "B, FL, B, -, -" {
                    return cancels;
                }
            }
        });
        let mut buf = Vec::new();
        for i in 1..=ORDERS {
            let p = format!("N, 1, FL, 100, 1, B, {i}\n");
            buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
            buf.extend_from_slice(p.as_bytes());
        }
        buf.extend_from_slice(b"\0\0\0\x02F\n");
        c.stream.write_all(&buf).unwrap();
        assert_eq!(counter.join().unwrap(), ORDERS, "{mode:?}");
        assert!(!e.proc.log_text().contains("slow consumer"), "{mode:?}");
    }
}
