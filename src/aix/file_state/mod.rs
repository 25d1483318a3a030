//! The read side of one session file: its parser and cursor, and the one operation shared by
//! backfill, tail and scan: bring the parser up to the end of the file and return the items the
//! new bytes produced, with the cursor that becomes true once those items are committed.
//!
//! Lines reach the parser complete: a partial last line waits for its newline. Bytes are read
//! in blocks, so memory follows the longest line plus one block, never the file.
//!
//! A file's own session (`SessionParser::sole_session`, a Claude Code main file's) that an
//! earlier read sent and a whole read of the final file no longer yields, because every line
//! that made it is now a copy another file owns, is retracted: the update carries a `retract`
//! item for it (item rule 15), and the cursor records that the ledger no longer holds it
//! (`FileCursor::sent_own`). Nothing else retracts: a partial read, a file that shrank or lost
//! its lines, and an unreadable file never do.
//!
//! Whole-file documents (`sources::gemini::is_document`: Gemini CLI legacy `.json` sessions,
//! rewritten in place, whose last line may have no newline; and compressed Codex rollouts,
//! `compressed`) are read differently: any stat change reads all bytes (inflated, for a
//! compressed rollout), unterminated last line included, into a fresh parser in one push; the
//! cursor's offset is the file's size; an unchanged stat skips the file. Memory then follows
//! the document, which the parser must hold whole anyway.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use self::retract::{own_session, retract_renamed};
use super::cursor::{self, CURSOR_VERSION, CursorCheck, FileCursor, FileIdentity, cursor_key};
use super::mapping;
use super::sources::{SessionParser, SourceFile, gemini};
use crate::protocol::{ImportSessionItem, SessionInfo};

pub(crate) mod compressed;
mod retract;

/// Builds the parser of a file (the real one is `sources::parser_for`; tests inject fakes).
pub type ParserFactory = Arc<dyn Fn(&SourceFile) -> Box<dyn SessionParser> + Send + Sync>;

/// Bytes read per block.
const READ_BLOCK: usize = 1 << 20;

/// How an update read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// Whole file, fresh parser (no usable cursor, `--full`, or a rewrite).
    Whole,
    /// Resumed from a cursor without in-memory state: state rebuilt from `[0, open turn)`,
    /// items from the open turn on.
    Resumed,
    /// New bytes appended to a file whose parser is in memory.
    Appended,
    /// No new bytes: the file's header and open turn re-sent (lineage learnt later).
    Resent,
}

/// The outcome of reading new bytes of a file.
pub struct FileUpdate {
    pub items: Vec<ImportSessionItem>,
    /// True once `items` are committed.
    pub cursor: FileCursor,
    /// Offset where the emitting lines began: with the fingerprint, it determines the items'
    /// content (part of the idempotency key).
    pub part: u64,
    pub kind: ReadKind,
    /// Lines of the emitting read that reached the parser repaired (invalid UTF-8 replaced,
    /// control characters escaped: `sources::common`); they are imported, and counted here.
    pub lossy_lines: u64,
}

/// One file's parse state: kept across updates by the tail, fresh per file in backfill.
pub struct FileState {
    pub source: SourceFile,
    /// The cursor as last emitted (or as handed back by `run.start`).
    pub cursor: Option<FileCursor>,
    parser: Option<Box<dyn SessionParser>>,
    /// Per session of the file: what the turn rows already sent were derived from.
    derived: HashMap<String, Derived>,
    /// Whether items of the file's own session went out (with the cursor, or read from it):
    /// a whole read that no longer yields the session retracts it.
    sent_own: bool,
    /// The file was imported under another mapping version (its cursor was dropped): its
    /// first whole read retracts the sessions that version named otherwise.
    upgraded: bool,
}

/// The session header fields the import service copies into turn rows (IMPORT_SEMANTICS.md item
/// rules 5-6: a turn without its own model or provider takes the session's, every turn the
/// session's workspace, a turn without a start time the session's creation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct TurnInputs {
    model: Option<String>,
    provider: Option<String>,
    workspace: Option<String>,
    created: Option<i64>,
}

impl TurnInputs {
    fn of(s: &SessionInfo) -> Self {
        Self {
            model: s.model.clone(),
            provider: s.provider.clone(),
            workspace: s.workspace_path.clone(),
            created: s.created_at_ms,
        }
    }
}

