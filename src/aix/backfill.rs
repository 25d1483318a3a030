//! Backfill: discover every session file, skip those whose cursor says nothing changed, parse
//! the rest on a small thread pool and emit them in discovery order (SOURCES.md "Backfill");
//! then poll every store (Cursor, OpenCode) once, emitting its changed sessions.
//!
//! Memory: at most `threads + 1` files are parsed or waiting to be written at once, and no more
//! than `inflight_bytes` of file unless a single file is larger (the writer takes results in
//! order), so memory follows the largest session, never the corpus.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::config::WorkerOptions;
use super::cursor::FileCursor;
use super::discover::discover;
use super::emit::Emitter;
use super::file_state::{FileState, FileUpdate, ParserFactory, ReadKind};
use super::lineage::{Lineage, Unlinked, seal_lineage};
use super::mapping::{self, MappingVersions, StartCursors};
use super::status::{StopSignal, WorkerStatus};
use super::stores::{OutputFailed, StoreRun, open_stores};
use crate::protocol::{FileError, MAX_FILE_ERRORS, RunProgress, StoreFigures};

/// Least time between two `run.progress` frames.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Counters of a run, reported in `run.progress` / `run.complete`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounters {
    /// Files the run reads (backfill: after the cursor check).
    pub total: u64,
    /// Files read and emitted so far.
    pub emitted_files: u64,
    /// Files skipped because their cursor says nothing changed.
    pub skipped_files: u64,
    /// Files that could not be read.
    pub failed_files: u64,
    /// The first `MAX_FILE_ERRORS` of them, with their OS reason (`run.progress.fileErrors`).
    pub file_errors: Vec<FileError>,
    /// Lines imported after repair (invalid UTF-8, raw control characters).
    pub lossy_lines: u64,
    /// Polled stores and their sessions (which `total`, `emitted_files` and `skipped_files`
    /// count one each, like files).
    pub stores: StoreFigures,
    /// Files failing now: a tail that retries one counts it once until it reads again.
    failing: BTreeSet<PathBuf>,
}

impl RunCounters {
    pub fn progress(&self, with_total: bool) -> RunProgress {
        RunProgress {
            imported: 0,
            upserted: 0,
            skipped: self.skipped_files,
            failed: self.failed_files,
            total: with_total.then_some(self.total),
            emitted: Some(self.emitted_files),
            unchanged_files: Some(self.skipped_files),
            lossy_lines: Some(self.lossy_lines),
            failed_files: Some(self.failed_files),
            file_errors: self.file_errors.clone(),
            stores: (!self.stores.is_empty()).then_some(self.stores),
        }
    }

    /// A file that failed before was read: a later failure counts again.
    pub fn file_read(&mut self, path: &Path) {
        if !self.failing.is_empty() {
            self.failing.remove(path);
        }
    }

    /// Counts a file (or store) that could not be read, and names it with its OS reason: the
    /// run goes on, and the file, left without a cursor, is read again by the next run.
    pub fn file_failed(&mut self, path: &Path, e: &std::io::Error) {
        if !self.failing.insert(path.to_path_buf()) {
            tracing::debug!(path = %path.display(), error = %e, "file still not readable");
            return;
        }
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            "file_vanished"
        } else {
            "file_unreadable"
        };
        tracing::warn!(path = %path.display(), error_code = code, error = %e, "file not readable");
        self.failed_files += 1;
        if self.file_errors.len() < MAX_FILE_ERRORS {
            self.file_errors.push(FileError {
                path: path.display().to_string(),
                code: code.to_owned(),
                message: e.to_string(),
            });
        }
    }
}

/// Emits one file's update: lineage filled in, the items queued with their cursor. Returns the
/// children emitted earlier without the spawn link this update revealed: re-send their headers
/// ([`FileState::resend_header`]) and emit those too.
pub fn emit_update(
    state: &FileState,
    update: FileUpdate,
    lineage: &mut Lineage,
    mappings: &MappingVersions,
    factory: &ParserFactory,
    emitter: &mut Emitter<'_>,
) -> std::io::Result<Vec<Unlinked>> {
    let ready = with_lineage(state, update, lineage, mappings, factory);
    ready.push(emitter)
}

