//! An OpenCode data directory (`opencode.db`) generated from a seed, and the writer that keeps
//! adding to it while the tail runs (as the running agent does).
//!
//! Written with the schema of OpenCode ≥ 1.2 (`project`, `session`, `message`, `part`, `todo`;
//! the JSON the mapping reads is documented in `nex::aix::sources::opencode`), in WAL mode.
//! Per session: messages alternating user and assistant. A user message (`role`, `time`,
//! `agent`, `model{providerID, modelID}`) has one `text` part. An assistant message
//! (`parentID` = its user message, `modelID`, `providerID`, `mode`, `cost`, `finish`,
//! `tokens{input, output, reasoning, cache{read, write}}`) has a `step-start` part, a
//! `reasoning` part one time in two, a completed `tool` part (JSON `state.input`, text
//! `state.output`) one time in three, a `text` part and a `step-finish` part.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use super::content::{ToolKind, hex, message_text, text, tool_call};
use super::{Appended, GenStats, StoresError};
use crate::rng::Rng;

/// 2026-02-25T06:13:20Z.
const T0: i64 = 1_772_000_000_000;
const MODELS: [(&str, &str); 3] = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-opus-4-6"),
    ("openai", "gpt-5"),
];
const SALT: u64 = 0x0BE7_C0DE;

/// The tables of OpenCode ≥ 1.2, as its migrations create them.
const SCHEMA: &str = "
    PRAGMA journal_mode=WAL;
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

/// One session as generated so far.
struct Session {
    id: String,
    provider: &'static str,
    model: &'static str,
    /// The time of the next row.
    next_ms: i64,
    /// The last user message (the parent of the next assistant message); `None` when the last
    /// message is an assistant's (or there is none): the next message is a user's.
    open_user: Option<String>,
    /// Rows written for this session, so ids sort in write order.
    seq: u64,
}

/// One row to write.
enum Row {
    Message {
        id: String,
        ms: i64,
        data: Value,
    },
    Part {
        id: String,
        message: String,
        ms: i64,
        data: Value,
    },
}

/// What one generated message holds besides its rows.
#[derive(Default)]
struct Counts {
    tools: u64,
    tokens: i64,
    parts: u64,
}

impl Session {
    fn new(rng: &mut Rng, index: usize) -> Self {
        let created = T0 + index as i64 * 600_000;
        let (provider, model) = MODELS[rng.range(0, MODELS.len() as u64) as usize];
        Self {
            id: format!("ses_{:012x}{}", created, hex(rng, 14)),
            provider,
            model,
            next_ms: created + 1_000,
            open_user: None,
            seq: 0,
        }
    }

    fn tick(&mut self, rng: &mut Rng) -> i64 {
        let t = self.next_ms;
        self.next_ms += rng.range(2_000, 30_000) as i64;
        t
    }

    /// `<prefix>_<time><seq><random>`: ascending within the session, as OpenCode's ids are.
    fn id(&mut self, rng: &mut Rng, prefix: &str, ms: i64) -> String {
        self.seq += 1;
        format!("{prefix}_{ms:012x}{:06x}{}", self.seq, hex(rng, 8))
    }

