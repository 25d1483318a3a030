//! Real Cursor `User` folders (`$NEX_REAL_SAMPLES_DIR/cursor/*/User`,
//! `$NEX_CORPUS_DIR/cursor/*/User`; skipped when neither is set): every chat the databases hold
//! is found, once, and each session's prompts, messages, tool calls and tokens equal an
//! independent count written here with plain `serde_json::Value` code (not the parser's).
//!
//! The independent count, per `User` folder (global database first, then each workspace's):
//! - a `composerData:<id>` of `cursorDiskKV` is a chat when its conversation holds a user or
//!   assistant bubble; its conversation is `fullConversationHeadersOnly` (bodies from the inline
//!   `conversation`/`conversationMap`, else `bubbleId:<id>:<bubble>`), else the inline
//!   `conversation`, else every bubble key by time; bubble keys the headers do not list (real
//!   composers keep a turn's tool calls that way) go after the last listed bubble stored
//!   before them (lower row id);
//! - `task-<call>` bubble keys make the subagent chat `task-<call>`;
//! - in `ItemTable`, each `composer.composerData` entry with an inline `conversation` and no
//!   headers, and each `workbench.panel.aichat.view.aichat.chatdata` tab, is a chat, unless its
//!   id is a composer key of its own or of the global database (the copy of record); a tab's
//!   last bubble is its input box, not a message, when it is a user bubble without `text` and
//!   `rawText` (whatever its `initText` holds);
//! - prompts = user bubbles (`type` 1 / `"user"`), messages = user and assistant bubbles
//!   (`2` / `"ai"`), tool calls = distinct ids of bubbles whose `toolFormerData` has a name,
//!   tokens = per turn (a user bubble and what follows it) the last assistant bubble whose
//!   `tokenCount` is not all zero, prompt characters = the characters of each user bubble's
//!   text: `text`, else `rawText`, else the text nodes of its `initText` editor state (a legacy
//!   chat tab's follow-up prompt; blocks on lines of their own).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use nex::aix::discover::cursor_dbs;
use nex::aix::sources::poll_all;
use nex::aix::stores::cursor_store;
use nex::protocol::ImportSessionItem;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    prompts: u64,
    prompt_chars: u64,
    messages: u64,
    tool_calls: u64,
    input_tokens: i64,
    output_tokens: i64,
}

/// Every `User` folder under the two directories' `cursor/`.
fn user_trees() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for var in ["NEX_REAL_SAMPLES_DIR", "NEX_CORPUS_DIR"] {
        let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) else {
            continue;
        };
        let Ok(rd) = std::fs::read_dir(PathBuf::from(dir).join("cursor")) else {
            continue;
        };
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("User")).collect();
        names.sort();
        out.extend(names.into_iter().filter(|u| u.is_dir()));
    }
    out
}

fn open(db: &Path) -> Connection {
    let uri = format!("file:{}?immutable=1", db.display());
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap()
}

fn has_table(c: &Connection, name: &str) -> bool {
    c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}

