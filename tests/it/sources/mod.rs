//! Source parsers: exact items for every mapping rule, incremental = full, bad input.
//!
//! - `claude_code`, `claude_subagents`, `codex`, `gemini`: the exact items of each fixture
//!   (every mapping rule).
//! - `gemini_document`: the Gemini legacy whole-file document, parsed and re-read whole.
//! - `gemini_files`: Gemini logs through `FileState` (appends, restarts from the cursor,
//!   subagent order) into a real ledger, discovery, the real samples.
//! - `gemini_variants`: the Gemini real-world variants (subagent documents with short ids and
//!   no parent file, Code Assist logs, shell/slash prompts beside notices), exact items.
//! - `gemini_real`: the real Gemini corpus (`NEX_REAL_SAMPLES_DIR`, `NEX_CORPUS_DIR`) against an
//!   independent count per session, and its logs tailed in random pieces = one full read.
//! - `cursor`, `cursor_incremental`, `cursor_bad_input` (database from `cursor_fixture`):
//!   Cursor's `state.vscdb` store: exact items, secrets never read; in-place updates polled with
//!   cursors = one full poll, read-only; bad databases and mutated values.
//! - `cursor_workspaces`: a whole Cursor `User` folder (global and workspace databases, the
//!   older `ItemTable` chats, NULL values, a chat in two databases), `--cursor-db` forms, polls
//!   per database = one poll of the final state, `aix scan` listing.
//! - `cursor_variants`: the Cursor real-world variants of mapping 4 (a legacy tab holding only
//!   a draft, Cursor 3.x composers listed by no workspace with zero counts and the model on the
//!   prompt, bubbles timed only by `timingInfo`, NULL rows), exact items and skip counts.
//! - `cursor_real`: real `User` folders (`NEX_REAL_SAMPLES_DIR`, `NEX_CORPUS_DIR`) against an
//!   independent count of their chats.
//! - `incremental`: random cuts and restarts give the rows of one full parse.
//! - `opencode`: the OpenCode store (database, drifted schema, legacy JSON): exact items,
//!   lineage, polls with cursors = one full poll, read-only.
//! - `bad_input`: random and mutated lines never panic.
//! - `codex_variants`: one Codex fixture per real-world variant, exact items.
//! - `codex_agents`: Codex mapping 6 (memory citations, spawn links of 0.104 and multi-agent
//!   v2, messages between agents, guardians, `tool_search` results), exact items.
//! - `codex_real`: real Codex rollouts (`NEX_REAL_SAMPLES_DIR`, `NEX_CORPUS_DIR`) against an
//!   independent count, and in random cuts = full.
//! - `samples`: the real samples under `NEX_SAMPLES_DIR` (skipped when unset).
//! - `claude_real`: real Claude Code trees under `NEX_REAL_SAMPLES_DIR` / `NEX_CORPUS_DIR`:
//!   per session = an independent count; random cuts = one full parse (skipped when unset).

mod bad_input;
mod claude_code;
mod claude_real;
mod claude_subagents;
mod codex;
mod codex_agents;
mod codex_real;
mod codex_variants;
mod cursor;
mod cursor_bad_input;
pub(crate) mod cursor_fixture;
mod cursor_incremental;
mod cursor_real;
mod cursor_variants;
mod cursor_workspaces;
mod gemini;
mod gemini_document;
mod gemini_files;
mod gemini_real;
mod gemini_variants;
mod incremental;
pub(crate) mod opencode;
mod samples;

use std::collections::BTreeMap;

use nex::protocol::{Message, SessionInfo, ToolCall, Turn};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

use nex::aix::sources::{
    FileRole, Provider, SessionParser, SourceFile, SubagentMeta, fill_spawn_link, parser_for,
};
use nex::protocol::ImportSessionItem;

