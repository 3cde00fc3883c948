//! Shared by the integration tests: run the real stream-server on an ephemeral port.

#![allow(dead_code)] // each test binary uses a different subset

use std::process::Command;

use tempfile::TempDir;
use test_support::{bin_path, parse_addr, ServerProcess};

/// A running stream-server with its own data directory.
pub struct Server {
    pub proc: ServerProcess,
    pub addr: String,
    pub dir: TempDir,
}

/// Starts stream-server on 127.0.0.1:0 (metrics endpoint off: its fixed default port would
/// clash between concurrently running tests) with extra flags.
pub fn start_with(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin_path("stream-server"));
    cmd.args([
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--metrics-port",
        "off",
    ])
    .arg("--data-dir")
    .arg(dir.path())
    .args(extra)
    .env("NO_COLOR", "1");
    let (proc, line) = ServerProcess::spawn(cmd, "listening on");
    let addr = parse_addr(&line)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server { proc, addr, dir }
}

/// Starts stream-server with default settings.
pub fn start() -> Server {
    start_with(&[])
}

/// A unique topic name.
pub fn topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
