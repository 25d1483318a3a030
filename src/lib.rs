//! # nex: the NEX session import service
//!
//! Pulls the histories of AI coding agents into one SQLite agents ledger, as a one-time
//! backfill and as a continuous tail, with exact idempotency.
//!
//! # Layout
//!
//! - [`protocol`]: the wire vocabulary shared by `nex` and the `aix` worker: import items,
//!   service-level requests and responses, stdio JSONL v1 frames, error codes.
//! - [`aix`]: the worker: source parsers, emitter, discovery, tail watcher, run loop.
//! - [`control`]: the control plane: supervisor of worker runs, backfill jobs, the tail, health,
//!   the control socket.

pub mod protocol;
pub mod aix;
pub mod control;
