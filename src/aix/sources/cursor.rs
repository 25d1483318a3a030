//! Cursor IDE: one `state.vscdb` (`…/Cursor/User/globalStorage/`, or a workspace's under
//! `…/User/workspaceStorage/<id>/`), polled as a [`SessionStore`]. Each database is its own
//! store, with its own cursors (`discover::cursor_dbs` finds them).
//!
//! # What is read
//! Table `cursorDiskKV(key, value)`: `composerData:<composerId>` is a session's header,
//! `bubbleId:<composerId>:<bubbleId>` one of its messages. Older composers hold their
//! conversation inline (`conversation[]`, or `conversationMap` by bubble id). Legacy chat data in
//! `ItemTable` is read too (see `legacy`). Only those keys' values are ever selected: the file
//! also holds auth tokens and settings, whose values are never read and nothing is ever logged
//! of any value. The database is opened through [`open_readonly`]: never written, no file
//! created beside it.
//!
//! # Mapping
//! - Session: id = `composerId`; `createdAtMs` / `updatedAtMs` = `createdAt` / `lastUpdatedAt`
//!   (else the first / last bubble time); `model` = `modelConfig.modelName` (else the last
//!   turn's); `metadata` = `{title: name, unifiedMode}` where present. `provider` is not
//!   stored and stays empty; `workspacePath` = the folder of the workspace whose database holds
//!   the session (from its `workspace.json`); for a session of the global database, the
//!   folder of the first workspace whose composer list names it (see `folders`), else the
//!   composer's own `workspaceIdentifier.uri.fsPath` (else `.path`; Cursor 3.x lists its
//!   composers in no workspace database), else empty. The folder is part of the session's
//!   change token and fingerprint (the composer's own, through its value).
//! - A session in both a workspace database and the global one (the same composer id: Cursor
//!   moved its chats to the global database) is read from the global one only: a workspace
//!   store skips the legacy entries whose id is a `composerData:<id>` key of its global
//!   database (keys only are read there), counted `legacy_shadowed`.
//! - Order: `fullConversationHeadersOnly`, else the inline conversation, else time then row id
//!   (see `conversation` for bubbles a composer does not list).
//! - Messages: one per bubble of `type` 1 (user) or 2 (assistant) (legacy `"user"`/`"ai"`);
//!   id = bubble id; `content` = `text`, else `rawText`; `thinking` = `thinking` (a string or
//!   its `text`); `sequence` = position in the conversation order; `createdAtMs` = `createdAt`
//!   (an ISO string or epoch ms); missing before late 2025: then `timingInfo`'s
//!   `clientRpcSendTime`, else `clientStartTime` (epoch values only: `clientStartTime` is often
//!   an offset from the window's load), else the turn's start. Other types are skipped and
//!   counted (`bubble_unknown_type`).
//! - Turns: each user bubble opens one, named by its bubble id, holding the bubbles up to the
//!   next user bubble (assistant bubbles before any user bubble open one named by the first of
//!   them); parent = the previous turn; `startedAtMs` = the first time of its bubbles (a turn
//!   with none: the session's start, but never after the next bubble's time);
//!   `completedAtMs` = the last time of its bubbles and, for bubbles without `createdAt`, of
//!   their `timingInfo` `clientEndTime` / `clientSettleTime` (completed only once an assistant
//!   bubble exists); tokens = `tokenCount` (`inputTokens`, `outputTokens`, total = their sum)
//!   of the turn's last assistant bubble whose counts are not zero (Cursor fills only the
//!   bubble that closes a request), so each request is counted once; a turn whose counts are
//!   all zero records zero (SOURCES.md: record them as 0, never invent them; 3.x fills none),
//!   one with none records none; `model` = the last assistant `modelInfo.modelName`, else the prompt bubble's
//!   (Cursor 3.x names the model on the prompt only); `response` = the last assistant bubble
//!   with text; `query` = the user bubble.
//! - A row whose value is SQL NULL is a deleted composer or bubble: skipped and counted once
//!   (`deleted_row`; a deleted composer whose bubbles make no message is not also an
//!   `empty_session`, a deleted bubble the headers list is not also a `missing_bubble`).
//! - Tool calls: one per bubble with `toolFormerData.name`: id = `toolCallId` (kept exact:
//!   OpenAI ids hold a newline), else the bubble id; `paramsJson` = `rawArgs`, else `params`;
//!   `resultJson` = `result` (strings holding JSON are parsed); `status` in the ledger's words
//!   (`completed`, `failed` for error/cancelled/rejected, `running` for loading, else as
//!   written); `toolNumber` = `tool`.
//! - Subagents: a `task_v2` call spawns the session `task-<toolCallId>`, whose bubbles are
//!   `bubbleId:task-<toolCallId>:*` (ordered by time, then row id) and whose rare header is
//!   `composerData:task-<toolCallId>` (else the header embedded in the call's
//!   `additionalData.composerData`). Its item: `isSubagent`, `parentSourceSessionId` = the
//!   spawning session, `parentSourceMessageId` = the spawning bubble, `spawnToolCallId` =
//!   `toolCallId`, `taskDescription` = `params.description`, `taskStatus` = the call's status
//!   as written, `model` = the header's, else `params.model`. The call carries
//!   `spawnedSourceSessionId` (also when no bubble of the child exists: Cursor stores none for
//!   some spawns). Subagents nest (up to 8 levels). A subagent named by two sessions (a
//!   duplicated chat copies the spawn) belongs to the older one. Subagent bubbles that no
//!   session names are never read.
//!
//! # Change detection
//! Each top-level session's cursor token (see `token`) records its composer row's id and value
//! length, the count and highest row id of its bubble keys, and the same for every subagent it
//! owns: all from the key index and row headers, no value read. Cursor rewrites rows with
//! `INSERT OR REPLACE` (a new row id); an in-place update that keeps a row's length is not seen
//! until another row of the session changes (or a `full` poll). A session whose rows are the
//! same as its cursor says is not read. A changed one is read whole in one read transaction
//! (consistent token and values) and sent with its own item plus the items of its subagents
//! whose fingerprint differs from the one its cursor's token recorded (all of them on a `full`
//! poll). The fingerprint hashes the stored values that
//! make the item, in key order, after a mapping version. Sessions are sent oldest first (by
//! `createdAt`), each parent before its subagents.
//!
//! A session read without making an item (no message yet, everything malformed) is remembered
//! by its token in memory and read again only when its rows change.
//!
//! # Errors
//! A file that is not a database (or cannot be opened) is an error of `poll`. A database with
//! neither `cursorDiskKV` nor `ItemTable` polls empty. A query failing while one session is read
//! fails that session only (counted in `StorePoll::failed`, logged without content).

