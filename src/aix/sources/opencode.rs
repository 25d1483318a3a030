//! OpenCode: `opencode.dir` (>= 1.2) and the legacy `storage/` JSON tree.
//! Being written: see issue 6.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::store::{SessionStore, StoreCursor, StorePoll, UpdateSink};
use super::{ParseStats, Provider};

/// One OpenCode data directory, polled.
pub struct OpenCodeStore {
    dir: PathBuf,
    stats: ParseStats,
}

impl OpenCodeStore {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            stats: ParseStats::default(),
        }
    }
}

impl SessionStore for OpenCodeStore {
    fn provider(&self) -> Provider {
        Provider::OpenCode
    }
    fn location(&self) -> &Path {
        &self.dir
    }
    fn stamp(&self) -> io::Result<String> {
        let m = std::fs::metadata(&self.dir)?;
        Ok(format!("{}:{:?}", m.len(), m.modified().ok()))
    }
    fn poll(
        &mut self,
        _cursors: &HashMap<String, StoreCursor>,
        _full: bool,
        _sink: UpdateSink<'_>,
    ) -> io::Result<StorePoll> {
        Ok(StorePoll::default())
    }
    fn stats(&self) -> &ParseStats {
        &self.stats
    }
}
