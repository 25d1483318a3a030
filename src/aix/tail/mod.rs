//! Tail: follow the session files as agents write them (SOURCES.md "Tail").
//!
//! OS notifications (`notify`, recursive on the roots) mark files dirty. A file is read at once
//! when it was not read within the last `debounce` (so a lone append waits for nothing), else
//! when `debounce` has passed since its last read: a burst of writes is coalesced into one read
//! per period, and no change waits more than `max_debounce`. Each read takes only the new complete lines from the cursor and emits the
//! touched turns as partial items with the new cursor: for an open turn, its row with its
//! running aggregates and only the messages and tool calls the new lines created or changed
//! (`sources::assembler`), so an append costs O(appended lines) however long the turn. A directory re-scan every
//! `reconcile_interval` (stat only, no reads of unchanged files) backstops missed events and
//! picks up new roots. Between events the loop sleeps on its channel: an idle tail uses no CPU.
//!
//! Stores (Cursor, OpenCode databases) are polled, not read by offset: a notification on one of
//! their paths (the database, its `-wal`) marks the store dirty, and it is polled at once unless
//! it was polled within `max_debounce`, then once that has passed; each reconcile polls every
//! store whose stamp moved. A poll emits only the sessions whose change token moved.
//!
//! Per-file parse state lives in memory only for files being written (announced by a
//! notification) and is dropped after `idle_evict` without changes; files read at start-up or
//! by a re-scan keep no state. The next change rebuilds it from the cursor (one scan, the open
//! turn then sent whole once), so memory follows the files being written, never the corpus.

mod stores;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use notify::{EventKind, RecursiveMode, Watcher};

use self::stores::TrackedStore;
use super::backfill::{RunCounters, emit_update};
use super::config::WorkerOptions;
use super::cursor::{FileCursor, FileIdentity, cursor_key};
use super::discover::{discover, roots};
use super::emit::{Emitter, now_ms};
use super::error::WorkerError;
use super::file_state::{FileState, ParserFactory};
use super::lineage::{Lineage, Unlinked};
use super::mapping::StartCursors;
use super::sources::StoreCursor;
use super::status::{StopSignal, WorkerStatus};

enum TailEvent {
    Fs(notify::Event),
    Stop,
}

/// A file with unread changes.
struct Dirty {
    first: Instant,
    first_ms: i64,
    /// Announced by a notification (not by start-up or a re-scan).
    live: bool,
}

struct Tracked {
    state: FileState,
    last_change: Instant,
    /// When the file was last read (debounce throttles reads per file from here).
    last_read: Option<Instant>,
}

struct Tail<'a, 'e> {
    options: &'a WorkerOptions,
    cursors: &'a HashMap<String, FileCursor>,
    /// Keys of files imported under another mapping version (`mapping::StartCursors`).
    upgraded: &'a HashSet<String>,
    store_cursors: &'a HashMap<String, StoreCursor>,
    stores: Vec<TrackedStore>,
    factory: &'a ParserFactory,
    emitter: &'a mut Emitter<'e>,
    status: &'a WorkerStatus,
    files: HashMap<PathBuf, Tracked>,
    dirty: HashMap<PathBuf, Dirty>,
    lineage: Lineage,
    watched: HashSet<PathBuf>,
    rediscover_at: Option<Instant>,
    /// Paths named by events that are not known files, for the next re-scan.
    unknown: HashSet<PathBuf>,
    /// Files under the roots that discovery does not take.
    not_sessions: HashSet<PathBuf>,
    /// Session files removed during the run.
    removed: HashSet<PathBuf>,
    counters: RunCounters,
    /// `(lossy_lines, failed_files)` as of the last `run.progress`: a tail reports them when
    /// they move, so that a run that never completes still shows them.
    reported: (u64, u64),
}

