//! Real Claude Code histories, read at run time from `NEX_REAL_SAMPLES_DIR` and
//! `NEX_CORPUS_DIR` (`<dir>/claude/projects`; skipped when neither is set).
//!
//! - Per session, the parser's prompts, tool calls, output tokens and total tokens equal an
//!   independent count written here from the rules of SOURCES.md (Claude Code), as separate
//!   simple code over `serde_json::Value` lines (a content line whose uuid came before in the
//!   item is a copy and counts nothing). Every mismatch of every file is listed.
//! - Every file fed in random cuts (mid-line included: only complete lines are pushed, as the
//!   tail does) gives the rows of one full parse.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::*;

/// `<dir>/claude/projects` for each set variable whose tree exists.
fn roots() -> Vec<PathBuf> {
    ["NEX_REAL_SAMPLES_DIR", "NEX_CORPUS_DIR"]
        .iter()
        .filter_map(|v| std::env::var_os(v).filter(|d| !d.is_empty()))
        .map(|d| PathBuf::from(d).join("claude/projects"))
        .filter(|d| d.is_dir())
        .collect()
}

fn sorted_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Every session file of a `projects` tree, classified by discovery.
fn real_files(root: &Path) -> Vec<SourceFile> {
    fn subagents(dir: &Path, session: &str, out: &mut Vec<SourceFile>) {
        for p in sorted_dir(dir) {
            if p.is_dir() {
                subagents(&p, session, out);
            } else if let Some(f) = nex::aix::discover::claude_file(&p, Some(session))
                && matches!(f.role, FileRole::Subagent { .. })
            {
                out.push(f);
            }
        }
    }
    let mut out = Vec::new();
    for project in sorted_dir(root).into_iter().filter(|p| p.is_dir()) {
        for p in sorted_dir(&project) {
            if p.is_dir() {
                let session = p.file_name().unwrap().to_string_lossy().into_owned();
                subagents(&p.join("subagents"), &session, &mut out);
            } else if let Some(f) = nex::aix::discover::claude_file(&p, None) {
                out.push(f);
            }
        }
    }
    out
}

/// The four figures compared per session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Figures {
    prompts: u64,
    tool_calls: u64,
    output_tokens: i64,
    total_tokens: i64,
}

/// What the parser says, per source session id.
fn parser_figures(file: &SourceFile, bytes: &[u8]) -> BTreeMap<String, Figures> {
    let mut p = parser_for(file);
    p.push_lines(bytes, 0, true);
    let mut out: BTreeMap<String, Figures> = BTreeMap::new();
    for item in p.take_items() {
        let f = out.entry(item.source_session_id.clone()).or_default();
        f.prompts += item
            .turns
            .iter()
            .filter(|t| !t.query_message_source_ids.is_empty())
            .count() as u64;
        f.tool_calls += item.tool_calls.len() as u64;
        f.output_tokens += item
            .turns
            .iter()
            .filter_map(|t| t.output_tokens)
            .sum::<i64>();
        f.total_tokens += item
            .turns
            .iter()
            .filter_map(|t| t.total_tokens)
            .sum::<i64>();
    }
    out
}

// ---- the independent count ---------------------------------------------------------------------

/// The text a user line starts with when it was not typed as a prompt.
const NOT_PROMPT_PREFIXES: [&str; 8] = [
    "<bash-input>",
    "<bash-stdout>",
    "<bash-stderr>",
    "<local-command-stdout>",
    "<local-command-stderr>",
    "[Request interrupted by user",
    "<task-notification>",
    "This session is being continued from a previous conversation",
];

fn flag(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool) == Some(true)
}

