//! Cursor IDE: `globalStorage/state.vscdb` (`cursorDiskKV` composer and bubble keys, legacy
//! `ItemTable` chat keys). Being written: see issue 6.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::store::{SessionStore, StoreCursor, StorePoll, UpdateSink};
use super::{ParseStats, Provider};

/// One Cursor `state.vscdb`, polled.
pub struct CursorStore {
    db: PathBuf,
    stats: ParseStats,
}

impl CursorStore {
    pub fn new(db: PathBuf) -> Self {
        Self {
            db,
            stats: ParseStats::default(),
        }
    }
}

impl SessionStore for CursorStore {
    fn provider(&self) -> Provider {
        Provider::Cursor
    }
    fn location(&self) -> &Path {
        &self.db
    }
    fn stamp(&self) -> io::Result<String> {
        let m = std::fs::metadata(&self.db)?;
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
