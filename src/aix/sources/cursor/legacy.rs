//! Legacy chat data in `ItemTable` (Cursor before the `cursorDiskKV` composer keys):
//! `workbench.panel.aichat.view.aichat.chatdata` (`{tabs: [{tabId, chatTitle, lastSendTime,
//! bubbles: [{type: "user"|"ai", id, text|rawText, …}]}]}`), one session per tab keyed by its
//! `tabId`; and `composer.composerData` (`{allComposers: [composer, …]}`), one session per
//! composer holding an inline conversation, keyed by its `composerId` (a list without
//! `allComposers`, which versions that keep the composers globally write, holds none). An entry whose id is also
//! a `composerData:<id>` key is that session's stale copy and is skipped (`legacy_shadowed`), as
//! is an entry that only points at such a key (`legacy_composer_header`).
//!
//! A tab has no creation time of its own: `createdAtMs` is its first bubble's time, else its
//! `lastSendTime` (which is also `updatedAtMs`). `metadata` = `{legacy: "chatdata" |
//! "composerData", title}`.
//!
//! Both values are read whole when either row changed (or a session's cursor is not the one
//! this process last saw); a session's token is its fingerprint (`legacy:<sha256>`), so a tab
//! that did not change is not emitted again when its neighbour did.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::build::{Head, build_item};
use super::conversation::{Listed, Parsed, order};
use super::db::{self, LEGACY_CHAT_KEY, LEGACY_COMPOSER_KEY};
use super::record::{Bubble, Composer, Role, time};
use super::session::{Age, MAPPING_VERSION, listed_of, with_folder};
use crate::aix::sources::ParseStats;
use crate::aix::sources::common::count_skip;
use crate::aix::sources::lenient;
use crate::aix::sources::store::{
    STORE_CURSOR_VERSION, SessionUpdate, StoreCursor, StorePoll, fingerprint_parts,
};
use crate::protocol::ImportSessionItem;

/// What the last read of the legacy keys found, so that an unchanged `ItemTable` is not read
/// again.
#[derive(Debug, Default)]
pub(super) struct LegacyMemo {
    stamps: [db::Stamp; 2],
    /// Every legacy session: id, token, and whether it makes an item.
    sessions: Vec<(String, String, bool)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Tab<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    tab_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    chat_title: Option<std::borrow::Cow<'a, str>>,
    #[serde(deserialize_with = "time")]
    last_send_time: Option<i64>,
}

/// One legacy session, built.
struct Built {
    id: String,
    age: Age,
    item: Option<ImportSessionItem>,
    token: String,
}

/// Where the legacy entries of a database stand.
pub(super) struct Scope<'a> {
    /// Ids whose session is read elsewhere (the `composerData:` sessions of this database and
    /// of the global one): their legacy entries are skipped.
    pub shadow: &'a HashSet<String>,
    /// The workspace's folder: every item's `workspacePath`, part of its fingerprint.
    pub folder: Option<&'a str>,
}

/// Reads the legacy sessions whose token differs from their cursor's (all when `full`), as
/// `scope` says.
///
/// Errors: a query failed.
pub(super) fn poll_legacy(
    conn: &Connection,
    cursors: &HashMap<String, StoreCursor>,
    full: bool,
    scope: Scope<'_>,
    memo: &mut Option<LegacyMemo>,
    stats: &mut ParseStats,
    counts: &mut StorePoll,
) -> rusqlite::Result<Vec<(Age, SessionUpdate)>> {
    let stamps = [
        db::legacy_stamp(conn, LEGACY_CHAT_KEY)?,
        db::legacy_stamp(conn, LEGACY_COMPOSER_KEY)?,
    ];
    if let Some(m) = memo.as_ref()
        && !full
        && m.stamps == stamps
        && m.sessions
            .iter()
            .all(|(id, token, emits)| !emits || cursors.get(id).is_some_and(|c| &c.token == token))
    {
        counts.unchanged += m.sessions.iter().filter(|s| s.2).count() as u64;
        return Ok(Vec::new());
    }
    let Scope { shadow, folder } = scope;
    let mut built = Vec::new();
    if let Some(bytes) = db::legacy_value(conn, LEGACY_CHAT_KEY)? {
        stats.lines += 1;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => chat_tabs(&v, shadow, folder, stats, &mut built),
            Err(_) => stats.malformed_lines += 1,
        }
    }
    if let Some(bytes) = db::legacy_value(conn, LEGACY_COMPOSER_KEY)? {
        stats.lines += 1;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => composers(&v, shadow, folder, stats, &mut built),
            Err(_) => stats.malformed_lines += 1,
        }
    }
    let mut out = Vec::new();
    let mut sessions = Vec::with_capacity(built.len());
    for b in built {
        sessions.push((b.id.clone(), b.token.clone(), b.item.is_some()));
        let Some(mut item) = b.item else {
            count_skip(stats, "empty_session");
            // Present but no session under this mapping: the run retracts it if it imported it.
            if full || cursors.get(&b.id).is_none_or(|c| c.token != b.token) {
                counts.empty.push((
                    b.id,
                    StoreCursor {
                        v: STORE_CURSOR_VERSION,
                        token: b.token,
                        fingerprint: String::new(),
                    },
                ));
            }
            continue;
        };
        item.session.workspace_path = folder.map(str::to_owned);
        if !full && cursors.get(&b.id).is_some_and(|c| c.token == b.token) {
            counts.unchanged += 1;
            continue;
        }
        let cursor = StoreCursor {
            v: STORE_CURSOR_VERSION,
            token: b.token,
            fingerprint: item.source_session_fingerprint.clone(),
        };
        out.push((
            b.age,
            SessionUpdate {
                session_id: b.id,
                items: vec![item],
                cursor,
            },
        ));
    }
    *memo = Some(LegacyMemo { stamps, sessions });
    Ok(out)
}

