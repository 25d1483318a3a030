//! OpenCode: the SQLite store (`opencode.db`, plus any channel-suffixed `opencode-*.db` such as
//! `opencode-stable.db`, OpenCode ≥ 1.2) and the legacy JSON trees (`storage/`, 0.6 to 1.1, and
//! the per-project `project/<name>/storage/` of 0.5.x; upgrades leave them in place), one data
//! directory (default `~/.local/share/opencode`) polled as one [`SessionStore`].
//!
//! Mapping rules (SOURCES.md "Providers"; research: peers.md §1.4, §1.6):
//! - **Session**: one per `session` row or legacy session file, id `ses_…`. The same id in
//!   several places is imported once: `opencode.db` wins, then the `opencode-*.db` files in name
//!   order, then `storage/`, then the per-project trees in name order. `createdAtMs`/`updatedAtMs` = `time_created`/`time_updated`
//!   (`updated` moves forward to the last message, part or tool time), `workspacePath` =
//!   `directory`, `model`/`provider` = those of the last assistant message (`modelID`,
//!   `providerID`; a user message's `model{…}` when no assistant names one), `metadata` =
//!   `{title, version, projectId, slug, archivedAtMs}` where present.
//! - **Turns**: a user message opens a turn (its id is the turn id and the query message);
//!   an assistant message belongs to the turn of its `parentID` when that is a user message of
//!   the session, else to the latest turn (or opens one of its own when there is none). Turns
//!   chain linearly. `completedAtMs` = the latest message/tool time of the turn, `model` the
//!   turn's assistant model, `responseMessageSourceId` its last assistant message with text.
//!   Tokens: the sum of `tokens{input, output, reasoning, cache{read, write}}` over the turn's
//!   assistant messages, each message row counted once (OpenCode keeps one row per message id,
//!   rewritten in place); `totalTokens` = the five summed (OpenCode reports them disjoint).
//!   `step-finish` parts repeat per-step usage and are not counted.
//! - **Messages**: one per message row, ordered by creation time then id; `content` = its
//!   `text` parts joined by `\n` (text parts marked `synthetic` or `ignored` are OpenCode's own
//!   injections and are left out, counted as `part:text_synthetic`; a user message holding no
//!   other text, such as a `!command` run from the prompt box, whose only text is OpenCode's
//!   synthetic "The following tool was executed by the user", takes its synthetic parts as its
//!   text: it is the prompt of its turn all the same), `thinking` = its
//!   `reasoning` parts; `metadataJson` = `{agent, mode, modelID, providerID, cost, finish,
//!   parentID}` where present.
//! - **Tool calls**: one per `tool` part: id = `callID` (the part id when absent), `toolName` =
//!   `tool`, `paramsJson` = `state.input`, `resultJson` = `state.output`, `error` =
//!   `state.error`, status `pending`/`running`/`completed`, `error` -> `failed`, times from
//!   `state.time{start, end}`. Every other part type (`file`, `patch`, `snapshot`, `agent`,
//!   `compaction`, `subtask`, `retry`, `step-start`, `step-finish`, unknown ones) is skipped and
//!   counted as `part:<type>`.
//! - **Lineage**: `session.parent_id` (`parentID`) makes the session a subagent with
//!   `parentSourceSessionId`. When a `task` tool part of the parent names the child in
//!   `state.metadata.sessionId`, the child gets `spawnToolCallId` (that part's call id),
//!   `taskDescription` (`state.input.description`) and `taskStatus` (the task's tool status), and
//!   the parent's tool call gets `spawnedSourceSessionId`. Nothing else links them: a child whose
//!   parent names it in no task part (a `subtask` command, an older version, a parent that is
//!   gone) keeps only its parent id; a task part naming a session is linked on the parent's
//!   side whether or not that session exists.
//!
//! Incremental reading (the contract of [`SessionStore`]): every poll lists all sessions with a
//! cheap change token: for a database session, its row's values plus count, max rowid, max and
//! sum of `time_updated` and summed byte length (`octet_length`, which does not load the
//! values) of its message and part rows, from two grouped queries; for a legacy session, the stats of its files
//! (see `legacy`). A session whose token equals its cursor's is not read. A changed one is read
//! whole (in one read transaction) and emitted as one item (subagent sessions are their own
//! sessions, with their own cursors). The cursor token also holds a hash of the links the
//! session's task parts give its children, and, for a child, the hash of its parent's links it
//! was built with: a parent whose links changed re-reads exactly the children whose link
//! state is stale, and only those. A session without any turn yet (no message) is not
//! emitted: the ledger would give it a root turn no later item could remove.
//!
//! Layout: `db` (schema probing, tokens, rows of the SQLite store), `legacy` (the JSON tree),
//! `record` (the stored JSON values), `item` (rows to item, fingerprint, links), `plan`
//! (cursor tokens, what a poll knows of links, session order).

