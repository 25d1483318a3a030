//! All five providers at their default locations under a temp HOME, through the built binaries:
//! `aix scan` lists them all, `nex import backfill --wait` imports them with no flag, and after
//! every source changed in place (new Cursor bubbles, a new OpenCode part, a Gemini message and
//! `$set`, a Claude Code turn) a second backfill from the committed cursors re-imports only the
//! changed sessions and leaves the ledger equal to one backfill of the final state.

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use serde_json::{Value, json};

use crate::e2e_support::{canonical, fixture_files, open};
use crate::worker_stores::LiveCursorDb;

const T0: i64 = 1_760_000_000_000;

/// A HOME holding every provider's data at its default location.
struct Home {
    dir: tempfile::TempDir,
    cursor: LiveCursorDb,
    opencode: Connection,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        for (rel, src) in fixture_files() {
            let dest = if let Ok(r) = rel.strip_prefix("claude") {
                home.join(".claude/projects").join(r)
            } else {
                home.join(".codex/sessions").join(rel.file_name().unwrap())
            };
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(src, dest).unwrap();
        }
        let cursor = LiveCursorDb::at(&home.join(".config/Cursor/User/globalStorage/state.vscdb"));
        cursor.composer("c1", T0, &[("b1", 1, "hello"), ("b2", 2, "hi")]);
        cursor.composer("c2", T0 + 1000, &[("b1", 1, "other"), ("b2", 2, "yes")]);
        // An older workspace database beside it: chat tabs in `ItemTable`.
        let ws = home.join(".config/Cursor/User/workspaceStorage/5e1f/state.vscdb");
        std::fs::create_dir_all(ws.parent().unwrap()).unwrap();
        std::fs::write(
            ws.with_file_name("workspace.json"),
            r#"{"folder": "file:///home/dev/app"}"#,
        )
        .unwrap();
        let tabs = json!({"tabs": [{"tabId": "tab-1", "chatTitle": "Ports", "lastSendTime": T0,
            "bubbles": [{"type": "user", "id": "q1", "text": "which port?"},
                        {"type": "ai", "id": "r1", "rawText": "8080"}]}]});
        Connection::open(&ws)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
                 INSERT INTO ItemTable VALUES ('workbench.panel.aichat.view.aichat.chatdata',
                   '{tabs}');"
            ))
            .unwrap();

        let oc_dir = home.join(".local/share/opencode");
        std::fs::create_dir_all(&oc_dir).unwrap();
        let opencode = Connection::open(oc_dir.join("opencode.db")).unwrap();
        opencode
            .execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT, parent_id TEXT,
                   slug TEXT, directory TEXT, title TEXT, version TEXT,
                   time_created INTEGER, time_updated INTEGER);
                 CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT,
                   time_created INTEGER, time_updated INTEGER, data TEXT);
                 CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT, session_id TEXT,
                   time_created INTEGER, time_updated INTEGER, data TEXT);",
            )
            .unwrap();
        let home_ = Self {
            dir,
            cursor,
            opencode,
        };
        home_.oc_session("ses_a", T0);
        home_.oc_message("ses_a", "msg_1", "user", T0, "fix the bug");
        home_.oc_message("ses_a", "msg_2", "assistant", T0 + 1000, "done");

        let chats = home.join(".gemini/tmp/proj1/chats");
        std::fs::create_dir_all(&chats).unwrap();
        let lines = [
            json!({"sessionId": "g-1", "projectHash": "proj1",
                   "startTime": "2026-01-01T10:00:00Z", "lastUpdated": "2026-01-01T10:00:00Z",
                   "kind": "main"}),
            json!({"id": "u1", "timestamp": "2026-01-01T10:00:00Z", "type": "user",
                   "content": "explain"}),
            json!({"id": "a1", "timestamp": "2026-01-01T10:00:05Z", "type": "gemini",
                   "content": "it reads the config", "model": "gemini-2.5-pro",
                   "tokens": {"input": 10, "output": 5, "cached": 0, "total": 15}}),
        ];
        std::fs::write(home_.gemini_log(), jsonl(&lines)).unwrap();
        home_
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn gemini_log(&self) -> PathBuf {
        self.home()
            .join(".gemini/tmp/proj1/chats/session-2026-01-01T10-00-g1.jsonl")
    }

    fn oc_session(&self, id: &str, at: i64) {
        self.opencode
            .execute(
                "INSERT OR REPLACE INTO session VALUES (?1, 'prj', NULL, 's', '/work/oc', 'a task',
                 '1.2.3', ?2, ?2)",
                (id, at),
            )
            .unwrap();
    }

    fn oc_message(&self, session: &str, id: &str, role: &str, at: i64, text: &str) {
        let data = json!({"role": role, "time": {"created": at, "completed": at + 500},
            "modelID": "claude-sonnet-4", "providerID": "anthropic",
            "tokens": {"input": 20, "output": 4, "reasoning": 0, "cache": {"read": 0, "write": 0}}});
        self.opencode
            .execute(
                "INSERT INTO message VALUES (?1, ?2, ?3, ?3, ?4)",
                (id, session, at, data.to_string()),
            )
            .unwrap();
        self.oc_part(
            session,
            id,
            &format!("prt_{id}"),
            at,
            json!({"type": "text", "text": text}),
        );
        self.opencode
            .execute(
                "UPDATE session SET time_updated = ?2 WHERE id = ?1",
                (session, at),
            )
            .unwrap();
    }

    fn oc_part(&self, session: &str, message: &str, id: &str, at: i64, data: Value) {
        self.opencode
            .execute(
                "INSERT INTO part VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                (id, message, session, at, data.to_string()),
            )
            .unwrap();
    }

    /// `nex` with this HOME, `NEX_HOME` = `<dir>/<nex_home>`, and no source env of the caller.
    fn nex(&self, nex_home: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nex"));
        c.env("HOME", self.home())
            .env("NEX_HOME", self.dir.path().join(nex_home))
            .env(
                "NEX_WORKER_CMD",
                format!("{} worker --stdio", env!("CARGO_BIN_EXE_aix")),
            )
            .env("RUST_LOG", "warn");
        for var in [
            "NEX_LEDGER",
            "CLAUDE_CONFIG_DIR",
            "CODEX_HOME",
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "OPENCODE_DATA_DIR",
            "GEMINI_DIR",
        ] {
            c.env_remove(var);
        }
        c
    }

    fn backfill(&self, nex_home: &str) -> Value {
        let out = self
            .nex(nex_home)
            .args(["import", "backfill", "--wait", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn ledger(&self, nex_home: &str) -> String {
        canonical(&open(&self.dir.path().join(nex_home).join("agents.db")))
    }
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn append(path: &Path, lines: &[Value]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(jsonl(lines).as_bytes()).unwrap();
}

/// Sessions in the ledger by provider.
fn providers(ledger: &Path) -> Vec<(String, i64)> {
    let conn = open(ledger);
    let mut st = conn
        .prepare(
            "SELECT source_provider, count(*) FROM session_imports GROUP BY source_provider
             ORDER BY source_provider",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn every_provider_by_default_and_changes_in_place_converge_on_one_backfill() {
    let home = Home::new();
    let scan = Command::new(env!("CARGO_BIN_EXE_aix"))
        .arg("scan")
        .env("HOME", home.home())
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CODEX_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("OPENCODE_DATA_DIR")
        .env_remove("GEMINI_DIR")
        .output()
        .unwrap();
    assert!(scan.status.success());
    let text = String::from_utf8(scan.stdout).unwrap();
    for p in [
        "claude-code:",
        "codex:",
        "cursor:",
        "opencode:",
        "gemini-cli:",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("{p} in {text}"));
        assert!(
            !line.contains("nothing found"),
            "{p} found nothing:\n{text}"
        );
    }

    // Each Cursor database read is listed, the workspace's beside the global one.
    let user = home.home().join(".config/Cursor/User");
    for line in [
        format!(
            "    {}/globalStorage/state.vscdb (2 sessions)",
            user.display()
        ),
        format!(
            "    {}/workspaceStorage/5e1f/state.vscdb (1 session)",
            user.display()
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }

    let first = home.backfill("nex1");
    assert_eq!(first["status"], "completed", "{first}");
    let ledger1 = home.dir.path().join("nex1/agents.db");
    let by_provider = providers(&ledger1);
    let count = |p: &str| {
        by_provider
            .iter()
            .find(|(n, _)| n == p)
            .map_or(0, |(_, c)| *c)
    };
    // Two chats of the global database, one of a workspace's.
    assert_eq!(count("cursor"), 3);
    assert_eq!(count("opencode"), 1);
    assert_eq!(count("gemini-cli"), 1);
    assert!(count("claude-code") > 0 && count("codex") > 0);
    let cursor_before = home.cursor.data();

    // Every source changes in place.
    home.cursor.composer(
        "c1",
        T0,
        &[
            ("b1", 1, "hello"),
            ("b2", 2, "hi"),
            ("b3", 1, "more"),
            ("b4", 2, "ok"),
        ],
    );
    home.oc_message("ses_a", "msg_3", "user", T0 + 5000, "and the test");
    append(
        &home.gemini_log(),
        &[
            json!({"id": "u2", "timestamp": "2026-01-01T10:01:00Z", "type": "user",
                   "content": "thanks"}),
            json!({"$set": {"lastUpdated": "2026-01-01T10:01:00Z", "summary": "config talk"}}),
        ],
    );
    let second = home.backfill("nex1");
    assert_eq!(second["status"], "completed", "{second}");
    // Only the three changed sessions were emitted (unchanged ones are not even read).
    assert_eq!(second["stats"]["emitted"], 3, "{second}");
    assert_eq!(second["stats"]["upserted"], 3, "{second}");
    assert_ne!(home.cursor.data(), cursor_before, "the fixture wrote");
    // Regression: the FILES column counted each Cursor and OpenCode session as a file. The
    // stores (two Cursor databases, one OpenCode data dir) are told apart, and the summary
    // counts each as one file: the fixture's Claude Code and Codex session files (not the
    // subagents' `.meta.json`), the Gemini CLI log, three stores.
    assert_eq!(
        second["stats"]["stores"],
        json!({"stores": 3, "stores_unchanged": 1, "sessions": 2, "sessions_unchanged": 2}),
        "{second}"
    );
    let session_files = fixture_files()
        .iter()
        .filter(|(rel, _)| rel.extension().is_some_and(|e| e == "jsonl"))
        .count();
    let files = session_files + 1 + 3;
    let out = home
        .nex("nex1")
        .args(["import", "backfill", "--wait"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let want = format!(
        "nothing new: {files} files checked, {files} unchanged since the last import; Cursor \
         and OpenCode: 3 stores holding 4 sessions (0 read)"
    );
    assert!(text.contains(&want), "{want}\n{text}");

    // One backfill of the final state, in a fresh NEX_HOME, gives the same ledger; no byte of
    // any agent's data (databases, WALs, logs, session files) was written by either run.
    let sources = agent_data(&home.home());
    let fresh = home.backfill("nex2");
    assert_eq!(fresh["status"], "completed", "{fresh}");
    let (a, b) = (home.ledger("nex1"), home.ledger("nex2"));
    assert!(a == b, "{}", crate::e2e_support::first_difference(&a, &b));
    assert_eq!(
        agent_data(&home.home()),
        sources,
        "an agent's file was written"
    );
}

/// Every file under HOME but the SQLite lock indexes (`-shm`, which a reader of a live WAL
/// database takes part in), with its bytes.
fn agent_data(home: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    crate::e2e_support::files_under(home, &mut files);
    files
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with("-shm"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Sources outside their default locations (a Windows Cursor seen from WSL, a moved Gemini
/// dir): set by `config.toml` and by a `nex` flag, they reach the worker and are imported; the
/// machine's HOME holds nothing.
#[test]
fn source_locations_from_config_and_flags_reach_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let empty_home = dir.path().join("home");
    std::fs::create_dir_all(&empty_home).unwrap();
    let cursor = LiveCursorDb::at(
        &dir.path()
            .join("mnt/c/Users/u/AppData/Roaming/Cursor/User/globalStorage/state.vscdb"),
    );
    cursor.composer("win-1", T0, &[("b1", 1, "from windows"), ("b2", 2, "ok")]);
    let gemini_tmp = dir.path().join("moved-gemini/tmp");
    let log = gemini_tmp.join("proj/chats/session-2026-01-01T10-00-aaaa0001.jsonl");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(
        &log,
        jsonl(&[
            json!({"sessionId": "g-moved", "startTime": "2026-01-01T10:00:00Z"}),
            json!({"id": "u1", "timestamp": "2026-01-01T10:00:00Z", "type": "user",
                   "content": "hello"}),
        ]),
    )
    .unwrap();
    let nex_home = dir.path().join("nex");
    std::fs::create_dir_all(&nex_home).unwrap();
    std::fs::write(
        nex_home.join("config.toml"),
        format!(
            "[import]\ncursor_db = {:?}\n",
            cursor.path.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nex"))
        .args(["import", "backfill", "--wait", "--json", "--gemini-dir"])
        .arg(&gemini_tmp)
        .env("HOME", &empty_home)
        .env("NEX_HOME", &nex_home)
        .env(
            "NEX_WORKER_CMD",
            format!("{} worker --stdio", env!("CARGO_BIN_EXE_aix")),
        )
        .env("RUST_LOG", "warn")
        .env_remove("NEX_LEDGER")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CODEX_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("OPENCODE_DATA_DIR")
        .env_remove("GEMINI_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        providers(&nex_home.join("agents.db")),
        vec![("cursor".to_owned(), 1), ("gemini-cli".to_owned(), 1)]
    );
}