mod build;
mod conversation;
mod db;
mod folders;
mod legacy;
mod record;
mod session;
mod token;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use self::build::TASK_PREFIX;
use self::db::{BUBBLE_PREFIX, COMPOSER_PREFIX, Stamp};
use self::folders::WorkspaceFolders;
use self::legacy::LegacyMemo;
use self::record::{CreatedAt, parse_object};
use self::session::{Age, Claims};
use self::token::{ChangeToken, Sub};
use super::store::{
    FileStamp, STORE_CURSOR_VERSION, SessionStore, SessionUpdate, StoreCursor, StorePoll,
    UpdateSink, open_readonly, with_suffix,
};
use super::{ParseStats, Provider};

/// One Cursor `state.vscdb`, polled.
pub struct CursorStore {
    db: PathBuf,
    stats: ParseStats,
    /// Top-level sessions read without making an item, by the token they had: not read again
    /// until their rows change.
    quiet: HashMap<String, ChangeToken>,
    /// What the last read of the legacy `ItemTable` keys found.
    legacy: Option<LegacyMemo>,
    /// The folder of the workspace this database belongs to (every item's `workspacePath`).
    workspace_folder: Option<String>,
    /// The global database whose composers shadow this workspace database's legacy entries.
    global: Option<PathBuf>,
    /// For a global database: the workspaces whose composer lists place its sessions.
    folders: WorkspaceFolders,
}

