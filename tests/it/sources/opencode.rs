//! OpenCode: `opencode.db` (documented and drifted schemas) and the legacy `storage/` tree as
//! exact items; lineage from `task` parts; polls with cursors read only changed sessions and
//! converge on one full poll in the ledger; the agent's files are never written. `variants`:
//! the real-world variants (0.5.x per-project trees, channel databases, step-finish usage,
//! errored messages) in one data directory.

mod bad_values;
mod expected;
pub(crate) mod fixture;
mod real;
mod variants;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use nex::aix::sources::store::store_cursor_key;
use nex::aix::sources::{OpenCodeStore, SessionStore, SessionUpdate, StoreCursor, poll_all};
use serde_json::{Value, json};

use self::expected::{expected_a, expected_c, expected_d, expected_j, expected_k};
use self::fixture::{DRIFTED_SCHEMA, Writer, t, task_part, text, text_part, write_json};
use crate::e2e_support::{canonical, first_difference};
use crate::import_support::{import_req, ledger, run_import};

/// The item as JSON with its fingerprint checked (64 hex) and blanked.
fn item_json(u: &SessionUpdate) -> Value {
    assert_eq!(u.items.len(), 1, "one item per session");
    let mut v = serde_json::to_value(&u.items[0]).unwrap();
    let fp = v["sourceSessionFingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fp.len(), 64);
    assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        u.cursor.fingerprint, fp,
        "the cursor holds the item's fingerprint"
    );
    assert_eq!(u.items[0].source_session_id, u.session_id);
    v["sourceSessionFingerprint"] = json!("<fp>");
    v
}

fn ids(updates: &[SessionUpdate]) -> Vec<&str> {
    updates.iter().map(|u| u.session_id.as_str()).collect()
}

fn poll(
    store: &mut OpenCodeStore,
    cursors: &HashMap<String, StoreCursor>,
) -> (Vec<SessionUpdate>, nex::aix::sources::StorePoll) {
    poll_all(store, cursors, false).expect("poll")
}

/// Every file under `dir` (path -> bytes) but SQLite's shared-memory index, which a reader of
/// a live WAL database takes its read lock in.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = Vec::new();
    crate::e2e_support::files_under(dir, &mut files);
    files
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with("-shm"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    crate::e2e_support::files_under(dir, &mut files);
    let mut out: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    out.sort();
    out
}

