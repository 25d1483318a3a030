//! Smoke runs of the `nex-bench` harness: a generated corpus replays completely through
//! `nex import replay`, and `nex-bench replay` reports its ratio.

use std::process::Command;

use serde_json::Value;

#[test]
fn generated_corpus_replays_completely() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_nex-bench"))
        .args([
            "corpus",
            "--seed",
            "7",
            "--sessions",
            "6",
            "--large-every",
            "3",
            "--large-turns",
            "6",
            "--out",
        ])
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(out.status.success());
    let db = dir.path().join("agents.db");
    let out = Command::new(crate::sibling_bin("nex"))
        .args(["import", "replay", "--ledger"])
        .arg(&db)
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["imported"], 6);
    assert_eq!(report["uploadsCompleted"], 2);
    assert_eq!(report["cursorsStored"], 6);
    assert_eq!(report["rejected"], serde_json::json!({}));
}

#[test]
fn bench_replay_reports_a_ratio_per_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_nex-bench"))
        .args([
            "replay",
            "--sessions",
            "4",
            "--large-every",
            "2",
            "--large-turns",
            "4",
            "--runs",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["corpus"]["sessions"], 4);
    assert_eq!(result["corpus"]["chunkedSessions"], 2);
    assert_eq!(result["ratios"].as_array().unwrap().len(), 1);
    assert!(result["ratio"]["median"].as_f64().unwrap() > 0.0);
}
