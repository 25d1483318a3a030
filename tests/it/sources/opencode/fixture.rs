//! OpenCode data directories built by the tests: `opencode.db` with the documented schema (and
//! one with drifted column names), JSON values as OpenCode writes them, and a legacy
//! `storage/` tree of pretty-printed JSON files.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use serde_json::{Value, json};

pub const T0: i64 = 1_772_000_000_000; // 2026-02-25T06:13:20Z

/// `T0` plus `s` seconds.
pub fn t(s: i64) -> i64 {
    T0 + s * 1000
}

/// The schema of OpenCode ≥ 1.2 (`session`, `message`, `part`, plus tables we never read).
pub const SCHEMA: &str = "
    PRAGMA journal_mode=WAL;
    PRAGMA synchronous=OFF;
    CREATE TABLE project (id TEXT PRIMARY KEY, worktree TEXT NOT NULL, vcs TEXT,
        time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL);
    CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, parent_id TEXT,
        slug TEXT, directory TEXT NOT NULL, title TEXT NOT NULL, version TEXT NOT NULL,
        share_url TEXT, summary_diffs TEXT, revert TEXT, permission TEXT,
        time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL,
        time_compacting INTEGER, time_archived INTEGER);
    CREATE INDEX session_project_idx ON session (project_id);
    CREATE INDEX session_parent_idx ON session (parent_id);
    CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT NOT NULL,
        time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL, data TEXT NOT NULL);
    CREATE INDEX message_session_idx ON message (session_id);
    CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT NOT NULL, session_id TEXT NOT NULL,
        time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL, data TEXT NOT NULL);
    CREATE INDEX part_message_idx ON part (message_id);
    CREATE INDEX part_session_idx ON part (session_id);
    CREATE TABLE todo (session_id TEXT NOT NULL, content TEXT NOT NULL, status TEXT NOT NULL,
        priority TEXT NOT NULL, position INTEGER NOT NULL);
";

/// An older spelling: camelCase keys, `*_at` times, session fields in a `data` JSON, parts
/// without a session column.
pub const DRIFTED_SCHEMA: &str = "
    CREATE TABLE session (id TEXT PRIMARY KEY, projectID TEXT, parentID TEXT,
        created_at INTEGER, updated_at INTEGER, data TEXT);
    CREATE TABLE message (id TEXT PRIMARY KEY, sessionID TEXT, created_at INTEGER,
        updated_at INTEGER, data TEXT);
    CREATE TABLE part (id TEXT PRIMARY KEY, messageID TEXT, created_at INTEGER,
        updated_at INTEGER, data TEXT);
";

/// A writer on an OpenCode database, as the agent holds it.
pub struct Writer {
    pub conn: Connection,
}

impl Writer {
    pub fn create(path: &Path, schema: &str) -> Self {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(schema).unwrap();
        Self { conn }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn session(
        &self,
        id: &str,
        parent: Option<&str>,
        slug: Option<&str>,
        title: &str,
        created: i64,
        updated: i64,
    ) {
        self.conn
            .execute(
                "INSERT INTO session (id, project_id, parent_id, slug, directory, title, version,
                    time_created, time_updated) VALUES (?1, 'prj1', ?2, ?3, '/work/oc', ?4,
                    '1.2.3', ?5, ?6)",
                params![id, parent, slug, title, created, updated],
            )
            .unwrap();
    }

    /// A message row; `data` is stored as its compact JSON text (or as given when a string).
    pub fn message(&self, session: &str, id: &str, created: i64, data: &Value) {
        self.conn
            .execute(
                "INSERT INTO message (id, session_id, time_created, time_updated, data)
                 VALUES (?1, ?2, ?3, ?3, ?4)",
                params![id, session, created, text(data)],
            )
            .unwrap();
    }

    pub fn part(&self, session: &str, message: &str, id: &str, created: i64, data: &Value) {
        self.conn
            .execute(
                "INSERT INTO part (id, message_id, session_id, time_created, time_updated, data)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                params![id, message, session, created, text(data)],
            )
            .unwrap();
    }
}