/// A human prompt, by the rules: a `user` line that is no tool result, no meta/injected or
/// transcript-only record, no compaction summary, no shell-mode or local command output and no
/// interrupt marker; slash commands and image-only messages are prompts, and so is a prompt
/// queued while the agent worked (an `attachment` `queued_command` in `prompt` mode).
fn is_prompt(v: &Value) -> bool {
    if v.get("type").and_then(Value::as_str) != Some("user")
        || flag(v, "isMeta")
        || flag(v, "isCompactSummary")
        || flag(v, "isVisibleInTranscriptOnly")
    {
        return false;
    }
    let content = v.pointer("/message/content");
    let (text, image) = match content {
        Some(Value::String(s)) => (s.clone(), false),
        Some(Value::Array(blocks)) => {
            let kind = |b: &Value| {
                b.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            if blocks.iter().any(|b| kind(b) == "tool_result") {
                return false;
            }
            let text: String = blocks
                .iter()
                .filter(|b| kind(b) == "text")
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            (text, blocks.iter().any(|b| kind(b) == "image"))
        }
        _ => (String::new(), false),
    };
    let t = text.trim_start();
    if t.is_empty() {
        return image;
    }
    !NOT_PROMPT_PREFIXES.iter().any(|p| t.starts_with(p))
}

#[derive(Default)]
struct Tally {
    prompts: u64,
    tools: BTreeSet<String>,
    /// message.id -> (output, total) of its last line.
    usage: HashMap<String, (i64, i64)>,
    seen: bool,
    /// Uuids of the content lines counted.
    uuids: HashSet<String>,
    /// The input queue (`queue-operation` lines): texts waiting.
    queue: std::collections::VecDeque<String>,
    /// The text a `remove` handed over, until the next prompt: 2.1.97 writes the same prompt
    /// again as a `queued_command` attachment, which is then no second prompt.
    delivered: Option<String>,
}

/// A queued text that is a prompt (not a background task's notice).
fn is_prompt_text(t: &str) -> bool {
    let t = t.trim_start();
    !t.is_empty() && !NOT_PROMPT_PREFIXES.iter().any(|p| t.starts_with(p))
}

fn int(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Counts one file by the rules, per session id it holds.
fn independent_figures(file: &SourceFile, bytes: &[u8]) -> BTreeMap<String, Figures> {
    let lines: Vec<Value> = bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(Value::is_object)
        .collect();
    let body_sid = lines
        .iter()
        .find_map(|v| v.get("sessionId").and_then(Value::as_str))
        .map(str::to_owned);
    let stem = file
        .path
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let own = match &file.role {
        FileRole::Main => Some(stem.clone())
            .filter(|s| is_uuid(s))
            .or(body_sid.clone()),
        FileRole::Subagent {
            agent_id,
            parent_session_id,
            ..
        } => parent_session_id
            .clone()
            .or(body_sid.clone())
            .map(|p| format!("{p}/agent-{agent_id}")),
    };
    let Some(own) = own else {
        return BTreeMap::new();
    };
    let main = matches!(file.role, FileRole::Main);
    let mut agent_of: HashMap<String, String> = HashMap::new();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for v in &lines {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let key = if main && flag(v, "isSidechain") {
            let uuid = v.get("uuid").and_then(Value::as_str);
            let agent = v
                .get("agentId")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    v.get("parentUuid")
                        .and_then(Value::as_str)
                        .and_then(|p| agent_of.get(p).cloned())
                })
                .or(uuid.map(str::to_owned))
                .unwrap_or_else(|| "unknown".to_owned());
            if let Some(u) = uuid {
                agent_of.insert(u.to_owned(), agent.clone());
            }
            format!("{own}/agent-{agent}")
        } else {
            own.clone()
        };
        let t = tallies.entry(key).or_default();
        // The input queue: `remove` hands the first queued prompt to the agent mid-turn, and is
        // that prompt when no other line holds it (2.1.81-2.1.87).
        if kind == "queue-operation" {
            let text = v.get("content").and_then(Value::as_str);
            match v.get("operation").and_then(Value::as_str) {
                Some("enqueue") => t.queue.extend(text.map(str::to_owned)),
                Some("dequeue") => drop(t.queue.pop_front()),
                Some("popAll") => t.queue.retain(|q| !is_prompt_text(q)),
                Some("remove") => {
                    if let Some(i) = t.queue.iter().position(|q| is_prompt_text(q)) {
                        t.delivered = t.queue.remove(i);
                        t.prompts += 1;
                        t.seen = true;
                    }
                }
                _ => {}
            }
            continue;
        }
        // A prompt the user queued while the agent worked, handed to it mid-turn: counted as the
        // user line it stands for (a background task's notice, another mode, is not).
        let queued = (kind == "attachment"
            && v.pointer("/attachment/type").and_then(Value::as_str) == Some("queued_command")
            && v.pointer("/attachment/commandMode")
                .and_then(Value::as_str)
                .is_none_or(|m| m == "prompt"))
        .then(|| v.pointer("/attachment/prompt"))
        .flatten()
        .filter(|p| p.is_string() || p.is_array())
        .map(|p| {
            let mut user = v.clone();
            user["type"] = Value::from("user");
            user["message"] = serde_json::json!({"role": "user", "content": p});
            user
        });
        let v = queued.as_ref().unwrap_or(v);
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let compact = kind == "system"
            && v.get("subtype").and_then(Value::as_str) == Some("compact_boundary");
        if !matches!(kind, "user" | "assistant") && !compact {
            continue;
        }
        t.seen = true;
        // A line whose uuid came before in the same item is a copy (a resumed subagent writes
        // its transcript again): it counts nothing.
        if let Some(u) = v.get("uuid").and_then(Value::as_str)
            && !t.uuids.insert(u.to_owned())
        {
            continue;
        }
        if is_prompt(v) {
            let again = queued.is_some()
                && t.delivered.is_some()
                && v.pointer("/message/content").and_then(Value::as_str) == t.delivered.as_deref();
            t.delivered = None;
            if !again {
                t.prompts += 1;
            }
        }
        if kind != "assistant" {
            continue;
        }
        if let Some(blocks) = v.pointer("/message/content").and_then(Value::as_array) {
            for b in blocks {
                if b.get("type").and_then(Value::as_str) == Some("tool_use")
                    && let Some(id) = b.get("id").and_then(Value::as_str)
                {
                    t.tools.insert(id.to_owned());
                }
            }
        }
        let synthetic = v.pointer("/message/model").and_then(Value::as_str) == Some("<synthetic>");
        if let (Some(id), Some(u), false) = (
            v.pointer("/message/id").and_then(Value::as_str),
            v.pointer("/message/usage").filter(|u| u.is_object()),
            synthetic,
        ) {
            let (i, o) = (int(u, "input_tokens"), int(u, "output_tokens"));
            let (r, w) = (
                int(u, "cache_read_input_tokens"),
                int(u, "cache_creation_input_tokens"),
            );
            t.usage.insert(id.to_owned(), (o, i + o + r + w));
        }
    }
    tallies
        .into_iter()
        .filter(|(_, t)| t.seen)
        .map(|(k, t)| {
            let f = Figures {
                prompts: t.prompts,
                tool_calls: t.tools.len() as u64,
                output_tokens: t.usage.values().map(|u| u.0).sum(),
                total_tokens: t.usage.values().map(|u| u.1).sum(),
            };
            (k, f)
        })
        .collect()
}

