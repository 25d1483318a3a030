//! Cursor's `User` folder as a whole: the global database and every workspace database (older
//! versions' `ItemTable` chats: `composer.composerData` with inline conversations and the
//! `aichat` chat tabs), found from any form of `--cursor-db`; exact items of each variant (NULL
//! values, zero token counts recorded as zero, `workspacePath` from `workspace.json`, also for
//! the global sessions a workspace lists); a chat in both a workspace and the global database
//! imported once; each database polled with its own
//! cursors converges on one poll of the final databases; `aix scan` lists every database read.
//! Fixtures are written here: Cursor's structure, our own text.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nex::aix::WorkerOptions;
use nex::aix::discover::{CursorDb, CursorWorkspace, cursor_dbs};
use nex::aix::sources::{CursorStore, SessionStore, SessionUpdate, StoreCursor, poll_all};
use nex::aix::stores::cursor_store;
use rusqlite::Connection;
use serde_json::{Value, json};

use super::cursor_fixture::{T0, bubble, headers, put, put_raw, snapshot, without_fp};
use super::cursor_incremental::import;
use crate::e2e_support::{canonical, first_difference};
use crate::import_support::ledger;

const WS1: &str = "0f3c9a";
const WS2: &str = "7d21be";
const ITEM_SECRET: &str = "cursorAuth/refreshToken";

/// A Cursor `User` folder: `globalStorage/` and two workspaces, no database yet.
pub(super) struct UserTree {
    _dir: tempfile::TempDir,
    user: PathBuf,
}

impl UserTree {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("Cursor/User");
        for d in ["globalStorage", "workspaceStorage"] {
            std::fs::create_dir_all(user.join(d)).unwrap();
        }
        Self { _dir: dir, user }
    }

    pub(super) fn global(&self) -> PathBuf {
        self.user.join("globalStorage/state.vscdb")
    }

    pub(super) fn ws(&self, id: &str) -> PathBuf {
        self.user
            .join("workspaceStorage")
            .join(id)
            .join("state.vscdb")
    }

    /// A database with Cursor's tables (`cursorDiskKV` only when `kv`: the oldest workspace
    /// databases have `ItemTable` alone).
    pub(super) fn db(&self, path: &Path, kv: bool) -> Connection {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);")
            .unwrap();
        if kv {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS cursorDiskKV (key TEXT PRIMARY KEY, value BLOB);",
            )
            .unwrap();
        }
        conn
    }
}

/// Sets an `ItemTable` value (`None`: SQL NULL), as Cursor does (replacing the row).
pub(super) fn put_item(conn: &Connection, key: &str, value: Option<&Value>) {
    conn.execute(
        "INSERT INTO ItemTable (key, value) VALUES (?1, ?2)",
        rusqlite::params![key, value.map(Value::to_string)],
    )
    .unwrap();
}

pub(super) fn put_null(conn: &Connection, key: &str) {
    conn.execute(
        "INSERT OR REPLACE INTO cursorDiskKV (key, value) VALUES (?1, NULL)",
        [key],
    )
    .unwrap();
}

/// The old inline copy of `c-moved` (a workspace's), before Cursor moved it to the global
/// database under the same ids.
fn moved_inline() -> Value {
    json!({"composerId": "c-moved", "name": "Moved chat", "createdAt": T0 + 10_000,
           "conversation": [{"bubbleId": "m1", "type": 1, "text": "Rename the module"},
                            {"bubbleId": "m2", "type": 2, "text": "Renamed."}]})
}

/// The inline composer of workspace 1; `grown` adds a second exchange.
fn inline_composer(grown: bool) -> Value {
    let mut conv = vec![
        json!({"bubbleId": "i1", "type": 1, "text": "Add a README",
               "context": {"fileSelections": []}}),
        json!({"bubbleId": "i2", "type": 2, "text": "Added README.md.",
               "tokenCount": {"inputTokens": 0, "outputTokens": 0},
               "codeBlocks": [{"uri": "README.md"}]}),
    ];
    if grown {
        conv.push(json!({"bubbleId": "i3", "type": 1, "text": "And a license"}));
        conv.push(
            json!({"bubbleId": "i4", "type": 2, "text": "Added LICENSE.",
                         "tokenCount": {"inputTokens": 900, "outputTokens": 30}}),
        );
    }
    json!({"composerId": "c-inline", "name": "Docs", "createdAt": T0 + 20_000,
           "lastUpdatedAt": T0 + 90_000, "unifiedMode": "chat", "conversation": conv,
           "codeBlockData": {}})
}