/// An update with its lineage filled in, ready to be queued; no longer needs the file's state.
struct ReadyUpdate {
    items: Vec<crate::protocol::ImportSessionItem>,
    part: String,
    cursor: crate::protocol::Cursor,
    resend: Vec<Unlinked>,
}

impl ReadyUpdate {
    fn push(self, emitter: &mut Emitter<'_>) -> std::io::Result<Vec<Unlinked>> {
        emitter.push_file(self.items, &self.part, Some(self.cursor))?;
        Ok(self.resend)
    }
}

/// The update's items with lineage filled in and stamped with the provider's mapping version
/// (whole when read from byte 0), and its cursor with that version.
fn with_lineage(
    state: &FileState,
    update: FileUpdate,
    lineage: &mut Lineage,
    mappings: &MappingVersions,
    factory: &ParserFactory,
) -> ReadyUpdate {
    let FileUpdate {
        mut items,
        mut cursor,
        part,
        kind,
        lossy_lines: _,
    } = update;
    let mut resend = match state.parser() {
        Some(parser) => lineage.record(&state.source, &items, parser),
        None => Vec::new(),
    };
    resend.extend(lineage.learn_parents(&state.source, &items, factory));
    let tag = lineage.fill(&state.source, &mut items, &cursor);
    seal_lineage(&mut items);
    let provider = state.source.provider;
    let version = mappings.of(provider);
    // Items read from byte 0 hold the whole file, whatever the read's kind; the flag is part of
    // the payload, so the same bytes must always say the same (one idempotency key, one body).
    let whole = kind == ReadKind::Whole || part == 0;
    mapping::stamp_items(&mut items, provider, version, whole);
    cursor.mapping = version;
    let mut part = part.to_string();
    if kind == ReadKind::Resent {
        part.push('h');
    }
    if !tag.is_empty() {
        part = format!("{part}+{tag}");
    }
    ReadyUpdate {
        items,
        part,
        cursor: cursor.to_cursor(state.key()),
        resend,
    }
}

/// Re-sends the headers of children whose spawn link became known or changed, and of their own
/// children in turn, from fresh states rebuilt from their cursors (backfill keeps no state).
/// Children this run has still to read are left to that read (`to_read`).
fn resend_children(
    mut pending: Vec<Unlinked>,
    to_read: &HashSet<PathBuf>,
    factory: &ParserFactory,
    lineage: &mut Lineage,
    mappings: &MappingVersions,
    emitter: &mut Emitter<'_>,
) -> std::io::Result<()> {
    while let Some((source, cursor)) = pending.pop() {
        if to_read.contains(&source.path) {
            continue;
        }
        let mut child = FileState::new(source, Some(cursor));
        match child.resend_header(factory) {
            Ok(Some(update)) => pending.extend(emit_update(
                &child, update, lineage, mappings, factory, emitter,
            )?),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %child.source.path.display(), error_kind = ?e.kind(), "child header not re-sent")
            }
        }
    }
    Ok(())
}

type Job = (FileState, mpsc::SyncSender<JobResult>);

/// The Claude Code project (`aix::claude_copies`) of a file, by its absolute path (the form
/// cursor keys hold).
fn claude_project(path: &Path) -> Option<PathBuf> {
    super::claude_copies::project_dir(&std::path::absolute(path).unwrap_or_else(|_| path.into()))
}

