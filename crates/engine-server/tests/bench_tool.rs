//! The load tool behind docs/performance.md keeps working: each mode runs briefly against a real
//! server (or its own echo thread) and reports what it measured.

mod common;

use std::process::Command;

use common::*;
use test_support::bin_path;

/// Runs engine-bench with `args` and returns its report line.
fn bench(args: &[&str]) -> String {
    let out = Command::new(bin_path("engine-bench"))
        .args(args)
        .output()
        .expect("run engine-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "engine-bench {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn latency_and_throughput_modes_report_against_a_real_server() {
    for mode in [&[][..], &["--busy-poll"][..]] {
        let e = start(mode);
        let addr = e.tcp().to_string();
        for wire in ["binary", "csv"] {
            let blocking = bench(&[
                "--addr", &addr, "--orders", "300", "--warmup", "20", "--wire", wire,
            ]);
            assert!(
                blocking.contains("300 orders") && blocking.contains("p99"),
                "{blocking}"
            );
            assert!(!blocking.contains("busy-polling"), "{blocking}");
            let spin = bench(&[
                "--addr", &addr, "--orders", "300", "--warmup", "20", "--wire", wire, "--spin",
            ]);
            assert!(
                spin.contains("client busy-polling") && spin.contains("p99"),
                "{spin}"
            );
        }
        let tp = bench(&[
            "--addr",
            &addr,
            "--mode",
            "throughput",
            "--orders",
            "5000",
            "--clients",
            "2",
            "--batch",
            "64",
        ]);
        assert!(
            tp.contains("10000 orders") && tp.contains("orders/s"),
            "{tp}"
        );
    }
}

#[test]
fn echo_baseline_runs_blocking_and_spinning() {
    for extra in [&[][..], &["--spin"][..]] {
        let mut args = vec![
            "--mode",
            "echo-baseline",
            "--orders",
            "300",
            "--warmup",
            "20",
        ];
        args.extend_from_slice(extra);
        let out = bench(&args);
        assert!(
            out.starts_with("echo-baseline latency") && out.contains("p99"),
            "{out}"
        );
    }
}
