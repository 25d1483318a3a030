//! The control plane (ARCHITECTURE.md "The control plane"): supervises import workers, runs the
//! tail and the backfill jobs, tracks health, and serves the control socket.
//!
//! Layout:
//! - `supervisor`: the actor that owns every run, the tail's restarts and the active jobs.
//! - `run`: one run from spawn to end: `run.start`, probes, stop escalation, outcome.
//! - `worker`: worker processes: command, spawn, pid files, signals, orphans.
//! - `port`: what the control plane needs from a run's pipeline ([`RunPipeline`]).
//! - `ledger_pipeline`: the real pipeline behind that port, and cursors from the ledger.
//! - `jobs`: the backfill job state machine and its `import_jobs` rows.
//! - `policy`: the restart policy (backoff, reset, give up).
//! - `health`: health states, probe intervals, the status snapshot.
//! - `store`: the `nexus.db` connection behind its own thread.
//! - `api`, `server`, `client`: the control requests, the Unix socket, and its client.
//! - `host`: a ready control plane (lock, stores, ledger writer, pipeline, supervisor).
//! - `lock`: one control plane per `NEX_HOME` (the daemon or an in-process CLI run).
//! - `config`: paths, settings, `config.toml`, environment.
//! - `error`: [`ControlError`] and its codes.

pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod health;
pub mod host;
pub mod jobs;
pub mod ledger_pipeline;
pub mod lock;
pub mod policy;
pub mod port;
pub mod run;
pub mod server;
pub mod store;
pub mod supervisor;
pub mod worker;

pub use crate::pipeline::{Bus, ImportEvent};
pub use api::{Request, Response};
pub use client::{Control, ControlClient};
pub use config::{ControlSettings, Overrides, Paths, Timings};
pub use error::ControlError;
pub use host::Host;
pub use jobs::{JobRecord, JobStatus};
pub use port::{RunInfo, RunPipeline, RunSignal};
pub use run::RunDeps;
pub use server::ControlServer;
pub use store::NexusStore;
pub use supervisor::{ControlHandle, HostMode, Supervisor};
pub use worker::WorkerCommand;
