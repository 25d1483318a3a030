//! sessions.import: the baseline scenarios 1, 2, 3, 5, 7 of IMPORT_SEMANTICS.md, label hints,
//! the request-level checks and the idempotency codes.

use nex::import::{self, IdKind, scoped_id, session_label};
use nex::protocol::{ImportRequest, ImportResponse, ItemStatus};
use serde_json::{Value, json};

use super::import_support::*;

const FULL_LABEL: &str = "import:anthropic:session-full-1:13ce4b76dc";
const FULL_TURN: &str = "imp_turn_213848d08221fd338a4716e5";
const FULL_TOOL: &str = "imp_tool_3cf0b1ef90d7676feabee392";

#[test]
#[allow(clippy::type_complexity)] // row tuples read straight from SQL
fn scenario_1_full_graph_and_idempotency() {
    let mut conn = ledger();
    let first = run_import(
        &mut conn,
        import_req("idem-full-1", "backfill", vec![full_item()]),
    )
    .unwrap();
    assert!(first.ok);
    assert_eq!(
        (first.imported, first.upserted, first.skipped, first.failed),
        (1, 0, 0, 0)
    );
    assert_eq!(first.results[0].status, ItemStatus::Imported);
    assert_eq!(first.results[0].session_label.as_deref(), Some(FULL_LABEL));
    assert_eq!(first.results[0].source_provider, "anthropic");
    assert!(
        uuid::Uuid::parse_str(&first.run_id).is_ok(),
        "run id is a UUID"
    );

    // Session row.
    let (persona, origin, thread, origin_sid, routing, status): (String, String, String, String, String, String) = conn
        .query_row(
            "SELECT persona_id, origin, thread_id, origin_session_id, routing_key, status FROM sessions WHERE label = ?1",
            [FULL_LABEL],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(persona, "main");
    assert_eq!(origin, "aix:anthropic");
    assert_eq!(thread, FULL_TURN);
    assert_eq!(origin_sid, "session-full-1");
    assert_eq!(routing, "/work/repo");
    assert_eq!(status, "active");
    let (created, updated): (i64, i64) = conn
        .query_row("SELECT created_at, updated_at FROM sessions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((created, updated), (1_700_000_000_000, 1_700_000_005_000));

    // Turn row.
    let turn: (
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
        String,
        String,
        String,
        i64,
        String,
        String,
        String,
    ) = conn
        .query_row(
            "SELECT status, started_at, completed_at, input_tokens, output_tokens, total_tokens,
                    query_message_ids, response_message_id, effective_config_json, tool_call_count,
                    source_event_id, turn_type, role
             FROM turns WHERE id = ?1",
            [FULL_TURN],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(turn.0, "completed");
    assert_eq!((turn.1, turn.2), (1_700_000_001_000, 1_700_000_004_000));
    assert_eq!((turn.3, turn.4, turn.5), (12, 34, 46));
    assert_eq!(
        turn.6,
        json!([msg_id("session-full-1", "msg-src-1")]).to_string()
    );
    assert_eq!(turn.7, msg_id("session-full-1", "msg-src-2"));
    assert_eq!(
        serde_json::from_str::<Value>(&turn.8).unwrap(),
        json!({"phase": "import"})
    );
    assert_eq!(turn.9, 1, "head turn's tool_call_count");
    assert_eq!(
        (turn.10.as_str(), turn.11.as_str(), turn.12.as_str()),
        ("turn-src-1", "normal", "unified")
    );
    let model: String = one(&conn, "SELECT model FROM turns");
    assert_eq!(
        model, "claude-sonnet",
        "turn model falls back to the session's"
    );

    // Thread row.
    let (key, persona, total): (String, String, i64) = conn
        .query_row(
            "SELECT thread_key, persona_id, total_tokens FROM threads WHERE turn_id = ?1",
            [FULL_TURN],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (key.as_str(), persona.as_str(), total),
        (FULL_TURN, "main", 46)
    );

    // Messages and tool call.
    assert_eq!(count(&conn, "messages"), 2);
    assert_eq!(count(&conn, "tool_calls"), 1);
    let (role, source, meta): (String, String, String) = conn
        .query_row(
            "SELECT role, source, metadata_json FROM messages WHERE id = ?1",
            [msg_id("session-full-1", "msg-src-1")],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((role.as_str(), source.as_str()), ("user", "aix:anthropic"));
    assert_eq!(
        serde_json::from_str::<Value>(&meta).unwrap(),
        json!({"import_source": "aix", "import_provider": "anthropic",
               "import_session_id": "session-full-1", "source_message_id": "msg-src-1"})
    );
    let tool: (String, String, String, String, String, String) = conn
        .query_row(
            "SELECT turn_id, message_id, tool_name, params_json, result_json, status FROM tool_calls WHERE id = ?1",
            [FULL_TOOL],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(tool.0, FULL_TURN);
    assert_eq!(tool.1, msg_id("session-full-1", "msg-src-2"));
    assert_eq!(tool.2, "read_file");
    assert_eq!(
        serde_json::from_str::<Value>(&tool.3).unwrap(),
        json!({"path": "README.md"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&tool.4).unwrap(),
        json!({"ok": true})
    );
    assert_eq!(tool.5, "completed");

    // Mapping.
    let (fp, label, run): (String, String, String) = conn
        .query_row(
            "SELECT source_session_fingerprint, session_label, last_run_id FROM session_imports",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (fp.as_str(), label.as_str(), run.as_str()),
        ("fp-v1", FULL_LABEL, first.run_id.as_str())
    );
    assert_eq!(count(&conn, "session_history"), 1);

    // Replay: identical response, same run id.
    let replay = run_import(
        &mut conn,
        import_req("idem-full-1", "backfill", vec![full_item()]),
    )
    .unwrap();
    // The stored answer, marked as a replay (its counts are the first request's).
    assert!(replay.replayed && !first.replayed);
    assert_eq!(
        ImportResponse {
            replayed: false,
            ..replay
        },
        first
    );

    // Same key, other mode.
    let err = run_import(
        &mut conn,
        import_req("idem-full-1", "tail", vec![full_item()]),
    );
    assert_eq!(code(err), "idempotency_key_mode_mismatch");

    // New key, same fingerprint: skipped.
    let skipped = run_import(
        &mut conn,
        import_req("idem-full-2", "backfill", vec![full_item()]),
    )
    .unwrap();
    assert_eq!((skipped.imported, skipped.skipped), (0, 1));
    assert_eq!(skipped.results[0].status, ItemStatus::Skipped);
    assert_eq!(
        skipped.results[0].reason.as_deref(),
        Some("fingerprint_unchanged")
    );
    assert_eq!(
        skipped.results[0].session_label.as_deref(),
        Some(FULL_LABEL)
    );

    // New fingerprint: upserted.
    let mut v2 = full_item();
    v2["sourceSessionFingerprint"] = json!("fp-v2");
    let upserted = run_import(&mut conn, import_req("idem-full-3", "backfill", vec![v2])).unwrap();
    assert_eq!((upserted.upserted, upserted.imported), (1, 0));
    assert_eq!(upserted.results[0].status, ItemStatus::Upserted);
    let fp: String = one(
        &conn,
        "SELECT source_session_fingerprint FROM session_imports",
    );
    assert_eq!(fp, "fp-v2");
    assert_eq!(count(&conn, "sessions"), 1);
    assert_eq!(count(&conn, "turns"), 1);
}

#[test]
fn scenario_2_label_hint_names_an_existing_session() {
    let mut conn = ledger();
    conn.execute(
        "INSERT INTO sessions (label, persona_id, created_at, updated_at) VALUES ('dm:entity-import-target', 'main', 1, 1)",
        [],
    )
    .unwrap();
    let mut it = item("cursor", "cursor-session-hinted", "fp-1");
    it["session"] = json!({ "labelHint": "dm:entity-import-target" });
    let resp = run_import(&mut conn, import_req("hint-1", "backfill", vec![it])).unwrap();
    assert_eq!(resp.imported, 1);
    assert_eq!(
        resp.results[0].session_label.as_deref(),
        Some("dm:entity-import-target")
    );
    let mapped: String = one(&conn, "SELECT session_label FROM session_imports");
    assert_eq!(mapped, "dm:entity-import-target");
    let deterministic = session_label("aix", "cursor", "cursor-session-hinted");
    assert_eq!(
        deterministic,
        "import:cursor:cursor-session-hinted:14c3b5583a"
    );
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sessions WHERE label = ?1",
            [&deterministic],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn label_hint_is_ignored_for_another_persona_or_when_the_deterministic_label_exists() {
    let mut conn = ledger();
    conn.execute(
        "INSERT INTO sessions (label, persona_id, created_at, updated_at) VALUES ('dm:other', 'someone-else', 1, 1)",
        [],
    )
    .unwrap();
    let mut it = item("cursor", "s-1", "fp-1");
    it["session"] = json!({ "labelHint": "dm:other" });
    let resp = run_import(&mut conn, import_req("hint-a", "backfill", vec![it])).unwrap();
    assert_eq!(
        resp.results[0].session_label,
        Some(session_label("aix", "cursor", "s-1"))
    );

    // The deterministic label exists (live) but no mapping: the hint is not used.
    let det = session_label("aix", "cursor", "s-2");
    conn.execute(
        "INSERT INTO sessions (label, persona_id, created_at, updated_at) VALUES (?1, 'main', 1, 1), ('dm:mine', 'main', 1, 1)",
        [&det],
    )
    .unwrap();
    let mut it = item("cursor", "s-2", "fp-1");
    it["session"] = json!({ "labelHint": "dm:mine" });
    let resp = run_import(&mut conn, import_req("hint-b", "backfill", vec![it])).unwrap();
    assert_eq!(resp.results[0].session_label, Some(det));
}

#[test]
fn scenario_3_forward_parent_reference() {
    let mut conn = ledger();
    let mut it = item("anthropic", "fwd-1", "fp");
    it["turns"] = json!([
        { "sourceTurnId": "child", "parentSourceTurnId": "parent", "startedAtMs": 20 },
        { "sourceTurnId": "parent", "startedAtMs": 10, "completedAtMs": 15 },
        { "sourceTurnId": "orphan", "parentSourceTurnId": "nowhere", "startedAtMs": 30 }
    ]);
    let resp = run_import(&mut conn, import_req("fwd", "backfill", vec![it])).unwrap();
    assert_eq!(resp.imported, 1, "{resp:?}");
    let id = |s: &str| scoped_id(IdKind::Turn, "aix", "anthropic", "fwd-1", s);
    let parent_of = |s: &str| -> Option<String> {
        conn.query_row(
            "SELECT parent_turn_id FROM turns WHERE id = ?1",
            [id(s)],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(parent_of("child"), Some(id("parent")));
    assert_eq!(parent_of("parent"), None);
    assert_eq!(parent_of("orphan"), None, "unknown parent is NULL");
    let has_children = |s: &str| -> i64 {
        conn.query_row(
            "SELECT has_children FROM turns WHERE id = ?1",
            [id(s)],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(
        (
            has_children("parent"),
            has_children("child"),
            has_children("orphan")
        ),
        (1, 0, 0)
    );
    // Head turn: the latest completion-or-start time (orphan started at 30).
    let head: String = one(&conn, "SELECT thread_id FROM sessions");
    assert_eq!(head, id("orphan"));
    // Status: completed only with a completion time.
    let status: String = conn
        .query_row(
            "SELECT status FROM turns WHERE id = ?1",
            [id("child")],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "pending");
}

#[test]
fn scenario_5_replay_keeps_the_given_run_id() {
    let mut conn = ledger();
    let mut req = import_req("idem-1", "backfill", vec![full_item()]);
    req["runId"] = json!("run-1");
    let first = run_import(&mut conn, req.clone()).unwrap();
    assert_eq!(first.run_id, "run-1");
    req["runId"] = json!("run-2");
    let again = run_import(&mut conn, req).unwrap();
    assert_eq!(
        again.run_id, "run-1",
        "replay answers with the stored response"
    );
    assert!(again.replayed);
    assert_eq!(
        ImportResponse {
            replayed: false,
            ..again
        },
        first
    );
}

#[test]
fn scenario_7_raw_camel_and_snake_payloads() {
    let mut conn = ledger();
    let raw = r#"{"source":"aix","mode":"tail","idempotencyKey":"raw-1","items":[{
        "sourceProvider":"anthropic","sourceSessionId":"raw-session","sourceSessionFingerprint":"f1",
        "session":{"createdAtMs":1000,"updatedAtMs":2000},
        "turns":[{"sourceTurnId":"t1","startedAtMs":1000,"completedAtMs":2000,
                  "queryMessageSourceIds":["m1"],"responseMessageSourceId":"m2"}],
        "messages":[{"sourceMessageId":"m1","sourceTurnId":"t1","role":"user","content":"q","sequence":0,"createdAtMs":1000},
                    {"sourceMessageId":"m2","sourceTurnId":"t1","role":"assistant","content":"a","sequence":1,"createdAtMs":1500}]}]}"#;
    let req: ImportRequest = serde_json::from_str(raw).unwrap();
    let tx = conn.transaction().unwrap();
    let resp = import::import(&tx, &req, &opts()).unwrap();
    tx.commit().unwrap();
    assert_eq!(resp.imported, 1);
    assert!(!resp.run_id.is_empty());
    assert_eq!(
        resp.results[0].session_label,
        Some(session_label("aix", "anthropic", "raw-session"))
    );
    let tx = conn.transaction().unwrap();
    let replay = import::import(&tx, &req, &opts()).unwrap();
    tx.commit().unwrap();
    assert_eq!(replay.run_id, resp.run_id);

    // The same content in snake_case under the same key is a replay too (same hash).
    let snake = r#"{"source":"aix","mode":"tail","idempotency_key":"raw-1","items":[{
        "source_provider":"anthropic","source_session_id":"raw-session","source_session_fingerprint":"f1",
        "session":{"created_at_ms":1000,"updated_at_ms":2000},
        "turns":[{"source_turn_id":"t1","started_at_ms":1000,"completed_at_ms":2000,
                  "query_message_source_ids":["m1"],"response_message_source_id":"m2"}],
        "messages":[{"source_message_id":"m1","source_turn_id":"t1","role":"user","content":"q","sequence":0,"created_at_ms":1000},
                    {"source_message_id":"m2","source_turn_id":"t1","role":"assistant","content":"a","sequence":1,"created_at_ms":1500}]}]}"#;
    let snake_req: ImportRequest = serde_json::from_str(snake).unwrap();
    let tx = conn.transaction().unwrap();
    let replay = import::import(&tx, &snake_req, &opts()).unwrap();
    tx.commit().unwrap();
    assert!(replay.replayed);
    assert_eq!(
        ImportResponse {
            replayed: false,
            ..replay
        },
        resp
    );
}

#[test]
fn request_level_errors_write_nothing() {
    let mut conn = ledger();
    let cases = [
        (
            json!({"source":"foo","mode":"backfill","idempotencyKey":"k","items":[full_item()]}),
            "source_unsupported",
        ),
        (
            json!({"source":"aix","mode":"sideways","idempotencyKey":"k","items":[full_item()]}),
            "mode_unsupported",
        ),
        (
            json!({"source":"aix","mode":"backfill","idempotencyKey":"  ","items":[full_item()]}),
            "idempotency_key_required",
        ),
        (
            json!({"source":"aix","mode":"backfill","idempotencyKey":"k","items":[]}),
            "items_required",
        ),
        (
            json!({"source":"aix","mode":"backfill","idempotencyKey":"k"}),
            "items_required",
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(code(run_import(&mut conn, req)), expected);
    }
    // Order: source is checked before mode, mode before key, key before items.
    let all_bad = json!({"source":"foo","mode":"x","idempotencyKey":"","items":[]});
    assert_eq!(code(run_import(&mut conn, all_bad)), "source_unsupported");
    let mode_and_key = json!({"source":"aix","mode":"x","idempotencyKey":"","items":[]});
    assert_eq!(
        code(run_import(&mut conn, mode_and_key)),
        "mode_unsupported"
    );
    for table in [
        "sessions",
        "turns",
        "session_imports",
        "session_import_requests",
    ] {
        assert_eq!(count(&conn, table), 0, "{table}");
    }
}

#[test]
fn idempotency_mismatch_codes() {
    let mut conn = ledger();
    run_import(&mut conn, import_req("k-1", "backfill", vec![full_item()])).unwrap();
    let mut other = full_item();
    other["sourceSessionFingerprint"] = json!("fp-other");
    assert_eq!(
        code(run_import(
            &mut conn,
            import_req("k-1", "backfill", vec![other])
        )),
        "idempotency_key_payload_mismatch"
    );
    let mut persona = import_req("k-1", "backfill", vec![full_item()]);
    persona["personaId"] = json!("work");
    assert_eq!(
        code(run_import(&mut conn, persona)),
        "idempotency_key_payload_mismatch"
    );
    conn.execute(
        "INSERT INTO session_import_requests (idempotency_key, source, mode, run_id, request_hash, response_json, created_at)
         VALUES ('k-legacy-source', 'other', 'backfill', 'r', NULL, '{}', 1)",
        [],
    )
    .unwrap();
    assert_eq!(
        code(run_import(
            &mut conn,
            import_req("k-legacy-source", "backfill", vec![full_item()])
        )),
        "idempotency_key_source_mismatch"
    );
}

#[test]
fn legacy_request_row_without_hash_is_re_executed() {
    let mut conn = ledger();
    conn.execute(
        "INSERT INTO session_import_requests (idempotency_key, source, mode, run_id, request_hash, response_json, created_at)
         VALUES ('legacy', 'aix', 'backfill', 'old-run', NULL, '{}', 1)",
        [],
    )
    .unwrap();
    let resp = run_import(
        &mut conn,
        import_req("legacy", "backfill", vec![full_item()]),
    )
    .unwrap();
    assert_eq!(resp.imported, 1);
    assert_ne!(resp.run_id, "old-run");
    let hash: Option<String> = one(&conn, "SELECT request_hash FROM session_import_requests");
    assert_eq!(hash.map(|h| h.len()), Some(64));
}
