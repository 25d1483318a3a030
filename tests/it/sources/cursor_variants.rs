//! Cursor real-world variants that mapping 4 reads differently, each as a fixture written here
//! (Cursor's structure as real databases hold it, our own text) with its exact items and skip
//! counts:
//! - a 0.18 legacy chat tab holding only its input box with a draft typed and never sent
//!   (`initText` set, `text` and `rawText` empty): no session;
//! - a 3.x composer (`_v` 16) that no workspace database lists (their `composer.composerData`
//!   only keeps the selection after the migration, which is not a skip): `workspacePath` from
//!   its own `workspaceIdentifier`; the model named on the prompt bubbles only; token counts
//!   all zero (recorded as 0, as SOURCES.md says); a tool result `"{}"` kept;
//! - 0.44 / 1.x bubbles without `createdAt`, timed by `timingInfo`;
//! - NULL rows (deleted composers and bubbles) counted once as `deleted_row`.

use std::collections::HashMap;

use nex::aix::sources::{SessionStore, poll_all};
use serde_json::{Value, json};

use super::cursor_fixture::{T0, bubble, headers, put, without_fp};
use super::cursor_workspaces::{UserTree, editor_state, put_item, put_null, stores};

/// What one database gave: its items (without fingerprints) and its skip counts.
type Polled = (Vec<Value>, Vec<(String, u64)>);

/// Every database of the tree polled whole, in `cursor_dbs` order (global first).
fn poll_tree(tree: &UserTree) -> Vec<Polled> {
    stores(tree)
        .into_iter()
        .map(|(_, mut store)| {
            let (updates, counts) = poll_all(&mut store, &HashMap::new(), false).unwrap();
            assert_eq!(counts.failed, 0);
            let items = updates
                .iter()
                .flat_map(|u| u.items.iter().map(without_fp))
                .collect();
            let skipped = store
                .stats()
                .skipped_records
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            (items, skipped)
        })
        .collect()
}

