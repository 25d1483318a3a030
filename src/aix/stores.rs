//! Polled session stores in a run (Cursor's `state.vscdb`, OpenCode's data directory): which
//! stores the options name, their cursors, and one poll emitted as frames.
//!
//! A backfill polls every store once after the session files. The tail polls a store when a
//! notification names one of its paths (the database or its `-wal`) and at every reconcile, and
//! only when its [`SessionStore::stamp`] moved: an idle store costs one `stat` per reconcile.
//!
//! A session the store still holds that makes no item under the current mapping
//! (`StorePoll::empty`) is retracted (item rule 15) when the run knows it imported it: a
//! cursor of this store names it, under any mapping version. Its cursor goes with the retract,
//! so the next poll finds it unchanged. A session the store no longer holds is never retracted:
//! rows outlive their sources.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;

use super::backfill::RunCounters;
use super::config::WorkerOptions;
use super::discover::{CursorDb, cursor_dbs};
use super::emit::Emitter;
use super::mapping::{self, MappingVersions};
use super::sources::store::store_cursor_key;
use super::sources::{CursorStore, OpenCodeStore, SessionStore, StoreCursor};
use crate::protocol::{Cursor, ImportSessionItem};

/// The stores the options name whose location exists (a missing one is skipped, logged at
/// debug, and picked up by a later run): one per Cursor database (the global one and each
/// workspace's, see [`cursor_dbs`]), one per OpenCode data directory.
pub fn open_stores(options: &WorkerOptions) -> Vec<Box<dyn SessionStore>> {
    let mut stores: Vec<Box<dyn SessionStore>> = Vec::new();
    for db in cursor_dbs(&options.cursor_dbs) {
        stores.push(Box::new(cursor_store(db)));
    }
    for dir in &options.opencode_dirs {
        if dir.is_dir() {
            stores.push(Box::new(OpenCodeStore::new(dir.clone())));
        } else {
            tracing::debug!(path = %dir.display(), "opencode data dir not found");
        }
    }
    stores
}

/// The store of one Cursor database, told what its place says (its workspace's folder and
/// global database, or the workspaces beside a global database).
pub fn cursor_store(db: CursorDb) -> CursorStore {
    let store = CursorStore::new(db.path).with_workspaces(db.workspaces);
    match db.workspace {
        Some(w) => store.in_workspace(w.folder, w.global),
        None => store,
    }
}

/// The usable store cursors of `run.start`, by key (other values are file cursors, or unusable:
/// those sessions are read whole).
pub fn store_cursor_map(cursors: &[Cursor]) -> HashMap<String, StoreCursor> {
    cursors
        .iter()
        .filter_map(|c| Some((c.key.clone(), StoreCursor::from_value(&c.value)?)))
        .collect()
}

/// A poll failed in a way that ends the run (the frame output), as opposed to a store that could
/// not be read (counted, the run goes on).
#[derive(Debug)]
pub struct OutputFailed(pub io::Error);

/// One store within a run: the store, its sessions' cursors as last emitted, and the stamp of
/// its last poll.
pub struct StoreRun {
    store: Box<dyn SessionStore>,
    /// By session id.
    cursors: HashMap<String, StoreCursor>,
    /// Sessions of this store a cursor of `run.start` named, under any mapping version: the
    /// ledger may hold them (with `cursors`' keys, what a retract may delete).
    known: HashSet<String>,
    stamp: Option<String>,
}

impl StoreRun {
    /// `store` with the cursors of `run_cursors` that belong to it.
    pub fn new(store: Box<dyn SessionStore>, run_cursors: &HashMap<String, StoreCursor>) -> Self {
        let prefix = store_cursor_key(store.provider(), store.location(), "");
        let mut cursors = HashMap::new();
        let mut known = HashSet::new();
        for (k, c) in run_cursors {
            let Some(id) = k.strip_prefix(&prefix) else {
                continue;
            };
            known.insert(id.to_owned());
            // A cursor of another mapping version: its session is read whole.
            if c.token != mapping::STALE_TOKEN {
                cursors.insert(id.to_owned(), c.clone());
            }
        }
        Self {
            store,
            cursors,
            known,
            stamp: None,
        }
    }

    pub fn location(&self) -> &Path {
        self.store.location()
    }

