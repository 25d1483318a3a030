//! Which workspace a global session belongs to. The global database does not say; each
//! workspace database lists its composers in `ItemTable` `composer.composerData`
//! (`allComposers[].composerId`, headers only in versions that keep the chats globally), and
//! its `workspace.json` names its folder. A composer listed by several workspaces belongs to
//! the first (by directory name).
//!
//! Only that one chat key of each workspace database is read, and only when the file's stamp
//! (size, modification time, inode, and its `-wal`'s) moved since the last read.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;

use super::db::{self, LEGACY_COMPOSER_KEY};
use crate::aix::sources::lenient;
use crate::aix::sources::store::{FileStamp, open_readonly, with_suffix};

/// The workspaces beside a global database, with what their composer lists held when last
/// read.
#[derive(Debug, Default)]
pub(super) struct WorkspaceFolders {
    /// Database and folder, in directory order.
    workspaces: Vec<(PathBuf, String)>,
    /// By database: its stamp when read and the composer ids it listed.
    read: HashMap<PathBuf, (String, HashSet<String>)>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct List<'a> {
    #[serde(borrow)]
    all_composers: lenient::List<Entry<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Entry<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    composer_id: Option<std::borrow::Cow<'a, str>>,
}

impl WorkspaceFolders {
    pub fn new(workspaces: Vec<(PathBuf, String)>) -> Self {
        Self {
            workspaces,
            read: HashMap::new(),
        }
    }

    /// Composer id -> folder, from every workspace's list (re-read where its stamp moved; an
    /// unreadable one lists nothing, logged at debug).
    pub fn by_composer(&mut self) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = HashMap::new();
        for (db, folder) in &self.workspaces {
            let stamp = format!(
                "{}|{}",
                FileStamp::token_of(db),
                FileStamp::token_of(&with_suffix(db, "-wal"))
            );
            let fresh = self.read.get(db).is_some_and(|(s, _)| *s == stamp);
            if !fresh {
                let ids = composer_ids(db).unwrap_or_else(|e| {
                    tracing::debug!(path = %db.display(), error_kind = ?e.kind(), "cursor workspace list not readable");
                    HashSet::new()
                });
                self.read.insert(db.clone(), (stamp, ids));
            }
            for id in self.read.get(db).map(|(_, ids)| ids).into_iter().flatten() {
                out.entry(id.clone()).or_insert_with(|| folder.clone());
            }
        }
        out
    }
}

/// The composer ids a workspace database lists.
fn composer_ids(path: &std::path::Path) -> std::io::Result<HashSet<String>> {
    let ro = open_readonly(path)?;
    let (_, has_items) = db::tables(&ro.conn).map_err(std::io::Error::other)?;
    if !has_items {
        return Ok(HashSet::new());
    }
    let Some(bytes) =
        db::legacy_value(&ro.conn, LEGACY_COMPOSER_KEY).map_err(std::io::Error::other)?
    else {
        return Ok(HashSet::new());
    };
    let list: List<'_> = serde_json::from_slice::<lenient::Obj<List<'_>>>(&bytes)
        .ok()
        .and_then(|o| o.0)
        .unwrap_or_default();
    Ok(list
        .all_composers
        .0
        .into_iter()
        .filter_map(|e| e.composer_id.map(|c| c.into_owned()))
        .filter(|c| !c.trim().is_empty())
        .collect())
}
