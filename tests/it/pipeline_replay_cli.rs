//! `nex import replay` against `nex import apply` with the same requests: the same ledger, row
//! for row (both built binaries); the printed run report; exit codes.

use std::path::Path;
use std::process::{Command, Output};

use nex::protocol::ImportSessionItem;
use serde_json::Value;

use crate::pipeline_support::*;

fn nex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nex"))
        .args(args)
        .env_remove("NEX_HOME")
        .env_remove("NEX_LEDGER")
        .output()
        .expect("nex runs")
}

fn failing(item: &ImportSessionItem) -> ImportSessionItem {
    let mut bad = item.clone();
    bad.source_session_fingerprint.clear();
    bad
}

#[test]
fn replay_and_apply_give_the_same_ledger_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = item("anthropic", "s1", "fp1");
    let s2 = item("claude-code", "s2", "fp1");
    let s3 = item("codex", "s3", "fp1");
    let s4 = item("claude-code", "big-4", "fp4");
    let mut requests = vec![
        request("k1", vec![s1.clone(), s2.clone()], vec![cursor("c:1", 1)]),
        request(
            "k2",
            vec![item("anthropic", "s1", "fp2")],
            vec![cursor("c:1", 2)],
        ),
        request("k3", vec![s3.clone(), failing(&s3)], vec![cursor("c:3", 3)]),
        // Replay of k1: the stored response, nothing written.
        request("k1", vec![s1.clone(), s2.clone()], vec![]),
        // Same fingerprint under a new key: skipped.
        request("k4", vec![item("anthropic", "s1", "fp2")], vec![]),
        // Request-level failure: k1 with another payload.
        request("k1", vec![s3.clone()], vec![cursor("c:never", 9)]),
    ];
    for r in &mut requests {
        r.run_id = Some(RUN.into());
    }
    let mut chunks = chunk_requests(&s4, "up-4", "k5", 3, vec![cursor("c:4", 4)]);
    for c in &mut chunks {
        c.run_id = Some(RUN.into());
    }

    let mut apply_lines = String::new();
    let mut stream = Stream::new(RUN);
    for r in &requests {
        apply_lines.push_str(&serde_json::to_string(r).unwrap());
        apply_lines.push('\n');
        stream.batch(r.clone());
    }
    for c in &chunks {
        apply_lines.push_str(&serde_json::to_string(c).unwrap());
        apply_lines.push('\n');
        stream.chunk(c.clone());
    }
    stream.complete();
    let apply_in = dir.path().join("requests.jsonl");
    let replay_in = dir.path().join("frames.jsonl");
    std::fs::write(&apply_in, apply_lines).unwrap();
    std::fs::write(&replay_in, stream.bytes()).unwrap();
    let apply_db = dir.path().join("apply.db");
    let replay_db = dir.path().join("replay.db");

    let out = nex(&[
        "import",
        "apply",
        "--ledger",
        path(&apply_db),
        path(&apply_in),
    ]);
    // The generated stream holds a key reused with another payload: that line fails, so
    // `apply` exits 1 after answering every line.
    assert_eq!(
        out.status.code(),
        Some(1),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 9 request lines failed"));
    let out = nex(&[
        "import",
        "replay",
        "--ledger",
        path(&replay_db),
        path(&replay_in),
    ]);
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON report");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let keys: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = [
        "runId",
        "frames",
        "rejected",
        "imported",
        "upserted",
        "skipped",
        "failed",
        "replayed",
        "chunksStaged",
        "uploadsCompleted",
        "cursorsStored",
        "durationMs",
    ];
    want.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, want);
    assert_eq!(report["runId"], RUN);
    assert_eq!(report["frames"], 10);
    assert_eq!(
        report["rejected"],
        serde_json::json!({"idempotency_key_payload_mismatch": 1})
    );
    // k1: 2 imported; k2: 1 upserted; k3: 1 imported + 1 failed; k1 replayed: the stored
    // response again, counted as 2 replayed, never again as imported (issue 15); k4: 1
    // skipped; upload: 1 imported.
    assert_eq!(report["imported"], 2 + 1 + 1);
    assert_eq!(report["replayed"], 2);
    assert_eq!(report["upserted"], 1);
    assert_eq!(report["skipped"], 1);
    assert_eq!(report["failed"], 1);
    assert_eq!(report["chunksStaged"], 3);
    assert_eq!(report["uploadsCompleted"], 1);
    assert_eq!(report["cursorsStored"], 4);

    let a = read_only(&apply_db);
    let r = read_only(&replay_db);
    for table in LEDGER_TABLES {
        let (rows_a, rows_r) = (dump(&a, table), dump(&r, table));
        assert_eq!(rows_a, rows_r, "table {table} differs");
    }
    assert_eq!(count(&r, "session_imports"), 4);
    assert_eq!(count(&r, "session_import_cursors"), 3);
}

#[test]
fn replay_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agents.db");
    // Garbage is consumed (and rejected): exit 0.
    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "not a frame\n{}\n").unwrap();
    let out = nex(&["import", "replay", "--ledger", path(&db), path(&garbage)]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["frames"], 2);
    assert_eq!(
        report["rejected"],
        serde_json::json!({"frame_json_invalid": 1, "frame_schema_invalid": 1})
    );
    assert_eq!(report["runId"], Value::Null);
    // A missing input: non-zero, nothing on stdout.
    let out = nex(&[
        "import",
        "replay",
        "--ledger",
        path(&db),
        path(&dir.path().join("missing")),
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    // An unopenable ledger (its directory would be under a file): non-zero.
    let out = nex(&[
        "import",
        "replay",
        "--ledger",
        path(&garbage.join("x.db")),
        path(&garbage),
    ]);
    assert!(!out.status.success());
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A recorded tail stream with snake_case aliases, a `\r\n` line and an empty line, replayed
/// from stdin.
#[test]
fn recorded_fixture_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agents.db");
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pipeline/recorded_tail.jsonl"
    ))
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nex"))
        .args([
            "import",
            "replay",
            "--ledger",
            path(&db),
            "--persona",
            "ops",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&fixture).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["runId"], "fx-run-1");
    assert_eq!(report["frames"], 5);
    assert_eq!(report["rejected"], serde_json::json!({"items_required": 1}));
    assert_eq!(report["imported"], 1);
    assert_eq!(report["cursorsStored"], 1);
    let conn = read_only(&db);
    let persona: String = conn
        .query_row("SELECT persona_id FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(persona, "ops");
}