/// Workspace 1 as a 2024 Cursor left it: `ItemTable` only, inline composers (one of them
/// later moved to the global database, one that only points at bubble keys, one whose
/// conversation is NULL) and chat tabs (one NULL-bubbled), a login token beside them.
fn write_ws1(tree: &UserTree, grown: bool) {
    let c = tree.db(&tree.ws(WS1), false);
    std::fs::write(
        tree.ws(WS1).with_file_name("workspace.json"),
        r#"{"folder": "file:///home/dev/my%20app"}"#,
    )
    .unwrap();
    put_item(
        &c,
        "composer.composerData",
        Some(&json!({"allComposers": [
            inline_composer(grown),
            moved_inline(),
            {"composerId": "c-pointer", "fullConversationHeadersOnly": headers(&["p1"])},
            {"composerId": "c-nullconv", "conversation": null, "createdAt": null},
        ], "selectedComposerId": "c-inline", "composerDataVersion": 1})),
    );
    put_item(
        &c,
        "workbench.panel.aichat.view.aichat.chatdata",
        Some(&json!({"tabs": [
            {"tabId": "tab-a", "chatTitle": "Ports", "lastSendTime": T0 + 5_000,
             "bubbles": [
                {"type": "user", "id": "t1", "text": "Which port?", "messageType": 2},
                {"type": "ai", "id": "t2", "rawText": "8080.", "text": "8080.",
                 "modelType": "claude-3.5-sonnet", "requestId": "r-1"}]},
            {"tabId": "tab-null", "chatTitle": null, "bubbles": null, "lastSendTime": null}
        ], "chatDataVersion": 1})),
    );
    put_item(
        &c,
        "workbench.panel.aichat.numberOfVisibleViews",
        Some(&json!(1)),
    );
    put_item(&c, ITEM_SECRET, Some(&json!("S".repeat(20_000))));
}

/// Workspace 2 as a 2025 Cursor leaves it: both tables, its composer list only pointing at
/// the global database; its chat key NULL; no `workspace.json`.
fn write_ws2(tree: &UserTree) {
    let c = tree.db(&tree.ws(WS2), true);
    put_item(
        &c,
        "composer.composerData",
        Some(&json!({"allComposers": [{"composerId": "c-moved", "type": "head"}]})),
    );
    put_item(&c, "workbench.panel.aichat.view.aichat.chatdata", None);
}

/// The global database: `c-moved` (moved there, one more exchange later when `more`), and
/// `c-nulls`, whose composer value is NULL and one of whose bubbles is NULL.
fn write_global(tree: &UserTree, more: bool) {
    write_moved(tree, more);
    write_nulls(tree);
}

fn write_moved(tree: &UserTree, more: bool) {
    let c = tree.db(&tree.global(), true);
    let mut order = vec!["m1", "m2"];
    if more {
        order.extend(["m3", "m4"]);
    }
    put(
        &c,
        "composerData:c-moved",
        &json!({"composerId": "c-moved", "name": "Moved chat", "createdAt": T0 + 10_000,
                "lastUpdatedAt": T0 + 200_000, "modelConfig": {"modelName": "gpt-4.1"},
                "fullConversationHeadersOnly": headers(&order)}),
    );
    let b = |id: &str, v: Value| bubble(&c, "c-moved", id, v);
    b(
        "m1",
        json!({"type": 1, "text": "Rename the module", "createdAt": T0 + 11_000}),
    );
    b(
        "m2",
        json!({"type": 2, "text": "Renamed.", "createdAt": T0 + 12_000,
               "tokenCount": {"inputTokens": 0, "outputTokens": 0}}),
    );
    if more {
        b(
            "m3",
            json!({"type": 1, "text": "Update imports", "createdAt": T0 + 150_000}),
        );
        b(
            "m4",
            json!({"type": 2, "createdAt": T0 + 151_000, "toolFormerData": {
                "name": "edit_file", "toolCallId": "toolu_m", "status": "completed",
                "rawArgs": "{\"path\":\"lib.rs\"}", "result": null},
                "tokenCount": {"inputTokens": 4000, "outputTokens": 120}}),
        );
    }
}

