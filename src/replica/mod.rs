//! Replication of the ledger into a shared PostgreSQL (ARCHITECTURE.md "Scale out", issue
//! 14): every committed change of the local ledger, at least once, idempotently, in the order
//! of the ledger's change sequence; the replica's watermark per machine is stored with the
//! rows it covers.
//!
//! Layout:
//! - `settings`: `[replica] url` / `NEX_REPLICA_URL`, `machine`; the URL as a secret.
//! - `tables`: the replicated tables, their keys and columns (read from the ledger).
//! - `changes`: the ledger side: batches of changes after a watermark, read-only.
//! - `tls`: `sslmode` and `sslrootcert` as libpq means them, and the TLS connector.
//! - `pg`: connecting, and the replica's schema (created and migrated by nex).
//! - `apply`: one batch and its watermark in one PostgreSQL transaction.
//! - `replicator`: the loop of the daemon and of `nex replica sync`.
//! - `state`: what the last replicator saw (`run/replica.json`), for status.
//! - `status`: `nex replica status`.
//! - `reports`: the session and usage reports over every machine of the replica.
//! - `error`: [`ReplicaError`] and its codes.

pub mod apply;
pub mod changes;
pub mod error;
pub mod pg;
pub mod replicator;
pub mod reports;
pub mod settings;
pub mod state;
pub mod status;
pub mod tables;
pub mod tls;

pub use error::ReplicaError;
pub use replicator::{Replicator, SyncReport};
pub use settings::{ReplicaSettings, ReplicaUrl};
pub use state::StateFile;
pub use status::ReplicaStatus;
