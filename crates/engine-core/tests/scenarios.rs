//! Scenario suite: every `tests/scenarios/NN-name.in` is replayed through
//! `engine_core::replay::run` and its standard output must equal `NN-name.out` byte for byte.
//! The odd-numbered reference scenarios are also checked against the original engine's
//! expected output (`tests/scenarios/reference/odd-scenarios.out`, typos fixed).
//!
//! To (re)write the `.out` files after a deliberate change, run with `ENGINE_SCENARIOS_BLESS=1`
//! and review the diff line by line: the files are the specification of record.

use std::fs;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

fn replay(input: &[u8]) -> (String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    engine_core::replay::run(input, &mut out, &mut err).unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn inputs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "in"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_scenario_produces_its_expected_output() {
    let bless = std::env::var_os("ENGINE_SCENARIOS_BLESS").is_some();
    let inputs = inputs();
    assert!(inputs.len() >= 24, "scenario files missing: {inputs:?}");
    let mut failures = Vec::new();
    for input in inputs {
        let expected_path = input.with_extension("out");
        let (got, _) = replay(&fs::read(&input).unwrap());
        if bless {
            fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                input.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Input of a scenario without its final `F` line.
fn before_final_flush(input: &str) -> String {
    let mut lines: Vec<&str> = input.lines().collect();
    let last = lines.iter().rposition(|l| l.trim() == "F").unwrap();
    lines.truncate(last);
    lines.join("\n") + "\n"
}

#[test]
fn odd_reference_scenarios_match_the_original_engine() {
    let reference = fs::read_to_string(dir().join("reference/odd-scenarios.out")).unwrap();
    // Blocks start at "#name: scenario N"; their output lines are the non-comment lines.
    let mut blocks: Vec<(u32, String)> = Vec::new();
    for line in reference.lines() {
        if let Some(n) = line.strip_prefix("#name: scenario ") {
            blocks.push((n.trim().parse().unwrap(), String::new()));
        } else if !line.is_empty() && !line.starts_with('#') {
            let block = &mut blocks.last_mut().unwrap().1;
            block.push_str(line);
            block.push('\n');
        }
    }
    assert_eq!(
        blocks.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![1, 3, 5, 7, 9, 11, 13, 15]
    );
    for (n, expected) in blocks {
        let input = inputs()
            .into_iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&format!("{n:02}-"))
            })
            .unwrap();
        let (got, _) = replay(before_final_flush(&fs::read_to_string(&input).unwrap()).as_bytes());
        assert_eq!(got, expected, "reference scenario {n}");
    }
}

#[test]
fn unparseable_lines_are_reported_with_their_line_numbers() {
    let input = fs::read(dir().join("24-unparseable-lines.in")).unwrap();
    let (_, err) = replay(&input);
    let numbers: Vec<&str> = err.lines().map(|l| l.split(':').next().unwrap()).collect();
    let expected: Vec<String> = (4..=14).map(|n| format!("line {n}")).collect();
    assert_eq!(numbers, expected, "{err}");
}
