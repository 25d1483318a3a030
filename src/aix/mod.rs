//! The `aix` worker: parses agent session files and emits import frames (SOURCES.md,
//! PROTOCOL.md worker side).
//!
//! - `sources`: one parser per agent, pure functions of bytes to import items (`parser_for`).
//! - `discover`: which files under the roots are sessions, and the order a backfill reads them.
//! - `cursor`: the per-file resume cursor NEX stores with each commit.
//! - `file_state`: a file's parser and cursor; reads new complete lines into items.
//! - `lineage`: spawn links from parent files filled into subagent items.
//! - `locate`: user-given source locations recognised by what they hold (a tool's home or
//!   the folder its parser reads), refused when missing or of another tool.
//! - `mapping`: each provider's mapping version, in cursors, fingerprints and whole items.
//! - `emit`: the frame stream: batches, chunks, idempotency keys, cursors on committing frames.
//! - `backfill`: discover, skip unchanged, parse on a pool, emit in order.
//! - `tail`: notifications, debounce, reconcile; partial items per append.
//! - `run`: `aix worker --stdio` control loop and `aix emit`.
//! - `stores`: the polled stores (Cursor, OpenCode) of a run and their per-session cursors.
//! - `scan`: `aix scan` summaries; `figures`: its per-session figures (`--sessions`).
//! - `config`, `status`, `error`, `pipe`: options, stop/health state, run errors, stdout.
//! - `factory`: the parser factory of the `aix` binary.

pub mod backfill;
pub mod claude_copies;
pub mod codex_reviews;
pub mod config;
pub mod cursor;
pub mod discover;
pub mod emit;
pub mod error;
pub mod factory;
pub mod figures;
pub mod file_state;
pub mod lineage;
pub mod locate;
pub mod mapping;
pub mod pipe;
pub mod run;
pub mod scan;
pub mod sources;
pub mod status;
pub mod stores;
pub mod tail;

pub use backfill::RunCounters;
pub use config::{RootOverrides, WorkerOptions};
pub use cursor::FileCursor;
pub use emit::{EmitLimits, Emitter, FrameSink};
pub use error::WorkerError;
pub use factory::default_parser_factory;
pub use file_state::ParserFactory;
pub use run::{RunSpec, emit, run_mode, run_worker};
pub use scan::{ProviderSummary, render_summary, scan, scan_each, scan_figures};
pub use status::{StopSignal, WorkerStatus};
