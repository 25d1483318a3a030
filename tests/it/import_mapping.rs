//! Item rule 13 (mapping versions): a whole item of a newer mapping version replaces the rows an
//! older mapping produced for its session, in the item's savepoint; partial items and items of
//! the stored version never remove; migration 0002 attributes the turns of a ledger written by
//! schema 0001 so that its stale rows can be found.

use nex::import::{IdKind, scoped_id};
use nex::ledger::{self, migrate};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::import_support::{canonical_dump, count, import_req, ledger, run_import};

const T0: i64 = 1_760_000_000_000;

fn turn(id: &str, parent: Option<&str>, at: i64, tokens: i64) -> Value {
    json!({"sourceTurnId": id, "parentSourceTurnId": parent, "startedAtMs": T0 + at,
           "completedAtMs": T0 + at + 5, "inputTokens": tokens, "outputTokens": 1,
           "totalTokens": tokens + 1})
}

fn message(id: &str, turn: &str, role: &str, seq: i64) -> Value {
    json!({"sourceMessageId": id, "sourceTurnId": turn, "role": role, "content": id,
           "sequence": seq, "createdAtMs": T0 + seq})
}

fn tool(id: &str, turn: &str, message: &str, seq: i64) -> Value {
    json!({"sourceToolCallId": id, "sourceTurnId": turn, "sourceMessageId": message,
           "toolName": "shell", "startedAtMs": T0 + seq, "completedAtMs": T0 + seq + 1,
           "sequence": seq})
}

/// What the old Codex mapping made of a two-prompt session: a turn per `turn_context` (4),
/// the replies and calls on the extra turns, a tool call the new mapping no longer reads, and
/// an empty turn.
fn old_mapping_item() -> Value {
    json!({"sourceProvider": "codex", "sourceSessionId": "sess-a",
           "sourceSessionFingerprint": "fp-old", "session": {"createdAtMs": T0},
           "turns": [turn("L1", None, 1, 10), turn("L3", Some("L1"), 3, 20),
                     turn("L5", Some("L3"), 5, 30), turn("L7", Some("L5"), 7, 40),
                     // No message of its own: attributed by migration 0002 through its parent.
                     turn("L8", Some("L7"), 0, 0)],
           "messages": [message("m1", "L1", "user", 1), message("m2", "L3", "assistant", 3),
                        message("m5", "L5", "user", 5), message("m6", "L7", "assistant", 7),
                        message("m9", "L7", "assistant", 9)],
           "toolCalls": [tool("c1", "L3", "m2", 3), tool("c2", "L7", "m6", 7),
                         tool("c9", "L7", "m9", 9)]})
}

/// The new mapping: a turn per prompt, everything else on them; read whole when it has a
/// version.
fn new_mapping_item(version: Option<u32>) -> Value {
    let mut item = json!({"sourceProvider": "codex", "sourceSessionId": "sess-a",
           "sourceSessionFingerprint": "fp-new", "session": {"createdAtMs": T0},
           "turns": [turn("L1", None, 1, 30), turn("L5", Some("L1"), 5, 70)],
           "messages": [message("m1", "L1", "user", 1), message("m2", "L1", "assistant", 3),
                        message("m5", "L5", "user", 5), message("m6", "L5", "assistant", 7)],
           "toolCalls": [tool("c1", "L1", "m2", 3), tool("c2", "L5", "m6", 7)]});
    if let Some(v) = version {
        item["mappingVersion"] = json!(v);
        item["wholeSession"] = json!(true);
    }
    item
}

/// Another session, which no replacement may touch.
fn bystander() -> Value {
    json!({"sourceProvider": "codex", "sourceSessionId": "sess-b",
           "sourceSessionFingerprint": "fp-b", "session": {"createdAtMs": T0},
           "turns": [turn("L1", None, 1, 5), turn("L2", Some("L1"), 2, 6)],
           "messages": [message("m1", "L1", "user", 1), message("m2", "L2", "assistant", 2)],
           "toolCalls": [tool("c1", "L2", "m2", 2)]})
}

fn id(kind: IdKind, session: &str, entity: &str) -> String {
    scoped_id(kind, "aix", "codex", session, entity)
}

/// The ledger a clean import of the new mapping gives.
fn clean_new_ledger() -> String {
    let mut conn = ledger();
    run_import(
        &mut conn,
        import_req(
            "clean",
            "backfill",
            vec![bystander(), new_mapping_item(Some(2))],
        ),
    )
    .unwrap();
    canonical_dump(&conn)
}

