//! How a run ended: the pipeline's end, whether the worker was killed as unresponsive, whether
//! a stop was asked for, and whether the shutdown deadline struck, folded into one outcome with
//! its code and retryability.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::control::port::{PipelineEnd, PipelineReport, RunCounters};
use crate::pipeline::FinalOutcome;
use crate::pipeline::report::RunOutcome as PipeOutcome;
use crate::pipeline::{RejectCode, TerminalKind};
use crate::protocol::{Code, RunError};
use crate::stages::audit::{Decide, Ending};

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub outcome: FinalOutcome,
    pub error_code: Option<String>,
    /// The worker's own `run.error` message (it promises no secrets or contents), or ours.
    pub error_message: Option<String>,
    /// Whether running again may succeed (`worker_exited`, `worker_unresponsive`, a
    /// `run.error` with `retryable: true`, …).
    pub retryable: bool,
    pub counters: RunCounters,
    pub rejects: BTreeMap<String, u64>,
    pub pid: Option<u32>,
}

impl RunResult {
    pub(super) fn failed(code: &str, message: &str, retryable: bool) -> RunResult {
        RunResult {
            outcome: FinalOutcome::Failed,
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
            retryable,
            counters: RunCounters::default(),
            rejects: BTreeMap::new(),
            pid: None,
        }
    }
}

/// What the run task knows about a run that decides its outcome besides the pipeline's end.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Flags {
    /// Why the worker was killed as unresponsive.
    pub forced: Option<&'static str>,
    pub stop_requested: bool,
    /// The shutdown deadline struck.
    pub aborted: bool,
}

/// The run's [`Flags`], latched the first time the outcome is decided: by the audit stage when
/// the input ends, else by the run task after the pipeline returned. So the `import_runs` row,
/// the job and the events all say the same, whatever happens in between.
#[derive(Debug)]
pub(super) struct RunFlags {
    live: Mutex<Flags>,
    sealed: OnceLock<Flags>,
    abort: CancellationToken,
}

impl RunFlags {
    pub(super) fn new(abort: CancellationToken) -> RunFlags {
        RunFlags {
            live: Mutex::new(Flags::default()),
            sealed: OnceLock::new(),
            abort,
        }
    }

    /// Updates the live flags (ignored once sealed).
    pub(super) fn set(&self, flags: Flags) {
        if let Ok(mut live) = self.live.lock() {
            *live = flags;
        }
    }

    /// The flags the outcome is decided with.
    pub(super) fn seal(&self) -> Flags {
        *self.sealed.get_or_init(|| {
            let mut f = self.live.lock().map(|f| *f).unwrap_or_default();
            f.aborted |= self.abort.is_cancelled();
            f
        })
    }

    /// The audit stage's outcome rule: [`classify`] with the sealed flags.
    pub(super) fn rule(self: std::sync::Arc<Self>) -> Decide {
        Decide::new(move |ending| {
            let f = self.seal();
            let report = PipelineReport {
                end: end_of(ending),
                counters: RunCounters::default(),
                rejects: BTreeMap::new(),
            };
            let r = classify(report, f, 0);
            (r.outcome, r.error_code)
        })
    }
}

/// The port's view of a pipeline's ending.
fn end_of(ending: Ending<'_>) -> PipelineEnd {
    match ending {
        Ok(PipeOutcome::Terminal {
            terminal: TerminalKind::Complete,
        }) => PipelineEnd::Complete(Default::default()),
        Ok(PipeOutcome::Terminal {
            terminal: TerminalKind::Error { code, retryable },
        }) => PipelineEnd::Error(RunError {
            code: code.clone(),
            message: String::new(),
            retryable: *retryable,
        }),
        Ok(PipeOutcome::Cancelled) => PipelineEnd::Cancelled,
        Ok(PipeOutcome::InputEnded) => PipelineEnd::Eof,
        Err(code) => PipelineEnd::Failed {
            code: code.to_owned(),
        },
    }
}

pub(super) fn classify(report: PipelineReport, flags: Flags, pid: u32) -> RunResult {
    let Flags {
        forced,
        stop_requested,
        aborted,
    } = flags;
    let PipelineReport {
        end,
        counters,
        rejects,
    } = report;
    let (outcome, code, message, retryable): (FinalOutcome, Option<String>, Option<String>, bool) =
        match (forced, end) {
            (Some(why), _) => (
                FinalOutcome::Failed,
                Some(Code::WorkerUnresponsive.as_str().into()),
                Some(why.into()),
                true,
            ),
            (None, PipelineEnd::Complete(_)) if stop_requested => {
                (FinalOutcome::Cancelled, None, None, false)
            }
            (None, PipelineEnd::Complete(_)) => (FinalOutcome::Completed, None, None, false),
            // The worker's code and message are untrusted: the code is sanitised like every
            // reject code, the message bounded and stripped of control characters.
            (None, PipelineEnd::Error(e)) => (
                FinalOutcome::Failed,
                Some(RejectCode::service(e.code).as_str().to_owned()),
                Some(bounded_message(&e.message)),
                e.retryable.unwrap_or(false),
            ),
            (None, PipelineEnd::Eof | PipelineEnd::Cancelled) if aborted => (
                FinalOutcome::Failed,
                Some(Code::ShutdownTimeout.as_str().into()),
                Some("stopped by the shutdown deadline".into()),
                true,
            ),
            (None, PipelineEnd::Eof | PipelineEnd::Cancelled) if stop_requested => {
                (FinalOutcome::Cancelled, None, None, false)
            }
            (None, PipelineEnd::Eof) => (
                FinalOutcome::Failed,
                Some(Code::WorkerExited.as_str().into()),
                Some("worker exited without a terminal frame".into()),
                true,
            ),
            (None, PipelineEnd::Cancelled) => (
                FinalOutcome::Failed,
                Some(Code::RunCancelled.as_str().into()),
                Some("pipeline cancelled".into()),
                true,
            ),
            (None, PipelineEnd::Failed { code }) => {
                // A busy ledger passes; a broken stdout is a worker that died mid-line.
                let retryable =
                    code == Code::LedgerBusy.as_str() || code == Code::WorkerExited.as_str();
                (
                    FinalOutcome::Failed,
                    Some(code),
                    Some("pipeline failed".into()),
                    retryable,
                )
            }
        };
    RunResult {
        outcome,
        error_code: code,
        error_message: message,
        retryable,
        counters,
        rejects,
        pid: Some(pid),
    }
}

