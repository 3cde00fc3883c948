//! The Kafka protocol against the real binary: every advertised API at every advertised
//! version, the ApiVersions fallback, one storage shared with STRP, acks, idempotent
//! retries and long polls. Bad input is in `kafka_bad_input.rs`.

mod common;

use std::net::SocketAddr;

use common::kafka::{
    batch, create_partitions, create_topic, fetch_request, idempotent_batch, name, produce,
    records, KafkaClient,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use stream_server::kafka::versions::SUPPORTED;
use test_support::ServerProcess;

fn start() -> (ServerProcess, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (p, addr) = common::start(dir.path(), &["--advertised-host=127.0.0.1"]);
    (p, addr, dir)
}

fn metadata(c: &mut KafkaClient, v: i16, topics: &[&str]) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                .collect(),
        ))
        // Only v4 and later carry the flag (and let the client turn creation off).
        .with_allow_auto_topic_creation(v < 4);
    c.call(ApiKey::Metadata, v, &req)
}

fn create(c: &mut KafkaClient, v: i16, topic: &str, partitions: i32) -> CreateTopicsResponse {
    c.call(ApiKey::CreateTopics, v, &create_topic(topic, partitions))
}

fn fetch(c: &mut KafkaClient, v: i16, topic: &str, partition: i32, offset: i64) -> FetchResponse {
    let req = fetch_request(topic, partition, offset, 0, 0);
    c.call(ApiKey::Fetch, v, &req)
}

fn list_offset(c: &mut KafkaClient, v: i16, topic: &str, timestamp: i64) -> (i16, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, v, &req);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset)
}

fn produce_one(c: &mut KafkaClient, v: i16, topic: &str, value: &[u8]) -> (i16, i64) {
    let req = produce(topic, 0, batch(&[(Some(b"k"), value)], 1_000), -1);
    let r: ProduceResponse = c.call(ApiKey::Produce, v, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Joins `group` as a new member (asking for an id first from v4): (member id, generation).
fn join_group(c: &mut KafkaClient, v: i16, group: &str) -> (String, i32) {
    let mut req = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(if v >= 1 { 30_000 } else { -1 })
        .with_member_id(StrBytes::from_static_str(""))
        .with_group_instance_id(None)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(StrBytes::from_static_str("range"))
        .with_metadata(bytes::Bytes::from_static(b"subscription"))]);
    let mut r: JoinGroupResponse = c.call(ApiKey::JoinGroup, v, &req);
    if v >= 4 {
        assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
        req.member_id = r.member_id.clone();
        r = c.call(ApiKey::JoinGroup, v, &req);
    }
    assert_eq!(r.error_code, 0, "JoinGroup v{v}");
    assert_eq!(r.leader, r.member_id, "the only member leads");
    assert_eq!(&r.members[0].metadata[..], b"subscription");
    (r.member_id.to_string(), r.generation_id)
}

/// The leader's SyncGroup with an assignment of `assigned` for itself; returns what it got.
fn sync_group(c: &mut KafkaClient, v: i16, group: &str, member: &str, generation: i32) -> String {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.to_string()))
        .with_group_instance_id(None)
        .with_protocol_type(if v >= 5 {
            Some(StrBytes::from_static_str("consumer"))
        } else {
            None
        })
        .with_protocol_name(if v >= 5 {
            Some(StrBytes::from_static_str("range"))
        } else {
            None
        })
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member.to_string()))
                .with_assignment(bytes::Bytes::from_static(b"assigned")),
        ]);
    let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, v, &req);
    assert_eq!(r.error_code, 0, "SyncGroup v{v}");
    String::from_utf8(r.assignment.to_vec()).unwrap()
}

fn leave_group(c: &mut KafkaClient, v: i16, group: &str, member: &str) -> i16 {
    let member = StrBytes::from_string(member.to_string());
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())));
    let req = if v >= 3 {
        req.with_members(vec![leave_group_request::MemberIdentity::default()
            .with_member_id(member)
            .with_group_instance_id(None)
            .with_reason(None)])
    } else {
        req.with_member_id(member)
    };
    let r: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, v, &req);
    if v >= 3 {
        r.members[0].error_code
    } else {
        r.error_code
    }
}

fn commit(
    c: &mut KafkaClient,
    v: i16,
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    offset: i64,
) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.to_string()))
        .with_group_instance_id(None)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(StrBytes::from_static_str(""))),
                ]),
        ]);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, v, &req);
    r.topics[0].partitions[0].error_code
}

