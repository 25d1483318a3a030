//! A Cursor `state.vscdb` generated from a seed, and the writer that keeps adding to it while
//! the tail runs (as the running IDE does).
//!
//! Written as Cursor writes it (the keys and JSON the mapping reads are documented in
//! `nex::aix::sources::cursor`): tables `ItemTable` and `cursorDiskKV`, both
//! `(key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)`, in WAL mode, every value written with
//! `INSERT OR REPLACE`. Per composer: `bubbleId:<composer>:<bubble>` rows alternating a user
//! bubble (type 1, `text` and its `richText`) and an assistant bubble (type 2, `text`,
//! `modelInfo`, and `tokenCount`: each assistant bubble closes its turn), about one assistant
//! bubble in three carrying a `toolFormerData` call with JSON `rawArgs`/`params` and `result`;
//! then `composerData:<composer>` whose `fullConversationHeadersOnly` lists the bubbles in
//! order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Statement, params};
use serde_json::{Value, json};

use super::content::{ToolKind, hex, message_text, tool_call, uuid};
use super::{Appended, GenStats, StoresError};
use crate::files::iso8601;
use crate::rng::Rng;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MODELS: [&str; 4] = [
    "claude-4.5-sonnet",
    "gpt-5",
    "claude-4.5-opus-high-thinking",
    "composer-1",
];
/// Salt of the store's generator, so the two stores of one seed differ.
const SALT: u64 = 0xC0C0_50C0;

/// One composer (session) as generated so far: what its header row says.
struct Composer {
    id: String,
    name: String,
    created_ms: i64,
    model: &'static str,
    /// `(bubble id, type)` in conversation order.
    headers: Vec<(String, u8)>,
    /// The time of the next bubble.
    next_ms: i64,
    lines: (u64, u64),
}

impl Composer {
    fn new(rng: &mut Rng, index: usize) -> Self {
        let created_ms = T0 + index as i64 * 600_000;
        Self {
            id: uuid(rng),
            name: super::content::text(rng, 12, 48).trim().to_owned(),
            created_ms,
            model: MODELS[rng.range(0, MODELS.len() as u64) as usize],
            headers: Vec::new(),
            next_ms: created_ms + 1_000,
            lines: (0, 0),
        }
    }

    fn tick(&mut self, rng: &mut Rng) -> i64 {
        let t = self.next_ms;
        self.next_ms += rng.range(2_000, 30_000) as i64;
        t
    }

    fn key(&self, bubble: &str) -> String {
        format!("bubbleId:{}:{bubble}", self.id)
    }

    /// A new user bubble: its id and value.
    fn user(&mut self, rng: &mut Rng) -> (String, Value) {
        let id = uuid(rng);
        let text = message_text(rng);
        let rich = json!({"root": {"children": [{"children": [{"detail": 0, "format": 0,
            "mode": "normal", "style": "", "text": text, "type": "text", "version": 1}],
            "direction": "ltr", "format": "", "indent": 0, "type": "paragraph", "version": 1}],
            "direction": "ltr", "format": "", "indent": 0, "type": "root", "version": 1}});
        let value = json!({"_v": 3, "type": 1, "bubbleId": id, "text": text,
            "richText": rich.to_string(), "createdAt": iso8601(self.tick(rng)),
            "isAgentic": true, "unifiedMode": 2,
            "context": {"fileSelections": [], "folderSelections": [], "selections": []}});
        self.headers.push((id.clone(), 1));
        (id, value)
    }

    /// A new assistant bubble closing its turn: its id, value, whether it holds a tool call,
    /// and its tokens (input + output).
    fn assistant(&mut self, rng: &mut Rng) -> (String, Value, bool, i64) {
        let id = uuid(rng);
        let (input, output) = (rng.range(1_000, 30_000), rng.range(50, 2_000));
        let mut value = json!({"_v": 3, "type": 2, "bubbleId": id, "text": message_text(rng),
            "createdAt": iso8601(self.tick(rng)),
            "tokenCount": {"inputTokens": input, "outputTokens": output},
            "modelInfo": {"modelName": self.model}, "codeBlocks": [], "capabilityType": 15});
        let tool = rng.range(0, 3) == 0;
        if tool {
            let call = tool_call(rng);
            let (name, number) = match call.kind {
                ToolKind::Read => ("read_file", 5),
                ToolKind::Shell => ("run_terminal_cmd", 15),
                ToolKind::Grep => ("grep_search", 41),
                ToolKind::Edit => ("edit_file", 7),
            };
            if call.kind == ToolKind::Edit {
                self.lines.0 += rng.range(1, 60);
                self.lines.1 += rng.range(0, 30);
            }
            let args = call.args.to_string();
            value["toolFormerData"] = json!({"tool": number,
                "toolCallId": format!("toolu_01{}", hex(rng, 22)), "name": name,
                "status": "completed", "rawArgs": args, "params": args,
                "result": call.result.to_string(), "additionalData": {}, "userDecision": "accepted"});
        }
        self.headers.push((id.clone(), 2));
        (id, value, tool, (input + output) as i64)
    }

