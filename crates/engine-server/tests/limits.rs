//! Resource limits over real sockets: `--max-connections`, running out of file descriptors
//! (the accept loop backs off and logs sparingly), and `--max-orders-per-user`.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;

#[test]
fn connections_beyond_the_limit_are_closed_and_the_others_keep_trading() {
    let by_flag: (&[(&str, &str)], Vec<&str>) = (&[], vec!["--max-connections", "2"]);
    let by_env: (&[(&str, &str)], Vec<&str>) =
        (&[("ENGINE_MAX_CONNECTIONS", "2")], vec!["--threaded"]);
    for (env, args) in [by_flag, by_env] {
        let mut e = start_with_env(env, &args);
        let mut a = e.client();
        let mut b = e.client();
        // Both are served (hence accepted) before the third connects.
        a.send_line("N, 1, IBM, 10, 100, B, 1");
        assert_eq!(a.recv_lines(2), ["A, IBM, 1, 1", "B, IBM, B, 10, 100"]);
        b.send_line("N, 2, AAPL, 5, 1, B, 1");
        assert_eq!(b.recv_lines(2), ["A, AAPL, 2, 1", "B, AAPL, B, 5, 1"]);
        let mut c = e.client();
        assert!(c.is_closed_by_server(), "{args:?}");
        let line = e.proc_wait("refused");
        assert!(
            line.contains("2 connections open") && line.contains("--max-connections"),
            "{line}"
        );
        b.send_line("N, 2, IBM, 10, 60, S, 7");
        assert_eq!(
            b.recv_lines(3),
            [
                "A, IBM, 2, 7",
                "T, IBM, 1, 1, 2, 7, 10, 60",
                "B, IBM, B, 10, 40"
            ],
            "{args:?}"
        );
        assert_eq!(a.recv_line(), "T, IBM, 1, 1, 2, 7, 10, 60");
    }
}

/// Open-files limit (soft and hard) of the engine in the EMFILE test: room for a few dozen
/// connections after the runtime's own descriptors.
const NOFILE: libc::rlim_t = 48;

#[test]
fn out_of_file_descriptors_accept_backs_off_logs_sparingly_and_recovers() {
    let mut cmd = command();
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--tcp-port",
        "0",
        "--udp-enabled=false",
    ]);
    // SAFETY: only async-signal-safe setrlimit runs between fork and exec. Both limits are set:
    // the engine raises its soft limit to the hard one at start.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: NOFILE,
                rlim_max: NOFILE,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut e = start_cmd(cmd);
    // More connections than the engine has descriptors for: the kernel completes them all
    // (listen queue), the engine's accepts start failing with EMFILE.
    let clients: Vec<Client> = (0..NOFILE + 16).map(|_| e.client()).collect();
    e.proc_wait("TCP accept failed");
    // The first summary comes a second or so later; over that time the old loop logged
    // hundreds of thousands of lines.
    let summary = e
        .proc
        .wait_for_line("TCP accept still failing", Duration::from_secs(30));
    assert!(summary.contains("Too many open files"), "{summary}");
    let log = e.proc.log_text();
    let accept_lines = log.lines().filter(|l| l.contains("TCP accept")).count();
    assert!(
        accept_lines <= 3,
        "{accept_lines} accept lines in about a second:\n{log}"
    );
    // Clients leave; a new one is served once the engine is back (at most a second of
    // back-off later).
    drop(clients);
    let mut c = e.client();
    c.send_line("N, 1, IBM, 10, 100, B, 1");
    assert_eq!(c.recv_lines(2), ["A, IBM, 1, 1", "B, IBM, B, 10, 100"]);
    e.proc_wait("TCP accept works again");
}

#[test]
fn orders_beyond_the_per_user_cap_are_rejected_with_code_6_in_both_modes() {
    let by_flag: (&[(&str, &str)], Vec<&str>) = (&[], vec!["--max-orders-per-user", "2"]);
    let by_env: (&[(&str, &str)], Vec<&str>) =
        (&[("ENGINE_MAX_ORDERS_PER_USER", "2")], vec!["--threaded"]);
    for (env, args) in [by_flag, by_env] {
        let e = start_with_env(env, &args);
        let mut a = e.client();
        // Symbols spread over the processors in threaded mode: the cap is per user, overall.
        a.send_line("N, 1, IBM, 10, 1, B, 1");
        a.send_line("N, 1, AAPL, 10, 1, B, 2");
        assert_eq!(
            a.recv_lines(4),
            [
                "A, IBM, 1, 1",
                "B, IBM, B, 10, 1",
                "A, AAPL, 1, 2",
                "B, AAPL, B, 10, 1"
            ]
        );
        for (i, sym) in ["MSFT", "GOOG", "TSLA", "NVDA"].iter().enumerate() {
            a.send_line(&format!("N, 1, {sym}, 10, 1, B, {}", 3 + i));
            assert_eq!(
                a.recv_line(),
                format!("R, {sym}, 1, {}, 6", 3 + i),
                "{args:?}"
            );
        }
        // Another user is unaffected; a cancel frees a slot.
        a.send_line("N, 2, MSFT, 10, 1, B, 1");
        assert_eq!(a.recv_lines(2), ["A, MSFT, 2, 1", "B, MSFT, B, 10, 1"]);
        a.send_line("C, 1, 2");
        assert_eq!(a.recv_lines(2), ["C, AAPL, 1, 2", "B, AAPL, B, -, -"]);
        a.send_line("N, 1, GOOG, 10, 1, B, 9");
        assert_eq!(a.recv_lines(2), ["A, GOOG, 1, 9", "B, GOOG, B, 10, 1"]);
    }
}