/// What the turn rows of one session were derived from, as sent.
#[derive(Debug, Default)]
struct Derived {
    inputs: TurnInputs,
    /// Turns sent without their own model or provider: their rows follow the header's.
    borrowing: HashSet<String>,
    /// Every turn sent (their rows take the workspace and the creation time from the header).
    sent: HashSet<String>,
    /// Rebuilt from a cursor: which turns borrow is not known.
    unknown: bool,
}

impl FileState {
    pub fn new(source: SourceFile, cursor: Option<FileCursor>) -> Self {
        Self {
            source,
            sent_own: cursor.as_ref().is_some_and(|c| c.sent_own.unwrap_or(true)),
            upgraded: false,
            cursor,
            parser: None,
            derived: HashMap::new(),
        }
    }

    /// Marks the file as imported under another mapping version (`mapping::StartCursors`):
    /// the first whole read that yields a session the old version named otherwise
    /// (`SessionParser::renamed_sessions`) retracts the old name (item rule 15).
    pub fn mark_upgraded(&mut self) {
        self.upgraded = true;
    }

    /// Treats the file's own session as sent although no cursor says so: for a file read
    /// again whole within the run that read it first (backfill keeps no state). A retract of a
    /// session the ledger does not hold is a `skipped` no-op.
    pub fn assume_sent_own(&mut self) {
        self.sent_own = true;
    }

    pub fn key(&self) -> String {
        cursor_key(self.source.provider, &self.source.path)
    }

    /// The parser, when state is in memory.
    pub fn parser(&self) -> Option<&dyn SessionParser> {
        self.parser.as_deref()
    }

    /// Drops the in-memory parse state (kept: the cursor); the next update rebuilds it.
    pub fn evict(&mut self) {
        self.parser = None;
        self.derived.clear();
    }

    /// Whether the file is a whole-file document (read whole on any change), not a line log: a
    /// Gemini CLI legacy `.json`, or a compressed Codex rollout.
    pub fn is_document(&self) -> bool {
        gemini::is_document(&self.source) || compressed::is_compressed(&self.source)
    }

    /// Whether the file needs reading, judged by stat (and, when the stat differs from the
    /// cursor, reads of the first line and of the bytes before the cursor's offset).
    pub fn needs_read(&self, full: bool) -> io::Result<bool> {
        if full {
            return Ok(true);
        }
        // Same device, inode, size and mtime as the cursor: unchanged on stat alone (a rewrite
        // to the same size within the same millisecond is not a case worth an open and reads).
        let stat = FileIdentity::stat(&self.source.path)?;
        if self.cursor.as_ref().is_some_and(|c| c.identity() == stat) {
            return Ok(false);
        }
        if self.is_document() {
            return Ok(true);
        }
        let mut file = File::open(&self.source.path)?;
        let now = FileIdentity::of(&file.metadata()?);
        Ok(cursor::check(self.cursor.as_ref(), &now, &mut file) != CursorCheck::Unchanged)
    }

    /// [`FileState::needs_read`], or the lines of the file that other files own are not those its
    /// cursor was taken with (`aix::claude_copies`: the file is then read whole).
    pub fn needs_read_with(&self, full: bool, factory: &ParserFactory) -> io::Result<bool> {
        Ok(self.needs_read(full)? || self.copies_moved(factory))
    }

    /// Whether the digest of the file's lines owned by other files (Claude Code), or the parent
    /// of a `/review` rollout (Codex), differs from its cursor's (false without a cursor and for
    /// the other providers). Makes a parser when none is in
    /// memory (which reads the claims of the file's project once per run).
    pub fn copies_moved(&self, factory: &ParserFactory) -> bool {
        let Some(c) = &self.cursor else {
            return false;
        };
        use super::sources::Provider;
        if !matches!(self.source.provider, Provider::ClaudeCode | Provider::Codex) {
            return false;
        }
        let now = match &self.parser {
            Some(p) => p.copies_digest(),
            None => factory(&self.source).copies_digest(),
        };
        now != c.copies
    }

    /// The files (this one included) that lost lines to another file's claims, or whose
    /// `/review` parent became known, since the last call, whichever parser made the claim:
    /// read them again (whole: their cursor's digest no longer holds). Makes a parser when none
    /// is in memory (the indexes are the run's, reached through a parser).
    pub fn take_displaced(&mut self, factory: &ParserFactory) -> Vec<std::path::PathBuf> {
        match self.parser.as_mut() {
            Some(p) => p.take_displaced(),
            None => factory(&self.source).take_displaced(),
        }
    }

