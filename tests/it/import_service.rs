//! sessions.import: the baseline scenarios 1, 2, 3, 7 of IMPORT_SEMANTICS.md, every rule of
//! the import and item algorithms, and the request-level and per-item error codes.

use nex::import::{self, IdKind, ImportOptions, scoped_id, session_label};
use nex::protocol::{ImportRequest, ItemStatus};
use serde_json::{Value, json};

use super::import_support::*;

const FULL_LABEL: &str = "import:anthropic:session-full-1:13ce4b76dc";
const FULL_TURN: &str = "imp_turn_213848d08221fd338a4716e5";
const FULL_TOOL: &str = "imp_tool_3cf0b1ef90d7676feabee392";

fn msg_id(session: &str, src: &str) -> String {
    scoped_id(IdKind::Message, "aix", "anthropic", session, src)
}

fn item(provider: &str, session: &str, fp: &str) -> Value {
    json!({ "sourceProvider": provider, "sourceSessionId": session,
            "sourceSessionFingerprint": fp, "session": {}, "turns": [], "messages": [] })
}

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
    assert_eq!(replay, first);

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
    assert_eq!(again, first);
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
    assert_eq!(replay, resp);
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

#[test]
fn per_item_failures_are_isolated() {
    let mut conn = ledger();
    let mut no_provider = item("", "s", "f");
    no_provider["sourceProvider"] = json!("   ");
    let mut bad_tool = item("anthropic", "bad-tool", "f");
    bad_tool["turns"] = json!([{ "sourceTurnId": "t", "startedAtMs": 5 }]);
    bad_tool["toolCalls"] = json!([{ "sourceToolCallId": "c", "sourceTurnId": "t", "toolName": " ",
                                      "startedAtMs": 5, "sequence": 0 }]);
    let items = vec![
        no_provider,
        item("anthropic", "", "f"),
        item("anthropic", "s", ""),
        bad_tool,
        item("anthropic", "good", "f"),
    ];
    let resp = run_import(&mut conn, import_req("iso", "backfill", items)).unwrap();
    assert!(resp.ok);
    assert_eq!((resp.imported, resp.failed), (1, 4));
    let reasons: Vec<Option<&str>> = resp.results.iter().map(|r| r.reason.as_deref()).collect();
    assert_eq!(
        reasons,
        vec![
            Some("source_provider_required"),
            Some("source_session_id_required"),
            Some("source_session_fingerprint_required"),
            Some("ledger_write_failed"),
            None
        ]
    );
    assert!(
        resp.results[..4]
            .iter()
            .all(|r| r.status == ItemStatus::Failed && r.session_label.is_none())
    );
    // The failed item's turn was rolled back with its savepoint; the good item's root is there.
    assert_eq!(count(&conn, "turns"), 1);
    assert_eq!(count(&conn, "sessions"), 1);
    assert_eq!(count(&conn, "session_imports"), 1);
}

