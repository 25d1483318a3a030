//! Migration 0009 (`ledger::text`): tool-call bodies over 1 KiB stored zlib-compressed. A
//! ledger written by the schema before it keeps every answer after it (text, search, export,
//! the index's consistency, no change logged for the replica); an unchanged re-import writes
//! nothing; a changed body re-indexes; `nex sql` reads the text, read-only.

use std::process::Command;

use nex::ledger::{self, search_index, text};
use nex::query::export::{ExportOptions, export_session};
use nex::query::search::{SearchFilter, search};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::import_support::{import_req, migrations_before, run_import, store_bodies_as_text};

const T0: i64 = 1_760_000_000_000;

/// A build log of about 20 KB: `headword` in its first 1,024 characters, `tailword` in its
/// last 512, `middleword` in neither (stored, not searchable).
fn long_log(tail: &str) -> String {
    let mut out = String::from("headword starts the log\n");
    while out.len() < 10_000 {
        out.push_str("compiling crate number ✓ of the workspace\n");
    }
    out.push_str("middleword\n");
    while out.len() < 20_000 {
        out.push_str("more of the same log line\n");
    }
    out.push_str(tail);
    out
}

/// One session: a short call (stays TEXT) and a long one (long params and a long result).
fn item(fingerprint: &str, tail: &str) -> Value {
    let message = |id: &str, seq: i64| {
        json!({"sourceMessageId": id, "sourceTurnId": "t1", "role": "user",
               "content": "run the build", "sequence": seq, "createdAtMs": T0 + seq})
    };
    json!({"sourceProvider": "claude-code", "sourceSessionId": "z1",
           "sourceSessionFingerprint": fingerprint,
           "session": {"createdAtMs": T0, "workspacePath": "/home/u/zeta"},
           "turns": [{"sourceTurnId": "t1", "startedAtMs": T0, "completedAtMs": T0 + 900}],
           "messages": [message("m1", 0), message("m2", 1)],
           "toolCalls": [
               {"sourceToolCallId": "short", "sourceTurnId": "t1", "sourceMessageId": "m1",
                "toolName": "Read", "paramsJson": {"file_path": "/a.rs"},
                "resultJson": {"content": "fn main() {}"}, "status": "completed",
                "startedAtMs": T0 + 10, "completedAtMs": T0 + 20, "sequence": 0},
               {"sourceToolCallId": "long", "sourceTurnId": "t1", "sourceMessageId": "m2",
                "toolName": "Bash", "paramsJson": {"command": "cargo build", "note": "x".repeat(3000)},
                "resultJson": {"content": long_log(tail)}, "status": "completed",
                "startedAtMs": T0 + 30, "completedAtMs": T0 + 40, "sequence": 1}]})
}

/// A ledger of the schema before 0009 holding `item` as that schema stored it: every body as
/// TEXT.
fn before_0009(item: Value) -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    let before = migrations_before("0009_");
    assert!(before.last().unwrap().name.contains("0008"));
    ledger::migrate(&mut conn, &before).unwrap();
    run_import(&mut conn, import_req("k1", "backfill", vec![item])).unwrap();
    store_bodies_as_text(&conn);
    assert!(search_index::check(&conn).unwrap());
    conn
}

/// (tool name, typeof params, typeof result, params text, result text) per call, in order.
fn bodies(conn: &Connection) -> Vec<(String, String, String, String, String)> {
    let mut stmt = conn
        .prepare(
            "SELECT tool_name, typeof(params_json), typeof(result_json),
                    nex_text(params_json), nex_text(result_json)
             FROM tool_calls ORDER BY sequence",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn hits(conn: &Connection, query: &str) -> Vec<String> {
    let filter = SearchFilter {
        query: query.into(),
        limit: 20,
        ..SearchFilter::default()
    };
    search(conn, std::path::Path::new(":memory:"), &filter)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| format!("{} {}", h.role, h.snippet))
        .collect()
}

