//! Errors that end a worker run, each with the stable code it reports in `run.error`.

use crate::protocol::{Code, RunError};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// stdout is closed or failing: nothing more can be reported.
    #[error("frame output failed")]
    Output(#[source] std::io::Error),
    /// stdin could not be read.
    #[error("control input failed")]
    Input(#[source] std::io::Error),
    /// The file watcher could not be created.
    #[error("file watcher failed")]
    Watch(#[source] notify::Error),
    /// The control side broke the protocol (e.g. the first frame is not `run.start`).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// A thread of the worker could not be started.
    #[error("thread spawn failed")]
    Thread(#[source] std::io::Error),
    /// The work thread panicked.
    #[error("worker thread panicked")]
    Panic,
}

impl WorkerError {
    pub const fn code(&self) -> Code {
        match self {
            WorkerError::Output(_) => Code::OutputFailed,
            WorkerError::Input(_) => Code::InputFailed,
            WorkerError::Watch(_) => Code::WatchFailed,
            WorkerError::Protocol(_) => Code::WorkerProtocolViolation,
            WorkerError::Thread(_) => Code::ThreadSpawnFailed,
            WorkerError::Panic => Code::InternalPanic,
        }
    }

    pub const fn retryable(&self) -> bool {
        !matches!(self, WorkerError::Protocol(_))
    }

    /// The `run.error` payload: the code and a message naming no file contents.
    pub fn to_run_error(&self) -> RunError {
        RunError {
            code: self.code().as_str().to_owned(),
            message: self.to_string(),
            retryable: Some(self.retryable()),
        }
    }
}
