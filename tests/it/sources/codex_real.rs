//! Codex on real rollouts (`$NEX_REAL_SAMPLES_DIR/codex/sessions`, `$NEX_CORPUS_DIR/codex/sessions`,
//! skipped when neither is set): per session, the parser's items equal an independent count
//! written here from SOURCES.md "Real-world variants" > Codex (prompts, turns, tool calls, input
//! without the cache reads, cache reads, output and total tokens, lineage), and a tail fed in
//! random cuts (mid-line too, with a worker restart) equals one full parse.
//!
//! The count below is deliberately separate code: it reads each line as a `serde_json::Value`
//! and applies the rules literally, with none of the parser's state machine.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

fn real_codex_files() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for var in ["NEX_REAL_SAMPLES_DIR", "NEX_CORPUS_DIR"] {
        if let Some(d) = std::env::var_os(var).filter(|d| !d.is_empty()) {
            roots.push(PathBuf::from(d).join("codex/sessions"));
        }
    }
    let mut files = Vec::new();
    for root in roots {
        walk(&root, &mut files);
    }
    files.sort();
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            out.push(p);
        }
    }
}

fn codex_file(path: &Path) -> SourceFile {
    SourceFile {
        provider: Provider::Codex,
        path: path.to_owned(),
        workspace: None,
        role: FileRole::Main,
    }
}

/// The figures compared per session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Figures {
    session_id: String,
    /// `user` messages: the prompts, and the messages other agents sent (multi-agent v2).
    prompts: usize,
    turns: usize,
    tool_calls: usize,
    /// Uncached input: Codex's `input_tokens` includes `cached_input_tokens`.
    input_tokens: i64,
    cached_input_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    is_subagent: bool,
    parent: Option<String>,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Text Codex injects as a `user` message that no human typed.
