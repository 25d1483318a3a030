//! The one integration test binary; each module tests one area through its public API.

// Source parsers (Claude Code, Codex): exact items, incremental = full, bad input.
mod sources;
