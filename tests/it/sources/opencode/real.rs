//! Real OpenCode data directories (`NEX_CORPUS_DIR/opencode/<name>/`, skipped when unset):
//! per session, the store's items against a count written here from the stores alone
//! (prompts, tool calls, output and total tokens), exact on every session.
//!
//! The independent count reads every store a data directory can hold, each session once in
//! OpenCode's precedence (`opencode.db`, `opencode-*.db` by name, `storage/`, then
//! `project/<name>/storage/` by name): prompts are `user` messages, tool calls `tool` parts,
//! tokens the assistant messages' `tokens` (input + output + reasoning + cache read + cache
//! write), never the `step-finish` parts that repeat them; prompt characters those of each
//! user message's text: its non-empty `text` parts joined by a newline, leaving out parts
//! marked `synthetic` or `ignored`, or, when none is left, its `synthetic` ones (a `!command`
//! run from the prompt box holds only OpenCode's synthetic text). The directory is copied first: the
//! agent's files are not touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::{Cursors, poll};
use nex::aix::sources::OpenCodeStore;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Figures {
    prompts: u64,
    prompt_chars: u64,
    tool_calls: u64,
    output_tokens: i64,
    total_tokens: i64,
}

impl Figures {
    /// A message with its parts.
    fn message(&mut self, data: &Value, parts: &[Value]) {
        for p in parts {
            self.part(p);
        }
        match data.get("role").and_then(Value::as_str) {
            Some("user") => {
                self.prompts += 1;
                let flag = |p: &Value, k: &str| p.get(k).and_then(Value::as_bool) == Some(true);
                let texts = |synthetic: bool| -> Vec<&str> {
                    parts
                        .iter()
                        .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                        .filter(|p| !flag(p, "ignored") && flag(p, "synthetic") == synthetic)
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .filter(|t| !t.is_empty())
                        .collect()
                };
                let mut own = texts(false);
                if own.is_empty() {
                    own = texts(true);
                }
                if !own.is_empty() {
                    let chars: usize = own.iter().map(|t| t.chars().count()).sum();
                    self.prompt_chars += (chars + own.len() - 1) as u64;
                }
            }
            Some("assistant") => {
                let n = |path: &[&str]| {
                    let mut v = data.get("tokens");
                    for k in path {
                        v = v.and_then(|x| x.get(k));
                    }
                    v.and_then(Value::as_i64).unwrap_or(0)
                };
                let output = n(&["output"]);
                self.output_tokens += output;
                self.total_tokens += n(&["input"])
                    + output
                    + n(&["reasoning"])
                    + n(&["cache", "read"])
                    + n(&["cache", "write"]);
            }
            _ => {}
        }
    }

    fn part(&mut self, data: &Value) {
        if data.get("type").and_then(Value::as_str) == Some("tool") {
            self.tool_calls += 1;
        }
    }
}

