//! The integration test binary. One module per area.

mod control_daemon; // the built nex and aix binaries: daemon, status --json, SIGTERM, real worker
mod control_jobs; // backfill job state machine, one-active rule, daemon restart recovery
mod control_restarts; // tail restarts: backoff (also in paused time), error state, operator restart
mod control_runs; // supervised runs with the fake worker: jobs, tail restarts, stops, health
mod control_socket; // the control socket: permissions, requests, stale sockets
mod control_support; // shared harness: temp NEX_HOME, fake worker, counting pipeline
// Shared fixtures of the pipeline tests.
mod pipeline_support;
// Every reject code of a mixed stream, commits, cursors and events.
mod pipeline_rejects;
// Source parsers (Claude Code, Codex): exact items, incremental = full, bad input.
mod import_chunks; // sessions.import.chunk: staging, upload checks, decode codes, improvements
mod import_cli; // `nex import apply` through the built binary
mod import_incremental; // partial tail items converge on the full import's rows (R5)
mod import_ledger; // migrations, pragmas, file modes, cursor store
mod import_props; // property tests: hash invariance, chunk splits, random chunk data
mod import_service; // sessions.import: baseline scenarios, rules, error codes
mod import_support;
mod sources;
mod worker_backfill; // aix backfill: cursor skip, --full, crash-resume, ordering, lineage
mod worker_discover; // aix discovery layouts of Claude Code and Codex roots
mod worker_emit; // aix emitter: batch packing, chunking, idempotency keys, cursor placement
mod worker_fake; // aix test support: a line-per-turn fake parser and frame capture
mod worker_run; // aix run loop: handshake, health, stop, EOF; the built binary
mod worker_samples; // aix on the real samples (NEX_SAMPLES_DIR): tail in random cuts = backfill
mod worker_scan; // aix scan: per-provider summary and JSON items
mod worker_tail; // aix tail: appends, partial lines, rewrites, rotation, new files // helpers shared by the import_* modules
// Chunked uploads cut mid-stream and completed by a later run.
mod pipeline_chunks;
// Commit visibility, backpressure, cancellation, read errors, busy ledger.
mod pipeline_flow;
// `nex import replay` vs `nex import apply`: same ledger row for row; report and exit codes.
mod pipeline_replay_cli;
// Inserted stages: audit trail row in nexus.db, a custom outcome tap.
mod pipeline_audit;
