//! OpenCode variants seen in real data directories (SOURCES.md "Real-world variants"), built
//! here with the real layouts and our own text: one data directory holding a 0.5.x per-project
//! tree, the 1.x `storage/` tree, `opencode.db` and a channel-suffixed `opencode-stable.db`,
//! each session imported once; tokens from assistant messages, never again from the
//! `step-finish` parts that repeat them; an errored assistant message with zero tokens, no
//! parts and no completion time. Exact items per variant, and polls after each of several
//! writes give the ledger of one poll of the final directory.

use std::path::Path;

use serde_json::{Value, json};

use super::fixture::{SCHEMA, Writer, t, text_part, write_json};
use super::{Cursors, import, poll, remember};
use crate::e2e_support::canonical;
use crate::import_support::ledger;
use crate::sources::{o, s, tools, turns};
use nex::aix::sources::{OpenCodeStore, SessionStore, SessionUpdate};

const OLD_TREE: &str = "project/-home-dev-shop/storage";

fn assistant(created: i64, completed: Option<i64>, tokens: [i64; 5]) -> Value {
    let [input, output, reasoning, read, write] = tokens;
    let mut v = json!({"role": "assistant", "time": {"created": created},
        "modelID": "claude-sonnet-4", "providerID": "anthropic", "cost": 0.01,
        "tokens": {"input": input, "output": output, "reasoning": reasoning,
                   "cache": {"read": read, "write": write}}});
    if let Some(c) = completed {
        v["time"]["completed"] = json!(c);
    }
    v
}

/// The `step-finish` part OpenCode writes after a step: the same usage as its message.
fn step_finish(tokens: [i64; 5]) -> Value {
    let [input, output, reasoning, read, write] = tokens;
    json!({"type": "step-finish", "reason": "stop", "cost": 0.01,
           "tokens": {"input": input, "output": output, "reasoning": reasoning,
                      "cache": {"read": read, "write": write}}})
}

fn bash_part(call: &str, start: i64, end: i64) -> Value {
    json!({"type": "tool", "callID": call, "tool": "bash",
           "state": {"status": "completed", "input": {"command": "cargo test"},
                     "output": "ok", "title": "cargo test",
                     "time": {"start": start, "end": end}}})
}

/// An assistant message that failed before any output: an error, zero tokens, no completion
/// time (it is given no part).
fn errored(created: i64) -> Value {
    let mut v = assistant(created, None, [0; 5]);
    v["error"] = json!({"name": "APIError", "data": {"message": "Overloaded", "statusCode": 529}});
    v
}

/// A session file, message file or part file of a 0.5.x per-project tree.
fn old_json(dir: &Path, rel: &str, value: &Value) {
    write_json(&dir.join(OLD_TREE), rel, value);
}