fn json_file(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The figures of every session of one data directory, read independently of the store.
fn independent(dir: &Path) -> BTreeMap<String, Figures> {
    let mut out: BTreeMap<String, Figures> = BTreeMap::new();
    let mut dbs = vec![dir.join("opencode.db")];
    dbs.extend(sorted_entries(dir).into_iter().filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("opencode-") && n.ends_with(".db"))
    }));
    for db in dbs.into_iter().filter(|p| p.is_file()) {
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let ids: Vec<String> = conn
            .prepare("SELECT id FROM session")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .flatten()
            .collect();
        for id in ids {
            if out.contains_key(&id) {
                continue;
            }
            let mut f = Figures::default();
            let pairs = |sql: &str| -> Vec<(String, String)> {
                conn.prepare(sql)
                    .unwrap()
                    .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .flatten()
                    .collect()
            };
            let mut parts: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (m, p) in pairs("SELECT message_id, data FROM part WHERE session_id = ?1") {
                let part = serde_json::from_str(&p).unwrap_or(Value::Null);
                parts.entry(m).or_default().push(part);
            }
            for (id, m) in pairs("SELECT id, data FROM message WHERE session_id = ?1") {
                let own = parts.remove(&id).unwrap_or_default();
                f.message(&serde_json::from_str(&m).unwrap_or(Value::Null), &own);
            }
            // Parts of no message of the session still count as tool calls.
            for p in parts.values().flatten() {
                f.part(p);
            }
            out.insert(id, f);
        }
    }
    // storage/: session/<project>/<id>.json, message/<id>/<msg>.json, part/<msg>/<part>.json.
    let storage = dir.join("storage");
    for project in sorted_entries(&storage.join("session")) {
        for file in sorted_entries(&project) {
            let Some(id) = json_file(&file).and_then(|v| v["id"].as_str().map(str::to_owned))
            else {
                continue;
            };
            if out.contains_key(&id) {
                continue;
            }
            let mut f = Figures::default();
            for msg in sorted_entries(&storage.join("message").join(&id)) {
                let stem = msg.file_stem().unwrap();
                let parts: Vec<Value> = sorted_entries(&storage.join("part").join(stem))
                    .iter()
                    .map(|p| json_file(p).unwrap_or(Value::Null))
                    .collect();
                f.message(&json_file(&msg).unwrap_or(Value::Null), &parts);
            }
            out.insert(id, f);
        }
    }
    // project/<name>/storage/: session/info/<id>.json, session/message/<id>/<msg>.json,
    // session/part/<id>/<msg>/<part>.json.
    for project in sorted_entries(&dir.join("project")) {
        let session = project.join("storage/session");
        for file in sorted_entries(&session.join("info")) {
            let Some(id) = json_file(&file).and_then(|v| v["id"].as_str().map(str::to_owned))
            else {
                continue;
            };
            if out.contains_key(&id) {
                continue;
            }
            let mut f = Figures::default();
            for msg in sorted_entries(&session.join("message").join(&id)) {
                let stem = msg.file_stem().unwrap();
                let parts: Vec<Value> = sorted_entries(&session.join("part").join(&id).join(stem))
                    .iter()
                    .map(|p| json_file(p).unwrap_or(Value::Null))
                    .collect();
                f.message(&json_file(&msg).unwrap_or(Value::Null), &parts);
            }
            out.insert(id, f);
        }
    }
    // A session without any message is no session (the store emits none).
    out.retain(|_, f| *f != Figures::default());
    out
}

/// The store's figures per session of one data directory.
fn parsed(dir: &Path) -> BTreeMap<String, Figures> {
    let mut store = OpenCodeStore::new(dir.to_path_buf());
    let (updates, counts) = poll(&mut store, &Cursors::new());
    assert_eq!(counts.failed, 0, "{}", dir.display());
    updates
        .iter()
        .flat_map(|u| &u.items)
        .map(|item| {
            let users = item.messages.iter().filter(|m| m.role == "user");
            let mut f = Figures {
                prompts: users.clone().count() as u64,
                prompt_chars: users
                    .filter_map(|m| m.content.as_deref())
                    .map(|c| c.chars().count() as u64)
                    .sum(),
                tool_calls: item.tool_calls.len() as u64,
                ..Figures::default()
            };
            for t in &item.turns {
                f.output_tokens += t.output_tokens.unwrap_or(0);
                f.total_tokens += t.total_tokens.unwrap_or(0);
            }
            (item.source_session_id.clone(), f)
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn real_opencode_sessions_match_an_independent_count() {
    let Some(corpus) = std::env::var_os("NEX_CORPUS_DIR").filter(|d| !d.is_empty()) else {
        eprintln!("NEX_CORPUS_DIR unset: skipped");
        return;
    };
    let root = PathBuf::from(corpus).join("opencode");
    let (mut sessions, mut mismatches) = (0, Vec::new());
    for data_dir in sorted_entries(&root).into_iter().filter(|p| p.is_dir()) {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&data_dir, copy.path());
        let expected = independent(copy.path());
        let got = parsed(copy.path());
        let name = data_dir.file_name().unwrap().to_string_lossy().into_owned();
        sessions += expected.len();
        mismatches.extend(super::super::figure_mismatches(
            &format!("{name}/"),
            &expected,
            &got,
        ));
    }
    eprintln!(
        "opencode real: {sessions} sessions, {} mismatches",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {sessions} sessions differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