/// Longest worker message kept in a job row.
const MAX_MESSAGE_CHARS: usize = 200;

fn bounded_message(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RunError;

    /// (end, forced, stop requested, aborted) -> (outcome, code, retryable)
    type Case = (
        PipelineEnd,
        Option<&'static str>,
        bool,
        bool,
        FinalOutcome,
        Option<&'static str>,
        bool,
    );

    fn report(end: PipelineEnd) -> PipelineReport {
        PipelineReport {
            end,
            counters: RunCounters::default(),
            rejects: BTreeMap::new(),
        }
    }

    #[test]
    fn classification_of_run_ends() {
        let err = |retryable| {
            PipelineEnd::Error(RunError {
                code: "source_unreadable".into(),
                message: "m".into(),
                retryable,
            })
        };
        let failed = |code: &str| PipelineEnd::Failed { code: code.into() };
        // (end, forced, stop requested, aborted) -> (outcome, code, retryable)
        let cases: Vec<Case> = vec![
            (
                PipelineEnd::Complete(Default::default()),
                None,
                false,
                false,
                FinalOutcome::Completed,
                None,
                false,
            ),
            (
                PipelineEnd::Complete(Default::default()),
                None,
                true,
                false,
                FinalOutcome::Cancelled,
                None,
                false,
            ),
            (
                PipelineEnd::Eof,
                None,
                false,
                false,
                FinalOutcome::Failed,
                Some("worker_exited"),
                true,
            ),
            (
                PipelineEnd::Eof,
                None,
                true,
                false,
                FinalOutcome::Cancelled,
                None,
                false,
            ),
            (
                PipelineEnd::Eof,
                None,
                true,
                true,
                FinalOutcome::Failed,
                Some("shutdown_timeout"),
                true,
            ),
            (
                PipelineEnd::Cancelled,
                None,
                false,
                false,
                FinalOutcome::Failed,
                Some("run_cancelled"),
                true,
            ),
            (
                PipelineEnd::Eof,
                Some("x"),
                false,
                false,
                FinalOutcome::Failed,
                Some("worker_unresponsive"),
                true,
            ),
            (
                PipelineEnd::Complete(Default::default()),
                Some("x"),
                false,
                false,
                FinalOutcome::Failed,
                Some("worker_unresponsive"),
                true,
            ),
            (
                err(Some(true)),
                None,
                false,
                false,
                FinalOutcome::Failed,
                Some("source_unreadable"),
                true,
            ),
            (
                err(None),
                None,
                false,
                false,
                FinalOutcome::Failed,
                Some("source_unreadable"),
                false,
            ),
            (
                failed("ledger_busy"),
                None,
                false,
                false,
                FinalOutcome::Failed,
                Some("ledger_busy"),
                true,
            ),
            (
                failed("ledger_write_failed"),
                None,
                false,
                false,
                FinalOutcome::Failed,
                Some("ledger_write_failed"),
                false,
            ),
        ];
        let hostile = PipelineEnd::Error(RunError {
            code: "bad code with spaces\nand more".into(),
            message: format!("line\nbreak {}", "x".repeat(500)),
            retryable: None,
        });
        let r = classify(report(hostile), Flags::default(), 1);
        assert_eq!(
            r.error_code.as_deref(),
            Some("bad_code_with_spaces_and_more")
        );
        let message = r.error_message.unwrap();
        assert_eq!(message.chars().count(), 200);
        assert!(!message.contains('\n'));
        for (end, forced, stop, aborted, outcome, code, retryable) in cases {
            let label = format!("{end:?} forced={forced:?} stop={stop} aborted={aborted}");
            let flags = Flags {
                forced,
                stop_requested: stop,
                aborted,
            };
            let r = classify(report(end), flags, 7);
            assert_eq!(r.outcome, outcome, "{label}");
            assert_eq!(r.error_code.as_deref(), code, "{label}");
            assert_eq!(r.retryable, retryable, "{label}");
            assert_eq!(r.pid, Some(7));
        }
    }
}