mod db;
mod item;
mod legacy;
mod plan;
mod record;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use self::db::Db;
use self::item::{LinkMap, links_hash};
use self::legacy::{Layout, Legacy};
use self::plan::{Known, Token, parents_first};
use super::common::{count_skip, hex32};
use super::store::{FileStamp, with_suffix};
use super::store::{
    STORE_CURSOR_VERSION, SessionStore, SessionUpdate, StoreCursor, StorePoll, UpdateSink,
};
use super::{ParseStats, Provider};

/// The main database of a data directory.
pub const MAIN_DB: &str = "opencode.db";

/// One OpenCode data directory (`opencode.db`, `opencode-*.db`, `storage/`, `project/*/storage/`),
/// polled.
pub struct OpenCodeStore {
    dir: PathBuf,
    stats: ParseStats,
    /// The JSON trees in precedence order (`storage/` first), each with its cache of parsed
    /// session files; found again at each poll (see [`Self::refresh_trees`]).
    legacy: Vec<Legacy>,
}

impl OpenCodeStore {
    /// A store over the data directory `dir`; nothing is opened before the first poll.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            stats: ParseStats::default(),
            legacy: Vec::new(),
        }
    }

    /// The JSON trees present now: `storage/` (also read as a per-project tree when it holds
    /// `session/info/`), then each `project/<name>/storage/` by name. A tree already known keeps
    /// its cache.
    fn refresh_trees(&mut self) {
        let storage = self.dir.join("storage");
        let mut wanted = vec![(storage.clone(), Layout::Flat)];
        if storage.join("session/info").is_dir() {
            wanted.push((storage, Layout::PerProject));
        }
        for project in legacy::dirs(&self.dir.join("project")) {
            wanted.push((project.join("storage"), Layout::PerProject));
        }
        let mut old = std::mem::take(&mut self.legacy);
        self.legacy = wanted
            .into_iter()
            .map(|(root, layout)| {
                match old
                    .iter()
                    .position(|t| t.root() == root && t.layout() == layout)
                {
                    Some(i) => old.swap_remove(i),
                    None => Legacy::new(root, layout),
                }
            })
            .collect();
    }

    /// `opencode.db` (when present) first, then every `opencode-*.db` by name.
    fn db_paths(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let main = self.dir.join(MAIN_DB);
        if main.is_file() {
            out.push(main);
        }
        let mut others: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("opencode-") && n.ends_with(".db"))
                    && e.file_type().is_ok_and(|t| t.is_file())
            })
            .map(|e| e.path())
            .collect();
        others.sort();
        out.extend(others);
        out
    }

    /// Opens every database and lists every session, deduplicated by id (databases first), in
    /// no particular order. The JSON tree is listed only when every database was listed (else a
    /// session of an unreadable database could come back from the tree).
    ///
    /// Errors: the directory is gone, or no database could be opened and there is no tree.
    fn discover(&mut self) -> io::Result<(Vec<Db>, Vec<Head>)> {
        if !self.dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "opencode data directory not found",
            ));
        }
        let mut dbs = Vec::new();
        let mut heads = Vec::new();
        let mut seen = HashSet::new();
        let mut db_failed = None;
        for path in self.db_paths() {
            let listed = Db::open(path.clone(), &mut self.stats).and_then(|db| {
                let list = db
                    .sessions(dbs.len(), &mut self.stats)
                    .map_err(io::Error::other)?;
                Ok((db, list))
            });
            match listed {
                Ok((db, list)) => {
                    for head in list {
                        if seen.insert(head.id.clone()) {
                            heads.push(head);
                        } else {
                            count_skip(&mut self.stats, "session:duplicate");
                        }
                    }
                    dbs.push(db);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error_kind = ?e.kind(),
                        "opencode database unreadable");
                    count_skip(&mut self.stats, "db:unreadable");
                    db_failed = Some(e);
                }
            }
        }
        self.refresh_trees();
        if let Some(e) = db_failed {
            if dbs.is_empty() && !self.legacy.iter().any(|t| t.root().is_dir()) {
                return Err(e);
            }
            count_skip(&mut self.stats, "storage:deferred");
            return Ok((dbs, heads));
        }
        for (i, tree) in self.legacy.iter_mut().enumerate() {
            for mut head in tree.sessions(i, &mut self.stats) {
                if !seen.insert(head.id.clone()) {
                    // In a database or an earlier tree (which win), or a second file with the
                    // same id.
                    count_skip(&mut self.stats, "session:duplicate");
                    continue;
                }
                if let Origin::Json(_, file) = &head.origin {
                    head.own = tree.token(file, &head.id);
                }
                heads.push(head);
            }
        }
        Ok((dbs, heads))
    }

    /// The rows of `head`, from its database or its files.
    fn rows(&mut self, dbs: &[Db], head: &Head) -> rusqlite::Result<Rows> {
        match &head.origin {
            Origin::Db(i) => match dbs.get(*i) {
                Some(db) => db.rows(&head.id, &mut self.stats),
                None => Ok(Rows::default()),
            },
            Origin::Json(tree, _) => Ok(self
                .legacy
                .get(*tree)
                .map(|t| t.rows(&head.id, &mut self.stats))
                .unwrap_or_default()),
        }
    }

    /// The links `head`'s task parts give its children, reading only what may be a task part.
    fn links_of(&mut self, dbs: &[Db], head: &Head) -> Option<LinkMap> {
        match &head.origin {
            Origin::Db(i) => {
                let parts = dbs.get(*i)?.task_parts(&head.id, &mut self.stats).ok()?;
                Some(item::links_of_rows(&parts))
            }
            Origin::Json(tree, _) => {
                let rows = self.legacy.get(*tree)?.rows(&head.id, &mut self.stats);
                let parts = rows
                    .messages
                    .iter()
                    .flat_map(|m| m.parts.iter())
                    .chain(rows.orphans.iter());
                Some(item::links_of_rows(parts))
            }
        }
    }
}

