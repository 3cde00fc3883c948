//! Codec costs on the bridge's hot path: one Coinbase incremental (35=X) framed out of a
//! byte stream, parsed (BodyLength + CheckSum verified) and its entry group read; and the
//! cost of encoding an outbound message.
//!
//! `cargo bench -p fix --bench codec`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fix::{FrameDecoder, GroupSpec, Message, MessageBuilder};

fn incremental(seq: u64) -> Vec<u8> {
    let mut b = MessageBuilder::new("FIXT.1.1", "X");
    b.push(49, "Coinbase")
        .push(56, "0123456789abcdef0123456789abcdef")
        .push_uint(34, seq)
        .push(52, "20250114-09:00:01.000456")
        .push_uint(268, 1)
        .push(279, "0")
        .push(269, "0")
        .push(278, "5f6a7b8c-1d2e-4f30-8a9b-0c1d2e3f4a5b")
        .push_uint(83, 1_000_000 + seq)
        .push(55, "BTC-USD")
        .push(270, "45230.50")
        .push(271, "0.01500000")
        .push(60, "20250114-09:00:01.000456");
    b.finish().unwrap()
}

const ENTRIES: GroupSpec = GroupSpec {
    count_tag: 268,
    delimiter: 279,
    members: None,
};

fn bench(c: &mut Criterion) {
    let one = incremental(1);
    let mut g = c.benchmark_group("fix");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_incremental", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&one)).unwrap();
            let e = m.group(ENTRIES).unwrap();
            black_box(e[0].get(270));
        })
    });

    // 1000 messages arriving in 4 KiB reads, as from a TLS stream.
    let stream: Vec<u8> = (1..=1000).flat_map(incremental).collect();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("frame_parse_1000_incrementals_4k_reads", |b| {
        let mut d = FrameDecoder::new();
        b.iter(|| {
            let mut n = 0;
            for chunk in stream.chunks(4096) {
                d.extend(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    let m = Message::parse(f).unwrap();
                    n += m.group(ENTRIES).unwrap().len();
                }
            }
            assert_eq!(n, 1000);
        })
    });

    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_heartbeat", |b| {
        b.iter(|| {
            let mut m = MessageBuilder::new("FIXT.1.1", "0");
            m.push(49, "0123456789abcdef0123456789abcdef")
                .push(56, "Coinbase")
                .push_uint(34, black_box(42))
                .push(52, "20250114-09:00:01.000");
            black_box(m.finish().unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
