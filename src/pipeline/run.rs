//! The entry point of a run: builds the import pipeline once, drives it to the end, and returns
//! the run report. Used by the daemon (one call per worker run), `nex import replay` and the
//! benchmark.
//!
//! ```text
//! source -> decode -> assemble -> validate -> sink -> [telemetry] -> metrics -> [taps] -> [audit]
//! ```
//!
//! The metrics tap is the run's one tally; the taps after it read its counters
//! ([`MetricsHandle`]) with the outcome they see already counted.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::builder::PipelineBuilder;
use super::report::{RunEnding, RunReport, StreamEnd};
use super::writer::LedgerHandle;
use super::{BatchPolicy, Bus, Flow, ImportEvent, PipelineError, Stage};
use crate::import::{ImportOptions, system_now_ms};
use crate::ledger::runs::{self, AuditConfig};
use crate::stages::assemble::ChunkAssembler;
use crate::stages::audit::AuditStage;
use crate::stages::decode::Decoder;
use crate::stages::metrics::{DEFAULT_PROGRESS_INTERVAL, MetricsHandle, MetricsTap};
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
    /// Record the run in `nexus.db.import_runs`: its start (the audit tap) and, when
    /// unsupervised, its end.
    pub audit: Option<AuditConfig>,
    /// Insert the telemetry stage; its histograms land in the report.
    pub telemetry: bool,
    /// A supervisor (the control plane) classifies the run's end and publishes its lifecycle
    /// (`import.run.started|completed|failed`, the end of its `import_runs` row) with what only
    /// it knows (the worker's pid, the mode, the job, why it stopped); the pipeline then
    /// publishes its frame events only. `false`: the pipeline classifies and publishes the
    /// lifecycle too.
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

/// Extra `FrameOutcome -> FrameOutcome` stages, inserted after metrics and before audit.
pub type OutcomeTaps = Vec<Box<dyn Stage<FrameOutcome, FrameOutcome>>>;

/// Runs the import pipeline over `input` (a worker's stdout, a recorded stream) until it ends,
/// a terminal frame arrives, or `cancel` fires; writes through `ledger`; publishes on `bus`.
///
/// # Guarantees
/// Every frame read is, when the report's end is not [`StreamEnd::Failed`], either committed
/// or rejected (with its code in the report); nothing is reported (events, counters, cursors)
/// before its commit.
///
/// # Cancellation
/// `cancel` stops the reading of input only; everything already read is drained and committed,
/// and the report's end is [`StreamEnd::Cancelled`].
///
/// # Failure
/// A read error of `input`, a ledger failure (the failing batch is not committed), a failed
/// audit write end the run with [`StreamEnd::Failed`] and its code; unsupervised,
/// `import.run.failed` is published with it.
pub async fn run_pipeline<R>(
    input: R,
    config: PipelineConfig,
    ledger: &LedgerHandle,
    bus: Option<Bus>,
    cancel: CancellationToken,
) -> RunReport
where
    R: AsyncRead + Send + 'static,
{
    let lines = frame_source(input, config.max_frame_bytes, cancel.clone());
    run_lines(lines, config, ledger, bus, cancel, Vec::new()).await
}

/// [`run_pipeline`] from any line stream (tests, other transports), with extra outcome taps.
/// Cancellation must already be applied to `lines` (see
/// [`crate::stages::source::lines_source`]); `cancel` is only read to name the end.
pub async fn run_lines(
    lines: Flow<Line>,
    config: PipelineConfig,
    ledger: &LedgerHandle,
    bus: Option<Bus>,
    cancel: CancellationToken,
    taps: OutcomeTaps,
) -> RunReport {
    run_tallied(
        lines,
        config,
        ledger,
        bus,
        cancel,
        taps,
        MetricsHandle::default(),
    )
    .await
}

/// [`run_lines`], tallying into `tally`: the taps read the run's counters there.
pub async fn run_tallied(
    lines: Flow<Line>,
    config: PipelineConfig,
    ledger: &LedgerHandle,
    bus: Option<Bus>,
    cancel: CancellationToken,
    taps: OutcomeTaps,
    tally: MetricsHandle,
) -> RunReport {
    let span = tracing::info_span!("run", run_id = config.run_id.as_deref());
    let started = Instant::now();
    let started_at_ms = system_now_ms();
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

    let metrics = MetricsTap::new(
        run_id.clone(),
        bus.clone(),
        config.progress_interval,
        tally.clone(),
    );
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
        .map(|a| AuditStage::new(a, run_id.clone(), started_at_ms));

    let pipeline = span.in_scope(|| {
        let builder = PipelineBuilder::source("source", lines)
            .stage(Decoder::with_cell(run_id.clone()))
            .stage(ChunkAssembler::new())
            .stage(Validator::new())
            .stream_stage(sink)
            .option_stage(telemetry)
            .stage(metrics)
            .taps(taps);
        match audit {
            Some(audit) => builder.stream_stage(audit).build(),
            None => builder.build(),
        }
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
    let mut end = match result {
        Ok(()) => StreamEnd::of_input(tally.terminal(), cancel.is_cancelled()),
        Err(e) => {
            span.in_scope(|| tracing::error!(error_code = %e.code(), "run failed"));
            StreamEnd::failed(&e)
        }
    };
    if !config.supervised {
        let mut ending = end.classify(None, (&counters).into());
        if let Some(audit) = config.audit.clone() {
            let recorded = record_end(audit, &run_id, started_at_ms, &counters, &ending).await;
            if let Err(e) = recorded {
                span.in_scope(|| tracing::error!(error_code = %e.code(), "run failed"));
                end = StreamEnd::failed(&e);
                ending = end.classify(None, (&counters).into());
            }
        }
        lifecycle(ending.event(run_id.clone()));
    }
    RunReport {
        run_id,
        end,
        counters,
        duration_ms: started.elapsed().as_millis() as u64,
        stages: pipeline.counters.iter().map(|c| c.snapshot()).collect(),
        telemetry: telemetry_handle.map(|h| h.snapshot()),
    }
}

/// Records the end of an unsupervised run (a run that never produced a valid frame still
/// happened: it gets an id).
async fn record_end(
    audit: AuditConfig,
    run_id: &Option<String>,
    started_at_ms: i64,
    counters: &super::RunCounters,
    ending: &RunEnding,
) -> Result<(), PipelineError> {
    let run_id = run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (counters, ending) = (counters.clone(), ending.clone());
    tokio::task::spawn_blocking(move || {
        runs::record_end(
            &audit,
            &run_id,
            started_at_ms,
            system_now_ms(),
            &counters,
            &ending,
        )
    })
    .await
    .map_err(|e| PipelineError::Audit(Box::new(e)))?
    .map_err(|e| PipelineError::Audit(Box::new(e)))
}