fn skipped(store: &OpenCodeStore) -> Vec<(String, u64)> {
    store
        .stats()
        .skipped_records
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// One poll of the closed agent's data: database sessions, the legacy-only session, the
/// subagent with its spawn link, the session in both places imported once from the database,
/// malformed values and unknown parts skipped and counted.
#[test]
fn opencode_db_and_legacy_tree_give_exact_items() {
    let dir = tempfile::tempdir().unwrap();
    drop(fixture::main_dir(dir.path()));
    let (before, files) = (snapshot(dir.path()), names(dir.path()));
    let mut store = OpenCodeStore::new(dir.path().to_path_buf());
    let (updates, counts) = poll(&mut store, &HashMap::new());
    assert_eq!(ids(&updates), ["ses_j", "ses_k", "ses_a", "ses_c", "ses_d"]);
    assert_eq!((counts.emitted, counts.unchanged, counts.failed), (5, 0, 0));
    assert_eq!(item_json(&updates[0]), expected_j("Found 3 files."));
    assert_eq!(item_json(&updates[1]), expected_k());
    assert_eq!(item_json(&updates[2]), expected_a("completed"));
    assert_eq!(item_json(&updates[3]), expected_c("completed"));
    assert_eq!(item_json(&updates[4]), expected_d());
    // msg_a5's data, prt_a4c, prt_j2d and ses_broken.json.
    assert_eq!(store.stats().malformed_lines, 4);
    assert_eq!(
        skipped(&store),
        [
            ("part:file".to_owned(), 1),
            ("part:hologram".to_owned(), 1),
            ("part:step-finish".to_owned(), 1),
            ("part:step-start".to_owned(), 1),
            ("part:text_synthetic".to_owned(), 1),
            ("session:duplicate".to_owned(), 1),
        ]
    );
    for u in &updates {
        assert!(u.cursor.token.starts_with("o1."), "{}", u.cursor.token);
    }
    assert_eq!(
        store_cursor_key(store.provider(), store.location(), "ses_a"),
        format!("opencode:{}#ses_a", dir.path().display())
    );
    // A closed agent's files are read through `immutable=1`: nothing changed, nothing added.
    assert!(
        snapshot(dir.path()) == before,
        "a poll changed the agent's files"
    );
    assert_eq!(names(dir.path()), files, "a poll created or removed a file");
    assert_eq!(
        store.watch_paths(),
        [
            dir.path().join("opencode.db-wal"),
            dir.path().join("opencode.db"),
            dir.path().join("storage"),
            dir.path().join("project"),
        ]
    );
}

/// Drifted column names (`sessionID`, `created_at`, session fields in `data`, parts without a
/// session column), a `sessionID`-spelled task link, a second database whose message table
/// lacks its key column (skipped and counted) and a duplicate session id (first database wins).
#[test]
fn opencode_drifted_schema_and_unusable_tables() {
    let dir = tempfile::tempdir().unwrap();
    let w = Writer::create(&dir.path().join("opencode.db"), DRIFTED_SCHEMA);
    let c = &w.conn;
    let session = |id: &str, parent: Option<&str>, created: i64, data: Value| {
        c.execute(
            "INSERT INTO session VALUES (?1, 'prj2', ?2, ?3, ?4, ?5)",
            rusqlite::params![id, parent, created, created + 10_000, text(&data)],
        )
        .unwrap();
    };
    let message = |sid: &str, id: &str, created: i64, data: Value| {
        c.execute(
            "INSERT INTO message VALUES (?1, ?2, ?3, ?3, ?4)",
            rusqlite::params![id, sid, created, text(&data)],
        )
        .unwrap();
    };
    let part = |mid: &str, id: &str, data: Value| {
        c.execute(
            "INSERT INTO part VALUES (?1, ?2, 0, 0, ?3)",
            rusqlite::params![id, mid, text(&data)],
        )
        .unwrap();
    };
    session(
        "ses_p",
        None,
        t(0),
        json!({"title": "Drifted", "directory": "/work/drift", "version": "1.1.60"}),
    );
    session("ses_q", Some("ses_p"), t(2), json!({"title": "Helper"}));
    message(
        "ses_p",
        "msg_p1",
        t(1),
        json!({"role": "user", "time": {"created": t(1)}}),
    );
    part("msg_p1", "prt_p1", text_part("Spawn a helper."));
    message(
        "ses_p",
        "msg_p2",
        t(2),
        json!({"role": "assistant", "time": {"created": t(2)}, "parentID": "msg_p1"}),
    );
    part(
        "msg_p2",
        "prt_p2a",
        json!({"type": "tool", "callID": "call_t", "tool": "task",
               "state": {"status": "running", "input": {"description": "Helper work"},
                         "metadata": {"sessionID": "ses_q"}, "time": {"start": t(2)}}}),
    );
    part("msg_p2", "prt_p2b", text_part("Started."));
    message("ses_q", "msg_q1", t(2), json!({"role": "user"}));
    part("msg_q1", "prt_q1", text_part("Helper work please."));
    message("ses_q", "msg_q2", t(3), json!({"role": "assistant"}));
    part("msg_q2", "prt_q2", text_part("Done."));
    // A second database: its message table has no `data`; its session `ses_p` is a duplicate.
    let other = rusqlite::Connection::open(dir.path().join("opencode-beta.db")).unwrap();
    other
        .execute_batch(
            "CREATE TABLE session (id TEXT PRIMARY KEY, time_created INTEGER, title TEXT);
             CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT);
             INSERT INTO session VALUES ('ses_p', 1, 'duplicate'), ('ses_b', 2, 'beta');
             INSERT INTO message VALUES ('msg_b1', 'ses_b');",
        )
        .unwrap();
    drop(other);
    let mut store = OpenCodeStore::new(dir.path().to_path_buf());
    let (updates, counts) = poll(&mut store, &HashMap::new());
    assert_eq!(ids(&updates), ["ses_p", "ses_q"]);
    assert_eq!((counts.emitted, counts.unchanged, counts.failed), (2, 0, 0));
    assert_eq!(
        item_json(&updates[0]),
        json!({
            "sourceProvider": "opencode", "sourceSessionId": "ses_p",
            "sourceSessionFingerprint": "<fp>",
            "session": {"createdAtMs": t(0), "updatedAtMs": t(10), "workspacePath": "/work/drift",
                        "metadata": {"title": "Drifted", "version": "1.1.60",
                                     "projectId": "prj2"}},
            "turns": [{"sourceTurnId": "msg_p1", "startedAtMs": t(1), "completedAtMs": t(2),
                       "responseMessageSourceId": "msg_p2",
                       "queryMessageSourceIds": ["msg_p1"]}],
            "messages": [
                {"sourceMessageId": "msg_p1", "sourceTurnId": "msg_p1", "role": "user",
                 "content": "Spawn a helper.", "sequence": 0, "createdAtMs": t(1)},
                {"sourceMessageId": "msg_p2", "sourceTurnId": "msg_p1", "role": "assistant",
                 "content": "Started.", "sequence": 1, "createdAtMs": t(2),
                 "metadataJson": {"parentID": "msg_p1"}}
            ],
            "toolCalls": [
                {"sourceToolCallId": "call_t", "sourceTurnId": "msg_p1",
                 "sourceMessageId": "msg_p2", "toolName": "task",
                 "paramsJson": {"description": "Helper work"}, "status": "running",
                 "spawnedSourceSessionId": "ses_q", "startedAtMs": t(2), "sequence": 0}
            ]
        })
    );
    // No `time` in the message values: the `created_at` column orders and dates them.
    assert_eq!(
        item_json(&updates[1]),
        json!({
            "sourceProvider": "opencode", "sourceSessionId": "ses_q",
            "sourceSessionFingerprint": "<fp>",
            "session": {"createdAtMs": t(2), "updatedAtMs": t(12), "isSubagent": true,
                        "parentSourceSessionId": "ses_p", "spawnToolCallId": "call_t",
                        "taskDescription": "Helper work", "taskStatus": "running",
                        "metadata": {"title": "Helper", "projectId": "prj2"}},
            "turns": [{"sourceTurnId": "msg_q1", "startedAtMs": t(2), "completedAtMs": t(3),
                       "responseMessageSourceId": "msg_q2",
                       "queryMessageSourceIds": ["msg_q1"]}],
            "messages": [
                {"sourceMessageId": "msg_q1", "sourceTurnId": "msg_q1", "role": "user",
                 "content": "Helper work please.", "sequence": 0, "createdAtMs": t(2)},
                {"sourceMessageId": "msg_q2", "sourceTurnId": "msg_q1", "role": "assistant",
                 "content": "Done.", "sequence": 1, "createdAtMs": t(3)}
            ]
        })
    );
    assert_eq!(
        skipped(&store),
        [
            ("session:duplicate".to_owned(), 1),
            ("session:no_turns".to_owned(), 1),
            ("table:message_unusable".to_owned(), 1),
        ]
    );
}