/// Sends `lines` as one datagram each, `WINDOW` at a time, and returns every reply line in
/// order (each line gets exactly `replies` datagrams back).
fn udp_round(
    s: &std::net::UdpSocket,
    to: std::net::SocketAddr,
    lines: &[String],
    replies: usize,
) -> Vec<String> {
    const WINDOW: usize = 64;
    let mut got = Vec::new();
    for chunk in lines.chunks(WINDOW) {
        for l in chunk {
            s.send_to(l.as_bytes(), to).unwrap();
        }
        for _ in 0..chunk.len() * replies {
            got.push(
                String::from_utf8(udp_recv(s))
                    .unwrap()
                    .trim_end()
                    .to_string(),
            );
        }
    }
    got
}

#[test]
fn market_orders_on_made_up_symbols_do_not_fill_the_symbol_table() {
    // Issue 14: 4,096 datagrams (8,192 threaded: 4,096 books per processor) of market orders
    // on made-up symbols used to take every book for good; every later new symbol got 6.
    for (args, symbols) in [(vec![], 4096), (vec!["--threaded"], 8192)] {
        let e = start(&args);
        let s = udp_client();
        let flood: Vec<String> = (0..symbols)
            .map(|i| format!("N, 666, S{i:05}, 0, 1, B, 1"))
            .collect();
        let acks = udp_round(&s, e.udp(), &flood, 1);
        for (i, a) in acks.iter().enumerate() {
            assert_eq!(a, &format!("A, S{i:05}, 666, 1"), "{args:?}");
        }
        let later = udp_round(&s, e.udp(), &["N, 1, LATER, 10, 5, B, 1".to_string()], 2);
        assert_eq!(later, ["A, LATER, 1, 1", "B, LATER, B, 10, 5"], "{args:?}");
    }
}

#[test]
fn one_user_cannot_hold_every_book_and_the_cap_is_configurable() {
    // The default: a quarter of one engine's 4,096 books per user.
    let e = start(&[]);
    let s = udp_client();
    let resting: Vec<String> = (0..1024)
        .map(|i| format!("N, 666, S{i:05}, 10, 1, B, {}", i + 1))
        .collect();
    let replies = udp_round(&s, e.udp(), &resting, 2);
    assert!(replies.iter().all(|l| !l.starts_with('R')), "{replies:?}");
    let more = udp_round(
        &s,
        e.udp(),
        &["N, 666, S01024, 10, 1, B, 2000".to_string()],
        1,
    );
    assert_eq!(more, ["R, S01024, 666, 2000, 6"]);
    // Another order in a book the user holds already is fine.
    let more = udp_round(
        &s,
        e.udp(),
        &["N, 666, S00000, 10, 1, B, 2001".to_string()],
        2,
    );
    assert_eq!(more, ["A, S00000, 666, 2001", "B, S00000, B, 10, 2"]);
    let other = udp_round(&s, e.udp(), &["N, 7, S01024, 10, 1, B, 1".to_string()], 2);
    assert_eq!(other, ["A, S01024, 7, 1", "B, S01024, B, 10, 1"]);
    drop(e);

    // Flag and variable, in both modes (threaded: counted over the processors).
    let by_flag: (&[(&str, &str)], Vec<&str>) = (&[], vec!["--max-symbols-per-user", "2"]);
    let by_env: (&[(&str, &str)], Vec<&str>) =
        (&[("ENGINE_MAX_SYMBOLS_PER_USER", "2")], vec!["--threaded"]);
    for (env, args) in [by_flag, by_env] {
        let e = start_with_env(env, &args);
        let mut a = e.client();
        a.send_line("N, 1, IBM, 10, 1, B, 1");
        a.send_line("N, 1, AAPL, 10, 1, B, 2");
        assert_eq!(a.recv_lines(4)[2], "A, AAPL, 1, 2");
        for (i, sym) in ["MSFT", "GOOG", "TSLA", "NVDA"].iter().enumerate() {
            a.send_line(&format!("N, 1, {sym}, 10, 1, B, {}", 3 + i));
            assert_eq!(
                a.recv_line(),
                format!("R, {sym}, 1, {}, 6", 3 + i),
                "{args:?}"
            );
        }
        // A market order needs no book; a cancel that leaves a book frees it.
        a.send_line("N, 1, MSFT, 0, 1, B, 8");
        assert_eq!(a.recv_line(), "A, MSFT, 1, 8");
        a.send_line("C, 1, 2");
        assert_eq!(a.recv_lines(2), ["C, AAPL, 1, 2", "B, AAPL, B, -, -"]);
        a.send_line("N, 1, GOOG, 10, 1, B, 9");
        assert_eq!(
            a.recv_lines(2),
            ["A, GOOG, 1, 9", "B, GOOG, B, 10, 1"],
            "{args:?}"
        );
    }
}