    /// The next message (a user's, or the assistant's answer to the open user message) and
    /// its parts; `minimal`: one text part only (a live append).
    fn message(&mut self, rng: &mut Rng, minimal: bool) -> (String, Vec<Row>, Counts) {
        let ms = self.tick(rng);
        let id = self.id(rng, "msg", ms);
        let mut rows = Vec::new();
        let mut counts = Counts::default();
        let part = |s: &mut Self, rng: &mut Rng, data: Value, rows: &mut Vec<Row>| {
            let pid = s.id(rng, "prt", ms);
            rows.push(Row::Part {
                id: pid,
                message: id.clone(),
                ms,
                data,
            });
        };
        let Some(parent) = self.open_user.take() else {
            let data = json!({"role": "user", "time": {"created": ms}, "agent": "build",
                "model": {"providerID": self.provider, "modelID": self.model}});
            rows.push(Row::Message {
                id: id.clone(),
                ms,
                data,
            });
            let body = json!({"type": "text", "text": message_text(rng)});
            part(self, rng, body, &mut rows);
            self.open_user = Some(id.clone());
            counts.parts = 1;
            return (id, rows, counts);
        };
        let done = ms + rng.range(1_000, 20_000) as i64;
        let (input, output, reasoning) = (
            rng.range(100, 20_000),
            rng.range(50, 2_000),
            rng.range(0, 800),
        );
        let (read, write) = (rng.range(0, 60_000), rng.range(0, 5_000));
        let tokens = json!({"input": input, "output": output, "reasoning": reasoning,
            "cache": {"read": read, "write": write}});
        counts.tokens = (input + output + reasoning + read + write) as i64;
        let tool = !minimal && rng.range(0, 3) == 0;
        let cost = (input + output) as f64 * 3e-6;
        let data = json!({"role": "assistant", "time": {"created": ms, "completed": done},
            "parentID": parent, "modelID": self.model, "providerID": self.provider,
            "mode": "build", "agent": "build", "path": {"cwd": "/work/bench", "root": "/work/bench"},
            "cost": cost, "finish": if tool { "tool-calls" } else { "stop" }, "tokens": tokens});
        rows.push(Row::Message {
            id: id.clone(),
            ms,
            data,
        });
        let mut bodies = Vec::new();
        if !minimal {
            bodies.push(json!({"type": "step-start", "snapshot": hex(rng, 40)}));
            if rng.range(0, 2) == 0 {
                bodies.push(json!({"type": "reasoning", "text": text(rng, 200, 1_000),
                    "time": {"start": ms, "end": ms + 500}}));
            }
        }
        if tool {
            let call = tool_call(rng);
            let name = match call.kind {
                ToolKind::Read => "read",
                ToolKind::Shell => "bash",
                ToolKind::Grep => "grep",
                ToolKind::Edit => "edit",
            };
            bodies.push(
                json!({"type": "tool", "callID": format!("toolu_01{}", hex(rng, 22)),
                "tool": name, "state": {"status": "completed", "input": call.args,
                "output": call.result.to_string(), "title": name, "metadata": {},
                "time": {"start": ms + 600, "end": ms + 900}}}),
            );
            counts.tools = 1;
        }
        bodies.push(json!({"type": "text", "text": message_text(rng),
            "time": {"start": ms + 1_000, "end": done}}));
        if !minimal {
            bodies.push(
                json!({"type": "step-finish", "reason": "stop", "cost": cost,
                "tokens": tokens, "snapshot": hex(rng, 40)}),
            );
        }
        counts.parts = bodies.len() as u64;
        for body in bodies {
            part(self, rng, body, &mut rows);
        }
        (id, rows, counts)
    }
}

fn write_rows(conn: &Connection, session: &str, rows: &[Row]) -> rusqlite::Result<()> {
    let mut message = conn.prepare_cached(
        "INSERT INTO message (id, session_id, time_created, time_updated, data)
         VALUES (?1, ?2, ?3, ?3, ?4)",
    )?;
    let mut part = conn.prepare_cached(
        "INSERT INTO part (id, message_id, session_id, time_created, time_updated, data)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
    )?;
    for row in rows {
        match row {
            Row::Message { id, ms, data } => {
                message.execute(params![id, session, ms, data.to_string()])?;
            }
            Row::Part {
                id,
                message: m,
                ms,
                data,
            } => {
                part.execute(params![id, m, session, ms, data.to_string()])?;
            }
        }
    }
    Ok(())
}

fn touch(conn: &Connection, session: &Session) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE session SET time_updated = ?2 WHERE id = ?1")?
        .execute(params![session.id, session.next_ms])
        .map(drop)
}

/// A generated OpenCode data directory.
pub struct OpenCodeDir {
    /// The data directory (holding `opencode.db`).
    pub dir: PathBuf,
    sessions: Vec<Session>,
    /// Draws which session the next append goes to, and its content.
    rng: Rng,
    /// Held open from [`OpenCodeDir::open_writer`] on, like the running agent's.
    writer: Option<Connection>,
    pub stats: GenStats,
    /// Part rows written (besides `stats.rows`, which counts every row).
    pub parts: u64,
}