/// Tails the roots until `stop`; flushes and returns the counters for `run.complete`.
///
/// Errors: the watcher cannot be created (`watch_failed`) or the frame output failed.
pub fn run_tail(
    options: &WorkerOptions,
    start: &StartCursors,
    factory: &ParserFactory,
    emitter: &mut Emitter<'_>,
    stop: &StopSignal,
    status: &WorkerStatus,
) -> Result<RunCounters, WorkerError> {
    let (tx, rx) = mpsc::channel::<TailEvent>();
    let fs_tx = tx.clone();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                let _ = fs_tx.send(TailEvent::Fs(ev));
            }
            Err(e) => tracing::warn!(error = %e, "file watcher error"),
        })
        .map_err(WorkerError::Watch)?;
    let stop_tx = Mutex::new(tx);
    stop.on_stop(Box::new(move || {
        let _ = stop_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(TailEvent::Stop);
    }));

    let mut tail = Tail {
        options,
        cursors: &start.files,
        upgraded: &start.upgraded_files,
        store_cursors: &start.stores,
        stores: Vec::new(),
        factory,
        emitter,
        status,
        files: HashMap::new(),
        dirty: HashMap::new(),
        lineage: Lineage::default(),
        watched: HashSet::new(),
        rediscover_at: None,
        unknown: HashSet::new(),
        not_sessions: HashSet::new(),
        removed: HashSet::new(),
        counters: RunCounters::default(),
        reported: (0, 0),
    };
    tail.open_new_stores();
    tail.watch_roots(&mut watcher);
    tail.rediscover();
    let mut next_reconcile = Instant::now() + options.reconcile_interval;
    tracing::info!(
        files = tail.files.len(),
        pending = tail.dirty.len(),
        "tail started"
    );

    while !stop.is_stopped() {
        let now = Instant::now();
        if tail.process_due(now, stop)? {
            continue;
        }
        if tail.poll_due_stores(now)? {
            continue;
        }
        if tail.rediscover_at.is_some_and(|t| t <= now) {
            tail.rediscover();
            continue;
        }
        if next_reconcile <= now {
            tail.open_new_stores();
            tail.watch_roots(&mut watcher);
            tail.reconcile();
            next_reconcile = now + options.reconcile_interval;
            continue;
        }
        let deadline = tail
            .next_due()
            .into_iter()
            .chain(tail.next_store_due())
            .chain(tail.rediscover_at)
            .fold(next_reconcile, Instant::min);
        let event = match rx.recv_timeout(deadline.saturating_duration_since(now)) {
            Ok(ev) => Some(ev),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut event = event;
        while let Some(ev) = event {
            match ev {
                TailEvent::Stop => break,
                TailEvent::Fs(ev) => tail.on_fs_event(ev),
            }
            event = rx.try_recv().ok();
        }
        tail.publish();
    }
    tail.emitter.flush().map_err(WorkerError::Output)?;
    Ok(tail.counters)
}

impl Tail<'_, '_> {
    fn watch_roots(&mut self, watcher: &mut impl Watcher) {
        let file_roots = roots(self.options)
            .into_iter()
            .map(|(_, root)| (root, RecursiveMode::Recursive));
        // A store's files are watched through their directory (a database's `-wal` comes and
        // goes); its directories (a JSON tree) recursively.
        let store_roots: Vec<(PathBuf, RecursiveMode)> = self
            .stores
            .iter()
            .flat_map(|s| s.run.store().watch_paths())
            .filter_map(|p| {
                if p.is_dir() {
                    Some((p, RecursiveMode::Recursive))
                } else {
                    Some((p.parent()?.to_path_buf(), RecursiveMode::NonRecursive))
                }
            })
            .collect();
        for (root, mode) in file_roots.chain(store_roots) {
            if self.watched.contains(&root) || !root.is_dir() {
                continue;
            }
            match watcher.watch(&root, mode) {
                Ok(()) => {
                    self.watched.insert(root);
                }
                Err(e) => {
                    tracing::warn!(root = %root.display(), error = %e, "cannot watch root; relying on reconcile")
                }
            }
        }
    }

    /// Marks a file dirty. `live`: a notification said it is being written (its parse state is
    /// then kept for the next append); otherwise (start-up, re-scan) the state is dropped after
    /// the read, so files that are not being written cost no memory.
    fn mark(&mut self, path: PathBuf, now: Instant, live: bool) {
        let d = self.dirty.entry(path).or_insert_with(|| Dirty {
            first: now,
            first_ms: now_ms(),
            live,
        });
        d.live |= live;
    }