/// The Claude Code projects none of whose files changed since their cursors: every file found
/// has a cursor with the same stat, and every file a cursor names is still there. Their claims
/// are those the cursors were taken with, so no file's copies moved and the project is not read
/// for its claims (`aix::claude_copies`): a re-backfill that imports nothing reads no Claude
/// Code file (P4). A cursor whose digest is not current (a file whose lines all went to another
/// file, `file_state::committed_copies`) is left alone too: reading it again yields no item.
fn quiet_claude_projects(
    found: &[super::discover::Discovered],
    cursors: &HashMap<String, FileCursor>,
    full: bool,
) -> HashSet<PathBuf> {
    use super::cursor::{FileIdentity, cursor_key};
    use super::sources::Provider;
    if full {
        return HashSet::new();
    }
    let mut quiet: HashMap<PathBuf, bool> = HashMap::new();
    let mut present: HashSet<String> = HashSet::new();
    for d in found
        .iter()
        .filter(|d| d.source.provider == Provider::ClaudeCode)
    {
        let Some(project) = claude_project(&d.source.path) else {
            continue;
        };
        let key = cursor_key(Provider::ClaudeCode, &d.source.path);
        let same = cursors.get(&key).is_some_and(|c| {
            FileIdentity::stat(&d.source.path).is_ok_and(|now| c.identity() == now)
        });
        *quiet.entry(project).or_insert(true) &= same;
        present.insert(key);
    }
    let prefix = format!("{}:", Provider::ClaudeCode.as_str());
    for key in cursors.keys().filter(|k| !present.contains(*k)) {
        if let Some(path) = key.strip_prefix(&prefix)
            && let Some(project) = super::claude_copies::project_dir(Path::new(path))
            && let Some(q) = quiet.get_mut(&project)
        {
            // A file of the project is gone: its claims went with it.
            *q = false;
        }
    }
    quiet
        .into_iter()
        .filter(|(_, q)| *q)
        .map(|(p, _)| p)
        .collect()
}
type JobResult = (FileState, std::io::Result<Option<FileUpdate>>);

