//! The `backfill` (P1, P3) and `rebackfill` (P4) scenarios on a file corpus (`files`):
//!
//! - backfill: `aix emit --mode backfill --claude-dir DIR/projects | nex import replay -`, the
//!   release binaries as two processes with a pipe, on a fresh ledger; against the raw insert
//!   loop (`raw`) of the same items (parsed once, before timing) on another fresh ledger, in the
//!   same run. Ratio end-to-end / raw, peak RSS of both processes.
//! - rebackfill: right after each backfill, `aix worker --stdio` given the cursors committed in
//!   that ledger (`ledger::load_cursors`) in its `run.start`; its time as a ratio of the first
//!   backfill's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::Spread;
use super::procs::{Binaries, Pair, PairOutcome, root_args};
use super::raw::insert_rows;
use super::replay::BenchError;
use nex::aix::{RootOverrides, WorkerOptions, default_parser_factory};
use nex::ledger;
use nex::protocol::{ImportSessionItem, RunMode};

/// One backfill benchmark.
#[derive(Debug, Clone)]
pub struct BackfillBench {
    /// Claude Code `projects` roots.
    pub claude_dirs: Vec<PathBuf>,
    /// Codex `sessions` roots.
    pub codex_dirs: Vec<PathBuf>,
    pub runs: usize,
    /// Ledgers go here (a temp dir when `None`).
    pub dir: Option<PathBuf>,
    pub bins: Binaries,
}

/// Per-run figures and their spreads.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillResult {
    pub sessions: u64,
    pub corpus_bytes: u64,
    pub backfill_secs: Vec<f64>,
    pub raw_secs: Vec<f64>,
    pub rebackfill_secs: Vec<f64>,
    /// backfill / raw per run (P1).
    pub ratio: Spread,
    /// rebackfill / backfill per run (P4).
    pub rebackfill_ratio: Spread,
    pub backfill: Spread,
    pub raw: Spread,
    /// Peak RSS (MiB) over the runs, per process (P3).
    pub aix_peak_rss_mib: f64,
    pub nex_peak_rss_mib: f64,
    /// The last rebackfill's report counters: frames, imported, skipped.
    pub rebackfill_frames: u64,
    pub rebackfill_imported: u64,
}

/// Every item the worker would import, parsed in-process (lineage filled as a backfill
/// would), one per session (the last one seen).
pub fn corpus_items(
    claude: &[PathBuf],
    codex: &[PathBuf],
) -> std::io::Result<Vec<ImportSessionItem>> {
    let options = WorkerOptions::resolve(
        &RootOverrides {
            claude_dirs: claude.to_vec(),
            codex_dirs: codex.to_vec(),
            full: true,
            ..Default::default()
        },
        None,
    );
    let mut buf = Vec::new();
    nex::aix::scan(&options, &default_parser_factory(), Some(&mut buf))?;
    let mut by_id: HashMap<(String, String), usize> = HashMap::new();
    let mut items: Vec<ImportSessionItem> = Vec::new();
    for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let item: ImportSessionItem =
            serde_json::from_slice(line).map_err(std::io::Error::other)?;
        let key = (item.source_provider.clone(), item.source_session_id.clone());
        match by_id.get(&key) {
            Some(&i) => items[i] = item,
            None => {
                by_id.insert(key, items.len());
                items.push(item);
            }
        }
    }
    Ok(items)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

fn remove_ledger(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let _ = std::process::Command::new("sync").status();
}

fn check(outcome: &PairOutcome, sessions: u64) -> Result<(), BenchError> {
    let r = &outcome.report;
    let rejected: u64 = r.rejected.values().sum();
    if r.failed > 0 || rejected > 0 || r.imported + r.upserted < sessions {
        return Err(BenchError::Incomplete {
            imported: r.imported + r.upserted,
            sessions,
            rejected: rejected + r.failed,
        });
    }
    Ok(())
}