    /// Reads what is new in the file and returns its items and the new cursor; `Ok(None)` when
    /// nothing changed since the cursor (no parse at all). `full` reads the file whole with a
    /// fresh parser whatever the cursor says.
    ///
    /// Errors: the file could not be opened or read (the caller logs the path and moves on; the
    /// in-memory state is dropped so the next attempt starts clean).
    ///
    /// A parser that panics is contained here: the file counts as unreadable (error kind
    /// `Other`) and its state is dropped; the run goes on.
    pub fn update(
        &mut self,
        factory: &ParserFactory,
        full: bool,
    ) -> io::Result<Option<FileUpdate>> {
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.update_inner(factory, full)))
                .unwrap_or_else(|_| Err(io::Error::other("parser panicked")));
        if result.is_err() {
            self.parser = None;
        }
        result
    }

    /// Re-sends the file's own item (header and open turn) as of its cursor, with no new bytes:
    /// for a child whose spawn link became known after its items went out. Rebuilds the parse
    /// state from `[0, offset)` when none is in memory. `Ok(None)` when there is no cursor, the
    /// file changed since it (a normal update will follow), or no item is due.
    ///
    /// Errors: the file could not be read.
    pub fn resend_header(&mut self, factory: &ParserFactory) -> io::Result<Option<FileUpdate>> {
        let Some(c) = self.cursor.clone() else {
            return Ok(None);
        };
        if self.parser.is_none() && self.is_document() {
            let (now, bytes) = read_document(&self.source)?;
            if now != c.identity() {
                return Ok(None);
            }
            let mut parser = factory(&self.source);
            parser.push_lines(&bytes, 0, false);
            self.parser = Some(parser);
        }
        if self.parser.is_none() {
            let mut file = File::open(&self.source.path)?;
            let now = FileIdentity::of(&file.metadata()?);
            if cursor::check(Some(&c), &now, &mut file) == CursorCheck::Rewrite {
                return Ok(None);
            }
            let mut parser = factory(&self.source);
            let end = feed(&mut file, parser.as_mut(), 0, Some(c.offset), false)?;
            if end.consumed != c.offset {
                return Ok(None);
            }
            self.parser = Some(parser);
        }
        let Some(parser) = self.parser.as_mut() else {
            return Ok(None);
        };
        parser.resend_header();
        let items = parser.take_items();
        if items.is_empty() {
            return Ok(None);
        }
        Ok(Some(FileUpdate {
            items,
            part: c.offset,
            cursor: c,
            kind: ReadKind::Resent,
            lossy_lines: 0,
        }))
    }

    fn update_inner(
        &mut self,
        factory: &ParserFactory,
        full: bool,
    ) -> io::Result<Option<FileUpdate>> {
        if self.is_document() {
            return self.update_document(factory, full);
        }
        let mut file = File::open(&self.source.path)?;
        let now = FileIdentity::of(&file.metadata()?);
        let full = full || self.copies_moved(factory);
        let check = if full {
            CursorCheck::Rewrite
        } else {
            cursor::check(self.cursor.as_ref(), &now, &mut file)
        };
        let (kind, from) = match (check, self.cursor.as_ref(), self.parser.is_some()) {
            (CursorCheck::Unchanged, ..) => return Ok(None),
            (CursorCheck::Continue, Some(c), true) => (ReadKind::Appended, c.offset),
            (CursorCheck::Continue, Some(c), false) => (ReadKind::Resumed, c.open_turn_offset),
            _ => (ReadKind::Whole, 0),
        };
        if kind != ReadKind::Appended {
            self.parser = Some(factory(&self.source));
        }
        // Set just above; a `None` here would be a logic error, so rebuild rather than panic.
        let parser = self.parser.get_or_insert_with(|| factory(&self.source));
        if kind == ReadKind::Resumed && from > 0 {
            let end = feed(&mut file, parser.as_mut(), 0, Some(from), false)?;
            if end.consumed != from {
                // The open turn no longer starts at a line boundary: the file changed under us.
                self.parser = None;
                self.cursor = None;
                return self.update_inner(factory, true);
            }
            // The header as of the open turn: what the rows sent before were derived from
            // (which of them borrow from it is not known).
            parser.resend_header();
            self.derived.clear();
            for item in parser.take_items() {
                self.derived.insert(
                    item.source_session_id.clone(),
                    Derived {
                        inputs: TurnInputs::of(&item.session),
                        borrowing: HashSet::new(),
                        sent: HashSet::new(),
                        unknown: true,
                    },
                );
            }
        }
        let lossy_before = parser.stats().lossy_lines;
        let end = feed(&mut file, parser.as_mut(), from, None, true)?;
        let lossy_lines = parser.stats().lossy_lines.saturating_sub(lossy_before);
        let mut items = parser.take_items();
        if stale_turns(&mut self.derived, &items, kind == ReadKind::Whole) {
            self.parser = None;
            self.cursor = None;
            return self.update_inner(factory, true);
        }
        let sent_own = own_session(
            parser.as_ref(),
            self.source.provider.as_str(),
            &mut self.sent_own,
            kind == ReadKind::Whole,
            &mut items,
        );
        if kind == ReadKind::Whole && std::mem::take(&mut self.upgraded) {
            retract_renamed(parser.as_ref(), self.source.provider.as_str(), &mut items);
        }
        let (head_len, head) = match (&self.cursor, kind) {
            (Some(c), ReadKind::Appended | ReadKind::Resumed) if c.head_len > 0 => {
                (c.head_len, c.head.clone())
            }
            _ => cursor::read_head(&mut file, end.consumed)?,
        };
        let cursor = FileCursor {
            v: CURSOR_VERSION,
            dev: now.dev,
            ino: now.ino,
            size: end.seen.max(now.size),
            mtime_ms: now.mtime_ms,
            head_len,
            head,
            offset: end.consumed,
            edge: cursor::read_edge(&mut file, end.consumed)?,
            open_turn_offset: parser.open_turn_offset().min(end.consumed),
            fingerprint: parser.fingerprint(),
            // Stamped by the run when the cursor is emitted (`aix::mapping`).
            mapping: self
                .cursor
                .as_ref()
                .map_or(mapping::BEFORE_VERSIONS, |c| c.mapping),
            copies: committed_copies(self.cursor.as_ref(), &items, parser.copies_digest()),
            sent_own,
        };
        self.cursor = Some(cursor.clone());
        Ok(Some(FileUpdate {
            items,
            cursor,
            part: from,
            kind,
            lossy_lines,
        }))
    }

    /// A whole-file document: unchanged stat -> `None`; else every byte into a fresh parser.
    fn update_document(
        &mut self,
        factory: &ParserFactory,
        full: bool,
    ) -> io::Result<Option<FileUpdate>> {
        let stat = FileIdentity::stat(&self.source.path)?;
        // A compressed Codex review rollout whose parent moved is read again, as a plain one is.
        let full = full || self.copies_moved(factory);
        if !full && self.cursor.as_ref().is_some_and(|c| c.identity() == stat) {
            return Ok(None);
        }
        let (now, bytes) = read_document(&self.source)?;
        let mut parser = factory(&self.source);
        parser.push_lines(&bytes, 0, true);
        let items = parser.take_items();
        let (head_len, head) = cursor::head_of(&bytes);
        let cursor = FileCursor {
            v: CURSOR_VERSION,
            dev: now.dev,
            ino: now.ino,
            size: now.size,
            mtime_ms: now.mtime_ms,
            head_len,
            head,
            offset: now.size,
            edge: cursor::edge_of(&bytes),
            open_turn_offset: 0,
            fingerprint: parser.fingerprint(),
            // Stamped by the run when the cursor is emitted (`aix::mapping`).
            mapping: self
                .cursor
                .as_ref()
                .map_or(mapping::BEFORE_VERSIONS, |c| c.mapping),
            copies: parser.copies_digest(),
            sent_own: None,
        };
        let lossy_lines = parser.stats().lossy_lines;
        self.parser = Some(parser);
        self.cursor = Some(cursor.clone());
        Ok(Some(FileUpdate {
            items,
            cursor,
            part: 0,
            kind: ReadKind::Whole,
            lossy_lines,
        }))
    }
}

