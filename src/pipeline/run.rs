//! The entry point of a run: builds the import pipeline once, drives it to the end, and returns
//! the run report. Used by the daemon (one call per worker run), `nex import replay` and the
//! benchmark.
//!
//! ```text
//! source -> decode -> assemble -> validate -> sink -> [telemetry] -> [taps] -> [audit] -> metrics
//! ```

use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::builder::PipelineBuilder;
use super::report::{FinalOutcome, RunCounters, RunOutcome, RunReport};
use super::writer::LedgerHandle;
use super::{BatchPolicy, Bus, Flow, ImportEvent, PipelineError, Stage, TerminalKind};
use crate::import::ImportOptions;
use crate::protocol::Code;
use crate::stages::assemble::ChunkAssembler;
use crate::stages::audit::{AuditConfig, AuditStage, Ending};
use crate::stages::decode::Decoder;
use crate::stages::metrics::{DEFAULT_PROGRESS_INTERVAL, MetricsTap};
use crate::stages::sink::{DEFAULT_IN_FLIGHT, LedgerSink};
use crate::stages::source::{DEFAULT_MAX_FRAME_BYTES, frame_source};
use crate::stages::telemetry::TelemetryStage;
use crate::stages::validate::Validator;
use crate::stages::{FrameOutcome, Line, RunIdCell};

/// Settings of one run's pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The run's id when known up front (the daemon's `run.start`); frames of any other run are
    /// rejected. `None`: the first frame's `runId` is the run's id.
    pub run_id: Option<String>,
    /// Longest accepted line (default 64 MiB); longer lines are rejected `frame_too_large`.
    pub max_frame_bytes: usize,
    /// When a batch goes to the ledger writer (default 512 ops / 25 ms).
    pub batch: BatchPolicy,
    /// Batches submitted and not yet committed (default 2). With `batch.max_ops` it bounds the
    /// frames read ahead of the last commit.
    pub in_flight_batches: usize,
    /// Minimum time between two `import.run.progress` events (default 250 ms).
    pub progress_interval: Duration,
    /// Import service options: persona override, `max_inflated_bytes`, chunk TTL.
    pub import: ImportOptions,
    /// Persist the run summary in `nexus.db.import_runs`.
    pub audit: Option<AuditConfig>,
    /// Insert the telemetry stage; its histograms land in the report.
    pub telemetry: bool,
    /// A supervisor (the control plane) publishes the run's lifecycle events
    /// (`import.run.started|completed|failed`) with what only it knows (the worker's pid, the
    /// mode, the job, the final outcome and whether to retry); the pipeline then publishes its
    /// frame events only. `false`: the pipeline publishes the lifecycle too.
    pub supervised: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            run_id: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            batch: BatchPolicy::default(),
            in_flight_batches: DEFAULT_IN_FLIGHT,
            progress_interval: DEFAULT_PROGRESS_INTERVAL,
            import: ImportOptions::default(),
            audit: None,
            telemetry: false,
            supervised: false,
        }
    }
}

/// Extra `FrameOutcome -> FrameOutcome` stages, inserted after telemetry and before audit.
pub type OutcomeTaps = Vec<Box<dyn Stage<FrameOutcome, FrameOutcome>>>;

/// Runs the import pipeline over `input` (a worker's stdout, a recorded stream) until it ends,
/// a terminal frame arrives, or `cancel` fires; writes through `ledger`; publishes on `bus`.
///
/// # Guarantees
/// Every frame read is, when this returns `Ok`, either committed or rejected (with its code in
/// the report); nothing is reported (events, counters, cursors) before its commit.
///
/// # Cancellation
/// `cancel` stops the reading of input only; everything already read is drained and committed,
/// and the report's outcome is `cancelled`.
///
/// # Errors
/// A read error of `input`, a ledger failure (the failing batch is not committed), a failed
/// audit write. `import.run.failed` is published with the code.
pub async fn run_pipeline<R>(
    input: R,
    config: PipelineConfig,
    ledger: &LedgerHandle,
    bus: Option<Bus>,
    cancel: CancellationToken,
) -> Result<RunReport, PipelineError>
where
    R: AsyncRead + Send + 'static,
{
    let lines = frame_source(input, config.max_frame_bytes, cancel.clone());
    run_lines(lines, config, ledger, bus, cancel, Vec::new()).await
}

