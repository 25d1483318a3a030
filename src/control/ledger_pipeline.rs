//! The real [`RunPipeline`]: the import pipeline of `crate::pipeline` over the worker's stdout,
//! writing through the daemon's one ledger writer, with a tap that turns committed frame
//! outcomes into the control plane's [`RunSignal`]s.
//!
//! Signals are sent with `try_send`: they are advisory (counters are cumulative, liveness is
//! any signal), and a pipeline must never wait on its supervisor.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::port::{
    Backlog, CursorSource, PipelineEnd, PipelineReport, RunCounters, RunInfo, RunPipeline,
    RunSignal, WorkerOutput,
};
use crate::import::ImportOptions;
use crate::pipeline::report::RunOutcome as PipeOutcome;
use crate::pipeline::{
    Bus, Emit, Flowing, LedgerHandle, PipelineConfig, PipelineError, Stage, TerminalKind, run_lines,
};
use crate::protocol::{Cursor, RunError, RunProgress};
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
    ) -> BoxFuture<'static, PipelineReport> {
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
        // The audit stage records the run, with the outcome the control plane decides.
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
            let (tap, tally) = SignalTap::new(signals, backlog);
            let taps: Vec<Box<dyn Stage<FrameOutcome, FrameOutcome>>> = vec![Box::new(tap)];
            let result = run_lines(lines, config, &ledger, bus, cancel, taps).await;
            let tally = tally.lock().map(|t| t.clone()).unwrap_or_default();
            match result {
                Ok(report) => {
                    let mut counters = tally.counters;
                    counters.total = report.counters.total.or(counters.total);
                    counters.emitted = report.counters.emitted.or(counters.emitted);
                    let end = match report.outcome {
                        PipeOutcome::Terminal {
                            terminal: TerminalKind::Complete,
                        } => PipelineEnd::Complete(tally.complete.unwrap_or_default()),
                        PipeOutcome::Terminal {
                            terminal: TerminalKind::Error { code, retryable },
                        } => PipelineEnd::Error(tally.error.unwrap_or(RunError {
                            code,
                            message: String::new(),
                            retryable,
                        })),
                        PipeOutcome::Cancelled => PipelineEnd::Cancelled,
                        PipeOutcome::InputEnded => PipelineEnd::Eof,
                    };
                    PipelineReport {
                        end,
                        counters,
                        rejects: report.counters.rejected,
                    }
                }
                Err(e) => PipelineReport {
                    end: PipelineEnd::Failed {
                        code: pipeline_code(&e),
                    },
                    counters: tally.counters,
                    rejects: tally.rejects,
                },
            }
        })
    }
}

fn pipeline_code(e: &PipelineError) -> String {
    e.code().as_str().to_owned()
}

/// What the tap saw, for the report after the run.
#[derive(Debug, Clone, Default)]
struct Tally {
    counters: RunCounters,
    /// The newest source event committed (epoch ms), for the run's lag.
    newest_event_at: Option<i64>,
    rejects: BTreeMap<String, u64>,
    complete: Option<RunProgress>,
    error: Option<RunError>,
}

/// An outcome tap: committed outcomes become signals.
struct SignalTap {
    signals: mpsc::Sender<RunSignal>,
    backlog: Arc<Backlog>,
    tally: Arc<std::sync::Mutex<Tally>>,
}

impl SignalTap {
    fn new(
        signals: mpsc::Sender<RunSignal>,
        backlog: Arc<Backlog>,
    ) -> (SignalTap, Arc<std::sync::Mutex<Tally>>) {
        let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
        (
            SignalTap {
                signals,
                backlog,
                tally: tally.clone(),
            },
            tally,
        )
    }
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
        // The tally is only touched by this stage and read after the run: never contended.
        if let Ok(mut t) = self.tally.lock() {
            let signal = match &outcome.result {
                Outcome::Imported { response, .. } => {
                    add(&mut t.counters, response);
                    t.newest_event_at = t.newest_event_at.max(outcome.meta.newest_event_at_ms);
                    Some(committed(&t))
                }
                Outcome::Chunk { response, .. } => {
                    if let Some(import) = &response.import {
                        add(&mut t.counters, import);
                    }
                    Some(committed(&t))
                }
                Outcome::Rejected(code) => {
                    t.counters.rejected += 1;
                    *t.rejects.entry(code.as_str().to_owned()).or_default() += 1;
                    Some(RunSignal::Rejected {
                        code: code.as_str().to_owned(),
                        seq: outcome.meta.seq,
                    })
                }
                Outcome::Reported(Report::Health(h)) => Some(RunSignal::Health(h.clone())),
                Outcome::Reported(Report::Progress(p)) => {
                    t.counters.note_worker(p);
                    Some(RunSignal::Progress(p.clone()))
                }
                Outcome::Reported(Report::Complete(p)) => {
                    t.counters.note_worker(p);
                    t.complete = Some(p.clone());
                    None
                }
                Outcome::Reported(Report::Error(e)) => {
                    t.error = Some(e.clone());
                    None
                }
            };
            if let Some(signal) = signal {
                let _ = self.signals.try_send(signal);
            }
        }
        out.push(outcome);
        Ok(())
    }
}

fn add(c: &mut RunCounters, r: &crate::protocol::ImportResponse) {
    c.requests += 1;
    c.imported += r.imported;
    c.upserted += r.upserted;
    c.skipped += r.skipped;
    c.failed += r.failed;
}

fn committed(t: &Tally) -> RunSignal {
    RunSignal::Committed {
        counters: t.counters.clone(),
        newest_event_at: t.newest_event_at,
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
                crate::ledger::load_cursors(&conn, &source).map_err(|e| e.code().to_owned())
            })
            .await
            .map_err(|_| "cursor load task failed".to_owned())?
        })
    }
}