    /// When a dirty file is read: at once if it was not read within the last `debounce`
    /// (leading edge: a lone append costs no wait), else once `debounce` has passed since that
    /// read, so a burst of writes is coalesced into one read per period; never later than
    /// `max_debounce` after its first unread change.
    fn due_at(&self, path: &PathBuf, d: &Dirty) -> Instant {
        let last_read = self.files.get(path).and_then(|t| t.last_read);
        let throttled = last_read.map_or(d.first, |r| d.first.max(r + self.options.debounce));
        throttled.min(d.first + self.options.max_debounce)
    }

    fn next_due(&self) -> Option<Instant> {
        self.dirty.iter().map(|(p, d)| self.due_at(p, d)).min()
    }

    fn on_fs_event(&mut self, ev: notify::Event) {
        // Our own reads open files: access events are never changes.
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        let now = Instant::now();
        self.status.last_event_ms.store(now_ms(), Ordering::Relaxed);
        let removed = matches!(ev.kind, EventKind::Remove(_));
        for path in ev.paths {
            if let Some(store) = self.stores.iter_mut().find(|s| s.run.watches(&path)) {
                store.dirty.get_or_insert(now);
                store.notified = true;
                continue;
            }
            if removed && self.watched.remove(&path) {
                // A watched root went away: the next reconcile watches it again if it returns.
                tracing::info!(root = %path.display(), "source root removed");
            }
            if self.files.contains_key(&path) {
                self.mark(path, now, true);
            } else if !self.not_sessions.contains(&path)
                && (path
                    .extension()
                    .is_some_and(|e| e == "jsonl" || e == "json" || e == "zst")
                    || path.is_dir())
            {
                self.rediscover_at
                    .get_or_insert(now + self.options.debounce);
                self.unknown.insert(path);
            }
        }
    }

    /// Reads every file whose debounce expired; `true` when any was read.
    fn process_due(&mut self, now: Instant, stop: &StopSignal) -> Result<bool, WorkerError> {
        let mut due: Vec<(Instant, PathBuf, bool)> = self
            .dirty
            .iter()
            .filter(|(p, d)| self.due_at(p, d) <= now)
            .map(|(p, d)| (d.first, p.clone(), d.live))
            .collect();
        if due.is_empty() {
            return Ok(false);
        }
        due.sort();
        let oldest = due[0].0;
        let files = due.len();
        for (_, path, live) in due {
            if stop.is_stopped() {
                break;
            }
            self.dirty.remove(&path);
            self.read_file(path, live)?;
        }
        self.emitter.flush().map_err(WorkerError::Output)?;
        self.report_problems()?;
        self.publish();
        tracing::debug!(
            files,
            lag_ms = oldest.elapsed().as_millis() as u64,
            "changes emitted"
        );
        Ok(true)
    }

