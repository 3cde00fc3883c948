//! Property tests: every request and response round-trips through encode/decode, and no
//! input (arbitrary bytes, truncations) makes a decoder panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use stream_proto::*;

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{0,12}"
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        0u8..4,
        any::<u8>(),
        blob(),
        blob(),
    )
        .prop_map(|(o, t, p, pr, c, k, v)| Message::new(o, t, p, pr, c, k, v))
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::ApiVersions),
        Just(Request::Metadata),
        Just(Request::ListTopics),
        Just(Request::Disconnect),
        Just(Request::Heartbeat(None)),
        (name(), any::<u32>())
            .prop_map(|(name, partitions)| Request::CreateTopic { name, partitions }),
        name().prop_map(|name| Request::DeleteTopic { name }),
        (name(), blob(), blob(), 0u8..4).prop_map(|(topic, key, value, priority)| {
            Request::Produce {
                topic,
                key,
                value,
                priority,
            }
        }),
        (name(), any::<u32>(), any::<u64>(), any::<u32>()).prop_map(
            |(topic, partition, offset, max_messages)| Request::Fetch {
                topic,
                partition,
                offset,
                max_messages
            }
        ),
        (
            name(),
            any::<u32>(),
            proptest::collection::vec((blob(), blob(), 0u8..4), 0..8)
        )
            .prop_map(|(topic, partition, recs)| Request::BatchProduce {
                topic,
                partition,
                records: recs
                    .into_iter()
                    .map(|(key, value, priority)| ProduceRecord {
                        key,
                        value,
                        priority
                    })
                    .collect()
            }),
        (
            name(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(
                |(topic, partition, offset, max_messages, max_bytes, max_wait_ms)| {
                    Request::FetchWait {
                        topic,
                        partition,
                        offset,
                        max_messages,
                        max_bytes,
                        max_wait_ms,
                    }
                }
            ),
        (name(), name()).prop_map(|(group_id, topic)| Request::JoinGroup { group_id, topic }),
        (name(), name()).prop_map(|(group_id, consumer_id)| Request::LeaveGroup {
            group_id,
            consumer_id
        }),
        (name(), name(), any::<u32>(), any::<u64>()).prop_map(
            |(group_id, topic, partition, offset)| Request::CommitOffset {
                group_id,
                topic,
                partition,
                offset
            }
        ),
        (name(), name(), any::<u32>()).prop_map(|(group_id, topic, partition)| {
            Request::FetchOffset {
                group_id,
                topic,
                partition,
            }
        }),
        (name(), name(), name(), any::<u32>()).prop_map(
            |(group_id, topic, consumer_id, session_timeout_ms)| Request::JoinGroupV2 {
                group_id,
                topic,
                consumer_id,
                session_timeout_ms
            }
        ),
        (
            name(),
            name(),
            any::<u32>(),
            name(),
            any::<u32>(),
            any::<u64>()
        )
            .prop_map(
                |(group_id, consumer_id, generation, topic, partition, offset)| {
                    Request::GroupCommit {
                        group_id,
                        consumer_id,
                        generation,
                        topic,
                        partition,
                        offset,
                    }
                }
            ),
        (name(), name(), any::<u32>()).prop_map(|(group_id, consumer_id, generation)| {
            Request::Heartbeat(Some(GroupHeartbeat {
                group_id,
                consumer_id,
                generation,
            }))
        }),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    (code(), name()).prop_map(|(error, message)| Status { error, message })
}

fn fetch() -> impl Strategy<Value = FetchResponse> {
    (
        code(),
        name(),
        any::<u64>(),
        proptest::collection::vec(message(), 0..5),
    )
        .prop_map(|(error, message, high_watermark, msgs)| {
            let mut records = BytesMut::new();
            for m in &msgs {
                encode_record(&mut records, m);
            }
            FetchResponse {
                error,
                message,
                high_watermark,
                count: msgs.len() as u32,
                records: records.freeze(),
            }
        })
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (
            code(),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..5)
        )
            .prop_map(|(error, v)| Response::ApiVersions {
                error,
                versions: v
                    .into_iter()
                    .map(|(type_id, version)| ApiVersion { type_id, version })
                    .collect()
            }),
        (
            code(),
            proptest::collection::vec((name(), any::<u32>()), 0..5)
        )
            .prop_map(|(error, t)| {
                Response::Metadata {
                    error,
                    topics: t
                        .into_iter()
                        .map(|(name, partitions)| TopicInfo { name, partitions })
                        .collect(),
                }
            }),
        status().prop_map(Response::CreateTopic),
        status().prop_map(Response::DeleteTopic),
        (code(), proptest::collection::vec(name(), 0..5))
            .prop_map(|(error, topics)| Response::ListTopics { error, topics }),
        (code(), name(), any::<u32>(), any::<u64>()).prop_map(
            |(error, message, partition, offset)| Response::Produce {
                error,
                message,
                partition,
                offset
            }
        ),
        fetch().prop_map(Response::Fetch),
        (
            code(),
            name(),
            proptest::collection::vec((any::<u32>(), any::<u64>()), 0..6)
        )
            .prop_map(|(error, message, o)| Response::BatchProduce {
                error,
                message,
                offsets: o
                    .into_iter()
                    .map(|(partition, offset)| ProducedOffset { partition, offset })
                    .collect()
            }),
        (any::<u64>(), fetch()).prop_map(|(log_start_offset, fetch)| Response::FetchWait {
            log_start_offset,
            fetch
        }),
        (
            code(),
            name(),
            name(),
            proptest::collection::vec(any::<u32>(), 0..6)
        )
            .prop_map(
                |(error, message, consumer_id, partitions)| Response::JoinGroup {
                    error,
                    message,
                    consumer_id,
                    partitions
                }
            ),
        status().prop_map(Response::LeaveGroup),
        status().prop_map(Response::CommitOffset),
        (code(), any::<u64>()).prop_map(|(error, offset)| Response::FetchOffset { error, offset }),
        (
            code(),
            name(),
            name(),
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 0..6)
        )
            .prop_map(|(error, message, consumer_id, generation, partitions)| {
                Response::JoinGroupV2 {
                    error,
                    message,
                    consumer_id,
                    generation,
                    partitions,
                }
            }),
        status().prop_map(Response::GroupCommit),
        status().prop_map(Response::Heartbeat),
        status().prop_map(Response::Disconnect),
        (1000u32..2000, status())
            .prop_map(|(type_id, status)| Response::Unknown { type_id, status }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_round_trip(req in request()) {
        let mut wire = BytesMut::from(&req.to_frame()[..]);
        let frame = FrameDecoder::new().decode(&mut wire).unwrap().unwrap();
        prop_assert!(wire.is_empty());
        prop_assert_eq!(frame.header.type_id, req.type_id());
        prop_assert_eq!(Request::decode(frame.header.type_id, frame.payload).unwrap(), req);
    }

    #[test]
    fn responses_round_trip(resp in response()) {
        let mut wire = BytesMut::from(&resp.to_frame()[..]);
        let frame = FrameDecoder::new().decode(&mut wire).unwrap().unwrap();
        prop_assert!(wire.is_empty());
        let back = Response::decode(frame.header.type_id, frame.payload).unwrap();
        prop_assert_eq!(&back, &resp);
        if let Response::Fetch(f) = &back {
            for m in f.messages().unwrap() {
                prop_assert!(m.verify());
            }
        }
    }

    #[test]
    fn error_responses_decode_as_their_type(type_id in 0u32..64, c in code(), msg in name()) {
        let resp = Response::error(type_id, c, msg);
        let frame = resp.to_frame();
        let back = Response::decode(type_id, frame.slice(HEADER_LEN..)).unwrap();
        prop_assert_eq!(back.error_code(), c);
        prop_assert_eq!(back.type_id(), type_id);
    }

    #[test]
    fn truncated_requests_fail_cleanly(req in request(), cut in any::<prop::sample::Index>()) {
        let frame = req.to_frame();
        let payload = frame.slice(HEADER_LEN..);
        if !payload.is_empty() {
            let n = cut.index(payload.len());
            // A strict prefix of a payload never decodes to the same request.
            if let Ok(r) = Request::decode(req.type_id(), payload.slice(..n)) {
                prop_assert_ne!(r, req);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(type_id in 0u32..64, data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let b = Bytes::from(data.clone());
        let _ = Request::decode(type_id, b.clone());
        let _ = Response::decode(type_id, b.clone());
        let _ = Message::decode(b.clone());
        let _ = decode_records(&b, type_id);
        let mut buf = BytesMut::from(&data[..]);
        let mut d = FrameDecoder::new();
        while let Ok(Some(_)) = d.decode(&mut buf) {}
    }

    #[test]
    fn arbitrary_frames_after_valid_header_never_panic(type_id in 0u32..64, data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut buf = BytesMut::new();
        Header::new(type_id, data.len() as u32).encode(&mut buf);
        buf.extend_from_slice(&data);
        let f = FrameDecoder::new().decode(&mut buf).unwrap().unwrap();
        let _ = Request::decode(f.header.type_id, f.payload.clone());
        let _ = Response::decode(f.header.type_id, f.payload);
    }

    #[test]
    fn murmur_partition_in_range(key in proptest::collection::vec(any::<u8>(), 1..64), n in 1u32..1000) {
        prop_assert!(partition_for_key(&key, n) < n);
    }
}

#[test]
fn lying_counts_do_not_allocate() {
    // A BATCH_PRODUCE claiming 4 billion records in a 20-byte payload fails without trying
    // to reserve them.
    let mut p = BytesMut::new();
    stream_proto::wire::put_str(&mut p, "t");
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&u32::MAX.to_le_bytes());
    let e = Request::decode(22, p.freeze()).unwrap_err();
    assert!(e.to_string().contains("record count"), "{e}");
}

#[test]
fn decode_errors_name_the_field() {
    let e = Request::decode(10, Bytes::from_static(&[1, 0, 0, 0, b'a'])).unwrap_err();
    assert!(e.to_string().contains("partitions"), "{e}");
    let e = Request::decode(99, Bytes::new()).unwrap_err();
    assert_eq!(e, DecodeError::UnknownType(99));
    let e = Request::decode(12, Bytes::from_static(&[0])).unwrap_err();
    assert_eq!(e, DecodeError::TrailingBytes { count: 1 });
    let mut p = BytesMut::new();
    Request::Produce {
        topic: "t".into(),
        key: Bytes::new(),
        value: Bytes::new(),
        priority: 9,
    }
    .encode_payload(&mut p);
    let e = Request::decode(20, p.freeze()).unwrap_err();
    assert!(e.to_string().contains("priority"), "{e}");
}