/// A session as listed, before its rows are read.
#[derive(Debug, Clone)]
struct Head {
    id: String,
    parent: Option<String>,
    created: Option<i64>,
    updated: Option<i64>,
    archived: Option<i64>,
    title: Option<String>,
    directory: Option<String>,
    project_id: Option<String>,
    version: Option<String>,
    slug: Option<String>,
    origin: Origin,
    /// The change token of the session's own rows (see the module docs).
    own: String,
}

impl Head {
    /// The header values that make the item, as one string (for change tokens).
    fn values(&self) -> String {
        let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            self.id.clone(),
            text(&self.parent),
            num(self.created),
            num(self.updated),
            num(self.archived),
            text(&self.title),
            text(&self.directory),
            text(&self.project_id),
            text(&self.version),
            text(&self.slug),
        ]
        .join("\u{1f}")
    }
}

/// Where a session's rows are.
#[derive(Debug, Clone)]
enum Origin {
    /// The database at this index of the poll's databases.
    Db(usize),
    /// A legacy session file, in the tree at this index of the store's trees.
    Json(usize, PathBuf),
}

/// The stored rows of one session, values as stored.
#[derive(Debug, Default)]
struct Rows {
    messages: Vec<MessageRow>,
    /// Parts of the session whose message is not among its messages.
    orphans: Vec<PartRow>,
}

#[derive(Debug)]
struct MessageRow {
    id: String,
    /// The row's creation time column (a legacy file's `time.created`): the message order.
    created: Option<i64>,
    data: Vec<u8>,
    parts: Vec<PartRow>,
}

#[derive(Debug)]
struct PartRow {
    id: String,
    data: Vec<u8>,
}

/// `path` with `suffix` appended to its file name.
impl SessionStore for OpenCodeStore {
    fn provider(&self) -> Provider {
        Provider::OpenCode
    }

    fn location(&self) -> &Path {
        &self.dir
    }

    /// Stats of each database and its `-wal`, of `project/` (a new per-project tree), and of
    /// each tree's directories down to its session and message directories (new sessions and
    /// new messages). Rewrites of existing legacy files in place do not move it: the watch on
    /// the trees and the per-session tokens of the next poll see those.
    fn stamp(&self) -> io::Result<String> {
        std::fs::metadata(&self.dir)?;
        let mut out = String::new();
        let mut add = |path: &Path| {
            out.push_str(&format!(
                "{}={};",
                path.display(),
                FileStamp::token_of(path)
            ));
        };
        for db in self.db_paths() {
            add(&db);
            add(&with_suffix(&db, "-wal"));
        }
        add(&self.dir.join("project"));
        for project in legacy::dirs(&self.dir.join("project")) {
            add(&project.join("storage/session/info"));
            add(&project.join("storage/session/message"));
            for d in legacy::dirs(&project.join("storage/session/message")) {
                add(&d);
            }
        }
        add(&self.dir.join("storage"));
        for tree in &self.legacy {
            for d in tree.stamp_dirs() {
                add(&d);
            }
        }
        Ok(hex32(&<sha2::Sha256 as sha2::Digest>::digest(
            out.as_bytes(),
        )))
    }