#[test]
fn timestamps_fall_back_and_tokens_clamp() {
    let mut conn = ledger();
    let it = json!({
        "sourceProvider": "p", "sourceSessionId": "times", "sourceSessionFingerprint": "f",
        "session": { "createdAtMs": -5 },
        "turns": [{ "sourceTurnId": "t", "startedAtMs": 0, "completedAtMs": 0,
                    "inputTokens": -3, "totalTokens": 7 }],
        "messages": [{ "sourceMessageId": "m", "role": "user", "sequence": -2, "createdAtMs": 0 }],
        "toolCalls": [{ "sourceToolCallId": "c", "toolName": "x", "startedAtMs": 0,
                        "completedAtMs": -1, "sequence": 3 }]
    });
    run_import(&mut conn, import_req("times", "tail", vec![it])).unwrap();
    let (created, updated): (i64, i64) = conn
        .query_row("SELECT created_at, updated_at FROM sessions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (created, updated),
        (NOW, NOW),
        "importedAt falls back to now, session times to importedAt"
    );
    let (start, done, input, total): (i64, i64, i64, i64) = conn
        .query_row(
            "SELECT started_at, completed_at, input_tokens, total_tokens FROM turns",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((start, done, input, total), (NOW, NOW, 0, 7));
    let (seq, created): (i64, i64) = conn
        .query_row("SELECT sequence, created_at FROM messages", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((seq, created), (0, NOW));
    let (start, done, status, params): (i64, i64, String, String) = conn
        .query_row(
            "SELECT started_at, completed_at, status, params_json FROM tool_calls",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (start, done, status.as_str(), params.as_str()),
        (NOW, NOW, "completed", "{}")
    );
    // History row: changed_at = max(importedAt, updated).
    let changed: i64 = one(&conn, "SELECT changed_at FROM session_history");
    assert_eq!(changed, NOW);
}

#[test]
fn session_without_turns_gets_a_root_turn() {
    let mut conn = ledger();
    let it = json!({
        "sourceProvider": "anthropic", "sourceSessionId": "chunk-session-1", "sourceSessionFingerprint": "f",
        "session": { "createdAtMs": 100, "updatedAtMs": 50, "model": "m", "metadata": {"a": 1} },
        "turns": [],
        "messages": [{ "sourceMessageId": "m", "sourceTurnId": "ghost", "role": "user", "sequence": 0, "createdAtMs": 7 }],
        "toolCalls": [{ "sourceToolCallId": "c1", "toolName": "x", "startedAtMs": 1, "sequence": 0 },
                      { "sourceToolCallId": "c2", "toolName": "y", "startedAtMs": 1, "sequence": 1 }]
    });
    run_import(&mut conn, import_req("root", "backfill", vec![it])).unwrap();
    let root = "imp_turn_2483880b3ade84b2a1b147af";
    let (status, start, done, count_, event, model, config): (String, i64, i64, i64, String, String, String) = conn
        .query_row(
            "SELECT status, started_at, completed_at, tool_call_count, source_event_id, model, effective_config_json FROM turns WHERE id = ?1",
            [root],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .unwrap();
    assert_eq!(
        (
            status.as_str(),
            start,
            done,
            count_,
            event.as_str(),
            model.as_str()
        ),
        ("completed", 50, 50, 2, "__root__", "m")
    );
    assert_eq!(config, r#"{"a":1}"#);
    let turn_of_message: String = one(&conn, "SELECT turn_id FROM messages");
    assert_eq!(
        turn_of_message, root,
        "unknown turn falls back to the root turn"
    );
    let thread: String = one(&conn, "SELECT thread_id FROM sessions");
    assert_eq!(thread, root);
    // updated_at = max(updated, created).
    let updated: i64 = one(&conn, "SELECT updated_at FROM sessions");
    assert_eq!(updated, 100);
}

#[test]
fn normalisation_of_roles_statuses_metadata_and_blank_ids() {
    let mut conn = ledger();
    let it = json!({
        "sourceProvider": "anthropic", "sourceSessionId": "norm", "sourceSessionFingerprint": "f",
        "session": {},
        "turns": [{ "sourceTurnId": "t1", "startedAtMs": 1 }, { "sourceTurnId": "t2", "startedAtMs": 2 }],
        "messages": [
            { "sourceMessageId": "m1", "role": "developer", "sequence": 0, "createdAtMs": 1,
              "contextJson": "  some context  ", "metadataJson": [1, 2] },
            { "sourceMessageId": "m2", "sourceTurnId": "t2", "role": "TOOL", "sequence": 1, "createdAtMs": 1,
              "contextJson": {"b": 2}, "metadataJson": {"x": "y", "import_source": "spoofed"}, "content": "  ", "thinking": " hmm " },
            { "sourceMessageId": "  ", "role": "user", "sequence": 2, "createdAtMs": 1 }
        ],
        "toolCalls": [
            { "sourceToolCallId": "a", "toolName": "x", "startedAtMs": 1, "sequence": 0, "status": "weird" },
            { "sourceToolCallId": "b", "toolName": "x", "startedAtMs": 1, "sequence": 1 },
            { "sourceToolCallId": "c", "toolName": "x", "startedAtMs": 1, "sequence": 2, "status": "Running", "error": " boom " },
            { "sourceToolCallId": "", "toolName": "x", "startedAtMs": 1, "sequence": 3 }
        ]
    });
    run_import(&mut conn, import_req("norm", "backfill", vec![it])).unwrap();
    assert_eq!(count(&conn, "messages"), 2, "blank message id skipped");
    assert_eq!(count(&conn, "tool_calls"), 3, "blank tool id skipped");
    let m = |src: &str| msg_id("norm", src);
    let t = |src: &str| scoped_id(IdKind::Turn, "aix", "anthropic", "norm", src);
    let row = |id: String| -> (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    ) {
        conn.query_row(
            "SELECT role, turn_id, content, thinking, context_json, metadata_json FROM messages WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap()
    };
    let m1 = row(m("m1"));
    assert_eq!(m1.0, "assistant");
    assert_eq!(m1.1, t("t1"), "no turn -> first turn");
    assert_eq!(m1.4.as_deref(), Some("some context"));
    let meta: Value = serde_json::from_str(&m1.5).unwrap();
    assert_eq!(meta["_raw"], json!([1, 2]));
    let m2 = row(m("m2"));
    assert_eq!((m2.0.as_str(), m2.1.clone()), ("tool", t("t2")));
    assert_eq!((m2.2, m2.3.as_deref()), (None, Some("hmm")));
    assert_eq!(m2.4.as_deref(), Some(r#"{"b":2}"#));
    let meta: Value = serde_json::from_str(&m2.5).unwrap();
    assert_eq!(meta["x"], "y");
    assert_eq!(
        meta["import_source"], "aix",
        "provenance keys win over given ones"
    );
    let status = |src: &str| -> (String, Option<String>) {
        conn.query_row(
            "SELECT status, error FROM tool_calls WHERE id = ?1",
            [scoped_id(IdKind::Tool, "aix", "anthropic", "norm", src)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(status("a").0, "pending");
    assert_eq!(status("b").0, "pending", "blank status without completion");
    assert_eq!(status("c"), ("running".to_owned(), Some("boom".to_owned())));
    // tool_call_count only counts calls naming the turn.
    let counts: i64 = one(&conn, "SELECT SUM(tool_call_count) FROM turns");
    assert_eq!(counts, 0);
}

#[test]
fn lineage_links_child_to_parent_session_and_spawning_call() {
    let mut conn = ledger();
    let parent = json!({
        "sourceProvider": "anthropic", "sourceSessionId": "parent-s", "sourceSessionFingerprint": "f",
        "session": {},
        "turns": [{ "sourceTurnId": "t", "startedAtMs": 1 }],
        "messages": [],
        "toolCalls": [{ "sourceToolCallId": "task-call", "sourceTurnId": "t", "toolName": "Task", "startedAtMs": 1,
                        "sequence": 0, "spawnedSourceSessionId": "child-s" }]
    });
    let child = json!({
        "sourceProvider": "anthropic", "sourceSessionId": "child-s", "sourceSessionFingerprint": "f",
        "session": { "isSubagent": true, "parentSourceSessionId": "parent-s", "spawnToolCallId": "task-call",
                     "taskDescription": "explore", "taskStatus": "done", "project": "proj" },
        "turns": [], "messages": []
    });
    run_import(
        &mut conn,
        import_req("lineage", "backfill", vec![parent, child]),
    )
    .unwrap();
    let child_label = session_label("aix", "anthropic", "child-s");
    let (sub, parent_label, spawn, desc, status, routing): (i64, String, String, String, String, String) = conn
        .query_row(
            "SELECT is_subagent, parent_session_label, spawn_tool_call_id, task_description, task_status, routing_key FROM sessions WHERE label = ?1",
            [&child_label],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(sub, 1);
    assert_eq!(parent_label, session_label("aix", "anthropic", "parent-s"));
    let parent_call: String = one(&conn, "SELECT id FROM tool_calls WHERE tool_name = 'Task'");
    assert_eq!(
        spawn, parent_call,
        "(improvement) the spawn id is the parent's tool-call row"
    );
    assert_eq!(
        (desc.as_str(), status.as_str(), routing.as_str()),
        ("explore", "done", "proj")
    );
    let spawned: String = one(&conn, "SELECT spawned_session_label FROM tool_calls");
    assert_eq!(spawned, child_label);
}

#[test]
fn spawned_label_uses_the_childs_mapping_label() {
    let mut conn = ledger();
    conn.execute("INSERT INTO sessions (label, persona_id, created_at, updated_at) VALUES ('dm:kid', 'main', 1, 1)", [])
        .unwrap();
    let mut child = item("anthropic", "kid", "f");
    child["session"] = json!({ "labelHint": "dm:kid" });
    run_import(&mut conn, import_req("kid", "backfill", vec![child])).unwrap();
    let mut parent = item("anthropic", "mom", "f");
    parent["toolCalls"] = json!([{ "sourceToolCallId": "c", "toolName": "Task", "startedAtMs": 1, "sequence": 0,
                                    "spawnedSourceSessionId": "kid" }]);
    run_import(&mut conn, import_req("mom", "backfill", vec![parent])).unwrap();
    let spawned: String = one(&conn, "SELECT spawned_session_label FROM tool_calls");
    assert_eq!(spawned, "dm:kid");
}

#[test]
fn persona_resolution_and_skip_refresh() {
    let mut conn = ledger();
    let mut req = import_req("p-1", "backfill", vec![full_item()]);
    req["personaId"] = json!("work");
    run_import(&mut conn, req).unwrap();
    let persona: String = one(&conn, "SELECT persona_id FROM sessions");
    assert_eq!(persona, "work");
    // Skip path: only the persona is refreshed (here by the service option).
    let forced = ImportOptions {
        persona_id: Some("ops".into()),
        ..opts()
    };
    let resp = run_import_with(
        &mut conn,
        import_req("p-2", "backfill", vec![full_item()]),
        &forced,
    )
    .unwrap();
    assert_eq!(resp.skipped, 1);
    let persona: String = one(&conn, "SELECT persona_id FROM sessions");
    assert_eq!(persona, "ops");
    assert_eq!(count(&conn, "session_history"), 1, "skip writes no history");
    let thread_persona: String = one(&conn, "SELECT persona_id FROM threads");
    assert_eq!(
        thread_persona, "work",
        "skip touches nothing but the session persona"
    );
}

#[test]
fn unchanged_rows_are_not_rewritten_and_blanks_never_erase() {
    let mut conn = ledger();
    let mut v1 = full_item();
    v1["session"]["taskDescription"] = json!("keep me");
    v1["turns"] = json!([
        { "sourceTurnId": "a", "startedAtMs": 10, "completedAtMs": 11 },
        { "sourceTurnId": "b", "startedAtMs": 20, "completedAtMs": 21 },
        { "sourceTurnId": "c", "startedAtMs": 30, "completedAtMs": 31 }
    ]);
    v1["messages"] = json!([]);
    v1["toolCalls"] = json!([]);
    run_import(&mut conn, import_req("u-1", "backfill", vec![v1.clone()])).unwrap();
    let history = count(&conn, "session_history");

    let mut v2 = v1.clone();
    v2["sourceSessionFingerprint"] = json!("fp-v2");
    v2["session"]
        .as_object_mut()
        .unwrap()
        .remove("taskDescription");
    v2["turns"][1]["completedAtMs"] = json!(25);
    let before = conn.total_changes();
    let resp = run_import(&mut conn, import_req("u-2", "backfill", vec![v2])).unwrap();
    assert_eq!(resp.upserted, 1);
    // One turn row, the mapping row and the request row; the session, threads, other turns
    // and history are untouched.
    assert_eq!(conn.total_changes() - before, 3);
    assert_eq!(
        count(&conn, "session_history"),
        history,
        "head unchanged: no history row"
    );
    let desc: String = one(&conn, "SELECT task_description FROM sessions");
    assert_eq!(desc, "keep me");
    let done: i64 = conn
        .query_row(
            "SELECT completed_at FROM turns WHERE source_event_id = 'b'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(done, 25);

    // A head change appends history.
    let mut v3 = v1.clone();
    v3["sourceSessionFingerprint"] = json!("fp-v3");
    v3["turns"][0]["completedAtMs"] = json!(99);
    run_import(&mut conn, import_req("u-3", "backfill", vec![v3])).unwrap();
    assert_eq!(count(&conn, "session_history"), history + 1);
}

#[test]
fn replay_writes_nothing_and_cursors_follow_the_request() {
    let mut conn = ledger();
    let mut req = import_req("cur-1", "tail", vec![full_item()]);
    req["cursors"] = json!([{ "key": "claude-code:/a.jsonl", "value": { "offset": 10 } },
                            { "key": "claude-code:/b.jsonl", "value": { "offset": 3 } }]);
    run_import(&mut conn, req.clone()).unwrap();
    let cursors = nex::ledger::load_cursors(&conn, "aix").unwrap();
    assert_eq!(cursors.len(), 2);
    assert_eq!(cursors[0].value, json!({"offset": 10}));

    let before = conn.total_changes();
    run_import(&mut conn, import_req("cur-1", "tail", vec![full_item()])).unwrap();
    assert_eq!(conn.total_changes(), before, "a replay writes nothing");

    // A failed request stores no cursor; a null value deletes one.
    let mut bad = import_req("cur-1", "backfill", vec![full_item()]);
    bad["cursors"] = json!([{ "key": "claude-code:/c.jsonl", "value": 1 }]);
    assert_eq!(
        code(run_import(&mut conn, bad)),
        "idempotency_key_mode_mismatch"
    );
    let mut delete = import_req("cur-2", "tail", vec![full_item()]);
    delete["cursors"] = json!([{ "key": "claude-code:/a.jsonl", "value": null }]);
    run_import(&mut conn, delete).unwrap();
    let keys: Vec<String> = nex::ledger::load_cursors(&conn, "aix")
        .unwrap()
        .into_iter()
        .map(|c| c.key)
        .collect();
    assert_eq!(keys, vec!["claude-code:/b.jsonl".to_owned()]);
}

#[test]
fn busy_ledger_fails_the_request_with_ledger_busy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    let mut conn = nex::ledger::open_agents(&path).unwrap();
    conn.busy_timeout(std::time::Duration::from_millis(20))
        .unwrap();
    let holder = nex::ledger::open_agents(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = run_import(&mut conn, import_req("busy", "backfill", vec![full_item()]));
    assert_eq!(code(err), "ledger_busy");
    holder.execute_batch("ROLLBACK").unwrap();
    let resp = run_import(&mut conn, import_req("busy", "backfill", vec![full_item()])).unwrap();
    assert_eq!(resp.imported, 1, "retry after the lock is released");
}
