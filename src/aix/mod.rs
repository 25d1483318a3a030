//! The `aix` worker: parses agent session files and emits import frames (SOURCES.md).
//!
//! - `sources`: one parser per agent, pure functions of bytes to import items (`parser_for`).

pub mod sources;
