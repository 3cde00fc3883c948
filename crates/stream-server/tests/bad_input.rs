//! Bad input: random bytes, truncated frames, wrong magic/version, huge lengths, unknown
//! types, malformed payloads, too many connections. Errors as specified; others unaffected.

mod common;

use std::time::{Duration, Instant};

use common::{start, Client};
use rand::{Rng, SeedableRng};
use stream_proto::*;

fn frame_with(magic: u32, version: u32, type_id: u32, length: u32) -> Vec<u8> {
    Header {
        magic,
        version,
        type_id,
        length,
    }
    .to_bytes()
    .to_vec()
}

fn expect_protocol_error_and_close(c: &mut Client, type_id: u32) {
    let f = c.recv_frame().expect("an error response before close");
    assert_eq!(f.header.type_id, type_id);
    let r = Response::decode(type_id, f.payload).unwrap();
    assert_eq!(r.error_code(), ErrorCode::ProtocolError, "{r:?}");
    assert!(c.closed(), "connection closed after PROTOCOL_ERROR");
}

#[test]
fn bad_headers_get_protocol_error_and_close_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &[]);
    let mut good = Client::connect(addr);
    good.create_topic("t", 1);

    // Wrong magic, answered in the shape of the echoed type (LIST_TOPICS).
    let mut c = Client::connect(addr);
    c.send_raw(&frame_with(0xdeadbeef, 1, 12, 0));
    expect_protocol_error_and_close(&mut c, 12);

    // Wrong version.
    let mut c = Client::connect(addr);
    c.send_raw(&frame_with(MAGIC, 2, 20, 0));
    expect_protocol_error_and_close(&mut c, 20);

    // Huge length: answered at once (no waiting for 4 GiB), nothing allocated.
    let mut c = Client::connect(addr);
    let t = Instant::now();
    c.send_raw(&frame_with(MAGIC, 1, 21, u32::MAX));
    expect_protocol_error_and_close(&mut c, 21);
    let mut c = Client::connect(addr);
    c.send_raw(&frame_with(MAGIC, 1, 20, MAX_PAYLOAD + 1));
    expect_protocol_error_and_close(&mut c, 20);
    assert!(t.elapsed() < Duration::from_secs(10));

    // Unknown type: INVALID_REQUEST, the connection stays usable.
    let mut c = Client::connect(addr);
    c.send_raw(&frame_with(MAGIC, 1, 777, 3));
    c.send_raw(b"abc");
    match c.recv() {
        Response::Unknown { type_id, status } => {
            assert_eq!(type_id, 777);
            assert_eq!(status.error, ErrorCode::InvalidRequest);
        }
        r => panic!("{r:?}"),
    }
    // Malformed payload: INVALID_REQUEST naming the field, still usable.
    c.send_raw(&frame_with(MAGIC, 1, 10, 5));
    c.send_raw(&[1, 0, 0, 0, b'x']);
    match c.recv() {
        Response::CreateTopic(s) => {
            assert_eq!(s.error, ErrorCode::InvalidRequest);
            assert!(s.message.contains("partitions"), "{}", s.message);
        }
        r => panic!("{r:?}"),
    }
    c.send_raw(&frame_with(MAGIC, 1, 12, 1));
    c.send_raw(&[0]);
    assert_eq!(c.recv().error_code(), ErrorCode::InvalidRequest);
    assert!(matches!(
        c.call(&Request::ListTopics),
        Response::ListTopics {
            error: ErrorCode::None,
            ..
        }
    ));

    // Truncated frames then close: the server just drops the connection.
    for cut in [3usize, 15, 17, 30] {
        let mut c = Client::connect(addr);
        let frame = common::produce_req("t", b"k", b"value").to_frame();
        c.send_raw(&frame[..cut.min(frame.len() - 1)]);
        drop(c);
    }

    // Random garbage from several clients at once, while the good client keeps producing.
    let handles: Vec<_> = (0..8u64)
        .map(|seed| {
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut c = Client::connect(addr);
                let n = rng.gen_range(1..4096);
                let junk: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                let _ = std::io::Write::write_all(&mut c.stream, &junk);
                // Whatever comes back, the server must close or answer; never hang forever
                // (the read timeout bounds this) and never crash.
                let _ = c.closed();
            })
        })
        .collect();
    for i in 0..200u32 {
        good.produce("t", b"", &i.to_le_bytes());
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(good.fetch_all("t", 0, 0).len(), 200);
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", server.log_text());
}

#[test]
fn max_connections_refuses_with_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &["--max-connections=2"]);
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    // Make sure both are accepted (and counted) before the third arrives.
    a.call(&Request::Heartbeat(None));
    b.call(&Request::Heartbeat(None));
    let mut c = Client::connect(addr);
    assert!(c.closed(), "third connection refused");
    server.wait_for_line("refusing connection", Duration::from_secs(30));
    // The first two still work.
    assert_eq!(a.call(&Request::ListTopics).error_code(), ErrorCode::None);
    assert_eq!(b.call(&Request::ListTopics).error_code(), ErrorCode::None);
    // When one leaves, its slot frees up (the count drops when the server has seen the close,
    // so retry until then).
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut d = Client::connect(addr);
        // A refused connection may already be closed: ignore write errors, judge by the read.
        let _ = std::io::Write::write_all(&mut d.stream, &Request::ListTopics.to_frame());
        if let Some(f) = d.recv_frame() {
            assert_eq!(f.header.type_id, 12);
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &["--idle-timeout-ms=1000"]);
    let mut a = Client::connect(addr);
    a.call(&Request::Heartbeat(None));
    let t = Instant::now();
    assert!(a.closed());
    assert!(t.elapsed() >= Duration::from_millis(500));
    server.wait_for_line("closing idle connection", Duration::from_secs(30));
}

