//! sessions.import, rule by rule (IMPORT_SEMANTICS.md item algorithm 3-12 and the marked
//! improvements): item isolation and reasons, time fallbacks, root turns, normalisation,
//! lineage, persona, unchanged-row skipping, cursors, busy ledger, orphaned rows.

use nex::import::{IdKind, ImportOptions, scoped_id, session_label};
use nex::protocol::ItemStatus;
use serde_json::{Value, json};

use super::import_support::*;

#[test]
fn per_item_failures_are_isolated() {
    let mut conn = ledger();
    let mut no_provider = item("", "s", "f");
    no_provider["sourceProvider"] = json!("   ");
    let mut bad_tool = item("anthropic", "bad-tool", "f");
    // A forward parent reference inside the failing item: its deferred foreign-key state must
    // be rolled back with the item's savepoint (the commit below would fail otherwise).
    bad_tool["turns"] = json!([{ "sourceTurnId": "c", "parentSourceTurnId": "t", "startedAtMs": 6 },
                               { "sourceTurnId": "t", "startedAtMs": 5 }]);
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
    let logged = count(&conn, "change_log");
    let resp = run_import(&mut conn, import_req("u-2", "backfill", vec![v2])).unwrap();
    assert_eq!(resp.upserted, 1);
    // One turn row, the mapping row and the request row; the session, threads, other turns
    // and history are untouched. The change log (migration 0006) records the two replicated
    // rows among them.
    let log_rows = count(&conn, "change_log") - logged;
    assert_eq!(log_rows, 2);
    assert_eq!(conn.total_changes() - before - log_rows as u64, 3);
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

#[test]
fn rows_left_without_a_mapping_are_upserted_not_duplicated() {
    let mut conn = ledger();
    run_import(
        &mut conn,
        import_req("orphan-1", "backfill", vec![full_item()]),
    )
    .unwrap();
    let before = canonical_dump(&conn);
    // The mapping is gone (e.g. removed by hand) but the rows remain: the item is "new" again,
    // its plain inserts hit existing keys and fall back to the upserts.
    conn.execute("DELETE FROM session_imports", []).unwrap();
    let resp = run_import(
        &mut conn,
        import_req("orphan-2", "backfill", vec![full_item()]),
    )
    .unwrap();
    assert_eq!((resp.imported, resp.failed), (1, 0), "{resp:?}");
    assert_eq!(canonical_dump(&conn), before);
}

/// The rows of each replicated table (as `change_log.tbl`, key SQL, table) whose key the change
/// log lacks, and the log's rows per table.
const REPLICATED: &[(i64, &str, &str)] = &[
    (1, "id", "turns"),
    (2, "turn_id", "threads"),
    (3, "label", "sessions"),
    (4, "id", "messages"),
    (5, "id", "tool_calls"),
    (6, "CAST(id AS TEXT)", "session_history"),
    (
        7,
        "source || char(31) || source_provider || char(31) || source_session_id",
        "session_imports",
    ),
];

fn unlogged_rows(conn: &rusqlite::Connection) -> i64 {
    REPLICATED
        .iter()
        .map(|(tbl, key, table)| {
            one::<i64>(
                conn,
                &format!(
                    "SELECT count(*) FROM {table}
                     WHERE {key} NOT IN (SELECT row_key FROM change_log WHERE tbl = {tbl})"
                ),
            )
        })
        .sum()
}

fn logged(conn: &rusqlite::Connection, tbl: i64) -> i64 {
    one(
        conn,
        &format!("SELECT count(*) FROM change_log WHERE tbl = {tbl}"),
    )
}

#[test]
fn every_inserted_row_is_logged_once_by_the_writer_and_no_unchanged_row_again() {
    let mut conn = ledger();
    let mut child = item("anthropic", "child-1", "fp-c1");
    child["session"] = json!({ "parentSourceSessionId": "session-full-1", "isSubagent": true });
    run_import(
        &mut conn,
        import_req("k-1", "backfill", vec![full_item(), child]),
    )
    .unwrap();
    assert_eq!(unlogged_rows(&conn), 0);
    // A fresh session's rows go through plain INSERTs: each logged once.
    for (tbl, _, table) in REPLICATED {
        if *table != "turns" {
            assert_eq!(logged(&conn, *tbl), count(&conn, table), "{table}");
        }
    }

    // The same session again with one more message and tool call: its rows go through the
    // upserts; the new ones are inserted and logged, unchanged ones are not written at all.
    let mut v2 = full_item();
    v2["sourceSessionFingerprint"] = json!("fp-next");
    let mut message = v2["messages"][1].clone();
    message["sourceMessageId"] = json!("msg-src-3");
    message["sequence"] = json!(2);
    v2["messages"].as_array_mut().unwrap().push(message);
    let mut call = v2["toolCalls"][0].clone();
    call["sourceToolCallId"] = json!("tool-src-2");
    call["sequence"] = json!(1);
    v2["toolCalls"].as_array_mut().unwrap().push(call);
    let before: Vec<i64> = REPLICATED
        .iter()
        .map(|(t, _, _)| logged(&conn, *t))
        .collect();
    let resp = run_import(&mut conn, import_req("k-2", "backfill", vec![v2])).unwrap();
    assert_eq!(resp.upserted, 1);
    assert_eq!(unlogged_rows(&conn), 0);
    let added: Vec<i64> = REPLICATED
        .iter()
        .zip(&before)
        .map(|((t, _, _), b)| logged(&conn, *t) - b)
        .collect();
    // One message and one call inserted, the mapping updated (its trigger), the turn's tool
    // count updated (its trigger); threads, sessions and history unchanged.
    assert_eq!(added, [1, 0, 0, 1, 1, 0, 1]);
    // The writer logs on this schema, no insert trigger does (migration 0012).
    assert!(nex::ledger::change_log::logged_by_writer(&conn).unwrap());
}
