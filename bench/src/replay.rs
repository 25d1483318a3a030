//! The `replay` scenario: the corpus' frame stream through the full pipeline (file source,
//! decode, chunk assembly, validation, batched writer, one transaction per batch) against the
//! raw insert loop of the same rows, in the same process and run, each on a fresh ledger.
//! Reported as the ratio pipeline / raw (lower is better; 1.0 is the SQLite floor), median of
//! `runs` runs with min and max (TARGETS.md: ratios, never absolute figures).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Spread;
use super::corpus::{CorpusSpec, CorpusStats, generate};
use super::raw::{ToolBodies, insert_rows};
use nex::ledger;
use nex::pipeline::writer::{LedgerWriter, WriterConfig};
use nex::pipeline::{PipelineConfig, RunReport, run_pipeline};

/// Why a benchmark could not run or its result is not trustworthy.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    #[error("raw insert loop: {0}")]
    Raw(#[from] rusqlite::Error),
    /// The pipeline failed ([`StreamEnd::Failed`]): its code and message.
    #[error("pipeline: {message} ({code})")]
    Pipeline {
        code: nex::protocol::Code,
        message: String,
    },
    /// The pipeline did not import every session without rejects: the timing would lie.
    #[error("replay imported {imported} of {sessions} sessions with {rejected} rejects")]
    Incomplete {
        imported: u64,
        sessions: u64,
        rejected: u64,
    },
}

impl BenchError {
    /// `report`, unless its pipeline failed.
    pub fn of(report: RunReport) -> Result<RunReport, BenchError> {
        report
            .into_result()
            .map_err(|(code, message)| BenchError::Pipeline { code, message })
    }
}

/// One replay benchmark.
#[derive(Debug, Clone)]
pub struct ReplayBench {
    pub spec: CorpusSpec,
    /// At least 3 (TARGETS.md).
    pub runs: usize,
    /// Where the corpus file and ledgers go (a temp dir when `None`).
    pub dir: Option<PathBuf>,
}

/// Timings in seconds per run, and their spreads.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResult {
    pub corpus: CorpusStats,
    pub replay_secs: Vec<f64>,
    pub raw_secs: Vec<f64>,
    /// replay / raw, per run.
    pub ratios: Vec<f64>,
    pub replay: Spread,
    pub raw: Spread,
    pub ratio: Spread,
}

fn fresh_ledger(dir: &Path, name: &str) -> Result<(PathBuf, rusqlite::Connection), BenchError> {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let conn = ledger::open_agents(&path)?;
    Ok((path, conn))
}

/// Deletes a ledger, then flushes the page cache to disk (best effort: `sync` may be missing),
/// so the next measurement does not pay for this one's writeback.
fn remove_ledger(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let _ = std::process::Command::new("sync").status();
}

/// Seconds of the raw insert loop on a fresh ledger, connection close included.
fn time_raw(
    dir: &Path,
    run: usize,
    items: &[nex::protocol::ImportSessionItem],
) -> Result<f64, BenchError> {
    let (path, mut conn) = fresh_ledger(dir, &format!("raw-{run}.db"))?;
    let bodies = ToolBodies::of(items);
    let started = Instant::now();
    insert_rows(&mut conn, items, &bodies)?;
    // Closing checkpoints what is left in the WAL: timed, as the replay times its writer's
    // close (`writer.join()`), so that neither side defers work past its clock.
    drop(conn);
    let secs = started.elapsed().as_secs_f64();
    remove_ledger(&path);
    Ok(secs)
}

/// Seconds of the pipeline replaying the corpus file on a fresh ledger (writer start and the
/// final join included), checked for completeness.
fn time_replay(
    dir: &Path,
    run: usize,
    corpus: &Path,
    runtime: &tokio::runtime::Runtime,
    sessions: u64,
) -> Result<f64, BenchError> {
    let (path, conn) = fresh_ledger(dir, &format!("replay-{run}.db"))?;
    let started = Instant::now();
    let writer = LedgerWriter::spawn(conn, WriterConfig::default())?;
    let report = runtime.block_on(async {
        let file = tokio::fs::File::open(corpus).await?;
        let report = run_pipeline(
            file,
            PipelineConfig::default(),
            &writer.handle(),
            None,
            CancellationToken::new(),
        )
        .await;
        BenchError::of(report)
    })?;
    writer.join();
    let secs = started.elapsed().as_secs_f64();
    remove_ledger(&path);
    let c = &report.counters;
    if c.imported + c.upserted != sessions || c.rejected_total() > 0 {
        return Err(BenchError::Incomplete {
            imported: c.imported + c.upserted,
            sessions,
            rejected: c.rejected_total(),
        });
    }
    Ok(secs)
}

/// Runs the benchmark. Blocking: builds its own current-thread runtime, like
/// `nex import replay`.
pub fn run(bench: &ReplayBench) -> Result<ReplayResult, BenchError> {
    let temp;
    let dir = match &bench.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let corpus = generate(bench.spec);
    let corpus_path = dir.join("corpus.jsonl");
    std::fs::write(&corpus_path, &corpus.frames)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sessions = corpus.stats.sessions;
    let mut replay_secs = Vec::new();
    let mut raw_secs = Vec::new();
    for run in 0..bench.runs.max(1) {
        // Alternate the order so that neither side always runs on a disk still busy writing
        // back the other's pages.
        if run % 2 == 0 {
            raw_secs.push(time_raw(&dir, run, &corpus.items)?);
            replay_secs.push(time_replay(&dir, run, &corpus_path, &runtime, sessions)?);
        } else {
            replay_secs.push(time_replay(&dir, run, &corpus_path, &runtime, sessions)?);
            raw_secs.push(time_raw(&dir, run, &corpus.items)?);
        }
        tracing::info!(
            run,
            replay_secs = replay_secs[run],
            raw_secs = raw_secs[run],
            "bench run"
        );
    }
    let ratios: Vec<f64> = replay_secs
        .iter()
        .zip(&raw_secs)
        .map(|(r, b)| r / b.max(f64::MIN_POSITIVE))
        .collect();
    let spread = |v: &[f64]| {
        Spread::of(v).unwrap_or(Spread {
            median: 0.0,
            min: 0.0,
            max: 0.0,
        })
    };
    Ok(ReplayResult {
        corpus: corpus.stats,
        replay: spread(&replay_secs),
        raw: spread(&raw_secs),
        ratio: spread(&ratios),
        replay_secs,
        raw_secs,
        ratios,
    })
}
