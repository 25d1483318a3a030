//! Cursor `state.vscdb` updated in place while Cursor runs (WAL mode, writer open): polls with
//! the previous cursors return only the changed sessions, a subagent's new bubble re-sends its
//! parent with that subagent (and a parent's change does not re-send unchanged subagents), and
//! importing every poll's items equals importing one full poll of the final
//! database. The database and its WAL are never written, no file is created.

use std::collections::HashMap;
use std::path::Path;

use nex::aix::sources::{CursorStore, SessionUpdate, StoreCursor, poll_all};
use nex::protocol::ImportSessionItem;
use rusqlite::Connection;
use serde_json::json;

use super::cursor_fixture::{
    ALPHA_ORDER, CHILD, T0, alpha_composer, bubble, create, cursors_of, ids, legacy_tabs, populate,
    put, snapshot, without_fp,
};
use crate::e2e_support::{canonical, first_difference};
use crate::import_support::{ledger, run_import};

/// Files of `dir` except the shared-memory index, which a reader of a live WAL database
/// legitimately locks in (SQLite's read marks).
fn data_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    snapshot(dir)
        .into_iter()
        .filter(|(n, _)| !n.ends_with("-shm"))
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    snapshot(dir).into_iter().map(|(n, _)| n).collect()
}

/// Polls with `cursors`, checking that the poll wrote nothing and created no file.
fn poll(
    store: &mut CursorStore,
    dir: &Path,
    cursors: &HashMap<String, StoreCursor>,
) -> Vec<SessionUpdate> {
    let (before, files) = (data_files(dir), names(dir));
    let (updates, counts) = poll_all(store, cursors, false).unwrap();
    assert_eq!(data_files(dir), before, "database and WAL untouched");
    assert_eq!(names(dir), files, "no file created");
    assert_eq!(counts.emitted as usize, updates.len());
    assert_eq!(counts.failed, 0);
    updates
}

/// Imports the items of `updates` into `conn` as one tail request.
pub(super) fn import(conn: &mut Connection, key: &str, updates: &[SessionUpdate]) {
    let items: Vec<&ImportSessionItem> = updates.iter().flat_map(|u| &u.items).collect();
    if items.is_empty() {
        return;
    }
    let resp = run_import(
        conn,
        json!({"source": "aix", "mode": "tail", "idempotencyKey": key, "items": items}),
    )
    .unwrap();
    assert_eq!(resp.failed, 0, "{:?}", resp.results);
}

