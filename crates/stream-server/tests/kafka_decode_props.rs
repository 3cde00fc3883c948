//! Property tests of the Kafka decoders: arbitrary bytes never panic (request headers, every
//! served request body at every served version, record batches, compressed payloads in each
//! codec), and the record-batch codec round-trips against a plain model of the records.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use proptest::prelude::*;
use stream_server::budget::MemoryBudget;
use stream_server::kafka::frame::{decode, parse_request};
use stream_server::kafka::records::{at, decode_batches, encode_batch, inflate, Room};
use stream_server::kafka::versions::SUPPORTED;

// As in the server: a decoder's claimed length must not abort this process either.
#[global_allocator]
static ALLOC: process_limits::LazyHugeAlloc = process_limits::LazyHugeAlloc;

/// Decodes `body` as the request of `key` at `version`; Err is fine, a panic is not.
fn decode_request(key: ApiKey, version: i16, body: &[u8]) -> Result<(), String> {
    let mut b = Bytes::copy_from_slice(body);
    match key {
        ApiKey::Produce => decode::<ProduceRequest>(&mut b, version).map(drop),
        ApiKey::Fetch => decode::<FetchRequest>(&mut b, version).map(drop),
        ApiKey::ListOffsets => decode::<ListOffsetsRequest>(&mut b, version).map(drop),
        ApiKey::Metadata => decode::<MetadataRequest>(&mut b, version).map(drop),
        ApiKey::ApiVersions => decode::<ApiVersionsRequest>(&mut b, version).map(drop),
        ApiKey::CreateTopics => decode::<CreateTopicsRequest>(&mut b, version).map(drop),
        ApiKey::DeleteTopics => decode::<DeleteTopicsRequest>(&mut b, version).map(drop),
        ApiKey::InitProducerId => decode::<InitProducerIdRequest>(&mut b, version).map(drop),
        ApiKey::FindCoordinator => decode::<FindCoordinatorRequest>(&mut b, version).map(drop),
        ApiKey::JoinGroup => decode::<JoinGroupRequest>(&mut b, version).map(drop),
        ApiKey::SyncGroup => decode::<SyncGroupRequest>(&mut b, version).map(drop),
        ApiKey::Heartbeat => decode::<HeartbeatRequest>(&mut b, version).map(drop),
        ApiKey::LeaveGroup => decode::<LeaveGroupRequest>(&mut b, version).map(drop),
        ApiKey::OffsetCommit => decode::<OffsetCommitRequest>(&mut b, version).map(drop),
        ApiKey::OffsetFetch => decode::<OffsetFetchRequest>(&mut b, version).map(drop),
        ApiKey::ListGroups => decode::<ListGroupsRequest>(&mut b, version).map(drop),
        ApiKey::DescribeGroups => decode::<DescribeGroupsRequest>(&mut b, version).map(drop),
        ApiKey::DescribeConfigs => decode::<DescribeConfigsRequest>(&mut b, version).map(drop),
        ApiKey::CreatePartitions => decode::<CreatePartitionsRequest>(&mut b, version).map(drop),
        other => panic!("{other:?} is served but not covered here"),
    }
}

/// STRP stored records (the log's form) for a model of `(key, value, timestamp)`.
fn stored(model: &[(Vec<u8>, Vec<u8>, u64)], first_offset: u64) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, (key, value, ts)) in model.iter().enumerate() {
        let m = stream_proto::record::MessageFields {
            offset: first_offset + i as u64,
            timestamp_ms: *ts,
            partition: 0,
            crc32: 0,
            priority: 0,
            codec: 0,
            key,
            value,
        };
        stream_proto::record::put_record(&mut b, &m);
    }
    b
}

