//! The integration test binary. One module per area.

// Shared fixtures of the pipeline tests.
mod pipeline_support;
// Every reject code of a mixed stream, commits, cursors and events.
mod pipeline_rejects;
// Chunked uploads cut mid-stream and completed by a later run.
mod pipeline_chunks;
// Commit visibility, backpressure, cancellation, read errors, busy ledger.
mod pipeline_flow;
// `nex import replay` vs `nex import apply`: same ledger row for row; report and exit codes.
mod pipeline_replay_cli;
// Inserted stages: audit trail row in nexus.db, a custom outcome tap.
mod pipeline_audit;