fn write_nulls(tree: &UserTree) {
    let c = tree.db(&tree.global(), true);
    put_null(&c, "composerData:c-nulls");
    bubble(
        &c,
        "c-nulls",
        "n1",
        json!({"type": 1, "text": "Hi", "createdAt": T0 + 30_000}),
    );
    put_null(&c, "bubbleId:c-nulls:n2");
    bubble(
        &c,
        "c-nulls",
        "n3",
        json!({"type": 2, "text": null, "rawText": "Hello", "createdAt": T0 + 31_000,
               "tokenCount": null, "thinking": null}),
    );
    put_raw(&c, "cursorAuth/accessToken", "secret-access");
    put_item(&c, ITEM_SECRET, Some(&json!("S".repeat(20_000))));
}

/// Every database of the tree, as `cursor_dbs` finds them, polled whole.
pub(super) fn stores(tree: &UserTree) -> Vec<(PathBuf, CursorStore)> {
    cursor_dbs(std::slice::from_ref(&tree.user))
        .into_iter()
        .map(|d| (d.path.clone(), cursor_store(d)))
        .collect()
}

/// Makes any read of the `ItemTable` login token fail (its overflow pages point past the
/// end of the file).
fn trap_item_secret(db: &Path) {
    let mut bytes = std::fs::read(db).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let mut trapped = 0;
    for chunk in bytes.chunks_mut(page) {
        if chunk.len() == page && chunk[4..].iter().all(|&b| b == b'S') {
            chunk[..4].copy_from_slice(&[0xff, 0xff, 0xff, 0x00]);
            trapped += 1;
        }
    }
    assert!(trapped >= 2, "the token spans overflow pages");
    std::fs::write(db, bytes).unwrap();
    let c = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let read: rusqlite::Result<Vec<u8>> = c.query_row(
        "SELECT value FROM ItemTable WHERE key = ?1",
        [ITEM_SECRET],
        |r| r.get(0),
    );
    assert!(read.is_err(), "the trap must make a read of the token fail");
}

fn full_tree() -> UserTree {
    let tree = UserTree::new();
    write_global(&tree, true);
    write_ws1(&tree, true);
    write_ws2(&tree);
    tree
}

fn msg(id: &str, turn: &str, role: &str, content: &str, seq: i64, at: i64) -> Value {
    json!({"sourceMessageId": id, "sourceTurnId": turn, "role": role, "content": content,
           "sequence": seq, "createdAtMs": at})
}

