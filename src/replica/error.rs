//! Errors of the replica, each with a stable code. Messages never hold the replica URL's
//! password: server and driver messages pass through [`super::settings::Redactor`] first.

use crate::protocol::Code;

/// Why a replica operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    #[error("no replica is configured: set [replica] url in config.toml or NEX_REPLICA_URL")]
    NotConfigured,
    /// The URL does not parse; the message never repeats the URL.
    #[error("the replica URL is invalid: {0}")]
    UrlInvalid(&'static str),
    #[error("the replica machine name is invalid: {0}")]
    MachineInvalid(&'static str),
    /// Connecting (or the connection) failed: the server is down, unreachable, refuses us.
    #[error("cannot reach the replica at {host}: {detail}")]
    Unreachable { host: String, detail: String },
    #[error("cannot create or migrate the replica's schema: {0}")]
    Schema(String),
    #[error("cannot write to the replica: {0}")]
    Write(String),
    /// The ledger could not be read (its change log, a row).
    #[error("cannot read the ledger: {0}")]
    Read(String),
    /// Another ledger already replicates under this machine name.
    #[error(
        "another ledger already replicates as machine `{0}` (two hosts with one name, or a ledger started anew): set another [replica] machine"
    )]
    MachineTaken(String),
    /// A ledger value that the replica's column type cannot hold.
    #[error("{table}.{column} holds a value the replica cannot store ({detail})")]
    ValueInvalid {
        table: &'static str,
        column: String,
        detail: &'static str,
    },
    /// A report's argument (a date) or its local calendar.
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
}

impl ReplicaError {
    pub fn code(&self) -> Code {
        match self {
            ReplicaError::NotConfigured => Code::ReplicaNotConfigured,
            ReplicaError::UrlInvalid(_) => Code::ReplicaUrlInvalid,
            ReplicaError::MachineInvalid(_) => Code::ReplicaMachineInvalid,
            ReplicaError::Unreachable { .. } => Code::ReplicaUnreachable,
            ReplicaError::Schema(_) => Code::ReplicaSchemaFailed,
            ReplicaError::Write(_) => Code::ReplicaWriteFailed,
            ReplicaError::Read(_) => Code::ReplicaReadFailed,
            ReplicaError::ValueInvalid { .. } => Code::ReplicaValueInvalid,
            ReplicaError::MachineTaken(_) => Code::ReplicaMachineTaken,
            ReplicaError::Query(e) => e.code(),
        }
    }

    /// Worth retrying by the replicator (the server or the network may come back); the others
    /// need a change of configuration or of the ledger.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ReplicaError::Unreachable { .. }
                | ReplicaError::Write(_)
                | ReplicaError::Schema(_)
                | ReplicaError::Read(_)
        )
    }
}

impl From<rusqlite::Error> for ReplicaError {
    fn from(e: rusqlite::Error) -> Self {
        ReplicaError::Read(e.to_string())
    }
}
