//! The real stream-cli binary against the real stream-server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use test_support::stream_server as common;
use test_support::{bin_path, run_with_input};

fn cli(addr: &str, args: &[&str]) -> Output {
    Command::new(bin_path("stream-cli"))
        .env("STREAM_ADDR", addr)
        .args(args)
        .output()
        .expect("run stream-cli")
}

fn ok(addr: &str, args: &[&str]) -> String {
    let out = cli(addr, args);
    assert!(
        out.status.success(),
        "stream-cli {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(addr: &str, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(addr, &a)).unwrap()
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn produce(addr: &str, args: &[&str], input: &str) -> String {
    let out = run_with_input(
        Command::new(bin_path("stream-cli"))
            .args(["--addr", addr])
            .args(args),
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn topics_create_list_describe_delete() {
    let s = common::start();
    let a = &s.addr;
    assert!(ok(a, &["topics", "create", "orders", "--partitions", "3"]).contains("created"));
    let v = json(a, &["topics", "create", "fills"]);
    assert_eq!(v["partitions"], 1);
    let table = ok(a, &["topics", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("TOPIC") && lines[0].contains("PARTITIONS"));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("orders") && l.ends_with('3')));
    let v = json(a, &["topics", "list"]);
    assert_eq!(
        v,
        serde_json::json!([{"name": "fills", "partitions": 1}, {"name": "orders", "partitions": 3}])
    );
    let v = json(a, &["topics", "describe", "orders"]);
    assert_eq!(v["partitions"], 3);
    assert_eq!(v["messages"], 0);
    produce(a, &["produce", "orders", "-p", "2"], "x\ny\n");
    let v = json(a, &["topics", "describe", "orders"]);
    assert_eq!(v["messages"], 2);
    assert_eq!(v["partition_info"][2]["high_watermark"], 2);
    assert_eq!(v["partition_info"][2]["log_start_offset"], 0);
    let table = ok(a, &["topics", "describe", "orders"]);
    assert!(table.starts_with("topic orders: 3 partition(s), 2 message(s)"));
    assert!(table
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["2", "0", "2"]));
    // errors: non-zero exit and the server's code on stderr
    let out = cli(a, &["topics", "create", "orders"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOPIC_ALREADY_EXISTS"));
    ok(a, &["topics", "delete", "fills"]);
    let out = cli(a, &["topics", "describe", "fills"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOPIC_NOT_FOUND"));
    // no server: a clear connection error
    let out = cli("127.0.0.1:1", &["topics", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("connecting to 127.0.0.1:1"));
}

#[test]
fn produce_lines_then_consume_them() {
    let s = common::start();
    let a = &s.addr;
    ok(a, &["topics", "create", "ev", "--partitions", "2"]);
    let v: Value = serde_json::from_str(&produce(
        a,
        &["--json", "produce", "ev"],
        "k1\thello\nk2\tworld\nno key here\nk1\tagain\twith tab\n",
    ))
    .unwrap();
    assert_eq!(v["produced"], 4);
    let msgs = json_lines(&ok(a, &["--json", "consume", "ev"]));
    assert_eq!(msgs.len(), 4);
    let mut pairs: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap().into(),
                m["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("".into(), "no key here".into()),
            ("k1".into(), "again\twith tab".into()),
            ("k1".into(), "hello".into()),
            ("k2".into(), "world".into()),
        ]
    );
    // same key, same partition, in order
    let k1: Vec<&Value> = msgs.iter().filter(|m| m["key"] == "k1").collect();
    assert_eq!(k1[0]["partition"], k1[1]["partition"]);
    assert_eq!(k1[0]["value"], "hello");

    // an explicit partition, then consume only it from an offset
    produce(a, &["produce", "ev", "--partition", "1"], "a\nb\nc\n");
    let hw = json(a, &["topics", "describe", "ev"])["partition_info"][1]["high_watermark"]
        .as_u64()
        .unwrap();
    let out = ok(
        a,
        &[
            "consume",
            "ev",
            "-p",
            "1",
            "--offset",
            &(hw - 2).to_string(),
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![format!("1:{}\tb", hw - 2), format!("1:{}\tc", hw - 1)]
    );
    let out = ok(a, &["consume", "ev", "-n", "2"]);
    assert_eq!(out.lines().count(), 2);
    assert!(ok(a, &["consume", "ev", "--offset", "latest"]).is_empty());
}

#[test]
fn group_consume_offsets_and_lag() {
    let s = common::start();
    let a = &s.addr;
    ok(a, &["topics", "create", "g", "--partitions", "2"]);
    let input: String = (0..10).map(|i| format!("k{i}\tv{i}\n")).collect();
    produce(a, &["produce", "g"], &input);
    let v = json(a, &["groups", "lag", "billing", "g"]);
    assert_eq!(v["total_lag"], 10);
    // consume 4 as a group member: exactly those 4 are committed
    let first = json_lines(&ok(
        a,
        &["--json", "consume", "g", "--group", "billing", "-n", "4"],
    ));
    assert_eq!(first.len(), 4);
    let v = json(a, &["groups", "lag", "billing", "g"]);
    assert_eq!(v["total_lag"], 6);
    // the rest, then nothing is left
    let rest = json_lines(&ok(a, &["--json", "consume", "g", "--group", "billing"]));
    assert_eq!(rest.len(), 6);
    let mut values: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);
    let table = ok(a, &["groups", "lag", "billing", "g"]);
    assert!(table.lines().next().unwrap().contains("LAG"));
    assert!(table.contains("total lag 0"));
    let v = json(a, &["groups", "offsets", "billing", "g"]);
    let committed: u64 = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed"].as_u64().unwrap())
        .sum();
    assert_eq!(committed, 10);
    // a new group starting at the latest offsets reads nothing and owes nothing
    assert!(ok(
        a,
        &["consume", "g", "--group", "late", "--offset", "latest"]
    )
    .is_empty());
    assert_eq!(json(a, &["groups", "lag", "late", "g"])["total_lag"], 0);
    assert!(
        !cli(a, &["consume", "g", "--group", "late", "--offset", "5"])
            .status
            .success()
    );
    // a group that never committed shows "-"
    let table = ok(a, &["groups", "offsets", "nobody", "g"]);
    assert!(table.lines().nth(1).unwrap().ends_with('-'));
}

#[test]
fn follow_prints_messages_produced_later() {
    let s = common::start();
    let a = &s.addr;
    ok(a, &["topics", "create", "live"]);
    let mut child = Command::new(bin_path("stream-cli"))
        .args(["--addr", a, "--json", "consume", "live", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    for i in 0..3 {
        produce(a, &["produce", "live"], &format!("tick-{i}\n"));
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("follow printed nothing");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["value"], format!("tick-{i}"));
        assert_eq!(v["offset"], i);
    }
    let _ = child.kill();
    let _ = child.wait();
}
