//! Reading one session tree: a composer, its bubbles, and the subagent sessions it owns (their
//! own subagents included), each as a complete item.

use std::collections::{HashMap, HashSet, VecDeque};

use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::build::{Entry, Head, Spawn, build_item};
use super::conversation::{Keyed, Listed, order, parse_rows};
use super::db::{self, BUBBLE_PREFIX, COMPOSER_PREFIX, Row};
use super::record::{Bubble, Composer, parse_object};
use super::token::{ChangeToken, Sub};
use crate::aix::sources::ParseStats;
use crate::aix::sources::common::count_skip;
use crate::aix::sources::store::fingerprint_parts;
use crate::protocol::ImportSessionItem;

/// Hashed first into every fingerprint: bump it when the mapping changes, so that every
/// session is imported again with the new mapping.
pub(super) const MAPPING_VERSION: &[u8] = b"cursor-mapping-1";

/// Subagents nested deeper than this below a session are not followed (counted).
const MAX_DEPTH: usize = 8;

/// How old a top-level session is: `(createdAt, id)`. Sessions are emitted oldest first, and a
/// subagent named by two sessions belongs to the older one.
pub(super) type Age = (Option<i64>, String);

/// Which session owns each subagent seen so far in a poll.
#[derive(Debug, Default)]
pub(super) struct Claims {
    owner: HashMap<String, Age>,
}

impl Claims {
    /// Records that the session of `age` names `child`; true when it owns it (no older session
    /// named it first).
    pub fn claim(&mut self, child: &str, age: &Age) -> bool {
        match self.owner.get(child) {
            Some(owner) if owner < age => false,
            _ => {
                self.owner.insert(child.to_owned(), age.clone());
                true
            }
        }
    }
}

/// A session read whole.
pub(super) struct Tree {
    /// The session's item then its subagents' (a parent before its children); empty when the
    /// session has no message (nothing is sent for it).
    pub items: Vec<ImportSessionItem>,
    pub token: ChangeToken,
    /// Fingerprint of the session's own item.
    pub fingerprint: String,
}

/// `(count, max row id)` of rows, as `db::range_stats` measures them.
fn range_of(rows: &[Row]) -> (u64, i64) {
    (
        rows.len() as u64,
        rows.iter().map(|r| r.rowid).max().unwrap_or(0),
    )
}

/// `head` followed by the workspace folder when there is one (a session without one keeps the
/// fingerprint it always had).
pub(super) fn with_folder<'a>(mut head: Vec<&'a [u8]>, folder: Option<&'a str>) -> Vec<&'a [u8]> {
    if let Some(f) = folder {
        head.extend([b"workspace".as_slice(), f.as_bytes()]);
    }
    head
}

fn fingerprint_of(head: &[&[u8]], rows: &[Row]) -> String {
    let tail = rows
        .iter()
        .flat_map(|r| [r.key.as_bytes(), r.value.as_deref().unwrap_or_default()]);
    fingerprint_parts(head.iter().copied().chain(tail))
}

/// Parses a composer value; a NULL (deleted, `deleted_row`), malformed or non-object one is
/// counted and read as absent (the session is then ordered by its bubbles' times).
fn parse_composer<'a>(row: Option<&'a Row>, stats: &mut ParseStats) -> Option<Composer<'a>> {
    let row = row?;
    stats.lines += 1;
    if row.deleted {
        count_skip(stats, "deleted_row");
        return None;
    }
    let Some(value) = row.value.as_deref() else {
        count_skip(stats, "composer_not_text");
        return None;
    };
    match parse_object::<Composer<'_>>(value) {
        Ok(Some(c)) => Some(c),
        Ok(None) => {
            count_skip(stats, "composer_not_object");
            None
        }
        Err(_) => {
            stats.malformed_lines += 1;
            None
        }
    }
}

/// The listed order of a composer (see `conversation`): its headers, with inline bodies where
/// the composer holds them, else its inline conversation; `None` when it has neither.
pub(super) fn listed_of<'a>(
    composer: Option<&mut Composer<'a>>,
    stats: &mut ParseStats,
) -> Option<Vec<Listed<'a>>> {
    let c = composer?;
    let inline = std::mem::take(&mut c.conversation.0);
    let mut bodies: HashMap<String, Bubble<'a>> = std::mem::take(&mut c.conversation_map.0)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_owned(), v.0?)))
        .collect();
    if let Some(headers) = c.full_conversation_headers_only.take() {
        for b in inline {
            if let Some(id) = b.bubble_id.as_deref().map(str::to_owned) {
                bodies.entry(id).or_insert(b);
            }
        }
        let mut out = Vec::with_capacity(headers.len());
        for h in headers {
            match h.bubble_id {
                Some(id) => out.push(Listed {
                    bubble: bodies.remove(id.as_ref()),
                    id: id.into_owned(),
                }),
                None => count_skip(stats, "header_without_id"),
            }
        }
        return Some(out);
    }
    if inline.is_empty() {
        return None;
    }
    Some(
        inline
            .into_iter()
            .enumerate()
            .map(|(n, b)| Listed {
                id: b
                    .bubble_id
                    .as_deref()
                    .map_or_else(|| format!("idx-{n}"), str::to_owned),
                bubble: Some(b),
            })
            .collect(),
    )
}

