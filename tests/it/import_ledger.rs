//! The ledger: baseline scenario 8 (schema after migrations, migrating twice is a no-op),
//! pragmas, file and directory modes, the nexus runtime schema and the cursor store.

use std::os::unix::fs::PermissionsExt;

use nex::ledger::{self, migrate};
use nex::protocol::Cursor;
use rusqlite::Connection;
use serde_json::json;

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(1))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn indexes(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA index_list({table})"))
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(1))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn scenario_8_every_table_and_column_exists() {
    let conn = ledger::open_agents_in_memory().unwrap();
    let expected: &[(&str, &[&str])] = &[
        (
            "sessions",
            &[
                "label",
                "thread_id",
                "persona_id",
                "is_subagent",
                "parent_session_label",
                "parent_turn_id",
                "spawn_tool_call_id",
                "task_description",
                "task_status",
                "routing_key",
                "origin",
                "origin_session_id",
                "created_at",
                "updated_at",
                "status",
            ],
        ),
        (
            "turns",
            &[
                "id",
                "parent_turn_id",
                "turn_type",
                "status",
                "started_at",
                "completed_at",
                "model",
                "provider",
                "role",
                "toolset_name",
                "tools_available",
                "permissions_granted",
                "permissions_used",
                "effective_config_json",
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "cache_write_tokens",
                "reasoning_tokens",
                "total_tokens",
                "query_message_ids",
                "response_message_id",
                "has_children",
                "tool_call_count",
                "source_event_id",
                "workspace_path",
            ],
        ),
        (
            "threads",
            &[
                "turn_id",
                "ancestry",
                "total_tokens",
                "depth",
                "persona_id",
                "system_prompt_hash",
                "thread_key",
            ],
        ),
        (
            "messages",
            &[
                "id",
                "turn_id",
                "role",
                "content",
                "source",
                "sequence",
                "created_at",
                "thinking",
                "context_json",
                "metadata_json",
            ],
        ),
        (
            "tool_calls",
            &[
                "id",
                "turn_id",
                "message_id",
                "tool_name",
                "tool_number",
                "params_json",
                "result_json",
                "error",
                "status",
                "spawned_session_label",
                "started_at",
                "completed_at",
                "sequence",
            ],
        ),
        (
            "session_history",
            &["id", "session_label", "thread_id", "changed_at"],
        ),
        (
            "session_imports",
            &[
                "source",
                "source_provider",
                "source_session_id",
                "source_session_fingerprint",
                "session_label",
                "imported_at",
                "updated_at",
                "last_run_id",
            ],
        ),
        (
            "session_import_requests",
            &[
                "idempotency_key",
                "source",
                "mode",
                "run_id",
                "request_hash",
                "response_json",
                "created_at",
            ],
        ),
        (
            "session_import_chunk_parts",
            &[
                "source",
                "upload_id",
                "chunk_index",
                "chunk_total",
                "mode",
                "run_id",
                "persona_id",
                "idempotency_key",
                "source_provider",
                "source_session_id",
                "source_session_fingerprint",
                "encoding",
                "payload",
                "created_at",
            ],
        ),
        (
            "session_import_cursors",
            &[
                "source",
                "cursor_key",
                "cursor_json",
                "updated_at",
                "last_run_id",
            ],
        ),
    ];
    for (table, cols) in expected {
        let have = columns(&conn, table);
        for col in *cols {
            assert!(
                have.iter().any(|c| c == col),
                "{table}.{col} missing (have {have:?})"
            );
        }
    }
    let expected_indexes: &[(&str, &[&str])] = &[
        ("turns", &["idx_turns_parent", "idx_turns_started"]),
        ("messages", &["idx_messages_turn_seq"]),
        (
            "tool_calls",
            &[
                "idx_tool_calls_turn_seq",
                "idx_tool_calls_name",
                "idx_tool_calls_message",
                "idx_tool_calls_spawned",
            ],
        ),
        (
            "sessions",
            &[
                "idx_sessions_persona",
                "idx_sessions_updated",
                "idx_sessions_parent",
                "idx_sessions_origin",
            ],
        ),
        (
            "session_imports",
            &["idx_session_imports_label", "idx_session_imports_updated"],
        ),
        (
            "session_import_chunk_parts",
            &["idx_chunk_parts_upload", "idx_chunk_parts_created"],
        ),
    ];
    for (table, names) in expected_indexes {
        let have = indexes(&conn, table);
        for name in *names {
            assert!(
                have.iter().any(|c| c == name),
                "index {name} on {table} missing"
            );
        }
    }
}

#[test]
fn migrating_twice_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    let mut conn = ledger::open_agents(&path).unwrap();
    let schema = |c: &Connection| -> String {
        let mut stmt = c
            .prepare(
                "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master ORDER BY name)",
            )
            .unwrap();
        stmt.query_row([], |r| r.get(0)).unwrap()
    };
    let before = schema(&conn);
    let version = migrate(&mut conn, migrate::AGENTS).unwrap();
    assert_eq!(version as usize, migrate::AGENTS.len());
    assert_eq!(schema(&conn), before);
    drop(conn);
    let conn = ledger::open_agents(&path).unwrap();
    assert_eq!(schema(&conn), before);
    let user_version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(user_version as usize, migrate::AGENTS.len());
}