impl CursorStore {
    pub fn new(db: PathBuf) -> Self {
        Self {
            db,
            stats: ParseStats::default(),
            quiet: HashMap::new(),
            legacy: None,
            workspace_folder: None,
            global: None,
            folders: WorkspaceFolders::default(),
        }
    }

    /// This store as a global database beside `workspaces` (database, folder): a session a
    /// workspace lists gets that workspace's folder as `workspacePath`.
    pub fn with_workspaces(mut self, workspaces: Vec<(PathBuf, String)>) -> Self {
        self.folders = WorkspaceFolders::new(workspaces);
        self
    }

    /// This store as a workspace's database: `folder` becomes every item's `workspacePath`, and
    /// the legacy entries whose composer `global` holds are skipped.
    pub fn in_workspace(mut self, folder: Option<String>, global: Option<PathBuf>) -> Self {
        self.workspace_folder = folder;
        self.global = global;
        self
    }

    /// The composer ids of the global database (keys only); empty when there is none or it
    /// cannot be read (logged at debug: the legacy entries are then read as the only copy).
    fn global_composers(&self) -> HashSet<String> {
        let Some(global) = &self.global else {
            return HashSet::new();
        };
        let ids = open_readonly(global).and_then(|ro| {
            let (has_kv, _) = db::tables(&ro.conn).map_err(io::Error::other)?;
            if !has_kv {
                return Ok(Vec::new());
            }
            db::composers(&ro.conn).map_err(io::Error::other)
        });
        match ids {
            Ok(ids) => ids.into_iter().map(|(id, _)| id).collect(),
            Err(e) => {
                tracing::debug!(path = %global.display(), error_kind = ?e.kind(), "cursor global database not readable");
                HashSet::new()
            }
        }
    }

    fn wal(&self) -> PathBuf {
        with_suffix(&self.db, "-wal")
    }
}

/// A session to send, in the order of its age.
enum Pending {
    /// A changed composer, with the token of its committed cursor (none on a `full` poll).
    Composer(String, Option<ChangeToken>),
    Legacy(SessionUpdate),
}

/// The token a session's rows give now, for the subagents `known` lists.
fn current(
    conn: &Connection,
    id: &str,
    stamp: Stamp,
    known: &ChangeToken,
    folder: Option<&str>,
) -> rusqlite::Result<ChangeToken> {
    let mut k = Vec::with_capacity(known.k.len());
    for Sub(child, _, _, fp) in &known.k {
        k.push(Sub(
            child.clone(),
            db::stamp_of(conn, &format!("{COMPOSER_PREFIX}{child}"))?,
            db::range_stats(conn, &format!("{BUBBLE_PREFIX}{child}:"))?,
            fp.clone(),
        ));
    }
    Ok(ChangeToken {
        c: stamp,
        b: db::range_stats(conn, &format!("{BUBBLE_PREFIX}{id}:"))?,
        t: None,
        k,
        w: folder.map(str::to_owned),
    })
}

/// `createdAt` of a composer, read to order the changed sessions before reading them.
fn created_at(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    let row = db::row_of(conn, &format!("{COMPOSER_PREFIX}{id}"))?;
    Ok(row
        .and_then(|r| r.value)
        .and_then(|v| parse_object::<CreatedAt>(&v).ok().flatten())
        .and_then(|c| c.created_at))
}

impl SessionStore for CursorStore {
    fn provider(&self) -> Provider {
        Provider::Cursor
    }

    fn location(&self) -> &Path {
        &self.db
    }

    /// Size and modification time of the database and of its `-wal` (`-` when absent).
    fn stamp(&self) -> io::Result<String> {
        let db = FileStamp::of(&std::fs::metadata(&self.db)?).token();
        let wal = FileStamp::token_of(&self.wal());
        Ok(format!("{db}|{wal}"))
    }

