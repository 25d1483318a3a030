//! The one integration test binary of nex; each module tests one area.

mod import_chunks; // sessions.import.chunk: staging, upload checks, decode codes, improvements
mod import_cli; // `nex import apply` through the built binary
mod import_incremental; // partial tail items converge on the full import's rows (R5)
mod import_ledger; // migrations, pragmas, file modes, cursor store
mod import_props; // property tests: hash invariance, chunk splits, random chunk data
mod import_rules; // sessions.import rule by rule: item reasons, times, normalisation, lineage, rule 12
mod import_service; // sessions.import: baseline scenarios, label hints, request and idempotency codes
mod import_support; // helpers shared by the import_* modules