fn fingerprint(key: &str, value: &Value, folder: Option<&str>) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    fingerprint_parts(with_folder(
        vec![MAPPING_VERSION, key.as_bytes(), bytes.as_slice()],
        folder,
    ))
}

fn finish(head: Head, listed: Vec<Listed<'_>>, fp: String, stats: &mut ParseStats) -> Built {
    let entries = order(Some(listed), Parsed::default(), stats);
    let item = build_item(&head, &entries, fp.clone(), stats);
    let created = item.as_ref().and_then(|i| i.session.created_at_ms);
    Built {
        age: (created, head.session_id.clone()),
        id: head.session_id,
        item,
        token: format!("legacy:{fp}"),
    }
}

fn chat_tabs(
    v: &Value,
    shadow: &HashSet<String>,
    folder: Option<&str>,
    stats: &mut ParseStats,
    out: &mut Vec<Built>,
) {
    let Some(tabs) = v.get("tabs").and_then(Value::as_array) else {
        count_skip(stats, "legacy_chatdata_shape");
        return;
    };
    for tab in tabs {
        let Ok(t) = Tab::deserialize(tab) else {
            count_skip(stats, "legacy_tab_shape");
            continue;
        };
        let Some(id) = t.tab_id.as_deref() else {
            count_skip(stats, "legacy_tab_without_id");
            continue;
        };
        if shadow.contains(id) {
            count_skip(stats, "legacy_shadowed");
            continue;
        }
        let mut listed = Vec::new();
        let bubbles = tab.get("bubbles").and_then(Value::as_array);
        for (n, b) in bubbles.into_iter().flatten().enumerate() {
            match Bubble::deserialize(b) {
                Ok(bubble) => listed.push(Listed {
                    id: bubble
                        .bubble_id
                        .as_deref()
                        .or(bubble.id.as_deref())
                        .map_or_else(|| format!("idx-{n}"), str::to_owned),
                    bubble: Some(bubble),
                }),
                Err(_) => count_skip(stats, "bubble_not_object"),
            }
        }
        // The tab's input box: Cursor keeps the message being typed as the last user bubble,
        // without `text` nor `rawText` until it is sent (its `initText` holds a draft typed
        // and never sent). It is not a prompt (a tab never used holds only it). A sent
        // follow-up also has only `initText`, but it is never last: the input box follows it.
        if listed
            .last()
            .and_then(|l| l.bubble.as_ref())
            .is_some_and(|b| b.role() == Some(Role::User) && b.without_text())
        {
            listed.pop();
            count_skip(stats, "legacy_input_box");
        }
        let mut metadata = Map::new();
        metadata.insert("legacy".into(), Value::String("chatdata".into()));
        if let Some(title) = t.chat_title.as_deref() {
            metadata.insert("title".into(), Value::String(title.to_owned()));
        }
        let first = listed
            .iter()
            .filter_map(|l| l.bubble.as_ref()?.created_at)
            .min();
        let head = Head {
            session_id: id.to_owned(),
            created: first.or(t.last_send_time),
            updated: t.last_send_time,
            model: None,
            metadata,
            lineage: None,
        };
        out.push(finish(
            head,
            listed,
            fingerprint(LEGACY_CHAT_KEY, tab, folder),
            stats,
        ));
    }
}

fn composers(
    v: &Value,
    shadow: &HashSet<String>,
    folder: Option<&str>,
    stats: &mut ParseStats,
    out: &mut Vec<Built>,
) {
    let all = match v.get("allComposers") {
        Some(Value::Array(all)) => all,
        // Only the selection (`selectedComposerIds`, `hasMigratedComposerData`, …): the
        // composers live in the global database. Nothing to read, nothing skipped.
        None | Some(Value::Null) if v.is_object() => return,
        _ => {
            count_skip(stats, "legacy_composer_shape");
            return;
        }
    };
    for entry in all {
        let Ok(mut c) = Composer::deserialize(entry) else {
            count_skip(stats, "legacy_composer_shape");
            continue;
        };
        let Some(id) = c.composer_id.as_deref().map(str::to_owned) else {
            count_skip(stats, "legacy_composer_without_id");
            continue;
        };
        if shadow.contains(&id) {
            count_skip(stats, "legacy_shadowed");
            continue;
        }
        // Only an inline conversation makes a session here; headers point at bubble keys.
        if c.full_conversation_headers_only.is_some() || c.conversation.0.is_empty() {
            count_skip(stats, "legacy_composer_header");
            continue;
        }
        let mut metadata = Map::new();
        metadata.insert("legacy".into(), Value::String("composerData".into()));
        if let Some(n) = c.name.as_deref() {
            metadata.insert("title".into(), Value::String(n.to_owned()));
        }
        if let Some(u) = c.unified_mode.as_deref() {
            metadata.insert("unifiedMode".into(), Value::String(u.to_owned()));
        }
        let head = Head {
            session_id: id,
            created: c.created_at,
            updated: c.last_updated_at,
            model: c.model(),
            metadata,
            lineage: None,
        };
        let listed = listed_of(Some(&mut c), stats).unwrap_or_default();
        out.push(finish(
            head,
            listed,
            fingerprint(LEGACY_COMPOSER_KEY, entry, folder),
            stats,
        ));
    }
}
