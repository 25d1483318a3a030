//! Cursor `state.vscdb`: exact items of every mapping rule (composers with bubble keys, inline
//! conversations, a `task_v2` subagent, legacy `ItemTable` chat tabs), bad values and key
//! shapes counted, the auth token never read. A database built by the test with the documented
//! schema; the helpers here serve `cursor_incremental` and `cursor_bad_input` too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nex::aix::sources::{CursorStore, SessionStore, SessionUpdate, StoreCursor, poll_all};
use rusqlite::Connection;
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z.
pub(super) const T0: i64 = 1_767_225_600_000;
/// The subagent spawned by `c-alpha`: an OpenAI tool call id, newline included.
pub(super) const CHILD: &str = "task-call_X\nfc_Y";
const SECRET_KEY: &str = "cursorAuth/accessToken";

/// A new `state.vscdb` with Cursor's two tables; in WAL mode when `wal`.
pub(super) fn create(dir: &Path, wal: bool) -> (PathBuf, Connection) {
    let path = dir.join("state.vscdb");
    let conn = Connection::open(&path).unwrap();
    if wal {
        conn.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
    }
    conn.execute_batch(
        "CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
         CREATE TABLE cursorDiskKV (key TEXT PRIMARY KEY, value BLOB);",
    )
    .unwrap();
    (path, conn)
}

/// Writes a value the way Cursor does: `INSERT OR REPLACE` (a new row id).
pub(super) fn put(conn: &Connection, key: &str, value: &Value) {
    put_raw(conn, key, &value.to_string());
}

pub(super) fn put_raw(conn: &Connection, key: &str, raw: &str) {
    conn.execute(
        "INSERT OR REPLACE INTO cursorDiskKV (key, value) VALUES (?1, ?2)",
        rusqlite::params![key, raw],
    )
    .unwrap();
}

pub(super) fn put_item(conn: &Connection, key: &str, value: &Value) {
    conn.execute(
        "INSERT INTO ItemTable (key, value) VALUES (?1, ?2)",
        rusqlite::params![key, value.to_string().into_bytes()],
    )
    .unwrap();
}

pub(super) fn bubble(conn: &Connection, session: &str, id: &str, value: Value) {
    put(conn, &format!("bubbleId:{session}:{id}"), &value);
}

pub(super) fn iso(ms: i64) -> String {
    let secs = ms / 1000 - T0 / 1000;
    format!(
        "2026-01-01T00:{:02}:{:02}.{:03}Z",
        secs / 60,
        secs % 60,
        ms % 1000
    )
}

pub(super) fn headers(ids: &[&str]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| json!({"bubbleId": id, "type": 1}))
            .collect(),
    )
}

/// `c-alpha`'s composer with the given bubble order.
pub(super) fn alpha_composer(order: &[&str], updated: i64) -> Value {
    json!({
        "composerId": "c-alpha", "name": "Fix the parser", "createdAt": T0 + 1_000,
        "lastUpdatedAt": updated, "unifiedMode": "agent",
        "modelConfig": {"modelName": "claude-4.5-sonnet"},
        "fullConversationHeadersOnly": headers(order),
        "codeBlockData": {"big": ["ignored"]}, "context": {"fileSelections": []}
    })
}

pub(super) const ALPHA_ORDER: [&str; 9] = ["u1", "a1", "a2", "x1", "bad", "a3", "a4", "u2", "a5"];