/// Runs the scenario.
///
/// # Errors
/// I/O or ledger failures, a process that fails, or a backfill that does not import every
/// session without rejects (the timing would lie).
pub fn run(bench: &BackfillBench) -> Result<BackfillResult, BenchError> {
    let tmp = tempfile::tempdir()?;
    let dir = bench
        .dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let empty = dir.join("empty-root");
    std::fs::create_dir_all(&empty)?;
    let items = corpus_items(&bench.claude_dirs, &bench.codex_dirs)?;
    let sessions = items.len() as u64;
    let corpus_bytes = bench
        .claude_dirs
        .iter()
        .chain(&bench.codex_dirs)
        .map(|d| dir_bytes(d))
        .sum();
    let roots = root_args(&bench.claude_dirs, &bench.codex_dirs, &empty);
    let mut emit_args: Vec<String> = vec!["emit".into(), "--mode".into(), "backfill".into()];
    emit_args.extend(roots.iter().cloned());
    let mut worker_args: Vec<String> = vec!["worker".into(), "--stdio".into()];
    worker_args.extend(roots.iter().cloned());

    let (mut backfill_secs, mut raw_secs, mut re_secs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut aix_rss, mut nex_rss) = (0u64, 0u64);
    let (mut re_frames, mut re_imported) = (0, 0);
    for run in 0..bench.runs.max(1) {
        // Alternate the order so neither side always runs on a warmer cache.
        let raw_first = run % 2 == 1;
        let raw_path = dir.join("raw.db");
        let measure_raw = || -> Result<f64, BenchError> {
            remove_ledger(&raw_path);
            let mut conn = ledger::open_agents(&raw_path)?;
            let t = Instant::now();
            insert_rows(&mut conn, &items)?;
            let secs = t.elapsed().as_secs_f64();
            drop(conn);
            remove_ledger(&raw_path);
            Ok(secs)
        };
        if raw_first {
            raw_secs.push(measure_raw()?);
        }
        let ledger_path = dir.join("backfill.db");
        remove_ledger(&ledger_path);
        let first = Pair::spawn(&bench.bins, &emit_args, &ledger_path, false)?.finish()?;
        check(&first, sessions)?;
        backfill_secs.push(first.secs);
        aix_rss = aix_rss.max(first.aix_rss_kib);
        nex_rss = nex_rss.max(first.nex_rss_kib);

        let cursors = {
            let conn = ledger::open_agents(&ledger_path)?;
            ledger::load_cursors(&conn, "aix")?
        };
        let _ = std::process::Command::new("sync").status();
        let mut again = Pair::spawn(&bench.bins, &worker_args, &ledger_path, true)?;
        again.start(RunMode::Backfill, cursors, &format!("rebackfill-{run}"))?;
        let again = again.finish()?;
        let r = &again.report;
        if r.failed > 0 || r.rejected.values().sum::<u64>() > 0 {
            return Err(BenchError::Incomplete {
                imported: r.imported,
                sessions,
                rejected: r.failed + r.rejected.values().sum::<u64>(),
            });
        }
        re_frames = r.frames;
        re_imported = r.imported + r.upserted;
        re_secs.push(again.secs);
        remove_ledger(&ledger_path);
        if !raw_first {
            raw_secs.push(measure_raw()?);
        }
    }
    let ratios = super::ratios(&backfill_secs, &raw_secs);
    let re_ratios = super::ratios(&re_secs, &backfill_secs);
    let spread = Spread::of_or_nan;
    Ok(BackfillResult {
        sessions,
        corpus_bytes,
        ratio: spread(&ratios),
        rebackfill_ratio: spread(&re_ratios),
        backfill: spread(&backfill_secs),
        raw: spread(&raw_secs),
        backfill_secs,
        raw_secs,
        rebackfill_secs: re_secs,
        aix_peak_rss_mib: aix_rss as f64 / 1024.0,
        nex_peak_rss_mib: nex_rss as f64 / 1024.0,
        rebackfill_frames: re_frames,
        rebackfill_imported: re_imported,
    })
}
