//! # nex: the NEX session import service
//!
//! Pulls the histories of AI coding agents into one SQLite agents ledger, as a one-time
//! backfill and as a continuous tail, with exact idempotency.
//!
//! # Layout
//!
//! - [`protocol`]: the wire vocabulary shared by `nex` and the `aix` worker: import items,
//!   service-level requests and responses, stdio JSONL v1 frames, job states, the one set of
//!   error codes.
//! - [`import`]: the Session Import Service: `sessions.import` / `sessions.import.chunk` over a
//!   SQLite transaction, with the baseline's idempotency, chunking and upsert semantics.
//! - [`ledger`]: SQLite files (`agents.db`, `nexus.db`): open with pragmas, migrations, cursors,
//!   the `import_runs` audit trail.
//! - [`pipeline`]: the per-run streaming import pipeline: stage traits, typed builder,
//!   batching, the ledger writer thread, bus events, run report and the one typed end of a run,
//!   `run_pipeline`.
//! - [`stages`]: one file per pipeline stage: frame source, decoder, chunk assembler, validator,
//!   batched ledger sink, metrics tap (the run's one tally), audit and telemetry taps.
//! - [`query`]: read-only queries over the ledger shared by the CLI and the MCP server: usage
//!   and cost with subagent rollup, session lookup by prefix, the session list, export.
//!   The full-text search of `nex search` too.
//! - [`mcp`]: the Model Context Protocol server of `nex mcp` (read-only tools over [`query`]).
//! - [`cli`]: the `nex` command line (clap tree and command implementations).
//! - [`aix`]: the worker: source parsers, emitter, discovery, tail watcher, run loop.
//! - [`control`]: the control plane: supervisor of worker runs, backfill jobs, the tail, health,
//!   the control socket.
//! - [`replica`]: replication of the ledger into a shared PostgreSQL (many machines, one
//!   archive): change log reader, schema, batches, the replicator, status and reports.
//! - [`memory`]: the allocator settings `nex` and `aix` apply at start (peak RSS).
//!
//! The `nex-bench` harness is not part of the library: it is the workspace member `bench/`
//! (crate `nex_bench`), which depends on this one.

pub mod aix;
pub mod cli;
pub mod control;
pub mod import;
pub mod ledger;
pub mod mcp;
pub mod memory;
pub mod pipeline;
pub mod protocol;
pub mod query;
pub mod replica;
pub mod stages;
