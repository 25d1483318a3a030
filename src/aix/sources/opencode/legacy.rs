//! The legacy JSON trees, read whole file by file; one that cannot be read or parsed is
//! skipped and counted. Message and part ids are the file names (OpenCode names each file
//! after the id it holds). Two layouts ([`Layout`]):
//! - `storage/` (OpenCode 0.6 to 1.1, left in place by the migration to SQLite in 1.2):
//!   `session/<projectID>/<sessionID>.json`, `message/<sessionID>/<msgID>.json`,
//!   `part/<msgID>/<partID>.json`;
//! - `project/<name>/storage/` (0.5.x and before, one tree per project, left in place by later
//!   versions): `session/info/<sessionID>.json`, `session/message/<sessionID>/<msgID>.json`,
//!   `session/part/<sessionID>/<msgID>/<partID>.json`.
//!
//! Session files are parsed again only when their stats change (a cache keyed by path). A
//! session's change token is the stats (size, mtime, inode) of its session file, its message
//! directory and files, and each message's part directory and files: no file content is read
//! to decide that nothing changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::super::store::FileStamp;
use super::record::{SessionData, Times};
use super::{Head, MessageRow, Origin, PartRow, Rows};
use crate::aix::sources::ParseStats;
use crate::aix::sources::common::hex32;
use crate::aix::sources::lenient::Obj;

/// Where a tree keeps sessions, messages and parts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// `storage/`: `session/<projectID>/`, `message/<sessionID>/`, `part/<msgID>/`.
    Flat,
    /// `project/<name>/storage/` (0.5.x): `session/{info,message,part}/`.
    PerProject,
}

/// Directory names under a flat tree's `session/` that are a per-project tree's, never a
/// project id (a commit hash or `global`).
const PER_PROJECT_DIRS: [&str; 3] = ["info", "message", "part"];

/// One JSON tree of a data directory.
pub(super) struct Legacy {
    root: PathBuf,
    layout: Layout,
    /// Parsed session files by path, valid while the file's stamp is unchanged.
    cache: HashMap<PathBuf, (FileStamp, Option<Head>)>,
}

/// Only `time.created` of a message file (to order messages).
#[derive(Deserialize, Default)]
#[serde(default)]
struct MessageTime {
    time: Obj<Times>,
}

