//! Helpers for integration tests that run the workspace's real binaries.
//!
//! Readiness is awaited, never slept for: a server is ready when it prints its "listening"
//! line (which carries the bound address, so tests can pass port 0 and learn the real port).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub mod stream_server;

/// Default time allowed for a server to become ready (generous: CI is a loaded 2-core box).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of a binary of this workspace (`stream-server`, `matching_engine`, ...).
///
/// `<NAME>_BIN` in the environment (upper case, `-` as `_`) wins; otherwise the binary next to
/// the running test's target directory (`target/<profile>/NAME`). Panics with a clear message
/// when it is missing: run `cargo build --workspace --bins` first (scripts/test does).
pub fn bin_path(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/test-binary -> target/<profile>/
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` first, or set {var}",
        path.display()
    );
    path
}

/// A child process whose output is captured, killed when dropped.
pub struct ServerProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
    name: String,
    /// The threads copying stdout and stderr into `log`; finished once the pipes reach EOF.
    pumps: Vec<thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Spawns `cmd` with stdout and stderr captured, and waits until a line containing
    /// `ready_marker` appears. Returns the process and that line.
    pub fn spawn(cmd: Command, ready_marker: &str) -> (ServerProcess, String) {
        Self::spawn_with_timeout(cmd, ready_marker, READY_TIMEOUT)
    }

    /// As [`ServerProcess::spawn`] with an explicit timeout.
    pub fn spawn_with_timeout(
        mut cmd: Command,
        ready_marker: &str,
        timeout: Duration,
    ) -> (ServerProcess, String) {
        let name = format!("{:?}", cmd.get_program());
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let pumps = vec![
            pump(stdout, log.clone(), tx.clone()),
            pump(stderr, log.clone(), tx),
        ];
        let mut proc = ServerProcess {
            child,
            log,
            lines: rx,
            name,
            pumps,
        };
        let line = proc.wait_for_line(ready_marker, timeout);
        (proc, line)
    }

    /// Waits until a line (printed after the ones already consumed) contains `marker`.
    /// Panics with the captured log when the process exits or the timeout passes first.
    pub fn wait_for_line(&mut self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return line,
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{}: no line containing {marker:?} within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_text()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "{} exited before printing {marker:?} (status {:?}); log:\n{}",
                    self.name,
                    self.child.try_wait(),
                    self.log_text()
                ),
            }
        }
    }

    /// Everything the process printed so far.
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.await_output_eof();
    }

    /// Sends a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Sends SIGTERM and waits for exit; panics with the log if it takes longer than `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(timeout)
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.await_output_eof();
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not exit within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            // Polling a child's exit status has no readiness signal short of SIGCHLD handling;
            // a short poll interval is the standard approach here.
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl ServerProcess {
    /// After the process has exited: waits until everything it printed is in the log (its
    /// pipes reached EOF), so that assertions on the log see its last lines. Bounded, because
    /// a grandchild that inherited the pipes could keep them open.
    fn await_output_eof(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pumps.iter().all(|p| p.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pump<R: Read + Send + 'static>(
    reader: R,
    log: Arc<Mutex<Vec<String>>>,
    tx: mpsc::Sender<String>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut l) = log.lock() {
                l.push(line.clone());
            }
            let _ = tx.send(line);
        }
    })
}

/// Runs `cmd` to completion with `input` on its stdin, capturing stdout and stderr.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {:?}: {e}", cmd.get_program()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written from a thread: a child that prints a lot before reading all its input would
    // otherwise deadlock against us on full pipes.
    let input = input.to_vec();
    let writer = thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().expect("wait for child");
    writer
        .join()
        .expect("stdin writer thread")
        .expect("write the child's stdin");
    out
}

/// Finds the first `host:port` socket address in a log line (e.g. "listening on 127.0.0.1:4021").
pub fn parse_addr(line: &str) -> Option<SocketAddr> {
    line.split(|c: char| c.is_whitespace() || c == ',' || c == '"' || c == '=')
        .find_map(|tok| tok.trim_matches(|c| c == '(' || c == ')').parse().ok())
}

/// Waits until a TCP connect to `addr` succeeds.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_from_log_lines() {
        let a = parse_addr("INFO listening on 127.0.0.1:4021 (tcp)").unwrap();
        assert_eq!(a.port(), 4021);
        assert_eq!(parse_addr("addr=0.0.0.0:9092").unwrap().port(), 9092);
        assert!(parse_addr("no address here").is_none());
    }

    #[test]
    fn exit_waits_for_the_last_lines() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 'listening on 127.0.0.1:5555'; for i in $(seq 1 200); do echo line$i; done; echo last-line",
        ]);
        let (mut p, _) = ServerProcess::spawn(cmd, "listening");
        let status = p.wait_exit(Duration::from_secs(30));
        assert!(status.success());
        assert!(p.log_text().ends_with("last-line"), "{}", p.log_text());
    }

    #[test]
    fn spawn_waits_for_marker_and_kill_reaps() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo starting; echo 'listening on 127.0.0.1:5555'; exec sleep 30",
        ]);
        let (mut p, line) = ServerProcess::spawn(cmd, "listening");
        assert_eq!(parse_addr(&line).unwrap().port(), 5555);
        p.kill9();
        assert!(p.log_text().contains("starting"));
    }
}
