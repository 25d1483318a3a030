//! The integration tests of `nex-bench`: its scenarios at smoke size through the built binary.
//!
//! `nex-bench` runs the `aix` and `nex` binaries it finds next to itself, so these tests need
//! the whole workspace built: `cargo test` at the root (or `cargo build --bins` first).

mod e2e_bench; // worker scenarios: file corpus, backfill/rebackfill, stores, tail latency, idle
mod pipeline_bench; // generated frame corpus replays completely, replay reports ratios

use std::path::PathBuf;

/// A binary of the `nex` package, built next to `nex-bench` (same target directory and
/// profile). Panics with what to run when it is missing.
pub fn sibling_bin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_nex-bench")).with_file_name(name);
    assert!(
        path.is_file(),
        "{} not built: run `cargo test` at the workspace root, or `cargo build --bins` first",
        path.display()
    );
    path
}
