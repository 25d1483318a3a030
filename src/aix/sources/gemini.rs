//! Gemini CLI: `~/.gemini/tmp/<project>/chats/` whole-file JSON and JSONL upsert logs.
//! Being written: see issue 6.

use super::{ParseStats, SessionParser, SourceFile};
use crate::protocol::ImportSessionItem;

pub struct GeminiParser {
    stats: ParseStats,
    consumed: u64,
}

impl GeminiParser {
    pub fn new(_file: &SourceFile) -> Self {
        Self {
            stats: ParseStats::default(),
            consumed: 0,
        }
    }
}

impl SessionParser for GeminiParser {
    fn push_lines(&mut self, bytes: &[u8], offset: u64, _emit: bool) {
        self.consumed = offset + bytes.len() as u64;
    }
    fn take_items(&mut self) -> Vec<ImportSessionItem> {
        Vec::new()
    }
    fn open_turn_offset(&self) -> u64 {
        self.consumed
    }
    fn fingerprint(&self) -> String {
        String::new()
    }
    fn stats(&self) -> &ParseStats {
        &self.stats
    }
}