/// The copies digest a new cursor records (`aix::claude_copies`). A cursor says what the ledger
/// holds once its read is committed, and the digest says which of the file's lines the ledger
/// holds as another file's: only an item can change that (a whole item with `copiesElsewhere`
/// removes the rows of lines the file no longer owns, item rule 13). A read that yields no item
/// (a file whose every complete line is now another file's) commits nothing, so its cursor keeps
/// the digest it had: the rows the file produced while it owned those lines stay marked stale,
/// and the next read of the file is whole again, until one yields the item that removes them.
/// Without this, the moved digest would be stored (on this read's cursor, or on another file's
/// frame) and later reads would resume from it, leaving those rows in the ledger for good.
fn committed_copies(
    before: Option<&FileCursor>,
    items: &[ImportSessionItem],
    now: Option<String>,
) -> Option<String> {
    match before {
        Some(c) if items.is_empty() => c.copies.clone(),
        _ => now,
    }
}

/// Whether partial `items` would leave turn rows sent earlier derived from a header that
/// is no longer the session's (a model learnt or switched after a turn without its own went
/// out, a workspace learnt late): the ledger would then depend on where the file was cut,
/// and the file must be sent whole instead. Records what `items` derive from.
fn stale_turns(
    derived: &mut HashMap<String, Derived>,
    items: &[ImportSessionItem],
    whole: bool,
) -> bool {
    if whole {
        derived.clear();
    }
    let mut stale = false;
    for item in items {
        let inputs = TurnInputs::of(&item.session);
        let d = derived.entry(item.source_session_id.clone()).or_default();
        if !whole && d.inputs != inputs {
            let in_item: HashSet<&str> = item
                .turns
                .iter()
                .map(|t| t.source_turn_id.as_str())
                .collect();
            let outside = |set: &HashSet<String>| set.iter().any(|t| !in_item.contains(t.as_str()));
            let for_all =
                d.inputs.workspace != inputs.workspace || d.inputs.created != inputs.created;
            // Messages and tool calls without a time of their own take the creation time, and
            // a turn's earlier ones are not re-sent with it (partial items carry deltas).
            let rows_sent = d.inputs.created != inputs.created && !d.sent.is_empty();
            stale |=
                d.unknown || rows_sent || outside(&d.borrowing) || (for_all && outside(&d.sent));
        }
        d.inputs = inputs;
        for t in &item.turns {
            d.sent.insert(t.source_turn_id.clone());
            if t.model.is_none() || t.provider.is_none() {
                d.borrowing.insert(t.source_turn_id.clone());
            } else {
                d.borrowing.remove(&t.source_turn_id);
            }
        }
    }
    stale
}

