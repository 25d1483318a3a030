//! Which Claude Code file owns a line that several files hold (SOURCES.md "Real-world
//! variants": a resumed file repeats lines of the earlier session's file, same `uuid`, under a
//! new file and session id; a 2.1.x `aside_question` subagent file, the answer to a side
//! question, starts with a copy of its parent's conversation: same uuids, timestamps and
//! `sessionId`). Every Claude Code file of a project takes part, main and subagent files alike.
//!
//! # The rule
//! A `uuid` belongs to one file: the one whose copy has the earliest `timestamp`; on a tie, the
//! file whose stem is the line's `sessionId`; then the smallest path. Within a file only its
//! first line with that uuid counts (the parser keeps the first line and treats later ones as
//! copies). A line a file does not own is a copy: its parser skips it. Fitted on every resumed
//! pair found in real histories (9 pairs of 1.0.x files, chains of up to four files) and on the
//! one real subagent file found that holds other files' lines (an `aside_question` agent: its
//! copies carry the parent's timestamps and `sessionId`, so the parent, named by it, owns them;
//! 95 other real subagent files share no uuid with any file).
//!
//! # How the rule stays a function of the final files
//! - A project's files (every Claude Code file of its `projects/<name>/` directory) are read
//!   once for their claims (uuid, timestamp, session id), the first time a parser of one of them
//!   is made ([`CopyIndex::file`]), before that parser reads a line. A backfill therefore parses
//!   every file against the claims of all the files on disk.
//! - Files written later add their claims as their parser reads them ([`CopyIndex::claim`]).
//!   When a claim takes a uuid from another file, that file is *displaced*
//!   ([`CopyIndex::take_displaced`]): the tail reads it again whole, and its whole item removes
//!   the rows of the lines it no longer owns (`copiesElsewhere`, item rule 13).
//! - Each file's cursor records the digest of the uuids it does not own ([`CopyIndex::digest`]):
//!   a run that finds another digest reads the file again whole (the claims moved while no
//!   worker ran). A cursor's digest is the one the ledger reflects: a read that yields no item
//!   (every complete line of the file now another file's) keeps the previous one
//!   (`file_state::committed_copies`), so the rows the file imported while it owned those lines
//!   are removed by the next whole read that has an item, when the file grows again.
//!
//! Uuids are compared within a project only (a uuid is unique in real histories, but test
//! trees reuse short ids across projects).
//!
//! Memory: 20 bytes per uuid of the projects read (its 8-byte key and its best claim, packed in
//! its project's [`Table`], sorted arrays of exactly that size once the project is read), and 8
//! bytes per line that is a copy (a claim that lost). A claim's owner is its best claim, so the
//! claims a file won are not listed again by file. Claims made after a project was read (lines
//! written since) go to a small hash table beside the arrays. A project's files are read for
//! their claims by blocks of [`READ_BLOCK`] bytes, so reading a project holds one line at a time,
//! not its largest file. Claims are only added: a file that shrinks keeps its old claims until
//! the next run.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::sources::FileRole;
use super::sources::common::{LineCursor, parse_rfc3339_ms};
use super::sources::lenient;

/// A file's key in the index.
pub type FileId = u32;

/// One file's claim on a uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    /// Epoch ms of the claiming line; `i64::MAX` without a readable timestamp.
    at: i64,
    /// The line's `sessionId` is the file's stem.
    named: bool,
    file: FileId,
}

/// The best claims of one project's uuids, by the uuid's 64-bit key.
///
/// The claims read with the project are frozen into three parallel arrays sorted by key (20
/// bytes a uuid, against 28 to 57 for the same entries in a hash table at its load factor);
/// later claims, and later winners over frozen ones, go to `recent`, which is looked up first.
#[derive(Default)]
struct Table {
    keys: Vec<u64>,
    ats: Vec<i64>,
    /// The claiming file, with [`NAMED`] set when the line's session id is the file's stem.
    files: Vec<u32>,
    recent: HashMap<u64, Claim>,
}

/// The bit of [`Table::files`] that holds [`Claim::named`] (file ids stay far below it: one a
/// file of the run).
const NAMED: u32 = 1 << 31;

/// Bytes read at once when a project's files are read for their claims.
const READ_BLOCK: usize = 1 << 20;

impl Table {
    fn get(&self, key: u64) -> Option<Claim> {
        if let Some(c) = self.recent.get(&key) {
            return Some(*c);
        }
        let i = self.keys.binary_search(&key).ok()?;
        Some(Claim {
            at: self.ats[i],
            named: self.files[i] & NAMED != 0,
            file: self.files[i] & !NAMED,
        })
    }