/// Stage 1 of the directory: every store present, each with its first session.
fn stage_one(dir: &Path) -> (Writer, Writer) {
    let main = Writer::create(&dir.join("opencode.db"), SCHEMA);
    main.session("ses_db", None, None, "Run the tests", t(0), t(10));
    main.message(
        "ses_db",
        "msg_d1",
        t(1),
        &super::fixture::user(t(1), "build", "anthropic", "claude-sonnet-4"),
    );
    main.part(
        "ses_db",
        "msg_d1",
        "prt_d1a",
        t(1),
        &text_part("Run the tests."),
    );
    main.session("ses_both", None, None, "Current copy", t(20), t(21));
    main.message(
        "ses_both",
        "msg_b1",
        t(20),
        &super::fixture::user(t(20), "build", "anthropic", "claude-sonnet-4"),
    );
    main.part(
        "ses_both",
        "msg_b1",
        "prt_b1a",
        t(20),
        &text_part("Which copy?"),
    );

    let stable = Writer::create(&dir.join("opencode-stable.db"), SCHEMA);
    stable.session("ses_st", None, None, "Stable channel", t(30), t(31));
    stable.message(
        "ses_st",
        "msg_s1",
        t(30),
        &super::fixture::user(t(30), "build", "anthropic", "claude-sonnet-4"),
    );
    stable.part(
        "ses_st",
        "msg_s1",
        "prt_s1a",
        t(30),
        &text_part("Hello stable."),
    );
    // The same session as `opencode.db` holds: the main database's copy is the one imported.
    stable.session("ses_both", None, None, "Stale copy", t(20), t(22));
    stable.message(
        "ses_both",
        "msg_bx",
        t(22),
        &super::fixture::user(t(22), "build", "anthropic", "claude-sonnet-4"),
    );

    let storage = dir.join("storage");
    write_json(
        &storage,
        "session/prj1/ses_mig.json",
        &json!({"id": "ses_mig", "version": "1.0.4", "projectID": "prj1",
                "directory": "/home/dev/shop", "title": "Migrated",
                "time": {"created": t(-50), "updated": t(-40)}}),
    );
    write_json(
        &storage,
        "message/ses_mig/msg_m1.json",
        &json!({"id": "msg_m1", "sessionID": "ses_mig", "role": "user",
                "time": {"created": t(-50)}}),
    );
    write_json(
        &storage,
        "part/msg_m1/prt_m1a.json",
        &text_part("New layout."),
    );

    old_json(
        dir,
        "session/info/ses_old.json",
        &json!({"id": "ses_old", "version": "0.5.29", "title": "Old layout",
                "time": {"created": t(-100), "updated": t(-90)}}),
    );
    old_json(
        dir,
        "session/message/ses_old/msg_o1.json",
        &json!({"id": "msg_o1", "sessionID": "ses_old", "role": "user",
                "time": {"created": t(-100)}}),
    );
    old_json(
        dir,
        "session/part/ses_old/msg_o1/prt_o1a.json",
        &json!({"id": "prt_o1a", "sessionID": "ses_old", "messageID": "msg_o1",
                "type": "text", "text": "List the files."}),
    );
    // The 0.5.x copy of a session the later tree also holds: `storage/` wins.
    old_json(
        dir,
        "session/info/ses_mig.json",
        &json!({"id": "ses_mig", "version": "0.5.29", "title": "Before migration",
                "time": {"created": t(-50), "updated": t(-45)}}),
    );
    old_json(
        dir,
        "session/message/ses_mig/msg_mx.json",
        &json!({"id": "msg_mx", "sessionID": "ses_mig", "role": "user",
                "time": {"created": t(-49)}}),
    );
    (main, stable)
}

/// Stage 2: the agents answer (tool work, a step-finish repeating the message's tokens).
fn stage_two(dir: &Path, main: &Writer) {
    let usage = [100, 20, 5, 50, 10];
    let mut d2 = assistant(t(2), None, usage);
    d2["parentID"] = json!("msg_d1");
    main.message("ses_db", "msg_d2", t(2), &d2);
    main.part(
        "ses_db",
        "msg_d2",
        "prt_d2a",
        t(2),
        &json!({"type": "step-start"}),
    );
    main.part(
        "ses_db",
        "msg_d2",
        "prt_d2b",
        t(3),
        &bash_part("call_bash", t(3), t(5)),
    );
    main.part(
        "ses_db",
        "msg_d2",
        "prt_d2c",
        t(5),
        &text_part("Tests pass."),
    );
    main.part("ses_db", "msg_d2", "prt_d2d", t(6), &step_finish(usage));

    old_json(
        dir,
        "session/message/ses_old/msg_o2.json",
        &json!({"id": "msg_o2", "sessionID": "ses_old", "role": "assistant",
                "parentID": "msg_o1", "time": {"created": t(-99), "completed": t(-95)},
                "modelID": "claude-3-5-sonnet", "providerID": "anthropic", "cost": 0.002,
                "system": ["You are opencode."], "mode": "build",
                "path": {"cwd": "/home/dev/shop", "root": "/home/dev/shop"},
                "tokens": {"input": 40, "output": 8, "reasoning": 0,
                           "cache": {"read": 0, "write": 30}}}),
    );
    let part = |id: &str, body: Value| {
        let mut v = json!({"id": id, "sessionID": "ses_old", "messageID": "msg_o2"});
        for (k, val) in body.as_object().unwrap() {
            v[k] = val.clone();
        }
        old_json(dir, &format!("session/part/ses_old/msg_o2/{id}.json"), &v);
    };
    part("prt_o2a", json!({"type": "step-start"}));
    part("prt_o2b", bash_part("call_ls", t(-98), t(-97)));
    part("prt_o2c", text_part("Two files."));
    part("prt_o2d", step_finish([40, 8, 0, 0, 30]));
}