/// All bytes of a document with the identity they were read under: the stat taken before the
/// read, with the size of what was read (a write racing the read leaves a newer mtime on disk,
/// so the next stat differs and the file is read again). A compressed rollout's bytes are its
/// inflated lines; its identity is the file's.
fn read_document(source: &SourceFile) -> io::Result<(FileIdentity, Vec<u8>)> {
    let mut file = File::open(&source.path)?;
    let mut now = FileIdentity::of(&file.metadata()?);
    let mut bytes = Vec::with_capacity(usize::try_from(now.size).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    now.size = bytes.len() as u64;
    Ok((now, compressed::rollout_lines(&source.path, bytes)?))
}

struct FeedEnd {
    /// Offset after the last complete line pushed.
    consumed: u64,
    /// Offset of the end of what was read (a partial last line included).
    seen: u64,
}

/// Pushes the complete lines of `[from, to)` (to EOF when `to` is `None`) into the parser.
fn feed(
    file: &mut File,
    parser: &mut dyn SessionParser,
    from: u64,
    to: Option<u64>,
    emit: bool,
) -> io::Result<FeedEnd> {
    file.seek(SeekFrom::Start(from))?;
    let mut reader: Box<dyn Read> = match to {
        Some(to) => Box::new((&mut *file).take(to.saturating_sub(from))),
        None => Box::new(&mut *file),
    };
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BLOCK);
    // `buf` holds the bytes from `base` on; everything before `base` was pushed.
    let mut base = from;
    let mut seen = from;
    let mut scanned = 0usize;
    loop {
        // Appends up to a block without zeroing it first (1 MiB per read, twice per file, was
        // 3 % of aix's samples).
        let n = (&mut reader)
            .take(READ_BLOCK as u64)
            .read_to_end(&mut buf)?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        if let Some(last_nl) = buf[scanned..].iter().rposition(|&b| b == b'\n') {
            let cut = scanned + last_nl + 1;
            parser.push_lines(&buf[..cut], base, emit);
            base += cut as u64;
            buf.drain(..cut);
            scanned = 0;
        } else {
            // A line longer than what we have so far: keep reading, without rescanning.
            scanned = buf.len();
        }
    }
    Ok(FeedEnd {
        consumed: base,
        seen,
    })
}
