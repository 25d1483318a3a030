//! The `stores` scenario: the worker's two polled SQLite sources, a Cursor `state.vscdb` and an
//! OpenCode `opencode.db`, generated from a seed with the same number of sessions and messages,
//! then measured through the release binaries (Claude Code, Codex and Gemini roots pinned to an
//! empty directory, so nothing of the machine is read):
//!
//! 1. backfill: `aix emit --mode backfill --cursor-db DB --opencode-dir DIR | nex import replay -`
//!    on a fresh ledger, checked (every session imported, no reject, one mapping per session in
//!    the ledger: else an error, never a figure); against the raw insert loop (`raw`) of the same
//!    items, read in-process by `aix::scan` before timing, on another fresh ledger in the same
//!    run. Ratio end-to-end / raw and peak RSS of both processes.
//! 2. rebackfill: `aix worker --stdio` in backfill mode given the cursors (1) committed
//!    (`ledger::load_cursors`): no session should be sent again; its time and its ratio to (1).
//! 3. tail: after the last run, the worker in tail mode with those cursors while both stores are
//!    written through connections held open (as the running agents hold theirs): at `rate` per
//!    second, a user + assistant bubble pair added to a random composer (its header rewritten)
//!    or the next message with a text part added to a random OpenCode session, each in one
//!    transaction. Latency: from that commit returning to the new message's row (its
//!    deterministic id, `import::scoped_id`) being visible in the ledger, polled read-only every
//!    millisecond. Unmeasured appends to each store first, until one is visible: the tail's
//!    start-up poll is over. An append not visible after 10 s counts as timed out; when it is
//!    its store's last, no later write could reveal a commit the tail missed, and the result
//!    says so (`lastTimedOut`).
//!
//! Layout: `content` (text, ids, tool calls), `cursor` and `opencode` (each store's generator
//! and live writer), `tail` (step 3), `cli` (the `nex-bench stores` command line and report).

pub mod cli;
mod content;
pub mod cursor;
pub mod opencode;
mod tail;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use self::cursor::CursorDb;
use self::opencode::OpenCodeDir;
use self::tail::run_tail;
pub use self::tail::{Latency, TailFigures};
use super::Spread;
use super::procs::{Binaries, Pair, PairOutcome};
use super::raw::{ToolBodies, insert_rows};
use super::replay::BenchError;
use nex::aix::{RootOverrides, WorkerOptions, default_parser_factory};
use nex::ledger;
use nex::protocol::{ImportSessionItem, RunMode};

/// What a generator wrote.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenStats {
    pub sessions: u64,
    pub messages: u64,
    pub tool_calls: u64,
    /// Tokens the assistant messages carry, as the mapping sums them (Cursor: input + output;
    /// OpenCode: input + output + reasoning + cache read + cache write).
    pub tokens: i64,
    /// Rows written (keys for Cursor; sessions, messages and parts for OpenCode).
    pub rows: u64,
    /// Size of the database once closed.
    pub bytes: u64,
    pub secs: f64,
}