    pub fn store(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    /// Whether a change notification for `path` concerns this store.
    pub fn watches(&self, path: &Path) -> bool {
        self.store
            .watch_paths()
            .iter()
            .any(|w| path == w || path.starts_with(w))
    }

    /// Polls the store when its stamp moved since the last poll (always on the first, with
    /// `full`, or with `force`: a change notification named one of its paths, which a stamp may
    /// not see, e.g. a file rewritten deep in a JSON tree), emitting each changed session with
    /// its cursor. Sessions whose change token did not move are not read either way. Returns
    /// whether it polled.
    ///
    /// Errors: only a failed frame output; a store that cannot be read is logged and counted in
    /// `counters.failed_files` (its stamp is forgotten, so the next chance polls again).
    pub fn poll(
        &mut self,
        full: bool,
        force: bool,
        mappings: &MappingVersions,
        emitter: &mut Emitter<'_>,
        counters: &mut RunCounters,
    ) -> Result<bool, OutputFailed> {
        let stamp = match self.store.stamp() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(path = %self.location().display(), error_kind = ?e.kind(), "store not stat-able");
                self.stamp = None;
                return Ok(false);
            }
        };
        if !full && !force && self.stamp.as_deref() == Some(stamp.as_str()) {
            return Ok(false);
        }
        let provider = self.store.provider();
        let version = mappings.of(provider);
        let location = self.store.location().to_path_buf();
        let mut output: Option<io::Error> = None;
        let mut emitted = HashMap::new();
        let result = self.store.poll(&self.cursors, full, &mut |update| {
            let key = store_cursor_key(provider, &location, &update.session_id);
            // Stored under the mapping version (`aix::mapping`); kept here as the store knows it.
            let stored = StoreCursor {
                token: mapping::versioned_token(version, &update.cursor.token),
                ..update.cursor.clone()
            };
            let cursor = Cursor {
                key,
                value: stored.to_value(),
            };
            let mut items = update.items;
            super::lineage::seal_lineage(&mut items);
            // A store session is always read whole.
            mapping::stamp_items(&mut items, provider, version, true);
            if let Err(e) = emitter.push_file(items, "store", Some(cursor)) {
                let kind = e.kind();
                output = Some(e);
                return Err(io::Error::from(kind));
            }
            emitted.insert(update.session_id, update.cursor);
            Ok(())
        });
        if let Some(e) = output {
            return Err(OutputFailed(e));
        }
        if let Ok(counts) = &result {
            for (id, cursor) in &counts.empty {
                self.retract(id, cursor, version, emitter)
                    .map_err(OutputFailed)?;
            }
        }
        match result {
            Ok(counts) => {
                counters.file_read(&location);
                counters.skipped_files += counts.unchanged;
                counters.failed_files += counts.failed;
                counters.stores.sessions_unchanged += counts.unchanged;
                if emitted.is_empty() && counts.failed == 0 {
                    counters.stores.stores_unchanged += 1;
                }
                self.stamp = Some(stamp);
            }
            Err(e) => {
                counters.file_failed(&location, &e);
                self.stamp = None;
            }
        }
        // Sessions emitted before a failure went out: they count and their cursors stand.
        counters.stores.stores += 1;
        counters.stores.sessions += emitted.len() as u64;
        counters.total += emitted.len() as u64;
        counters.emitted_files += emitted.len() as u64;
        self.cursors.extend(emitted);
        Ok(true)
    }

    /// Item rule 15 for `session_id`, which the store holds and which makes no item: when this
    /// store's cursors say it was imported, emits its `retract` item with `cursor` (stored
    /// under `version`); else nothing (a session never imported needs no cursor either).
    ///
    /// Errors: the frame output failed.
    fn retract(
        &mut self,
        session_id: &str,
        cursor: &StoreCursor,
        version: u32,
        emitter: &mut Emitter<'_>,
    ) -> io::Result<()> {
        if !self.known.contains(session_id) && !self.cursors.contains_key(session_id) {
            return Ok(());
        }
        let provider = self.store.provider();
        let stored = StoreCursor {
            token: mapping::versioned_token(version, &cursor.token),
            ..cursor.clone()
        };
        let mut items = vec![ImportSessionItem::retraction(
            provider.as_str(),
            session_id.to_owned(),
            &cursor.token,
        )];
        mapping::stamp_items(&mut items, provider, version, true);
        let key = store_cursor_key(provider, self.store.location(), session_id);
        emitter.push_file(
            items,
            "store",
            Some(Cursor {
                key,
                value: stored.to_value(),
            }),
        )?;
        self.cursors.insert(session_id.to_owned(), cursor.clone());
        tracing::info!(session = %session_id, "store session makes no item any more: retracted");
        Ok(())
    }
}