/// A JSON value as stored: a string value is stored verbatim (to store malformed JSON).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn text_part(s: &str) -> Value {
    json!({"type": "text", "text": s})
}

pub fn user(created: i64, agent: &str, provider: &str, model: &str) -> Value {
    json!({"role": "user", "time": {"created": created}, "agent": agent,
           "model": {"providerID": provider, "modelID": model}})
}

/// The `task` part of session A: it spawned `ses_c`.
pub fn task_part(status: &str) -> Value {
    let mut state = json!({
        "status": status,
        "input": {"description": "Check docs", "prompt": "Check the docs for parse().",
                  "subagent_type": "general"},
        "title": "Check docs",
        "metadata": {"sessionId": "ses_c", "summary": [{"id": "prt_c2a", "tool": "read"}]},
        "time": {"start": t(5), "end": t(8)}
    });
    match status {
        "completed" => state["output"] = json!("Docs are fine."),
        _ => state["error"] = json!("aborted by user"),
    }
    json!({"type": "tool", "callID": "call_task", "tool": "task", "state": state})
}

/// The main data directory: sessions A (parent), C (its subagent) and D (also in the JSON
/// tree) in `opencode.db`; the legacy-only session J, its subagent K and a malformed session
/// file in `storage/`. Returns the writer, left open like a running agent.
pub fn main_dir(dir: &Path) -> Writer {
    let w = Writer::create(&dir.join("opencode.db"), SCHEMA);
    let sonnet = user(t(1), "build", "anthropic", "claude-sonnet-4");
    w.session(
        "ses_a",
        None,
        Some("calm-river"),
        "Fix the parser",
        t(0),
        t(30),
    );
    w.message("ses_a", "msg_a1", t(1), &sonnet);
    w.part(
        "ses_a",
        "msg_a1",
        "prt_a1a",
        t(1),
        &text_part("Fix the parser bug."),
    );
    w.part(
        "ses_a",
        "msg_a1",
        "prt_a1b",
        t(1),
        &json!({"type": "text", "text": "Called the Read tool: <file contents>", "synthetic": true}),
    );
    w.part(
        "ses_a",
        "msg_a1",
        "prt_a1c",
        t(1),
        &json!({"type": "file", "mime": "text/plain", "filename": "parse.rs",
                "url": "file:///work/oc/parse.rs"}),
    );
    w.message(
        "ses_a",
        "msg_a2",
        t(2),
        &json!({"role": "assistant", "time": {"created": t(2), "completed": t(9)},
                "parentID": "msg_a1", "modelID": "claude-sonnet-4", "providerID": "anthropic",
                "mode": "build", "agent": "build", "cost": 0.012, "finish": "tool-calls",
                "path": {"cwd": "/work/oc", "root": "/work/oc"},
                "tokens": {"input": 100, "output": 50, "reasoning": 10,
                           "cache": {"read": 1000, "write": 200}}}),
    );
    let usage = json!({"input": 100, "output": 50, "reasoning": 10,
                       "cache": {"read": 1000, "write": 200}});
    for (id, data) in [
        (
            "prt_a2a",
            json!({"type": "step-start", "snapshot": "4b825dc6"}),
        ),
        (
            "prt_a2b",
            json!({"type": "reasoning", "text": "Look at parse() first.", "time": {"start": t(2)}}),
        ),
        (
            "prt_a2c",
            json!({"type": "tool", "callID": "call_read", "tool": "read",
                   "state": {"status": "completed", "input": {"filePath": "/work/oc/parse.rs"},
                             "output": "fn parse() {}", "title": "parse.rs", "metadata": {},
                             "time": {"start": t(3), "end": t(4)}}}),
        ),
        ("prt_a2d", task_part("completed")),
        ("prt_a2e", text_part("Fixed; docs checked.")),
        (
            "prt_a2f",
            json!({"type": "step-finish", "reason": "tool-calls", "cost": 0.012, "tokens": usage}),
        ),
        ("prt_a2g", json!({"type": "hologram", "beam": 1})),
    ] {
        w.part("ses_a", "msg_a2", id, t(2), &data);
    }
    w.message(
        "ses_a",
        "msg_a3",
        t(20),
        &user(t(20), "build", "anthropic", "claude-sonnet-4"),
    );
    w.part(
        "ses_a",
        "msg_a3",
        "prt_a3a",
        t(20),
        &text_part("Now run the tests."),
    );
    w.message(
        "ses_a",
        "msg_a4",
        t(21),
        &json!({"role": "assistant", "time": {"created": t(21), "completed": t(25)},
                "parentID": "msg_a3", "modelID": "claude-opus-4", "providerID": "anthropic",
                "cost": 0.03, "finish": "stop",
                "tokens": {"input": 300, "output": 20, "reasoning": 0,
                           "cache": {"read": 2000, "write": 0}}}),
    );
    w.part(
        "ses_a",
        "msg_a4",
        "prt_a4a",
        t(22),
        &json!({"type": "tool", "callID": "call_bash", "tool": "bash",
                "state": {"status": "error", "input": {"command": "cargo test"},
                          "error": "exit status 101", "time": {"start": t(22), "end": t(23)}}}),
    );
    w.part(
        "ses_a",
        "msg_a4",
        "prt_a4b",
        t(24),
        &text_part("One test fails."),
    );
    w.part(
        "ses_a",
        "msg_a4",
        "prt_a4c",
        t(24),
        &json!("{\"type\":\"text\",\"text\":"),
    );
    w.message("ses_a", "msg_a5", t(26), &json!("not json at all"));
    w.part(
        "ses_a",
        "msg_a5",
        "prt_a5a",
        t(26),
        &text_part("lost with its message"),
    );

    w.session(
        "ses_c",
        Some("ses_a"),
        Some("brave-owl"),
        "Check docs (@general subagent)",
        t(5),
        t(8),
    );
    w.message(
        "ses_c",
        "msg_c1",
        t(5),
        &user(t(5), "general", "openai", "gpt-5"),
    );
    w.part(
        "ses_c",
        "msg_c1",
        "prt_c1a",
        t(5),
        &text_part("Check the docs for parse()."),
    );
    w.message(
        "ses_c",
        "msg_c2",
        t(6),
        &json!({"role": "assistant", "time": {"created": t(6), "completed": t(7)},
                "parentID": "msg_c1", "modelID": "gpt-5", "providerID": "openai",
                "tokens": {"input": 40, "output": 8, "reasoning": 0,
                           "cache": {"read": 0, "write": 0}}}),
    );
    w.part(
        "ses_c",
        "msg_c2",
        "prt_c2a",
        t(6),
        &text_part("Docs are fine."),
    );

    w.session("ses_d", None, None, "Both places", t(40), t(45));
    w.message(
        "ses_d",
        "msg_d1",
        t(41),
        &json!({"role": "user", "time": {"created": t(41)}}),
    );
    w.part(
        "ses_d",
        "msg_d1",
        "prt_d1a",
        t(41),
        &text_part("Which one wins?"),
    );
    w.message(
        "ses_d",
        "msg_d2",
        t(42),
        &json!({"role": "assistant", "time": {"created": t(42), "completed": t(43)},
                "parentID": "msg_d1"}),
    );
    w.part(
        "ses_d",
        "msg_d2",
        "prt_d2a",
        t(42),
        &text_part("The database."),
    );

    legacy_tree(&dir.join("storage"));
    w
}