/// The mismatches between what a source's reader produced (`got`) and an independent count of
/// the same files (`expected`), per session id: a session missing, differing, or produced with
/// nothing countable; each line starts with `prefix` and the session id.
fn figure_mismatches<F: PartialEq + std::fmt::Debug>(
    prefix: &str,
    expected: &BTreeMap<String, F>,
    got: &BTreeMap<String, F>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (sid, want) in expected {
        match got.get(sid) {
            None => out.push(format!("{prefix}{sid}: not found")),
            Some(have) if have != want => {
                out.push(format!("{prefix}{sid}: read {have:?} != count {want:?}"))
            }
            Some(_) => {}
        }
    }
    for sid in got.keys().filter(|s| !expected.contains_key(*s)) {
        out.push(format!("{prefix}{sid}: read but holds no message"));
    }
    out
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn source(provider: Provider, rel: &str, role: FileRole) -> SourceFile {
    SourceFile {
        provider,
        path: fixture(rel),
        workspace: None,
        role,
    }
}

fn parse_all(file: &SourceFile) -> (Vec<ImportSessionItem>, Box<dyn SessionParser>) {
    let bytes = std::fs::read(&file.path).expect("fixture readable");
    let mut p = parser_for(file);
    p.push_lines(&bytes, 0, true);
    let items = p.take_items();
    (items, p)
}

type TurnRow = (
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    [Option<i64>; 6],
    Option<String>,
    Vec<String>,
);
type MsgRow = (String, String, String, Option<String>, Option<String>, i64);
type ToolRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    Option<i64>,
    Option<String>,
);

fn turns(item: &ImportSessionItem) -> Vec<TurnRow> {
    item.turns
        .iter()
        .map(|t| {
            (
                t.source_turn_id.clone(),
                t.parent_source_turn_id.clone(),
                t.started_at_ms,
                t.completed_at_ms,
                t.model.clone(),
                [
                    t.input_tokens,
                    t.output_tokens,
                    t.cached_input_tokens,
                    t.cache_write_tokens,
                    t.reasoning_tokens,
                    t.total_tokens,
                ],
                t.response_message_source_id.clone(),
                t.query_message_source_ids.clone(),
            )
        })
        .collect()
}

fn messages(item: &ImportSessionItem) -> Vec<MsgRow> {
    item.messages
        .iter()
        .map(|m| {
            (
                m.source_message_id.clone(),
                m.source_turn_id.clone().unwrap_or_default(),
                m.role.clone(),
                m.content.clone(),
                m.thinking.clone(),
                m.sequence,
            )
        })
        .collect()
}

