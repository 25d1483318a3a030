//! `nex import apply` through the built binary: the example file, replays across runs, line
//! error codes, ledger path defaults and file modes, I/O failure exit codes.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/import-requests.jsonl"
);

fn nex() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nex"));
    cmd.env_remove("NEX_LEDGER")
        .env_remove("NEX_HOME")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs `nex import apply` and returns the parsed output lines; checks the exit status: 0 when
/// every line succeeded, 1 when any failed.
fn apply(cmd: &mut Command, stdin: Option<&str>) -> Vec<Value> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failed = lines.iter().filter(|l| l["ok"] == false).count();
    assert_eq!(
        out.status.code(),
        Some(if failed > 0 { 1 } else { 0 }),
        "{failed} failed lines: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if failed > 0 {
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!(
                "nex: {failed} of {} request lines failed (see their response lines) [requests_failed]",
                lines.len()
            )),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    lines
}

fn apply_file(ledger: &Path, file: &str) -> Vec<Value> {
    apply(
        nex()
            .args(["import", "apply", "--ledger"])
            .arg(ledger)
            .arg(file),
        None,
    )
}

fn counts(ledger: &Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    [
        "sessions",
        "turns",
        "threads",
        "messages",
        "tool_calls",
        "session_history",
        "session_imports",
        "session_import_requests",
        "session_import_cursors",
    ]
    .iter()
    .map(|t| {
        conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    })
    .collect()
}

#[test]
fn example_file_applies_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("state").join("agents.db");
    let first = apply_file(&ledger, EXAMPLE);
    assert_eq!(first.len(), 6);
    assert_eq!(first[0]["ok"], true);
    assert_eq!(first[0]["imported"], 1);
    // The repeated line is a replay: the stored answer, marked `replayed`.
    assert_eq!(first[1]["replayed"], true);
    let mut replayed = first[1].clone();
    replayed.as_object_mut().unwrap().remove("replayed");
    assert_eq!(replayed, first[0]);
    assert_eq!(first[2]["status"], "staged");
    assert_eq!(
        (first[2]["received"].as_u64(), first[2]["total"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(first[3]["status"], "completed");
    assert_eq!(first[3]["import"]["imported"], 1);
    assert_eq!(first[4]["ok"], false);
    assert_eq!(first[4]["error"]["code"], "request_json_invalid");
    assert_eq!(first[5]["error"]["code"], "mode_unsupported");
    let rows = counts(&ledger);
    assert_eq!(rows[0], 2, "two sessions");
    assert_eq!(rows[8], 1, "the import line's cursor");

    let second = apply_file(&ledger, EXAMPLE);
    assert_eq!(second[0], first[1]);
    assert_eq!(second[1], first[1]);
    assert_eq!(
        second[2]["status"], "completed",
        "a part of a completed upload answers completed"
    );
    // Every answer of the second pass is a stored one, marked `replayed`.
    let unmark = |v: &Value| {
        let mut v = v.clone();
        assert_eq!(v["replayed"], true, "{v}");
        v.as_object_mut().unwrap().remove("replayed");
        v
    };
    assert_eq!(unmark(&second[2]["import"]), first[3]["import"]);
    assert_eq!(unmark(&second[3]["import"]), first[3]["import"]);
    assert_eq!(second[4], first[4]);
    assert_eq!(second[5], first[5]);
    assert_eq!(counts(&ledger), rows, "no new rows");
    let third = apply_file(&ledger, EXAMPLE);
    assert_eq!(third, second);

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ledger), 0o600);
    assert_eq!(mode(ledger.parent().unwrap()), 0o700);
}

#[test]
fn stdin_schema_errors_and_persona_flag() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("agents.db");
    let input = concat!(
        "[1, 2]\n",
        "\n",
        "{\"source\":\"aix\",\"mode\":\"backfill\",\"idempotencyKey\":\"k\",\"items\":\"nope\"}\n",
        "{\"upload_id\":\"u\",\"chunkIndex\":\"zero\"}\n",
        "{\"source\":\"aix\",\"mode\":\"tail\",\"idempotencyKey\":\"k1\",\"personaId\":\"req\",\"items\":[",
        "{\"sourceProvider\":\"p\",\"sourceSessionId\":\"s\",\"sourceSessionFingerprint\":\"f\",",
        "\"session\":{},\"turns\":[],\"messages\":[]}]}\n",
        "{\"upload_id\":\"u\",\"source\":\"aix\",\"mode\":\"tail\",\"idempotencyKey\":\"k2\",\"chunkIndex\":0,",
        "\"chunkTotal\":2,\"encoding\":\"gzip+base64\",\"data\":\"abc\"}\n",
    );
    let out = apply(
        nex()
            .args(["import", "apply", "--persona", "flagged", "--ledger"])
            .arg(&ledger)
            .arg("-"),
        Some(input),
    );
    assert_eq!(out.len(), 6, "one response per input line: {out:?}");
    assert_eq!(out[0]["error"]["code"], "request_schema_invalid");
    assert_eq!(out[1]["error"]["code"], "request_empty");
    assert_eq!(out[2]["error"]["code"], "request_schema_invalid");
    assert_eq!(out[3]["error"]["code"], "request_schema_invalid");
    assert_eq!(out[4]["imported"], 1);
    assert_eq!(
        out[5]["status"], "staged",
        "a line with upload_id is a chunk request"
    );
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let persona: String = conn
        .query_row("SELECT persona_id FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        persona, "flagged",
        "--persona overrides the request's personaId"
    );
}

