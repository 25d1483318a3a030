//! The CPU that any import of a file corpus spends besides the raw loop's SQLite work, measured
//! in the same run as the raw loop (issue 12, P1's CPU target: <= 1.5 x the raw loop).
//!
//! The raw loop ([`super::raw`]) is handed its rows ready: parsed, their ids made, their tool
//! bodies compressed. An importer of the corpus has to do at least this much more, and each
//! part is measured here as the cheapest way to do it, on one thread:
//! - **parse**: `serde_json` reading every line of every file once and building nothing
//!   (`IgnoredAny`): the least work that knows where each value is;
//! - **digest**: SHA-256 over every byte of every file, as the fingerprint chain hashes what it
//!   has read (SOURCES.md "Items, fingerprints, keys");
//! - **compress**: the ledger's own compression (`ledger::text::StoredText`) of every tool body
//!   it stores compressed, which the raw loop computes before its clock starts. Storing them
//!   plain would break P9 (ledger <= 0.6 x the corpus).
//!
//! Reading the files is not counted, nor is any framing, pipe, validation or idempotency: the
//! sum is a lower bound, not an estimate.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

use nex::ledger::text::{COMPRESS_OVER_BYTES, StoredText};
use nex::protocol::{ImportSessionItem, ToolJson};

use super::backfill::thread_cpu_secs;

/// CPU seconds of each part of the floor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FloorCpu {
    pub parse_secs: f64,
    pub digest_secs: f64,
    pub compress_secs: f64,
}

impl FloorCpu {
    pub fn total_secs(&self) -> f64 {
        self.parse_secs + self.digest_secs + self.compress_secs
    }
}

/// Measures the floor over the `.jsonl` files under `roots` and the tool bodies of `items`
/// (the corpus's, as the worker emits them). Holds the files and the bodies in memory while it
/// runs, and frees them before it returns.
///
/// # Errors
/// A file that cannot be read.
pub fn measure(roots: &[PathBuf], items: &[ImportSessionItem]) -> io::Result<FloorCpu> {
    let mut paths = Vec::new();
    for root in roots {
        jsonl_files(root, &mut paths)?;
    }
    let files = paths
        .iter()
        .map(std::fs::read)
        .collect::<io::Result<Vec<_>>>()?;
    let parse_secs = timed(|| {
        let lines = files
            .iter()
            .flat_map(|f| f.split(|b| *b == b'\n'))
            .filter(|l| !l.is_empty());
        lines
            .filter(|l| serde_json::from_slice::<IgnoredAny>(l).is_ok())
            .count()
    });
    let digest_secs = timed(|| {
        files
            .iter()
            .map(|f| Sha256::digest(f)[0])
            .fold(0u8, |a, b| a ^ b)
    });
    drop(files);
    let bodies: Vec<String> = items
        .iter()
        .flat_map(|item| &item.tool_calls)
        .flat_map(|call| [&call.params_json, &call.result_json])
        .filter_map(|body| body.as_ref().map(ToolJson::text))
        .filter(|text| text.len() > COMPRESS_OVER_BYTES)
        .collect();
    let compress_secs = timed(|| {
        bodies
            .iter()
            .map(|text| match StoredText::of(text.clone()) {
                StoredText::Compressed(bytes) => bytes.len(),
                StoredText::Plain(text) => text.len(),
            })
            .sum::<usize>()
    });
    Ok(FloorCpu {
        parse_secs,
        digest_secs,
        compress_secs,
    })
}

/// This thread's CPU seconds spent in `work` (its result kept, so the work is not optimised
/// away).
fn timed<T>(work: impl FnOnce() -> T) -> f64 {
    let before = thread_cpu_secs();
    std::hint::black_box(work());
    thread_cpu_secs() - before
}

fn jsonl_files(dir: &Path, acc: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            jsonl_files(&path, acc)?;
        } else if path.extension().is_some_and(|x| x == "jsonl") {
            acc.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_the_floor_costs_something_and_a_missing_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("p").join("s");
        std::fs::create_dir_all(&nested).unwrap();
        let line = format!("{{\"text\":\"{}\"}}\n", "word ".repeat(4000));
        std::fs::write(nested.join("a.jsonl"), line.repeat(2000)).unwrap();
        std::fs::write(nested.join("ignored.txt"), "not json").unwrap();
        let body = serde_json::json!({ "out": "line of output ".repeat(200_000) });
        let item = ImportSessionItem {
            tool_calls: vec![nex::protocol::ToolCall {
                result_json: Some(body.into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let floor = measure(&[dir.path().to_path_buf()], &[item]).unwrap();
        assert!(floor.parse_secs > 0.0, "{floor:?}");
        assert!(floor.digest_secs > 0.0, "{floor:?}");
        assert!(floor.compress_secs > 0.0, "{floor:?}");
        assert_eq!(
            floor.total_secs(),
            floor.parse_secs + floor.digest_secs + floor.compress_secs
        );
        assert!(measure(&[dir.path().join("missing")], &[]).is_err());
    }
}
