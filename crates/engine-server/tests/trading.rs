//! Trading over real sockets: two TCP clients trading with each other, binary twins of the
//! CSV flows, threaded vs single-threaded output identity, cancel-on-disconnect.

mod common;

use common::*;

#[test]
fn two_tcp_clients_trade_with_each_other() {
    for mode in MODES.into_iter().chain(BUSY_MODES) {
        let e = start(mode);
        let mut a = e.client();
        let mut b = e.client();
        a.send_line("N, 1, IBM, 10, 100, B, 1");
        assert_eq!(a.recv_lines(2), ["A, IBM, 1, 1", "B, IBM, B, 10, 100"]);
        b.send_line("N, 2, IBM, 10, 60, S, 7");
        // The seller gets its ack, the trade and the top of book; the buyer only the trade.
        assert_eq!(
            b.recv_lines(3),
            [
                "A, IBM, 2, 7",
                "T, IBM, 1, 1, 2, 7, 10, 60",
                "B, IBM, B, 10, 40"
            ],
            "{mode:?}"
        );
        assert_eq!(a.recv_line(), "T, IBM, 1, 1, 2, 7, 10, 60");
        // Nothing else arrived for the buyer: its next answer is for its own next message.
        a.send_line("C, 1, 1");
        assert_eq!(
            a.recv_lines(2),
            ["C, IBM, 1, 1", "B, IBM, B, -, -"],
            "{mode:?}"
        );
    }
}

#[test]
fn binary_tcp_client_is_answered_in_binary() {
    for mode in MODES {
        let e = start(mode);
        let mut c = e.client();
        c.send(&binary_order(1, "IBM", 10000, 100, b'B', 1));
        assert_eq!(c.recv(), binary_ack("IBM", 1, 1));
        assert_eq!(c.recv(), binary_tob("IBM", b'B', 10000, 100));
        // A CSV client trading against it still gets CSV.
        let mut t = e.client();
        t.send_line("N, 2, IBM, 0, 100, S, 1");
        assert_eq!(
            t.recv_lines(3),
            [
                "A, IBM, 2, 1",
                "T, IBM, 1, 1, 2, 1, 10000, 100",
                "B, IBM, B, -, -"
            ]
        );
        let trade = c.recv();
        assert_eq!(trade.len(), 34);
        assert_eq!(&trade[..2], &[0x4D, b'T']);
    }
}

#[test]
fn binary_udp_and_csv_udp_twins() {
    for mode in MODES.into_iter().chain(BUSY_MODES) {
        let e = start(mode);
        let s = udp_client();
        s.send_to(&binary_order(1, "IBM", 10000, 100, b'B', 1), e.udp())
            .unwrap();
        assert_eq!(udp_recv(&s), binary_ack("IBM", 1, 1));
        assert_eq!(udp_recv(&s), binary_tob("IBM", b'B', 10000, 100));
        let s2 = udp_client();
        // Several lines in one datagram, trailing newline included.
        s2.send_to(b"N, 2, MSFT, 5, 1, S, 1\nC, 2, 1, MSFT\n", e.udp())
            .unwrap();
        let got: Vec<String> = (0..4)
            .map(|_| String::from_utf8(udp_recv(&s2)).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "A, MSFT, 2, 1\n",
                "B, MSFT, S, 5, 1\n",
                "C, MSFT, 2, 1\n",
                "B, MSFT, S, -, -\n"
            ]
        );
    }
}