#[test]
fn cursor_user_folder_reads_every_database_with_exact_items_each_chat_once() {
    let tree = full_tree();
    trap_item_secret(&tree.global());
    trap_item_secret(&tree.ws(WS1));
    let user_dir = tree.user.clone();
    let before: Vec<_> = [tree.global(), tree.ws(WS1), tree.ws(WS2)]
        .iter()
        .map(|p| snapshot(p.parent().unwrap()))
        .collect();
    let mut got: Vec<(PathBuf, Vec<Value>)> = Vec::new();
    let mut skipped: Vec<Vec<(String, u64)>> = Vec::new();
    for (path, mut store) in stores(&tree) {
        let (updates, counts) = poll_all(&mut store, &HashMap::new(), false).unwrap();
        assert_eq!(counts.failed, 0);
        got.push((
            path.strip_prefix(&user_dir).unwrap().to_path_buf(),
            updates
                .iter()
                .flat_map(|u| u.items.iter().map(without_fp))
                .collect(),
        ));
        skipped.push(
            store
                .stats()
                .skipped_records
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        );
    }
    let after: Vec<_> = [tree.global(), tree.ws(WS1), tree.ws(WS2)]
        .iter()
        .map(|p| snapshot(p.parent().unwrap()))
        .collect();
    assert_eq!(after, before, "nothing written, nothing created");
    let paths: Vec<String> = got.iter().map(|(p, _)| p.display().to_string()).collect();
    assert_eq!(
        paths,
        [
            "globalStorage/state.vscdb".to_owned(),
            format!("workspaceStorage/{WS1}/state.vscdb"),
            format!("workspaceStorage/{WS2}/state.vscdb"),
        ]
    );
    let moved = json!({
        "sourceProvider": "cursor", "sourceSessionId": "c-moved",
        // Workspace 1 lists it: its folder (workspace 2 lists it too, but names no folder).
        "session": {"createdAtMs": T0 + 10_000, "updatedAtMs": T0 + 200_000,
                    "model": "gpt-4.1", "workspacePath": "/home/dev/my app",
                    "metadata": {"title": "Moved chat"}},
        "turns": [
            // Cursor wrote zero counts: recorded as zero.
            {"sourceTurnId": "m1", "startedAtMs": T0 + 11_000, "completedAtMs": T0 + 12_000,
             "inputTokens": 0, "outputTokens": 0, "totalTokens": 0,
             "responseMessageSourceId": "m2", "queryMessageSourceIds": ["m1"]},
            {"sourceTurnId": "m3", "parentSourceTurnId": "m1", "startedAtMs": T0 + 150_000,
             "completedAtMs": T0 + 151_000, "inputTokens": 4000, "outputTokens": 120,
             "totalTokens": 4120, "queryMessageSourceIds": ["m3"]}
        ],
        "messages": [
            msg("m1", "m1", "user", "Rename the module", 0, T0 + 11_000),
            msg("m2", "m1", "assistant", "Renamed.", 1, T0 + 12_000),
            msg("m3", "m3", "user", "Update imports", 2, T0 + 150_000),
            {"sourceMessageId": "m4", "sourceTurnId": "m3", "role": "assistant",
             "sequence": 3, "createdAtMs": T0 + 151_000}
        ],
        "toolCalls": [
            {"sourceToolCallId": "toolu_m", "sourceTurnId": "m3", "sourceMessageId": "m4",
             "toolName": "edit_file", "paramsJson": {"path": "lib.rs"}, "status": "completed",
             "startedAtMs": T0 + 151_000, "sequence": 3}
        ]
    });
    // The NULL (deleted) composer reads as absent: the session is its bubbles by time; the
    // NULL bubble and the NULL fields are skipped; no count written, none recorded.
    let nulls = json!({
        "sourceProvider": "cursor", "sourceSessionId": "c-nulls",
        "session": {"createdAtMs": T0 + 30_000, "updatedAtMs": T0 + 31_000},
        "turns": [
            {"sourceTurnId": "n1", "startedAtMs": T0 + 30_000, "completedAtMs": T0 + 31_000,
             "responseMessageSourceId": "n3", "queryMessageSourceIds": ["n1"]}
        ],
        "messages": [
            msg("n1", "n1", "user", "Hi", 0, T0 + 30_000),
            msg("n3", "n1", "assistant", "Hello", 1, T0 + 31_000)
        ]
    });
    let tab = json!({
        "sourceProvider": "cursor", "sourceSessionId": "tab-a",
        "session": {"createdAtMs": T0 + 5_000, "updatedAtMs": T0 + 5_000,
                    "model": "claude-3.5-sonnet", "workspacePath": "/home/dev/my app",
                    "metadata": {"legacy": "chatdata", "title": "Ports"}},
        "turns": [
            {"sourceTurnId": "t1", "startedAtMs": T0 + 5_000, "completedAtMs": T0 + 5_000,
             "model": "claude-3.5-sonnet", "responseMessageSourceId": "t2",
             "queryMessageSourceIds": ["t1"]}
        ],
        "messages": [
            msg("t1", "t1", "user", "Which port?", 0, T0 + 5_000),
            msg("t2", "t1", "assistant", "8080.", 1, T0 + 5_000)
        ]
    });
    let inline = json!({
        "sourceProvider": "cursor", "sourceSessionId": "c-inline",
        "session": {"createdAtMs": T0 + 20_000, "updatedAtMs": T0 + 90_000,
                    "workspacePath": "/home/dev/my app",
                    "metadata": {"legacy": "composerData", "title": "Docs",
                                 "unifiedMode": "chat"}},
        "turns": [
            {"sourceTurnId": "i1", "startedAtMs": T0 + 20_000, "completedAtMs": T0 + 20_000,
             "inputTokens": 0, "outputTokens": 0, "totalTokens": 0,
             "responseMessageSourceId": "i2", "queryMessageSourceIds": ["i1"]},
            {"sourceTurnId": "i3", "parentSourceTurnId": "i1", "startedAtMs": T0 + 20_000,
             "completedAtMs": T0 + 20_000, "inputTokens": 900, "outputTokens": 30,
             "totalTokens": 930, "responseMessageSourceId": "i4",
             "queryMessageSourceIds": ["i3"]}
        ],
        "messages": [
            msg("i1", "i1", "user", "Add a README", 0, T0 + 20_000),
            msg("i2", "i1", "assistant", "Added README.md.", 1, T0 + 20_000),
            msg("i3", "i3", "user", "And a license", 2, T0 + 20_000),
            msg("i4", "i3", "assistant", "Added LICENSE.", 3, T0 + 20_000)
        ]
    });
    // Oldest first: a composer whose `createdAt` cannot be read sorts first.
    assert_eq!(got[0].1, vec![nulls, moved]);
    // Oldest first; `c-moved`'s old copy is the global session's: not sent again.
    assert_eq!(got[1].1, vec![tab, inline]);
    assert!(got[2].1.is_empty());
    let s = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    };
    assert_eq!(
        skipped,
        [
            s(&[("deleted_row", 2)]),
            s(&[
                ("empty_session", 1),
                ("legacy_composer_header", 2),
                ("legacy_shadowed", 1),
            ]),
            s(&[("legacy_shadowed", 1)]),
        ]
    );
}

