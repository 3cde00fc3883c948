//! Every binary follows the same command-line conventions (the real binaries, as a user runs
//! them): an invalid value names the flag and its variable, booleans take the same words in
//! the same forms, host names work where addresses are taken, an address without a port
//! says so, and a near-miss flag points at the real ones.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use test_support::{bin_path, ServerProcess};

/// Runs `bin` to completion; one that is still running after 30 s (a server that accepted
/// what it should have refused) is killed and fails the test.
fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = std::env::temp_dir().join(format!("cli-support-{}", std::process::id()));
    let mut cmd = Command::new(bin_path(bin));
    cmd.args(args)
        .env("STREAM_DATA_DIR", &dir)
        .env("STREAM_METRICS_PORT", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run the binary");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait for the binary").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "{bin} {args:?} {env:?} is still running after 30 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

fn stderr_of(bin: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(bin, args, env);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{bin} {args:?} should be a usage error"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_variable_is_named_with_its_flag() {
    for (bin, var, flag) in [
        ("matching_engine", "ENGINE_TCP_PORT", "--tcp-port"),
        ("stream-server", "STREAM_PORT", "--port"),
        ("stream-cli", "STREAM_ADDR", "--addr"),
        ("coinbase-bridge", "COINBASE_USE_SANDBOX", "--use-sandbox"),
    ] {
        let args: &[&str] = if bin == "stream-cli" {
            &["topics", "list"]
        } else {
            &[]
        };
        let e = stderr_of(bin, args, &[(var, "abc")]);
        assert!(
            e.contains(&format!("environment variable {var}=abc")),
            "{bin}: {e}"
        );
        assert!(e.contains(flag), "{bin}: {e}");
    }
}

#[test]
fn a_bad_flag_value_names_its_variable() {
    let e = stderr_of("matching_engine", &["--tcp-port", "x"], &[]);
    assert!(
        e.contains("its environment variable is ENGINE_TCP_PORT"),
        "{e}"
    );
}

#[test]
fn zero_threads_is_refused_not_silently_one() {
    let e = stderr_of("stream-server", &[], &[("STREAM_IO_THREADS", "0")]);
    assert!(
        e.contains("STREAM_IO_THREADS=0") && e.contains("--io-threads"),
        "{e}"
    );
}

#[test]
fn an_address_without_a_port_says_so() {
    let e = stderr_of("stream-cli", &["--addr", "nohost", "topics", "list"], &[]);
    assert!(e.contains("missing port"), "{e}");
    let e = stderr_of("coinbase-bridge", &[], &[("STREAM_SERVER", "nohost")]);
    assert!(
        e.contains("missing port") && e.contains("STREAM_SERVER"),
        "{e}"
    );
}

#[test]
fn a_near_miss_flag_points_at_the_real_ones() {
    let e = stderr_of("matching_engine", &["--port", "1234"], &[]);
    assert!(
        e.contains("did you mean") && e.contains("--tcp-port") && e.contains("--udp-port"),
        "{e}"
    );
}

#[test]
fn booleans_and_host_names_are_accepted_the_same_way_everywhere() {
    for (args, env) in [
        (
            &["--threaded", "true"][..],
            &[("ENGINE_BIND", "localhost")][..],
        ),
        (&["--threaded=yes"][..], &[][..]),
        (&[][..], &[("ENGINE_THREADED", "on")][..]),
    ] {
        let mut cmd = Command::new(bin_path("matching_engine"));
        cmd.args(args)
            .args(["--tcp-port", "0", "--udp-port", "0"])
            .env("ENGINE_BIND", "127.0.0.1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (mut server, line) = ServerProcess::spawn(cmd, "matching_engine ready");
        assert!(line.contains("threaded mode"), "{args:?} {env:?}: {line}");
        server.terminate(Duration::from_secs(30));
    }
    let help = run("coinbase-bridge", &["--help"], &[]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("true, yes, on, 1, false, no, off, 0"),
        "{help}"
    );
}