fn model() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>, u64)>> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 0..20),
            prop::collection::vec(any::<u8>(), 0..200),
            0u64..(1 << 45),
        ),
        1..20,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_requests_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_request(Bytes::from(bytes.clone()));
        for &(key, min, max) in SUPPORTED {
            for v in min..=max {
                let _ = decode_request(key, v, &bytes);
            }
        }
    }

    #[test]
    fn arbitrary_record_batches_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let (mut out, mut batches) = (Vec::new(), Vec::new());
        if decode_batches(&bytes, &[], 0, &mut out, &mut batches).is_err() {
            prop_assert!(out.is_empty() && batches.is_empty());
        }
        let budget = MemoryBudget::new(64 << 20).connection();
        if let Ok(inflated) = inflate(&bytes, &mut Room::new(&budget)) {
            let (mut out, mut batches) = (Vec::new(), Vec::new());
            let _ = decode_batches(&bytes, inflated.bodies(), 0, &mut out, &mut batches);
        }
    }

    #[test]
    fn arbitrary_compressed_payloads_never_panic(
        codec in 1u16..=4,
        xerial in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        // A sealed batch (right length, right CRC-32C) around bytes that are no stream, or
        // for snappy, behind the xerial header.
        let mut batch = BytesMut::new();
        encode_batch(&stored(&[(b"k".to_vec(), b"v".to_vec(), 1)], 0), &mut batch);
        batch.truncate(at::RECORDS);
        if codec == 2 && xerial {
            batch.extend_from_slice(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
        }
        batch.extend_from_slice(&payload);
        batch[at::ATTRIBUTES].copy_from_slice(&codec.to_be_bytes());
        let length = (batch.len() - at::LEADER_EPOCH.start) as u32;
        batch[at::BATCH_LENGTH].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&batch[at::ATTRIBUTES.start..]);
        batch[at::CRC].copy_from_slice(&crc.to_be_bytes());
        let budget = MemoryBudget::new(64 << 20).connection();
        if let Ok(inflated) = inflate(&batch, &mut Room::new(&budget)) {
            let (mut out, mut batches) = (Vec::new(), Vec::new());
            let _ = decode_batches(&batch, inflated.bodies(), 0, &mut out, &mut batches);
        }
    }

    #[test]
    fn fetched_batches_decode_to_the_stored_records(model in model(), first in 0u64..1_000_000) {
        let mut batch = BytesMut::new();
        prop_assert_eq!(encode_batch(&stored(&model, first), &mut batch), model.len());
        // Our decoder gives the model back.
        let (mut out, mut batches) = (Vec::new(), Vec::new());
        decode_batches(&batch, &[], 0, &mut out, &mut batches).unwrap();
        let got: Vec<_> = out.iter().map(|r| (r.key.to_vec(), r.value.to_vec(), r.timestamp_ms)).collect();
        prop_assert_eq!(&got, &model);
        // And so does the kafka-protocol crate's, an independent implementation.
        let mut b = batch.clone().freeze();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut b).unwrap();
        let recs: Vec<_> = sets.into_iter().flat_map(|s| s.records).collect();
        prop_assert_eq!(recs.len(), model.len());
        for (i, (r, (k, v, ts))) in recs.iter().zip(&model).enumerate() {
            prop_assert_eq!(r.offset, (first + i as u64) as i64);
            prop_assert_eq!(r.key.as_deref().unwrap_or_default(), &k[..]);
            prop_assert_eq!(r.value.as_deref(), Some(&v[..]));
            prop_assert_eq!(r.timestamp, *ts as i64);
        }
    }

    #[test]
    fn a_damaged_batch_is_refused_whole(model in model(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut batch = BytesMut::new();
        encode_batch(&stored(&model, 0), &mut batch);
        let i = at.index(batch.len());
        batch[i] ^= 1 << bit;
        let (mut out, mut batches) = (Vec::new(), Vec::new());
        match decode_batches(&batch, &[], 0, &mut out, &mut batches) {
            // Only the base offset, length, leader epoch and magic are outside the CRC: a flip
            // in the offset or epoch still decodes, to the same records.
            Ok(()) => prop_assert!(i < 8 || (12..16).contains(&i), "flip at {} accepted", i),
            Err(_) => prop_assert!(out.is_empty()),
        }
    }
}