#[test]
fn half_sent_frame_is_closed_by_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &["--idle-timeout-ms=500"]);
    let mut c = Client::connect(addr);
    c.send_raw(&frame_with(MAGIC, 1, 20, 100));
    c.send_raw(&[0u8; 10]);
    assert!(c.closed());
}

#[test]
fn random_payloads_for_every_type_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    c.create_topic("t", 2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut ids: Vec<u32> = RequestType::ALL.iter().map(|t| t.id()).collect();
    ids.extend([2, 13, 99, 1000]);
    // Pipelined: 2000 frames with valid headers and random payloads (sometimes a valid
    // request with a few bytes flipped), each answered with its type, in order.
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    for i in 0..2000 {
        let type_id = ids[rng.gen_range(0..ids.len())];
        if type_id == RequestType::Disconnect.id() {
            continue;
        }
        let payload: Vec<u8> = if i % 3 == 0 {
            let mut p = common::produce_req("t", b"k", b"value").to_frame()[HEADER_LEN..].to_vec();
            let at = rng.gen_range(0..p.len());
            p[at] ^= rng.gen::<u8>() | 1;
            p
        } else {
            let n = rng.gen_range(0..64);
            (0..n).map(|_| rng.gen()).collect()
        };
        wire.extend_from_slice(&Header::new(type_id, payload.len() as u32).to_bytes());
        wire.extend_from_slice(&payload);
        sent.push(type_id);
    }
    let writer = {
        let mut s = c.stream.try_clone().unwrap();
        std::thread::spawn(move || std::io::Write::write_all(&mut s, &wire).unwrap())
    };
    for type_id in sent {
        let f = c.recv_frame().expect("answer");
        assert_eq!(f.header.type_id, type_id);
        Response::decode(type_id, f.payload).expect("well-formed answer");
    }
    writer.join().unwrap();
    assert_eq!(c.call(&Request::ListTopics).error_code(), ErrorCode::None);
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", server.log_text());
}

#[test]
fn batch_whose_answer_would_exceed_16_mib_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    c.create_topic("t", 1);
    let n = 1_400_000u32;
    let mut payload = Vec::with_capacity(16 + n as usize * 9);
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(b"t");
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(&n.to_le_bytes());
    for _ in 0..n {
        payload.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 2]);
    }
    assert!(payload.len() <= MAX_PAYLOAD as usize);
    c.send_raw(&Header::new(22, payload.len() as u32).to_bytes());
    c.send_raw(&payload);
    match c.recv() {
        Response::BatchProduce { error, message, .. } => {
            assert_eq!(error, ErrorCode::RequestTooLarge, "{message}")
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(c.fetch("t", 0, 0, 1).high_watermark, 0, "nothing appended");
}

#[test]
fn client_that_never_reads_its_fetch_answers_does_not_stall_others() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &["--write-timeout-ms=2000"]);
    let mut c = Client::connect(addr);
    c.create_topic("t", 1);
    let value = vec![7u8; 60_000];
    for _ in 0..20 {
        match c.call(&Request::BatchProduce {
            topic: "t".into(),
            partition: 0,
            records: (0..20)
                .map(|_| ProduceRecord {
                    key: bytes::Bytes::new(),
                    value: bytes::Bytes::copy_from_slice(&value),
                    priority: 2,
                })
                .collect(),
        }) {
            Response::BatchProduce {
                error: ErrorCode::None,
                ..
            } => {}
            r => panic!("{r:?}"),
        }
    }
    // ~24 MB per fetch answer, pipelined 50 deep, never read: the server holds at most its
    // per-connection budget and keeps serving everyone else.
    let greedy = Client::connect(addr);
    let fetch = Request::Fetch {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        max_messages: 1000,
    }
    .to_frame();
    let mut w = greedy.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..50 {
            if std::io::Write::write_all(&mut w, &fetch).is_err() {
                break;
            }
        }
    });
    for i in 0..50u32 {
        c.produce("t", b"", &i.to_le_bytes());
    }
    assert_eq!(c.fetch("t", 0, 0, 1).count, 1);
    // The stuck connection is closed after the write timeout, so shutdown is prompt.
    server.wait_for_line("stopped reading", Duration::from_secs(60));
    let t = Instant::now();
    let status = server.terminate(Duration::from_secs(60));
    assert!(status.success(), "{}", server.log_text());
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "{}",
        server.log_text()
    );
    drop(greedy.stream.shutdown(std::net::Shutdown::Both));
    let _ = writer.join();
}

#[test]
fn slow_senders_cannot_hold_the_connection_slots() {
    // Slowloris: every byte would reset an idle timer, so only a deadline on the whole request
    // frees the slots. Idle timeout far away, request deadline 1 s, all slots taken.
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(
        dir.path(),
        &[
            "--idle-timeout-ms=600000",
            "--request-timeout-ms=1000",
            "--max-connections=3",
        ],
    );
    let started = Instant::now();
    let tricklers: Vec<_> = (0..3)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            std::thread::spawn(move || {
                // One header byte at a time, for at most 20 s: the pace of the attack, not a
                // synchronisation.
                let frame = frame_with(MAGIC, 1, 12, 0);
                for b in frame.iter().cycle().take(100) {
                    if std::io::Write::write_all(&mut s, &[*b]).is_err() {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                false
            })
        })
        .collect();
    for _ in 0..3 {
        server.wait_for_line("did not arrive whole in time", Duration::from_secs(30));
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    for t in tricklers {
        assert!(t.join().unwrap(), "a trickling sender was never closed");
    }
    // The slots are free again: a normal client is served.
    let mut c = Client::connect(addr);
    assert_eq!(c.call(&Request::ListTopics).error_code(), ErrorCode::None);
}
