//! Cursor `state.vscdb`: exact items of every mapping rule (composers with bubble keys, inline
//! conversations, a `task_v2` subagent, legacy `ItemTable` chat tabs), bad values and key
//! shapes counted, the auth token never read; fixtures from `cursor_fixture`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nex::aix::sources::{CursorStore, SessionStore, poll_all};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::cursor_fixture::{
    CHILD, SECRET_KEY, T0, bubble, create, cursors_of, headers, ids, populate, put, put_raw,
    snapshot, without_fp,
};

/// Makes any read of the auth token's value fail: the overflow pages holding it get a chain
/// pointer past the end of the file, so SQLite reports corruption if it ever follows them.
fn trap_secret(db: &Path) {
    let mut bytes = std::fs::read(db).unwrap();
    let page = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    let mut trapped = 0;
    for chunk in bytes.chunks_mut(page) {
        if chunk.len() == page && chunk[4..].iter().all(|&b| b == b'S') {
            chunk[..4].copy_from_slice(&[0xff, 0xff, 0xff, 0x00]);
            trapped += 1;
        }
    }
    assert!(trapped >= 2, "the token spans overflow pages");
    std::fs::write(db, bytes).unwrap();
    let check =
        Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let read: rusqlite::Result<Vec<u8>> = check.query_row(
        "SELECT value FROM cursorDiskKV WHERE key = ?1",
        [SECRET_KEY],
        |r| r.get(0),
    );
    assert!(read.is_err(), "the trap must make a read of the token fail");
}

fn msg(id: &str, turn: &str, role: &str, content: Option<&str>, seq: i64, at: i64) -> Value {
    let mut m = json!({"sourceMessageId": id, "sourceTurnId": turn, "role": role,
                       "sequence": seq, "createdAtMs": at});
    if let Some(c) = content {
        m["content"] = json!(c);
    }
    m
}

fn alpha_item() -> Value {
    json!({
        "sourceProvider": "cursor", "sourceSessionId": "c-alpha",
        "session": {"createdAtMs": T0 + 1_000, "updatedAtMs": T0 + 300_000,
                    "model": "claude-4.5-sonnet",
                    "metadata": {"title": "Fix the parser", "unifiedMode": "agent"}},
        "turns": [
            {"sourceTurnId": "u1", "startedAtMs": T0 + 60_000, "completedAtMs": T0 + 70_000,
             "model": "claude-4.5-sonnet-thinking", "inputTokens": 1200, "outputTokens": 300,
             "totalTokens": 1500, "responseMessageSourceId": "a4",
             "queryMessageSourceIds": ["u1"]},
            {"sourceTurnId": "u2", "parentSourceTurnId": "u1", "startedAtMs": T0 + 120_000,
             "completedAtMs": T0 + 126_000, "inputTokens": 800, "outputTokens": 40,
             "totalTokens": 840, "responseMessageSourceId": "a6",
             "queryMessageSourceIds": ["u2"]}
        ],
        "messages": [
            msg("u1", "u1", "user", Some("Why does parse() fail?"), 0, T0 + 60_000),
            {"sourceMessageId": "a1", "sourceTurnId": "u1", "role": "assistant", "sequence": 1,
             "createdAtMs": T0 + 61_000, "thinking": "Look at the lexer."},
            msg("a2", "u1", "assistant", None, 2, T0 + 62_000),
            msg("a3", "u1", "assistant", None, 4, T0 + 64_000),
            msg("a3b", "u1", "assistant", Some("Spawned a search."), 5, T0 + 65_000),
            msg("a4", "u1", "assistant", Some("The lexer drops the last token."), 6, T0 + 70_000),
            msg("u2", "u2", "user", Some("Fix it."), 7, T0 + 120_000),
            msg("a5", "u2", "assistant", None, 8, T0 + 125_000),
            msg("a6", "u2", "assistant", Some("Fixed."), 9, T0 + 126_000),
        ],
        "toolCalls": [
            {"sourceToolCallId": "toolu_01", "sourceTurnId": "u1", "sourceMessageId": "a2",
             "toolName": "read_file", "toolNumber": 5, "paramsJson": {"path": "src/lex.rs"},
             "resultJson": {"contents": "fn lex() {}"}, "status": "completed",
             "startedAtMs": T0 + 62_000, "sequence": 2},
            {"sourceToolCallId": "call_X\nfc_Y", "sourceTurnId": "u1", "sourceMessageId": "a3",
             "toolName": "task_v2", "toolNumber": 48,
             "paramsJson": {"description": "Search tests", "prompt": "Find tests for lex",
                            "model": "gpt-5"},
             "status": "completed", "spawnedSourceSessionId": CHILD,
             "startedAtMs": T0 + 64_000, "sequence": 4},
            {"sourceToolCallId": "toolu_02", "sourceTurnId": "u2", "sourceMessageId": "a5",
             "toolName": "edit_file", "paramsJson": {"path": "src/lex.rs"},
             "resultJson": "permission denied", "status": "failed",
             "startedAtMs": T0 + 125_000, "sequence": 8}
        ]
    })
}