#[test]
fn cursor_db_flag_accepts_a_user_folder_a_global_or_workspace_database_or_cursors_folder() {
    let tree = full_tree();
    // Not a workspace: a folder without a database.
    std::fs::create_dir_all(tree.user.join("workspaceStorage/ext-dev")).unwrap();
    let global = tree.global();
    let ws = |id: &str, folder: Option<&str>| CursorDb {
        path: tree.ws(id),
        workspace: Some(CursorWorkspace {
            folder: folder.map(str::to_owned),
            global: Some(global.clone()),
        }),
        workspaces: Vec::new(),
    };
    let all = vec![
        // The global database knows the workspaces that name a folder.
        CursorDb {
            path: global.clone(),
            workspace: None,
            workspaces: vec![(tree.ws(WS1), "/home/dev/my app".to_owned())],
        },
        ws(WS1, Some("/home/dev/my app")),
        ws(WS2, None),
    ];
    assert_eq!(cursor_dbs(std::slice::from_ref(&tree.user)), all);
    assert_eq!(
        cursor_dbs(&[tree.user.parent().unwrap().to_path_buf()]),
        all
    );
    assert_eq!(cursor_dbs(std::slice::from_ref(&global)), all);
    assert_eq!(cursor_dbs(&[global.parent().unwrap().to_path_buf()]), all);
    // Overlapping entries name each database once.
    assert_eq!(
        cursor_dbs(&[tree.ws(WS2), global.clone(), tree.user.clone()]),
        [all[2].clone(), all[0].clone(), all[1].clone()]
    );
    assert_eq!(cursor_dbs(&[tree.ws(WS1)]), vec![all[1].clone()]);
    // A workspace of a tree without a global database; a database anywhere else.
    let lone = UserTree::new();
    write_ws1(&lone, false);
    assert_eq!(
        cursor_dbs(std::slice::from_ref(&lone.user)),
        vec![CursorDb {
            path: lone.ws(WS1),
            workspace: Some(CursorWorkspace {
                folder: Some("/home/dev/my app".into()),
                global: None
            }),
            workspaces: Vec::new(),
        }]
    );
    let copy = lone.user.join("backup.vscdb");
    std::fs::copy(tree.global(), &copy).unwrap();
    assert_eq!(
        cursor_dbs(&[copy.clone(), lone.user.join("missing.vscdb")]),
        vec![CursorDb {
            path: copy,
            workspace: None,
            workspaces: Vec::new(),
        }]
    );
}