/// [`run_pipeline`] from any line stream (tests, other transports), with extra outcome taps.
/// Cancellation must already be applied to `lines` (see
/// [`crate::stages::source::lines_source`]); `cancel` is only read to name the outcome.
pub async fn run_lines(
    lines: Flow<Line>,
    config: PipelineConfig,
    ledger: &LedgerHandle,
    bus: Option<Bus>,
    cancel: CancellationToken,
    taps: OutcomeTaps,
) -> Result<RunReport, PipelineError> {
    let span = tracing::info_span!("run", run_id = config.run_id.as_deref());
    let started = Instant::now();
    let run_id = RunIdCell::new(config.run_id.clone());
    let lifecycle = |event: ImportEvent| {
        if let Some(bus) = bus.as_ref().filter(|_| !config.supervised) {
            // Events are advisory: no subscriber is fine.
            let _ = bus.send(event);
        }
    };
    lifecycle(ImportEvent::RunStarted {
        run_id: config.run_id.clone(),
        mode: None,
        job_id: None,
        pid: None,
    });

    let (metrics, tally) = MetricsTap::new(run_id.clone(), bus.clone(), config.progress_interval);
    let (telemetry, telemetry_handle) = match config.telemetry {
        true => {
            let (stage, handle) = TelemetryStage::new();
            (Some(stage), Some(handle))
        }
        false => (None, None),
    };
    let sink = LedgerSink::new(
        ledger.clone(),
        config.batch,
        config.import.clone(),
        run_id.clone(),
    )
    .with_in_flight(config.in_flight_batches);
    let audit = config
        .audit
        .clone()
        .map(|a| AuditStage::new(a, run_id.clone(), cancel.clone()));

    let pipeline = span.in_scope(|| {
        let builder = PipelineBuilder::source("source", lines)
            .stage(Decoder::with_cell(run_id.clone()))
            .stage(ChunkAssembler::new())
            .stage(Validator::new())
            .stream_stage(sink)
            .option_stage(telemetry)
            .taps(taps);
        let builder = match audit {
            Some(audit) => builder.stream_stage(audit),
            None => builder,
        };
        builder.stage(metrics).build()
    });

    let mut flow = pipeline.flow;
    let result = async {
        while let Some(next) = flow.next().await {
            next?;
        }
        Ok::<(), PipelineError>(())
    }
    .instrument(span.clone())
    .await;
    drop(flow);

    let run_id = run_id.get().map(str::to_owned);
    let counters = tally.snapshot();
    match result {
        Ok(()) => {
            let outcome = RunOutcome::from_parts(tally.terminal(), cancel.is_cancelled());
            lifecycle(ended(&config, run_id.clone(), Ok(&outcome), &counters));
            Ok(RunReport {
                run_id,
                outcome,
                counters,
                duration_ms: started.elapsed().as_millis() as u64,
                stages: pipeline.counters.iter().map(|c| c.snapshot()).collect(),
                telemetry: telemetry_handle.map(|h| h.snapshot()),
            })
        }
        Err(e) => {
            span.in_scope(|| tracing::error!(error_code = %e.code(), "run failed"));
            lifecycle(ended(&config, run_id, Err(e.code().as_str()), &counters));
            Err(e)
        }
    }
}

/// The end of an unsupervised run, in the one vocabulary: the audit rule's outcome when one is
/// configured, else [`RunOutcome::final_outcome`].
fn ended(
    config: &PipelineConfig,
    run_id: Option<String>,
    ending: Ending<'_>,
    counters: &RunCounters,
) -> ImportEvent {
    let (outcome, error_code) = match &config.audit {
        Some(audit) => audit.decide(ending),
        None => match ending {
            Ok(outcome) => outcome.final_outcome(),
            Err(code) => (FinalOutcome::Failed, Some(code.to_owned())),
        },
    };
    let counters = counters.into();
    match outcome {
        FinalOutcome::Failed => {
            let error_code = error_code.unwrap_or_default();
            // A worker that said so, a worker gone mid-run, a busy ledger: running again may
            // succeed.
            let retryable = match ending {
                Ok(RunOutcome::Terminal {
                    terminal: TerminalKind::Error { retryable, .. },
                }) => retryable.unwrap_or(false),
                _ => {
                    error_code == Code::WorkerExited.as_str()
                        || error_code == Code::LedgerBusy.as_str()
                }
            };
            ImportEvent::RunFailed {
                run_id,
                error_code,
                retryable,
                counters,
            }
        }
        outcome => ImportEvent::RunCompleted {
            run_id,
            outcome,
            counters,
        },
    }
}
