//! The order log: each client's first messages and their results appear in the engine's log
//! (what `docker logs` shows after the guide's snippets), the rest are only counted, and
//! `--quiet` shows none. A health probe that connects and closes leaves no info line.

mod common;

use std::net::TcpStream;

use common::*;

#[test]
fn orders_and_results_are_logged_in_csv_whatever_the_protocol() {
    for mode in MODES {
        let mut e = start(mode);
        let mut c = e.client();
        c.send_line("N, 1, IBM, 10000, 100, B, 1");
        assert_eq!(c.recv_lines(2), ["A, IBM, 1, 1", "B, IBM, B, 10000, 100"]);
        let line = e.proc_wait("-> N, 1, IBM, 10000, 100, B, 1");
        assert!(line.contains("client 1 "), "{line}");
        e.proc_wait("<- A, IBM, 1, 1");
        e.proc_wait("<- B, IBM, B, 10000, 100");

        let u = udp_client();
        u.send_to(&binary_order(2, "IBM", 10000, 40, b'S', 7), e.udp())
            .unwrap();
        udp_recv(&u);
        e.proc_wait("-> N, 2, IBM, 10000, 40, S, 7");
        e.proc_wait("<- T, IBM, 1, 1, 2, 7, 10000, 40");
    }
}

#[test]
fn beyond_its_budget_a_client_is_counted_once_a_second() {
    let mut e = start(&["--log-messages", "2"]);
    let mut c = e.client();
    for oid in 1..=5 {
        c.send_line(&format!("N, 1, IBM, 10, 1, B, {oid}"));
        c.recv_lines(2);
    }
    e.proc_wait("-> N, 1, IBM, 10, 1, B, 1");
    e.proc_wait("<- A, IBM, 1, 1");
    // 5 in, 10 out: the first in and the first out logged (the budget counts both ways), 4 in
    // and 9 out counted, in one summary or split over two if a second ended mid-test.
    let (mut ins, mut outs) = (0, 0);
    while ins + outs < 13 {
        let line = e.proc_wait("in the last second");
        let nums: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.trim_matches(',').parse().ok())
            .collect();
        ins += nums[0];
        outs += nums[1];
    }
    assert_eq!((ins, outs), (4, 9));
    let log = e.proc.log_text();
    assert!(!log.contains("-> N, 1, IBM, 10, 1, B, 2"), "{log}");
}

#[test]
fn quiet_logs_no_orders() {
    for env in [&[("ENGINE_QUIET", "true")][..], &[][..]] {
        let args: &[&str] = if env.is_empty() { &["--quiet"] } else { &[] };
        let mut e = start_with_env(env, args);
        let mut c = e.client();
        c.send_line("N, 1, IBM, 10, 1, B, 1");
        c.recv_lines(2);
        drop(c);
        e.proc_wait("disconnected");
        let log = e.proc.log_text();
        assert!(!log.contains("-> N") && !log.contains("<- A"), "{log}");
        assert!(!log.contains("in the last second"), "{log}");
    }
}

#[test]
fn a_probe_that_sends_nothing_leaves_no_info_line() {
    let mut e = start(&[]);
    drop(TcpStream::connect(e.tcp()).unwrap());
    // A real client after the probe: its lines prove the probe's would have come first.
    let mut c = e.client();
    c.send_line("F");
    drop(c);
    e.proc_wait("disconnected");
    let log = e.proc.log_text();
    assert_eq!(log.matches("connected from").count(), 1, "{log}");
    assert!(log.contains("client 2 connected from"), "{log}");
}