type Cursors = HashMap<String, StoreCursor>;

fn remember(cursors: &mut Cursors, updates: &[SessionUpdate]) {
    for u in updates {
        cursors.insert(u.session_id.clone(), u.cursor.clone());
    }
}

fn import(conn: &mut rusqlite::Connection, key: &str, updates: &[SessionUpdate]) {
    let items: Vec<Value> = updates
        .iter()
        .flat_map(|u| &u.items)
        .map(|i| serde_json::to_value(i).unwrap())
        .collect();
    let resp = run_import(conn, import_req(key, "tail", items)).expect("import");
    assert_eq!(resp.failed, 0, "{resp:?}");
}

/// A poll that must leave the agent's files as they are: same bytes, no new file (the live
/// `-shm` aside).
fn poll_read_only(
    store: &mut OpenCodeStore,
    cursors: &Cursors,
    dir: &Path,
) -> (Vec<SessionUpdate>, nex::aix::sources::StorePoll) {
    let (bytes, files) = (snapshot(dir), names(dir));
    let out = poll(store, cursors);
    assert_eq!(names(dir), files, "a poll created or removed a file");
    assert!(snapshot(dir) == bytes, "a poll changed the agent's files");
    out
}

/// A running agent adds rows and files, then rewrites a task part in place: each poll with the
/// previous cursors returns exactly the changed sessions (a child again when its parent's link
/// changed), an idle poll reads nothing, and the ledger after the polls equals the ledger of
/// one full poll of the final state.
#[test]
fn opencode_polls_return_changed_sessions_and_converge_on_a_full_poll() {
    let dir = tempfile::tempdir().unwrap();
    let w = fixture::main_dir(dir.path());
    assert!(
        dir.path().join("opencode.db-wal").exists(),
        "the agent is running"
    );
    let mut store = OpenCodeStore::new(dir.path().to_path_buf());
    let mut cursors = Cursors::new();
    let mut ledger_inc = ledger();

    let (first, _) = poll_read_only(&mut store, &cursors, dir.path());
    assert_eq!(ids(&first), ["ses_j", "ses_k", "ses_a", "ses_c", "ses_d"]);
    remember(&mut cursors, &first);
    import(&mut ledger_inc, "oc-1", &first);
    let stamp = store.stamp().unwrap();
    assert_eq!(
        store.stamp().unwrap(),
        stamp,
        "the stamp is stable while nothing changes"
    );

    // A new message in the subagent session; a new part file in the legacy parent J, whose
    // links did not change (its child K is not read).
    w.message(
        "ses_c",
        "msg_c3",
        t(9),
        &fixture::user(t(9), "general", "openai", "gpt-5"),
    );
    w.part(
        "ses_c",
        "msg_c3",
        "prt_c3a",
        t(9),
        &text_part("Also check README."),
    );
    write_json(
        &dir.path().join("storage"),
        "part/msg_j2/prt_j2e.json",
        &text_part("Done."),
    );
    assert_ne!(store.stamp().unwrap(), stamp, "the WAL moved the stamp");
    let (second, counts) = poll_read_only(&mut store, &cursors, dir.path());
    assert_eq!(ids(&second), ["ses_j", "ses_c"]);
    assert_eq!((counts.emitted, counts.unchanged), (2, 3));
    assert_eq!(item_json(&second[0]), expected_j("Found 3 files.\nDone."));
    let c = item_json(&second[1]);
    let mut c_session = expected_c("completed")["session"].clone();
    c_session["updatedAtMs"] = json!(t(9));
    assert_eq!(
        c["session"], c_session,
        "the link comes from the unread parent's task part"
    );
    assert_eq!(c["turns"][1]["sourceTurnId"], "msg_c3");
    assert_eq!(c["turns"][1]["parentSourceTurnId"], "msg_c1");
    assert_eq!(c["messages"][2]["content"], "Also check README.");
    remember(&mut cursors, &second);
    import(&mut ledger_inc, "oc-2", &second);

    // The task part is rewritten in place (its time column untouched): the parent changes, and
    // so does the link its child carries. The legacy child K gets a message: its unchanged
    // parent J is read for its task parts only, and K keeps its link.
    write_json(
        &dir.path().join("storage"),
        "message/ses_k/msg_k3.json",
        &json!({"id": "msg_k3", "sessionID": "ses_k", "role": "user",
                "time": {"created": t(-95)}}),
    );
    w.conn
        .execute(
            "UPDATE part SET data = ?1 WHERE id = 'prt_a2d'",
            [text(&task_part("error"))],
        )
        .unwrap();
    let (third, counts) = poll_read_only(&mut store, &cursors, dir.path());
    assert_eq!(ids(&third), ["ses_k", "ses_a", "ses_c"]);
    assert_eq!((counts.emitted, counts.unchanged), (3, 2));
    let k = item_json(&third[0]);
    let mut k_session = expected_k()["session"].clone();
    k_session["updatedAtMs"] = json!(t(-95));
    assert_eq!(
        k["session"], k_session,
        "the link comes from the unread parent's task part"
    );
    assert_eq!(k["turns"][1]["sourceTurnId"], "msg_k3");
    assert_eq!(item_json(&third[1]), expected_a("failed"));
    assert_eq!(item_json(&third[2])["session"]["taskStatus"], "failed");
    assert_ne!(third[2].cursor.fingerprint, second[1].cursor.fingerprint);
    remember(&mut cursors, &third);
    import(&mut ledger_inc, "oc-3", &third);

    // Nothing changed: nothing is read (a re-read would count the malformed values again).
    let malformed = store.stats().malformed_lines;
    let (idle, counts) = poll_read_only(&mut store, &cursors, dir.path());
    assert!(idle.is_empty());
    assert_eq!((counts.emitted, counts.unchanged, counts.failed), (0, 5, 0));
    assert_eq!(store.stats().malformed_lines, malformed);

    // One full poll of the final state, by a fresh store, into a fresh ledger.
    let mut fresh = OpenCodeStore::new(dir.path().to_path_buf());
    let (all, _) = poll_all(&mut fresh, &cursors, true).unwrap();
    assert_eq!(ids(&all), ["ses_j", "ses_k", "ses_a", "ses_c", "ses_d"]);
    for u in &all {
        assert_eq!(
            Some(&u.cursor),
            cursors.get(&u.session_id),
            "{}",
            u.session_id
        );
    }
    let mut ledger_full = ledger();
    import(&mut ledger_full, "oc-full", &all);
    let (inc, full) = (canonical(&ledger_inc), canonical(&ledger_full));
    assert!(inc == full, "{}", first_difference(&inc, &full));
    let spawn: Option<String> = ledger_full
        .query_row(
            "SELECT spawn_tool_call_id FROM sessions WHERE is_subagent = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        spawn.is_some(),
        "the child session row names its spawning tool call"
    );
    drop(w);
}
