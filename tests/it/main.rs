//! The one integration test binary of nex; each module tests one area through its public API.

mod cli_conventions; // the built nex and aix as a user meets them: counts, source flags, help, errors, times
mod control_daemon; // the built nex and aix binaries: daemon, status --json, SIGTERM, real worker
mod control_files; // nex refuses clearly: strict config, errors naming files, file modes, symlinked ledger
mod control_jobs; // backfill job state machine, one-active rule, daemon restart recovery
mod control_manage; // the built binaries: daemon stop, service files, tail after a stop, first run
mod control_real; // nex daemon with the real aix: jobs, kill -9 of job and tail workers, cancel
mod control_restarts; // tail restarts: backoff (also in paused time), error state, operator restart
mod control_runs; // supervised runs with the fake worker: jobs, cancel, kill -9, shutdown, health
mod control_socket; // the control socket: permissions, requests, watch, stale sockets
mod control_support; // shared harness: temp NEX_HOME, fake worker, counting pipeline
mod e2e_compressed; // Codex rollouts stored zstd-compressed: the ledger of their plain files, twins, damage
mod e2e_conformance; // every sample (Claude Code, Codex, Gemini) through aix | nex import replay: counts = aix scan, lineage
mod e2e_crash; // kill -9 of aix mid-backfill, resume from the ledger's cursors = one clean import
mod e2e_cuts; // the ledger after any cuts of the files (tail steps, restarts) = one import of the final files
mod e2e_damaged; // damaged sources through nex + aix: invalid UTF-8 imported and counted, unreadable files named
mod e2e_incremental; // R5 through aix worker (tail) | nex import replay: random cuts = one backfill
mod e2e_sources; // all five providers at their default locations: scan, backfill, changes in place
mod e2e_store_cuts; // the ledger after any replay of an OpenCode or Cursor database, polled between commits = one import
mod e2e_support; // built aix + nex piped together, fixture trees, canonical dump
mod import_chunks; // sessions.import.chunk: staging, upload checks, decode codes, improvements
mod import_cli; // `nex import apply` through the built binary
mod import_incremental; // partial tail items converge on the full import's rows (R5)
mod import_ledger; // migrations, pragmas, file modes, cursor store
mod import_mapping; // mapping versions: a newer mapping's whole item replaces the old rows, atomically
mod import_props; // property tests: hash invariance, chunk splits, random chunk data
mod import_rules; // sessions.import rule by rule: item reasons, times, normalisation, lineage, rule 12
mod import_service; // sessions.import: baseline scenarios, label hints, request and idempotency codes
mod import_support; // helpers shared by the import_* modules
mod ledger_columns; // migration 0003's query columns (backfill, tail, rule 13, old ledgers), one token meaning, the README's queries
mod ledger_compressed; // migration 0009: long tool bodies compressed; text, search, export, re-import and nex sql unchanged
mod memory_env; // the built nex: allocator settings through glibc's MALLOC_* variables, inherited by its workers; a user's own kept
mod pipeline_audit; // inserted stages: audit row in nexus.db, a custom outcome tap
mod pipeline_chunks; // chunked uploads cut mid-stream and completed by a later run
mod pipeline_flow; // commit visibility, backpressure, cancellation, read errors, busy ledger
mod pipeline_fuzz; // R3 bad-input harness at test size: every outcome as expected
mod pipeline_rejects; // every reject code of a mixed stream, commits, cursors, events
mod pipeline_replay_cli; // `nex import replay` vs `nex import apply` row for row; report, exit codes
mod pipeline_savepoints; // a batch with a failed item or a rejected frame commits what savepoints gave
mod pipeline_support; // fixtures shared by the pipeline_* modules
mod query_cli; // nex usage, sessions list|show|export: sums = SQL sums, subagents once, prices, prefixes, redaction
mod query_mcp; // nex mcp through a real MCP client over stdio: tools, answers = library, pages, errors
mod query_search; // nex search's query: exact hits and order, snippets, filters, the index after appends, replacements, VACUUM
mod query_search_capped; // nex search's rank cap: exact under it, the newest windows over it, said in the output
mod replica; // issue 14: ledgers replicated into a real PostgreSQL: two machines row for row, faults, credentials
mod sources; // source parsers and stores (all five providers): exact items, incremental = full, bad input
mod verify_cli; // nex import verify: matches, gone sources, tampered rows, exit codes; samples and real corpora
mod worker_backfill; // aix backfill: cursor skip, --full, crash-resume, ordering, lineage
mod worker_discover; // aix discovery layouts of Claude Code and Codex roots
mod worker_emit; // aix emitter: batch packing, chunking, idempotency keys, cursor placement
mod worker_fake; // aix test support: a line-per-turn fake parser and frame capture
mod worker_mapping; // upgrades: a ledger of an older mapping version corrected by the next backfill / tail start
mod worker_retract; // item rule 15: sessions whose source now yields none are retracted (Cursor mapping upgrade), never for a gone source
mod worker_run; // aix run loop: handshake, health, stop, EOF; the built binary
mod worker_samples; // aix on the real samples (NEX_SAMPLES_DIR): tail in random cuts = backfill
mod worker_scan; // aix scan: per-provider summary and JSON items
mod worker_stores; // aix polled stores: store cursors, resume, live-database tail, notified polls, read-only
mod worker_tail; // aix tail: appends, partial lines, rewrites, rotation, new files