fn committed(c: &mut KafkaClient, v: i16, group: &str, topic: &str) -> i64 {
    let gid = GroupId(StrBytes::from_string(group.to_string()));
    let req = if v >= 8 {
        OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(gid)
                .with_member_id(None)
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(name(topic))
                        .with_partition_indexes(vec![0]),
                ])),
        ])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(gid)
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(name(topic))
                    .with_partition_indexes(vec![0]),
            ]))
    };
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, v, &req);
    if v >= 8 {
        r.groups[0].topics[0].partitions[0].committed_offset
    } else {
        r.topics[0].partitions[0].committed_offset
    }
}

#[test]
fn every_advertised_api_answers_at_every_advertised_version() {
    let (_p, addr, _d) = start();
    let mut c = KafkaClient::connect(addr);
    let topic = "versions";
    assert_eq!(create(&mut c, 2, topic, 2).topics[0].error_code, 0);
    let mut produced = 0i64;
    for &(key, min, max) in SUPPORTED {
        for v in min..=max {
            let ctx = format!("{key:?} v{v}");
            match key {
                ApiKey::ApiVersions => {
                    let r: ApiVersionsResponse = c.call(key, v, &ApiVersionsRequest::default());
                    assert_eq!(r.error_code, 0, "{ctx}");
                    assert_eq!(r.api_keys.len(), SUPPORTED.len(), "{ctx}");
                }
                ApiKey::Metadata => {
                    let r = metadata(&mut c, v, &[topic]);
                    assert_eq!(r.brokers[0].host.as_str(), "127.0.0.1", "{ctx}");
                    assert_eq!(r.brokers[0].port, i32::from(addr.port()), "{ctx}");
                    assert_eq!(r.topics[0].error_code, 0, "{ctx}");
                    assert_eq!(r.topics[0].partitions.len(), 2, "{ctx}");
                }
                ApiKey::CreateTopics => {
                    let t = format!("created-{v}");
                    assert_eq!(create(&mut c, v, &t, 3).topics[0].error_code, 0, "{ctx}");
                    assert_eq!(create(&mut c, v, &t, 3).topics[0].error_code, 36, "{ctx}");
                    assert_eq!(metadata(&mut c, 12, &[&t]).topics[0].partitions.len(), 3);
                }
                ApiKey::DeleteTopics => {
                    let t = format!("deleted-{v}");
                    assert_eq!(create(&mut c, 2, &t, 1).topics[0].error_code, 0);
                    let req = DeleteTopicsRequest::default()
                        .with_topic_names(if v < 6 { vec![name(&t)] } else { vec![] })
                        .with_topics(if v >= 6 {
                            vec![DeleteTopicState::default().with_name(Some(name(&t)))]
                        } else {
                            vec![]
                        })
                        .with_timeout_ms(10_000);
                    let r: DeleteTopicsResponse = c.call(key, v, &req);
                    assert_eq!(r.responses[0].error_code, 0, "{ctx}");
                    assert_eq!(metadata(&mut c, 12, &[&t]).topics[0].error_code, 3, "{ctx}");
                }
                ApiKey::CreatePartitions => {
                    let t = format!("grown-{v}");
                    assert_eq!(create(&mut c, 2, &t, 1).topics[0].error_code, 0);
                    let r: CreatePartitionsResponse =
                        c.call(key, v, &create_partitions(&[(&t, 3)], false));
                    assert_eq!(r.results[0].name.0.as_str(), t, "{ctx}");
                    assert_eq!(r.results[0].error_code, 0, "{ctx}");
                    assert_eq!(metadata(&mut c, 12, &[&t]).topics[0].partitions.len(), 3);
                    let r: CreatePartitionsResponse =
                        c.call(key, v, &create_partitions(&[(&t, 3)], false));
                    assert_eq!(r.results[0].error_code, 37, "{ctx}: INVALID_PARTITIONS");
                }
                ApiKey::Produce => {
                    let (err, base) = produce_one(&mut c, v, topic, format!("v{v}").as_bytes());
                    assert_eq!((err, base), (0, produced), "{ctx}");
                    produced += 1;
                }
                ApiKey::Fetch => {
                    let r = fetch(&mut c, v, topic, 0, 0);
                    let p = &r.responses[0].partitions[0];
                    assert_eq!(p.error_code, 0, "{ctx}");
                    assert_eq!(p.high_watermark, produced, "{ctx}");
                    let recs = records(&p.records);
                    assert_eq!(recs.len() as i64, produced, "{ctx}");
                    assert_eq!(recs[0].key.as_deref(), Some(&b"k"[..]), "{ctx}");
                    assert_eq!(recs[0].timestamp, 1_000, "{ctx}");
                }
                ApiKey::ListOffsets => {
                    assert_eq!(list_offset(&mut c, v, topic, -2), (0, 0), "{ctx}");
                    assert_eq!(list_offset(&mut c, v, topic, -1), (0, produced), "{ctx}");
                }
                ApiKey::InitProducerId => {
                    let r: InitProducerIdResponse = c.call(
                        key,
                        v,
                        &InitProducerIdRequest::default()
                            .with_transactional_id(None)
                            .with_producer_id(ProducerId(-1))
                            .with_producer_epoch(-1),
                    );
                    assert_eq!(r.error_code, 0, "{ctx}");
                    assert!(r.producer_id.0 >= 0, "{ctx}");
                    assert_eq!(r.producer_epoch, 0, "{ctx}");
                }
                ApiKey::FindCoordinator => {
                    let g = StrBytes::from_static_str("g");
                    let req = if v >= 4 {
                        FindCoordinatorRequest::default().with_coordinator_keys(vec![g])
                    } else {
                        FindCoordinatorRequest::default().with_key(g)
                    };
                    let r: FindCoordinatorResponse = c.call(key, v, &req);
                    let port = if v >= 4 {
                        r.coordinators[0].port
                    } else {
                        r.port
                    };
                    assert_eq!(port, i32::from(addr.port()), "{ctx}");
                }
                ApiKey::JoinGroup => {
                    let g = format!("join-{v}");
                    let (member, generation) = join_group(&mut c, v, &g);
                    assert_eq!(generation, 1, "{ctx}");
                    sync_group(&mut c, 5, &g, &member, generation);
                    leave_group(&mut c, 5, &g, &member);
                }
                ApiKey::SyncGroup => {
                    let g = format!("sync-{v}");
                    let (member, generation) = join_group(&mut c, 9, &g);
                    assert_eq!(
                        sync_group(&mut c, v, &g, &member, generation),
                        "assigned",
                        "{ctx}"
                    );
                    leave_group(&mut c, 5, &g, &member);
                }
                ApiKey::Heartbeat => {
                    let g = format!("heartbeat-{v}");
                    let (member, generation) = join_group(&mut c, 9, &g);
                    sync_group(&mut c, 5, &g, &member, generation);
                    let req = HeartbeatRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(g.clone())))
                        .with_generation_id(generation)
                        .with_member_id(StrBytes::from_string(member.clone()));
                    let r: HeartbeatResponse = c.call(key, v, &req);
                    assert_eq!(r.error_code, 0, "{ctx}");
                    leave_group(&mut c, 5, &g, &member);
                }
                ApiKey::LeaveGroup => {
                    let g = format!("leave-{v}");
                    let (member, _) = join_group(&mut c, 9, &g);
                    assert_eq!(leave_group(&mut c, v, &g, &member), 0, "{ctx}");
                    assert_eq!(
                        leave_group(&mut c, v, &g, &member),
                        25,
                        "{ctx}: UNKNOWN_MEMBER_ID"
                    );
                }
                ApiKey::OffsetCommit => {
                    let g = format!("commit-{v}");
                    let (member, generation) = join_group(&mut c, 9, &g);
                    sync_group(&mut c, 5, &g, &member, generation);
                    assert_eq!(
                        commit(&mut c, v, &g, &member, generation, topic, 1),
                        0,
                        "{ctx}"
                    );
                    assert_eq!(committed(&mut c, 9, &g, topic), 1, "{ctx}");
                    assert_eq!(
                        commit(&mut c, v, &g, &member, generation + 1, topic, 1),
                        22,
                        "{ctx}"
                    );
                    leave_group(&mut c, 5, &g, &member);
                }
                ApiKey::OffsetFetch => {
                    let g = format!("fetch-{v}");
                    assert_eq!(committed(&mut c, v, &g, topic), -1, "{ctx}");
                    // A consumer that assigns itself commits with generation -1.
                    assert_eq!(commit(&mut c, 9, &g, "", -1, topic, 2), 0, "{ctx}");
                    assert_eq!(committed(&mut c, v, &g, topic), 2, "{ctx}");
                }
                ApiKey::ListGroups => {
                    let g = format!("list-{v}");
                    commit(&mut c, 9, &g, "", -1, topic, 1);
                    let r: ListGroupsResponse = c.call(key, v, &ListGroupsRequest::default());
                    assert!(r.groups.iter().any(|l| l.group_id.0.as_str() == g), "{ctx}");
                }
                ApiKey::DescribeGroups => {
                    let g = format!("describe-{v}");
                    let (member, generation) = join_group(&mut c, 9, &g);
                    sync_group(&mut c, 5, &g, &member, generation);
                    let req = DescribeGroupsRequest::default()
                        .with_groups(vec![GroupId(StrBytes::from_string(g.clone()))]);
                    let r: DescribeGroupsResponse = c.call(key, v, &req);
                    assert_eq!(r.groups[0].group_state.as_str(), "Stable", "{ctx}");
                    assert_eq!(r.groups[0].members[0].member_id.as_str(), member, "{ctx}");
                    assert_eq!(&r.groups[0].members[0].member_assignment[..], b"assigned");
                    leave_group(&mut c, 5, &g, &member);
                }
                ApiKey::DescribeConfigs => {
                    let req = DescribeConfigsRequest::default().with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_static_str(topic))
                            .with_configuration_keys(None),
                    ]);
                    let r: DescribeConfigsResponse = c.call(key, v, &req);
                    assert_eq!(r.results[0].error_code, 0, "{ctx}");
                    assert!(
                        r.results[0]
                            .configs
                            .iter()
                            .any(|c| c.name.as_str() == "retention.ms"),
                        "{ctx}"
                    );
                }
                other => panic!("{other:?} is advertised but this test does not cover it"),
            }
        }
    }
}