impl OpenCodeDir {
    /// The database.
    pub fn db(&self) -> PathBuf {
        self.dir.join(nex::aix::sources::opencode::MAIN_DB)
    }

    /// Writes `dir/opencode.db` (which must not exist) with `sessions` sessions of `messages`
    /// messages each, and closes it (the WAL is checkpointed into the database).
    ///
    /// # Errors
    /// Any SQLite or I/O error.
    pub fn create(
        dir: &Path,
        sessions: usize,
        messages: usize,
        seed: u64,
    ) -> Result<Self, StoresError> {
        let started = Instant::now();
        std::fs::create_dir_all(dir)?;
        let path = dir.join(nex::aix::sources::opencode::MAIN_DB);
        let mut conn = Connection::open(&path)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch("PRAGMA synchronous=OFF;")?;
        let mut root = Rng::new(seed ^ SALT);
        let mut stats = GenStats {
            sessions: sessions as u64,
            ..GenStats::default()
        };
        let mut parts = 0;
        let mut out = Vec::with_capacity(sessions);
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO project (id, worktree, vcs, time_created, time_updated)
             VALUES ('prj_bench', '/work/bench', 'git', ?1, ?1)",
            [T0],
        )?;
        for i in 0..sessions {
            let mut rng = root.fork(i as u64);
            let mut s = Session::new(&mut rng, i);
            let created = s.next_ms - 1_000;
            let title = text(&mut rng, 12, 48).trim().to_owned();
            let slug = format!("bench-{}", hex(&mut rng, 6));
            for _ in 0..messages {
                let (_, rows, counts) = s.message(&mut rng, false);
                write_rows(&tx, &s.id, &rows)?;
                stats.messages += 1;
                stats.tool_calls += counts.tools;
                stats.tokens += counts.tokens;
                stats.rows += rows.len() as u64;
                parts += counts.parts;
            }
            tx.execute(
                "INSERT INTO session (id, project_id, slug, directory, title, version,
                    time_created, time_updated)
                 VALUES (?1, 'prj_bench', ?2, ?3, ?4, '1.2.10', ?5, ?6)",
                params![
                    s.id,
                    slug,
                    format!("/work/bench/p{}", i % 10),
                    title,
                    created,
                    s.next_ms
                ],
            )?;
            stats.rows += 1;
            out.push(s);
        }
        tx.commit()?;
        conn.close().map_err(|(_, e)| e)?;
        stats.bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        stats.secs = started.elapsed().as_secs_f64();
        Ok(Self {
            dir: dir.to_path_buf(),
            sessions: out,
            rng: Rng::new(seed ^ SALT ^ 0xA99E_17D5),
            writer: None,
            stats,
            parts,
        })
    }

    /// Opens the writer connection and keeps it (its `-wal` and `-shm` exist from here on).
    ///
    /// # Errors
    /// Any SQLite error.
    pub fn open_writer(&mut self) -> rusqlite::Result<()> {
        let conn = Connection::open(self.db())?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("SELECT count(*) FROM session", [], |_| Ok(()))?;
        self.writer = Some(conn);
        Ok(())
    }

    /// Adds the next message (a user's, or the assistant's answer) with one text part to a
    /// random session and moves the session's `time_updated`, in one transaction: on return it
    /// is committed.
    ///
    /// # Errors
    /// Any SQLite error; no writer open or no session.
    pub fn append(&mut self) -> Result<Appended, StoresError> {
        let (Some(conn), false) = (self.writer.as_mut(), self.sessions.is_empty()) else {
            return Err(StoresError::Check(
                "opencode append needs a writer and a session".into(),
            ));
        };
        let i = self.rng.range(0, self.sessions.len() as u64) as usize;
        let s = &mut self.sessions[i];
        let (id, rows, _) = s.message(&mut self.rng, true);
        let tx = conn.transaction()?;
        write_rows(&tx, &s.id, &rows)?;
        touch(&tx, s)?;
        tx.commit()?;
        Ok(Appended {
            session_id: s.id.clone(),
            message_ids: vec![id],
        })
    }
}
