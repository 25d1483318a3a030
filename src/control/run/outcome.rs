//! How a run ended: the pipeline's end, whether the worker was killed as unresponsive, whether
//! a stop was asked for, and whether the shutdown deadline struck, folded into one outcome with
//! its code and retryability.

use std::collections::BTreeMap;

use crate::control::audit::RunOutcome;
use crate::control::port::{PipelineEnd, PipelineReport, RunCounters};
use crate::pipeline::RejectCode;
use crate::protocol::Code;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub outcome: RunOutcome,
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
            outcome: RunOutcome::Failed,
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
            retryable,
            counters: RunCounters::default(),
            rejects: BTreeMap::new(),
            pid: None,
        }
    }
}

pub(super) fn classify(
    report: PipelineReport,
    forced: Option<&'static str>,
    stop_requested: bool,
    aborted: bool,
    pid: u32,
) -> RunResult {
    let PipelineReport {
        end,
        counters,
        rejects,
    } = report;
    let (outcome, code, message, retryable): (RunOutcome, Option<String>, Option<String>, bool) =
        match (forced, end) {
            (Some(why), _) => (
                RunOutcome::Failed,
                Some(Code::WorkerUnresponsive.as_str().into()),
                Some(why.into()),
                true,
            ),
            (None, PipelineEnd::Complete(_)) if stop_requested => {
                (RunOutcome::Cancelled, None, None, false)
            }
            (None, PipelineEnd::Complete(_)) => (RunOutcome::Completed, None, None, false),
            // The worker's code and message are untrusted: the code is sanitised like every
            // reject code, the message bounded and stripped of control characters.
            (None, PipelineEnd::Error(e)) => (
                RunOutcome::Failed,
                Some(RejectCode::service(e.code).as_str().to_owned()),
                Some(bounded_message(&e.message)),
                e.retryable.unwrap_or(false),
            ),
            (None, PipelineEnd::Eof | PipelineEnd::Cancelled) if aborted => (
                RunOutcome::Failed,
                Some(Code::ShutdownTimeout.as_str().into()),
                Some("stopped by the shutdown deadline".into()),
                true,
            ),
            (None, PipelineEnd::Eof | PipelineEnd::Cancelled) if stop_requested => {
                (RunOutcome::Cancelled, None, None, false)
            }
            (None, PipelineEnd::Eof) => (
                RunOutcome::Failed,
                Some(Code::WorkerExited.as_str().into()),
                Some("worker exited without a terminal frame".into()),
                true,
            ),
            (None, PipelineEnd::Cancelled) => (
                RunOutcome::Failed,
                Some(Code::RunCancelled.as_str().into()),
                Some("pipeline cancelled".into()),
                true,
            ),
            (None, PipelineEnd::Failed { code }) => {
                // A busy ledger passes; a broken stdout is a worker that died mid-line.
                let retryable =
                    code == Code::LedgerBusy.as_str() || code == Code::WorkerExited.as_str();
                (
                    RunOutcome::Failed,
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
        RunOutcome,
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
                RunOutcome::Completed,
                None,
                false,
            ),
            (
                PipelineEnd::Complete(Default::default()),
                None,
                true,
                false,
                RunOutcome::Cancelled,
                None,
                false,
            ),
            (
                PipelineEnd::Eof,
                None,
                false,
                false,
                RunOutcome::Failed,
                Some("worker_exited"),
                true,
            ),
            (
                PipelineEnd::Eof,
                None,
                true,
                false,
                RunOutcome::Cancelled,
                None,
                false,
            ),
            (
                PipelineEnd::Eof,
                None,
                true,
                true,
                RunOutcome::Failed,
                Some("shutdown_timeout"),
                true,
            ),
            (
                PipelineEnd::Cancelled,
                None,
                false,
                false,
                RunOutcome::Failed,
                Some("run_cancelled"),
                true,
            ),
            (
                PipelineEnd::Eof,
                Some("x"),
                false,
                false,
                RunOutcome::Failed,
                Some("worker_unresponsive"),
                true,
            ),
            (
                PipelineEnd::Complete(Default::default()),
                Some("x"),
                false,
                false,
                RunOutcome::Failed,
                Some("worker_unresponsive"),
                true,
            ),
            (
                err(Some(true)),
                None,
                false,
                false,
                RunOutcome::Failed,
                Some("source_unreadable"),
                true,
            ),
            (
                err(None),
                None,
                false,
                false,
                RunOutcome::Failed,
                Some("source_unreadable"),
                false,
            ),
            (
                failed("ledger_busy"),
                None,
                false,
                false,
                RunOutcome::Failed,
                Some("ledger_busy"),
                true,
            ),
            (
                failed("ledger_write_failed"),
                None,
                false,
                false,
                RunOutcome::Failed,
                Some("ledger_write_failed"),
                false,
            ),
        ];
        let hostile = PipelineEnd::Error(RunError {
            code: "bad code with spaces\nand more".into(),
            message: format!("line\nbreak {}", "x".repeat(500)),
            retryable: None,
        });
        let r = classify(report(hostile), None, false, false, 1);
        assert_eq!(
            r.error_code.as_deref(),
            Some("bad_code_with_spaces_and_more")
        );
        let message = r.error_message.unwrap();
        assert_eq!(message.chars().count(), 200);
        assert!(!message.contains('\n'));
        for (end, forced, stop, aborted, outcome, code, retryable) in cases {
            let label = format!("{end:?} forced={forced:?} stop={stop} aborted={aborted}");
            let r = classify(report(end), forced, stop, aborted, 7);
            assert_eq!(r.outcome, outcome, "{label}");
            assert_eq!(r.error_code.as_deref(), code, "{label}");
            assert_eq!(r.retryable, retryable, "{label}");
            assert_eq!(r.pid, Some(7));
        }
    }
}