#[test]
fn ledger_path_defaults_follow_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("nex-home");
    let line = "{\"source\":\"foo\"}\n";
    let out = apply(
        nex().env("NEX_HOME", &home).args(["import", "apply"]),
        Some(line),
    );
    assert_eq!(out[0]["error"]["code"], "source_unsupported");
    assert!(home.join("agents.db").exists());
    let explicit = dir.path().join("elsewhere").join("ledger.db");
    apply(
        nex()
            .env("NEX_HOME", &home)
            .env("NEX_LEDGER", &explicit)
            .args(["import", "apply"]),
        Some(line),
    );
    assert!(explicit.exists(), "NEX_LEDGER wins over NEX_HOME");
}

#[test]
fn unreadable_input_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = nex()
        .args(["import", "apply", "--ledger"])
        .arg(dir.path().join("agents.db"))
        .arg(dir.path().join("missing.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn errors_and_logs_never_echo_payload_content() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("agents.db");
    let marker = "SECRET-MARKER-7f3a";
    let input = format!(
        "{{\"source\":\"aix\",\"mode\":\"backfill\",\"idempotencyKey\":\"k\",\"items\":[{{\"sourceProvider\":\"p\",\
         \"sourceSessionId\":\"s\",\"sourceSessionFingerprint\":\"f\",\"session\":{{}},\"turns\":[],\
         \"messages\":[{{\"sourceMessageId\":\"m\",\"role\":\"user\",\"sequence\":\"{marker}\"}}]}}]}}\n\
         {{\"content\": \"{marker}\" broken\n\
         {{\"source\":\"aix\",\"mode\":\"backfill\",\"idempotencyKey\":\"k2\",\"uploadId\":\"u\",\"chunkIndex\":0,\
         \"chunkTotal\":1,\"encoding\":\"gzip+base64\",\"data\":\"{marker}\",\"sourceProvider\":\"p\",\
         \"sourceSessionId\":\"s\",\"sourceSessionFingerprint\":\"f\"}}\n"
    );
    let mut child = nex()
        .env("RUST_LOG", "trace")
        .args(["import", "apply", "--ledger"])
        .arg(&ledger)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "lines failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().count(), 3);
    assert!(stdout.contains("request_schema_invalid") && stdout.contains("request_json_invalid"));
    assert!(stdout.contains("chunk_payload_decode_failed"));
    assert!(!stdout.contains(marker), "stdout echoes content: {stdout}");
    assert!(!stderr.contains(marker), "logs echo content: {stderr}");
}

/// Before: the blank line got no response (responses no longer matched inputs by position),
/// `{"foo":1}` was `source_unsupported`, the schema error said `(line 0, column 0)`, and the
/// command exited 0 with every line failed.
#[test]
fn one_response_per_input_line_real_positions_and_exit_1_on_failures() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("agents.db");
    let bad_items =
        r#"{"source":"aix","mode":"tail","idempotencyKey":"k","items":[{"turns":"x"}]}"#;
    let input = format!("{{\"foo\":1}}\n\n   \n{bad_items}\n");
    let out = apply(
        nex().args(["import", "apply", "--ledger"]).arg(&ledger),
        Some(&input),
    );
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(out[0]["error"]["code"], "request_schema_invalid");
    assert_eq!(out[1]["error"]["code"], "request_empty");
    assert_eq!(out[2]["error"]["code"], "request_empty");
    assert_eq!(out[3]["error"]["code"], "request_schema_invalid");
    // The column where the request stops matching: just after the string that is not a list.
    let column = bad_items.find(r#""x""#).unwrap() + 3;
    assert_eq!(
        out[3]["error"]["message"],
        format!("request does not match the schema (line 4, column {column})")
    );
    // And lines that all succeed exit 0 (checked by `apply`).
    let examples = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/import-requests.jsonl"),
    )
    .unwrap();
    let good = format!("{}\n", examples.lines().next().unwrap());
    let out = apply(
        nex()
            .args(["import", "apply", "--ledger"])
            .arg(dir.path().join("b.db")),
        Some(&good),
    );
    assert!(out.iter().all(|l| l["ok"] != false), "{out:?}");
}