#[test]
fn a_newer_schema_is_refused() {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    let err = migrate(&mut conn, migrate::AGENTS).unwrap_err();
    assert_eq!(err.code(), "ledger_schema_newer");
}

#[test]
fn pragmas_and_file_modes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh").join("nested").join("agents.db");
    let conn = ledger::open_agents(&path).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("fresh")), 0o700);
    let text =
        |name: &str| -> String { conn.pragma_query_value(None, name, |r| r.get(0)).unwrap() };
    let int = |name: &str| -> i64 { conn.pragma_query_value(None, name, |r| r.get(0)).unwrap() };
    assert_eq!(text("journal_mode"), "wal");
    assert_eq!(int("synchronous"), 2, "FULL");
    assert_eq!(int("foreign_keys"), 1);
    assert_eq!(int("busy_timeout"), 5000);
    assert_eq!(int("wal_autocheckpoint"), 16384);
    assert_eq!(int("journal_size_limit"), ledger::JOURNAL_SIZE_LIMIT_BYTES);
    // The WAL file gets the database's mode.
    conn.execute_batch("CREATE TABLE probe(x); INSERT INTO probe VALUES (1);")
        .unwrap();
    let wal = path.with_file_name("agents.db-wal");
    assert_eq!(mode(&wal), 0o600);
}

