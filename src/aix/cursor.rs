//! Per-file resume cursors (PROTOCOL.md "Cursors", SOURCES.md "Tail"): what the worker attaches
//! to an import frame so that NEX can hand it back in `run.start` and the worker resumes without
//! state of its own.
//!
//! The value is small and fixed-size whatever the session size: file identity, a checksum of the
//! first line, the consumed offset (always at a line boundary), the offset where the open turn
//! began, and the fingerprint.
//!
//! A whole-file document (Gemini CLI legacy `.json`, see `file_state`) uses the same value with
//! `offset` = the file's size (its last line may be unterminated) and `open_turn_offset` = 0;
//! only its stat is compared: any change reads it whole again.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::sources::Provider;
use crate::protocol::Cursor;

/// Version of the cursor value layout; a cursor of another version is not used (the file is
/// re-imported whole, which idempotency makes safe).
pub const CURSOR_VERSION: u32 = 1;

/// How many bytes of the first line the head checksum covers at most.
pub const HEAD_MAX_BYTES: u64 = 4096;

/// How many bytes before the consumed offset the edge checksum covers.
pub const EDGE_BYTES: u64 = 256;

/// The resume point of one file. Serialised camelCase as the opaque `value` of a [`Cursor`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCursor {
    /// Layout version ([`CURSOR_VERSION`]).
    pub v: u32,
    pub dev: u64,
    pub ino: u64,
    /// File size when the cursor was taken (including a partial last line not yet consumed).
    pub size: u64,
    /// Modification time (epoch ms) seen before the read; a change with an equal size still
    /// makes the file be read again.
    pub mtime_ms: i64,
    /// Bytes of the file covered by `head` (the first line, capped at [`HEAD_MAX_BYTES`]); 0 while
    /// no complete line was consumed.
    pub head_len: u64,
    /// Truncated hex SHA-256 of the first `head_len` bytes: detects a rewritten file.
    pub head: String,
    /// Bytes consumed, always at a line boundary (a whole-file document: its size); everything
    /// before it is in the ledger.
    pub offset: u64,
    /// Truncated hex SHA-256 of the last [`EDGE_BYTES`] bytes before `offset` (fewer in a short
    /// file): detects a file rewritten in place that kept its first line.
    pub edge: String,
    /// Where the open (last) turn began: a restart re-emits from here.
    pub open_turn_offset: u64,
    /// The session fingerprint after `offset` bytes.
    pub fingerprint: String,
    /// The provider's mapping version the items up to `offset` were produced under
    /// (`aix::mapping`); a cursor without it was taken before versions existed. Set when the
    /// cursor is emitted; at run start a cursor of another version is dropped.
    #[serde(default = "before_versions")]
    pub mapping: u32,
    /// Claude Code: the digest of the file's lines that another file owns as the read saw it
    /// (`aix::claude_copies`); a run that finds another one reads the file again whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<String>,
    /// Whether the ledger holds the file's own session (`SessionParser::sole_session`) from
    /// the items committed with this cursor and before it: a later whole read that yields no
    /// such session, its lines now other files' copies, retracts it (item rule 15,
    /// `file_state`). `None` for a cursor taken before the field existed (treated as `true`: a
    /// retract of a session the ledger does not hold is a `skipped` no-op) and for files
    /// without a sole session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_own: Option<bool>,
}

fn before_versions() -> u32 {
    super::mapping::BEFORE_VERSIONS
}

impl FileCursor {
    /// Decodes a stored cursor value. `None` for anything unusable (wrong shape, other version,
    /// inconsistent offsets): the caller then re-imports the file whole.
    pub fn from_value(value: &serde_json::Value) -> Option<Self> {
        let c: FileCursor = serde_json::from_value(value.clone()).ok()?;
        let consistent = c.v == CURSOR_VERSION
            && c.open_turn_offset <= c.offset
            && c.offset <= c.size
            && c.head_len <= c.offset
            && (c.offset == 0 || c.head_len > 0);
        consistent.then_some(c)
    }

    pub fn to_value(&self) -> serde_json::Value {
        // A struct of integers and strings always serialises.
        serde_json::to_value(self).expect("cursor serialises")
    }

    pub fn to_cursor(&self, key: String) -> Cursor {
        Cursor {
            key,
            value: self.to_value(),
        }
    }