fn child_item() -> Value {
    json!({
        "sourceProvider": "cursor", "sourceSessionId": CHILD,
        "session": {"createdAtMs": T0 + 65_000, "updatedAtMs": T0 + 68_000, "model": "gpt-5",
                    "isSubagent": true, "parentSourceSessionId": "c-alpha",
                    "parentSourceMessageId": "a3", "spawnToolCallId": "call_X\nfc_Y",
                    "taskDescription": "Search tests", "taskStatus": "completed",
                    "metadata": {"title": "Test search"}},
        "turns": [
            {"sourceTurnId": "cu1", "startedAtMs": T0 + 66_000, "completedAtMs": T0 + 68_000,
             "model": "gpt-5", "inputTokens": 500, "outputTokens": 20, "totalTokens": 520,
             "responseMessageSourceId": "ca2", "queryMessageSourceIds": ["cu1"]}
        ],
        "messages": [
            msg("cu1", "cu1", "user", Some("Find tests for lex"), 0, T0 + 66_000),
            msg("ca1", "cu1", "assistant", None, 1, T0 + 67_000),
            msg("ca2", "cu1", "assistant", Some("Two tests found."), 2, T0 + 68_000),
        ],
        "toolCalls": [
            {"sourceToolCallId": "toolu_c1", "sourceTurnId": "cu1", "sourceMessageId": "ca1",
             "toolName": "grep", "paramsJson": "not json", "resultJson": {"matches": 2},
             "status": "completed", "startedAtMs": T0 + 67_000, "sequence": 1}
        ]
    })
}

fn simple_item(
    id: &str,
    session: Value,
    model: Option<&str>,
    pair: [(&str, &str); 2],
    at: i64,
) -> Value {
    let mut turn = json!({"sourceTurnId": pair[0].0, "startedAtMs": at, "completedAtMs": at,
                          "responseMessageSourceId": pair[1].0,
                          "queryMessageSourceIds": [pair[0].0]});
    if let Some(m) = model {
        turn["model"] = json!(m);
    }
    json!({
        "sourceProvider": "cursor", "sourceSessionId": id, "session": session,
        "turns": [turn],
        "messages": [msg(pair[0].0, pair[0].0, "user", Some(pair[0].1), 0, at),
                     msg(pair[1].0, pair[0].0, "assistant", Some(pair[1].1), 1, at)]
    })
}