#[test]
fn nexus_runtime_schema() {
    let dir = tempfile::tempdir().unwrap();
    let conn = ledger::open_nexus(&dir.path().join("nexus.db")).unwrap();
    let jobs = columns(&conn, "import_jobs");
    for col in [
        "id",
        "source",
        "mode",
        "status",
        "requested_at",
        "started_at",
        "completed_at",
        "error_code",
        "error_message",
        "stats_json",
    ] {
        assert!(jobs.iter().any(|c| c == col), "import_jobs.{col}");
    }
    let runs = columns(&conn, "import_runs");
    for col in [
        "run_id",
        "job_id",
        "source",
        "mode",
        "worker_pid",
        "started_at",
        "ended_at",
        "outcome",
        "error_code",
        "stats_json",
    ] {
        assert!(runs.iter().any(|c| c == col), "import_runs.{col}");
    }
    conn.execute("INSERT INTO import_jobs (id, source, status, requested_at) VALUES ('j', 'aix', 'queued', 1)", [])
        .unwrap();
    let mode: String = conn
        .query_row("SELECT mode FROM import_jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "backfill");
    assert!(conn
        .execute("INSERT INTO import_jobs (id, source, status, requested_at) VALUES ('k', 'aix', 'bogus', 1)", [])
        .is_err());
    let mem = ledger::open_nexus_in_memory().unwrap();
    assert_eq!(columns(&mem, "import_runs").len(), runs.len());
}

#[test]
fn cursor_store_round_trip() {
    let conn = ledger::open_agents_in_memory().unwrap();
    let c = |key: &str, value| Cursor {
        key: key.into(),
        value,
    };
    ledger::store_cursors(
        &conn,
        "aix",
        &[
            c("b", json!({"o": 1})),
            c("a", json!("x")),
            c("  ", json!(1)),
        ],
        "r1",
        10,
    )
    .unwrap();
    ledger::store_cursors(&conn, "other", &[c("z", json!(0))], "r1", 10).unwrap();
    let loaded = ledger::load_cursors(&conn, "aix").unwrap();
    assert_eq!(loaded, vec![c("a", json!("x")), c("b", json!({"o": 1}))]);
    ledger::store_cursors(
        &conn,
        "aix",
        &[c("a", json!(null)), c("b", json!({"o": 2}))],
        "r2",
        20,
    )
    .unwrap();
    let loaded = ledger::load_cursors(&conn, "aix").unwrap();
    assert_eq!(loaded, vec![c("b", json!({"o": 2}))]);
    let run: String = conn
        .query_row(
            "SELECT last_run_id FROM session_import_cursors WHERE cursor_key = 'b'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(run, "r2");
    assert_eq!(ledger::load_cursors(&conn, "other").unwrap().len(), 1);
}

/// Migration 0004 on a ledger written by the schema before it (rows as the Claude Code mapping
/// 2 wrote them): each result's text is left in its call only, the call names its message, and
/// `toolUseResult` loses the strings that repeat the text or the input. What the migration
/// cannot tie to one call (a message with two results, another provider's rows) is untouched.
#[test]
fn migration_0004_stores_each_tool_result_once_in_an_existing_ledger() {
    let mut conn = Connection::open_in_memory().unwrap();
    let before_0004 = migrate::AGENTS
        .iter()
        .position(|m| m.name.contains("0004"))
        .unwrap();
    migrate(&mut conn, &migrate::AGENTS[..before_0004]).unwrap();
    let meta = |provider: &str| {
        json!({"import_source": "aix", "import_provider": provider, "import_session_id": "s1"})
            .to_string()
    };
    let claude = meta("claude-code");
    conn.execute_batch("INSERT INTO turns (id, started_at) VALUES ('t1', 1), ('t2', 1);")
        .unwrap();
    let mut message = conn
        .prepare("INSERT INTO messages (id, turn_id, role, content, sequence, created_at, metadata_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .unwrap();
    message
        .execute(rusqlite::params![
            "m-a",
            "t1",
            "assistant",
            None::<String>,
            1,
            10,
            claude
        ])
        .unwrap();
    message
        .execute(rusqlite::params![
            "m-r1", "t1", "tool", "done", 2, 20, claude
        ])
        .unwrap();
    message
        .execute(rusqlite::params![
            "m-r2", "t1", "tool", "one\ntwo", 3, 30, claude
        ])
        .unwrap();
    message
        .execute(rusqlite::params![
            "m-both", "t1", "tool", "x\ny", 4, 40, claude
        ])
        .unwrap();
    message
        .execute(rusqlite::params![
            "m-other",
            "t2",
            "tool",
            "out",
            1,
            50,
            meta("codex")
        ])
        .unwrap();
    drop(message);
    let mut call = conn
        .prepare("INSERT INTO tool_calls (id, turn_id, message_id, tool_name, params_json, result_json, status, started_at, completed_at, sequence) VALUES (?1, ?2, 'm-a', ?3, ?4, ?5, 'completed', 1, ?6, ?7)")
        .unwrap();
    let edit_params = json!({"file_path": "/a.rs", "old_string": "x", "new_string": "y"});
    let edit_result = json!({"content": "done", "toolUseResult": {"filePath": "/a.rs",
        "oldString": "x", "newString": "y", "originalFile": "x\n", "stdout": "done",
        "interrupted": false, "structuredPatch": [{"lines": ["-x", "+y"]}]}});
    let parts = json!([{"type": "text", "text": "one"}, {"type": "image"}, {"type": "text", "text": "two"}]);
    let rows = [
        (
            "c1",
            "t1",
            "Edit",
            edit_params.to_string(),
            edit_result.to_string(),
            20,
            1,
        ),
        (
            "c2",
            "t1",
            "Read",
            "{}".to_owned(),
            json!({"content": parts, "toolUseResult": "one\ntwo"}).to_string(),
            30,
            2,
        ),
        (
            "c3",
            "t1",
            "Bash",
            "{}".to_owned(),
            json!({"content": "x"}).to_string(),
            40,
            3,
        ),
        (
            "c4",
            "t1",
            "Bash",
            "{}".to_owned(),
            json!({"content": "y"}).to_string(),
            40,
            4,
        ),
        (
            "c5",
            "t2",
            "shell",
            "{}".to_owned(),
            json!({"content": "out"}).to_string(),
            50,
            1,
        ),
    ];
    for (id, turn, name, params, result, completed, seq) in rows {
        call.execute(rusqlite::params![
            id, turn, name, params, result, completed, seq
        ])
        .unwrap();
    }
    drop(call);

    migrate(&mut conn, migrate::AGENTS).unwrap();

    let contents: Vec<(String, Option<String>)> = conn
        .prepare("SELECT id, content FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let o = |s: &str| Some(s.to_owned());
    assert_eq!(
        contents,
        [
            ("m-a".to_owned(), None),
            ("m-both".to_owned(), o("x\ny")),
            ("m-other".to_owned(), o("out")),
            ("m-r1".to_owned(), None),
            ("m-r2".to_owned(), None),
        ]
    );
    let calls: Vec<(String, Option<String>, serde_json::Value)> = conn
        .prepare("SELECT id, result_message_id, result_json FROM tool_calls ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            let json: String = r.get(2)?;
            Ok((r.get(0)?, r.get(1)?, serde_json::from_str(&json).unwrap()))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        calls,
        [
            (
                "c1".to_owned(),
                o("m-r1"),
                json!({"content": "done",
                "toolUseResult": {"originalFile": "x\n", "interrupted": false,
                    "structuredPatch": [{"lines": ["-x", "+y"]}]},
                "toolUseResultFrom": {"filePath": "params.file_path", "oldString": "params.old_string",
                    "newString": "params.new_string", "stdout": "content"}})
            ),
            // Text parts are the message's text; a string `toolUseResult` only repeats a string `content`.
            (
                "c2".to_owned(),
                o("m-r2"),
                json!({"content": parts, "toolUseResult": "one\ntwo"})
            ),
            ("c3".to_owned(), None, json!({"content": "x"})),
            ("c4".to_owned(), None, json!({"content": "y"})),
            ("c5".to_owned(), None, json!({"content": "out"})),
        ]
    );
    // Booleans and nested values keep their JSON types.
    let interrupted: String = conn
        .query_row("SELECT json_type(result_json, '$.toolUseResult.interrupted') FROM tool_calls WHERE id = 'c1'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(interrupted, "false");
}