/// Stage 3: the finished step's message gets its completion time; a retry fails at once
/// (error, zero tokens, no parts, no completion time), in both stores.
fn stage_three(dir: &Path, main: &Writer) {
    let mut d2 = assistant(t(2), Some(t(6)), [100, 20, 5, 50, 10]);
    d2["parentID"] = json!("msg_d1");
    main.conn
        .execute(
            "UPDATE message SET data = ?1, time_updated = ?2 WHERE id = 'msg_d2'",
            rusqlite::params![d2.to_string(), t(6)],
        )
        .unwrap();
    let mut d3 = errored(t(7));
    d3["parentID"] = json!("msg_d1");
    main.message("ses_db", "msg_d3", t(7), &d3);
    let mut o3 = errored(t(-94));
    o3["id"] = json!("msg_o3");
    o3["sessionID"] = json!("ses_old");
    old_json(dir, "session/message/ses_old/msg_o3.json", &o3);
}

fn by_id<'a>(updates: &'a [SessionUpdate], id: &str) -> &'a nex::protocol::ImportSessionItem {
    &updates
        .iter()
        .find(|u| u.session_id == id)
        .unwrap_or_else(|| panic!("{id} not emitted"))
        .items[0]
}

#[test]
fn opencode_every_store_of_a_data_directory_is_read_each_session_once() {
    let dir = tempfile::tempdir().unwrap();
    let (main, _stable) = stage_one(dir.path());
    stage_two(dir.path(), &main);
    stage_three(dir.path(), &main);
    let mut store = OpenCodeStore::new(dir.path().to_path_buf());
    let (updates, counts) = poll(&mut store, &Cursors::new());
    let mut ids: Vec<&str> = updates.iter().map(|u| u.session_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["ses_both", "ses_db", "ses_mig", "ses_old", "ses_st"]);
    assert_eq!((counts.emitted, counts.failed), (5, 0));
    // ses_both in the stable database, ses_mig in the 0.5.x tree: each skipped once.
    assert_eq!(
        store.stats().skipped_records.get("session:duplicate"),
        Some(&2)
    );
    let both = by_id(&updates, "ses_both");
    assert_eq!(
        both.session.metadata.as_ref().unwrap()["title"],
        "Current copy"
    );
    assert_eq!(turns(both).len(), 1, "the stale copy's message is not read");
    let mig = by_id(&updates, "ses_mig");
    assert_eq!(
        mig.session.workspace_path.as_deref(),
        Some("/home/dev/shop")
    );
    assert_eq!(
        turns(mig).iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
        [s("msg_m1")]
    );
    assert_eq!(
        turns(by_id(&updates, "ses_st"))[0].7,
        vec![s("msg_s1")],
        "the channel database's session"
    );
    assert!(
        store.watch_paths().contains(&dir.path().join(OLD_TREE)),
        "{:?}",
        store.watch_paths()
    );
}