/// Polls every store of the tree with the cursors it committed so far, imports the items into
/// `ledger`, and keeps the new cursors.
fn poll_into(
    stores: &mut [(PathBuf, CursorStore)],
    cursors: &mut HashMap<PathBuf, HashMap<String, StoreCursor>>,
    conn: &mut Connection,
    key: &str,
) -> Vec<Vec<String>> {
    let mut sent = Vec::new();
    for (n, (path, store)) in stores.iter_mut().enumerate() {
        let own = cursors.entry(path.clone()).or_default();
        let (updates, counts) = poll_all(store, own, false).unwrap();
        assert_eq!(counts.failed, 0);
        import(conn, &format!("{key}-{n}"), &updates);
        for u in &updates {
            own.insert(u.session_id.clone(), u.cursor.clone());
        }
        sent.push(ids(&updates));
    }
    sent
}

fn ids(updates: &[SessionUpdate]) -> Vec<String> {
    updates.iter().map(|u| u.session_id.clone()).collect()
}

#[test]
fn cursor_workspace_and_global_polled_after_each_write_equal_one_poll_of_the_final_state() {
    let tree = UserTree::new();
    // 1. A 2024 workspace: everything inline; the global database has no chat yet.
    tree.db(&tree.global(), true);
    write_ws1(&tree, false);
    let mut stores_inc = stores(&tree);
    let mut cursors = HashMap::new();
    let mut inc = ledger();
    assert_eq!(
        poll_into(&mut stores_inc, &mut cursors, &mut inc, "p1"),
        [
            vec![],
            vec!["tab-a".to_owned(), "c-moved".into(), "c-inline".into()]
        ]
    );
    // 2. Cursor moves `c-moved` to the global database and the inline chat grows.
    write_global(&tree, false);
    write_ws1(&tree, true);
    assert_eq!(
        poll_into(&mut stores_inc, &mut cursors, &mut inc, "p2"),
        [
            vec!["c-nulls".to_owned(), "c-moved".into()],
            vec!["c-inline".to_owned()]
        ]
    );
    // 3. The moved chat goes on in the global database only; nothing else is read again.
    write_moved(&tree, true);
    assert_eq!(
        poll_into(&mut stores_inc, &mut cursors, &mut inc, "p3"),
        [vec!["c-moved".to_owned()], vec![]]
    );
    // Each database keeps its own resume points.
    let keys: Vec<Vec<&str>> = stores_inc
        .iter()
        .map(|(p, _)| {
            let mut k: Vec<&str> = cursors[p].keys().map(String::as_str).collect();
            k.sort_unstable();
            k
        })
        .collect();
    assert_eq!(
        keys,
        [
            vec!["c-moved", "c-nulls"],
            vec!["c-inline", "c-moved", "tab-a"]
        ]
    );

    // One poll of the final databases, into a fresh ledger: the same rows.
    let mut full = ledger();
    let mut fresh = stores(&tree);
    let sent = poll_into(&mut fresh, &mut HashMap::new(), &mut full, "full");
    assert_eq!(
        sent,
        [
            vec!["c-nulls".to_owned(), "c-moved".into()],
            vec!["tab-a".to_owned(), "c-inline".into()]
        ]
    );
    let (a, b) = (canonical(&inc), canonical(&full));
    assert!(a == b, "{}", first_difference(&a, &b));
}

#[test]
fn cursor_scan_lists_every_database_it_read() {
    let tree = full_tree();
    let options = WorkerOptions {
        cursor_dbs: vec![tree.user.clone()],
        ..Default::default()
    };
    let factory = nex::aix::default_parser_factory();
    let summary = nex::aix::scan(&options, &factory, None).unwrap();
    let text = nex::aix::render_summary(&summary);
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "cursor:")
        .take(6)
        .collect();
    let u = tree.user.display();
    assert_eq!(
        block,
        [
            "cursor:".to_owned(),
            "  stores             3".into(),
            format!("    {u}/globalStorage/state.vscdb (2 sessions)"),
            format!("    {u}/workspaceStorage/{WS1}/state.vscdb (2 sessions)"),
            format!("    {u}/workspaceStorage/{WS2}/state.vscdb (0 sessions)"),
            "  sessions           4".into(),
        ]
    );
}

/// A Lexical editor state as a legacy chat tab stores a user bubble's `initText`: one paragraph
/// per line given.
pub(super) fn editor_state(lines: &[&str]) -> String {
    let paragraphs: Vec<Value> = lines
        .iter()
        .map(|l| {
            json!({"children": [{"detail": 0, "format": 0, "mode": "normal", "style": "",
                                 "text": l, "type": "text", "version": 1}],
                   "direction": "ltr", "format": "", "indent": 0, "type": "paragraph",
                   "version": 1})
        })
        .collect();
    json!({"root": {"children": paragraphs, "direction": "ltr", "format": "", "indent": 0,
                    "type": "root", "version": 1}})
    .to_string()
}