/// A deterministic pseudo-random scenario over several symbols, users and message kinds.
fn scenario() -> Vec<String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let symbols = [
        "IBM", "AAPL", "MSFT", "GOOG", "TSLA", "AMZN", "NVDA", "META",
    ];
    let mut lines = Vec::new();
    let mut oid = [0u32; 4];
    let mut placed: Vec<(u32, u32, &str)> = Vec::new();
    for i in 0..3000 {
        let r = next(100);
        if i % 997 == 996 {
            lines.push("F".to_string());
        } else if r < 70 || placed.len() < 10 {
            let sym = symbols[next(symbols.len() as u64) as usize];
            // Now and then reuse an order id, usually on another symbol (and so, in threaded
            // mode, often another processor): a duplicate while the first order rests.
            let (user, id) = if next(8) == 0 {
                let (u, o, _) = placed[next(placed.len() as u64) as usize];
                (u, o)
            } else {
                let user = 1 + next(3) as u32;
                oid[user as usize] += 1;
                (user, oid[user as usize])
            };
            let side = if next(2) == 0 { "B" } else { "S" };
            let price = if next(20) == 0 {
                0
            } else {
                95 + next(11) as u32
            };
            let qty = 1 + next(50);
            lines.push(format!("N, {user}, {sym}, {price}, {qty}, {side}, {id}"));
            placed.push((user, id, sym));
        } else {
            let (user, o, sym) = placed[next(placed.len() as u64) as usize];
            match next(3) {
                0 => lines.push(format!("C, {user}, {o}, {sym}")),
                1 => lines.push(format!("C, {user}, {o}")),
                // Wrong symbol: a cancel of an unknown order.
                _ => lines.push(format!("C, {user}, {o}, ZZZ")),
            }
        }
    }
    lines.push("F".to_string());
    lines
}

fn run_scenario(mode: &[&str], lines: &[String], batch: usize) -> Vec<String> {
    let e = start(mode);
    let mut c = e.client();
    // Pipelined: several frames per write, the server's output read only at the end.
    let writer = {
        let mut w = c.stream.try_clone().unwrap();
        let mut frames = Vec::new();
        for chunk in lines.chunks(batch) {
            let mut buf = Vec::new();
            for l in chunk {
                let p = format!("{l}\n");
                buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
                buf.extend_from_slice(p.as_bytes());
            }
            frames.push(buf);
        }
        std::thread::spawn(move || {
            use std::io::Write;
            for f in frames {
                w.write_all(&f).unwrap();
            }
            w.write_all(b"\0\0\0\x0bC, 9, 9, Q\n").unwrap();
        })
    };
    let out = c.recv_until("R, Q, 9, 9, 4");
    writer.join().unwrap();
    out
}

#[test]
fn threaded_and_single_threaded_give_identical_output() {
    let lines = scenario();
    let single = run_scenario(&[], &lines, 50);
    assert!(single.len() > lines.len(), "scenario produces output");
    assert!(
        single.iter().any(|l| l.starts_with("T,")),
        "scenario trades"
    );
    let variants: [&[&str]; 4] = [
        &["--threaded", "--processors", "2"],
        &["--threaded", "--processors", "3"],
        &["--busy-poll"],
        &["--threaded", "--processors", "2", "--busy-poll"],
    ];
    for mode in variants {
        let other = run_scenario(mode, &lines, 7);
        if other != single {
            let i = single
                .iter()
                .zip(&other)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "outputs differ ({mode:?}) at line {i}: single {:?} other {:?}",
                &single[i..(i + 5).min(single.len())],
                &other[i..(i + 5).min(other.len())]
            );
        }
    }
}

#[test]
fn cancel_on_disconnect_cancels_only_that_clients_orders() {
    for mode in MODES {
        let mut e = start(mode);
        let mut a = e.client();
        let mut b = e.client();
        a.send_line("N, 1, IBM, 10, 100, B, 1");
        a.recv_lines(2);
        a.send_line("N, 1, AAPL, 20, 5, S, 2");
        a.recv_lines(2);
        b.send_line("N, 2, IBM, 9, 100, B, 1");
        assert_eq!(b.recv_line(), "A, IBM, 2, 1");
        drop(a);
        // Once the server logged the disconnect, its cancels are ahead of any later message.
        let bye = e.proc_wait("disconnected");
        assert!(bye.contains("client 1 "), "{bye}");
        let mut p = e.client();
        p.send_line("C, 1, 1, IBM");
        assert_eq!(p.recv_line(), "R, IBM, 1, 1, 4", "{mode:?}");
        p.send_line("C, 1, 2");
        assert_eq!(p.recv_line(), "R, , 1, 2, 4", "{mode:?}");
        p.send_line("C, 2, 1, IBM");
        assert_eq!(
            p.recv_lines(2),
            ["C, IBM, 2, 1", "B, IBM, B, -, -"],
            "{mode:?}"
        );
    }
}