#[test]
fn api_versions_above_ours_is_answered_at_v0_with_the_list() {
    let (_p, addr, _d) = start();
    let mut c = KafkaClient::connect(addr);
    let id = c.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    // Re-sent by hand at a version beyond ours: the header is the same shape (v2).
    let _: ApiVersionsResponse = c.recv(ApiKey::ApiVersions, 3, id);
    let mut raw = Vec::new();
    raw.extend_from_slice(&18i16.to_be_bytes());
    raw.extend_from_slice(&99i16.to_be_bytes());
    raw.extend_from_slice(&7i32.to_be_bytes());
    raw.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    raw.push(0); // no tagged fields
    c.send_raw(&common::kafka::frame(&raw));
    let r: ApiVersionsResponse = c.recv(ApiKey::ApiVersions, 0, 7);
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 3));
}

#[test]
fn strp_and_kafka_clients_share_one_port_and_the_same_logs() {
    let (_p, addr, _d) = start();
    let mut k = KafkaClient::connect(addr);
    let mut s = common::Client::connect(addr);
    assert_eq!(
        s.create_topic("shared", 1).error,
        stream_proto::ErrorCode::None
    );
    let req = produce(
        "shared",
        0,
        batch(&[(Some(b"key"), b"from kafka")], 1_234_567),
        1,
    );
    let r: ProduceResponse = k.call(ApiKey::Produce, 9, &req);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    s.produce("shared", b"", b"from strp");
    let msgs = s.fetch_all("shared", 0, 0);
    assert_eq!(msgs[0].key.as_ref(), b"key");
    assert_eq!(msgs[0].value.as_ref(), b"from kafka");
    assert_eq!(msgs[0].timestamp_ms, 1_234_567);
    let f = fetch(&mut k, 12, "shared", 0, 0);
    let recs = records(&f.responses[0].partitions[0].records);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].key, None, "an empty STRP key is a null Kafka key");
    assert_eq!(recs[1].value.as_deref(), Some(&b"from strp"[..]));
    assert_eq!(recs[1].timestamp as u64, msgs[1].timestamp_ms);
    assert_eq!(recs[1].offset, 1);
}