/// Runs a backfill to the end (or until `stop`), emitting `run.progress` along the way.
/// Returns the counters for `run.complete`; the pending batch is flushed. Store sessions count
/// like files: `total` grows by the changed sessions each store poll finds.
///
/// Errors: the frame output failed. Unreadable files and stores are counted in `failed` and
/// skipped.
pub fn run_backfill(
    options: &WorkerOptions,
    start: &StartCursors,
    factory: &ParserFactory,
    emitter: &mut Emitter<'_>,
    stop: &StopSignal,
    status: &WorkerStatus,
) -> std::io::Result<RunCounters> {
    let (cursors, upgraded) = (&start.files, &start.upgraded_files);
    let started = Instant::now();
    let mut counters = RunCounters::default();
    let found = discover(options);
    let quiet = quiet_claude_projects(&found, cursors, options.full);
    status
        .watched_files
        .store(found.len() as u64, Ordering::Relaxed);
    // Each job with its file size, for the in-flight byte budget.
    let mut jobs: VecDeque<(FileState, u64)> = VecDeque::new();
    let mut lineage = Lineage::default();
    // Claude Code and Codex files by path: one that loses lines to a file read after it, or a
    // review whose parent is read after it, is read again.
    let mut claude_files: HashMap<PathBuf, super::sources::SourceFile> = HashMap::new();
    for d in found {
        if matches!(
            d.source.provider,
            super::sources::Provider::ClaudeCode | super::sources::Provider::Codex
        ) {
            claude_files.insert(d.source.path.clone(), d.source.clone());
        }
        let key = super::cursor::cursor_key(d.source.provider, &d.source.path);
        let cursor = if options.full {
            None
        } else {
            cursors.get(&key)
        };
        lineage.know(&d.source, cursor);
        // A file of a quiet project matched its cursor's stat a moment ago: nothing to read.
        let in_quiet_project = d.source.provider == super::sources::Provider::ClaudeCode
            && claude_project(&d.source.path).is_some_and(|p| quiet.contains(&p));
        let mut state = FileState::new(d.source, cursors.get(&key).cloned());
        if upgraded.contains(&key) {
            state.mark_upgraded();
        }
        let needs_read = if in_quiet_project {
            Ok(false)
        } else {
            state.needs_read_with(options.full, factory)
        };
        match needs_read {
            Ok(true) => {
                let size = std::fs::metadata(&state.source.path).map_or(0, |m| m.len());
                jobs.push_back((state, size));
            }
            Ok(false) => counters.skipped_files += 1,
            Err(e) => counters.file_failed(&state.source.path, &e),
        }
    }
    counters.total = jobs.len() as u64;
    status
        .pending_files
        .store(counters.total, Ordering::Relaxed);
    emitter.sink().progress(&counters.progress(true))?;
    tracing::info!(
        files = counters.total,
        skipped = counters.skipped_files,
        "backfill discovered"
    );

    // Files this run has still to read (a child among them gets its link when it is read).
    let mut to_read: HashSet<PathBuf> = jobs.iter().map(|(s, _)| s.source.path.clone()).collect();
    // Files that lost lines to a claim made during this run (a file written since the
    // project's claims were read): read again whole at the end.
    let mut displaced: BTreeSet<PathBuf> = BTreeSet::new();
    let threads = pool_size(options.parse_threads);
    let window = threads + 1;
    let full = options.full;
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(window);
    let job_rx = std::sync::Mutex::new(job_rx);
    let result = std::thread::scope(|scope| -> std::io::Result<()> {
        let job_tx = job_tx;
        for _ in 0..threads {
            let job_rx = &job_rx;
            scope.spawn(move || {
                loop {
                    // Hold the lock only to take one job.
                    let job = job_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((mut state, reply)) = job else { break };
                    let update = state.update(factory, full);
                    if reply.send((state, update)).is_err() {
                        break;
                    }
                }
            });
        }
        let mut in_flight: VecDeque<(mpsc::Receiver<JobResult>, u64, PathBuf)> = VecDeque::new();
        let mut in_flight_bytes = 0u64;
        let mut last_progress = Instant::now();
        loop {
            while in_flight.len() < window && !stop.is_stopped() {
                let Some(&(_, size)) = jobs.front() else {
                    break;
                };
                // One file always goes, however large: memory follows the largest session.
                if !in_flight.is_empty() && in_flight_bytes + size > options.inflight_bytes {
                    break;
                }
                let Some((state, size)) = jobs.pop_front() else {
                    break;
                };
                let (tx, rx) = mpsc::sync_channel(1);
                let path = state.source.path.clone();
                if job_tx.send((state, tx)).is_err() {
                    break;
                }
                in_flight_bytes += size;
                in_flight.push_back((rx, size, path));
            }
            let Some((rx, size, path)) = in_flight.pop_front() else {
                break;
            };
            in_flight_bytes -= size;
            // A worker thread that panicked drops its reply sender: count the file as failed.
            let Ok((mut state, update)) = rx.recv() else {
                counters.file_failed(&path, &std::io::Error::other("parser panicked"));
                continue;
            };
            to_read.remove(&state.source.path);
            match update {
                Ok(Some(update)) => {
                    counters.lossy_lines += update.lossy_lines;
                    // Backfill keeps no state: the parser goes before the items are encoded.
                    let ready =
                        with_lineage(&state, update, &mut lineage, &options.mappings, factory);
                    displaced.extend(state.take_displaced(factory));
                    drop(state);
                    let resend = ready.push(emitter)?;
                    resend_children(
                        resend,
                        &to_read,
                        factory,
                        &mut lineage,
                        &options.mappings,
                        emitter,
                    )?;
                    counters.emitted_files += 1;
                }
                Ok(None) => counters.skipped_files += 1,
                Err(e) => counters.file_failed(&state.source.path, &e),
            }
            status.pending_files.fetch_sub(1, Ordering::Relaxed);
            if last_progress.elapsed() >= PROGRESS_EVERY {
                emitter.sink().progress(&counters.progress(true))?;
                last_progress = Instant::now();
            }
        }
        drop(job_tx);
        Ok(())
    });
    result?;
    reread_displaced(
        displaced,
        &claude_files,
        factory,
        &mut lineage,
        &options.mappings,
        emitter,
        stop,
    )?;
    for store in open_stores(options) {
        if stop.is_stopped() {
            break;
        }
        let mut run = StoreRun::new(store, &start.stores);
        run.poll(
            options.full,
            false,
            &options.mappings,
            emitter,
            &mut counters,
        )
        .map_err(|OutputFailed(e)| e)?;
        emitter.sink().progress(&counters.progress(true))?;
    }
    emitter.flush()?;
    status.pending_files.store(0, Ordering::Relaxed);
    tracing::info!(
        emitted = counters.emitted_files,
        skipped = counters.skipped_files,
        failed = counters.failed_files,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "backfill done"
    );
    Ok(counters)
}

