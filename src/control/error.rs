//! Errors of the control plane, each with a stable snake_case code (the socket's `error.code`,
//! the CLI's exit message, test assertions).

use std::path::PathBuf;

use crate::protocol::Code;

/// Why a control-plane operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("cannot resolve NEX_HOME: neither NEX_HOME nor HOME is set")]
    HomeUnresolved,
    /// `NEX_HOME` exists but is not a usable directory (a file, or not readable).
    #[error("NEX_HOME {path} is not usable: {source}")]
    HomeInvalid {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read config {path}: {source}")]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}: {detail}")]
    ConfigInvalid { path: PathBuf, detail: String },
    #[error("invalid worker command: {0}")]
    WorkerCommandInvalid(&'static str),
    #[error("runtime database error ({context}): {source}")]
    Store {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("runtime database is closed")]
    StoreClosed,
    #[error("no job matches {0}")]
    JobNotFound(String),
    #[error("job id prefix {0} is ambiguous")]
    JobAmbiguous(String),
    #[error("{}", illegal_transition(id, from, to))]
    IllegalTransition {
        id: String,
        from: &'static str,
        to: &'static str,
    },
    #[error("import orchestration is disabled (import.enabled = false or --no-import)")]
    ImportDisabled,
    #[error("the control plane is shutting down")]
    ShuttingDown,
    #[error("the daemon (pid {0}) is still running after its shutdown grace")]
    ShutdownTimeout(u32),
    #[error("a daemon is already running on {0}")]
    DaemonRunning(PathBuf),
    #[error("no daemon is listening on {0}")]
    DaemonNotRunning(PathBuf),
    #[error("control socket I/O on {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("file system error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another nex process already runs imports for {0}")]
    Busy(PathBuf),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("bad control request: {0}")]
    BadRequest(String),
    /// An error reported by the daemon over the socket, kept by code (the message is the
    /// daemon's sentence; the code is printed once, after it).
    #[error("{message}")]
    Remote { code: String, message: String },
    /// A source flag's path is missing or of another tool.
    #[error(transparent)]
    SourceLocation(#[from] crate::aix::locate::LocateError),
    #[error(
        "a daemon is running, and it reads the sources and runs the worker its own settings say; \
         the worker and source flags would be ignored: give them to `nex daemon` (or in \
         config.toml), or stop the daemon (`nex daemon stop`) to run with them here"
    )]
    DaemonHasOwnSettings,
}

/// `cannot cancel job c9503a1f: it already completed`.
fn illegal_transition(id: &str, from: &str, to: &str) -> String {
    let short: String = id.chars().take(8).collect();
    let verb = match to {
        "cancelled" => "cancel",
        "running" => "start",
        "completed" => "complete",
        "failed" => "fail",
        other => other,
    };
    match from {
        "completed" | "failed" | "cancelled" => {
            format!("cannot {verb} job {short}: it already {from}")
        }
        _ => format!("cannot {verb} job {short}: it is {from}"),
    }
}

impl ControlError {
    /// The stable code. A daemon's answer keeps its code in its message; one this version
    /// does not know is `unknown` here.
    pub fn code(&self) -> Code {
        match self {
            ControlError::HomeUnresolved => Code::NexHomeUnresolved,
            ControlError::HomeInvalid { .. } => Code::NexHomeInvalid,
            ControlError::ConfigUnreadable { .. } => Code::ConfigUnreadable,
            ControlError::ConfigInvalid { .. } => Code::ConfigInvalid,
            ControlError::WorkerCommandInvalid(_) => Code::WorkerCommandInvalid,
            ControlError::Store { .. } => Code::StoreFailed,
            ControlError::StoreClosed => Code::StoreClosed,
            ControlError::JobNotFound(_) => Code::JobNotFound,
            ControlError::JobAmbiguous(_) => Code::JobAmbiguous,
            ControlError::IllegalTransition { .. } => Code::JobTransitionIllegal,
            ControlError::ImportDisabled => Code::ImportDisabled,
            ControlError::ShuttingDown => Code::ShuttingDown,
            ControlError::ShutdownTimeout(_) => Code::ShutdownTimeout,
            ControlError::DaemonRunning(_) => Code::DaemonAlreadyRunning,
            ControlError::DaemonNotRunning(_) => Code::DaemonNotRunning,
            ControlError::Socket { .. } => Code::SocketFailed,
            ControlError::Io { .. } => Code::IoFailed,
            ControlError::Busy(_) => Code::ControlBusy,
            ControlError::Ledger(e) => e.code(),
            ControlError::BadRequest(_) => Code::BadRequest,
            ControlError::Remote { code, .. } => Code::parse(code).unwrap_or(Code::Unknown),
            ControlError::SourceLocation(e) => match e {
                crate::aix::locate::LocateError::Missing { .. } => Code::SourceNotFound,
                crate::aix::locate::LocateError::NotThisTool { .. } => Code::SourceNotRecognised,
            },
            ControlError::DaemonHasOwnSettings => Code::DaemonHasOwnSettings,
        }
    }

    /// A usage error (exit 2): the command line asked for something that cannot be.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ControlError::SourceLocation(_) | ControlError::DaemonHasOwnSettings
        )
    }

    pub(crate) fn store(context: &'static str) -> impl FnOnce(rusqlite::Error) -> ControlError {
        move |source| ControlError::Store { context, source }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ControlError + '_ {
        move |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
