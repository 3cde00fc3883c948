//! Restart: topics, messages and committed offsets survive a clean stop and a SIGKILL under
//! load (every acknowledged produce is there under the default durability policy).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{start, Client};
use stream_proto::*;

#[test]
fn clean_stop_keeps_topics_messages_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    c.create_topic("a", 3);
    c.create_topic("b", 1);
    let mut sent = Vec::new();
    for i in 0..300u32 {
        let key = format!("k{i}");
        let (p, o) = c.produce("a", key.as_bytes(), format!("v{i}").as_bytes());
        sent.push((p, o, format!("v{i}")));
    }
    assert_eq!(
        c.call(&Request::CommitOffset {
            group_id: "g".into(),
            topic: "a".into(),
            partition: 1,
            offset: 5,
        })
        .error_code(),
        ErrorCode::None
    );
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");
    assert!(server.log_text().contains("shutdown complete"));

    let (_server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    match c.call(&Request::Metadata) {
        Response::Metadata { topics, .. } => assert_eq!(
            topics,
            vec![
                TopicInfo {
                    name: "a".into(),
                    partitions: 3
                },
                TopicInfo {
                    name: "b".into(),
                    partitions: 1
                }
            ]
        ),
        r => panic!("{r:?}"),
    }
    for (p, o, v) in sent {
        let m = c.fetch("a", p, o, 1).messages().unwrap();
        assert_eq!(m[0].value, Bytes::from(v));
        assert!(m[0].verify());
    }
    assert_eq!(
        c.call(&Request::FetchOffset {
            group_id: "g".into(),
            topic: "a".into(),
            partition: 1,
        }),
        Response::FetchOffset {
            error: ErrorCode::None,
            offset: 5
        }
    );
}

/// (partition, offset, value) of an acknowledged produce.
type Acked = (u32, u64, Vec<u8>);

#[test]
fn sigkill_under_load_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &[]);
    Client::connect(addr).create_topic("load", 4);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    // Single produces, pipelined 32 deep.
    for t in 0..3u32 {
        let (acked, count, stop) = (acked.clone(), count.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let mut i = 0u64;
            let mut in_flight = std::collections::VecDeque::new();
            while !stop.load(Ordering::Relaxed) {
                while in_flight.len() < 32 {
                    let v = format!("t{t}-{i}").into_bytes();
                    i += 1;
                    let key = format!("key{}", i % 17);
                    // The server may be SIGKILLed at any moment: a failed send ends the load.
                    if !c.try_send(&common::produce_req("load", key.as_bytes(), &v)) {
                        return;
                    }
                    in_flight.push_back(v);
                }
                let Some(f) = c.recv_frame() else { return };
                let v = in_flight.pop_front().unwrap();
                if let Ok(Response::Produce {
                    error: ErrorCode::None,
                    partition,
                    offset,
                    ..
                }) = Response::decode(f.header.type_id, f.payload)
                {
                    acked.lock().unwrap().push((partition, offset, v));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Batches to explicit partitions.
    {
        let (acked, count, stop) = (acked.clone(), count.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let vals: Vec<Vec<u8>> = (0..50)
                    .map(|_| {
                        i += 1;
                        format!("batch-{i}").into_bytes()
                    })
                    .collect();
                let sent = c.try_send(&Request::BatchProduce {
                    topic: "load".into(),
                    partition: (i % 4) as u32,
                    records: vals
                        .iter()
                        .map(|v| ProduceRecord {
                            key: Bytes::new(),
                            value: Bytes::copy_from_slice(v),
                            priority: 2,
                        })
                        .collect(),
                });
                if !sent {
                    return;
                }
                let Some(f) = c.recv_frame() else { return };
                if let Ok(Response::BatchProduce {
                    error: ErrorCode::None,
                    offsets,
                    ..
                }) = Response::decode(f.header.type_id, f.payload)
                {
                    let mut a = acked.lock().unwrap();
                    for (o, v) in offsets.iter().zip(vals) {
                        a.push((o.partition, o.offset, v));
                    }
                    count.fetch_add(offsets.len(), Ordering::Relaxed);
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < 5000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() >= 5000, "load ran: {} acked", acked.len());

    let (_server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    let mut stored: HashMap<(u32, u64), Bytes> = HashMap::new();
    for p in 0..4 {
        for m in c.fetch_all("load", p, 0) {
            assert!(m.verify(), "CRC of {p}/{}", m.offset);
            stored.insert((p, m.offset), m.value);
        }
    }
    for (p, o, v) in &acked {
        match stored.get(&(*p, *o)) {
            Some(s) => assert_eq!(&s[..], &v[..], "message at {p}/{o}"),
            None => panic!("acknowledged message {p}/{o} lost ({} acked)", acked.len()),
        }
    }
}

#[test]
fn sigterm_answers_requests_in_flight_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(dir.path(), &[]);
    let mut c = Client::connect(addr);
    c.create_topic("s", 1);
    let mut wire = Vec::new();
    for i in 0..2000u32 {
        wire.extend_from_slice(&common::produce_req("s", b"", &i.to_le_bytes()).to_frame());
    }
    c.send_raw(&wire);
    // Wait for the first answer so that the server is busy with the batch, then stop it.
    let first = c.recv();
    assert_eq!(first.error_code(), ErrorCode::None);
    server.signal(libc::SIGTERM);
    let mut answered = 1u64;
    while let Some(f) = c.recv_frame() {
        let r = Response::decode(f.header.type_id, f.payload).unwrap();
        assert_eq!(r.error_code(), ErrorCode::None, "{r:?}");
        answered += 1;
    }
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    // Everything answered is stored, in order.
    let (_server, addr) = start(dir.path(), &[]);
    let stored = Client::connect(addr).fetch_all("s", 0, 0);
    assert!(
        stored.len() as u64 >= answered,
        "{} stored < {answered} answered",
        stored.len()
    );
    for (i, m) in stored.iter().enumerate() {
        assert_eq!(&m.value[..], &(i as u32).to_le_bytes());
    }
}