/// Reads again whole the files that lost lines to another file's claim during the run (their
/// whole items remove the rows of the lines they no longer own), until no read displaces one.
fn reread_displaced(
    mut displaced: BTreeSet<PathBuf>,
    files: &HashMap<PathBuf, super::sources::SourceFile>,
    factory: &ParserFactory,
    lineage: &mut Lineage,
    mappings: &MappingVersions,
    emitter: &mut Emitter<'_>,
    stop: &StopSignal,
) -> std::io::Result<()> {
    while let Some(path) = displaced.pop_first() {
        if stop.is_stopped() {
            break;
        }
        let Some(source) = files.get(&path) else {
            continue;
        };
        let mut state = FileState::new(source.clone(), None);
        // Read earlier in this run, its own session possibly sent then.
        state.assume_sent_own();
        match state.update(factory, true) {
            Ok(Some(update)) => {
                let resend = emit_update(&state, update, lineage, mappings, factory, emitter)?;
                displaced.extend(state.take_displaced(factory));
                resend_children(resend, &HashSet::new(), factory, lineage, mappings, emitter)?;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error_kind = ?e.kind(), "displaced file not read again")
            }
        }
    }
    Ok(())
}

fn pool_size(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aix::cursor::{CURSOR_VERSION, FileIdentity, cursor_key};
    use crate::aix::discover::Discovered;
    use crate::aix::sources::{FileRole, Provider, SourceFile};

    fn found(path: &Path) -> Discovered {
        Discovered {
            source: SourceFile {
                provider: Provider::ClaudeCode,
                path: path.to_path_buf(),
                role: FileRole::claude_code_for(path).unwrap(),
                workspace: None,
            },
            mtime_ms: 0,
        }
    }

    /// A cursor of the file as it is now.
    fn cursor_of(path: &Path) -> (String, FileCursor) {
        let id = FileIdentity::stat(path).unwrap();
        let c = FileCursor {
            sent_own: None,
            v: CURSOR_VERSION,
            dev: id.dev,
            ino: id.ino,
            size: id.size,
            mtime_ms: id.mtime_ms,
            head_len: 0,
            head: String::new(),
            offset: 0,
            edge: String::new(),
            open_turn_offset: 0,
            fingerprint: String::new(),
            mapping: 0,
            copies: None,
        };
        (cursor_key(Provider::ClaudeCode, path), c)
    }

    #[test]
    fn a_project_is_quiet_only_when_every_file_matches_its_cursor_and_none_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let projects = std::path::absolute(dir.path()).unwrap().join("projects");
        let file = |p: &str, n: &str| {
            let path = projects.join(p).join(format!("{n}.jsonl"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "{}\n").unwrap();
            path
        };
        let id = |c: char| format!("{}-1111-2222-3333-444444444444", c.to_string().repeat(8));
        let (a, b) = (file("p1", &id('a')), file("p1", &id('b')));
        let (c, d) = (file("p2", &id('c')), file("p3", &id('d')));
        let gone = projects.join("p3").join(format!("{}.jsonl", id('e')));
        let all: Vec<Discovered> = [&a, &b, &c, &d].iter().map(|p| found(p)).collect();
        let mut cursors: HashMap<String, FileCursor> =
            [&a, &b, &c, &d].iter().map(|p| cursor_of(p)).collect();
        // p2's file grew since its cursor; p3 lost a file that had a cursor.
        std::fs::write(&c, "{}\n{}\n").unwrap();
        let (k, mut g) = cursor_of(&d);
        g.ino += 1;
        cursors.insert(k.replace(&id('d'), &id('e')), g);
        assert!(
            cursors
                .keys()
                .any(|k| k.ends_with(&*gone.to_string_lossy()))
        );

        let quiet = quiet_claude_projects(&all, &cursors, false);
        assert_eq!(quiet, HashSet::from([projects.join("p1")]));
        // A file without a cursor makes its project read.
        let mut with_new = all;
        with_new.push(found(&file("p1", &id('f'))));
        assert!(quiet_claude_projects(&with_new, &cursors, false).is_empty());
        assert!(quiet_claude_projects(&with_new[..2], &cursors, true).is_empty());
    }
}
