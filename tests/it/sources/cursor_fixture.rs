//! The Cursor test database: the documented schema (`cursorDiskKV`, `ItemTable`) written the
//! way Cursor writes it, one of each value shape the mapping knows (and of the ones it skips),
//! plus helpers shared by the `cursor*` modules.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nex::aix::sources::{SessionUpdate, StoreCursor};
use rusqlite::Connection;
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z.
pub(super) const T0: i64 = 1_767_225_600_000;
/// The subagent spawned by `c-alpha`: an OpenAI tool call id, newline included.
pub(super) const CHILD: &str = "task-call_X\nfc_Y";
pub(super) const SECRET_KEY: &str = "cursorAuth/accessToken";

/// A new `state.vscdb` with Cursor's two tables; in WAL mode when `wal`.
pub(crate) fn create(dir: &Path, wal: bool) -> (PathBuf, Connection) {
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
pub(crate) fn put(conn: &Connection, key: &str, value: &Value) {
    put_raw(conn, key, &value.to_string());
}

pub(crate) fn put_raw(conn: &Connection, key: &str, raw: &str) {
    conn.execute(
        "INSERT OR REPLACE INTO cursorDiskKV (key, value) VALUES (?1, ?2)",
        rusqlite::params![key, raw],
    )
    .unwrap();
}

pub(crate) fn put_item(conn: &Connection, key: &str, value: &Value) {
    conn.execute(
        "INSERT INTO ItemTable (key, value) VALUES (?1, ?2)",
        rusqlite::params![key, value.to_string().into_bytes()],
    )
    .unwrap();
}

pub(crate) fn bubble(conn: &Connection, session: &str, id: &str, value: Value) {
    put(conn, &format!("bubbleId:{session}:{id}"), &value);
}

pub(crate) fn iso(ms: i64) -> String {
    let secs = ms / 1000 - T0 / 1000;
    format!(
        "2026-01-01T00:{:02}:{:02}.{:03}Z",
        secs / 60,
        secs % 60,
        ms % 1000
    )
}

pub(crate) fn headers(ids: &[&str]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| json!({"bubbleId": id, "type": 1}))
            .collect(),
    )
}

/// `c-alpha`'s composer with the given bubble order.
pub(crate) fn alpha_composer(order: &[&str], updated: i64) -> Value {
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
pub(crate) fn populate(conn: &Connection) {
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
               "createdAt": T0 + 61_000, "tokenCount": {"inputTokens": 0, "outputTokens": 0},
               "toolFormerData": {}}),
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
        json!({"type": 2, "text": "Spawned a search.", "createdAt": T0 + 65_000,
               "toolFormerData": {"toolCallId": "toolu_nameless"}}),
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
pub(crate) fn legacy_tabs(grown: bool) -> Value {
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
