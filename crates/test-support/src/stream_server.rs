//! A real stream-server on an ephemeral port with its own data directory, for the client
//! crates' integration tests (the Rust library's and stream-cli's).

use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::{bin_path, parse_addr, ServerProcess};

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
    let (proc, addr) = spawn(&dir, "0", extra);
    Server { proc, addr, dir }
}

/// Starts stream-server with default settings.
pub fn start() -> Server {
    start_with(&[])
}

fn spawn(dir: &TempDir, port: &str, extra: &[&str]) -> (ServerProcess, String) {
    let mut cmd = Command::new(bin_path("stream-server"));
    cmd.args([
        "--port",
        port,
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
    (proc, addr)
}

impl Server {
    /// Stops the server cleanly (SIGTERM) and starts it again on the same port and data.
    pub fn restart(&mut self) {
        let status = self.proc.terminate(Duration::from_secs(60));
        assert!(status.success(), "stream-server exited with {status}");
        let port = self.addr.rsplit(':').next().unwrap().to_string();
        let (proc, addr) = spawn(&self.dir, &port, &[]);
        assert_eq!(addr, self.addr);
        self.proc = proc;
    }
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