    fn insert(&mut self, key: u64, claim: Claim) {
        self.recent.insert(key, claim);
    }

    /// Keeps the frozen claims whose key `keep` accepts, sized exactly (call after
    /// [`Table::freeze`]).
    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let mut kept = 0;
        for i in 0..self.keys.len() {
            if keep(self.keys[i]) {
                self.keys[kept] = self.keys[i];
                self.ats[kept] = self.ats[i];
                self.files[kept] = self.files[i];
                kept += 1;
            }
        }
        self.keys.truncate(kept);
        self.keys.shrink_to_fit();
        self.ats.truncate(kept);
        self.ats.shrink_to_fit();
        self.files.truncate(kept);
        self.files.shrink_to_fit();
    }

    /// Moves the recent claims into the sorted arrays, sized exactly.
    fn freeze(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        let mut recent: Vec<(u64, Claim)> = self.recent.drain().collect();
        self.recent.shrink_to_fit();
        recent.sort_unstable_by_key(|(k, _)| *k);
        let len = self.keys.len() + recent.len();
        let (mut keys, mut ats, mut files) = (
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
        );
        let mut frozen = 0;
        for (key, claim) in recent {
            while frozen < self.keys.len() && self.keys[frozen] < key {
                keys.push(self.keys[frozen]);
                ats.push(self.ats[frozen]);
                files.push(self.files[frozen]);
                frozen += 1;
            }
            // A recent claim replaces the frozen one on the same uuid.
            if frozen < self.keys.len() && self.keys[frozen] == key {
                frozen += 1;
            }
            debug_assert!(claim.file < NAMED);
            keys.push(key);
            ats.push(claim.at);
            files.push(claim.file | if claim.named { NAMED } else { 0 });
        }
        keys.extend_from_slice(&self.keys[frozen..]);
        ats.extend_from_slice(&self.ats[frozen..]);
        files.extend_from_slice(&self.files[frozen..]);
        keys.shrink_to_fit();
        ats.shrink_to_fit();
        files.shrink_to_fit();
        (self.keys, self.ats, self.files) = (keys, ats, files);
    }
}

/// The ownership index of every Claude Code file a run (or a scan) touches, by project.
#[derive(Default)]
pub struct CopyIndex {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    paths: Vec<PathBuf>,
    ids: HashMap<PathBuf, FileId>,
    /// Each file's project (an index into `projects`): uuids are compared within a project.
    project_of: Vec<u32>,
    /// The best claim on each uuid, by project (an index into `projects`) and the uuid's 64-bit
    /// key: the uuids a file has claimed and owns are those whose best claim is the file's.
    best: Vec<Table>,
    /// The uuids each file has claimed and does not own (a best claim, once beaten, never wins
    /// again, so a uuid only ever moves into this set).
    lost: HashMap<FileId, HashSet<u64>>,
    /// Project directories, in the order first met; those whose files were read for their
    /// claims are in `read`.
    projects: Vec<PathBuf>,
    /// The index of each directory in `projects`.
    project_ids: HashMap<PathBuf, u32>,
    read: HashSet<u32>,
    /// Projects read and compact: their tables keep only the contested uuids (those a file
    /// holds as a copy); the rest of the claims read are known by [`Inner::read_until`] only.
    compact: HashSet<u32>,
    /// Each file's bytes read with its project (up to the end of its last complete line then):
    /// a line before this offset claimed its uuid when the project was read.
    read_until: Vec<u64>,
    /// Files that lost a uuid since the last [`CopyIndex::take_displaced`].
    displaced: BTreeSet<FileId>,
}

/// The fields of a line the rule reads (lenient like the parser's `Record`, so both read the
/// same claim from the same line).
#[derive(Default, Deserialize)]
#[serde(default)]
struct ClaimFields<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    uuid: Option<Cow<'a, str>>,
    #[serde(rename = "sessionId", borrow, deserialize_with = "lenient::str")]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    timestamp: Option<Cow<'a, str>>,
}

