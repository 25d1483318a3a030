//! The integration test binary. One module per area.

// Shared fixtures of the pipeline tests.
mod pipeline_support;
// Every reject code of a mixed stream, commits, cursors and events.
mod pipeline_rejects;