#[test]
fn cursor_updates_in_place_send_only_changed_sessions_and_converge_on_a_full_poll() {
    let dir = tempfile::tempdir().unwrap();
    let (db, writer) = create(dir.path(), true);
    writer
        .execute_batch("PRAGMA wal_autocheckpoint=0;")
        .unwrap();
    populate(&writer);
    assert!(
        names(dir.path()).iter().any(|n| n.ends_with("-wal")),
        "Cursor running: the WAL holds the rows"
    );
    let mut store = CursorStore::new(db.clone());
    let mut ledger_inc = ledger();
    let mut cursors = HashMap::new();

    let first = poll(&mut store, dir.path(), &cursors);
    assert_eq!(first.len(), 4);
    import(&mut ledger_inc, "p1", &first);
    cursors.extend(cursors_of(&first));
    let alpha_fp = first[3].items[0].source_session_fingerprint.clone();
    let child_fp = first[3].items[1].source_session_fingerprint.clone();

    // A subagent's new bubble alone: its parent's tree comes back, the parent's own item
    // unchanged (same fingerprint: skipped at the service), the child's changed.
    bubble(
        &writer,
        CHILD,
        "ca3",
        json!({"type": 2, "text": "Done.", "createdAt": T0 + 69_000}),
    );
    let second = poll(&mut store, dir.path(), &cursors);
    assert_eq!(ids(&second), [vec!["c-alpha".to_owned(), CHILD.to_owned()]]);
    assert_eq!(second[0].items[0].source_session_fingerprint, alpha_fp);
    assert_ne!(second[0].items[1].source_session_fingerprint, child_fp);
    assert_eq!(
        without_fp(&second[0].items[1])["messages"][3],
        json!({"sourceMessageId": "ca3", "sourceTurnId": "cu1", "role": "assistant",
               "content": "Done.", "sequence": 3, "createdAtMs": T0 + 69_000})
    );
    import(&mut ledger_inc, "p2", &second);
    cursors.extend(cursors_of(&second));

    // A new exchange in c-alpha, a new composer, a legacy tab that grew.
    let mut order = ALPHA_ORDER.to_vec();
    order.extend(["a6", "u3", "a7"]);
    bubble(
        &writer,
        "c-alpha",
        "u3",
        json!({"type": 1, "text": "Add a test.", "createdAt": T0 + 400_000}),
    );
    bubble(
        &writer,
        "c-alpha",
        "a7",
        json!({"type": 2, "text": "Added.", "createdAt": T0 + 401_000,
               "tokenCount": {"inputTokens": 900, "outputTokens": 50}}),
    );
    put(
        &writer,
        "composerData:c-alpha",
        &alpha_composer(&order, T0 + 401_000),
    );
    put(
        &writer,
        "composerData:c-gamma",
        &json!({"composerId": "c-gamma", "createdAt": T0 + 500_000,
                "fullConversationHeadersOnly": [{"bubbleId": "g1", "type": 1},
                                                {"bubbleId": "g2", "type": 2}]}),
    );
    bubble(
        &writer,
        "c-gamma",
        "g1",
        json!({"type": 1, "text": "New chat", "createdAt": T0 + 500_000}),
    );
    bubble(
        &writer,
        "c-gamma",
        "g2",
        json!({"type": 2, "text": "Hello.", "createdAt": T0 + 500_100}),
    );
    writer
        .execute(
            "INSERT INTO ItemTable (key, value) VALUES (?1, ?2)",
            rusqlite::params![
                "workbench.panel.aichat.view.aichat.chatdata",
                legacy_tabs(true).to_string()
            ],
        )
        .unwrap();
    // The unchanged subagent is read but not sent again: the ledger holds it as is.
    let third = poll(&mut store, dir.path(), &cursors);
    assert_eq!(
        ids(&third),
        [
            vec!["tab-1".to_owned()],
            vec!["c-alpha".to_owned()],
            vec!["c-gamma".to_owned()],
        ]
    );
    let alpha = without_fp(&third[1].items[0]);
    assert_eq!(
        alpha["turns"][2],
        json!({"sourceTurnId": "u3", "parentSourceTurnId": "u2", "startedAtMs": T0 + 400_000,
               "completedAtMs": T0 + 401_000, "inputTokens": 900, "outputTokens": 50,
               "totalTokens": 950, "responseMessageSourceId": "a7",
               "queryMessageSourceIds": ["u3"]})
    );
    import(&mut ledger_inc, "p3", &third);
    cursors.extend(cursors_of(&third));

    // Nothing changed: nothing read, by this store or by a new one resuming from the cursors.
    assert!(poll(&mut store, dir.path(), &cursors).is_empty());
    assert!(poll(&mut CursorStore::new(db.clone()), dir.path(), &cursors).is_empty());

    // One full poll of the final database gives the same ledger.
    let (full, _) = poll_all(&mut CursorStore::new(db), &HashMap::new(), true).unwrap();
    let mut ledger_full = ledger();
    import(&mut ledger_full, "full", &full);
    let (a, b) = (canonical(&ledger_inc), canonical(&ledger_full));
    assert!(a == b, "{}", first_difference(&a, &b));
    // The ledger holds the subagent's lineage and the parent's spawn link.
    let (parent_label, spawn): (String, String) = ledger_full
        .query_row(
            "SELECT parent_session_label, spawn_tool_call_id FROM sessions WHERE is_subagent = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let spawned: String = ledger_full
        .query_row(
            "SELECT id FROM tool_calls WHERE spawned_session_label IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(spawn, spawned);
    assert!(parent_label.contains("c-alpha"), "{parent_label}");
    drop(writer);
}
