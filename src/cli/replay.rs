//! `nex import replay [--ledger PATH] [--persona ID] FILE|-`: runs a recorded stream of worker
//! frames (the stdout of an `aix` run, JSON Lines) through the full import pipeline into the
//! ledger and prints ONE JSON run report on stdout:
//!
//! ```json
//! {"runId":"…","frames":12,"rejected":{"frame_json_invalid":1},"imported":3,"upserted":0,
//!  "skipped":0,"failed":0,"chunksStaged":2,"uploadsCompleted":1,"cursorsStored":3,"durationMs":41}
//! ```
//!
//! The run's id is the first frame's `runId`. Exit status 0 when the stream was consumed,
//! whatever was rejected (rejects, including request-level service failures, are counted under
//! their codes); non-zero when the input cannot be read or the ledger cannot be opened or
//! written.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

use crate::import::ImportOptions;
use crate::ledger::{self, LedgerError};
use crate::pipeline::writer::{LedgerWriter, WriterConfig};
use crate::pipeline::{PipelineConfig, RunReport, run_pipeline};
use crate::protocol::Code;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Agents ledger (default: $NEX_LEDGER, else $NEX_HOME/agents.db, else ~/.nex/agents.db);
    /// created on first use.
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Open the ledger even when it is a symbolic link (refused otherwise).
    #[arg(long)]
    pub allow_symlinked_ledger: bool,
    /// Persona for every request (overrides the frames' personaId; default: theirs, else
    /// `main`).
    #[arg(long, value_name = "ID")]
    pub persona: Option<String>,
    /// Recorded worker frames (JSON Lines); `-` reads stdin.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
}

/// The printed run report. Field names are a stable contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplaySummary {
    pub run_id: Option<String>,
    pub frames: u64,
    pub rejected: BTreeMap<String, u64>,
    pub imported: u64,
    pub upserted: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Sessions deleted by `retract` items (item rule 15); omitted when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub retracted: u64,
    /// Items of replayed requests (already in the ledger; nothing written); omitted when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub replayed: u64,
    pub chunks_staged: u64,
    pub uploads_completed: u64,
    pub cursors_stored: u64,
    pub duration_ms: u64,
    /// The worker's repaired source lines and unreadable files (omitted when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub lossy_lines: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub failed_files: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<&RunReport> for ReplaySummary {
    fn from(r: &RunReport) -> Self {
        let c = &r.counters;
        Self {
            run_id: r.run_id.clone(),
            frames: c.frames,
            rejected: c.rejected.clone(),
            imported: c.imported,
            upserted: c.upserted,
            replayed: c.replayed,
            skipped: c.skipped,
            failed: c.failed,
            retracted: c.retracted,
            chunks_staged: c.chunks_staged,
            uploads_completed: c.uploads_completed,
            cursors_stored: c.cursors_stored,
            duration_ms: r.duration_ms,
            lossy_lines: c.lossy_lines,
            failed_files: c.failed_files,
        }
    }
}

/// Why a replay did not consume its stream.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot open the ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("cannot open {path}: {source}")]
    Input {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("replay failed: {message}")]
    Pipeline { code: Code, message: String },
    #[error("cannot start the runtime or the ledger writer: {0}")]
    Runtime(#[source] io::Error),
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
}

impl ReplayError {
    pub fn code(&self) -> Code {
        match self {
            ReplayError::Ledger(e) => e.code(),
            ReplayError::Input { .. } => Code::InputReadFailed,
            ReplayError::Pipeline { code, .. } => *code,
            ReplayError::Runtime(_) => Code::InternalRuntimeFailed,
            ReplayError::Output(_) => Code::OutputWriteFailed,
        }
    }
}

/// Runs the command and prints its report; the exit code follows the module doc.
pub fn main(args: &ReplayArgs) -> ExitCode {
    match run(args).and_then(|summary| print(&summary)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error_code = %err.code(), "replay failed");
            eprintln!("nex: {err}");
            ExitCode::FAILURE
        }
    }
}

fn print(summary: &ReplaySummary) -> Result<(), ReplayError> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, summary).map_err(|e| ReplayError::Output(e.into()))?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .map_err(ReplayError::Output)
}

/// Replays `args.input` into the ledger and returns the summary (nothing printed).
pub fn run(args: &ReplayArgs) -> Result<ReplaySummary, ReplayError> {
    let path = args
        .ledger
        .clone()
        .unwrap_or_else(ledger::default_ledger_path);
    let conn = ledger::open_agents_allowing_symlink(&path, args.allow_symlinked_ledger)?;
    let config = PipelineConfig {
        import: ImportOptions {
            persona_id: args.persona.clone().filter(|p| !p.trim().is_empty()),
            ..ImportOptions::default()
        },
        ..PipelineConfig::default()
    };
    // One pipeline future plus the writer thread: a current-thread runtime is enough.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReplayError::Runtime)?;
    runtime.block_on(async {
        let input: Box<dyn AsyncRead + Send + Unpin> = if args.input.as_os_str() == "-" {
            Box::new(tokio::io::stdin())
        } else {
            let file =
                tokio::fs::File::open(&args.input)
                    .await
                    .map_err(|source| ReplayError::Input {
                        path: args.input.display().to_string(),
                        source,
                    })?;
            Box::new(file)
        };
        let writer =
            LedgerWriter::spawn(conn, WriterConfig::default()).map_err(ReplayError::Runtime)?;
        let report = run_pipeline(
            input,
            config,
            &writer.handle(),
            None,
            CancellationToken::new(),
        )
        .await;
        writer.shutdown().await;
        let report = report
            .into_result()
            .map_err(|(code, message)| ReplayError::Pipeline { code, message })?;
        Ok(ReplaySummary::from(&report))
    })
}