fn injected(text: &str) -> bool {
    let t = text.trim_start();
    [
        "<environment_context>",
        "<user_instructions>",
        "# AGENTS.md instructions",
        "<permissions instructions>",
        "<user_action>",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

/// The independent count of one rollout; `None` when it makes no session.
pub(super) fn expected(bytes: &[u8]) -> Option<Figures> {
    let records: Vec<Value> = bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(Value::is_object)
        .collect();
    let first = records.first()?;
    if first.get("payload").is_none() && first.get("type").is_none() {
        return expected_old(&records);
    }
    let mut id: Option<String> = None;
    let mut meta_ts = String::new();
    let mut is_subagent = false;
    let mut parent: Option<String> = None;
    // Replay of the parent: by timestamp (one session_meta), or up to the child's first own
    // task_started (a second session_meta).
    let mut replay_by_time = false;
    let mut replay_until_task = false;
    let mut prompts = 0;
    let mut turns = 0;
    let mut any_output = false;
    let mut tool_ids = BTreeSet::new();
    let mut pairs = BTreeSet::new();
    let (mut input, mut cached, mut output, mut total) = (0i64, 0i64, 0i64, 0i64);
    let mut prev_prompt: Option<String> = None;
    // A spawned agent's path (multi-agent v2): messages to it from others than its own
    // subagents are its tasks, prompts that open a turn.
    let mut own_path: Option<String> = None;
    // Between `entered_review_mode` and `exited_review_mode` the token counts are the review's
    // own: its rollout counts them.
    let mut in_review = false;
    // A paginated subagent's first own ordinal: the records before it replay its parent.
    let mut own_from: Option<i64> = None;
    for (n, r) in records.iter().enumerate() {
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        let p = r.get("payload").cloned().unwrap_or(Value::Null);
        let sub = p.get("type").and_then(Value::as_str).unwrap_or("");
        let ts = r.get("timestamp").and_then(Value::as_str).unwrap_or("");
        let last_prompt = prev_prompt.take();
        if id.is_some()
            && let (Some(start), Some(ordinal)) =
                (own_from, r.get("ordinal").and_then(Value::as_i64))
            && ordinal < start
        {
            continue;
        }
        if kind == "session_meta" {
            let pid = p.get("id").and_then(Value::as_str).map(str::to_owned);
            match &id {
                None => {
                    id = pid;
                    meta_ts = p
                        .get("timestamp")
                        .and_then(Value::as_str)
                        .unwrap_or(ts)
                        .to_owned();
                    let spawn = str_at(
                        &p,
                        &["source", "subagent", "thread_spawn", "parent_thread_id"],
                    );
                    let forked = p.get("forked_from_id").and_then(Value::as_str);
                    // Any `source.subagent` but a blank string: a spawned thread, a review,
                    // a guardian (`{other}`).
                    is_subagent =
                        p.get("source")
                            .and_then(|s| s.get("subagent"))
                            .is_some_and(|s| {
                                s.is_object() || s.as_str().is_some_and(|k| !k.trim().is_empty())
                            });
                    own_path = str_at(&p, &["source", "subagent", "thread_spawn", "agent_path"])
                        .map(str::to_owned);
                    parent = spawn.or(forked).map(str::to_owned);
                    own_from = p
                        .get("subagent_history_start_ordinal")
                        .and_then(Value::as_i64);
                    replay_by_time = own_from.is_none() && (spawn.is_some() || forked.is_some());
                }
                Some(own) if pid.as_deref() != Some(own.as_str()) && pid.is_some() => {
                    replay_until_task = true;
                    replay_by_time = false;
                }
                Some(_) => {}
            }
            continue;
        }
        if replay_until_task {
            let tid = p.get("turn_id").and_then(Value::as_str).unwrap_or("");
            if kind == "event_msg" && sub == "task_started" && tid >= id.as_deref().unwrap_or("") {
                replay_until_task = false;
            } else {
                continue;
            }
        }
        if replay_by_time {
            if !ts.is_empty() && ts < meta_ts.as_str() {
                continue;
            }
            replay_by_time = false;
        }
        match (kind, sub) {
            ("event_msg", "user_message" | "item_completed") => {
                // 0.15x writes a prompt as a completed `UserMessage` item (its `text` blocks).
                let text = if sub == "user_message" {
                    p.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                } else if str_at(&p, &["item", "type"]) == Some("UserMessage") {
                    p["item"]
                        .get("content")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                        .filter_map(|b| b.get("text").and_then(Value::as_str))
                        .filter(|t| !t.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n")
                } else {
                    // A paginated reply (`AgentMessage`) is output, as `agent_message` is.
                    if str_at(&p, &["item", "type"]) == Some("AgentMessage") {
                        any_output |= turns == 0 && opened_before_prompt(&mut turns);
                    }
                    continue;
                };
                // The same prompt written twice in a row (`/review`) is one prompt.
                if last_prompt.as_deref() != Some(text.as_str()) {
                    prompts += 1;
                    turns += 1;
                }
                prev_prompt = Some(text);
            }
            ("event_msg", "entered_review_mode") => in_review = true,
            ("event_msg", "exited_review_mode") => in_review = false,
            ("event_msg", "token_count") => {
                let Some(info) = p.get("info").filter(|i| !i.is_null() && !in_review) else {
                    continue;
                };
                let (Some(t), Some(l)) =
                    (info.get("total_token_usage"), info.get("last_token_usage"))
                else {
                    continue;
                };
                // The same counts, whatever fields a build adds (a later build resuming the
                // rollout writes `cache_write_input_tokens: 0` into the repeated event).
                let counts = |u: &Value| {
                    [
                        "input_tokens",
                        "cached_input_tokens",
                        "cache_write_input_tokens",
                        "output_tokens",
                        "reasoning_output_tokens",
                        "total_tokens",
                    ]
                    .map(|k| u.get(k).and_then(Value::as_i64).unwrap_or(0))
                };
                if pairs.insert((counts(t), counts(l))) {
                    let count = |k: &str| l.get(k).and_then(Value::as_i64).unwrap_or(0);
                    input += count("input_tokens") - count("cached_input_tokens");
                    cached += count("cached_input_tokens");
                    output += l.get("output_tokens").and_then(Value::as_i64).unwrap_or(0);
                    total += l.get("total_tokens").and_then(Value::as_i64).unwrap_or(0);
                    any_output |= turns == 0 && opened_before_prompt(&mut turns);
                }
            }
            ("response_item", s) if s.ends_with("_call") => {
                let cid = p
                    .get("call_id")
                    .or_else(|| p.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("L{}", n + 1));
                tool_ids.insert(cid);
                any_output |= turns == 0 && opened_before_prompt(&mut turns);
            }
            ("response_item", "message")
                if p.get("role").and_then(Value::as_str) == Some("assistant") =>
            {
                any_output |= turns == 0 && opened_before_prompt(&mut turns);
            }
            ("event_msg", "agent_message") => {
                any_output |= turns == 0 && opened_before_prompt(&mut turns);
            }
            ("response_item", "agent_message") => {
                let author = p.get("author").and_then(Value::as_str).unwrap_or("");
                let recipient = p.get("recipient").and_then(Value::as_str);
                let task = own_path.as_deref().is_some_and(|own| {
                    recipient == Some(own) && !author.starts_with(&format!("{own}/"))
                });
                if task {
                    prompts += 1;
                    turns += 1;
                } else if !text_of(p.get("content").unwrap_or(&Value::Null)).is_empty() {
                    prompts += 1;
                    any_output |= turns == 0 && opened_before_prompt(&mut turns);
                }
            }
            _ => {}
        }
    }
    (prompts > 0 || any_output).then(|| Figures {
        session_id: id.unwrap_or_default(),
        prompts,
        turns,
        tool_calls: tool_ids.len(),
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
        total_tokens: total,
        is_subagent,
        parent,
    })
}

/// Output before any prompt makes a turn of its own (counted once).
fn opened_before_prompt(turns: &mut usize) -> bool {
    *turns += 1;
    true
}

/// The pre-envelope format: a bare `{id, timestamp, instructions}` line, then bare items.
fn expected_old(records: &[Value]) -> Option<Figures> {
    let id = records[0].get("id").and_then(Value::as_str)?.to_owned();
    let mut prompts = 0;
    let mut turns = 0;
    let mut any_output = false;
    let mut tool_ids = BTreeSet::new();
    for (n, r) in records.iter().enumerate().skip(1) {
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        let role = r.get("role").and_then(Value::as_str).unwrap_or("");
        match kind {
            "message"
                if role == "user"
                    && !injected(&text_of(r.get("content").unwrap_or(&Value::Null))) =>
            {
                prompts += 1;
                turns += 1;
            }
            "message" if role == "assistant" => {
                any_output |= turns == 0 && opened_before_prompt(&mut turns);
            }
            k if k.ends_with("_call") => {
                let cid = r
                    .get("call_id")
                    .or_else(|| r.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("L{}", n + 1));
                tool_ids.insert(cid);
                any_output |= turns == 0 && opened_before_prompt(&mut turns);
            }
            _ => {}
        }
    }
    (prompts > 0 || any_output).then_some(Figures {
        session_id: id,
        prompts,
        turns,
        tool_calls: tool_ids.len(),
        input_tokens: 0,
        cached_input_tokens: 0,
        output_tokens: 0,
        total_tokens: 0,
        is_subagent: false,
        parent: None,
    })
}

/// The same figures read from the parser's items of a full parse.
pub(super) fn parsed(file: &SourceFile, bytes: &[u8]) -> Option<Figures> {
    let mut p = parser_for(file);
    p.push_lines(bytes, 0, true);
    let items = p.take_items();
    assert!(
        items.len() <= 1,
        "{}: one session per file",
        file.path.display()
    );
    let item = items.into_iter().next()?;
    Some(Figures {
        session_id: item.source_session_id.clone(),
        prompts: item.messages.iter().filter(|m| m.role == "user").count(),
        turns: item.turns.len(),
        tool_calls: item.tool_calls.len(),
        input_tokens: item.turns.iter().filter_map(|t| t.input_tokens).sum(),
        cached_input_tokens: item
            .turns
            .iter()
            .filter_map(|t| t.cached_input_tokens)
            .sum(),
        output_tokens: item.turns.iter().filter_map(|t| t.output_tokens).sum(),
        total_tokens: item.turns.iter().filter_map(|t| t.total_tokens).sum(),
        is_subagent: item.session.is_subagent,
        parent: item.session.parent_source_session_id.clone(),
    })
}

/// Every real rollout: the parser's figures equal the independent count, session by session.
#[test]
fn real_codex_rollouts_match_an_independent_count() {
    let files = real_codex_files();
    if files.is_empty() {
        eprintln!("NEX_REAL_SAMPLES_DIR and NEX_CORPUS_DIR unset or empty: skipped");
        return;
    }
    let mut mismatches = Vec::new();
    let (mut sessions, mut exact) = (0, 0);
    for path in &files {
        let bytes = std::fs::read(path).expect("readable");
        let want = expected(&bytes);
        let got = parsed(&codex_file(path), &bytes);
        sessions += usize::from(want.is_some());
        exact += usize::from(want.is_some() && want == got);
        if want != got {
            mismatches.push(format!(
                "{}\n    want {want:?}\n    got  {got:?}",
                path.display()
            ));
        }
    }
    eprintln!("{} files, {sessions} sessions, {exact} exact", files.len());
    assert!(
        mismatches.is_empty(),
        "{} of {} files differ from the independent count:\n{}",
        mismatches.len(),
        files.len(),
        mismatches.join("\n")
    );
}

/// A tiny deterministic generator for the cut positions (xorshift64*).
struct Cuts(u64);

impl Cuts {
    fn next(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1) as u64) as usize
    }
}

/// Whether `items` give a session a model while the ledger holds a turn of it written without
/// one (it took the session's, none then): the tail's file state then reads the file again
/// whole (`file_state`: turns borrowing a header that changed), so that the turn has the
/// final session's model, as one full read gives it.
fn borrows_a_changed_model(ledger: &Ledger, items: &[ImportSessionItem]) -> bool {
    items.iter().any(|item| {
        item.session.model.is_some()
            && ledger
                .get(&(item.source_provider.clone(), item.source_session_id.clone()))
                .is_some_and(|rows| rows.turns.values().any(|t| t.model.is_none()))
    })
}

/// Every real rollout written in random pieces (cuts mid-line too: only complete lines reach
/// the parser, as in the tail) with one worker restart from `open_turn_offset`, upserted after
/// every piece, gives the rows, fingerprint and stats of one full parse.
#[test]
fn real_codex_rollouts_tail_in_random_cuts_equals_full() {
    let files = real_codex_files();
    if files.is_empty() {
        eprintln!("NEX_REAL_SAMPLES_DIR and NEX_CORPUS_DIR unset or empty: skipped");
        return;
    }
    let mut rng = Cuts(0x9E37_79B9_7F4A_7C15);
    for path in &files {
        let file = codex_file(path);
        let bytes = std::fs::read(path).expect("readable");
        let (full, full_fp, full_stats) = full_ledger(&file, &bytes);
        for _round in 0..2 {
            let pieces = 1 + rng.next(24);
            let restart_at = rng.next(pieces + 1);
            let mut p = parser_for(&file);
            let mut ledger = Ledger::new();
            let mut written = 0usize;
            let mut fed = 0usize;
            for piece in 0..pieces {
                written = if piece + 1 == pieces {
                    bytes.len()
                } else {
                    (written + rng.next(2 * bytes.len() / pieces + 2)).min(bytes.len())
                };
                // The tail only feeds complete lines; a partial last line waits.
                let upto = bytes[..written]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                if upto > fed {
                    p.push_lines(&bytes[fed..upto], fed as u64, true);
                    fed = upto;
                }
                let items = p.take_items();
                let stale = borrows_a_changed_model(&ledger, &items);
                upsert(&mut ledger, items);
                if stale {
                    // As the tail's file state does: the file is read again whole.
                    p = parser_for(&file);
                    p.push_lines(&bytes[..fed], 0, true);
                    upsert(&mut ledger, p.take_items());
                }
                if piece == restart_at {
                    let off = p.open_turn_offset() as usize;
                    assert!(off <= fed, "{}", path.display());
                    p = parser_for(&file);
                    p.push_lines(&bytes[..off], 0, false);
                    assert!(p.take_items().is_empty());
                    p.push_lines(&bytes[off..fed], off as u64, true);
                    upsert(&mut ledger, p.take_items());
                }
            }
            assert_eq!(ledger, full, "{}", path.display());
            assert_eq!(p.fingerprint(), full_fp, "{}", path.display());
            if restart_at >= pieces {
                assert_eq!(p.stats(), &full_stats, "{}", path.display());
            }
        }
    }
}
