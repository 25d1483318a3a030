//! The `usage` scenario (issue 13): `nex usage --by day` over a whole ledger of the standard
//! corpus (2,000 sessions, every 50th large), target <= 200 ms.
//!
//! The ledger holds the corpus's sessions and turns exactly as the generator makes them
//! (models, tokens, times, workspaces), imported through the import service; every 10th
//! session is made a subagent of the one before (so the rollup has work to do) and every 7th
//! a Codex session. Message text and tool results are shortened: a usage report reads the
//! `turns` and `sessions` tables only, and full text would only make the build slow and the
//! file large on a shared machine. Both timings are of the query alone, the ledger warm:
//! `library` calls [`nex::query::usage::usage_report`] in this process; `process` runs the
//! built `nex usage --by day --json` (start-up, config, open, query, print).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use nex::import::{self, ImportOptions};
use nex::protocol::{ImportRequest, ImportSessionItem};
use nex::query::prices::PriceTable;
use nex::query::usage::{GroupBy, usage_report};
use nex::query::{Filters, session_facts};
use rusqlite::TransactionBehavior;
use serde::Serialize;

use crate::Spread;
use crate::corpus::session;

/// What to build and how often to time.
#[derive(Debug, Clone)]
pub struct UsageBench {
    pub seed: u64,
    pub sessions: usize,
    pub large_every: usize,
    pub large_turns: u64,
    /// Timed runs of each kind (median, min and max are reported).
    pub runs: usize,
    /// Work directory (default: a temp dir).
    pub dir: Option<PathBuf>,
    /// The `nex` binary for the process timing (default: next to this executable).
    pub nex: Option<PathBuf>,
}

/// The measurement.
#[derive(Debug, Clone, Serialize)]
pub struct UsageResult {
    pub sessions: u64,
    pub subagents: u64,
    pub turns: u64,
    pub ledger_bytes: u64,
    pub build_secs: f64,
    /// Rows of the report (days).
    pub rows: usize,
    pub library_ms: Spread,
    /// `None` when no `nex` binary was found.
    pub process_ms: Option<Spread>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageBenchError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("ledger: {0}")]
    Ledger(#[from] nex::ledger::LedgerError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("import: {0}")]
    Import(#[from] nex::import::ImportError),
    #[error("query: {0}")]
    Query(#[from] nex::query::QueryError),
    #[error("nex usage failed: {0}")]
    Process(String),
}

/// Items per import request while building the ledger.
const BATCH: usize = 100;

/// Builds the ledger, then times the report.
pub fn run(b: &UsageBench) -> Result<UsageResult, UsageBenchError> {
    let temp;
    let dir = match &b.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let ledger = dir.join("usage.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", ledger.display()));
    }
    let started = Instant::now();
    let (turns, subagents) = build(b, &ledger)?;
    let build_secs = started.elapsed().as_secs_f64();

    let conn = nex::query::open_read_only(&ledger)?
        .ok_or_else(|| UsageBenchError::Process("the built ledger has no schema".into()))?;
    let prices = PriceTable::builtin();
    let mut library = Vec::new();
    let mut rows = 0;
    // One untimed run warms the page cache, as a ledger in use is.
    for run in 0..=b.runs.max(1) {
        let t = Instant::now();
        let facts = session_facts(&conn)?;
        let report = usage_report(&conn, &facts, &Filters::default(), GroupBy::Day, &prices)?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        rows = report.rows.len();
        if run > 0 {
            library.push(ms);
        }
    }
    let process_ms = match nex_binary(b) {
        Some(nex) => Some(time_process(&nex, &ledger, &dir, b.runs.max(1))?),
        None => None,
    };
    Ok(UsageResult {
        sessions: b.sessions as u64,
        subagents,
        turns,
        ledger_bytes: std::fs::metadata(&ledger)?.len(),
        build_secs,
        rows,
        library_ms: Spread::of_or_nan(&library),
        process_ms,
    })
}

/// Imports the corpus; returns (turns, subagents).
fn build(b: &UsageBench, ledger: &Path) -> Result<(u64, u64), UsageBenchError> {
    let mut conn = nex::ledger::open_agents(ledger)?;
    let opts = ImportOptions::default();
    let (mut turns, mut subagents) = (0u64, 0u64);
    let mut batch: Vec<ImportSessionItem> = Vec::with_capacity(BATCH);
    let mut previous: Option<(String, String)> = None;
    for i in 0..b.sessions {
        let large = b.large_every > 0 && i % b.large_every == b.large_every - 1;
        let mut item = session(b.seed, i, large.then_some(b.large_turns));
        shorten(&mut item);
        if i % 7 == 3 {
            item.source_provider = "codex".into();
            for t in &mut item.turns {
                t.model = Some("gpt-5-codex".into());
                t.cached_input_tokens = t.input_tokens.map(|n| n * 3);
                t.reasoning_tokens = t.output_tokens.map(|n| n / 4);
            }
        }
        if i % 10 == 9
            && let Some((provider, parent)) = &previous
            && *provider == item.source_provider
        {
            item.session.is_subagent = true;
            item.session.parent_source_session_id = Some(parent.clone());
            item.session.spawn_tool_call_id = Some("toolu-0-0".into());
            subagents += 1;
        }
        previous = Some((item.source_provider.clone(), item.source_session_id.clone()));
        turns += item.turns.len() as u64;
        batch.push(item);
        if batch.len() == BATCH || i + 1 == b.sessions {
            let req = ImportRequest {
                source: "aix".into(),
                mode: "backfill".into(),
                idempotency_key: format!("bench-usage-{i}"),
                items: std::mem::take(&mut batch),
                ..ImportRequest::default()
            };
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            import::import(&tx, &req, &opts)?;
            nex::ledger::search_index::flush(&tx)?;
            tx.commit()?;
        }
    }
    drop(conn);
    Ok((turns, subagents))
}

/// Short message text and tool results (see the module doc).
fn shorten(item: &mut ImportSessionItem) {
    for m in &mut item.messages {
        if let Some(c) = &mut m.content {
            c.truncate(c.floor_char_boundary(64));
        }
    }
    for c in &mut item.tool_calls {
        c.result_json = Some(serde_json::Value::String("ok".into()).into());
    }
}

fn nex_binary(b: &UsageBench) -> Option<PathBuf> {
    b.nex.clone().or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let nex = exe.parent()?.join("nex");
        nex.exists().then_some(nex)
    })
}

fn time_process(
    nex: &Path,
    ledger: &Path,
    dir: &Path,
    runs: usize,
) -> Result<Spread, UsageBenchError> {
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    let mut times = Vec::new();
    for run in 0..=runs {
        let t = Instant::now();
        let out = Command::new(nex)
            .args(["usage", "--by", "day", "--json", "--ledger"])
            .arg(ledger)
            .arg("--home")
            .arg(&home)
            .env_remove("NEX_LEDGER")
            .env_remove("NEX_HOME")
            .output()?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            return Err(UsageBenchError::Process(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        if run > 0 {
            times.push(ms);
        }
    }
    Ok(Spread::of_or_nan(&times))
}
