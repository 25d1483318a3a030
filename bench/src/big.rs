//! The `big-session` scenario (P8): one Claude Code session file of a given size (the `files`
//! generator's turns), `aix emit --mode backfill | nex import replay -` over it on a fresh
//! ledger, both processes' peak RSS against the bound `2 × session size + 64 MiB`, and a check
//! that the session landed complete: the ledger's turns, messages and tool calls equal those of
//! the same file parsed in-process (after the run, so the parse is not in the measured peak).

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use super::backfill::corpus_items;
use super::files::{FileCorpusSpec, FileCorpusStats, projects_dir, write_corpus};
use super::procs::{Binaries, Pair, root_args};
use super::replay::BenchError;
use nex::ledger;

/// One big-session run.
#[derive(Debug, Clone)]
pub struct BigSessionBench {
    /// Session size, bytes (the file ends at the first turn boundary past it).
    pub bytes: u64,
    pub seed: u64,
    /// Work directory for the session file and ledger (a temp dir when `None`).
    pub dir: Option<PathBuf>,
    pub bins: Binaries,
}

/// Row counts of one session, expected (parsed in-process) or found in the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCounts {
    pub sessions: u64,
    pub turns: u64,
    pub messages: u64,
    pub tool_calls: u64,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BigSessionResult {
    pub session_bytes: u64,
    pub file: FileCorpusStats,
    pub secs: f64,
    pub frames: u64,
    pub aix_peak_rss_mib: f64,
    pub nex_peak_rss_mib: f64,
    /// `2 × session size + 64 MiB`, MiB (P8), held by each process.
    pub bound_mib: f64,
    pub within_bound: bool,
    pub expected: SessionCounts,
    pub ledger: SessionCounts,
    pub complete: bool,
}

/// Runs the scenario.
///
/// # Errors
/// I/O or ledger failures, a process that fails, or an import with rejects or failures.
/// A session that lands incomplete is reported (`complete: false`), not an error.
pub fn run(bench: &BigSessionBench) -> Result<BigSessionResult, BenchError> {
    let tmp = tempfile::tempdir()?;
    let dir = bench
        .dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let corpus = dir.join("big-corpus");
    let _ = std::fs::remove_dir_all(&corpus);
    std::fs::create_dir_all(&corpus)?;
    let spec = FileCorpusSpec {
        seed: bench.seed,
        sessions: 1,
        large_every: 1,
        large_bytes: (bench.bytes, bench.bytes + 1),
        subagent_every: 0,
    };
    let file = write_corpus(&spec, &corpus)?;
    let claude = vec![projects_dir(&corpus)];
    let empty = dir.join("empty-root");
    std::fs::create_dir_all(&empty)?;
    let ledger_path = dir.join("big.db");
    remove_ledger(&ledger_path);
    let _ = std::process::Command::new("sync").status();

    let mut args: Vec<String> = vec!["emit".into(), "--mode".into(), "backfill".into()];
    args.extend(root_args(&claude, &[], &empty));
    let outcome = Pair::spawn(&bench.bins, &args, &ledger_path, false)?.finish()?;
    let r = &outcome.report;
    let rejected: u64 = r.rejected.values().sum();
    if r.failed > 0 || rejected > 0 {
        return Err(BenchError::Incomplete {
            imported: r.imported + r.upserted,
            sessions: 1,
            rejected: rejected + r.failed,
        });
    }

    let found = ledger_counts(&ledger::open_agents(&ledger_path)?)?;
    let expected =
        corpus_items(&claude, &[])?
            .iter()
            .fold(SessionCounts::default(), |mut c, item| {
                c.sessions += 1;
                c.turns += item.turns.len() as u64;
                c.messages += item.messages.len() as u64;
                c.tool_calls += item.tool_calls.len() as u64;
                c
            });
    remove_ledger(&ledger_path);
    let _ = std::fs::remove_dir_all(&corpus);

    let mib = |kib: u64| kib as f64 / 1024.0;
    let bound_mib = 2.0 * file.bytes as f64 / (1 << 20) as f64 + 64.0;
    let (aix, nex) = (mib(outcome.aix_rss_kib), mib(outcome.nex_rss_kib));
    Ok(BigSessionResult {
        session_bytes: file.bytes,
        file,
        secs: outcome.secs,
        frames: r.frames,
        aix_peak_rss_mib: aix,
        nex_peak_rss_mib: nex,
        bound_mib,
        within_bound: aix <= bound_mib && nex <= bound_mib,
        complete: expected.sessions == 1 && found == expected,
        expected,
        ledger: found,
    })
}

fn ledger_counts(conn: &Connection) -> rusqlite::Result<SessionCounts> {
    let count = |table: &str| -> rusqlite::Result<u64> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
    };
    Ok(SessionCounts {
        sessions: count("sessions")?,
        turns: count("turns")?,
        messages: count("messages")?,
        tool_calls: count("tool_calls")?,
    })
}

fn remove_ledger(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