fn old_ledger() -> Connection {
    let mut conn = ledger();
    let r = run_import(
        &mut conn,
        import_req("old", "backfill", vec![bystander(), old_mapping_item()]),
    )
    .unwrap();
    assert_eq!(r.imported, 2);
    assert_eq!(count(&conn, "turns"), 7);
    conn
}

#[test]
fn a_newer_mapping_version_removes_what_the_old_mapping_produced_and_nothing_else() {
    let mut conn = old_ledger();
    let r = run_import(
        &mut conn,
        import_req("upgrade", "backfill", vec![new_mapping_item(Some(2))]),
    )
    .unwrap();
    assert_eq!((r.upserted, r.failed), (1, 0));
    let got = canonical_dump(&conn);
    let want = clean_new_ledger();
    assert_eq!(
        got,
        want,
        "{}",
        crate::e2e_support::first_difference(&got, &want)
    );
    // The extra turns are gone with their threads and history entries.
    for gone in ["L3", "L7", "L8"] {
        let turn = id(IdKind::Turn, "sess-a", gone);
        for sql in [
            "SELECT COUNT(*) FROM turns WHERE id = ?1",
            "SELECT COUNT(*) FROM threads WHERE turn_id = ?1",
            "SELECT COUNT(*) FROM session_history WHERE thread_id = ?1",
        ] {
            let n: i64 = conn.query_row(sql, [&turn], |r| r.get(0)).unwrap();
            assert_eq!(n, 0, "{sql} {gone}");
        }
    }
    let version: i64 = conn
        .query_row(
            "SELECT mapping_version FROM session_imports WHERE source_session_id = 'sess-a'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 2);
    // Replaying the upgrade, or the same version again, changes nothing.
    run_import(
        &mut conn,
        import_req("upgrade", "backfill", vec![new_mapping_item(Some(2))]),
    )
    .unwrap();
    assert_eq!(canonical_dump(&conn), want);
}

#[test]
fn a_failed_replacement_leaves_the_session_as_it_was() {
    let mut conn = old_ledger();
    let before = canonical_dump(&conn);
    // Any removal fails: the item fails, its rows and the removals already done roll back.
    conn.execute_batch(
        "CREATE TEMP TRIGGER no_delete BEFORE DELETE ON messages
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    let r = run_import(
        &mut conn,
        import_req("upgrade", "backfill", vec![new_mapping_item(Some(2))]),
    )
    .unwrap();
    assert_eq!(r.failed, 1);
    assert_eq!(canonical_dump(&conn), before);
    conn.execute_batch("DROP TRIGGER no_delete;").unwrap();
    let r = run_import(
        &mut conn,
        import_req("upgrade-2", "backfill", vec![new_mapping_item(Some(2))]),
    )
    .unwrap();
    assert_eq!(r.upserted, 1);
    assert_eq!(canonical_dump(&conn), clean_new_ledger());
}

#[test]
fn partial_items_and_items_of_the_stored_version_never_remove() {
    // No version (an older worker), or a partial item of the new version.
    let mut conn = old_ledger();
    run_import(
        &mut conn,
        import_req("unversioned", "backfill", vec![new_mapping_item(None)]),
    )
    .unwrap();
    let mut partial = new_mapping_item(Some(2));
    partial["wholeSession"] = json!(false);
    partial["sourceSessionFingerprint"] = json!("fp-partial");
    run_import(
        &mut conn,
        import_req("partial", "tail", vec![partial.clone()]),
    )
    .unwrap();
    assert_eq!(count(&conn, "turns"), 7);
    assert_eq!(count(&conn, "tool_calls"), 4);
    let stored: Option<i64> = conn
        .query_row(
            "SELECT mapping_version FROM session_imports WHERE source_session_id = 'sess-a'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, None, "a partial item does not raise the version");

    // A session created by a partial item records its version (as a backfill would), so a
    // later rewrite of its file under the same version removes nothing.
    let mut conn = ledger();
    run_import(&mut conn, import_req("tail", "tail", vec![partial])).unwrap();
    let stored: i64 = conn
        .query_row("SELECT mapping_version FROM session_imports", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored, 2);

    // Stored version 2: a whole item of version 2 holding less (the source changed) removes
    // nothing, and neither does an older version.
    let mut conn = ledger();
    run_import(
        &mut conn,
        import_req("v2", "backfill", vec![new_mapping_item(Some(2))]),
    )
    .unwrap();
    let mut smaller = new_mapping_item(Some(2));
    smaller["sourceSessionFingerprint"] = json!("fp-smaller");
    smaller["turns"].as_array_mut().unwrap().pop();
    smaller["messages"].as_array_mut().unwrap().truncate(2);
    smaller["toolCalls"].as_array_mut().unwrap().truncate(1);
    run_import(
        &mut conn,
        import_req("v2-smaller", "backfill", vec![smaller.clone()]),
    )
    .unwrap();
    smaller["mappingVersion"] = json!(1);
    smaller["sourceSessionFingerprint"] = json!("fp-v1");
    run_import(&mut conn, import_req("v1", "backfill", vec![smaller])).unwrap();
    assert_eq!(count(&conn, "turns"), 2);
    assert_eq!(count(&conn, "messages"), 4);
    assert_eq!(count(&conn, "tool_calls"), 2);
    let stored: i64 = conn
        .query_row("SELECT mapping_version FROM session_imports", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored, 2, "the stored version never goes back");
}

#[test]
fn an_upgrade_with_an_unchanged_fingerprint_is_not_skipped() {
    let mut conn = old_ledger();
    let mut item = new_mapping_item(Some(2));
    item["sourceSessionFingerprint"] = json!("fp-old");
    let r = run_import(&mut conn, import_req("same-fp", "backfill", vec![item])).unwrap();
    assert_eq!((r.upserted, r.skipped), (1, 0));
    assert_eq!(count(&conn, "turns"), 4);
}

/// Copies every row of `from` into `to`, in the columns `to` has.
pub fn copy_rows(from: &Connection, to: &Connection) {
    for table in [
        "turns",
        "threads",
        "sessions",
        "messages",
        "tool_calls",
        "session_history",
        "session_imports",
    ] {
        let cols: Vec<String> = to
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let list = cols.join(", ");
        let mut read = from
            .prepare(&format!("SELECT {list} FROM {table}"))
            .unwrap();
        let marks = vec!["?"; cols.len()].join(", ");
        let mut write = to
            .prepare(&format!("INSERT INTO {table} ({list}) VALUES ({marks})"))
            .unwrap();
        let mut rows = read.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let values: Vec<rusqlite::types::Value> =
                (0..cols.len()).map(|i| row.get(i).unwrap()).collect();
            write.execute(rusqlite::params_from_iter(values)).unwrap();
        }
    }
}

#[test]
fn a_ledger_of_schema_0001_is_attributed_by_the_migration_and_then_upgraded() {
    let written = old_ledger();
    // The same rows in a ledger that only knows migration 0001 (no session_label, no version).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    let mut old = Connection::open(&path).unwrap();
    migrate(&mut old, &migrate::AGENTS[..1]).unwrap();
    old.execute_batch("PRAGMA foreign_keys = OFF;").unwrap();
    copy_rows(&written, &old);
    drop(old);

    let mut conn = ledger::open_agents(&path).unwrap();
    let unattributed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM turns WHERE session_label IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unattributed, 0);
    let attribution = |c: &Connection| -> Vec<(String, String)> {
        c.prepare("SELECT id, session_label FROM turns ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(attribution(&conn), attribution(&written));

    run_import(
        &mut conn,
        import_req("upgrade", "backfill", vec![new_mapping_item(Some(2))]),
    )
    .unwrap();
    assert_eq!(canonical_dump(&conn), clean_new_ledger());
}

// ---- item rule 15: retract ------------------------------------------------------------------

/// A parent session that spawned a subagent (its tool call names the child), the child, and an
/// unrelated session.
fn family() -> Vec<Value> {
    let mut parent = json!({"sourceProvider": "codex", "sourceSessionId": "sess-p",
        "sourceSessionFingerprint": "fp-p", "session": {"createdAtMs": T0},
        "turns": [turn("P1", None, 1, 10), turn("P2", Some("P1"), 3, 10)],
        "messages": [message("pm1", "P1", "user", 1), message("pm2", "P1", "assistant", 2),
                     message("pm3", "P2", "user", 3)],
        "toolCalls": [tool("spawn", "P1", "pm2", 2)]});
    parent["messages"][0]["content"] = json!("zucchini parent prompt");
    parent["toolCalls"][0]["spawnedSourceSessionId"] = json!("sess-k");
    parent["toolCalls"][0]["resultSourceMessageId"] = json!("pm3");
    let mut child = json!({"sourceProvider": "codex", "sourceSessionId": "sess-k",
        "sourceSessionFingerprint": "fp-k",
        "session": {"createdAtMs": T0, "isSubagent": true, "parentSourceSessionId": "sess-p",
                    "spawnToolCallId": "spawn"},
        "turns": [turn("K1", Some("P1"), 2, 5)],
        "messages": [message("km1", "K1", "user", 1)]});
    child["messages"][0]["content"] = json!("zucchini child prompt");
    let other = json!({"sourceProvider": "codex", "sourceSessionId": "sess-o",
        "sourceSessionFingerprint": "fp-o", "session": {"createdAtMs": T0},
        "turns": [turn("O1", None, 1, 1)], "messages": [message("om1", "O1", "user", 1)]});
    vec![parent, child, other]
}

fn retract(session: &str) -> Value {
    json!({"sourceProvider": "codex", "sourceSessionId": session,
           "sourceSessionFingerprint": format!("retract:{session}"), "retract": true,
           "mappingVersion": 4, "wholeSession": true})
}

fn hits(conn: &Connection, word: &str) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1",
        [word],
        |r| r.get(0),
    )
    .unwrap()
}

/// Item rule 15: a retract deletes its session whole (session row, import mapping, history,
/// turns, threads, messages, tool calls, search entries) in its savepoint, is counted as
/// `retracted`, and leaves the other sessions as they were: the subagent it spawned keeps its
/// rows and its parent label (as when a parent is not imported yet). Repeated, or for a
/// session never imported, it is `skipped` (`session_absent`); the session can come back.
#[test]
fn a_retract_deletes_its_session_whole_and_repeated_is_skipped() {
    let mut conn = ledger();
    run_import(&mut conn, import_req("k1", "backfill", family())).unwrap();
    assert_eq!(hits(&conn, "zucchini"), 2);
    let child_before = nex::import::session_label("aix", "codex", "sess-k");
    let child_rows = |conn: &Connection| -> Vec<String> {
        ["turns", "messages"]
            .iter()
            .flat_map(|t| rows_of(conn, t, &child_before))
            .collect()
    };
    let kept = child_rows(&conn);

    let resp = run_import(
        &mut conn,
        import_req("k2", "backfill", vec![retract("sess-p")]),
    )
    .unwrap();
    assert_eq!((resp.retracted, resp.skipped, resp.failed), (1, 0, 0));
    assert_eq!(resp.items(), 1);
    assert_eq!(
        serde_json::to_value(&resp.results[0]).unwrap()["status"],
        "retracted"
    );
    let parent = nex::import::session_label("aix", "codex", "sess-p");
    for (table, column) in [
        ("sessions", "label"),
        ("session_imports", "session_label"),
        ("session_history", "session_label"),
        ("turns", "session_label"),
        ("messages", "session_label"),
        ("tool_calls", "session_label"),
    ] {
        let n: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE {column} = ?1"),
                [&parent],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    assert_eq!(count(&conn, "sessions"), 2);
    assert_eq!(count(&conn, "threads"), count(&conn, "turns"));
    assert_eq!(hits(&conn, "zucchini"), 1, "the child's prompt only");
    assert!(ledger::search_index::check(&conn).unwrap());
    assert_eq!(child_rows(&conn), kept, "the subagent keeps its rows");
    let (parent_label, child_parent_turn): (Option<String>, Option<String>) = conn
        .query_row(
            "SELECT parent_session_label, parent_turn_id FROM sessions WHERE label = ?1",
            [&child_before],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(parent_label.as_deref(), Some(parent.as_str()));
    assert_eq!(child_parent_turn, None, "the removed turn is no parent");
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0);

    // Again, and for a session never imported: skipped, nothing changes.
    let before = canonical_dump(&conn);
    let resp = run_import(
        &mut conn,
        import_req("k3", "tail", vec![retract("sess-p"), retract("sess-never")]),
    )
    .unwrap();
    assert_eq!((resp.retracted, resp.skipped), (0, 2));
    for r in &resp.results {
        assert_eq!(r.reason.as_deref(), Some("session_absent"));
    }
    assert_eq!(canonical_dump(&conn), before);

    // The session can come back whole.
    let resp = run_import(
        &mut conn,
        import_req("k4", "backfill", vec![family()[0].clone()]),
    )
    .unwrap();
    assert_eq!(resp.imported, 1);
    assert_eq!(hits(&conn, "zucchini"), 2);
}

/// Every row of `table` whose session is `label`, every column as text.
fn rows_of(conn: &Connection, table: &str, label: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT * FROM {table} WHERE session_label = ?1 ORDER BY id"
        ))
        .unwrap();
    let n = stmt.column_count();
    stmt.query_map([label], |r| {
        Ok((0..n)
            .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
            .collect::<Vec<_>>()
            .join(" "))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}