/// Writes `value` pretty-printed (as OpenCode did) at `storage/<rel>`.
pub fn write_json(storage: &Path, rel: &str, value: &Value) -> PathBuf {
    let path = storage.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = match value {
        Value::String(s) => s.clone().into_bytes(),
        v => serde_json::to_vec_pretty(v).unwrap(),
    };
    std::fs::write(&path, bytes).unwrap();
    path
}

fn legacy_tree(storage: &Path) {
    write_json(
        storage,
        "session/prj1/ses_j.json",
        &json!({"id": "ses_j", "version": "1.1.10", "projectID": "prj1",
                "directory": "/work/legacy", "title": "Legacy chat",
                "time": {"created": t(-100), "updated": t(-90)}}),
    );
    write_json(
        storage,
        "message/ses_j/msg_j1.json",
        &json!({"id": "msg_j1", "sessionID": "ses_j", "role": "user",
                "time": {"created": t(-99)}}),
    );
    write_json(
        storage,
        "message/ses_j/msg_j2.json",
        &json!({"id": "msg_j2", "sessionID": "ses_j", "role": "assistant", "parentID": "msg_j1",
                "time": {"created": t(-98), "completed": t(-95)},
                "modelID": "claude-3-5-sonnet", "providerID": "anthropic", "cost": 0,
                "tokens": {"input": 12, "output": 34, "reasoning": 0,
                           "cache": {"read": 5, "write": 6}}}),
    );
    let part = |id: &str, msg: &str, body: Value| {
        let mut v = json!({"id": id, "sessionID": "ses_j", "messageID": msg});
        for (k, val) in body.as_object().unwrap() {
            v[k] = val.clone();
        }
        write_json(storage, &format!("part/{msg}/{id}.json"), &v);
    };
    part("prt_j1a", "msg_j1", text_part("Hello legacy"));
    part(
        "prt_j2a",
        "msg_j2",
        json!({"type": "reasoning", "text": "Searching."}),
    );
    part(
        "prt_j2b",
        "msg_j2",
        json!({"type": "tool", "callID": "call_glob", "tool": "glob",
               "state": {"status": "completed", "input": {"pattern": "*.rs"},
                         "output": "a.rs\nb.rs\nc.rs", "title": "*.rs",
                         "time": {"start": t(-97), "end": t(-96)}}}),
    );
    part("prt_j2c", "msg_j2", text_part("Found 3 files."));
    write_json(storage, "part/msg_j2/prt_j2d.json", &json!("{{{"));
    part(
        "prt_j2f",
        "msg_j2",
        json!({"type": "tool", "callID": "call_jtask", "tool": "task",
               "state": {"status": "completed", "input": {"description": "Find files"},
                         "output": "3 files.", "metadata": {"sessionId": "ses_k"},
                         "time": {"start": t(-97), "end": t(-96)}}}),
    );
    // K: a legacy subagent of J.
    write_json(
        storage,
        "session/prj1/ses_k.json",
        &json!({"id": "ses_k", "parentID": "ses_j", "version": "1.1.10", "projectID": "prj1",
                "directory": "/work/legacy", "title": "Legacy helper",
                "time": {"created": t(-97), "updated": t(-96)}}),
    );
    write_json(
        storage,
        "message/ses_k/msg_k1.json",
        &json!({"id": "msg_k1", "sessionID": "ses_k", "role": "user",
                "time": {"created": t(-97)}}),
    );
    write_json(
        storage,
        "message/ses_k/msg_k2.json",
        &json!({"id": "msg_k2", "sessionID": "ses_k", "role": "assistant",
                "time": {"created": t(-96)}}),
    );
    write_json(
        storage,
        "part/msg_k1/prt_k1a.json",
        &text_part("Glob for rust files."),
    );
    write_json(storage, "part/msg_k2/prt_k2a.json", &text_part("3 files."));
    write_json(storage, "session/prj1/ses_broken.json", &json!("{\"id\": "));
    // Session D as it was before the migration: the database copy wins.
    write_json(
        storage,
        "session/prj1/ses_d.json",
        &json!({"id": "ses_d", "version": "1.1.10", "projectID": "prj1",
                "directory": "/work/oc", "title": "Stale JSON copy",
                "time": {"created": t(40), "updated": t(44)}}),
    );
    write_json(
        storage,
        "message/ses_d/msg_dj.json",
        &json!({"id": "msg_dj", "sessionID": "ses_d", "role": "user",
                "time": {"created": t(40)}}),
    );
    write_json(
        storage,
        "part/msg_dj/prt_dj.json",
        &text_part("only in JSON"),
    );
}
