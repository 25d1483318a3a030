//! Which Codex session a `/review` rollout belongs to (SOURCES.md "Real-world variants").
//!
//! A review runs in a rollout of its own (`session_meta.source.subagent: "review"`) that names
//! no parent. The parent's file writes `entered_review_mode`, then a `task_started` whose
//! `turn_id` is the review rollout's first `task_started` turn id: that turn id is the key.
//!
//! The link stays a function of the final files the same way as `aix::claude_copies`:
//! - the first time a parser of a Codex file is made, every rollout under its `sessions`
//!   directory holding `entered_review_mode` or a review `session_meta` is read for its keys
//!   (parents: turn id -> session id; reviews: file -> first turn id);
//! - files written later add their keys as their parser reads them: a parent key that arrives
//!   after its review was read displaces the review's file ([`ReviewIndex::take_displaced`]),
//!   which the tail then reads again whole;
//! - a review file's cursor records the parent it was read with ([`ReviewIndex::parent_of_file`]
//!   through `SessionParser::copies_digest`): a run that finds another one reads it again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::discover::codex_file;
use super::file_state::compressed;
use super::sources::codex::{ReviewFields, review_fields};
use super::sources::common::LineCursor;

/// The review links of every Codex file a run (or a scan) touches.
#[derive(Default)]
pub struct ReviewIndex {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Review turn id -> the session that started it.
    parents: HashMap<String, String>,
    /// Review turn id -> the review rollout.
    reviews: HashMap<String, PathBuf>,
    /// Review rollout -> its first turn id.
    review_turn: HashMap<PathBuf, String>,
    /// `sessions` directories read.
    roots: HashSet<PathBuf>,
    displaced: BTreeSet<PathBuf>,
}

/// The `sessions` directory above a rollout (`sessions/YYYY/MM/DD/rollout-….jsonl`, or a flat
/// older layout), else its own directory.
fn sessions_dir(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    Some(
        parent
            .ancestors()
            .take(4)
            .find(|d| d.file_name().is_some_and(|n| n == "sessions"))
            .unwrap_or(parent)
            .to_path_buf(),
    )
}

fn rollouts(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for p in entries.flatten().map(|e| e.path()) {
        if p.is_dir() {
            if depth > 0 {
                rollouts(&p, depth - 1, out);
            }
        } else if codex_file(&p).is_some() {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What one rollout says about reviews, read line by line as its parser does.
#[derive(Default)]
pub(crate) struct ReviewKeys {
    session: Option<String>,
    is_review: bool,
    /// A review rollout's first `task_started` turn id.
    first_turn: Option<String>,
    /// Between `entered_review_mode` and the next `task_started`.
    entering: bool,
    /// Review turn ids this file started.
    started: Vec<String>,
}

impl ReviewKeys {
    /// Feeds one record's review fields.
    pub(crate) fn record(&mut self, f: &ReviewFields<'_>) {
        match (f.kind, f.payload_kind) {
            ("session_meta", _) if self.session.is_none() => {
                self.session = f.id.map(str::to_owned);
                self.is_review = f.is_review;
            }
            ("event_msg", "entered_review_mode") => self.entering = true,
            ("event_msg", "task_started" | "turn_started") => {
                let Some(turn) = f.turn_id.map(str::to_owned) else {
                    return;
                };
                if self.is_review && self.first_turn.is_none() {
                    self.first_turn = Some(turn.clone());
                }
                if std::mem::take(&mut self.entering) {
                    self.started.push(turn);
                }
            }
            _ => {}
        }
    }
}

impl Inner {
    fn add(&mut self, path: &Path, keys: &ReviewKeys) {
        if let Some(session) = &keys.session {
            for turn in &keys.started {
                let known = self.parents.get(turn);
                if known == Some(session) {
                    continue;
                }
                // Two parents naming one review turn: the smaller session id, whatever order.
                if known.is_some_and(|k| k < session) {
                    continue;
                }
                self.parents.insert(turn.clone(), session.clone());
                if let Some(review) = self.reviews.get(turn)
                    && review != path
                {
                    self.displaced.insert(review.clone());
                }
            }
        }
        if let Some(turn) = &keys.first_turn {
            self.reviews.insert(turn.clone(), path.to_path_buf());
            self.review_turn.insert(path.to_path_buf(), turn.clone());
        }
    }

    fn read_root(&mut self, dir: &Path) {
        let mut files = Vec::new();
        rollouts(dir, 4, &mut files);
        files.sort();
        let displaced = std::mem::take(&mut self.displaced);
        for path in files {
            // A compressed rollout (`.jsonl.zst`) is read inflated; a damaged one has no keys.
            let read = std::fs::read(&path).and_then(|b| compressed::rollout_lines(&path, b));
            let Ok(bytes) = read else {
                continue;
            };
            if !contains(&bytes, b"entered_review_mode") && !contains(&bytes, b"\"review\"") {
                continue;
            }
            let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let mut keys = ReviewKeys::default();
            LineCursor::default().feed(&bytes[..end], 0, |line| {
                review_fields(line.bytes, |f| keys.record(f));
            });
            self.add(&path, &keys);
        }
        // Reading the directory is not a change (none of its files was parsed yet).
        self.displaced = displaced;
    }
}

impl ReviewIndex {
    /// Makes the index know the rollouts of `path`'s `sessions` directory (read once).
    pub fn file(&self, path: &Path) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = sessions_dir(path)
            && inner.roots.insert(dir.clone())
        {
            inner.read_root(&dir);
        }
    }

    /// Adds what a parser learnt of `path` so far.
    pub(crate) fn add(&self, path: &Path, keys: &ReviewKeys) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.add(path, keys);
    }

    /// The session that started the review `turn`, when known.
    pub fn parent_of_turn(&self, turn: &str) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.parents.get(turn).cloned()
    }

    /// The parent of the review rollout at `path`, when it is one and its parent is known.
    pub fn parent_of_file(&self, path: &Path) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let turn = inner.review_turn.get(path)?;
        inner.parents.get(turn).cloned()
    }

    /// Review rollouts whose parent became known since the last call.
    pub fn take_displaced(&self) -> Vec<PathBuf> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut inner.displaced).into_iter().collect()
    }
}
