//! Real Gemini CLI chats (`NEX_REAL_SAMPLES_DIR/gemini/tmp`, `NEX_CORPUS_DIR/gemini/tmp`;
//! skipped when neither is set): per session, the parser's items against a count written here
//! from the files alone (prompts, tool calls, input without the cache reads, cache reads,
//! output and total tokens), exact on every
//! session; and every `.jsonl` log appended in random pieces, cut mid-line too, read through
//! `FileState` into a real ledger, equals one full read of the final file.
//!
//! The independent count follows SOURCES.md "Real-world variants": every `type: "user"`
//! message is a prompt (a `user` record made only of `functionResponse` parts, with the
//! `inlineData`/`fileData` a tool returned beside them, is a tool result written back by the
//! CLI, not typed by anyone), a message id counts once with its
//! last version, and a
//! session is its `sessionId` (Code Assist's shared `a2a-server` id excepted: each of its files
//! is a session of its own; so is a later chat file of a directory carrying the `sessionId` of
//! an earlier one).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::gemini_files::import;
use super::*;
use crate::e2e_support::canonical;
use crate::import_support::ledger;
use nex::aix::discover::discover;
use nex::aix::file_state::FileState;
use nex::aix::{WorkerOptions, default_parser_factory};

/// The `gemini/tmp` directories of the real files that are present.
pub(super) fn real_gemini_roots() -> Vec<PathBuf> {
    ["NEX_REAL_SAMPLES_DIR", "NEX_CORPUS_DIR"]
        .iter()
        .filter_map(|v| std::env::var_os(v).filter(|d| !d.is_empty()))
        .map(|d| PathBuf::from(d).join("gemini/tmp"))
        .filter(|d| d.is_dir())
        .collect()
}

/// The figures compared per session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Figures {
    prompts: u64,
    /// One per prompt; a chat with messages but no prompt is one turn (what comes before a
    /// prompt is its turn).
    turns: u64,
    tool_calls: u64,
    /// Uncached input: Gemini's `input` includes `cached`.
    input_tokens: i64,
    cached_input_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
}

/// What one file says, read as the CLI's loader would: messages by id, last version wins.
#[derive(Default)]
struct FileCount {
    session_id: Option<String>,
    messages: HashMap<String, Value>,
}

impl FileCount {
    fn record(&mut self, v: Value) {
        let Value::Object(map) = v else { return };
        if map.get("$rewindTo").is_some() {
            return;
        }
        if let Some(Value::String(id)) = map.get("id") {
            self.messages.insert(id.clone(), Value::Object(map));
            return;
        }
        let meta = match map.get("$set") {
            Some(Value::Object(set)) => set.clone(),
            _ => map,
        };
        if self.session_id.is_none()
            && let Some(Value::String(sid)) = meta.get("sessionId")
        {
            self.session_id = Some(sid.clone());
        }
        if let Some(Value::Array(list)) = meta.get("messages") {
            for m in list {
                self.record(m.clone());
            }
        }
    }

    fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let mut count = FileCount::default();
        if path.extension().is_some_and(|e| e == "json") {
            if let Ok(v) = serde_json::from_slice(&bytes) {
                count.record(v);
            }
        } else {
            for line in bytes.split(|b| *b == b'\n') {
                if let Ok(v) = serde_json::from_slice(line) {
                    count.record(v);
                }
            }
        }
        count
    }

    fn figures(&self) -> Figures {
        let mut f = Figures::default();
        let mut calls = std::collections::HashSet::new();
        for (id, m) in &self.messages {
            match m.get("type").and_then(Value::as_str) {
                Some("user") => {
                    let only_tool_results = m.get("content").is_some_and(|c| {
                        c.as_array().is_some_and(|parts| {
                            parts.iter().any(|p| p.get("functionResponse").is_some())
                                && parts.iter().all(|p| {
                                    ["functionResponse", "inlineData", "fileData"]
                                        .iter()
                                        .any(|k| p.get(*k).is_some())
                                })
                        })
                    });
                    if !only_tool_results {
                        f.prompts += 1;
                    }
                }
                Some("gemini") => {
                    let tokens = m.get("tokens");
                    let n = |k: &str| {
                        tokens
                            .and_then(|t| t.get(k))
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    };
                    f.input_tokens += n("input") - n("cached");
                    f.cached_input_tokens += n("cached");
                    f.output_tokens += n("output");
                    f.total_tokens += n("total");
                    for (i, call) in m
                        .get("toolCalls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let cid = call
                            .get("id")
                            .and_then(Value::as_str)
                            .map_or_else(|| format!("{id}#{i}"), str::to_owned);
                        calls.insert(cid);
                    }
                }
                _ => {}
            }
        }
        f.tool_calls = calls.len() as u64;
        let imported = |m: &Value| {
            ["user", "gemini", "info", "warning", "error"]
                .contains(&m.get("type").and_then(Value::as_str).unwrap_or_default())
        };
        f.turns = match f.prompts {
            0 => u64::from(self.messages.values().any(imported)),
            n => n,
        };
        f
    }
}