    pub fn identity(&self) -> FileIdentity {
        FileIdentity {
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            mtime_ms: self.mtime_ms,
        }
    }
}

/// The usable cursors of `run.start`, by key (unusable values are dropped: those files are read
/// whole).
pub fn cursor_map(cursors: &[Cursor]) -> std::collections::HashMap<String, FileCursor> {
    cursors
        .iter()
        .filter_map(|c| Some((c.key.clone(), FileCursor::from_value(&c.value)?)))
        .collect()
}

/// The cursor key of a file: `<provider>:<absolute path>`.
pub fn cursor_key(provider: Provider, path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("{}:{}", provider.as_str(), abs.display())
}

/// What `stat` says about a file, enough to tell "unchanged", "appended" and "replaced" apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ms: i64,
}

impl FileIdentity {
    pub fn of(meta: &Metadata) -> Self {
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let (dev, ino) = dev_ino(meta);
        Self {
            dev,
            ino,
            size: meta.len(),
            mtime_ms,
        }
    }

    pub fn stat(path: &Path) -> io::Result<Self> {
        Ok(Self::of(&std::fs::metadata(path)?))
    }

    /// Same file object (not necessarily the same content).
    pub fn same_file(&self, other: &FileIdentity) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

#[cfg(unix)]
fn dev_ino(meta: &Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dev_ino(_meta: &Metadata) -> (u64, u64) {
    (0, 0)
}

/// Checksum of the first line of a file whose first `consumed` bytes are complete lines:
/// `(head_len, head)`; `(0, "")` when nothing was consumed.
pub fn read_head(file: &mut File, consumed: u64) -> io::Result<(u64, String)> {
    if consumed == 0 {
        return Ok((0, String::new()));
    }
    let want = consumed.min(HEAD_MAX_BYTES);
    let buf = read_at(file, 0, want)?;
    Ok(head_of(&buf))
}

/// `(head_len, head)` of a file whose first bytes are `bytes` (all of them, or at least
/// [`HEAD_MAX_BYTES`]): the checksum of the first line, capped; `(0, "")` for no bytes.
pub fn head_of(bytes: &[u8]) -> (u64, String) {
    if bytes.is_empty() {
        return (0, String::new());
    }
    let capped = &bytes[..bytes.len().min(HEAD_MAX_BYTES as usize)];
    let len = match capped.iter().position(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => capped.len(),
    };
    (len as u64, head_hash(&capped[..len]))
}

/// The edge checksum of a file whose first `bytes.len()` bytes are `bytes`, taken at its end.
pub fn edge_of(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    head_hash(&bytes[bytes.len().saturating_sub(EDGE_BYTES as usize)..])
}

/// Checksum of the bytes just before `offset` (empty when `offset` is 0).
pub fn read_edge(file: &mut File, offset: u64) -> io::Result<String> {
    if offset == 0 {
        return Ok(String::new());
    }
    let start = offset.saturating_sub(EDGE_BYTES);
    let buf = read_at(file, start, offset - start)?;
    if buf.len() as u64 != offset - start {
        return Ok(String::new());
    }
    Ok(head_hash(&buf))
}

/// Whether the first `head_len` bytes of the file still hash to `head`.
pub fn head_matches(file: &mut File, head_len: u64, head: &str) -> io::Result<bool> {
    if head_len == 0 {
        return Ok(true);
    }
    let buf = read_at(file, 0, head_len)?;
    Ok(buf.len() as u64 == head_len && head_hash(&buf) == head)
}

fn head_hash(bytes: &[u8]) -> String {
    let hex = format!("{:x}", Sha256::digest(bytes));
    hex[..16].to_owned()
}

fn read_at(file: &mut File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// What a file needs, judged from its cursor and a fresh stat (SOURCES.md "Tail").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorCheck {
    /// Same file, same size and mtime, same first line: nothing to read.
    Unchanged,
    /// Same file, grown or touched: continue from the cursor.
    Continue,
    /// No usable cursor, or the file shrank, was rewritten or replaced: read it whole.
    Rewrite,
}

/// Compares a cursor with the file as it is now. Reads at most [`HEAD_MAX_BYTES`].
pub fn check(cursor: Option<&FileCursor>, now: &FileIdentity, file: &mut File) -> CursorCheck {
    let Some(c) = cursor else {
        return CursorCheck::Rewrite;
    };
    if !c.identity().same_file(now) || now.size < c.offset {
        return CursorCheck::Rewrite;
    }
    match head_matches(file, c.head_len, &c.head) {
        Ok(true) => {}
        Ok(false) | Err(_) => return CursorCheck::Rewrite,
    }
    match read_edge(file, c.offset) {
        Ok(edge) if edge == c.edge => {}
        _ => return CursorCheck::Rewrite,
    }
    if now.size == c.size && now.mtime_ms == c.mtime_ms {
        CursorCheck::Unchanged
    } else {
        CursorCheck::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cursor_for(path: &Path, offset: u64) -> FileCursor {
        let id = FileIdentity::stat(path).unwrap();
        let mut f = File::open(path).unwrap();
        let (head_len, head) = read_head(&mut f, offset).unwrap();
        FileCursor {
            sent_own: None,
            v: CURSOR_VERSION,
            dev: id.dev,
            ino: id.ino,
            size: id.size,
            mtime_ms: id.mtime_ms,
            head_len,
            head,
            offset,
            edge: read_edge(&mut f, offset).unwrap(),
            open_turn_offset: 0,
            fingerprint: "fp".into(),
            mapping: 2,
            copies: None,
        }
    }

    fn check_path(c: &FileCursor, path: &Path) -> CursorCheck {
        let id = FileIdentity::stat(path).unwrap();
        check(Some(c), &id, &mut File::open(path).unwrap())
    }

    #[test]
    fn unchanged_appended_shrunk_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        std::fs::write(&p, b"{\"a\":1}\n{\"b\":2}\n").unwrap();
        let c = cursor_for(&p, 16);
        assert_eq!(c.head_len, 8);
        assert_eq!(check_path(&c, &p), CursorCheck::Unchanged);

        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"c\":3}\n").unwrap();
        drop(f);
        assert_eq!(check_path(&c, &p), CursorCheck::Continue);

        // Same length, different first line, written in place (same inode).
        let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all(b"{\"z\":1}\n").unwrap();
        drop(f);
        assert_eq!(check_path(&c, &p), CursorCheck::Rewrite);

        let c = cursor_for(&p, 24);
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(10).unwrap();
        drop(f);
        assert_eq!(check_path(&c, &p), CursorCheck::Rewrite);
        assert_eq!(
            check(
                None,
                &FileIdentity::stat(&p).unwrap(),
                &mut File::open(&p).unwrap()
            ),
            CursorCheck::Rewrite
        );
    }

    #[test]
    fn replaced_file_is_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        std::fs::write(&p, b"{\"a\":1}\n").unwrap();
        let c = cursor_for(&p, 8);
        let q = dir.path().join("t.jsonl");
        std::fs::write(&q, b"{\"a\":1}\n").unwrap();
        std::fs::rename(&q, &p).unwrap();
        assert_eq!(check_path(&c, &p), CursorCheck::Rewrite);
    }

    #[test]
    fn value_round_trips_and_rejects_nonsense() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        std::fs::write(&p, b"{\"a\":1}\n").unwrap();
        let c = cursor_for(&p, 8);
        assert_eq!(FileCursor::from_value(&c.to_value()), Some(c.clone()));
        let mut bad = c.clone();
        bad.offset = bad.size + 1;
        assert_eq!(FileCursor::from_value(&bad.to_value()), None);
        let mut bad = c.clone();
        bad.v = 99;
        assert_eq!(FileCursor::from_value(&bad.to_value()), None);
        // A cursor written before mapping versions decodes as version 1.
        let mut old = c.to_value();
        old.as_object_mut().unwrap().remove("mapping");
        assert_eq!(FileCursor::from_value(&old).unwrap().mapping, 1);
        assert_eq!(FileCursor::from_value(&serde_json::json!({"x": 1})), None);
        assert_eq!(FileCursor::from_value(&serde_json::Value::Null), None);
    }

    #[test]
    fn key_names_provider_and_absolute_path() {
        let k = cursor_key(Provider::Codex, Path::new("/a/b/rollout-1.jsonl"));
        assert_eq!(k, "codex:/a/b/rollout-1.jsonl");
    }
}
