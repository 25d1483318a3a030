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
use super::floor::{self, FloorCpu};
use super::procs::{Binaries, Pair, PairOutcome, root_args};
use super::raw::{ToolBodies, insert_rows};
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
    /// CPU seconds (user + system) of `aix` and `nex` together per backfill, and of the raw
    /// insert loop per run.
    pub backfill_cpu_secs: Vec<f64>,
    pub raw_cpu_secs: Vec<f64>,
    /// backfill CPU / raw CPU per run.
    pub cpu_ratio: Spread,
    /// The least CPU an import spends besides the raw loop's ([`floor`]), per run, measured
    /// after that run's raw loop.
    pub floor_cpu: Vec<FloorCpu>,
    /// (raw CPU + floor) / raw CPU per run: the lowest `cpu_ratio` any importer of this corpus
    /// can reach (P1's CPU target is 1.5).
    pub floor_cpu_ratio: Spread,
    /// Bytes of the ledger a backfill leaves (database + WAL, after `nex` exited), of the raw
    /// loop's, and the backfill's per corpus byte.
    pub ledger_bytes: u64,
    pub raw_ledger_bytes: u64,
    pub ledger_per_corpus_byte: f64,
    /// Bytes of the ledger's full-text index (the pages of the `*_fts*` tables, `dbstat`), and
    /// the ledger's per corpus byte without them (P9; the index is P10's).
    pub search_index_bytes: u64,
    pub ledger_per_corpus_byte_without_index: f64,
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

/// A ledger's bytes on disk: the database and its WAL.
fn ledger_bytes(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// The pages of the full-text index's tables (FTS5 shadow tables and their indexes).
fn search_index_bytes(path: &Path) -> rusqlite::Result<u64> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let bytes: i64 = conn.query_row(
        "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE '%\\_fts\\_%' ESCAPE '\\'",
        [],
        |r| r.get(0),
    )?;
    Ok(bytes.max(0) as u64)
}

/// CPU seconds (user + system) of the calling thread so far.
pub fn thread_cpu_secs() -> f64 {
    cpu_secs(nix::sys::resource::UsageWho::RUSAGE_THREAD)
}

/// CPU seconds (user + system) of `who` so far.
fn cpu_secs(who: nix::sys::resource::UsageWho) -> f64 {
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    nix::sys::resource::getrusage(who)
        .map(|u| secs(u.user_time()) + secs(u.system_time()))
        .unwrap_or(f64::NAN)
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
    let bodies = ToolBodies::of(&items);
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
    let (mut backfill_cpu, mut raw_cpu) = (Vec::new(), Vec::new());
    let mut floor_cpu = Vec::new();
    let corpus_roots: Vec<PathBuf> = bench
        .claude_dirs
        .iter()
        .chain(&bench.codex_dirs)
        .cloned()
        .collect();
    let (mut ledger_size, mut raw_size, mut index_size) = (0, 0, 0);
    let (mut aix_rss, mut nex_rss) = (0u64, 0u64);
    let (mut re_frames, mut re_imported) = (0, 0);
    for run in 0..bench.runs.max(1) {
        // Alternate the order so neither side always runs on a warmer cache.
        let raw_first = run % 2 == 1;
        let raw_path = dir.join("raw.db");
        // The raw loop runs on this thread: its CPU is the thread's.
        let measure_raw = || -> Result<(f64, f64, u64), BenchError> {
            use nix::sys::resource::UsageWho;
            remove_ledger(&raw_path);
            let mut conn = ledger::open_agents(&raw_path)?;
            let (t, cpu) = (Instant::now(), cpu_secs(UsageWho::RUSAGE_THREAD));
            insert_rows(&mut conn, &items, &bodies)?;
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu_secs(UsageWho::RUSAGE_THREAD) - cpu;
            drop(conn);
            let bytes = ledger_bytes(&raw_path);
            remove_ledger(&raw_path);
            Ok((secs, cpu, bytes))
        };
        let mut raw = |raw_secs: &mut Vec<f64>| -> Result<(), BenchError> {
            let (secs, cpu, bytes) = measure_raw()?;
            raw_secs.push(secs);
            raw_cpu.push(cpu);
            raw_size = bytes;
            floor_cpu.push(floor::measure(&corpus_roots, &items)?);
            Ok(())
        };
        if raw_first {
            raw(&mut raw_secs)?;
        }
        let ledger_path = dir.join("backfill.db");
        remove_ledger(&ledger_path);
        // Reaped children's CPU: the pair (and the `sync`s, negligible).
        let children = || cpu_secs(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
        let cpu_before = children();
        let first = Pair::spawn(&bench.bins, &emit_args, &ledger_path, false)?.finish()?;
        backfill_cpu.push(children() - cpu_before);
        check(&first, sessions)?;
        ledger_size = ledger_bytes(&ledger_path);
        index_size = search_index_bytes(&ledger_path)?;
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
            raw(&mut raw_secs)?;
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
        cpu_ratio: spread(&super::ratios(&backfill_cpu, &raw_cpu)),
        floor_cpu_ratio: spread(
            &floor_cpu
                .iter()
                .zip(&raw_cpu)
                .map(|(f, raw)| (raw + f.total_secs()) / raw)
                .collect::<Vec<_>>(),
        ),
        floor_cpu,
        backfill_cpu_secs: backfill_cpu,
        raw_cpu_secs: raw_cpu,
        ledger_bytes: ledger_size,
        raw_ledger_bytes: raw_size,
        ledger_per_corpus_byte: ledger_size as f64 / corpus_bytes.max(1) as f64,
        search_index_bytes: index_size,
        ledger_per_corpus_byte_without_index: ledger_size.saturating_sub(index_size) as f64
            / corpus_bytes.max(1) as f64,
        rebackfill_frames: re_frames,
        rebackfill_imported: re_imported,
    })
}