#[test]
fn a_fetch_from_inside_a_batch_starts_at_the_offset_asked_for() {
    let (_p, addr, _d) = start();
    let mut k = KafkaClient::connect(addr);
    create(&mut k, 7, "inside", 1);
    let three: [(Option<&[u8]>, &[u8]); 3] = [(None, b"a"), (None, b"b"), (None, b"c")];
    let r: ProduceResponse = k.call(
        ApiKey::Produce,
        9,
        &produce("inside", 0, batch(&three, 5), -1),
    );
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 0);
    let recs = records(&fetch(&mut k, 12, "inside", 0, 1).responses[0].partitions[0].records);
    let got: Vec<_> = recs
        .iter()
        .map(|r| (r.offset, r.value.clone().unwrap()))
        .collect();
    assert_eq!(got, vec![(1, "b".into()), (2, "c".into())]);
}

#[test]
fn acks_zero_gets_no_answer_and_is_stored() {
    let (_p, addr, _d) = start();
    let mut k = KafkaClient::connect(addr);
    create(&mut k, 7, "acks0", 1);
    k.send(
        ApiKey::Produce,
        9,
        &produce("acks0", 0, batch(&[(None, b"x")], 5), 0),
    );
    // The next answer on the connection is the next request's.
    assert_eq!(list_offset(&mut k, 7, "acks0", -1), (0, 1));
}

