//! The real [`RunPipeline`]: the import pipeline of `crate::pipeline` over the worker's stdout,
//! writing through the daemon's one ledger writer, with a tap that turns committed frame
//! outcomes into the control plane's [`RunSignal`]s (the counters they carry are the metrics
//! tap's: a run is tallied once).
//!
//! Signals are sent with `try_send`: they are advisory (counters are cumulative, liveness is
//! any signal), and a pipeline must never wait on its supervisor.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::port::{Backlog, CursorSource, RunInfo, RunPipeline, RunSignal, WorkerOutput};
use crate::import::ImportOptions;
use crate::pipeline::{
    Bus, Emit, Flowing, LedgerHandle, PipelineConfig, PipelineError, RunReport, Stage, run_tallied,
};
use crate::protocol::Cursor;
use crate::stages::metrics::MetricsHandle;
use crate::stages::source::frame_source;
use crate::stages::{FrameOutcome, Outcome, Report};

/// Runs every run's frames through the import pipeline into one ledger writer.
#[derive(Clone)]
pub struct LedgerPipeline {
    ledger: LedgerHandle,
    /// Template of each run's configuration (`run_id` and persona are set per run).
    config: PipelineConfig,
    /// Where the runs' frame events are published (the control plane's bus).
    bus: Option<Bus>,
}

impl LedgerPipeline {
    pub fn new(ledger: LedgerHandle, config: PipelineConfig) -> LedgerPipeline {
        LedgerPipeline {
            ledger,
            config,
            bus: None,
        }
    }

    /// Publishes the runs' frame events (rejects, progress, terminal, health) on `bus`; the
    /// control plane publishes their lifecycle.
    pub fn with_bus(mut self, bus: Bus) -> LedgerPipeline {
        self.bus = Some(bus);
        self
    }
}

impl RunPipeline for LedgerPipeline {
    fn run(
        &self,
        info: RunInfo,
        input: WorkerOutput,
        signals: mpsc::Sender<RunSignal>,
        backlog: Arc<Backlog>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, RunReport> {
        let ledger = self.ledger.clone();
        let bus = self.bus.clone();
        let mut config = self.config.clone();
        config.supervised = true;
        config.run_id = Some(info.run_id.clone());
        // The operator's persona (flag > config > main) wins over whatever the worker sends.
        config.import = ImportOptions {
            persona_id: Some(info.persona_id.clone()),
            ..config.import
        };
        // The audit tap records the run's start; the run records its end once classified.
        config.audit = info.audit.clone();
        Box::pin(async move {
            let seen = signals.clone();
            let read = backlog.clone();
            let lines = frame_source(input, config.max_frame_bytes, cancel.clone())
                .inspect(move |item| {
                    if matches!(item, Ok(Flowing::Item(_)) | Ok(Flowing::Reject(_))) {
                        read.read();
                        let _ = seen.try_send(RunSignal::FrameSeen);
                    }
                })
                .boxed();
            let tally = MetricsHandle::default();
            let tap = SignalTap {
                signals,
                backlog,
                tally: tally.clone(),
            };
            let taps: Vec<Box<dyn Stage<FrameOutcome, FrameOutcome>>> = vec![Box::new(tap)];
            run_tallied(lines, config, &ledger, bus, cancel, taps, tally).await
        })
    }
}

/// An outcome tap after the metrics tap: committed outcomes become signals, with the run's
/// counters as the metrics tap tallied them.
struct SignalTap {
    signals: mpsc::Sender<RunSignal>,
    backlog: Arc<Backlog>,
    tally: MetricsHandle,
}

impl Stage<FrameOutcome, FrameOutcome> for SignalTap {
    fn name(&self) -> &'static str {
        "control_signals"
    }

    fn process(
        &mut self,
        outcome: FrameOutcome,
        out: &mut Emit<FrameOutcome>,
    ) -> Result<(), PipelineError> {
        self.backlog.done();
        let signal = match &outcome.result {
            Outcome::Imported { .. } | Outcome::Chunk { .. } => {
                let counters = self.tally.snapshot();
                Some(RunSignal::Committed {
                    counters: (&counters).into(),
                    newest_event_at: counters.newest_event_at_ms,
                })
            }
            Outcome::Rejected(code) => Some(RunSignal::Rejected {
                code: code.as_str().to_owned(),
                seq: outcome.meta.seq,
            }),
            Outcome::Reported(Report::Health(h)) => Some(RunSignal::Health(h.clone())),
            Outcome::Reported(Report::Progress(p)) => Some(RunSignal::Progress(p.clone())),
            Outcome::Reported(Report::Complete(_) | Report::Error(_)) => None,
        };
        if let Some(signal) = signal {
            let _ = self.signals.try_send(signal);
        }
        out.push(outcome);
        Ok(())
    }
}

/// Cursors from the agents ledger, read on a blocking thread with a read-only connection.
#[derive(Debug, Clone)]
pub struct LedgerCursors {
    pub path: std::path::PathBuf,
}

impl CursorSource for LedgerCursors {
    fn load(&self, source: &str) -> BoxFuture<'static, Result<Vec<Cursor>, String>> {
        let path = self.path.clone();
        let source = source.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                if !path.exists() {
                    return Ok(Vec::new());
                }
                let conn = rusqlite::Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| format!("open: {}", e.sqlite_error_code().map_or(0, |c| c as i32)))?;
                let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
                let _ = crate::ledger::text::register(&conn);
                crate::ledger::load_cursors(&conn, &source)
                    .map_err(|e| e.code().as_str().to_owned())
            })
            .await
            .map_err(|_| "cursor load task failed".to_owned())?
        })
    }
}