    fn read_file(&mut self, path: PathBuf, live: bool) -> Result<(), WorkerError> {
        let Some(tracked) = self.files.get_mut(&path) else {
            return Ok(());
        };
        tracked.last_change = Instant::now();
        tracked.last_read = Some(tracked.last_change);
        let result = tracked.state.update(self.factory, false);
        if result.is_ok() {
            self.counters.file_read(&path);
        }
        match result {
            Ok(Some(update)) => {
                self.counters.lossy_lines += update.lossy_lines;
                let resend = emit_update(
                    &tracked.state,
                    update,
                    &mut self.lineage,
                    &self.options.mappings,
                    self.factory,
                    self.emitter,
                )
                .map_err(WorkerError::Output)?;
                self.counters.emitted_files += 1;
                if !live {
                    tracked.state.evict();
                }
                self.resend_children(resend)?;
            }
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "session file removed");
                self.files.remove(&path);
                self.removed.insert(path.clone());
            }
            Err(e) => self.counters.file_failed(&path, &e),
        }
        // Files that lost lines to claims this read made (its own, or a parent's scan for the
        // lineage), and reviews whose parent it revealed: read again (whole, their digest moved).
        let displaced = match self.files.get_mut(&path) {
            Some(t) => t.state.take_displaced(self.factory),
            None => Vec::new(),
        };
        let now = Instant::now();
        for p in displaced {
            if self.files.contains_key(&p) {
                self.mark(p, now, false);
            }
        }
        Ok(())
    }

    /// Re-sends the headers of children whose spawn link became known (and of their own
    /// children in turn), from their in-memory state or one rebuilt from their cursor.
    fn resend_children(&mut self, mut pending: Vec<Unlinked>) -> Result<(), WorkerError> {
        while let Some((source, _)) = pending.pop() {
            let Some(tracked) = self.files.get_mut(&source.path) else {
                continue;
            };
            let had_state = tracked.state.parser().is_some();
            match tracked.state.resend_header(self.factory) {
                Ok(Some(update)) => {
                    let more = emit_update(
                        &tracked.state,
                        update,
                        &mut self.lineage,
                        &self.options.mappings,
                        self.factory,
                        self.emitter,
                    )
                    .map_err(WorkerError::Output)?;
                    pending.extend(more);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %source.path.display(), error_kind = ?e.kind(), "child header not re-sent")
                }
            }
            if !had_state {
                tracked.state.evict();
            }
        }
        Ok(())
    }

    /// Adds files that appeared under the roots; new ones (and any whose cursor is stale) are
    /// due at once.
    fn rediscover(&mut self) {
        self.rediscover_at = None;
        let now = Instant::now();
        let unknown = std::mem::take(&mut self.unknown);
        for d in discover(self.options) {
            if self.files.contains_key(&d.source.path) {
                continue;
            }
            // A file removed during this run that comes back is new: the start cursor was for
            // the old one.
            let key = cursor_key(d.source.provider, &d.source.path);
            let returned = self.removed.remove(&d.source.path);
            let cursor = if returned {
                None
            } else {
                self.cursors.get(&key).cloned()
            };
            self.lineage.know(&d.source, cursor.as_ref());
            let mut state = FileState::new(d.source, cursor);
            if !returned && self.upgraded.contains(&key) {
                state.mark_upgraded();
            }
            let path = state.source.path.clone();
            let needs = state.needs_read_with(false, self.factory).unwrap_or(true);
            self.files.insert(
                path.clone(),
                Tracked {
                    state,
                    last_change: now,
                    last_read: None,
                },
            );
            if needs {
                let live = unknown.contains(&path);
                self.mark(path, now, live);
            }
        }
        // Paths that a change announced and discovery did not take are not sessions (by their
        // name): later changes to them (e.g. a workflow journal) trigger no re-scan.
        for path in unknown {
            if !self.files.contains_key(&path) && path.is_file() {
                self.not_sessions.insert(path);
            }
        }
        self.publish();
    }

    /// The backstop: new files, and known files whose stat differs from their cursor. Drops
    /// the parse state of files idle for `idle_evict`.
    fn reconcile(&mut self) {
        self.rediscover();
        let now = Instant::now();
        // A store's stamp check is one stat: mark them all, the poll skips unchanged ones.
        for store in &mut self.stores {
            store.dirty.get_or_insert(now);
        }
        let mut stale = Vec::new();
        for (path, tracked) in &mut self.files {
            let changed = match (FileIdentity::stat(path), &tracked.state.cursor) {
                (Ok(id), Some(c)) => id != c.identity(),
                _ => true,
            };
            if changed {
                stale.push(path.clone());
            } else if now.duration_since(tracked.last_change) >= self.options.idle_evict {
                tracked.state.evict();
            }
        }
        for path in stale {
            self.mark(path, now, false);
        }
        self.publish();
    }

    /// Sends `run.progress` when lines were repaired or files failed since the last one (after
    /// the flush, so the frames they describe went first).
    fn report_problems(&mut self) -> Result<(), WorkerError> {
        let now = (self.counters.lossy_lines, self.counters.failed_files);
        if now != self.reported {
            self.reported = now;
            self.emitter
                .sink()
                .progress(&self.counters.progress(false))
                .map_err(WorkerError::Output)?;
        }
        Ok(())
    }

    fn publish(&self) {
        let s = self.status;
        s.watched_files
            .store(self.files.len() as u64, Ordering::Relaxed);
        s.pending_files
            .store(self.dirty.len() as u64, Ordering::Relaxed);
        let oldest = self.dirty.values().map(|d| d.first_ms).min().unwrap_or(0);
        s.oldest_pending_ms.store(oldest, Ordering::Relaxed);
    }
}
