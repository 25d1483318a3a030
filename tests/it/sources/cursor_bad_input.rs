//! Cursor `state.vscdb` bad input: files that are not Cursor databases, and a real-shaped
//! database whose composer, bubble and legacy values are swapped for random JSON or cut short,
//! never panic and never fail the poll.

use std::collections::HashMap;

use nex::aix::sources::{CursorStore, SessionStore, poll_all};
use proptest::prelude::*;
use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::cursor_fixture::{create, populate};

/// Field names the mapping reads, so that random objects reach its code paths.
const FIELDS: &[&str] = &[
    "type",
    "text",
    "rawText",
    "createdAt",
    "lastUpdatedAt",
    "bubbleId",
    "id",
    "composerId",
    "fullConversationHeadersOnly",
    "conversation",
    "conversationMap",
    "toolFormerData",
    "name",
    "toolCallId",
    "status",
    "params",
    "rawArgs",
    "result",
    "additionalData",
    "composerData",
    "tokenCount",
    "inputTokens",
    "outputTokens",
    "modelInfo",
    "modelName",
    "modelConfig",
    "thinking",
    "tabs",
    "tabId",
    "bubbles",
    "allComposers",
    "lastSendTime",
    "description",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1.0e20f64..1.0e20).prop_map(|f| json!(f)),
        "[a-z:\n-]{0,8}".prop_map(Value::from),
        prop::sample::select(vec![
            json!("2026-01-01T00:00:00Z"),
            json!("task_v2"),
            json!(1),
            json!(2),
            json!("user"),
            json!("ai"),
            json!("call_X\nfc_Y"),
            json!("{\"description\":1}"),
            json!("b1"),
        ]),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..7).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

/// Every composer, bubble and legacy key of the populated database with its value.
fn mapped_rows(conn: &Connection) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for (table, filter) in [
        (
            "cursorDiskKV",
            "key LIKE 'composerData:%' OR key LIKE 'bubbleId:%'",
        ),
        ("ItemTable", "1"),
    ] {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT key, CAST(value AS TEXT) FROM {table} WHERE {filter}"
            ))
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((table, r.get(0)?, r.get(1)?)))
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn cursor_mutated_values_never_panic_or_fail_the_poll(
        picks in prop::collection::vec(
            (any::<prop::sample::Index>(), 0u8..3, any::<usize>(), json_value(),
             prop::sample::select(FIELDS)),
            1..8,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (db, conn) = create(dir.path(), false);
        populate(&conn);
        let rows = mapped_rows(&conn);
        for (idx, how, pos, random, field) in picks {
            let (table, key, original) = idx.get(&rows);
            let value = match how {
                0 => random.to_string(),
                1 => original.chars().take(pos % (original.len() + 1)).collect(),
                _ => match serde_json::from_str::<Value>(original) {
                    Ok(Value::Object(mut m)) => {
                        m.insert(field.to_owned(), random);
                        Value::Object(m).to_string()
                    }
                    _ => random.to_string(),
                },
            };
            conn.execute(
                &format!("INSERT OR REPLACE INTO {table} (key, value) VALUES (?1, ?2)"),
                rusqlite::params![key, value],
            )
            .unwrap();
        }
        drop(conn);
        let mut store = CursorStore::new(db);
        let (first, counts) = poll_all(&mut store, &HashMap::new(), false).unwrap();
        prop_assert_eq!(counts.failed, 0);
        for u in &first {
            for item in &u.items {
                prop_assert_eq!(item.source_provider.as_str(), "cursor");
                prop_assert!(!item.turns.is_empty());
                let mut ids: Vec<&str> =
                    item.messages.iter().map(|m| m.source_message_id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                prop_assert_eq!(ids.len(), item.messages.len());
            }
        }
        let cursors = first.iter().map(|u| (u.session_id.clone(), u.cursor.clone())).collect();
        let (again, _) = poll_all(&mut store, &cursors, false).unwrap();
        prop_assert!(again.is_empty());
        let (full, _) = poll_all(&mut store, &cursors, true).unwrap();
        prop_assert_eq!(full, first);
        let _ = store.stats();
    }
}

#[test]
fn cursor_bad_databases_are_errors_and_foreign_ones_poll_empty() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("state.vscdb");
    std::fs::write(
        &text,
        "not a database, just text long enough to be a header....",
    )
    .unwrap();
    assert!(poll_all(&mut CursorStore::new(text), &HashMap::new(), false).is_err());
    let missing = dir.path().join("missing.vscdb");
    let mut store = CursorStore::new(missing.clone());
    assert!(store.stamp().is_err());
    assert!(poll_all(&mut store, &HashMap::new(), false).is_err());
    // A SQLite file without Cursor's tables: nothing to read, not an error.
    let other = dir.path().join("other.vscdb");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let (updates, counts) = poll_all(&mut CursorStore::new(other), &HashMap::new(), false).unwrap();
    assert!(updates.is_empty());
    assert_eq!((counts.emitted, counts.unchanged, counts.failed), (0, 0, 0));
    // An empty file is an empty database to SQLite: also nothing.
    let empty = dir.path().join("empty.vscdb");
    std::fs::write(&empty, b"").unwrap();
    let (updates, _) = poll_all(&mut CursorStore::new(empty), &HashMap::new(), false).unwrap();
    assert!(updates.is_empty());
}