#[test]
fn opencode_tokens_count_once_and_errored_messages_import_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let (main, _stable) = stage_one(dir.path());
    stage_two(dir.path(), &main);
    stage_three(dir.path(), &main);
    let mut store = OpenCodeStore::new(dir.path().to_path_buf());
    let (updates, _) = poll(&mut store, &Cursors::new());

    // The step-finish part repeats msg_d2's usage: counted once; msg_d3 adds zeros.
    let db = by_id(&updates, "ses_db");
    assert_eq!(
        turns(db),
        vec![(
            s("msg_d1"),
            None,
            t(1),
            Some(t(7)),
            o("claude-sonnet-4"),
            [Some(100), Some(20), Some(50), Some(10), Some(5), Some(185)],
            o("msg_d2"),
            vec![s("msg_d1")]
        )]
    );
    assert_eq!(
        tools(db),
        vec![(
            s("call_bash"),
            s("msg_d1"),
            o("msg_d2"),
            s("bash"),
            s("completed"),
            Some(t(5)),
            None
        )]
    );
    let d3 = db
        .messages
        .iter()
        .find(|m| m.source_message_id == "msg_d3")
        .expect("the errored message is imported");
    assert_eq!(
        (d3.role.as_str(), d3.content.as_deref()),
        ("assistant", None)
    );

    let old = by_id(&updates, "ses_old");
    assert_eq!(old.session.metadata.as_ref().unwrap()["version"], "0.5.29");
    assert_eq!(
        turns(old),
        vec![(
            s("msg_o1"),
            None,
            t(-100),
            Some(t(-94)),
            o("claude-sonnet-4"),
            [Some(40), Some(8), Some(0), Some(30), Some(0), Some(78)],
            o("msg_o2"),
            vec![s("msg_o1")]
        )]
    );
    assert_eq!(
        tools(old),
        vec![(
            s("call_ls"),
            s("msg_o1"),
            o("msg_o2"),
            s("bash"),
            s("completed"),
            Some(t(-97)),
            None
        )]
    );
    assert_eq!(
        old.messages
            .iter()
            .map(|m| (m.source_message_id.as_str(), m.content.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("msg_o1", Some("List the files.")),
            ("msg_o2", Some("Two files.")),
            ("msg_o3", None)
        ]
    );
    assert_eq!(
        store.stats().skipped_records.get("part:step-finish"),
        Some(&2)
    );
}

/// Polls with cursors after each stage of writes give the ledger of one poll of the final
/// directory, every store and tree included.
#[test]
fn opencode_polls_after_several_writes_equal_one_poll_of_the_final_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = OpenCodeStore::new(dir.path().to_path_buf());
    let mut cursors = Cursors::new();
    let mut tailed = ledger();
    let (main, _stable) = stage_one(dir.path());
    let mut step = |store: &mut OpenCodeStore, key: &str| {
        let (updates, _) = poll(store, &cursors);
        if !updates.is_empty() {
            import(&mut tailed, key, &updates);
        }
        remember(&mut cursors, &updates);
        updates.len()
    };
    assert_eq!(step(&mut store, "one"), 5);
    stage_two(dir.path(), &main);
    assert_eq!(step(&mut store, "two"), 2, "ses_db and ses_old changed");
    stage_three(dir.path(), &main);
    assert_eq!(step(&mut store, "three"), 2);
    assert_eq!(step(&mut store, "idle"), 0);

    let mut full = ledger();
    let mut fresh = OpenCodeStore::new(dir.path().to_path_buf());
    let (updates, _) = poll(&mut fresh, &Cursors::new());
    import(&mut full, "full", &updates);
    assert_eq!(canonical(&tailed), canonical(&full));
}