/// The documented shapes, each once (see the module docs of `nex::aix::sources::cursor`).
pub(super) fn populate(conn: &Connection) {
    let mut order = ALPHA_ORDER.to_vec();
    order.push("a6");
    put(
        conn,
        "composerData:c-alpha",
        &alpha_composer(&order, T0 + 300_000),
    );
    let a = |id: &str, v: Value| bubble(conn, "c-alpha", id, v);
    a(
        "u1",
        json!({"type": 1, "text": "Why does parse() fail?", "createdAt": iso(T0 + 60_000)}),
    );
    a(
        "a1",
        json!({"type": 2, "text": "", "thinking": {"text": "Look at the lexer.", "signature": "s"},
               "createdAt": T0 + 61_000, "tokenCount": {"inputTokens": 0, "outputTokens": 0}}),
    );
    a(
        "a2",
        json!({"type": 2, "createdAt": iso(T0 + 62_000), "toolFormerData": {
            "name": "read_file", "tool": 5, "toolCallId": "toolu_01", "status": "completed",
            "rawArgs": "{\"path\":\"src/lex.rs\"}", "params": "{\"ignored\":true}",
            "result": "{\"contents\":\"fn lex() {}\"}"}}),
    );
    a("x1", json!({"type": 7, "createdAt": T0 + 63_000}));
    put_raw(conn, "bubbleId:c-alpha:bad", "{\"type\":2,\"text\":");
    a(
        "a3",
        json!({"type": 2, "createdAt": T0 + 64_000, "toolFormerData": {
            "name": "task_v2", "tool": 48, "toolCallId": "call_X\nfc_Y", "status": "completed",
            "params": {"description": "Search tests", "prompt": "Find tests for lex",
                       "model": "gpt-5"},
            "additionalData": {"status": "completed",
                "composerData": "{\"name\":\"Test search\",\"createdAt\":1767225665000}"}}}),
    );
    // Not listed in the headers: placed by its time.
    a(
        "a3b",
        json!({"type": 2, "text": "Spawned a search.", "createdAt": T0 + 65_000}),
    );
    a(
        "a4",
        json!({"type": 2, "text": "The lexer drops the last token.", "createdAt": T0 + 70_000,
               "tokenCount": {"inputTokens": 1200, "outputTokens": 300},
               "modelInfo": {"modelName": "claude-4.5-sonnet-thinking"}}),
    );
    a(
        "u2",
        json!({"type": 1, "text": "Fix it.", "createdAt": iso(T0 + 120_000)}),
    );
    a(
        "a5",
        json!({"type": 2, "createdAt": T0 + 125_000, "toolFormerData": {
            "name": "edit_file", "toolCallId": "toolu_02", "status": "error",
            "params": {"path": "src/lex.rs"}, "result": "permission denied"}}),
    );
    a(
        "a6",
        json!({"type": 2, "text": "Fixed.", "createdAt": T0 + 126_000,
               "tokenCount": {"inputTokens": 800, "outputTokens": 40}}),
    );
    let c = |id: &str, v: Value| bubble(conn, CHILD, id, v);
    c(
        "cu1",
        json!({"type": 1, "text": "Find tests for lex", "createdAt": T0 + 66_000}),
    );
    c(
        "ca1",
        json!({"type": 2, "createdAt": T0 + 67_000, "toolFormerData": {
            "name": "grep", "toolCallId": "toolu_c1", "status": "completed",
            "rawArgs": "not json", "result": {"matches": 2}}}),
    );
    c(
        "ca2",
        json!({"type": 2, "text": "Two tests found.", "createdAt": T0 + 68_000,
               "tokenCount": {"inputTokens": 500, "outputTokens": 20},
               "modelInfo": {"modelName": "gpt-5"}}),
    );
    // An older composer: the conversation inline, no times.
    put(
        conn,
        "composerData:c-beta",
        &json!({"composerId": "c-beta", "name": "Old chat", "createdAt": T0 + 500,
                "modelConfig": {"modelName": "gpt-4o"},
                "conversation": [{"bubbleId": "b1", "type": 1, "text": "hello"},
                                 {"bubbleId": "b2", "type": 2, "text": "hi there"}]}),
    );
    put_raw(conn, "bubbleId:c-beta:zz", "[1, 2]");
    // A new chat nobody wrote in.
    put(
        conn,
        "composerData:c-empty",
        &json!({"composerId": "c-empty", "createdAt": T0 + 2_000,
                "fullConversationHeadersOnly": []}),
    );
    // A malformed composer: its bubbles still make a session, ordered by time.
    put_raw(
        conn,
        "composerData:c-malformed",
        "{\"composerId\": \"c-malformed\", ",
    );
    bubble(
        conn,
        "c-malformed",
        "m2",
        json!({"type": 2, "text": "a", "createdAt": T0 + 201_000}),
    );
    bubble(
        conn,
        "c-malformed",
        "m1",
        json!({"type": 1, "text": "q", "createdAt": T0 + 200_000}),
    );
    put_item(
        conn,
        "workbench.panel.aichat.view.aichat.chatdata",
        &legacy_tabs(false),
    );
    put_item(
        conn,
        "composer.composerData",
        &json!({"allComposers": [{"composerId": "c-alpha", "name": "Fix the parser"},
                                 {"composerId": "c-pointer", "createdAt": T0}],
                "selectedComposerId": "c-alpha"}),
    );
    // Keys the store must never read.
    put_raw(conn, SECRET_KEY, &"S".repeat(20_000));
    put_raw(conn, "messageRequestContext:c-alpha:r1", "{}");
    put_raw(conn, "agentKv:blob:ab12", "binary?");
}

/// The legacy chat tabs; `grown` appends a second exchange to `tab-1`.
pub(super) fn legacy_tabs(grown: bool) -> Value {
    let mut bubbles = vec![
        json!({"type": "user", "id": "lb1", "text": "What is Rust?"}),
        json!({"type": "ai", "id": "lb2", "rawText": "A language.", "modelType": "gpt-4"}),
    ];
    if grown {
        bubbles.push(json!({"type": "user", "id": "lb3", "text": "Is it fast?"}));
        bubbles.push(json!({"type": "ai", "id": "lb4", "rawText": "Yes."}));
    }
    json!({"tabs": [
        {"tabId": "tab-1", "chatTitle": "Legacy question", "lastSendTime": T0 - 100_000,
         "bubbles": bubbles},
        {"chatTitle": "no id", "bubbles": []}
    ]})
}

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

/// Every file of `dir` with its bytes.
pub(super) fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// An item as JSON, its fingerprint checked (hex SHA-256) and removed.
pub(super) fn without_fp(item: &nex::protocol::ImportSessionItem) -> Value {
    let fp = &item.source_session_fingerprint;
    assert!(
        fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
        "fingerprint {fp:?}"
    );
    let mut v = serde_json::to_value(item).unwrap();
    v.as_object_mut()
        .unwrap()
        .remove("sourceSessionFingerprint");
    v
}

pub(super) fn cursors_of(updates: &[SessionUpdate]) -> HashMap<String, StoreCursor> {
    updates
        .iter()
        .map(|u| (u.session_id.clone(), u.cursor.clone()))
        .collect()
}

pub(super) fn ids(updates: &[SessionUpdate]) -> Vec<Vec<String>> {
    updates
        .iter()
        .map(|u| {
            u.items
                .iter()
                .map(|i| i.source_session_id.clone())
                .collect()
        })
        .collect()
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
