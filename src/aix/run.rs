//! The run loop: `aix worker --stdio` (PROTOCOL.md, worker side) and `aix emit` (the same frames
//! without a handshake).
//!
//! Threads: one reads control frames from stdin, one does the work (backfill or tail, with its
//! own parse pool), and the calling thread dispatches: it answers `health.probe`, turns
//! `run.stop` or stdin EOF into a stop signal, and writes the terminal frame once the work has
//! flushed everything it had in hand. All frames go through one [`FrameSink`], so `seq` is
//! strictly increasing and the terminal frame is last.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};

use super::backfill::{RunCounters, run_backfill};
use super::config::{RootOverrides, WorkerOptions};
use super::cursor::{FileCursor, cursor_map};
use super::emit::{Emitter, FrameSink, now_ms};
use super::error::WorkerError;
use super::file_state::ParserFactory;
use super::mapping;
use super::sources::StoreCursor;
use super::status::{StopSignal, WorkerStatus};
use super::stores::store_cursor_map;
use super::tail::run_tail;
use crate::protocol::{
    ControlFrame, Envelope, FrameError, HealthStatus, RunMode, decode_control_frame,
};

/// What one run does.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub mode: RunMode,
    pub persona_id: Option<String>,
    /// Resume points of session files by cursor key.
    pub cursors: HashMap<String, FileCursor>,
    /// Resume points of store sessions by cursor key.
    pub store_cursors: HashMap<String, StoreCursor>,
    pub options: WorkerOptions,
}

/// Runs the backfill or the tail on `sink` until it ends or `stop`; writes `run.progress` but
/// not the terminal frame.
///
/// Errors: see [`WorkerError`]; unreadable session files are counted, never fatal.
pub fn run_mode(
    spec: &RunSpec,
    factory: &ParserFactory,
    sink: &FrameSink,
    stop: &StopSignal,
    status: &WorkerStatus,
) -> Result<RunCounters, WorkerError> {
    let mut emitter = Emitter::new(
        sink,
        spec.mode,
        spec.persona_id.clone(),
        spec.options.limits,
    );
    // Cursors taken under another mapping version are dropped: their files and sessions are
    // read whole and re-imported under this one (`aix::mapping`).
    let cursors =
        mapping::StartCursors::of(&spec.cursors, &spec.store_cursors, &spec.options.mappings);
    let stale_sessions = cursors
        .stores
        .values()
        .filter(|c| c.token == mapping::STALE_TOKEN)
        .count();
    if !cursors.upgraded_files.is_empty() || stale_sessions > 0 {
        tracing::info!(
            files = cursors.upgraded_files.len(),
            store_sessions = stale_sessions,
            "cursors of another mapping version: read whole again"
        );
    }
    let counters = match spec.mode {
        RunMode::Backfill => {
            run_backfill(&spec.options, &cursors, factory, &mut emitter, stop, status)
                .map_err(WorkerError::Output)?
        }
        RunMode::Tail => run_tail(&spec.options, &cursors, factory, &mut emitter, stop, status)?,
    };
    if emitter.pending_cursors() > 0 {
        tracing::debug!(
            cursors = emitter.pending_cursors(),
            "cursors without items not sent; their files are re-read next run"
        );
    }
    Ok(counters)
}

/// Writes the terminal frame for a finished run: `run.complete` with the counters, or
/// `run.error` with the error's code.
fn finish(
    sink: &FrameSink,
    mode: RunMode,
    result: Result<RunCounters, WorkerError>,
) -> Result<RunCounters, WorkerError> {
    match result {
        Ok(counters) => {
            sink.complete(&counters.progress(mode == RunMode::Backfill))
                .map_err(WorkerError::Output)?;
            Ok(counters)
        }
        Err(e) => {
            tracing::error!(error_code = %e.code(), error = %e, "run failed");
            // Best effort: when the output itself failed there is no one to tell.
            let _ = sink.error(&e.to_run_error());
            Err(e)
        }
    }
}

/// `aix emit`: runs `mode` on `output` with a fresh run id and no handshake, ending with
/// `run.complete` (backfill: when done; tail: after `stop`).
pub fn emit(
    mode: RunMode,
    options: WorkerOptions,
    factory: &ParserFactory,
    output: Box<dyn Write + Send>,
    stop: &StopSignal,
) -> Result<RunCounters, WorkerError> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let sink = FrameSink::new(output, run_id.clone());
    let spec = RunSpec {
        mode,
        persona_id: None,
        cursors: HashMap::new(),
        store_cursors: HashMap::new(),
        options,
    };
    let _span = tracing::info_span!("run", run_id = %run_id, mode = mode.as_str()).entered();
    let status = WorkerStatus::default();
    let result = run_mode(&spec, factory, &sink, stop, &status);
    finish(&sink, mode, result)
}

/// The `health.status` payload as of now.
fn health(sink: &FrameSink, status: &WorkerStatus) -> HealthStatus {
    let last = sink
        .last_import_at()
        .max(Some(status.last_event_ms.load(Ordering::Relaxed)))
        .filter(|t| *t > 0);
    HealthStatus {
        connected: true,
        last_event_at: last,
        details: Some(status.details(now_ms())),
    }
}

/// Reports an error that ends the run as `run.error` (best effort) and returns it.
fn report(sink: &FrameSink, e: WorkerError) -> WorkerError {
    tracing::error!(error_code = %e.code(), error = %e, "run failed");
    let _ = sink.error(&e.to_run_error());
    e
}

enum Msg {
    Control(Result<Envelope<ControlFrame>, FrameError>),
    InputClosed,
    InputFailed(std::io::Error),
    Done(Result<RunCounters, WorkerError>),
}