#[test]
fn cursor_full_poll_gives_exact_items_oldest_first_and_never_reads_other_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = create(dir.path(), false);
    populate(&conn);
    drop(conn);
    trap_secret(&db);
    let before = snapshot(dir.path());
    let mut store = CursorStore::new(db.clone());
    let (updates, counts) = poll_all(&mut store, &HashMap::new(), false).unwrap();
    assert_eq!(
        snapshot(dir.path()),
        before,
        "nothing written, nothing created"
    );
    assert_eq!((counts.emitted, counts.unchanged, counts.failed), (4, 0, 0));
    // Oldest first: a composer whose createdAt cannot be read sorts first.
    assert_eq!(
        ids(&updates),
        [
            vec!["c-malformed".to_owned()],
            vec!["tab-1".to_owned()],
            vec!["c-beta".to_owned()],
            vec!["c-alpha".to_owned(), CHILD.to_owned()],
        ]
    );
    let items: Vec<Value> = updates
        .iter()
        .flat_map(|u| u.items.iter().map(without_fp))
        .collect();
    assert_eq!(
        items[0],
        json!({"sourceProvider": "cursor", "sourceSessionId": "c-malformed",
               "session": {"createdAtMs": T0 + 200_000, "updatedAtMs": T0 + 201_000},
               "turns": [{"sourceTurnId": "m1", "startedAtMs": T0 + 200_000,
                          "completedAtMs": T0 + 201_000, "responseMessageSourceId": "m2",
                          "queryMessageSourceIds": ["m1"]}],
               "messages": [msg("m1", "m1", "user", Some("q"), 0, T0 + 200_000),
                            msg("m2", "m1", "assistant", Some("a"), 1, T0 + 201_000)]})
    );
    assert_eq!(
        items[1],
        simple_item(
            "tab-1",
            json!({"createdAtMs": T0 - 100_000, "updatedAtMs": T0 - 100_000, "model": "gpt-4",
                   "metadata": {"legacy": "chatdata", "title": "Legacy question"}}),
            Some("gpt-4"),
            [("lb1", "What is Rust?"), ("lb2", "A language.")],
            T0 - 100_000
        )
    );
    assert_eq!(
        items[2],
        simple_item(
            "c-beta",
            json!({"createdAtMs": T0 + 500, "updatedAtMs": T0 + 500, "model": "gpt-4o",
                   "metadata": {"title": "Old chat"}}),
            None,
            [("b1", "hello"), ("b2", "hi there")],
            T0 + 500
        )
    );
    assert_eq!(items[3], alpha_item());
    assert_eq!(items[4], child_item());
    // Each update's cursor carries its session's own fingerprint.
    for u in &updates {
        assert_eq!(u.cursor.fingerprint, u.items[0].source_session_fingerprint);
        assert_eq!(u.cursor.v, 1);
    }
    let stats = store.stats();
    assert_eq!((stats.lines, stats.malformed_lines), (23, 2));
    let skipped: Vec<(&str, u64)> = stats
        .skipped_records
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        skipped,
        [
            ("bubble_not_object", 1),
            ("bubble_unknown_type", 1),
            ("empty_session", 1),
            ("legacy_composer_header", 1),
            ("legacy_shadowed", 1),
            ("legacy_tab_without_id", 1),
            ("missing_bubble", 1),
            ("tool_without_name", 1),
        ]
    );
    // The same content polled again by a new store: the same items, fingerprints included.
    let (again, _) = poll_all(&mut CursorStore::new(db), &HashMap::new(), true).unwrap();
    assert_eq!(again, updates);
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn cursor_poll_with_its_own_cursors_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = create(dir.path(), false);
    populate(&conn);
    drop(conn);
    let mut store = CursorStore::new(db.clone());
    let (first, _) = poll_all(&mut store, &HashMap::new(), false).unwrap();
    let cursors = cursors_of(&first);
    for mut store in [store, CursorStore::new(db.clone())] {
        let lines = store.stats().lines;
        let (updates, counts) = poll_all(&mut store, &cursors, false).unwrap();
        assert!(updates.is_empty());
        assert_eq!((counts.emitted, counts.unchanged, counts.failed), (0, 4, 0));
        // A store that already saw everything reads no value at all.
        if lines > 0 {
            assert_eq!(store.stats().lines, lines);
        }
    }
    // `full` reads everything again.
    let (updates, counts) = poll_all(&mut CursorStore::new(db), &cursors, true).unwrap();
    assert_eq!((updates.len(), counts.emitted), (4, 4));
}

#[test]
fn cursor_stamp_follows_the_database_and_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = create(dir.path(), true);
    let store = CursorStore::new(db.clone());
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    assert_eq!(store.watch_paths(), vec![db.clone(), PathBuf::from(wal)]);
    let s1 = store.stamp().unwrap();
    assert_eq!(store.stamp().unwrap(), s1);
    put_raw(&conn, "composerData:c-new", "{}");
    assert_ne!(store.stamp().unwrap(), s1);
}