#[test]
fn cancel_on_disconnect_can_be_turned_off() {
    let mut e = start(&["--cancel-on-disconnect=false"]);
    let mut a = e.client();
    a.send_line("N, 1, IBM, 10, 100, B, 1");
    a.recv_lines(2);
    drop(a);
    e.proc_wait("disconnected");
    let mut p = e.client();
    p.send_line("C, 1, 1, IBM");
    assert_eq!(p.recv_lines(2), ["C, IBM, 1, 1", "B, IBM, B, -, -"]);
}

#[test]
fn udp_and_tcp_clients_trade_and_the_udp_owner_hears_of_it() {
    for mode in MODES {
        let e = start(mode);
        let u = udp_client();
        u.send_to(&binary_order(1, "IBM", 50, 10, b'S', 1), e.udp())
            .unwrap();
        assert_eq!(udp_recv(&u), binary_ack("IBM", 1, 1));
        assert_eq!(udp_recv(&u), binary_tob("IBM", b'S', 50, 10));
        let mut t = e.client();
        t.send_line("N, 2, IBM, 55, 4, B, 9");
        assert_eq!(
            t.recv_lines(3),
            [
                "A, IBM, 2, 9",
                "T, IBM, 2, 9, 1, 1, 50, 4",
                "B, IBM, S, 50, 6"
            ],
            "{mode:?}"
        );
        // The resting seller (UDP, binary) gets the trade as a 34-byte binary datagram.
        let trade = udp_recv(&u);
        assert_eq!(trade.len(), 34, "{mode:?}");
        assert_eq!(&trade[..2], &[0x4D, b'T']);
        assert_eq!(&trade[30..34], &4u32.to_be_bytes(), "quantity 4");
    }
}

#[test]
fn the_c_engines_10_byte_cancel_is_acked_over_udp_and_tcp() {
    for mode in MODES {
        let e = start(mode);
        // UDP: one cancel per datagram, as the C engine's clients send it.
        let u = udp_client();
        u.send_to(&binary_order(1, "IBM", 10000, 100, b'B', 1), e.udp())
            .unwrap();
        assert_eq!(udp_recv(&u), binary_ack("IBM", 1, 1));
        assert_eq!(udp_recv(&u), binary_tob("IBM", b'B', 10000, 100));
        u.send_to(&binary_short_cancel(1, 1), e.udp()).unwrap();
        assert_eq!(udp_recv(&u), binary_cancel_ack("IBM", 1, 1), "{mode:?}");
        assert_eq!(udp_recv(&u), binary_tob("IBM", b'B', 0, 0));
        // TCP: one cancel per frame.
        let mut c = e.client();
        c.send(&binary_order(2, "MSFT", 50, 10, b'S', 7));
        assert_eq!(c.recv(), binary_ack("MSFT", 2, 7));
        assert_eq!(c.recv(), binary_tob("MSFT", b'S', 50, 10));
        c.send(&binary_short_cancel(2, 7));
        assert_eq!(c.recv(), binary_cancel_ack("MSFT", 2, 7), "{mode:?}");
        assert_eq!(c.recv(), binary_tob("MSFT", b'S', 0, 0));
        // A cancel of an order that no longer rests: reject 4, with no symbol.
        c.send(&binary_short_cancel(2, 7));
        let mut reject = binary_ack("", 2, 7);
        reject[1] = b'R';
        reject.push(4);
        assert_eq!(c.recv(), reject, "{mode:?}");
    }
}
