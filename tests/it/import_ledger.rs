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