#[test]
fn cursor_subagents_nest_and_a_copied_spawn_stays_with_the_older_session() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = create(dir.path(), false);
    populate(&conn);
    let (before, _) = poll_all(&mut CursorStore::new(db.clone()), &HashMap::new(), false).unwrap();
    // A duplicated chat: it copies c-alpha's spawn and spawns a worker of its own, which
    // spawns another.
    put(
        &conn,
        "composerData:c-fork",
        &json!({"composerId": "c-fork", "createdAt": T0 + 600_000,
                "fullConversationHeadersOnly": headers(&["f1", "f2", "f3"])}),
    );
    let task = |id: &str, status: &str| {
        json!({"name": "task_v2", "toolCallId": id, "status": status,
               "params": {"description": format!("run {id}")}})
    };
    bubble(
        &conn,
        "c-fork",
        "f1",
        json!({"type": 1, "text": "Again", "createdAt": T0 + 600_000}),
    );
    bubble(
        &conn,
        "c-fork",
        "f2",
        json!({"type": 2, "createdAt": T0 + 600_001,
               "toolFormerData": task("call_X\nfc_Y", "completed")}),
    );
    bubble(
        &conn,
        "c-fork",
        "f3",
        json!({"type": 2, "createdAt": T0 + 600_002,
               "toolFormerData": task("toolu_Z", "completed")}),
    );
    put(
        &conn,
        "composerData:task-toolu_Z",
        &json!({"createdAt": T0 + 601_000, "name": "Nested worker",
                "modelConfig": {"modelName": "m-z"}}),
    );
    bubble(
        &conn,
        "task-toolu_Z",
        "z1",
        json!({"type": 1, "text": "work", "createdAt": T0 + 601_000}),
    );
    bubble(
        &conn,
        "task-toolu_Z",
        "z2",
        json!({"type": 2, "createdAt": T0 + 601_001,
               "toolFormerData": task("toolu_G", "running")}),
    );
    bubble(
        &conn,
        "task-toolu_G",
        "g1",
        json!({"type": 1, "text": "deeper", "createdAt": T0 + 602_000}),
    );
    drop(conn);
    // Resuming from the cursors: only the fork's tree, without c-alpha's child.
    let mut resumed = CursorStore::new(db.clone());
    let (new, _) = poll_all(&mut resumed, &cursors_of(&before), false).unwrap();
    assert_eq!(
        ids(&new),
        [vec![
            "c-fork".to_owned(),
            "task-toolu_Z".to_owned(),
            "task-toolu_G".to_owned()
        ]]
    );
    let skipped = |s: &CursorStore| {
        s.stats()
            .skipped_records
            .get("subagent_of_older_session")
            .copied()
    };
    assert_eq!(skipped(&resumed), Some(1));
    let mut store = CursorStore::new(db);
    let (updates, _) = poll_all(&mut store, &HashMap::new(), false).unwrap();
    assert_eq!(ids(&updates), [ids(&before), ids(&new)].concat());
    let tree = |id: &str| {
        updates
            .iter()
            .find(|u| u.session_id == id)
            .unwrap()
            .items
            .iter()
            .map(without_fp)
            .collect::<Vec<Value>>()
    };
    let alpha = tree("c-alpha");
    assert_eq!(alpha[1]["sourceSessionId"], json!(CHILD));
    let fork = tree("c-fork");
    let session_ids: Vec<&Value> = fork.iter().map(|i| &i["sourceSessionId"]).collect();
    assert_eq!(
        session_ids,
        [
            &json!("c-fork"),
            &json!("task-toolu_Z"),
            &json!("task-toolu_G")
        ]
    );
    // The copied call still names the child it spawned, which stays c-alpha's.
    assert_eq!(
        fork[0]["toolCalls"][0]["spawnedSourceSessionId"],
        json!(CHILD)
    );
    assert_eq!(
        fork[1]["session"],
        json!({"createdAtMs": T0 + 601_000, "updatedAtMs": T0 + 601_001, "model": "m-z",
               "isSubagent": true, "parentSourceSessionId": "c-fork",
               "parentSourceMessageId": "f3", "spawnToolCallId": "toolu_Z",
               "taskDescription": "run toolu_Z", "taskStatus": "completed",
               "metadata": {"title": "Nested worker"}})
    );
    assert_eq!(
        fork[2]["session"],
        json!({"createdAtMs": T0 + 602_000, "updatedAtMs": T0 + 602_000, "isSubagent": true,
               "parentSourceSessionId": "task-toolu_Z", "parentSourceMessageId": "z2",
               "spawnToolCallId": "toolu_G", "taskDescription": "run toolu_G",
               "taskStatus": "running"})
    );
    assert_eq!(skipped(&store), Some(1));
}