    fn poll(
        &mut self,
        cursors: &HashMap<String, StoreCursor>,
        full: bool,
        sink: UpdateSink<'_>,
    ) -> io::Result<StorePoll> {
        let ro = open_readonly(&self.db)?;
        let conn = &ro.conn;
        let (has_kv, has_items) = db::tables(conn).map_err(io::Error::other)?;
        let mut counts = StorePoll::default();
        let mut claims = Claims::default();
        let mut pending: Vec<(Age, Pending)> = Vec::new();
        let mut composers = HashSet::new();
        let folders = if has_kv {
            self.folders.by_composer()
        } else {
            HashMap::new()
        };
        let own_folder = self.workspace_folder.clone();
        let folder_of = |id: &str| -> Option<String> {
            own_folder.clone().or_else(|| folders.get(id).cloned())
        };
        if has_kv {
            let mut changed = Vec::new();
            for (id, stamp) in db::composers(conn).map_err(io::Error::other)? {
                // A subagent's header is read with the session that spawned it.
                if id.trim().is_empty() || id.starts_with(TASK_PREFIX) {
                    continue;
                }
                composers.insert(id.clone());
                let old = cursors.get(&id).and_then(|c| ChangeToken::parse(&c.token));
                if !full {
                    let mut same = None;
                    for known in old.iter().chain(self.quiet.get(&id)) {
                        let now = current(conn, &id, stamp, known, folder_of(&id).as_deref())
                            .map_err(io::Error::other)?;
                        if known.same_rows(&now) {
                            same = Some(known);
                            break;
                        }
                    }
                    if let Some(known) = same {
                        if old.as_ref() == Some(known) {
                            counts.unchanged += 1;
                            let age = (known.t, id.clone());
                            for sub in &known.k {
                                claims.claim(&sub.0, &age);
                            }
                        }
                        continue;
                    }
                }
                changed.push((id, old.filter(|_| !full)));
            }
            for (id, old) in changed {
                let created = created_at(conn, &id).map_err(io::Error::other)?;
                pending.push(((created, id.clone()), Pending::Composer(id, old)));
            }
        }
        if has_items {
            let global = self.global_composers();
            let mut shadow = composers;
            shadow.extend(global);
            let legacy = legacy::poll_legacy(
                conn,
                cursors,
                full,
                legacy::Scope {
                    shadow: &shadow,
                    folder: self.workspace_folder.as_deref(),
                },
                &mut self.legacy,
                &mut self.stats,
                &mut counts,
            )
            .map_err(io::Error::other)?;
            pending.extend(legacy.into_iter().map(|(age, u)| (age, Pending::Legacy(u))));
        }
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        for (age, p) in pending {
            let (id, old) = match p {
                Pending::Legacy(update) => {
                    sink(update)?;
                    counts.emitted += 1;
                    continue;
                }
                Pending::Composer(id, old) => (id, old),
            };
            // One read transaction per session: its token and its values agree.
            let read = conn.unchecked_transaction().and_then(|tx| {
                let tree = session::read_tree(
                    conn,
                    &id,
                    &age,
                    &mut claims,
                    old.as_ref(),
                    folder_of(&id).as_deref(),
                    &mut self.stats,
                );
                drop(tx);
                tree
            });
            match read {
                Ok(Some(tree)) if !tree.items.is_empty() => {
                    self.quiet.remove(&id);
                    sink(SessionUpdate {
                        session_id: id,
                        items: tree.items,
                        cursor: StoreCursor {
                            v: STORE_CURSOR_VERSION,
                            token: tree.token.encode(),
                            fingerprint: tree.fingerprint,
                        },
                    })?;
                    counts.emitted += 1;
                }
                Ok(Some(tree)) => {
                    self.quiet.insert(id, tree.token);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(
                        path = %self.db.display(),
                        session = %id,
                        error = %e,
                        "cursor session could not be read"
                    );
                    counts.failed += 1;
                }
            }
        }
        Ok(counts)
    }

    fn stats(&self) -> &ParseStats {
        &self.stats
    }

    /// The database and its `-wal` (Cursor writes through the WAL while it runs).
    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.db.clone(), self.wal()]
    }
}
