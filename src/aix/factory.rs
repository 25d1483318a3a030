//! The parser factory the `aix` binary uses.
//!
//! Pre-merge placeholder: the real parsers (`sources::parser_for`) are written on another
//! branch. Until they are wired here, every file gets [`NoParser`], which reads nothing into
//! items and counts each line under the skipped record type `no_parser`, so the runtime (discovery,
//! cursors, frames, tail) runs end to end and `aix scan` shows that no parser is present.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::file_state::ParserFactory;
use super::sources::{ParseStats, SessionParser, SourceFile};
use crate::protocol::ImportSessionItem;

/// The factory of the `aix` binary.
pub fn default_parser_factory() -> ParserFactory {
    Arc::new(|_file: &SourceFile| Box::new(NoParser::default()) as Box<dyn SessionParser>)
}

/// Produces no items; keeps the fingerprint chain and counts lines.
#[derive(Default)]
pub struct NoParser {
    fingerprint: Option<String>,
    stats: ParseStats,
}

impl SessionParser for NoParser {
    fn push_lines(&mut self, bytes: &[u8], _offset: u64, _emit: bool) {
        let mut fp = self
            .fingerprint
            .take()
            .unwrap_or_else(|| format!("{:x}", Sha256::digest(b"")));
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let mut h = Sha256::new();
            h.update(fp.as_bytes());
            h.update(line);
            fp = format!("{:x}", h.finalize());
            self.stats.lines += 1;
            *self
                .stats
                .skipped_records
                .entry("no_parser".into())
                .or_default() += 1;
        }
        self.fingerprint = Some(fp);
    }

    fn take_items(&mut self) -> Vec<ImportSessionItem> {
        Vec::new()
    }

    fn open_turn_offset(&self) -> u64 {
        0
    }

    fn fingerprint(&self) -> String {
        self.fingerprint
            .clone()
            .unwrap_or_else(|| format!("{:x}", Sha256::digest(b"")))
    }

    fn stats(&self) -> &ParseStats {
        &self.stats
    }

    fn spawn_links(&self) -> BTreeMap<String, super::sources::SpawnLink> {
        BTreeMap::new()
    }
}