    fn poll(
        &mut self,
        cursors: &HashMap<String, StoreCursor>,
        full: bool,
        sink: UpdateSink<'_>,
    ) -> io::Result<StorePoll> {
        let mut counts = StorePoll::default();
        let (dbs, heads) = self.discover()?;
        let index: HashMap<&str, usize> = heads
            .iter()
            .enumerate()
            .map(|(i, h)| (h.id.as_str(), i))
            .collect();
        let parents: HashSet<&str> = heads.iter().filter_map(|h| h.parent.as_deref()).collect();
        let mut known: HashMap<String, Known> = HashMap::new();
        for i in parents_first(&heads) {
            let head = &heads[i];
            let prev = if full {
                None
            } else {
                cursors.get(&head.id).and_then(|c| Token::parse(&c.token))
            };
            let parent = head.parent.as_deref().and_then(|p| index.get(p)).copied();
            let parent_now = match parent {
                None => Some("-".to_owned()),
                Some(p) => known.get(&heads[p].id).map(Known::hash),
            };
            let changed = prev.as_ref().is_none_or(|t| {
                t.own != head.own || parent_now.as_ref().is_some_and(|p| *p != t.parent)
            });
            if !changed {
                counts.unchanged += 1;
                if let Some(t) = prev.filter(|_| parents.contains(head.id.as_str())) {
                    known.insert(head.id.clone(), Known::Hash(t.links));
                }
                continue;
            }
            let rows = match self.rows(&dbs, head) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(session_id = %head.id, error_code = ?e.sqlite_error_code(),
                        "opencode session unreadable");
                    counts.failed += 1;
                    if let Some(t) = prev.filter(|_| parents.contains(head.id.as_str())) {
                        known.insert(head.id.clone(), Known::Hash(t.links));
                    }
                    continue;
                }
            };
            let fetched;
            let parent_links: Option<&LinkMap> = match parent {
                None => None,
                Some(p) => match known.get(&heads[p].id) {
                    Some(Known::Read(map)) => Some(map),
                    _ => {
                        fetched = self.links_of(&dbs, &heads[p]);
                        fetched.as_ref()
                    }
                },
            };
            let parent_hash = match (parent, parent_links) {
                (None, _) => "-".to_owned(),
                (Some(_), Some(map)) => links_hash(map),
                (Some(_), None) => "?".to_owned(),
            };
            let link = parent_links.and_then(|m| m.get(&head.id));
            let built = item::build(head, &rows, link, &mut self.stats);
            drop(rows);
            let token = Token {
                own: head.own.clone(),
                links: links_hash(&built.links),
                parent: parent_hash,
            };
            if parents.contains(head.id.as_str()) {
                known.insert(head.id.clone(), Known::Read(built.links));
            }
            if built.item.turns.is_empty() {
                count_skip(&mut self.stats, "session:no_turns");
                continue;
            }
            let fingerprint = built.item.source_session_fingerprint.clone();
            sink(SessionUpdate {
                session_id: head.id.clone(),
                items: vec![built.item],
                cursor: StoreCursor {
                    v: STORE_CURSOR_VERSION,
                    token: token.value(),
                    fingerprint,
                },
            })?;
            counts.emitted += 1;
        }
        Ok(counts)
    }

    fn stats(&self) -> &ParseStats {
        &self.stats
    }

    /// Each database (`opencode.db` even before it exists) and its `-wal`, `storage/`,
    /// `project/` and each per-project tree.
    fn watch_paths(&self) -> Vec<PathBuf> {
        let mut dbs = self.db_paths();
        if dbs.is_empty() {
            dbs.push(self.dir.join(MAIN_DB));
        }
        let mut out = Vec::new();
        for db in dbs {
            out.push(with_suffix(&db, "-wal"));
            out.push(db);
        }
        out.push(self.dir.join("storage"));
        out.push(self.dir.join("project"));
        out.extend(
            self.legacy
                .iter()
                .filter(|t| t.layout() == Layout::PerProject)
                .map(|t| t.root().to_path_buf()),
        );
        out.dedup();
        out
    }
}