fn tools(item: &ImportSessionItem) -> Vec<ToolRow> {
    item.tool_calls
        .iter()
        .map(|c| {
            (
                c.source_tool_call_id.clone(),
                c.source_turn_id.clone().unwrap_or_default(),
                c.source_message_id.clone(),
                c.tool_name.clone(),
                c.status.clone().unwrap_or_default(),
                c.completed_at_ms,
                c.spawned_source_session_id.clone(),
            )
        })
        .collect()
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn o(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Milliseconds of `2026-03-10T09:mm:ss.000Z` and friends, spelled as offsets from a base.
const CC_BASE: i64 = 1_773_133_200_000; // 2026-03-10T09:00:00Z

fn cc(min: i64, sec: i64) -> i64 {
    CC_BASE + (min * 60 + sec) * 1000
}

fn skipped(p: &dyn SessionParser) -> Vec<(String, u64)> {
    p.stats()
        .skipped_records
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// The documented chain: `fp_0 = H("")`, `fp_n = H(fp_{n-1} || line_n)`.
fn chain(lines: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut state: [u8; 32] = Sha256::digest(b"").into();
    for l in lines {
        let mut h = Sha256::new();
        h.update(state);
        h.update(l);
        state = h.finalize().into();
    }
    format!(
        "{:x}",
        sha2::digest::generic_array::GenericArray::from(state)
    )
}

const CX_A: &str = "0199aaaa-0000-7000-8000-000000000001";
const CX_B: &str = "0199bbbb-0000-7000-8000-000000000002";
const CX_BASE: i64 = 1_772_359_200_000; // 2026-03-01T10:00:00Z

fn cx(min: i64, sec: i64) -> i64 {
    CX_BASE + (min * 60 + sec) * 1000
}

// ---- incremental = full ------------------------------------------------------------------------

/// Every line-log fixture file (Claude Code, Codex, Gemini logs) with the role discovery
/// would give it (the files that create no session are tested on their own). The Claude Code
/// `prompts` fixture opens two turns before its first model.
fn all_fixtures() -> Vec<SourceFile> {
    let cc = |rel: &str, role: FileRole| {
        source(Provider::ClaudeCode, &format!("claude-code/{rel}"), role)
    };
    let cx = |rel: &str| source(Provider::Codex, &format!("codex/{rel}"), FileRole::Main);
    let nested_meta = SubagentMeta::from_json(
        &std::fs::read(fixture(
            "claude-code/nested/dddddddd-0000-4000-8000-000000000004/subagents/agent-a5b6c7d.meta.json",
        ))
        .unwrap(),
    );
    let orphan_meta = SubagentMeta::from_json(
        &std::fs::read(fixture(
            "claude-code/orphan/12121212-0000-4000-8000-00000000000c/subagents/agent-a0f1e2d3c4b5a6978.meta.json",
        ))
        .unwrap(),
    );
    vec![
        cc(
            "main/aaaaaaaa-0000-4000-8000-000000000001.jsonl",
            FileRole::Main,
        ),
        cc(
            "inline/bbbbbbbb-0000-4000-8000-000000000002.jsonl",
            FileRole::Main,
        ),
        cc(
            "flat/cccccccc-0000-4000-8000-000000000003.jsonl",
            FileRole::Main,
        ),
        cc(
            "flat/agent-f1a7001.jsonl",
            FileRole::Subagent {
                agent_id: s("f1a7001"),
                parent_session_id: None,
                meta: None,
            },
        ),
        cc(
            "nested/dddddddd-0000-4000-8000-000000000004.jsonl",
            FileRole::Main,
        ),
        cc(
            "nested/dddddddd-0000-4000-8000-000000000004/subagents/agent-a5b6c7d.jsonl",
            FileRole::Subagent {
                agent_id: s("a5b6c7d"),
                parent_session_id: o("dddddddd-0000-4000-8000-000000000004"),
                meta: nested_meta,
            },
        ),
        cc(
            "resumed/eeeeeeee-0000-4000-8000-000000000005.jsonl",
            FileRole::Main,
        ),
        cc(
            "prompts/ffffffff-0000-4000-8000-000000000006.jsonl",
            FileRole::Main,
        ),
        cc(
            "queued/ffffffff-0000-4000-8000-000000000071.jsonl",
            FileRole::Main,
        ),
        cc(
            "queue-ops/ffffffff-0000-4000-8000-000000000081.jsonl",
            FileRole::Main,
        ),
        cc(
            "resumed-1.0/eeeeeeee-0000-4000-8000-00000000000e.jsonl",
            FileRole::Main,
        ),
        cc(
            "orphan/12121212-0000-4000-8000-00000000000c/subagents/agent-a0f1e2d3c4b5a6978.jsonl",
            FileRole::Subagent {
                agent_id: s("a0f1e2d3c4b5a6978"),
                parent_session_id: o("12121212-0000-4000-8000-00000000000c"),
                meta: orphan_meta,
            },
        ),
        cx(&format!("main/rollout-2026-03-01T10-00-00-{CX_A}.jsonl")),
        cx(&format!("sub/rollout-2026-03-01T10-05-00-{CX_B}.jsonl")),
        cx("fork/rollout-2026-03-02T11-00-00-0199cccc-0000-7000-8000-000000000003.jsonl"),
        cx("edge/rollout-2026-03-03T12-00-00-0199dddd-0000-7000-8000-000000000004.jsonl"),
        cx("old/rollout-2025-08-30T11-00-00-0198f000-0000-4000-8000-000000000010.jsonl"),
        cx("per-request/rollout-2025-09-26T14-00-00-01998000-0000-7000-8000-000000000020.jsonl"),
        cx("review/rollout-2026-02-19T15-00-00-019c7400-0000-7000-8000-000000000050.jsonl"),
        cx("review/rollout-2026-02-19T15-53-21-019c74ac-b57f-7000-8000-000000000051.jsonl"),
        cx("spawned/rollout-2026-04-01T10-05-00-019d0005-0000-7000-8000-000000000040.jsonl"),
        cx("paginated/rollout-2026-10-05T09-00-00-01a1b000-0000-7000-8000-000000000160.jsonl"),
        cx("paginated/rollout-2026-10-05T09-00-10-01a1b001-0000-7000-8000-000000000161.jsonl"),
    ]
    .into_iter()
    .chain(codex_agents::agent_fixtures())
    .chain(gemini::gemini_fixtures())
    .chain(gemini_variants::variant_fixtures())
    .collect()
}

/// Line-log fixtures that make no session (nothing importable in them).
fn no_session_fixtures() -> Vec<SourceFile> {
    vec![source(
        Provider::Codex,
        "codex/old-empty/rollout-2025-08-30T12-00-00-0198f000-0000-4000-8000-000000000011.jsonl",
        FileRole::Main,
    )]
}

/// One session's rows after upserts by deterministic id (what the ledger does with items).
#[derive(Debug, Default, PartialEq)]
struct SessionRows {
    fingerprint: String,
    session: SessionInfo,
    turns: BTreeMap<String, Turn>,
    messages: BTreeMap<String, Message>,
    tools: BTreeMap<String, ToolCall>,
}

type Ledger = BTreeMap<(String, String), SessionRows>;

fn newer(slot: &mut Option<String>, v: &Option<String>) {
    if v.as_deref().is_some_and(|s| !s.trim().is_empty()) {
        slot.clone_from(v);
    }
}

/// Last write wins per turn/message/tool id; session header fields: non-blank newer wins. A
/// turn without a model takes the item's session model, as the ledger does (`turns.model`).
fn upsert(ledger: &mut Ledger, items: Vec<ImportSessionItem>) {
    for item in items {
        let session_model = item.session.model.clone().filter(|m| !m.trim().is_empty());
        let rows = ledger
            .entry((item.source_provider.clone(), item.source_session_id.clone()))
            .or_default();
        rows.fingerprint = item.source_session_fingerprint;
        let (h, n) = (&mut rows.session, &item.session);
        newer(&mut h.label_hint, &n.label_hint);
        newer(&mut h.model, &n.model);
        newer(&mut h.provider, &n.provider);
        newer(&mut h.workspace_path, &n.workspace_path);
        newer(&mut h.project, &n.project);
        newer(&mut h.parent_source_session_id, &n.parent_source_session_id);
        newer(&mut h.parent_source_message_id, &n.parent_source_message_id);
        newer(&mut h.spawn_tool_call_id, &n.spawn_tool_call_id);
        newer(&mut h.task_description, &n.task_description);
        newer(&mut h.task_status, &n.task_status);
        if n.created_at_ms.is_some() {
            h.created_at_ms = n.created_at_ms;
        }
        if n.updated_at_ms.is_some() {
            h.updated_at_ms = n.updated_at_ms;
        }
        if n.metadata.is_some() {
            h.metadata.clone_from(&n.metadata);
        }
        h.is_subagent |= n.is_subagent;
        if item.turns.is_empty() {
            // The ledger gives a session without turns a synthetic root turn.
            rows.turns.insert(s("__root__"), Turn::default());
        }
        for mut t in item.turns {
            if t.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                t.model.clone_from(&session_model);
            }
            // Item rule 14: a turn without `toolCallCount` gets the count of the item's tool
            // calls that name it (an item carrying the turn whole), as the import writes it.
            if t.tool_call_count.is_none() {
                let named = item
                    .tool_calls
                    .iter()
                    .filter(|c| c.source_turn_id.as_deref() == Some(t.source_turn_id.as_str()))
                    .count();
                t.tool_call_count = Some(named as i64);
            }
            rows.turns.insert(t.source_turn_id.clone(), t);
        }
        for m in item.messages {
            rows.messages.insert(m.source_message_id.clone(), m);
        }
        for c in item.tool_calls {
            rows.tools.insert(c.source_tool_call_id.clone(), c);
        }
    }
}

/// Byte offsets just past each line's `\n`.
fn line_ends(bytes: &[u8]) -> Vec<usize> {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect()
}

/// Every fixture as written, and again followed by a malformed and a blank line (lines that
/// touch no turn but move the fingerprint).
fn fixture_variants() -> Vec<(SourceFile, Vec<u8>)> {
    all_fixtures()
        .into_iter()
        .chain(no_session_fixtures())
        .flat_map(|file| {
            let bytes = std::fs::read(&file.path).unwrap();
            let mut tail = bytes.clone();
            tail.extend_from_slice(b"{\"type\":\"user\",\n\n");
            [(file.clone(), bytes), (file, tail)]
        })
        .collect()
}

fn full_ledger(file: &SourceFile, bytes: &[u8]) -> (Ledger, String, nex::aix::sources::ParseStats) {
    let mut p = parser_for(file);
    p.push_lines(bytes, 0, true);
    let items = p.take_items();
    let mut ledger = Ledger::new();
    upsert(&mut ledger, items);
    (ledger, p.fingerprint(), p.stats().clone())
}