#[test]
fn an_idempotent_retry_is_answered_with_its_offset_and_not_stored_twice() {
    let (_p, addr, _d) = start();
    let mut k = KafkaClient::connect(addr);
    create(&mut k, 7, "idem", 1);
    let init: InitProducerIdResponse = k.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    let pid = init.producer_id.0;
    let send = |k: &mut KafkaClient, seq: i32, n: usize| -> (i16, i64) {
        let recs: Vec<(Option<&[u8]>, &[u8])> = (0..n).map(|_| (None, &b"v"[..])).collect();
        let req = produce("idem", 0, idempotent_batch(pid, 0, seq, &recs, 9), -1);
        let r: ProduceResponse = k.call(ApiKey::Produce, 9, &req);
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    };
    assert_eq!(send(&mut k, 0, 3), (0, 0));
    assert_eq!(send(&mut k, 0, 3), (0, 0), "a retry gets the first answer");
    assert_eq!(
        send(&mut k, 5, 1).0,
        45,
        "a gap is OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(send(&mut k, 3, 2), (0, 3));
    assert_eq!(
        list_offset(&mut k, 7, "idem", -1),
        (0, 5),
        "nothing stored twice"
    );
}

#[test]
fn a_long_poll_ends_when_another_client_produces() {
    let (_p, addr, _d) = start();
    let mut waiter = KafkaClient::connect(addr);
    let mut producer = KafkaClient::connect(addr);
    create(&mut producer, 7, "poll", 1);
    // Longer than the test's read timeout: only a wake-up by the produce answers in time.
    let id = waiter.send(ApiKey::Fetch, 12, &fetch_request("poll", 0, 0, 60_000, 1));
    let (err, _) = produce_one(&mut producer, 9, "poll", b"wake");
    assert_eq!(err, 0);
    let r: FetchResponse = waiter.recv(ApiKey::Fetch, 12, id);
    let recs = records(&r.responses[0].partitions[0].records);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].value.as_deref(), Some(&b"wake"[..]));
}

#[test]
fn metadata_creates_a_topic_it_names_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, addr) = common::start(dir.path(), &["--kafka-auto-create-partitions=3"]);
    let mut k = KafkaClient::connect(addr);
    assert_eq!(metadata(&mut k, 12, &["not-asked"]).topics[0].error_code, 3);
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("asked")))
        ]))
        .with_allow_auto_topic_creation(true);
    let r: MetadataResponse = k.call(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 3);
    let (_q, addr2) = common::start(
        tempfile::tempdir().unwrap().path(),
        &["--kafka-auto-create-topics=false"],
    );
    let mut k2 = KafkaClient::connect(addr2);
    let r: MetadataResponse = k2.call(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

#[test]
fn acknowledged_acks_all_produces_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, addr) = common::start(dir.path(), &[]);
    let mut k = KafkaClient::connect(addr);
    create(&mut k, 7, "durable", 1);
    // Pipelined: several produces in flight share group commits.
    let ids: Vec<i32> = (0..200)
        .map(|i| {
            let v = format!("m{i}");
            let req = produce("durable", 0, batch(&[(None, v.as_bytes())], 1), -1);
            k.send(ApiKey::Produce, 9, &req)
        })
        .collect();
    for id in ids {
        let r: ProduceResponse = k.recv(ApiKey::Produce, 9, id);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    p.kill9();
    let (_p2, addr2) = common::start(dir.path(), &[]);
    let mut k = KafkaClient::connect(addr2);
    let mut offset = 0;
    let mut values = Vec::new();
    while offset < 200 {
        let r = fetch(&mut k, 12, "durable", 0, offset);
        let recs = records(&r.responses[0].partitions[0].records);
        assert!(
            !recs.is_empty(),
            "acknowledged records are missing from offset {offset}"
        );
        offset = recs.last().unwrap().offset + 1;
        values.extend(recs.into_iter().map(|r| r.value.unwrap()));
    }
    let want: Vec<bytes::Bytes> = (0..200).map(|i| format!("m{i}").into()).collect();
    assert_eq!(values, want);
}