    fn header_value(&self) -> Value {
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|(id, t)| json!({"bubbleId": id, "type": t}))
            .collect();
        json!({"_v": 10, "composerId": self.id, "name": self.name,
            "createdAt": self.created_ms, "lastUpdatedAt": self.next_ms,
            "unifiedMode": "agent", "forceMode": "edit",
            "modelConfig": {"modelName": self.model, "maxMode": false},
            "fullConversationHeadersOnly": headers, "status": "completed",
            "hasUnreadMessages": false, "isArchived": false,
            "totalLinesAdded": self.lines.0, "totalLinesRemoved": self.lines.1,
            "context": {"fileSelections": [], "folderSelections": [], "selections": []}})
    }
}

fn put(stmt: &mut Statement<'_>, key: &str, value: &Value) -> rusqlite::Result<()> {
    stmt.execute(params![key, value.to_string()]).map(drop)
}

const PUT: &str = "INSERT OR REPLACE INTO cursorDiskKV (key, value) VALUES (?1, ?2)";

/// A generated `state.vscdb`.
pub struct CursorDb {
    pub path: PathBuf,
    composers: Vec<Composer>,
    /// Draws which composer the next append goes to, and its content.
    rng: Rng,
    /// Held open from [`CursorDb::open_writer`] on, like the running IDE's.
    writer: Option<Connection>,
    pub stats: GenStats,
}

impl CursorDb {
    /// Writes `path` (which must not exist) with `sessions` composers of `bubbles` bubbles each,
    /// and closes it (the WAL is checkpointed into the database, as when Cursor quits).
    ///
    /// # Errors
    /// Any SQLite error.
    pub fn create(
        path: &Path,
        sessions: usize,
        bubbles: usize,
        seed: u64,
    ) -> rusqlite::Result<Self> {
        let started = Instant::now();
        let mut conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;
             CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
             CREATE TABLE cursorDiskKV (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);",
        )?;
        let mut root = Rng::new(seed ^ SALT);
        let mut stats = GenStats {
            sessions: sessions as u64,
            ..GenStats::default()
        };
        let mut composers = Vec::with_capacity(sessions);
        let tx = conn.transaction()?;
        {
            tx.execute(
                "INSERT INTO ItemTable (key, value) VALUES ('workbench.sideBar.position', '0'),
                 ('cursor/lastUpdateCheck', '1767225600000')",
                [],
            )?;
            let mut stmt = tx.prepare(PUT)?;
            for i in 0..sessions {
                let mut rng = root.fork(i as u64);
                let mut c = Composer::new(&mut rng, i);
                for k in 0..bubbles {
                    if k % 2 == 0 {
                        let (id, v) = c.user(&mut rng);
                        put(&mut stmt, &c.key(&id), &v)?;
                    } else {
                        let (id, v, tool, tokens) = c.assistant(&mut rng);
                        put(&mut stmt, &c.key(&id), &v)?;
                        stats.tool_calls += u64::from(tool);
                        stats.tokens += tokens;
                    }
                    stats.messages += 1;
                    stats.rows += 1;
                }
                put(
                    &mut stmt,
                    &format!("composerData:{}", c.id),
                    &c.header_value(),
                )?;
                stats.rows += 1;
                composers.push(c);
            }
        }
        tx.commit()?;
        conn.close().map_err(|(_, e)| e)?;
        stats.bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        stats.secs = started.elapsed().as_secs_f64();
        Ok(Self {
            path: path.to_path_buf(),
            composers,
            rng: Rng::new(seed ^ SALT ^ 0xA99E_17D5),
            writer: None,
            stats,
        })
    }

    /// Opens the writer connection and keeps it (its `-wal` and `-shm` exist from here on).
    ///
    /// # Errors
    /// Any SQLite error.
    pub fn open_writer(&mut self) -> rusqlite::Result<()> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("SELECT count(*) FROM cursorDiskKV", [], |_| Ok(()))?;
        self.writer = Some(conn);
        Ok(())
    }

    /// Adds a user + assistant bubble pair to a random composer and rewrites its header (new
    /// headers list, `lastUpdatedAt`), in one transaction: on return it is committed.
    ///
    /// # Errors
    /// Any SQLite error; no writer open or no composer.
    pub fn append(&mut self) -> Result<Appended, StoresError> {
        let (Some(conn), false) = (self.writer.as_mut(), self.composers.is_empty()) else {
            return Err(StoresError::Check(
                "cursor append needs a writer and a composer".into(),
            ));
        };
        let i = self.rng.range(0, self.composers.len() as u64) as usize;
        let c = &mut self.composers[i];
        let (user, uv) = c.user(&mut self.rng);
        let (assistant, av, _, _) = c.assistant(&mut self.rng);
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(PUT)?;
            put(&mut stmt, &c.key(&user), &uv)?;
            put(&mut stmt, &c.key(&assistant), &av)?;
            put(
                &mut stmt,
                &format!("composerData:{}", c.id),
                &c.header_value(),
            )?;
        }
        tx.commit()?;
        Ok(Appended {
            session_id: c.id.clone(),
            message_ids: vec![user, assistant],
        })
    }
}
