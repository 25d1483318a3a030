//! The generated stores read back through the worker's own mapping (`aix::scan`) exactly as the
//! generators say they were written, a seed always gives the same rows, and live appends
//! (through the writer held open, so read through the WAL) show up as new messages.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;

use super::cursor::CursorDb;
use super::opencode::OpenCodeDir;
use super::store_items;
use nex::aix::sources::Provider;
use nex::aix::{RootOverrides, WorkerOptions, default_parser_factory};
use nex::protocol::ImportSessionItem;

fn stores(dir: &Path, sessions: usize, bubbles: usize, seed: u64) -> (CursorDb, OpenCodeDir) {
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let cursor = CursorDb::create(&dir.join("state.vscdb"), sessions, bubbles, seed).unwrap();
    let opencode = OpenCodeDir::create(&dir.join("opencode"), sessions, bubbles, seed).unwrap();
    (cursor, opencode)
}

fn items(dir: &Path) -> BTreeMap<(String, String), ImportSessionItem> {
    store_items(
        &dir.join("state.vscdb"),
        &dir.join("opencode"),
        &dir.join("empty"),
    )
    .unwrap()
    .into_iter()
    .map(|i| ((i.source_provider.clone(), i.source_session_id.clone()), i))
    .collect()
}

/// Per provider: sessions, messages, tool calls, total tokens.
fn totals(items: &BTreeMap<(String, String), ImportSessionItem>, provider: &str) -> [i64; 4] {
    let mut t = [0i64; 4];
    for i in items.values().filter(|i| i.source_provider == provider) {
        t[0] += 1;
        t[1] += i.messages.len() as i64;
        t[2] += i.tool_calls.len() as i64;
        t[3] += i.turns.iter().filter_map(|t| t.total_tokens).sum::<i64>();
    }
    t
}

#[test]
fn generated_stores_read_as_written() {
    let dir = tempfile::tempdir().unwrap();
    // An odd count: every session ends on an unanswered user message.
    let (cursor, opencode) = stores(dir.path(), 5, 9, 3);
    let items = items(dir.path());
    for (provider, stats) in [("cursor", cursor.stats), ("opencode", opencode.stats)] {
        assert_eq!(stats.sessions, 5);
        assert_eq!(stats.messages, 45);
        assert_eq!(
            totals(&items, provider),
            [5, 45, stats.tool_calls as i64, stats.tokens],
            "{provider}"
        );
        assert!(stats.tool_calls > 0 && stats.tokens > 0 && stats.bytes > 0);
    }
    for item in items.values() {
        let roles: Vec<&str> = item.messages.iter().map(|m| m.role.as_str()).collect();
        let expected: Vec<&str> = (0..9)
            .map(|k| if k % 2 == 0 { "user" } else { "assistant" })
            .collect();
        assert_eq!(roles, expected, "{}", item.source_session_id);
        // One turn per user message, each with its query; the last one unanswered.
        assert_eq!(item.turns.len(), 5);
        assert!(
            item.turns
                .iter()
                .all(|t| t.query_message_source_ids.len() == 1)
        );
        assert!(
            item.turns[..4]
                .iter()
                .all(|t| t.total_tokens.unwrap_or(0) > 0)
        );
        assert!(item.messages.iter().all(|m| {
            let n = m.content.as_deref().map_or(0, str::len);
            (500..3_100).contains(&n)
        }));
        assert!(item.tool_calls.iter().all(|c| {
            c.params_json
                .as_ref()
                .is_some_and(|v| v.to_value().is_object())
                && c.result_json.is_some()
                && c.status.as_deref() == Some("completed")
        }));
    }
    // Nothing malformed; the only records skipped are OpenCode's step parts.
    let options = WorkerOptions::resolve(
        &RootOverrides {
            claude_dirs: vec![dir.path().join("empty")],
            codex_dirs: vec![dir.path().join("empty")],
            gemini_dirs: vec![dir.path().join("empty")],
            cursor_dbs: vec![dir.path().join("state.vscdb")],
            opencode_dirs: vec![dir.path().join("opencode")],
            full: true,
        },
        None,
    );
    let summary = nex::aix::scan(&options, &default_parser_factory(), None).unwrap();
    for p in [Provider::Cursor, Provider::OpenCode] {
        assert_eq!(summary[&p].malformed_lines, 0, "{p:?}");
    }
    assert!(summary[&Provider::Cursor].skipped_records.is_empty());
    let skipped: Vec<&String> = summary[&Provider::OpenCode]
        .skipped_records
        .keys()
        .collect();
    assert_eq!(skipped, ["part:step-finish", "part:step-start"]);
}

fn dump(path: &Path, sql: &str) -> Vec<(String, String)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_seed_gives_the_same_rows() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for (d, seed) in dirs.iter().zip([7, 7, 8]) {
        stores(d.path(), 3, 4, seed);
    }
    let rows = |d: &Path| {
        let cursor = dump(
            &d.join("state.vscdb"),
            "SELECT key, value FROM cursorDiskKV ORDER BY rowid",
        );
        let opencode = dump(
            &d.join("opencode/opencode.db"),
            "SELECT id, data FROM message UNION ALL SELECT id, data FROM part ORDER BY 1",
        );
        (cursor, opencode)
    };
    let (a, b, c) = (
        rows(dirs[0].path()),
        rows(dirs[1].path()),
        rows(dirs[2].path()),
    );
    // Per composer: its bubbles, then its header.
    assert_eq!(a.0.len(), 3 * (4 + 1));
    assert!(a.1.len() > 3 * 4);
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    assert_ne!(a.1, c.1);
}

#[test]
fn appends_through_the_open_writer_are_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cursor, mut opencode) = stores(dir.path(), 2, 4, 5);
    cursor.open_writer().unwrap();
    opencode.open_writer().unwrap();
    let c = cursor.append().unwrap();
    let o1 = opencode.append().unwrap();
    let o2 = opencode.append().unwrap();
    assert!(dir.path().join("state.vscdb-wal").exists());
    let items = items(dir.path());
    let cs = &items[&("cursor".to_owned(), c.session_id.clone())];
    assert_eq!(cs.messages.len(), 6);
    let last: Vec<&str> = cs.messages[4..]
        .iter()
        .map(|m| m.source_message_id.as_str())
        .collect();
    assert_eq!(last, c.message_ids);
    assert_eq!(cs.messages[5].role, "assistant");
    // Each OpenCode append is the last message of its session (the first one the one before
    // when both went to the same session).
    let ids = |a: &super::Appended| -> Vec<String> {
        items[&("opencode".to_owned(), a.session_id.clone())]
            .messages
            .iter()
            .map(|m| m.source_message_id.clone())
            .collect()
    };
    assert_eq!(ids(&o2).last(), o2.message_ids.last());
    let back = if o1.session_id == o2.session_id { 2 } else { 1 };
    assert_eq!(ids(&o1).iter().rev().nth(back - 1), o1.message_ids.last());
    let total: usize = items
        .values()
        .filter(|i| i.source_provider == "opencode")
        .map(|i| i.messages.len())
        .sum();
    assert_eq!(total, 2 * 4 + 2);
}