/// One live append, committed.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The source session id (`composerId`, `ses_…`).
    pub session_id: String,
    /// The new messages' source ids, in order.
    pub message_ids: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoresError {
    #[error(transparent)]
    Bench(#[from] BenchError),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The run did not do what it measures (a figure would lie), or bad parameters.
    #[error("{0}")]
    Check(String),
}

/// One `stores` benchmark.
#[derive(Debug, Clone)]
pub struct StoresBench {
    /// Sessions of each store.
    pub sessions: usize,
    /// Messages (bubbles) of each session.
    pub bubbles: usize,
    pub runs: usize,
    /// Measured tail appends, over both stores.
    pub appends: usize,
    /// Appends per second.
    pub rate: f64,
    pub seed: u64,
    /// Stores and ledgers go here (a temp dir when `None`).
    pub dir: Option<PathBuf>,
    pub bins: Binaries,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoresResult {
    pub cursor: GenStats,
    pub opencode: GenStats,
    pub opencode_parts: u64,
    /// What `aix::scan` makes of both stores (checked against the generators).
    pub sessions: u64,
    pub messages: u64,
    pub tool_calls: u64,
    pub backfill_secs: Vec<f64>,
    pub raw_secs: Vec<f64>,
    pub rebackfill_secs: Vec<f64>,
    pub backfill: Spread,
    pub raw: Spread,
    /// backfill / raw per run.
    pub ratio: Spread,
    pub rebackfill: Spread,
    /// rebackfill / backfill per run.
    pub rebackfill_ratio: Spread,
    /// Peak RSS over the backfill runs, per process.
    pub aix_peak_rss_mib: f64,
    pub nex_peak_rss_mib: f64,
    /// Frames of the last rebackfill.
    pub rebackfill_frames: u64,
    /// Sessions the rebackfills sent again (imported, upserted or skipped as unchanged), all
    /// runs: 0 expected.
    pub rebackfill_sessions: u64,
    pub tail: TailFigures,
}

/// Removes a database and its `-wal` and `-shm`.
fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Flushes dirty pages, so one timed step does not pay for the previous one's writes.
fn sync() {
    let _ = std::process::Command::new("sync").status();
}

/// Turns the JSON lines `aix::scan` writes into items as they come (one line in memory at a
/// time), one per session (the last one seen).
#[derive(Default)]
struct ItemSink {
    line: Vec<u8>,
    /// Index in `items` by (provider, session id).
    index: HashMap<(String, String), usize>,
    items: Vec<ImportSessionItem>,
}

impl Write for ItemSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let item: ImportSessionItem =
                serde_json::from_slice(&self.line).map_err(io::Error::other)?;
            self.line.clear();
            let key = (item.source_provider.clone(), item.source_session_id.clone());
            match self.index.get(&key) {
                Some(&i) => self.items[i] = item,
                None => {
                    self.index.insert(key, self.items.len());
                    self.items.push(item);
                }
            }
        }
        self.line.extend_from_slice(rest);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Every item the worker would import from the two stores, read in-process (`aix::scan`, as a
/// backfill reads them), one per session.
///
/// # Errors
/// A store that cannot be read, or an item that does not decode.
pub fn store_items(
    cursor_db: &Path,
    opencode_dir: &Path,
    empty: &Path,
) -> io::Result<Vec<ImportSessionItem>> {
    let options = WorkerOptions::resolve(
        &RootOverrides {
            claude_dirs: vec![empty.to_path_buf()],
            codex_dirs: vec![empty.to_path_buf()],
            gemini_dirs: vec![empty.to_path_buf()],
            cursor_dbs: vec![cursor_db.to_path_buf()],
            opencode_dirs: vec![opencode_dir.to_path_buf()],
            full: true,
        },
        None,
    );
    let mut sink = ItemSink::default();
    let summary = nex::aix::scan(&options, &default_parser_factory(), Some(&mut sink))?;
    if summary.values().any(|p| p.unreadable_files > 0) {
        return Err(io::Error::other("a generated store could not be read"));
    }
    Ok(sink.items)
}

/// The `aix` root flags: both stores, everything else an empty directory.
fn root_args(cursor_db: &Path, opencode_dir: &Path, empty: &Path) -> Vec<String> {
    let mut args = Vec::new();
    for flag in ["--claude-dir", "--codex-dir", "--gemini-dir"] {
        args.push(flag.to_owned());
        args.push(empty.display().to_string());
    }
    args.push("--cursor-db".into());
    args.push(cursor_db.display().to_string());
    args.push("--opencode-dir".into());
    args.push(opencode_dir.display().to_string());
    args
}

fn open_ro(path: &Path) -> Result<Connection, StoresError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Fails unless the backfill imported every session, without a reject, and the ledger holds one
/// mapping per session of the two stores.
fn check_backfill(o: &PairOutcome, ledger: &Path, sessions: u64) -> Result<(), StoresError> {
    let r = &o.report;
    let rejected = r.rejected.values().sum::<u64>() + r.failed;
    if rejected > 0 || r.imported + r.upserted < sessions {
        return Err(BenchError::Incomplete {
            imported: r.imported + r.upserted,
            sessions,
            rejected,
        }
        .into());
    }
    let mapped: i64 = open_ro(ledger)?.query_row(
        "SELECT count(*) FROM session_imports
         WHERE source = 'aix' AND source_provider IN ('cursor', 'opencode')",
        [],
        |r| r.get(0),
    )?;
    if mapped as u64 != sessions {
        return Err(StoresError::Check(format!(
            "the ledger maps {mapped} sessions of the {sessions} the stores hold"
        )));
    }
    Ok(())
}

/// Runs the scenario.
///
/// # Errors
/// Bad parameters; I/O, SQLite or ledger failures; a process that fails; stores the in-process
/// scan does not read as generated; a backfill that does not import every session without
/// rejects; a warm-up append not committed in time; a tail that rejects a frame.
pub fn run(b: &StoresBench) -> Result<StoresResult, StoresError> {
    if b.sessions == 0 || b.bubbles == 0 {
        return Err(StoresError::Check(
            "--sessions and --bubbles must be at least 1".into(),
        ));
    }
    let tmp = tempfile::tempdir()?;
    let dir = b.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let empty = dir.join("empty-root");
    let cursor_dir = dir.join("cursor");
    let opencode_dir = dir.join("opencode");
    for d in [&empty, &cursor_dir, &opencode_dir] {
        std::fs::create_dir_all(d)?;
    }
    let db = cursor_dir.join("state.vscdb");
    remove_db(&db);
    remove_db(&opencode_dir.join(nex::aix::sources::opencode::MAIN_DB));
    let mut cursor = CursorDb::create(&db, b.sessions, b.bubbles, b.seed)?;
    let mut opencode = OpenCodeDir::create(&opencode_dir, b.sessions, b.bubbles, b.seed)?;

    let items = store_items(&db, &opencode_dir, &empty)?;
    let bodies = ToolBodies::of(&items);
    let sessions = items.len() as u64;
    let messages: u64 = items.iter().map(|i| i.messages.len() as u64).sum();
    let tool_calls: u64 = items.iter().map(|i| i.tool_calls.len() as u64).sum();
    let tokens: i64 = items
        .iter()
        .flat_map(|i| &i.turns)
        .filter_map(|t| t.total_tokens)
        .sum();
    let generated = (
        cursor.stats.sessions + opencode.stats.sessions,
        cursor.stats.messages + opencode.stats.messages,
        cursor.stats.tool_calls + opencode.stats.tool_calls,
        cursor.stats.tokens + opencode.stats.tokens,
    );
    if (sessions, messages, tool_calls, tokens) != generated {
        return Err(StoresError::Check(format!(
            "aix scan reads {sessions} sessions, {messages} messages, {tool_calls} tool calls, \
             {tokens} tokens; the generators wrote {generated:?}"
        )));
    }

    let roots = root_args(&db, &opencode_dir, &empty);
    let mut emit_args: Vec<String> = vec!["emit".into(), "--mode".into(), "backfill".into()];
    emit_args.extend(roots.iter().cloned());
    let mut worker_args: Vec<String> = vec!["worker".into(), "--stdio".into()];
    worker_args.extend(roots);

    let runs = b.runs.max(1);
    let ledger_path = dir.join("backfill.db");
    let raw_path = dir.join("raw.db");
    let (mut backfill_secs, mut raw_secs, mut re_secs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut aix_rss, mut nex_rss) = (0u64, 0u64);
    let (mut re_frames, mut re_sessions) = (0, 0);
    sync();
    for run in 0..runs {
        // Alternate the order so neither side always runs on a warmer cache.
        let raw_first = run % 2 == 1;
        let measure_raw = || -> Result<f64, StoresError> {
            remove_db(&raw_path);
            let mut conn = ledger::open_agents(&raw_path)?;
            let t = Instant::now();
            insert_rows(&mut conn, &items, &bodies).map_err(BenchError::Raw)?;
            let secs = t.elapsed().as_secs_f64();
            drop(conn);
            remove_db(&raw_path);
            sync();
            Ok(secs)
        };
        if raw_first {
            raw_secs.push(measure_raw()?);
        }
        remove_db(&ledger_path);
        sync();
        let first = Pair::spawn(&b.bins, &emit_args, &ledger_path, false)?.finish()?;
        check_backfill(&first, &ledger_path, sessions)?;
        backfill_secs.push(first.secs);
        aix_rss = aix_rss.max(first.aix_rss_kib);
        nex_rss = nex_rss.max(first.nex_rss_kib);

        let cursors = ledger::load_cursors(&ledger::open_agents(&ledger_path)?, "aix")?;
        sync();
        let mut again = Pair::spawn(&b.bins, &worker_args, &ledger_path, true)?;
        again.start(RunMode::Backfill, cursors, &format!("rebackfill-{run}"))?;
        let again = again.finish()?;
        let r = &again.report;
        let rejected = r.failed + r.rejected.values().sum::<u64>();
        if rejected > 0 {
            return Err(BenchError::Incomplete {
                imported: r.imported + r.upserted,
                sessions,
                rejected,
            }
            .into());
        }
        re_frames = r.frames;
        re_sessions += r.imported + r.upserted + r.skipped;
        re_secs.push(again.secs);
        if !raw_first {
            raw_secs.push(measure_raw()?);
        }
    }
    let ratios = super::ratios(&backfill_secs, &raw_secs);
    let re_ratios = super::ratios(&re_secs, &backfill_secs);
    drop(items);

    let tail = run_tail(b, &worker_args, &ledger_path, &mut cursor, &mut opencode)?;
    remove_db(&ledger_path);
    Ok(StoresResult {
        cursor: cursor.stats,
        opencode: opencode.stats,
        opencode_parts: opencode.parts,
        sessions,
        messages,
        tool_calls,
        backfill: Spread::of_or_nan(&backfill_secs),
        raw: Spread::of_or_nan(&raw_secs),
        ratio: Spread::of_or_nan(&ratios),
        rebackfill: Spread::of_or_nan(&re_secs),
        rebackfill_ratio: Spread::of_or_nan(&re_ratios),
        backfill_secs,
        raw_secs,
        rebackfill_secs: re_secs,
        aix_peak_rss_mib: aix_rss as f64 / 1024.0,
        nex_peak_rss_mib: nex_rss as f64 / 1024.0,
        rebackfill_frames: re_frames,
        rebackfill_sessions: re_sessions,
        tail,
    })
}

#[cfg(test)]
mod tests;