impl Legacy {
    pub fn new(root: PathBuf, layout: Layout) -> Self {
        Self {
            root,
            layout,
            cache: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The session files, by path order.
    fn session_files(&self) -> Vec<(String, PathBuf, std::fs::Metadata)> {
        let session = self.root.join("session");
        match self.layout {
            Layout::Flat => dirs(&session)
                .into_iter()
                .filter(|d| {
                    !d.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| PER_PROJECT_DIRS.contains(&n))
                })
                .flat_map(|d| json_files(&d))
                .collect(),
            Layout::PerProject => json_files(&session.join("info")),
        }
    }

    /// The directory of session `sid`'s message files.
    fn message_dir(&self, sid: &str) -> PathBuf {
        match self.layout {
            Layout::Flat => self.root.join("message").join(sid),
            Layout::PerProject => self.root.join("session/message").join(sid),
        }
    }

    /// The directory of message `mid`'s part files (of session `sid`).
    fn part_dir(&self, sid: &str, mid: &str) -> PathBuf {
        match self.layout {
            Layout::Flat => self.root.join("part").join(mid),
            Layout::PerProject => self.root.join("session/part").join(sid).join(mid),
        }
    }

    /// The directories whose stats move when a session or a message is added: the store's
    /// stamp follows them (rewrites in place are seen by the per-session tokens).
    pub fn stamp_dirs(&self) -> Vec<PathBuf> {
        let mut out = vec![self.root.clone()];
        let (sessions, messages) = match self.layout {
            Layout::Flat => (self.root.join("session"), self.root.join("message")),
            Layout::PerProject => (
                self.root.join("session/info"),
                self.root.join("session/message"),
            ),
        };
        out.push(sessions.clone());
        out.push(messages.clone());
        if self.layout == Layout::Flat {
            out.push(self.root.join("part"));
            out.extend(dirs(&sessions));
        }
        out.extend(dirs(&messages));
        out
    }

    /// Every readable session file, by path order, as a header without its change token
    /// (`own` is empty: see [`Self::token`]) and with `tree` as its origin's tree. Malformed
    /// files are counted once per version.
    pub fn sessions(&mut self, tree: usize, stats: &mut ParseStats) -> Vec<Head> {
        let mut seen = HashMap::new();
        let mut out = Vec::new();
        for (stem, path, meta) in self.session_files() {
            let stamp = FileStamp::of(&meta);
            let head = match self.cache.get(&path) {
                Some((s, head)) if *s == stamp => head.clone(),
                _ => parse_session(&path, &stem, stats),
            };
            seen.insert(path.clone(), (stamp, head.clone()));
            out.extend(head.map(|mut h| {
                h.origin = Origin::Json(tree, path.clone());
                h
            }));
        }
        self.cache = seen;
        out
    }

    /// The change token of session `id` whose file is `file`: stats of every file and
    /// directory its item is made of.
    pub fn token(&self, file: &Path, id: &str) -> String {
        let mut h = Sha256::new();
        let mut add = |name: &str, meta: Option<&std::fs::Metadata>| {
            let stamp = meta.map_or("-".to_owned(), |m| FileStamp::of(m).token());
            for s in [name, stamp.as_str()] {
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        };
        add("s", std::fs::metadata(file).ok().as_ref());
        let dir = self.message_dir(id);
        add("md", std::fs::metadata(&dir).ok().as_ref());
        for (stem, _, meta) in json_files(&dir) {
            add(&stem, Some(&meta));
            let parts = self.part_dir(id, &stem);
            add("pd", std::fs::metadata(&parts).ok().as_ref());
            for (part, _, meta) in json_files(&parts) {
                add(&part, Some(&meta));
            }
        }
        hex32(&h.finalize())
    }

    /// The message and part files of session `id`, read whole.
    pub fn rows(&self, id: &str, stats: &mut ParseStats) -> Rows {
        let mut out = Rows::default();
        for (stem, path, _) in json_files(&self.message_dir(id)) {
            let Ok(data) = std::fs::read(&path) else {
                stats.malformed_lines += 1;
                continue;
            };
            let created = serde_json::from_slice::<MessageTime>(&data)
                .ok()
                .and_then(|m| m.time.0?.created);
            let mut parts = Vec::new();
            for (part, path, _) in json_files(&self.part_dir(id, &stem)) {
                match std::fs::read(&path) {
                    Ok(data) => parts.push(PartRow { id: part, data }),
                    Err(_) => stats.malformed_lines += 1,
                }
            }
            out.messages.push(MessageRow {
                id: stem,
                created,
                data,
                parts,
            });
        }
        out
    }
}

/// Reads one session file; `None` (counted) when it cannot be read, is not a JSON object, or
/// names an id that cannot be a file name.
fn parse_session(path: &Path, stem: &str, stats: &mut ParseStats) -> Option<Head> {
    stats.lines += 1;
    let data: SessionData = match std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(d) => d,
        None => {
            stats.malformed_lines += 1;
            return None;
        }
    };
    let id = data.id.unwrap_or_else(|| stem.to_owned());
    if id.contains(['/', '\\']) || id == "." || id == ".." {
        stats.malformed_lines += 1;
        return None;
    }
    let times = data.time.0.as_ref();
    Some(Head {
        id,
        parent: data.parent_id,
        created: times.and_then(|t| t.created),
        updated: times.and_then(|t| t.updated),
        archived: times.and_then(|t| t.archived),
        title: data.title,
        directory: data.directory,
        project_id: data.project_id,
        version: data.version,
        slug: data.slug,
        origin: Origin::Json(0, path.to_path_buf()),
        own: String::new(),
    })
}

/// Sub-directories of `dir`, sorted; none when it cannot be read.
pub(super) fn dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// `(stem, path, metadata)` of the `*.json` files in `dir`, sorted by name; none when it
/// cannot be read.
fn json_files(dir: &Path) -> Vec<(String, PathBuf, std::fs::Metadata)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf, std::fs::Metadata)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(".json")?.to_owned();
            let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
            (!stem.is_empty()).then(|| (stem, e.path(), meta))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
