//! `matching_engine replay` still works next to the server (the default command).

mod common;

use test_support::run_with_input;

#[test]
fn replay_reads_stdin_and_a_file() {
    let input = "N, 1, IBM, 10, 100, B, 1\nN, 2, IBM, 10, 50, S, 1\nbad\n";
    let want = "A, IBM, 1, 1\nB, IBM, B, 10, 100\nA, IBM, 2, 1\nT, IBM, 1, 1, 2, 1, 10, 50\nB, IBM, B, 10, 50\n";
    let out = run_with_input(common::command().arg("replay"), input.as_bytes());
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenario.csv");
    std::fs::write(&file, input).unwrap();
    let out = common::command().arg("replay").arg(&file).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}