/// The session a file's content belongs to, as the mapping names it.
/// `earlier`: the session ids of the `session-*` chats of the directory read so far, in name
/// order (a later chat file carrying an earlier one's id is a session of its own).
fn session_key(sid: &str, path: &Path, earlier: &mut HashSet<String>) -> String {
    let stem = path.file_stem().unwrap().to_string_lossy();
    let top = stem.starts_with("session-") && path.parent().is_some_and(|p| p.ends_with("chats"));
    let stem = stem.strip_prefix("session-").unwrap_or(&stem);
    if sid == "a2a-server" {
        // `<project>/chats/<file>`: the project names the chat too.
        let project = path
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name);
        let project = project.unwrap().to_string_lossy();
        format!("{sid}/{project}/{stem}")
    } else if top && !earlier.insert(sid.to_owned()) {
        format!("{sid}/{stem}")
    } else {
        sid.to_owned()
    }
}

/// The parser's figures per session over every discovered file of `roots`, rows upserted by
/// id across files as the ledger does; and the files read.
fn parsed(roots: &[PathBuf]) -> (BTreeMap<String, Figures>, Vec<SourceFile>) {
    let options = WorkerOptions {
        gemini_dirs: roots.to_vec(),
        ..Default::default()
    };
    let files: Vec<SourceFile> = discover(&options).into_iter().map(|d| d.source).collect();
    let mut ledger = Ledger::new();
    for file in &files {
        let (items, _) = parse_all(file);
        upsert(&mut ledger, items);
    }
    let figures = ledger
        .into_iter()
        .map(|((_, sid), rows)| {
            let mut f = Figures {
                prompts: rows.messages.values().filter(|m| m.role == "user").count() as u64,
                turns: rows.turns.len() as u64,
                tool_calls: rows.tools.len() as u64,
                ..Figures::default()
            };
            for t in rows.turns.values() {
                f.input_tokens += t.input_tokens.unwrap_or(0);
                f.cached_input_tokens += t.cached_input_tokens.unwrap_or(0);
                f.output_tokens += t.output_tokens.unwrap_or(0);
                f.total_tokens += t.total_tokens.unwrap_or(0);
            }
            (sid, f)
        })
        .collect();
    (figures, files)
}

/// The independent figures per session over every chat file under `roots` (found by a walk of
/// its own, not by discovery); sessions with no message are none.
fn independent(roots: &[PathBuf]) -> BTreeMap<String, Figures> {
    let mut per_session: BTreeMap<String, HashMap<String, Value>> = BTreeMap::new();
    for root in roots {
        for project in std::fs::read_dir(root).unwrap().flatten() {
            let chats = project.path().join("chats");
            let Ok(entries) = std::fs::read_dir(&chats) else {
                continue;
            };
            let mut paths = Vec::new();
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    paths.extend(std::fs::read_dir(&p).unwrap().flatten().map(|c| c.path()));
                } else {
                    paths.push(p);
                }
            }
            paths.sort();
            let mut earlier = HashSet::new();
            for path in paths {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext != "json" && ext != "jsonl" {
                    continue;
                }
                // A legacy document the CLI migrated to a log beside it is read once, as the log.
                if ext == "json" && path.with_extension("jsonl").exists() {
                    continue;
                }
                let count = FileCount::read(&path);
                let Some(sid) = &count.session_id else {
                    continue;
                };
                if count.messages.is_empty() {
                    continue;
                }
                per_session
                    .entry(session_key(sid, &path, &mut earlier))
                    .or_default()
                    .extend(count.messages);
            }
        }
    }
    per_session
        .into_iter()
        .map(|(sid, messages)| {
            let count = FileCount {
                session_id: Some(sid.clone()),
                messages,
            };
            (sid, count.figures())
        })
        .collect()
}