/// A `!command` run from OpenCode's prompt box, as 1.17 writes it: a user message whose only
/// part is the synthetic text "The following tool was executed by the user", and an assistant
/// message without tokens holding the `bash` call. The message is still the prompt of its own
/// turn (the user did it, and the call and its output belong to it), its text the synthetic one;
/// a synthetic part beside text of the user's own stays out of the text. Polled as OpenCode
/// writes it (the user message before its part), the ledger equals one poll of the end.
#[test]
fn opencode_a_shell_command_prompt_takes_its_synthetic_text() {
    const SHELL: &str = "The following tool was executed by the user";
    let dir = tempfile::tempdir().unwrap();
    let mut store = OpenCodeStore::new(dir.path().to_path_buf());
    let mut cursors = Cursors::new();
    let mut tailed = ledger();
    let mut step = |store: &mut OpenCodeStore, key: &str| {
        let (updates, _) = poll(store, &cursors);
        if !updates.is_empty() {
            import(&mut tailed, key, &updates);
        }
        remember(&mut cursors, &updates);
        updates.len()
    };
    let main = Writer::create(&dir.path().join("opencode.db"), SCHEMA);
    let user = |at| super::fixture::user(at, "build", "opencode", "kimi-k2");
    main.session("ses_sh", None, None, "Shell", t(0), t(0));
    main.message("ses_sh", "msg_1", t(1), &user(t(1)));
    main.part(
        "ses_sh",
        "msg_1",
        "prt_1a",
        t(1),
        &text_part("Look around."),
    );
    main.part(
        "ses_sh",
        "msg_1",
        "prt_1b",
        t(1),
        &json!({"type": "text", "text": "Called the Read tool with: notes", "synthetic": true}),
    );
    let mut reply = assistant(t(2), Some(t(3)), [30, 4, 0, 0, 0]);
    reply["parentID"] = json!("msg_1");
    main.message("ses_sh", "msg_2", t(2), &reply);
    main.part(
        "ses_sh",
        "msg_2",
        "prt_2a",
        t(3),
        &text_part("Nothing here."),
    );
    // `!ls`: the user message first, its synthetic part in a later write.
    main.message("ses_sh", "msg_3", t(10), &user(t(10)));
    assert_eq!(step(&mut store, "before"), 1);
    main.part(
        "ses_sh",
        "msg_3",
        "prt_3a",
        t(10),
        &json!({"type": "text", "text": SHELL, "synthetic": true}),
    );
    let mut ran = assistant(t(10), Some(t(11)), [0; 5]);
    ran["parentID"] = json!("msg_3");
    main.message("ses_sh", "msg_4", t(10), &ran);
    main.part(
        "ses_sh",
        "msg_4",
        "prt_4a",
        t(10),
        &bash_part("call_ls", t(10), t(11)),
    );
    assert_eq!(step(&mut store, "after"), 1);
    assert_eq!(step(&mut store, "idle"), 0);

    let mut fresh = OpenCodeStore::new(dir.path().to_path_buf());
    let (updates, _) = poll(&mut fresh, &Cursors::new());
    let item = by_id(&updates, "ses_sh");
    assert_eq!(
        turns(item),
        vec![
            (
                s("msg_1"),
                None,
                t(1),
                Some(t(3)),
                o("claude-sonnet-4"),
                [Some(30), Some(4), Some(0), Some(0), Some(0), Some(34)],
                o("msg_2"),
                vec![s("msg_1")]
            ),
            (
                s("msg_3"),
                o("msg_1"),
                t(10),
                Some(t(11)),
                o("claude-sonnet-4"),
                [Some(0), Some(0), Some(0), Some(0), Some(0), Some(0)],
                None,
                vec![s("msg_3")]
            ),
        ]
    );
    assert_eq!(
        item.messages
            .iter()
            .map(|m| (
                m.source_message_id.as_str(),
                m.role.as_str(),
                m.content.as_deref()
            ))
            .collect::<Vec<_>>(),
        [
            ("msg_1", "user", Some("Look around.")),
            ("msg_2", "assistant", Some("Nothing here.")),
            ("msg_3", "user", Some(SHELL)),
            ("msg_4", "assistant", None),
        ]
    );
    assert_eq!(
        tools(item),
        vec![(
            s("call_ls"),
            s("msg_3"),
            o("msg_4"),
            s("bash"),
            s("completed"),
            Some(t(11)),
            None
        )]
    );
    let mut full = ledger();
    import(&mut full, "full", &updates);
    assert_eq!(canonical(&tailed), canonical(&full));
}
