//! The server's memory stays under its documented bound (docs/operations.md, "Memory")
//! whatever clients send: the resident set of the real process, read from /proc, against
//! its memory budget (`--memory-budget-bytes`) and each connection's 64 MiB share.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{reset_peak, rss, start, Client};
use stream_proto::*;

const MIB: u64 = 1 << 20;
/// Most messages per BATCH_PRODUCE (docs/protocol.md).
const CAP: u32 = 1_392_640;
/// Resident memory the bound allows beyond the budget and an idle server's own: allocator
/// slack, thread stacks touched under load, the storage's retained write buffer.
const SLACK: u64 = 24 * MIB;

/// A BATCH_PRODUCE payload of `n` messages with `value_len`-byte values, empty keys.
fn batch_payload(topic: &str, n: u32, value_len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + topic.len() + n as usize * (9 + value_len));
    p.extend_from_slice(&(topic.len() as u32).to_le_bytes());
    p.extend_from_slice(topic.as_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&n.to_le_bytes());
    let mut rec = vec![0u8; 8];
    rec[4..8].copy_from_slice(&(value_len as u32).to_le_bytes());
    rec.extend(std::iter::repeat_n(b'v', value_len));
    rec.push(2);
    for _ in 0..n {
        p.extend_from_slice(&rec);
    }
    p
}

fn batch_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Header::new(RequestType::BatchProduce.id(), payload.len() as u32)
        .to_bytes()
        .to_vec();
    f.extend_from_slice(payload);
    f
}

fn expect_batch(resp: Response, n: usize) {
    match resp {
        Response::BatchProduce {
            error: ErrorCode::None,
            offsets,
            ..
        } => assert_eq!(offsets.len(), n),
        r => panic!("unexpected {r:?}"),
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

#[test]
fn one_batch_at_the_cap_stays_under_the_bound() {
    // The cap batch (1 392 640 empty messages, 12 MiB) needs about 181 MiB of budget.
    let budget = 192 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = start(dir.path(), &[&format!("--memory-budget-bytes={budget}")]);
    let mut c = Client::connect(addr);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(c.create_topic("t", 1).error, ErrorCode::None);
    let frame = batch_frame(&batch_payload("t", CAP, 0));
    let base = reset_peak(server.pid());
    c.send_raw(&frame);
    expect_batch(c.recv(), CAP as usize);
    let (_, peak) = rss(server.pid());
    eprintln!(
        "cap batch: idle {:.0} MiB, peak {:.0} MiB",
        mib(base),
        mib(peak)
    );
    assert!(
        peak <= base + budget + SLACK,
        "peak {:.0} MiB over idle {:.0} MiB + budget {:.0} MiB",
        mib(peak),
        mib(base),
        mib(budget)
    );
    // (Before issue 11 this batch took 243 MiB: more than its whole budget and slack.)
}

#[test]
fn requests_over_a_limit_are_refused_before_their_payload_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = start(dir.path(), &["--memory-budget-bytes=16777216"]);
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("t", 1).error, ErrorCode::None);
    let base = reset_peak(server.pid());

    // One message over the batch cap: the header and the payload's first 13 bytes (topic,
    // partition, count) are all the server needs to refuse it.
    let payload = batch_payload("t", CAP + 1, 0);
    let header = Header::new(RequestType::BatchProduce.id(), payload.len() as u32);
    c.send_raw(&header.to_bytes());
    c.send_raw(&payload[..13]);
    match c.recv() {
        Response::BatchProduce { error, message, .. } => {
            assert_eq!(error, ErrorCode::RequestTooLarge, "{message}");
            assert!(message.contains("at most 1392640"), "{message}");
        }
        r => panic!("unexpected {r:?}"),
    }
    // The rest is discarded as it arrives and the connection goes on.
    c.send_raw(&payload[13..]);
    assert_eq!(c.fetch("t", 0, 0, 1).high_watermark, 0, "nothing appended");

    // A request needing more than the whole budget is refused from its header alone.
    let header = Header::new(RequestType::Produce.id(), 12 << 20);
    c.send_raw(&header.to_bytes());
    match c.recv() {
        Response::Produce { error, message, .. } => {
            assert_eq!(error, ErrorCode::RequestTooLarge, "{message}");
            assert!(
                message.contains("--memory-budget-bytes / STREAM_MEMORY_BUDGET_BYTES"),
                "{message}"
            );
        }
        r => panic!("unexpected {r:?}"),
    }
    let (_, peak) = rss(server.pid());
    assert!(
        peak < base + 8 * MIB,
        "refused requests were buffered: {:.0} MiB over idle",
        mib(peak - base)
    );
}