/// The spawns named by a session's bubbles: inline ones in listed order, then keyed ones in
/// key order; one per child id.
pub(super) fn spawns_of(
    parent: &str,
    listed: Option<&[Listed<'_>]>,
    keyed: &[Keyed<'_>],
) -> Vec<Spawn> {
    let inline = listed
        .unwrap_or_default()
        .iter()
        .filter_map(|l| Some((l.id.as_str(), l.bubble.as_ref()?)));
    let keyed = keyed.iter().map(|k| (k.id.as_str(), &k.bubble));
    let mut seen = HashSet::new();
    inline
        .chain(keyed)
        .filter_map(|(id, b)| Spawn::of(parent, id, b))
        .filter(|s| seen.insert(s.child_id.clone()))
        .collect()
}

/// The session's metadata: `title` (the composer's name) and `unifiedMode` where present.
fn metadata(composer: Option<&Composer<'_>>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(c) = composer {
        if let Some(n) = c.name.as_deref() {
            m.insert("title".into(), Value::String(n.to_owned()));
        }
        if let Some(u) = c.unified_mode.as_deref() {
            m.insert("unifiedMode".into(), Value::String(u.to_owned()));
        }
    }
    m
}

/// Reads the top-level session `id` and the subagents it owns (see [`Claims`]); `None` when
/// its composer row is gone. A subagent whose item has the fingerprint `previous` (the token
/// of the session's committed cursor) recorded for it is read but not sent again. `folder` is
/// the workspace of the session (every item's `workspacePath`, hashed into the fingerprints);
/// when there is none, the composer's own `workspaceIdentifier` names it.
///
/// Errors: a query failed (the caller counts the session failed and polls on).
pub(super) fn read_tree(
    conn: &Connection,
    id: &str,
    age: &Age,
    claims: &mut Claims,
    previous: Option<&ChangeToken>,
    folder: Option<&str>,
    stats: &mut ParseStats,
) -> rusqlite::Result<Option<Tree>> {
    let key = format!("{COMPOSER_PREFIX}{id}");
    let Some(crow) = db::row_of(conn, &key)? else {
        return Ok(None);
    };
    let prefix = format!("{BUBBLE_PREFIX}{id}:");
    let rows = db::rows(conn, &prefix)?;
    let value = crow.value.as_deref();
    let fingerprint = fingerprint_of(
        &with_folder(
            vec![MAPPING_VERSION, key.as_bytes(), value.unwrap_or_default()],
            folder,
        ),
        &rows,
    );
    let mut composer = parse_composer(Some(&crow), stats);
    let mut token = ChangeToken {
        c: (crow.rowid, crow.len),
        b: range_of(&rows),
        t: composer.as_ref().and_then(|c| c.created_at),
        k: Vec::new(),
        w: folder.map(str::to_owned),
    };
    let head = Head {
        session_id: id.to_owned(),
        created: composer.as_ref().and_then(|c| c.created_at),
        updated: composer.as_ref().and_then(|c| c.last_updated_at),
        model: composer.as_ref().and_then(Composer::model),
        metadata: metadata(composer.as_ref()),
        lineage: None,
    };
    // The workspace's folder; else the composer's own (Cursor 3.x lists its composers in no
    // workspace database).
    let own_folder = composer.as_ref().and_then(Composer::workspace_path);
    let folder = folder.or(own_folder.as_deref());
    let parsed = parse_rows(&rows, &prefix, stats);
    let listed = listed_of(composer.as_mut(), stats);
    let spawns = spawns_of(id, listed.as_deref(), &parsed.keyed);
    let entries = order(listed, parsed, stats);
    let Some(mut item) = build_item(&head, &entries, fingerprint.clone(), stats) else {
        // A deleted composer is counted once, as deleted.
        if !crow.deleted {
            count_skip(stats, "empty_session");
        }
        return Ok(Some(Tree {
            items: Vec::new(),
            token,
            fingerprint,
        }));
    };
    item.session.workspace_path = folder.map(str::to_owned);
    let mut items = vec![item];
    let mut visited = HashSet::from([id.to_owned()]);
    let mut queue: VecDeque<(Spawn, usize)> = spawns.into_iter().map(|s| (s, 1)).collect();
    while let Some((spawn, depth)) = queue.pop_front() {
        if !visited.insert(spawn.child_id.clone()) {
            continue;
        }
        if !claims.claim(&spawn.child_id, age) {
            count_skip(stats, "subagent_of_older_session");
            continue;
        }
        let child = read_child(conn, &spawn, folder, stats)?;
        let (cid, stamp, range) = child.rows;
        let fp = child
            .item
            .as_ref()
            .map(|i| Sub::fp(&i.source_session_fingerprint))
            .unwrap_or_default();
        let sent = previous.and_then(|p| p.child_fp(&cid)) == Some(fp.as_str());
        token.k.push(Sub(cid, stamp, range, fp));
        if !sent {
            items.extend(child.item);
        }
        if depth < MAX_DEPTH {
            queue.extend(child.spawns.into_iter().map(|s| (s, depth + 1)));
        } else if !child.spawns.is_empty() {
            count_skip(stats, "subagent_too_deep");
        }
    }
    Ok(Some(Tree {
        items,
        token,
        fingerprint,
    }))
}

struct Child {
    item: Option<ImportSessionItem>,
    /// Id, composer stamp and bubble keys, for the parent's token.
    rows: (String, db::Stamp, (u64, i64)),
    spawns: Vec<Spawn>,
}

/// Reads the subagent session a spawn names: `bubbleId:task-<id>:*` ordered by time (then row
/// id), with its header from `composerData:task-<id>` (rare), else from the header embedded in
/// the spawn, else from the spawn itself.
fn read_child(
    conn: &Connection,
    spawn: &Spawn,
    folder: Option<&str>,
    stats: &mut ParseStats,
) -> rusqlite::Result<Child> {
    let id = &spawn.child_id;
    let key = format!("{COMPOSER_PREFIX}{id}");
    let crow = db::row_of(conn, &key)?;
    let prefix = format!("{BUBBLE_PREFIX}{id}:");
    let rows = db::rows(conn, &prefix)?;
    let token_rows = (
        id.clone(),
        crow.as_ref().map_or((0, 0), |r| (r.rowid, r.len)),
        range_of(&rows),
    );
    let value = crow.as_ref().and_then(|r| r.value.as_deref());
    let composer = parse_composer(crow.as_ref(), stats);
    let parsed = parse_rows(&rows, &prefix, stats);
    let spawns = spawns_of(id, None, &parsed.keyed);
    let entries: Vec<Entry<'_>> = order(None, parsed, stats);
    let embedded = spawn.embedded.clone().unwrap_or_default();
    let first_time = entries.iter().filter_map(|e| e.bubble.created_at).min();
    let mut meta = metadata(composer.as_ref());
    if let (false, Some(n)) = (meta.contains_key("title"), embedded.name.as_deref()) {
        meta.insert("title".into(), Value::String(n.to_owned()));
    }
    let head = Head {
        session_id: id.clone(),
        created: composer
            .as_ref()
            .and_then(|c| c.created_at)
            .or(embedded.created)
            .or(first_time)
            .or(spawn.at),
        updated: composer
            .as_ref()
            .and_then(|c| c.last_updated_at)
            .or(embedded.updated),
        model: composer
            .as_ref()
            .and_then(Composer::model)
            .or(embedded.model.clone())
            .or(spawn.model.clone()),
        metadata: meta,
        lineage: Some(spawn.clone()),
    };
    // The item depends on the spawn (lineage, embedded header) as much as on its own rows.
    let head_json = json!({
        "parent": spawn.parent_id, "bubble": spawn.bubble_id, "toolCallId": spawn.tool_call_id,
        "description": spawn.description, "status": spawn.status, "model": spawn.model,
        "at": spawn.at, "embedded": [embedded.created, embedded.updated, embedded.model,
        embedded.name],
    });
    let head_bytes = serde_json::to_vec(&head_json).unwrap_or_default();
    let fingerprint = fingerprint_of(
        &with_folder(
            vec![
                MAPPING_VERSION,
                b"task",
                &head_bytes,
                key.as_bytes(),
                value.unwrap_or_default(),
            ],
            folder,
        ),
        &rows,
    );
    let mut item = build_item(&head, &entries, fingerprint, stats);
    if let Some(i) = item.as_mut() {
        i.session.workspace_path = folder.map(str::to_owned);
    }
    if item.is_none() {
        count_skip(stats, "empty_subagent");
    }
    Ok(Child {
        item,
        rows: token_rows,
        spawns,
    })
}