// ---- the tests ---------------------------------------------------------------------------------

/// Per session: parser == independent count, on every real file. Prints the exact share.
#[test]
fn real_claude_sessions_match_an_independent_count() {
    let roots = roots();
    if roots.is_empty() {
        eprintln!("NEX_REAL_SAMPLES_DIR / NEX_CORPUS_DIR unset: skipped");
        return;
    }
    let (mut sessions, mut exact, mut files) = (0usize, 0usize, 0usize);
    let mut versions: BTreeSet<String> = BTreeSet::new();
    let mut mismatches: Vec<String> = Vec::new();
    for root in &roots {
        for file in real_files(root) {
            files += 1;
            let bytes = std::fs::read(&file.path).unwrap();
            for l in bytes.split(|b| *b == b'\n').take(50) {
                if let Ok(v) = serde_json::from_slice::<Value>(l)
                    && let Some(ver) = v.get("version").and_then(Value::as_str)
                {
                    versions.insert(ver.to_owned());
                    break;
                }
            }
            let want = independent_figures(&file, &bytes);
            let got = parser_figures(&file, &bytes);
            let keys: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
            for k in keys {
                sessions += 1;
                let (w, g) = (want.get(k), got.get(k));
                if w == g {
                    exact += 1;
                } else {
                    mismatches.push(format!(
                        "{} [{k}]\n    want {w:?}\n    got  {g:?}",
                        file.path.display()
                    ));
                }
            }
        }
    }
    eprintln!(
        "claude real: {files} files, {sessions} sessions, {exact} exact ({:.1} %), versions {versions:?}",
        100.0 * exact as f64 / sessions.max(1) as f64
    );
    assert!(
        mismatches.is_empty(),
        "{} of {sessions} sessions differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// A small deterministic generator (xorshift): the cuts are reproducible from the seed.
struct Cuts(u64);

impl Cuts {
    fn next(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound.max(1) as u64) as usize
    }
}

/// Each real file arrives in random byte cuts (mid-line included; like the tail, only complete
/// lines are pushed and the rest waits), with a take after each cut, and once through a worker
/// restart at a random line: the rows equal one full parse, whatever the cuts.
#[test]
fn real_claude_files_in_random_cuts_equal_one_full_parse() {
    let roots = roots();
    if roots.is_empty() {
        eprintln!("NEX_REAL_SAMPLES_DIR / NEX_CORPUS_DIR unset: skipped");
        return;
    }
    let mut failures = Vec::new();
    // Other cuts than the default: `NEX_CUT_SEED=<u64>`.
    let seed: u64 = std::env::var("NEX_CUT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut n = seed.wrapping_mul(0x1000_0000);
    for root in &roots {
        for file in real_files(root) {
            n += 1;
            let bytes = std::fs::read(&file.path).unwrap();
            // A file that ends mid-line is read up to its last complete line (the tail waits).
            let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let bytes = &bytes[..end];
            let (full, _, _) = full_ledger(&file, bytes);
            for round in 0..2u64 {
                let mut rng = Cuts(0x9e37_79b9_7f4a_7c15 ^ (n << 8) ^ round);
                let mut p = parser_for(&file);
                let mut ledger = Ledger::new();
                let mut pushed = 0usize;
                while pushed < bytes.len() {
                    // Mostly small appends, sometimes a large one.
                    let step = if rng.next(8) == 0 {
                        rng.next(bytes.len())
                    } else {
                        rng.next(4096)
                    } + 1;
                    let cut = (pushed + step).min(bytes.len());
                    let Some(nl) = bytes[pushed..cut].iter().rposition(|b| *b == b'\n') else {
                        if cut == bytes.len() {
                            break;
                        }
                        continue;
                    };
                    let upto = pushed + nl + 1;
                    p.push_lines(&bytes[pushed..upto], pushed as u64, true);
                    upsert(&mut ledger, p.take_items());
                    pushed = upto;
                }
                if ledger != full {
                    failures.push(format!(
                        "{} (round {round}): {}",
                        file.path.display(),
                        first_difference(&ledger, &full)
                    ));
                    break;
                }
            }
            // A worker that committed the first `cut` bytes dies; the next one rebuilds its state
            // from `[0, open_turn_offset)` without emitting, then emits the rest.
            let mut rng = Cuts(0x2545_f491_4f6c_dd1d ^ n);
            let ends = line_ends(bytes);
            let cut = if ends.is_empty() {
                0
            } else {
                ends[rng.next(ends.len())]
            };
            let mut first = parser_for(&file);
            first.push_lines(&bytes[..cut], 0, true);
            let mut ledger = Ledger::new();
            upsert(&mut ledger, first.take_items());
            let off = first.open_turn_offset() as usize;
            let mut second = parser_for(&file);
            second.push_lines(&bytes[..off], 0, false);
            second.push_lines(&bytes[off..], off as u64, true);
            upsert(&mut ledger, second.take_items());
            if ledger != full {
                failures.push(format!(
                    "{} (restart after byte {cut}): {}",
                    file.path.display(),
                    first_difference(&ledger, &full)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} files differ from one full parse:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The first row that differs between two ledgers, both sides shown (shortened).
fn first_difference(got: &Ledger, want: &Ledger) -> String {
    fn short(v: impl std::fmt::Debug) -> String {
        format!("{v:?}").chars().take(600).collect()
    }
    for (key, w) in want {
        let Some(g) = got.get(key) else {
            return format!("session {key:?} missing");
        };
        if g.session != w.session || g.fingerprint != w.fingerprint {
            return format!(
                "session {key:?}: got {} want {}",
                short(&g.session),
                short(&w.session)
            );
        }
        for (id, wt) in &w.turns {
            if g.turns.get(id) != Some(wt) {
                return format!(
                    "turn {id}: got {} want {}",
                    short(g.turns.get(id)),
                    short(wt)
                );
            }
        }
        for (id, wm) in &w.messages {
            if g.messages.get(id) != Some(wm) {
                return format!(
                    "message {id}: got {} want {}",
                    short(g.messages.get(id)),
                    short(wm)
                );
            }
        }
        for (id, wc) in &w.tools {
            if g.tools.get(id) != Some(wc) {
                return format!(
                    "tool {id}: got {} want {}",
                    short(g.tools.get(id)),
                    short(wc)
                );
            }
        }
        if g != w {
            return format!("session {key:?}: extra rows");
        }
    }
    "extra sessions".to_owned()
}
