//! The integration test binary: one module per area, each tested through its public API.

// Source parsers (Claude Code, Codex): exact items, incremental = full, bad input.
mod sources;
mod worker_backfill; // aix backfill: cursor skip, --full, crash-resume, ordering, lineage
mod worker_discover; // aix discovery layouts of Claude Code and Codex roots
mod worker_emit; // aix emitter: batch packing, chunking, idempotency keys, cursor placement
mod worker_fake; // aix test support: a line-per-turn fake parser and frame capture
mod worker_run; // aix run loop: handshake, health, stop, EOF; the built binary
mod worker_samples; // aix on the real samples (NEX_SAMPLES_DIR): tail in random cuts = backfill
mod worker_scan; // aix scan: per-provider summary and JSON items
mod worker_tail; // aix tail: appends, partial lines, rewrites, rotation, new files