fn json_of(bytes: Option<Vec<u8>>) -> Value {
    bytes
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// `(key, value)` of every `cursorDiskKV` row whose key starts with `prefix`.
fn kv_rows(c: &Connection, prefix: &str) -> Vec<(String, Value, Option<i64>)> {
    let mut stmt = c
        .prepare("SELECT key, value, rowid FROM cursorDiskKV WHERE substr(key, 1, ?2) = ?1")
        .unwrap();
    stmt.query_map(rusqlite::params![prefix, prefix.len() as i64], |r| {
        let key: String = r.get(0)?;
        let value = match r.get_ref(1)? {
            rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                Some(b.to_vec())
            }
            _ => None,
        };
        Ok((key, json_of(value), r.get(2).ok()))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn item_value(c: &Connection, key: &str) -> Value {
    c.query_row("SELECT value FROM ItemTable WHERE key = ?1", [key], |r| {
        Ok(match r.get_ref(0)? {
            rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                Some(b.to_vec())
            }
            _ => None,
        })
    })
    .map(json_of)
    .unwrap_or(Value::Null)
}

fn role(b: &Value) -> Option<bool> {
    match &b["type"] {
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        Value::Number(n) if n.as_i64() == Some(2) => Some(false),
        Value::String(s) if s == "user" => Some(true),
        Value::String(s) if s == "ai" || s == "assistant" => Some(false),
        _ => None,
    }
}

/// The text of a user bubble, as the independent count reads it.
fn prompt_text(b: &Value) -> String {
    for k in ["text", "rawText"] {
        if let Some(t) = b[k].as_str().filter(|t| !t.is_empty()) {
            return t.to_owned();
        }
    }
    // `initText`: a JSON document `{"root": {"children": [block, ...]}}`; a block's text is
    // its descendants' `text` strings in document order, a `linebreak` node a newline.
    fn walk(n: &Value, out: &mut String) {
        if n["type"] == "linebreak" {
            out.push('\n');
        }
        if let Some(t) = n["text"].as_str() {
            out.push_str(t);
            return;
        }
        for c in n["children"].as_array().into_iter().flatten() {
            walk(c, out);
        }
    }
    let doc: Value = b["initText"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let mut blocks = Vec::new();
    for block in doc["root"]["children"].as_array().into_iter().flatten() {
        let mut t = String::new();
        walk(block, &mut t);
        blocks.push(t);
    }
    let text = blocks.join("\n");
    if text.trim().is_empty() {
        String::new()
    } else {
        text
    }
}

fn count_of(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// The counts of one conversation, bubbles `(id, body)` in order.
fn counts(bubbles: &[(String, Value)]) -> Counts {
    let mut c = Counts::default();
    let mut tools = HashSet::new();
    let mut turn_tokens: Option<(i64, i64)> = None;
    let close_turn = |c: &mut Counts, t: &mut Option<(i64, i64)>| {
        if let Some((i, o)) = t.take() {
            c.input_tokens += i;
            c.output_tokens += o;
        }
    };
    for (id, b) in bubbles {
        let Some(user) = role(b) else { continue };
        c.messages += 1;
        if user {
            c.prompts += 1;
            c.prompt_chars += prompt_text(b).chars().count() as u64;
            close_turn(&mut c, &mut turn_tokens);
        } else {
            let (i, o) = (
                count_of(&b["tokenCount"]["inputTokens"]),
                count_of(&b["tokenCount"]["outputTokens"]),
            );
            if i > 0 || o > 0 {
                turn_tokens = Some((i, o));
            }
        }
        if b["toolFormerData"]["name"].as_str().is_some() {
            let call = b["toolFormerData"]["toolCallId"]
                .as_str()
                .unwrap_or(id.as_str());
            tools.insert(call.to_owned());
        }
    }
    close_turn(&mut c, &mut turn_tokens);
    c.tool_calls = tools.len() as u64;
    c
}

fn bubble_id(b: &Value) -> Option<String> {
    b["bubbleId"]
        .as_str()
        .or(b["id"].as_str())
        .map(str::to_owned)
}

/// A bubble: its id and body.
type Bubble = (String, Value);
/// Where a bubble goes: after listed bubble n (`-1`: first), listed ones first, by row id.
type Place = (i64, u8, i64);

/// The conversation of a `cursorDiskKV` composer, as the module docs say.
fn composer_conversation(c: &Connection, id: &str, composer: &Value) -> Vec<(String, Value)> {
    let mut keyed: Vec<(String, Value, Option<i64>)> = kv_rows(c, &format!("bubbleId:{id}:"))
        .into_iter()
        .map(|(k, v, rowid)| (k[format!("bubbleId:{id}:").len()..].to_owned(), v, rowid))
        .collect();
    let inline: Vec<Value> = composer["conversation"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut bodies: HashMap<String, Value> = HashMap::new();
    if let Some(map) = composer["conversationMap"].as_object() {
        for (k, v) in map {
            bodies.insert(k.clone(), v.clone());
        }
    }
    for b in &inline {
        if let Some(bid) = bubble_id(b) {
            bodies.entry(bid).or_insert_with(|| b.clone());
        }
    }
    let time = |b: &Value| -> Option<i64> {
        match &b["createdAt"] {
            Value::Number(n) => n.as_i64().filter(|t| *t > 0),
            Value::String(s) if !s.is_empty() => Some(1),
            _ => None,
        }
    };
    if let Some(headers) = composer["fullConversationHeadersOnly"].as_array() {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for h in headers {
            let Some(bid) = h["bubbleId"].as_str() else {
                continue;
            };
            if !seen.insert(bid.to_owned()) {
                continue;
            }
            let body = bodies.get(bid).cloned().or_else(|| {
                keyed
                    .iter()
                    .find(|(k, _, _)| k == bid)
                    .map(|(_, v, _)| v.clone())
            });
            if let Some(b) = body {
                out.push((bid.to_owned(), b));
            }
        }
        // Sort key: listed bubble n is (n, 0); an unlisted one goes after the last listed one
        // with a lower row id.
        let row_of = |id: &str| keyed.iter().find(|(k, _, _)| k == id).and_then(|r| r.2);
        let listed_rows: Vec<Option<i64>> = out.iter().map(|(id, _)| row_of(id)).collect();
        let mut placed: Vec<(Place, Bubble)> = out
            .into_iter()
            .enumerate()
            .map(|(n, e)| ((n as i64, 0, 0), e))
            .collect();
        for (k, v, rowid) in &keyed {
            if seen.contains(k) {
                continue;
            }
            let rowid = rowid.unwrap_or(0);
            let after = listed_rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_some_and(|r| r < rowid))
                .map(|(n, _)| n as i64)
                .max()
                .unwrap_or(-1);
            placed.push(((after, 1, rowid), (k.clone(), v.clone())));
        }
        placed.sort_by_key(|(key, _)| *key);
        return placed.into_iter().map(|(_, e)| e).collect();
    }
    if !inline.is_empty() {
        return inline
            .into_iter()
            .enumerate()
            .map(|(n, b)| (bubble_id(&b).unwrap_or_else(|| format!("idx-{n}")), b))
            .collect();
    }
    keyed.sort_by_key(|(_, v, rowid)| (time(v).is_none(), time(v), *rowid));
    keyed.into_iter().map(|(k, v, _)| (k, v)).collect()
}

/// The chats of one `User` folder by session id, by the independent count.
fn independent(user: &Path) -> BTreeMap<String, Counts> {
    let global = user.join("globalStorage/state.vscdb");
    let mut dbs: Vec<PathBuf> = Vec::new();
    if global.is_file() {
        dbs.push(global.clone());
    }
    let mut workspaces: Vec<PathBuf> = std::fs::read_dir(user.join("workspaceStorage"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("state.vscdb"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    workspaces.sort();
    dbs.extend(workspaces);
    let global_ids: HashSet<String> =
        if global.is_file() && has_table(&open(&global), "cursorDiskKV") {
            kv_rows(&open(&global), "composerData:")
                .into_iter()
                .map(|(k, _, _)| k["composerData:".len()..].to_owned())
                .collect()
        } else {
            HashSet::new()
        };
    let mut found: BTreeMap<String, Counts> = BTreeMap::new();
    let mut add = |id: String, conv: &[(String, Value)]| {
        if conv.iter().any(|(_, b)| role(b).is_some()) && !found.contains_key(&id) {
            found.insert(id, counts(conv));
        }
    };
    for db in &dbs {
        let c = open(db);
        let mut own = HashSet::new();
        if has_table(&c, "cursorDiskKV") {
            for (key, composer, _) in kv_rows(&c, "composerData:") {
                let id = key["composerData:".len()..].to_owned();
                own.insert(id.clone());
                if !id.starts_with("task-") {
                    let conv = composer_conversation(&c, &id, &composer);
                    add(id, &conv);
                }
            }
            let tasks: HashSet<String> = kv_rows(&c, "bubbleId:task-")
                .into_iter()
                .filter_map(|(k, _, _)| {
                    Some(k.strip_prefix("bubbleId:")?.split(':').next()?.to_owned())
                })
                .collect();
            for t in tasks {
                let conv = composer_conversation(&c, &t, &Value::Null);
                add(t, &conv);
            }
        }
        if has_table(&c, "ItemTable") {
            let shadow: HashSet<&String> = own.iter().chain(&global_ids).collect();
            let composers = item_value(&c, "composer.composerData");
            for entry in composers["allComposers"].as_array().into_iter().flatten() {
                let Some(id) = entry["composerId"].as_str() else {
                    continue;
                };
                if shadow.contains(&id.to_owned())
                    || !entry["fullConversationHeadersOnly"].is_null()
                {
                    continue;
                }
                let conv: Vec<(String, Value)> = entry["conversation"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(n, b)| {
                        (
                            bubble_id(b).unwrap_or_else(|| format!("idx-{n}")),
                            b.clone(),
                        )
                    })
                    .collect();
                add(id.to_owned(), &conv);
            }
            let chat = item_value(&c, "workbench.panel.aichat.view.aichat.chatdata");
            for tab in chat["tabs"].as_array().into_iter().flatten() {
                let Some(id) = tab["tabId"].as_str() else {
                    continue;
                };
                if shadow.contains(&id.to_owned()) {
                    continue;
                }
                let mut conv: Vec<(String, Value)> = tab["bubbles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(n, b)| {
                        (
                            bubble_id(b).unwrap_or_else(|| format!("idx-{n}")),
                            b.clone(),
                        )
                    })
                    .collect();
                // The input box: a last user bubble with no `text` nor `rawText` is not a
                // message (its `initText` may hold a draft never sent).
                let typed = |b: &Value| {
                    ["text", "rawText"]
                        .iter()
                        .any(|k| b[*k].as_str().is_some_and(|t| !t.trim().is_empty()))
                };
                if conv
                    .last()
                    .is_some_and(|(_, b)| role(b) == Some(true) && !typed(b))
                {
                    conv.pop();
                }
                add(id.to_owned(), &conv);
            }
        }
    }
    found
}

/// What the stores of the `User` folder emit, by session id; a session emitted by two
/// databases is an error.
fn parsed(user: &Path) -> (BTreeMap<String, Counts>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut twice = Vec::new();
    for db in cursor_dbs(&[user.to_path_buf()]) {
        let path = db.path.clone();
        let mut store = cursor_store(db);
        let (updates, _) = poll_all(&mut store, &HashMap::new(), true).unwrap();
        for item in updates.into_iter().flat_map(|u| u.items) {
            let id = item.source_session_id.clone();
            if out.insert(id.clone(), item_counts(&item)).is_some() {
                twice.push(format!("{id} (again from {})", path.display()));
            }
        }
    }
    (out, twice)
}

fn item_counts(item: &ImportSessionItem) -> Counts {
    Counts {
        prompts: item
            .turns
            .iter()
            .map(|t| t.query_message_source_ids.len() as u64)
            .sum(),
        prompt_chars: item
            .messages
            .iter()
            .filter(|m| m.role == "user")
            .map(|m| m.content.as_deref().unwrap_or("").chars().count() as u64)
            .sum(),
        messages: item.messages.len() as u64,
        tool_calls: item.tool_calls.len() as u64,
        input_tokens: item.turns.iter().filter_map(|t| t.input_tokens).sum(),
        output_tokens: item.turns.iter().filter_map(|t| t.output_tokens).sum(),
    }
}

#[test]
fn cursor_real_user_folders_every_chat_found_once_and_exact() {
    let trees = user_trees();
    if trees.is_empty() {
        eprintln!("NEX_REAL_SAMPLES_DIR and NEX_CORPUS_DIR unset or without cursor/: skipped");
        return;
    }
    let (mut want_total, mut got_total, mut exact) = (0, 0, 0);
    let mut sum = Counts::default();
    let mut problems = Vec::new();
    for user in &trees {
        let want = independent(user);
        let (got, twice) = parsed(user);
        want_total += want.len();
        got_total += got.len();
        for t in twice {
            problems.push(format!("{}: emitted twice: {t}", user.display()));
        }
        for (id, w) in &want {
            match got.get(id) {
                Some(g) if g == w => {
                    exact += 1;
                    sum.prompts += g.prompts;
                    sum.prompt_chars += g.prompt_chars;
                    sum.messages += g.messages;
                    sum.tool_calls += g.tool_calls;
                    sum.input_tokens += g.input_tokens;
                    sum.output_tokens += g.output_tokens;
                }
                Some(g) => problems.push(format!(
                    "{}: {id}: parsed {g:?}, counted {w:?}",
                    user.display()
                )),
                None => problems.push(format!("{}: {id}: not found", user.display())),
            }
        }
        for id in got.keys().filter(|id| !want.contains_key(*id)) {
            problems.push(format!("{}: {id}: parsed but not a chat", user.display()));
        }
    }
    eprintln!(
        "cursor real: {} User folders, {got_total} sessions found of {want_total}, {exact} exact \
         ({sum:?} over the exact ones)",
        trees.len()
    );
    assert!(want_total > 0, "the trees hold no chat: wrong directories?");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(got_total, want_total);
}