#[test]
fn eight_concurrent_16_mib_batches_stay_under_the_default_budget() {
    // Batches at the cap of 12-byte messages: 16 MiB each, the most per-message work a batch
    // can ask for. The default budget (512 MiB) admits two at a time; the others wait.
    let budget = 512 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("t", 1).error, ErrorCode::None);
    let frame = Bytes::from(batch_frame(&batch_payload("t", CAP, 3)));
    assert!(frame.len() as u64 > 15 * MIB && frame.len() as u64 <= 16 * MIB + 16);
    let mut clients: Vec<Client> = (0..8).map(|_| Client::connect(addr)).collect();
    let base = reset_peak(server.pid());
    let t = Instant::now();
    let senders: Vec<_> = clients
        .iter()
        .map(|c| {
            let mut s = c.stream.try_clone().unwrap();
            let f = frame.clone();
            std::thread::spawn(move || s.write_all(&f).expect("send batch"))
        })
        .collect();
    for c in &mut clients {
        c.stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        expect_batch(c.recv(), CAP as usize);
    }
    for s in senders {
        s.join().unwrap();
    }
    let (_, peak) = rss(server.pid());
    eprintln!(
        "8 x 16 MiB: idle {:.0} MiB, peak {:.0} MiB, {:?}",
        mib(base),
        mib(peak),
        t.elapsed()
    );
    assert!(
        peak <= base + budget + SLACK,
        "peak {:.0} MiB over idle {:.0} MiB + budget {:.0} MiB",
        mib(peak),
        mib(base),
        mib(budget)
    );
    assert_eq!(c.fetch("t", 0, 0, 1).high_watermark, 8 * u64::from(CAP));
}

#[test]
fn slow_reader_pipelining_fetches_and_batch_produces_is_bounded_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &["--write-timeout-ms=3000"]);
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("t", 1).error, ErrorCode::None);
    assert_eq!(c.create_topic("p", 1).error, ErrorCode::None);
    // 24 MiB of 1 MiB messages: every fetch answer is ~15 MiB.
    let value = Bytes::from(vec![7u8; 1 << 20]);
    for _ in 0..24 {
        let r = c.call(&Request::BatchProduce {
            topic: "t".into(),
            partition: 0,
            records: vec![ProduceRecord {
                key: Bytes::new(),
                value: value.clone(),
                priority: 2,
            }],
        });
        expect_batch(r, 1);
    }
    let fetch = Request::Fetch {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        max_messages: 1000,
    }
    .to_frame();
    // 2000 messages of 100 bytes: 24 KB answers.
    let produce = batch_frame(&batch_payload("p", 2000, 100));
    let base = reset_peak(server.pid());

    let slow = TcpStream::connect(addr).unwrap();
    let mut w = slow.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..80 {
            let f = if i % 2 == 0 { &fetch[..] } else { &produce[..] };
            if w.write_all(f).is_err() {
                break;
            }
        }
    });
    // 2 MiB every 400 ms: alive, but far too slow for 15 MiB answers within 3 s.
    let mut r = slow.try_clone().unwrap();
    r.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let reader = std::thread::spawn(move || {
        let mut chunk = vec![0u8; 2 << 20];
        let mut total = 0u64;
        loop {
            let mut got = 0;
            while got < chunk.len() {
                match r.read(&mut chunk[got..]) {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => got += n,
                }
            }
            total += got as u64;
            std::thread::sleep(Duration::from_millis(400));
        }
    });
    server.wait_for_line("stopped reading", Duration::from_secs(60));
    let (_, peak) = rss(server.pid());
    let taken = reader.join().unwrap();
    let _ = writer.join();
    eprintln!(
        "slow reader: idle {:.0} MiB, peak {:.0} MiB, read {:.0} MiB before the close",
        mib(base),
        mib(peak),
        mib(taken)
    );
    // One connection holds at most its 64 MiB share.
    assert!(
        peak <= base + 64 * MIB + SLACK,
        "peak {:.0} MiB over idle {:.0} MiB + the 64 MiB share",
        mib(peak),
        mib(base)
    );
    // The server still serves others.
    assert_eq!(c.fetch("t", 0, 0, 1).count, 1);
}