/// A 2023 workspace (as real ones hold it): a follow-up prompt's `text` and `rawText` are empty
/// and its words are only in the bubble's editor state (`initText`); Cursor mapping 3 reads
/// them there. The first prompt keeps its `rawText` (its `initText` also holds mentions). Each
/// tab ends with its input box, a user bubble without text: not a prompt, and a tab never used
/// (the input box alone) is no session.
#[test]
fn cursor_legacy_tab_follow_up_prompts_are_read_from_their_editor_state() {
    let tree = UserTree::new();
    let c = tree.db(&tree.ws(WS1), false);
    std::fs::write(
        tree.ws(WS1).with_file_name("workspace.json"),
        r#"{"folder": "file:///home/dev/site"}"#,
    )
    .unwrap();
    put_item(
        &c,
        "workbench.panel.aichat.view.aichat.chatdata",
        Some(&json!({"tabs": [
            {"tabId": "tab-f", "chatTitle": "Lint", "lastSendTime": T0 + 9_000,
             "bubbles": [
                {"type": "user", "id": "f1", "messageType": 2, "followup": false,
                 "rawText": "Fix the lint error",
                 "initText": editor_state(&["Fix the lint error in @nav.tsx"])},
                {"type": "ai", "id": "f2", "messageType": 3, "rawText": "Added an aria-label.",
                 "modelType": "gpt-4"},
                {"type": "user", "id": "f3", "messageType": 2, "followup": true, "rawText": "",
                 "initText": editor_state(&["Same for the footer", "and the header"])},
                {"type": "ai", "id": "f4", "messageType": 3, "rawText": "Done for both.",
                 "modelType": "gpt-4"},
                {"type": "user", "id": "f5", "messageType": 2, "followup": true, "rawText": ""}]},
            {"tabId": "tab-unused", "chatTitle": null, "lastSendTime": null,
             "bubbles": [{"type": "user", "id": "u1", "messageType": 2, "rawText": ""}]}
        ], "chatDataVersion": 1})),
    );
    drop(c);
    let mut got = Vec::new();
    let mut skipped = Vec::new();
    for (_, mut store) in stores(&tree) {
        let (updates, counts) = poll_all(&mut store, &HashMap::new(), false).unwrap();
        assert_eq!(counts.failed, 0);
        got.extend(updates.iter().flat_map(|u| u.items.iter().map(without_fp)));
        skipped.extend(
            store
                .stats()
                .skipped_records
                .iter()
                .map(|(k, v)| (k.clone(), *v)),
        );
    }
    skipped.sort();
    assert_eq!(
        skipped,
        [
            ("empty_session".to_owned(), 1),
            ("legacy_input_box".to_owned(), 2)
        ]
    );
    let at = T0 + 9_000;
    let want = json!({
        "sourceProvider": "cursor", "sourceSessionId": "tab-f",
        "session": {"createdAtMs": at, "updatedAtMs": at, "model": "gpt-4",
                    "workspacePath": "/home/dev/site",
                    "metadata": {"legacy": "chatdata", "title": "Lint"}},
        "turns": [
            {"sourceTurnId": "f1", "startedAtMs": at, "completedAtMs": at, "model": "gpt-4",
             "responseMessageSourceId": "f2", "queryMessageSourceIds": ["f1"]},
            {"sourceTurnId": "f3", "parentSourceTurnId": "f1", "startedAtMs": at,
             "completedAtMs": at, "model": "gpt-4", "responseMessageSourceId": "f4",
             "queryMessageSourceIds": ["f3"]}
        ],
        "messages": [
            msg("f1", "f1", "user", "Fix the lint error", 0, at),
            msg("f2", "f1", "assistant", "Added an aria-label.", 1, at),
            msg("f3", "f3", "user", "Same for the footer\nand the header", 2, at),
            msg("f4", "f3", "assistant", "Done for both.", 3, at)
        ]
    });
    assert_eq!(got, vec![want]);
}