fn skips(v: &[(&str, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

fn msg(id: &str, turn: &str, role: &str, content: Option<&str>, seq: i64, at: i64) -> Value {
    let mut m = json!({"sourceMessageId": id, "sourceTurnId": turn, "role": role,
                       "sequence": seq, "createdAtMs": at});
    if let Some(c) = content {
        m["content"] = json!(c);
    }
    m
}

/// Cursor 0.18: a tab whose only bubble is the input box holding a draft (no `lastSendTime`,
/// no reply) is no session; in a used tab, the sent follow-up that has only `initText` is a
/// prompt, and the last bubble (the input box, also holding a draft) is not.
#[test]
fn cursor_legacy_tab_holding_only_a_draft_is_no_session() {
    let tree = UserTree::new();
    let c = tree.db(&tree.ws("a1b2c3"), false);
    std::fs::write(
        tree.ws("a1b2c3").with_file_name("workspace.json"),
        r#"{"folder": "file:///home/dev/notes"}"#,
    )
    .unwrap();
    let draft = |id: &str, words: &str| {
        json!({"type": "user", "id": id, "messageType": 2, "text": "", "rawText": "",
               "initText": editor_state(&[words])})
    };
    put_item(
        &c,
        "workbench.panel.aichat.view.aichat.chatdata",
        Some(&json!({"tabs": [
            {"tabId": "tab-draft", "chatTitle": "New chat", "bubbles": [
                draft("d1", "half a question about the")]},
            {"tabId": "tab-used", "chatTitle": "Build", "lastSendTime": T0 + 4_000,
             "bubbles": [
                {"type": "user", "id": "s1", "messageType": 2, "text": "Explain the build",
                 "rawText": "Explain the build"},
                {"type": "ai", "id": "s2", "rawText": "It runs make.", "modelType": "gpt-4"},
                draft("s3", "And the tests?"),
                {"type": "ai", "id": "s4", "rawText": "Run make test.", "modelType": "gpt-4"},
                draft("s5", "one more thing")]}
        ], "chatDataVersion": 1})),
    );
    drop(c);
    let got = poll_tree(&tree);
    let at = T0 + 4_000;
    let used = json!({
        "sourceProvider": "cursor", "sourceSessionId": "tab-used",
        "session": {"createdAtMs": at, "updatedAtMs": at, "model": "gpt-4",
                    "workspacePath": "/home/dev/notes",
                    "metadata": {"legacy": "chatdata", "title": "Build"}},
        "turns": [
            {"sourceTurnId": "s1", "startedAtMs": at, "completedAtMs": at, "model": "gpt-4",
             "responseMessageSourceId": "s2", "queryMessageSourceIds": ["s1"]},
            {"sourceTurnId": "s3", "parentSourceTurnId": "s1", "startedAtMs": at,
             "completedAtMs": at, "model": "gpt-4", "responseMessageSourceId": "s4",
             "queryMessageSourceIds": ["s3"]}
        ],
        "messages": [
            msg("s1", "s1", "user", Some("Explain the build"), 0, at),
            msg("s2", "s1", "assistant", Some("It runs make."), 1, at),
            msg("s3", "s3", "user", Some("And the tests?"), 2, at),
            msg("s4", "s3", "assistant", Some("Run make test."), 3, at)
        ]
    });
    assert_eq!(
        got,
        vec![(
            vec![used],
            skips(&[("empty_session", 1), ("legacy_input_box", 2)])
        )]
    );
}

/// The global database and one workspace as Cursor 3.x leaves them.
fn write_3x(tree: &UserTree) {
    let ws = tree.db(&tree.ws("60aa"), true);
    std::fs::write(
        tree.ws("60aa").with_file_name("workspace.json"),
        r#"{"folder": "file:///home/dev/shop"}"#,
    )
    .unwrap();
    // After the migration the workspace keeps only the selection: the composers are global.
    put_item(
        &ws,
        "composer.composerData",
        Some(
            &json!({"selectedComposerIds": ["c-new"], "lastFocusedComposerIds": ["c-new"],
                     "hasMigratedComposerData": false, "hasMigratedMultipleComposers": true}),
        ),
    );
    // An older workspace that lists `c-listed` (its folder wins over the composer's own).
    let old = tree.db(&tree.ws("71bb"), false);
    std::fs::write(
        tree.ws("71bb").with_file_name("workspace.json"),
        r#"{"folder": "file:///home/dev/other"}"#,
    )
    .unwrap();
    put_item(
        &old,
        "composer.composerData",
        Some(&json!({"allComposers": [{"composerId": "c-listed", "type": "head"}]})),
    );
    let g = tree.db(&tree.global(), true);
    let ident = |dir: &str| {
        json!({"id": "60aa", "uri": {"$mid": 1, "fsPath": dir, "external": format!("file://{dir}"),
                                     "path": dir, "scheme": "file"}})
    };
    put(
        &g,
        "composerData:c-new",
        &json!({"_v": 16, "composerId": "c-new", "name": "Routes", "createdAt": T0 + 1_000,
                "lastUpdatedAt": T0 + 9_000, "unifiedMode": "agent",
                "modelConfig": {"modelName": "auto-model", "maxMode": false},
                "fullConversationHeadersOnly": headers(&["u1", "a1", "a2", "u2", "a3"]),
                "workspaceIdentifier": ident("/home/dev/shop/api")}),
    );
    let zero = json!({"inputTokens": 0, "outputTokens": 0});
    let b = |id: &str, v: Value| bubble(&g, "c-new", id, v);
    b(
        "u1",
        json!({"_v": 3, "type": 1, "text": "List the routes", "createdAt": T0 + 2_000,
               "modelInfo": {"modelName": "fast-model"}, "tokenCount": zero}),
    );
    b(
        "a1",
        json!({"_v": 3, "type": 2, "text": "", "createdAt": T0 + 3_000, "tokenCount": zero,
               "toolFormerData": {"name": "read_lints", "tool": 30, "toolCallId": "tool_1",
                                  "status": "completed", "rawArgs": "{\"paths\":[\"api\"]}",
                                  "result": "{}"}}),
    );
    b(
        "a2",
        json!({"_v": 3, "type": 2, "text": "Three routes.", "createdAt": T0 + 4_000,
               "tokenCount": zero}),
    );
    b(
        "u2",
        json!({"_v": 3, "type": 1, "text": "Add one", "createdAt": T0 + 5_000,
               "modelInfo": {"modelName": "fast-model"}, "tokenCount": zero}),
    );
    b(
        "a3",
        json!({"_v": 3, "type": 2, "text": "Added.", "createdAt": T0 + 6_000,
               "modelInfo": {"modelName": "big-model"},
               "tokenCount": {"inputTokens": 700, "outputTokens": 20}}),
    );
    put(
        &g,
        "composerData:c-listed",
        &json!({"_v": 16, "composerId": "c-listed", "createdAt": T0 + 20_000,
                "fullConversationHeadersOnly": headers(&["l1", "l2"]),
                "workspaceIdentifier": ident("/home/dev/elsewhere")}),
    );
    bubble(
        &g,
        "c-listed",
        "l1",
        json!({"type": 1, "text": "Hello", "createdAt": T0 + 21_000}),
    );
    bubble(
        &g,
        "c-listed",
        "l2",
        json!({"type": 2, "text": "Hi.", "createdAt": T0 + 22_000}),
    );
}

/// Cursor 3.7: the session's folder comes from the composer itself when no workspace lists it
/// (a workspace that does keeps precedence), a turn whose replies name no model takes its
/// prompt's, zero counts are recorded as zero, the result `"{}"` is kept, and the workspace list that
/// keeps only the selection is no skip.
#[test]
fn cursor_3x_composer_folder_model_and_zero_counts() {
    let tree = UserTree::new();
    write_3x(&tree);
    let got = poll_tree(&tree);
    let new = json!({
        "sourceProvider": "cursor", "sourceSessionId": "c-new",
        "session": {"createdAtMs": T0 + 1_000, "updatedAtMs": T0 + 9_000,
                    "model": "auto-model", "workspacePath": "/home/dev/shop/api",
                    "metadata": {"title": "Routes", "unifiedMode": "agent"}},
        "turns": [
            // Every count is zero: recorded as zero.
            {"sourceTurnId": "u1", "startedAtMs": T0 + 2_000, "completedAtMs": T0 + 4_000,
             "model": "fast-model", "inputTokens": 0, "outputTokens": 0, "totalTokens": 0,
             "responseMessageSourceId": "a2",
             "queryMessageSourceIds": ["u1"]},
            // A reply names its model: that one.
            {"sourceTurnId": "u2", "parentSourceTurnId": "u1", "startedAtMs": T0 + 5_000,
             "completedAtMs": T0 + 6_000, "model": "big-model", "inputTokens": 700,
             "outputTokens": 20, "totalTokens": 720, "responseMessageSourceId": "a3",
             "queryMessageSourceIds": ["u2"]}
        ],
        "messages": [
            msg("u1", "u1", "user", Some("List the routes"), 0, T0 + 2_000),
            msg("a1", "u1", "assistant", None, 1, T0 + 3_000),
            msg("a2", "u1", "assistant", Some("Three routes."), 2, T0 + 4_000),
            msg("u2", "u2", "user", Some("Add one"), 3, T0 + 5_000),
            msg("a3", "u2", "assistant", Some("Added."), 4, T0 + 6_000)
        ],
        "toolCalls": [
            {"sourceToolCallId": "tool_1", "sourceTurnId": "u1", "sourceMessageId": "a1",
             "toolName": "read_lints", "toolNumber": 30, "paramsJson": {"paths": ["api"]},
             "resultJson": {}, "status": "completed", "startedAtMs": T0 + 3_000, "sequence": 1}
        ]
    });
    let listed = json!({
        "sourceProvider": "cursor", "sourceSessionId": "c-listed",
        "session": {"createdAtMs": T0 + 20_000, "updatedAtMs": T0 + 22_000,
                    "workspacePath": "/home/dev/other"},
        "turns": [
            {"sourceTurnId": "l1", "startedAtMs": T0 + 21_000, "completedAtMs": T0 + 22_000,
             "responseMessageSourceId": "l2", "queryMessageSourceIds": ["l1"]}
        ],
        "messages": [
            msg("l1", "l1", "user", Some("Hello"), 0, T0 + 21_000),
            msg("l2", "l1", "assistant", Some("Hi."), 1, T0 + 22_000)
        ]
    });
    assert_eq!(
        got,
        vec![
            (vec![new, listed], vec![]),
            (vec![], vec![]),
            // Its list entry is the global composer's: read there.
            (vec![], skips(&[("legacy_shadowed", 1)])),
        ]
    );
}

/// Cursor 0.44 / 1.1: no bubble has `createdAt`; some replies carry `timingInfo`, whose
/// `clientStartTime` may be an offset from the window's load. A message takes its request's
/// send time, a turn ends at the latest end of its requests; a prompt and an untimed reply take
/// their turn's start.
#[test]
fn cursor_bubbles_without_created_at_are_timed_by_timing_info() {
    let tree = UserTree::new();
    let g = tree.db(&tree.global(), true);
    put(
        &g,
        "composerData:c-old",
        &json!({"composerId": "c-old", "createdAt": T0,
                "fullConversationHeadersOnly": headers(&["u1", "a1", "a2", "u2", "a3"])}),
    );
    let b = |id: &str, v: Value| bubble(&g, "c-old", id, v);
    b("u1", json!({"type": 1, "text": "Check the disk"}));
    b(
        "a1",
        json!({"type": 2, "timingInfo": {"clientStartTime": 10_565.8,
                                         "clientRpcSendTime": T0 + 10_000,
                                         "clientSettleTime": T0 + 14_000,
                                         "clientEndTime": T0 + 15_000},
               "toolFormerData": {"name": "run_terminal_cmd", "toolCallId": "call_d",
                                  "status": "completed", "rawArgs": "{\"command\":\"df\"}"}}),
    );
    b("a2", json!({"type": 2, "text": "The disk is fine."}));
    b("u2", json!({"type": 1, "text": "And memory?"}));
    b(
        "a3",
        json!({"type": 2, "text": "Memory is fine.",
               "timingInfo": {"clientStartTime": T0 + 20_000, "clientSettleTime": T0 + 24_000,
                              "clientEndTime": T0 + 23_000}}),
    );
    drop(g);
    let got = poll_tree(&tree);
    let want = json!({
        "sourceProvider": "cursor", "sourceSessionId": "c-old",
        "session": {"createdAtMs": T0, "updatedAtMs": T0 + 24_000},
        "turns": [
            {"sourceTurnId": "u1", "startedAtMs": T0 + 10_000, "completedAtMs": T0 + 15_000,
             "responseMessageSourceId": "a2", "queryMessageSourceIds": ["u1"]},
            {"sourceTurnId": "u2", "parentSourceTurnId": "u1", "startedAtMs": T0 + 20_000,
             "completedAtMs": T0 + 24_000, "responseMessageSourceId": "a3",
             "queryMessageSourceIds": ["u2"]}
        ],
        "messages": [
            msg("u1", "u1", "user", Some("Check the disk"), 0, T0 + 10_000),
            msg("a1", "u1", "assistant", None, 1, T0 + 10_000),
            msg("a2", "u1", "assistant", Some("The disk is fine."), 2, T0 + 10_000),
            msg("u2", "u2", "user", Some("And memory?"), 3, T0 + 20_000),
            msg("a3", "u2", "assistant", Some("Memory is fine."), 4, T0 + 20_000)
        ],
        "toolCalls": [
            {"sourceToolCallId": "call_d", "sourceTurnId": "u1", "sourceMessageId": "a1",
             "toolName": "run_terminal_cmd", "paramsJson": {"command": "df"},
             "status": "completed", "startedAtMs": T0 + 10_000, "sequence": 1}
        ]
    });
    assert_eq!(got, vec![(vec![want], vec![])]);
}

/// Cursor 1.1: deleted composers and bubbles leave rows whose value is NULL. Each is counted
/// once as `deleted_row`: a deleted composer is not also an empty session, a deleted bubble its
/// composer still lists is not also missing; a value that is not text stays `bubble_not_text`.
#[test]
fn cursor_null_rows_are_deleted_rows_counted_once() {
    let tree = UserTree::new();
    let g = tree.db(&tree.global(), true);
    put_null(&g, "composerData:c-gone");
    put(
        &g,
        "composerData:c-kept",
        &json!({"composerId": "c-kept", "createdAt": T0,
                "fullConversationHeadersOnly": headers(&["k1", "k7", "k2"])}),
    );
    bubble(
        &g,
        "c-kept",
        "k1",
        json!({"type": 1, "text": "Ping", "createdAt": T0 + 1_000}),
    );
    bubble(
        &g,
        "c-kept",
        "k2",
        json!({"type": 2, "text": "Pong", "createdAt": T0 + 2_000}),
    );
    put_null(&g, "bubbleId:c-kept:k7");
    put_null(&g, "bubbleId:c-kept:k9");
    g.execute(
        "INSERT INTO cursorDiskKV (key, value) VALUES ('bubbleId:c-kept:k8', 5)",
        [],
    )
    .unwrap();
    drop(g);
    let got = poll_tree(&tree);
    let kept = json!({
        "sourceProvider": "cursor", "sourceSessionId": "c-kept",
        "session": {"createdAtMs": T0, "updatedAtMs": T0 + 2_000},
        "turns": [
            {"sourceTurnId": "k1", "startedAtMs": T0 + 1_000, "completedAtMs": T0 + 2_000,
             "responseMessageSourceId": "k2", "queryMessageSourceIds": ["k1"]}
        ],
        "messages": [
            msg("k1", "k1", "user", Some("Ping"), 0, T0 + 1_000),
            msg("k2", "k1", "assistant", Some("Pong"), 1, T0 + 2_000)
        ]
    });
    assert_eq!(
        got,
        vec![(
            vec![kept],
            skips(&[("bubble_not_text", 1), ("deleted_row", 3)])
        )]
    );
}
