//! Configuration as the deployment guide describes it: environment variables, flags in
//! `--flag=value` form, flags winning over the environment; SIGINT exits cleanly too.

use std::process::Command;
use std::time::Duration;

use test_support::{bin_path, parse_addr, ServerProcess};

#[test]
fn environment_configures_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin_path("stream-server"));
    cmd.env("STREAM_DATA_DIR", dir.path())
        .env("STREAM_BIND", "127.0.0.1")
        // An unusable port in the environment: the flag must win.
        .env("STREAM_PORT", "1")
        .env("STREAM_IO_THREADS", "2")
        .env("STREAM_WORKER_THREADS", "2")
        .env("STREAM_MAX_CONNECTIONS", "5")
        .env("STREAM_METRICS_PORT", "off")
        .env("STREAM_DURABILITY", "never")
        .arg("--port=0");
    let (mut p, line) = ServerProcess::spawn(cmd, "listening on");
    let addr = parse_addr(&line).unwrap();
    assert!(addr.ip().is_loopback(), "{line}");
    assert_ne!(addr.port(), 1);
    assert!(line.contains(&dir.path().display().to_string()), "{line}");
    assert!(line.contains("durability=never"), "{line}");
    assert!(line.contains("max_connections=5"), "{line}");
    std::net::TcpStream::connect(addr).unwrap();
    p.signal(libc::SIGINT);
    let status = p.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", p.log_text());
}

#[test]
fn unusable_data_dir_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(bin_path("stream-server"))
        .arg(format!("--data-dir={}", file.display()))
        .args(["--port=0", "--metrics-port=off"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("not-a-dir"), "{text}");
}

#[test]
fn taken_metrics_port_is_logged_but_not_fatal() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin_path("stream-server"));
    cmd.arg(format!("--data-dir={}", dir.path().display()))
        .args(["--port=0", "--bind=127.0.0.1"])
        .arg(format!("--metrics-port={port}"));
    let (mut p, line) = ServerProcess::spawn(cmd, "listening on");
    assert!(
        p.log_text().contains("metrics endpoint disabled"),
        "{}",
        p.log_text()
    );
    std::net::TcpStream::connect(parse_addr(&line).unwrap()).unwrap();
    assert!(p.terminate(Duration::from_secs(30)).success());
}

#[test]
fn empty_environment_variables_mean_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin_path("stream-server"));
    cmd.env("STREAM_DATA_DIR", dir.path())
        // What docker-compose passes for `STREAM_IO_THREADS=${STREAM_IO_THREADS}` when unset.
        .env("STREAM_IO_THREADS", "")
        .env("STREAM_MAX_CONNECTIONS", "")
        .env("STREAM_METRICS_PORT", "off")
        .args(["--port=0", "--bind=127.0.0.1"]);
    let (mut p, line) = ServerProcess::spawn(cmd, "listening on");
    assert!(line.contains("max_connections=10000"), "{line}");
    std::net::TcpStream::connect(parse_addr(&line).unwrap()).unwrap();
    assert!(p.terminate(Duration::from_secs(30)).success());
}
