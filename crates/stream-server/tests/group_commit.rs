//! Group commit over a connection: produces that arrive together share one fsync.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{produce_req, start, Client};
use stream_proto::*;

fn metrics_addr(server: &test_support::ServerProcess) -> SocketAddr {
    server
        .log_text()
        .lines()
        .find_map(|l| l.split("metrics on http://").nth(1).map(str::to_string))
        .and_then(|s| s.split('/').next().and_then(|a| a.parse().ok()))
        .expect("metrics address in the log")
}

/// The value of `name` on the metrics page.
fn scrape(maddr: SocketAddr, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(maddr).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut page = String::new();
    s.read_to_string(&mut page).ok()?;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[test]
fn a_burst_of_pipelined_produces_shares_one_fsync() {
    const BURSTS: usize = 20;
    const DEPTH: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = start(dir.path(), &["--metrics-port=0"]);
    let maddr = metrics_addr(&server);
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("t", 1).error, ErrorCode::None);
    let mut burst = Vec::new();
    for i in 0..DEPTH {
        burst.extend_from_slice(&produce_req("t", b"", &i.to_le_bytes()).to_frame());
    }
    for _ in 0..BURSTS {
        // One write: the server finds all of them in one read.
        c.send_raw(&burst);
        for _ in 0..DEPTH {
            match c.recv() {
                Response::Produce {
                    error: ErrorCode::None,
                    ..
                } => {}
                r => panic!("unexpected {r:?}"),
            }
        }
    }
    // Every burst needs at least one fsync; the gauge refreshes once a second, so the first
    // value that counts them all is the final one or a lower one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let fsyncs = loop {
        match scrape(maddr, "strp_log_fsyncs_total") {
            Some(v) if v >= BURSTS as f64 => break v,
            _ if std::time::Instant::now() > deadline => {
                panic!("fsync gauge never counted the bursts")
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    };
    eprintln!("{fsyncs} fsyncs for {BURSTS} bursts of {DEPTH} produces");
    // Refreshed with the count: the time those fsyncs took, for their mean.
    let seconds = scrape(maddr, "strp_log_fsync_seconds_total").expect("fsync time gauge");
    assert!(
        seconds > 0.0 && seconds / fsyncs < 1.0,
        "{seconds} s for {fsyncs} fsyncs"
    );
    // One per burst, and a little room for the topic's creation.
    assert!(
        fsyncs <= (BURSTS + 2) as f64,
        "{fsyncs} fsyncs for {BURSTS} bursts of {DEPTH} produces"
    );
}