fn tool_call_changes(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM change_log WHERE tbl = 5", [], |r| {
        r.get(0)
    })
    .unwrap()
}

fn label(conn: &Connection) -> String {
    conn.query_row("SELECT label FROM sessions", [], |r| r.get(0))
        .unwrap()
}

const WORDS: [&str; 5] = ["headword", "tailword", "middleword", "cargo", "main"];

#[test]
fn migration_0009_compresses_a_0008_ledgers_long_bodies_and_every_reader_sees_the_same_text() {
    let mut conn = before_0009(item("fp1", "tailword: ok\n"));
    let plain: Vec<_> = bodies(&conn);
    assert!(plain.iter().all(|b| b.1 == "text" && b.2 == "text"));
    let found: Vec<_> = WORDS.iter().map(|w| hits(&conn, w)).collect();
    assert_eq!(
        found[2],
        Vec::<String>::new(),
        "the middle of a long body is not indexed"
    );
    assert!(
        found
            .iter()
            .enumerate()
            .all(|(i, h)| i == 2 || h.len() == 1)
    );
    let options = ExportOptions {
        max_tool_chars: 1_000_000,
        redactor: None,
    };
    let exported = export_session(&conn, &label(&conn), &options).unwrap();
    let changes = tool_call_changes(&conn);

    ledger::migrate(&mut conn, ledger::migrate::AGENTS).unwrap();

    let after = bodies(&conn);
    let kinds: Vec<_> = after
        .iter()
        .map(|b| (b.0.as_str(), b.1.as_str(), b.2.as_str()))
        .collect();
    assert_eq!(kinds, [("Read", "text", "text"), ("Bash", "blob", "blob")]);
    let texts = |v: &[(String, String, String, String, String)]| -> Vec<(String, String)> {
        v.iter().map(|b| (b.3.clone(), b.4.clone())).collect()
    };
    assert_eq!(texts(&after), texts(&plain));
    let stored: i64 = conn
        .query_row(
            "SELECT length(result_json) FROM tool_calls WHERE tool_name = 'Bash'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        stored * 5 < plain[1].4.len() as i64,
        "{stored} bytes for {}",
        plain[1].4.len()
    );
    assert!(search_index::check(&conn).unwrap());
    assert_eq!(
        WORDS.iter().map(|w| hits(&conn, w)).collect::<Vec<_>>(),
        found
    );
    assert_eq!(
        export_session(&conn, &label(&conn), &options).unwrap(),
        exported
    );
    assert_eq!(
        tool_call_changes(&conn),
        changes,
        "the text did not change: nothing to replicate"
    );

    // The same content under a new fingerprint: every row compared, none rewritten (the
    // import compresses to the bytes the migration stored).
    let resp = run_import(
        &mut conn,
        import_req("k2", "backfill", vec![item("fp2", "tailword: ok\n")]),
    )
    .unwrap();
    assert_eq!(resp.upserted, 1);
    assert_eq!(tool_call_changes(&conn), changes);

    // A changed long body: stored compressed, re-indexed (the old tail gone, the new one found).
    run_import(
        &mut conn,
        import_req("k3", "backfill", vec![item("fp3", "finalword: failed\n")]),
    )
    .unwrap();
    assert!(search_index::check(&conn).unwrap());
    assert!(hits(&conn, "tailword").is_empty());
    assert_eq!(hits(&conn, "finalword").len(), 1);
    let text: String = conn
        .query_row(
            "SELECT nex_text(result_json) ->> '$.content' FROM tool_calls WHERE tool_name = 'Bash'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(text, long_log("finalword: failed\n"));
}

#[test]
fn a_fresh_ledger_stores_only_bodies_over_the_threshold_compressed() {
    let mut conn = ledger::open_agents_in_memory().unwrap();
    run_import(
        &mut conn,
        import_req("k1", "backfill", vec![item("fp1", "tailword\n")]),
    )
    .unwrap();
    let stored = bodies(&conn);
    assert_eq!(
        (stored[0].1.as_str(), stored[0].2.as_str()),
        ("text", "text")
    );
    assert_eq!(
        (stored[1].1.as_str(), stored[1].2.as_str()),
        ("blob", "blob")
    );
    let blob: Vec<u8> = conn
        .query_row(
            "SELECT result_json FROM tool_calls WHERE tool_name = 'Bash'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let json: Value = serde_json::from_str(&text::inflate(&blob).unwrap()).unwrap();
    assert_eq!(json["content"], long_log("tailword\n"));
    assert_eq!(hits(&conn, "tailword").len(), 1);
    // Indexed from the texts the writer remembered; the check inflates every body again.
    assert!(search_index::check(&conn).unwrap());
}

/// Regression: a build whose compressor encodes differently (another backend or level) must
/// not rewrite, re-index and replicate every long body of an existing ledger when the same
/// text comes again; the row keeps the bytes it has.
#[test]
fn the_same_text_compressed_differently_keeps_the_stored_bytes() {
    use std::io::Write;
    let mut conn = ledger::open_agents_in_memory().unwrap();
    run_import(
        &mut conn,
        import_req("k1", "backfill", vec![item("fp1", "tailword\n")]),
    )
    .unwrap();
    // What an older build stored: the same texts, deflated at another level.
    let recompress = |bytes: Vec<u8>| -> Vec<u8> {
        let text = text::inflate(&bytes).unwrap();
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let (params, result): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT params_json, result_json FROM tool_calls WHERE tool_name = 'Bash'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let older = (recompress(params.clone()), recompress(result.clone()));
    assert_ne!((&older.0, &older.1), (&params, &result));
    conn.execute(
        "UPDATE tool_calls SET params_json = ?1, result_json = ?2 WHERE tool_name = 'Bash'",
        (&older.0, &older.1),
    )
    .unwrap();
    let changes = tool_call_changes(&conn);

    let resp = run_import(
        &mut conn,
        import_req("k2", "backfill", vec![item("fp2", "tailword\n")]),
    )
    .unwrap();
    assert_eq!(resp.upserted, 1);
    let stored: (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT params_json, result_json FROM tool_calls WHERE tool_name = 'Bash'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(stored, older, "the older bytes are kept");
    assert_eq!(tool_call_changes(&conn), changes, "nothing to replicate");

    // A changed text is still written, in this build's encoding.
    run_import(
        &mut conn,
        import_req("k3", "backfill", vec![item("fp3", "finalword\n")]),
    )
    .unwrap();
    assert_eq!(tool_call_changes(&conn), changes + 1);
    assert_eq!(hits(&conn, "finalword").len(), 1);
    assert!(search_index::check(&conn).unwrap());
}

#[test]
fn nex_sql_reads_compressed_bodies_as_text_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    let mut conn = ledger::open_agents(&path).unwrap();
    run_import(
        &mut conn,
        import_req("k1", "backfill", vec![item("fp1", "tailword\n")]),
    )
    .unwrap();
    drop(conn);
    let nex = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nex"))
            .arg("sql")
            .arg("--ledger")
            .arg(&path)
            .args(args)
            .output()
            .unwrap()
    };
    let out = nex(&[
        "--json",
        "SELECT tool_name, nex_text(result_json) ->> '$.content' AS content, typeof(result_json) AS stored \
         FROM tool_calls ORDER BY sequence",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            json!({"tool_name": "Read", "content": "fn main() {}", "stored": "text"}),
            json!({"tool_name": "Bash", "content": long_log("tailword\n"), "stored": "blob"}),
        ]
    );
    let out = nex(&["SELECT tool_name, sequence FROM tool_calls ORDER BY sequence"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "tool_name\tsequence\nRead\t0\nBash\t1\n"
    );

    let out = nex(&["DELETE FROM tool_calls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[ledger_read_failed]"));
    let out = nex(&["SELEC nothing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[bad_request]"));
    let conn = ledger::open_agents(&path).unwrap();
    assert_eq!(bodies(&conn).len(), 2);
}