/// The 64-bit key of a uuid (the first 8 bytes of its SHA-256: stable across builds, since
/// digests built from it are stored in cursors).
fn key_of(uuid: &str) -> u64 {
    let d = Sha256::digest(uuid.trim().as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The project directory of a Claude Code file: `projects/<name>/` for `<name>/<id>.jsonl`,
/// `<name>/agent-<id>.jsonl`, `<name>/<id>/subagents/[workflows/<run>/]agent-<id>.jsonl`.
pub(crate) fn project_dir(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    let subagents = parent
        .ancestors()
        .take(3)
        .find(|d| d.file_name().is_some_and(|n| n == "subagents"));
    match subagents {
        Some(d) => d.parent()?.parent().map(Path::to_path_buf),
        None => Some(parent.to_path_buf()),
    }
}

/// The Claude Code files under a project directory (depth 5 covers workflow runs).
fn project_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if depth > 0 {
                project_files(&p, depth - 1, out);
            }
        } else if FileRole::claude_code_for(&p).is_some() {
            out.push(p);
        }
    }
}

impl Inner {
    fn id(&mut self, path: &Path) -> FileId {
        if let Some(&id) = self.ids.get(path) {
            return id;
        }
        let dir = project_dir(path).unwrap_or_default();
        let project = match self.project_ids.get(&dir) {
            Some(&i) => i,
            None => {
                let i = self.projects.len() as u32;
                self.project_ids.insert(dir.clone(), i);
                self.projects.push(dir);
                self.best.push(Table::default());
                i
            }
        };
        let id = self.paths.len() as FileId;
        self.paths.push(path.to_path_buf());
        self.project_of.push(project);
        self.read_until.push(0);
        self.ids.insert(path.to_path_buf(), id);
        id
    }

    /// The best claims of `file`'s project.
    fn best_of(&self, file: FileId) -> &Table {
        &self.best[self.project_of[file as usize] as usize]
    }

    /// `a` beats `b`: earlier, then named by its session id, then the smaller path.
    fn beats(&self, a: &Claim, b: &Claim) -> bool {
        (a.at, !a.named, &self.paths[a.file as usize])
            < (b.at, !b.named, &self.paths[b.file as usize])
    }

    fn claim(
        &mut self,
        file: FileId,
        uuid: &str,
        at: Option<i64>,
        session: Option<&str>,
        offset: u64,
    ) -> bool {
        let key = key_of(uuid);
        let project = self.project_of[file as usize];
        if self.compact.contains(&project) && self.best[project as usize].get(key).is_none() {
            if offset < self.read_until[file as usize] {
                // Claimed when the project was read, and held by no other file (a contested
                // uuid keeps its best claim): the file's own.
                return true;
            }
            // A line written since: its uuid may be one no longer listed.
            self.expand(project);
        }
        let best = self.best_of(file).get(key);
        // Only a file's first line with a uuid claims it.
        if best.is_some_and(|b| b.file == file) {
            return true;
        }
        if self.lost.get(&file).is_some_and(|l| l.contains(&key)) {
            return false;
        }
        let stem = self.paths[file as usize]
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let claim = Claim {
            at: at.unwrap_or(i64::MAX),
            named: session.is_some_and(|s| s.trim() == stem),
            file,
        };
        match best {
            Some(best) if !self.beats(&claim, &best) => {
                self.lost.entry(file).or_default().insert(key);
                false
            }
            previous => {
                if let Some(previous) = previous {
                    self.displaced.insert(previous.file);
                    self.lost.entry(previous.file).or_default().insert(key);
                }
                let project = self.project_of[file as usize] as usize;
                self.best[project].insert(key, claim);
                true
            }
        }
    }

    /// Reads the claims of every file of `dir` (complete lines only), then keeps only the
    /// contested ones: the project is compact until a line not read now makes a claim.
    fn read_project(&mut self, dir: &Path) {
        let mut files = Vec::new();
        project_files(dir, 4, &mut files);
        // Reading a project is not a change of ownership (none of its files was parsed yet).
        let displaced = std::mem::take(&mut self.displaced);
        let mut project = None;
        for path in files {
            let Ok(reader) = std::fs::File::open(&path) else {
                continue;
            };
            let file = self.id(&path);
            project = Some(self.project_of[file as usize]);
            let until = complete_lines(reader, |line, offset| {
                if let Some((uuid, at, session)) = claim_of(line) {
                    self.claim(file, &uuid, at, session.as_deref(), offset);
                }
            });
            self.read_until[file as usize] = until;
        }
        if let Some(project) = project {
            self.compact_project(project);
        }
        self.displaced = displaced;
    }

    /// Drops the best claims no file contests (a uuid whose only claims are one file's) and
    /// marks the project compact.
    fn compact_project(&mut self, project: u32) {
        let contested: HashSet<u64> = self
            .lost
            .iter()
            .filter(|(file, _)| self.project_of[**file as usize] == project)
            .flat_map(|(_, keys)| keys.iter().copied())
            .collect();
        let table = &mut self.best[project as usize];
        table.freeze();
        table.retain(|key| contested.contains(&key));
        self.compact.insert(project);
    }

