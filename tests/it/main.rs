//! The integration test binary. One module per area.

mod control_jobs; // backfill job state machine, one-active rule, daemon restart recovery
mod control_runs; // supervised runs with the fake worker: jobs, tail restarts, stops, health
mod control_socket; // the control socket: permissions, requests, stale sockets
mod control_support; // shared harness: temp NEX_HOME, fake worker, counting pipeline
// Shared fixtures of the pipeline tests.
mod pipeline_support;
// Every reject code of a mixed stream, commits, cursors and events.
mod pipeline_rejects;