/// Every real session is found, and exact on prompts, tool calls, input, cache reads, output and
/// total tokens.
#[test]
fn real_gemini_sessions_match_an_independent_count() {
    let roots = real_gemini_roots();
    if roots.is_empty() {
        eprintln!("NEX_REAL_SAMPLES_DIR and NEX_CORPUS_DIR unset: skipped");
        return;
    }
    let expected = independent(&roots);
    let (got, files) = parsed(&roots);
    let mismatches = super::figure_mismatches("", &expected, &got);
    let exact = expected.len()
        - mismatches
            .iter()
            .filter(|m| !m.ends_with("message"))
            .count();
    eprintln!(
        "gemini real: {} files, {} sessions, {} exact",
        files.len(),
        expected.len(),
        exact
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} sessions differ:\n{}",
        mismatches.len(),
        expected.len(),
        mismatches.join("\n")
    );
}

/// Byte positions where a writer might stop: a few random ones, mid-line included.
fn random_cuts(len: usize, seed: u64) -> Vec<usize> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut cuts: Vec<usize> = (0..12)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % len.max(1)
        })
        .collect();
    cuts.push(len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Every real `.jsonl` log, appended in random pieces (cut mid-line too) and read after each
/// piece by a fresh `FileState` from the committed cursor, gives the ledger of one full read.
#[test]
fn real_gemini_logs_tailed_in_random_pieces_equal_one_full_read() {
    let roots = real_gemini_roots();
    if roots.is_empty() {
        eprintln!("NEX_REAL_SAMPLES_DIR and NEX_CORPUS_DIR unset: skipped");
        return;
    }
    let options = WorkerOptions {
        gemini_dirs: roots,
        ..Default::default()
    };
    let logs: Vec<SourceFile> = discover(&options)
        .into_iter()
        .map(|d| d.source)
        .filter(|f| f.path.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    let factory = default_parser_factory();
    for (n, log) in logs.iter().enumerate() {
        let bytes = std::fs::read(&log.path).unwrap();
        let rel = log
            .path
            .strip_prefix(log.path.ancestors().nth(3).unwrap())
            .unwrap()
            .to_path_buf();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let full = FileState::new(
            SourceFile {
                path: path.clone(),
                ..log.clone()
            },
            None,
        )
        .update(&factory, true)
        .unwrap();
        let mut full_conn = ledger();
        if let Some(u) = &full {
            import(&mut full_conn, "full", &u.items);
        }
        std::fs::remove_file(&path).unwrap();
        let mut conn = ledger();
        let mut cursor = None;
        let mut written = 0;
        for (k, cut) in random_cuts(bytes.len(), n as u64 + 7)
            .into_iter()
            .enumerate()
        {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            std::io::Write::write_all(&mut f, &bytes[written..cut]).unwrap();
            written = cut;
            let mut state = FileState::new(
                SourceFile {
                    path: path.clone(),
                    ..log.clone()
                },
                cursor.clone(),
            );
            if let Some(u) = state.update(&factory, false).unwrap() {
                import(&mut conn, &format!("k{k}"), &u.items);
                cursor = Some(u.cursor);
            }
        }
        assert_eq!(
            canonical(&conn),
            canonical(&full_conn),
            "{}",
            log.path.display()
        );
    }
}