    /// Makes a compact project whole again: its files are read again up to where they were
    /// read (so no claim made since is replayed, and nobody is displaced), their claims kept.
    fn expand(&mut self, project: u32) {
        self.compact.remove(&project);
        let displaced = std::mem::take(&mut self.displaced);
        let files: Vec<FileId> = (0..self.paths.len() as FileId)
            .filter(|f| self.project_of[*f as usize] == project && self.read_until[*f as usize] > 0)
            .collect();
        for file in files {
            let until = self.read_until[file as usize];
            let Ok(reader) = std::fs::File::open(&self.paths[file as usize]) else {
                continue;
            };
            complete_lines(reader.take(until), |line, offset| {
                if let Some((uuid, at, session)) = claim_of(line) {
                    self.claim(file, &uuid, at, session.as_deref(), offset);
                }
            });
        }
        self.best[project as usize].freeze();
        self.displaced = displaced;
    }
}

/// Calls `f` with each complete line of `reader` and its offset (a last line without its `\n`
/// is left to its parser), read by blocks of [`READ_BLOCK`] bytes: what is held is one block and
/// the line that straddles it. Returns the offset after the last complete line; a read error
/// ends the lines there (the file's parser meets the error too).
fn complete_lines(mut reader: impl Read, mut f: impl FnMut(&[u8], u64)) -> u64 {
    let mut cursor = LineCursor::default();
    let mut pending: Vec<u8> = Vec::with_capacity(READ_BLOCK);
    let mut offset = 0u64;
    loop {
        let start = pending.len();
        // Appends up to a block without zeroing it first (`read_to_end` retries `Interrupted`).
        let Ok(n) = (&mut reader)
            .take(READ_BLOCK as u64)
            .read_to_end(&mut pending)
        else {
            return offset;
        };
        if n == 0 {
            return offset;
        }
        if let Some(last) = memchr::memrchr(b'\n', &pending[start..]).map(|p| start + p) {
            cursor.feed(&pending[..=last], offset, |line| f(line.bytes, line.offset));
            offset += (last + 1) as u64;
            pending.drain(..=last);
        }
    }
}

/// The claim a line makes: its uuid, timestamp (epoch ms) and session id (borrowed from the
/// line unless escaped).
type LineClaim<'a> = (Cow<'a, str>, Option<i64>, Option<Cow<'a, str>>);

fn claim_of(line: &[u8]) -> Option<LineClaim<'_>> {
    let f: ClaimFields<'_> = serde_json::from_slice(line).ok()?;
    let uuid = f.uuid.filter(|u| !u.trim().is_empty())?;
    Some((
        uuid,
        f.timestamp.as_deref().and_then(parse_rfc3339_ms),
        f.session_id,
    ))
}

impl CopyIndex {
    /// The id of the file at `path`; the first call for a file of a project reads the claims of
    /// all the project's files on disk.
    pub fn file(&self, path: &Path) -> FileId {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let id = inner.id(path);
        let project = inner.project_of[id as usize];
        if inner.read.insert(project) {
            let dir = inner.projects[project as usize].clone();
            inner.read_project(&dir);
        }
        id
    }

    /// Records `file`'s claim on `uuid` (its first line with it counts), made by its line at
    /// byte `offset`, and says whether `file` owns the uuid now. A claim that takes the uuid
    /// from another file displaces that file.
    pub fn claim(
        &self,
        file: FileId,
        uuid: &str,
        at: Option<i64>,
        session: Option<&str>,
        offset: u64,
    ) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.claim(file, uuid, at, session, offset)
    }

    /// Hex SHA-256 of the (sorted) keys of the uuids `file` holds and does not own; `None` when
    /// it owns all of them.
    pub fn digest(&self, file: FileId) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<u64> = inner.lost.get(&file)?.iter().copied().collect();
        if keys.is_empty() {
            return None;
        }
        keys.sort_unstable();
        let mut h = Sha256::new();
        for k in keys {
            h.update(k.to_be_bytes());
        }
        Some(format!("{:x}", h.finalize())[..32].to_owned())
    }

    /// The files that lost a uuid to another file's claim since the last call.
    pub fn take_displaced(&self) -> Vec<PathBuf> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let ids = std::mem::take(&mut inner.displaced);
        ids.into_iter()
            .map(|id| inner.paths[id as usize].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
