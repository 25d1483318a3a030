//! Errors of the control plane, each with a stable snake_case code (the socket's `error.code`,
//! the CLI's exit message, test assertions).

use std::path::PathBuf;

/// Why a control-plane operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("cannot resolve NEX_HOME: neither NEX_HOME nor HOME is set")]
    HomeUnresolved,
    #[error("cannot read config {path}")]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}: {detail}")]
    ConfigInvalid { path: PathBuf, detail: String },
    #[error("invalid worker command: {0}")]
    WorkerCommandInvalid(&'static str),
    #[error("runtime database error ({context})")]
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
    #[error("illegal job transition {from} -> {to}")]
    IllegalTransition {
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
    #[error("control socket I/O on {path}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("file system error on {path}")]
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
    /// An error reported by the daemon over the socket, kept by code.
    #[error("daemon error {code}: {message}")]
    Remote { code: String, message: String },
}

impl ControlError {
    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            ControlError::HomeUnresolved => "nex_home_unresolved",
            ControlError::ConfigUnreadable { .. } => "config_unreadable",
            ControlError::ConfigInvalid { .. } => "config_invalid",
            ControlError::WorkerCommandInvalid(_) => "worker_command_invalid",
            ControlError::Store { .. } => "store_failed",
            ControlError::StoreClosed => "store_closed",
            ControlError::JobNotFound(_) => "job_not_found",
            ControlError::JobAmbiguous(_) => "job_ambiguous",
            ControlError::IllegalTransition { .. } => "job_transition_illegal",
            ControlError::ImportDisabled => "import_disabled",
            ControlError::ShuttingDown => "shutting_down",
            ControlError::ShutdownTimeout(_) => "shutdown_timeout",
            ControlError::DaemonRunning(_) => "daemon_already_running",
            ControlError::DaemonNotRunning(_) => "daemon_not_running",
            ControlError::Socket { .. } => "socket_failed",
            ControlError::Io { .. } => "io_failed",
            ControlError::Busy(_) => "control_busy",
            ControlError::Ledger(e) => e.code(),
            ControlError::BadRequest(_) => "bad_request",
            ControlError::Remote { code, .. } => code,
        }
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