/// `aix worker --stdio`: reads control frames from `input`, writes worker frames to `output`.
/// `stop` (e.g. raised by SIGINT/SIGTERM) acts like `run.stop`.
///
/// Waits for `run.start`, answers it at once with an unsolicited `health.status` (NEX's
/// `start_timeout` waits for a first frame), runs its mode with its cursors and options
/// (explicit `flags` win), answers `health.probe` with `health.status`, and on `run.stop` or input EOF stops emitting
/// new work, flushes, and writes `run.complete`. A backfill that finishes by itself writes
/// `run.complete` at once. Returns after the terminal frame.
///
/// Errors: input ended before `run.start` is `Ok` (nothing to do); a control frame before
/// `run.start` is `worker_protocol_violation`; the rest as [`run_mode`]. Every error after the
/// handshake has been reported as `run.error` when the output still works.
pub fn run_worker<R: BufRead + Send + 'static>(
    mut input: R,
    output: Box<dyn Write + Send>,
    flags: &RootOverrides,
    factory: ParserFactory,
    stop: Arc<StopSignal>,
) -> Result<(), WorkerError> {
    let (run_id, start) = loop {
        let mut line = String::new();
        if input.read_line(&mut line).map_err(WorkerError::Input)? == 0 {
            tracing::info!("control input closed before run.start");
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        match decode_control_frame(line.trim_end()) {
            Ok(Envelope {
                run_id,
                body: ControlFrame::RunStart(start),
                ..
            }) => break (run_id, start),
            Ok(env) => {
                let e = WorkerError::Protocol("control frame before run.start");
                let sink = FrameSink::new(output, env.run_id);
                let _ = sink.error(&e.to_run_error());
                return Err(e);
            }
            Err(e) => tracing::warn!(error_code = %e.code, "control frame rejected"),
        }
    };
    let options = WorkerOptions::resolve(flags, start.options.as_ref());
    let spec = RunSpec {
        mode: start.mode,
        persona_id: start.persona_id.clone(),
        cursors: cursor_map(&start.cursors),
        store_cursors: store_cursor_map(&start.cursors),
        options,
    };
    let _span = tracing::info_span!("run", run_id = %run_id, mode = spec.mode.as_str()).entered();
    tracing::info!(
        cursors = spec.cursors.len(),
        claude_roots = spec.options.claude_dirs.len(),
        codex_roots = spec.options.codex_dirs.len(),
        "run started"
    );
    let sink = Arc::new(FrameSink::new(output, run_id.clone()));
    let status = Arc::new(WorkerStatus::default());
    let (tx, rx) = mpsc::channel::<Msg>();
    // The first frame tells NEX the worker is up (its `start_timeout`), even for a tail that
    // has nothing to emit yet.
    sink.health(&health(&sink, &status))
        .map_err(|e| report(&sink, WorkerError::Output(e)))?;

    let reader_tx = tx.clone();
    std::thread::Builder::new()
        .name("aix-control".into())
        .spawn(move || read_control(input, reader_tx))
        .map_err(|e| report(&sink, WorkerError::Thread(e)))?;

    let mode = spec.mode;
    {
        let (work_sink, stop, status) = (sink.clone(), stop.clone(), status.clone());
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("aix-work".into())
            .spawn(move || {
                let _span = span.enter();
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    run_mode(&spec, &factory, &work_sink, &stop, &status)
                }))
                .unwrap_or(Err(WorkerError::Panic));
                let _ = tx.send(Msg::Done(result));
            })
            .map_err(|e| report(&sink, WorkerError::Thread(e)))?;
    }

    loop {
        // The work thread always sends `Done` (panics included), so this cannot end early.
        let Ok(msg) = rx.recv() else {
            return finish(&sink, mode, Err(WorkerError::Panic)).map(|_| ());
        };
        match msg {
            Msg::Control(Ok(env)) => match env.body {
                ControlFrame::HealthProbe => {
                    if let Err(e) = sink.health(&health(&sink, &status)) {
                        tracing::warn!(error_kind = ?e.kind(), "health.status not written");
                        stop.stop();
                    }
                }
                ControlFrame::RunStop(s) => {
                    tracing::info!(reason = s.reason.as_deref().unwrap_or(""), "run.stop");
                    stop.stop();
                }
                ControlFrame::RunStart(_) => {
                    tracing::warn!(
                        error_code = "worker_protocol_violation",
                        "second run.start ignored"
                    );
                }
            },
            Msg::Control(Err(e)) => {
                tracing::warn!(error_code = %e.code, "control frame rejected");
            }
            Msg::InputClosed => {
                tracing::info!("control input closed; stopping");
                stop.stop();
            }
            Msg::InputFailed(e) => {
                tracing::warn!(error_kind = ?e.kind(), "control input failed; stopping");
                stop.stop();
            }
            Msg::Done(result) => return finish(&sink, mode, result).map(|_| ()),
        }
    }
}

fn read_control<R: BufRead>(mut input: R, tx: mpsc::Sender<Msg>) {
    let mut line = String::new();
    loop {
        line.clear();
        let msg = match input.read_line(&mut line) {
            Ok(0) => Msg::InputClosed,
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => Msg::Control(decode_control_frame(line.trim_end())),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::warn!(error_code = "frame_invalid_utf8", "control frame rejected");
                continue;
            }
            Err(e) => Msg::InputFailed(e),
        };
        let last = matches!(msg, Msg::InputClosed | Msg::InputFailed(_));
        if tx.send(msg).is_err() || last {
            return;
        }
    }
}
