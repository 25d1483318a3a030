//! Source parsers: one per agent, each a pure function of bytes (plus the in-memory parse state
//! of the file) to import items. No I/O happens here: discovery and the tail watcher read files
//! and feed complete lines in; tests feed fixtures.
//!
//! The contract every parser keeps (SOURCES.md "Tail", TARGETS R5):
//! - Lines are fed in file order, each call ending at a line boundary; how the file was cut into
//!   calls does not change any item, the fingerprint or the stats.
//! - `take_items` returns the items for every turn touched since the last call (all turns of
//!   the file on a full parse), plus the session header as of the lines seen so far. Each
//!   touched turn is its row with its running aggregates, and either all its messages and tool
//!   calls, or (the line parsers: Claude Code and Codex built on `assembler`, Gemini CLI logs on
//!   its conversation state) only those new or changed since the last call, the row then carrying `toolCallCount` (item rule 14). Importing the
//!   sequence of partial items gives the same ledger rows as importing one item of the final
//!   file, and an append costs O(appended lines), not O(open turn).
//! - Lines fed with `emit = false` only rebuild state (used when a worker resumes from a cursor
//!   it has no state for: one scan of `[0, open_turn_offset)`, then the rest with `emit = true`,
//!   so the open turn is sent whole once and as deltas after that). What they produced counts
//!   as sent.
//! - Unknown record types and fields never fail; a malformed line is skipped and counted.
//!
//! What this implementation adds to the contract:
//! - Every fed line (blank and malformed ones too) moves the file's fingerprint, so the next
//!   `take_items` re-sends the file's own item (header plus its open turn) even when no turn
//!   changed: the ledger's fingerprint always follows the file. An item is never sent without a
//!   turn (the ledger would invent a root turn for it that no later item could remove).
//! - A tool result that arrives after its call's turn closed re-sends that tool call alone.
//! - Memory per file: the open turn of each item, turns touched since the last take, unresolved
//!   tool calls, the uuid -> turn map (Claude Code DAG parents), the agent map.
//! - `open_turn_offset` is the smallest start of any item's open turn (a main file's inline
//!   sidechain agents have their own); with no turn yet, the bytes consumed so far.
//!
//! Layout: `claude_code`, `codex` and `gemini` (line parsers, one each), `cursor` and
//! `opencode` (polled stores, contract in `store`), `assembler` (held turns, touched sets,
//! partial-item assembly), `common` (line cutting, fingerprint chain, timestamps), `lenient`
//! (typed views of records that never fail on a wrong type).

mod assembler;
pub mod claude_code;
pub mod codex;
pub(crate) mod common;
pub mod cursor;
pub mod gemini;
pub(crate) mod lenient;
pub mod opencode;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::protocol::{ImportSessionItem, SessionInfo};

pub use claude_code::ClaudeCodeParser;
pub use codex::CodexParser;
pub use cursor::CursorStore;
pub use gemini::GeminiParser;
pub use opencode::OpenCodeStore;
pub use store::{SessionStore, SessionUpdate, StoreCursor, StorePoll, UpdateSink, poll_all};

/// A fresh parser for `file` (its provider and role decide which parser and how it names the
/// session). Feed it the file from byte 0. Store providers (Cursor, OpenCode) have no session
/// files: discovery never yields one, and a file handed in anyway parses to nothing.
pub fn parser_for(file: &SourceFile) -> Box<dyn SessionParser> {
    parser_with_copies(file, None)
}

/// [`parser_for`], with the run's index of Claude Code lines several files hold: a Claude Code
/// parser then skips the lines another file owns (`aix::claude_copies`).
pub fn parser_with_copies(
    file: &SourceFile,
    copies: Option<std::sync::Arc<crate::aix::claude_copies::CopyIndex>>,
) -> Box<dyn SessionParser> {
    parser_with_indexes(file, copies, None)
}

/// [`parser_with_copies`], with the run's index of Codex `/review` links too
/// (`aix::codex_reviews`).
pub fn parser_with_indexes(
    file: &SourceFile,
    copies: Option<std::sync::Arc<crate::aix::claude_copies::CopyIndex>>,
    reviews: Option<std::sync::Arc<crate::aix::codex_reviews::ReviewIndex>>,
) -> Box<dyn SessionParser> {
    match file.provider {
        Provider::ClaudeCode => Box::new(ClaudeCodeParser::with_copies(file, copies)),
        Provider::Codex => Box::new(CodexParser::with_reviews(file, reviews)),
        Provider::GeminiCli => Box::new(GeminiParser::new(file)),
        Provider::Cursor | Provider::OpenCode => Box::new(NoLines::default()),
    }
}

/// The parser of a provider whose sessions are not line files: consumes lines, emits nothing.
#[derive(Default)]
struct NoLines {
    stats: ParseStats,
    consumed: u64,
}

impl SessionParser for NoLines {
    fn push_lines(&mut self, bytes: &[u8], offset: u64, _emit: bool) {
        self.consumed = offset + bytes.len() as u64;
        self.stats.lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    fn take_items(&mut self) -> Vec<ImportSessionItem> {
        Vec::new()
    }
    fn open_turn_offset(&self) -> u64 {
        self.consumed
    }
    fn fingerprint(&self) -> String {
        String::new()
    }
    fn stats(&self) -> &ParseStats {
        &self.stats
    }
}

/// Fills the lineage a child's own file did not give with what its parent's file knows
/// (`spawn_links()` of the parent's parser, by agent id). Never overwrites a non-blank value, so
/// it is safe to apply on every emitted child item.
pub fn fill_spawn_link(session: &mut SessionInfo, link: &SpawnLink) {
    fn fill(slot: &mut Option<String>, value: Option<&String>) {
        if slot.as_deref().is_none_or(|s| s.trim().is_empty())
            && let Some(v) = value.filter(|v| !v.trim().is_empty())
        {
            *slot = Some(v.clone());
        }
    }
    session.is_subagent = true;
    fill(&mut session.spawn_tool_call_id, Some(&link.tool_use_id));
    fill(&mut session.task_description, link.description.as_ref());
    fill(&mut session.task_status, link.status.as_ref());
}

/// The key under which a spawning call's link is known by its prompt (beside the agent ids of
/// [`SessionParser::spawn_links`]): `prompt:` and the first 32 hex digits of the SHA-256 of the
/// prompt's text. A subagent whose agent id no link names is linked by the key of its first
/// prompt ([`claude_code::first_prompt`]) to the first call of its parent that sent that prompt.
pub fn prompt_link_key(prompt: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex = common::hex32(&Sha256::digest(prompt.as_bytes()));
    format!("{PROMPT_LINK_PREFIX}{hex}")
}

/// The prefix of [`prompt_link_key`]'s keys (agent ids never hold a `:`).
pub const PROMPT_LINK_PREFIX: &str = "prompt:";

/// The key under which a Claude Code `Workflow` call's link is known (beside the agent ids of
/// [`SessionParser::spawn_links`]): `workflow:` and the run id its result names
/// (`toolUseResult.runId`). Every agent of that run, `<session>/subagents/workflows/<runId>/
/// agent-<id>.jsonl` ([`workflow_run`]), is linked by it to that call.
pub fn workflow_link_key(run_id: &str) -> String {
    format!("workflow:{run_id}")
}

/// The workflow run a Claude Code subagent file belongs to: `<runId>` of
/// `<session>/subagents/workflows/<runId>/agent-<id>.jsonl`.
pub fn workflow_run(path: &std::path::Path) -> Option<String> {
    let dirs: Vec<&str> = path
        .ancestors()
        .skip(1)
        .take(3)
        .filter_map(|d| d.file_name()?.to_str())
        .collect();
    match dirs.as_slice() {
        [run, "workflows", "subagents"] if !run.is_empty() => Some((*run).to_owned()),
        _ => None,
    }
}

/// The agents we read. `as_str` is the item's `sourceProvider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    ClaudeCode,
    Codex,
    Cursor,
    OpenCode,
    GeminiCli,
}

impl Provider {
    /// Every provider, in the order `aix scan` lists them.
    pub const ALL: [Provider; 5] = [
        Provider::ClaudeCode,
        Provider::Codex,
        Provider::Cursor,
        Provider::OpenCode,
        Provider::GeminiCli,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::ClaudeCode => "claude-code",
            Provider::Codex => "codex",
            Provider::Cursor => "cursor",
            Provider::OpenCode => "opencode",
            Provider::GeminiCli => "gemini-cli",
        }
    }
}

/// A session file found by discovery, with what its path says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub provider: Provider,
    pub path: PathBuf,
    pub role: FileRole,
    /// The session's working directory when the layout around the file tells it and the file
    /// does not (Gemini CLI: the project registry of `<tmp>/<project>/`); discovery fills it.
    pub workspace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRole {
    /// A main session file.
    Main,
    /// A Claude Code subagent file (`agent-<id>.jsonl`, flat or under `<session>/subagents/`).
    Subagent {
        agent_id: String,
        /// The parent session id when the layout tells it (`<session>/subagents/`).
        parent_session_id: Option<String>,
        /// `toolUseId` (and `description` when present) of the sibling `agent-<id>.meta.json`.
        meta: Option<SubagentMeta>,
    },
}

impl FileRole {
    /// The role a Claude Code file's path gives it, `None` for files that are not sessions:
    /// `<sessionId>.jsonl` is a main file; `agent-<id>.jsonl` is a subagent file, whose parent is
    /// named by the layout when it sits in `<sessionId>/subagents/` (or in a workflow run below
    /// it, `<sessionId>/subagents/workflows/<runId>/`). `meta` is left empty: read the sibling
    /// (`SubagentMeta::path_for`) with `SubagentMeta::from_json`.
    pub fn claude_code_for(path: &std::path::Path) -> Option<FileRole> {
        let name = path.file_name()?.to_str()?;
        let stem = name.strip_suffix(".jsonl")?;
        let Some(agent_id) = stem.strip_prefix("agent-").filter(|a| !a.is_empty()) else {
            return (stem != "journal" && !stem.is_empty()).then_some(FileRole::Main);
        };
        let dirs: Vec<&str> = path
            .ancestors()
            .skip(1)
            .take(4)
            .filter_map(|d| d.file_name()?.to_str())
            .collect();
        let parent_session_id = match dirs.as_slice() {
            ["subagents", session, ..] => Some(*session),
            [_run, "workflows", "subagents", session] => Some(*session),
            _ => None,
        };
        Some(FileRole::Subagent {
            agent_id: agent_id.to_owned(),
            parent_session_id: parent_session_id.map(str::to_owned),
            meta: None,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubagentMeta {
    pub tool_use_id: Option<String>,
    pub description: Option<String>,
}

impl SubagentMeta {
    /// `agent-<id>.meta.json` beside a subagent's `agent-<id>.jsonl`.
    pub fn path_for(agent_file: &std::path::Path) -> PathBuf {
        let stem = agent_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        agent_file.with_file_name(format!("{stem}.meta.json"))
    }

    /// Reads an `agent-<id>.meta.json` (`{agentType, description, toolUseId, …}`); `None` when
    /// the bytes are not a JSON object. Unknown fields are ignored, blank values read as absent.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let field = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        v.is_object().then(|| Self {
            tool_use_id: field("toolUseId"),
            description: field("description"),
        })
    }
}

/// What a parent file knows about a subagent it spawned: filled in on a child item whose own
/// file does not say it (lineage resolved by ids, whatever order the files are read in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpawnLink {
    pub tool_use_id: String,
    pub description: Option<String>,
    pub status: Option<String>,
}

/// Counters of one file's parse, summed by `aix scan` and the run's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseStats {
    pub lines: u64,
    pub malformed_lines: u64,
    /// Lines read after repair: invalid UTF-8 replaced by U+FFFD, raw control characters in
    /// strings escaped (the shared line cutter does it, `common::repair_line`).
    pub lossy_lines: u64,
    /// Records that are not messages (progress, file-history-snapshot, unknown types, …), by
    /// record type.
    pub skipped_records: BTreeMap<String, u64>,
    /// What marks the file's format, as first seen, named with the field that gave it: the
    /// agent's version where its records carry one (Claude Code `version 2.0.14`, Codex
    /// `cli_version 0.46.0` from `session_meta`), else the form's name (`pre-envelope` Codex
    /// rollouts, Gemini CLI `json document` or `jsonl log`). Shown by `aix scan` and
    /// `nex doctor` for files that give no session.
    pub format_version: Option<String>,
}

/// The incremental parse state of one file.
pub trait SessionParser: Send {
    /// Feeds complete lines. `bytes` starts at byte `offset` of the file and ends at a line
    /// boundary. With `emit == false` the lines only rebuild state and their turns are not
    /// returned by the next `take_items`.
    fn push_lines(&mut self, bytes: &[u8], offset: u64, emit: bool);

    /// Items for every turn touched by emitting lines since the last call; empty when none.
    fn take_items(&mut self) -> Vec<ImportSessionItem>;

    /// Byte offset where the open (last) turn began: a restart re-parses from here.
    fn open_turn_offset(&self) -> u64;

    /// Chained SHA-256 over complete lines: `fp_0 = H("")`, `fp_n = H(fp_{n-1} || line_n)`.
    fn fingerprint(&self) -> String;

    fn stats(&self) -> &ParseStats;

    /// Subagents this file spawned, by agent id (Claude Code main and subagent files; empty
    /// elsewhere).
    fn spawn_links(&self) -> BTreeMap<String, SpawnLink> {
        BTreeMap::new()
    }

    /// Claude Code: the digest of the uuids of this file that another file owns
    /// (`aix::claude_copies`), recorded in the file's cursor; a run that finds another digest
    /// reads the file again whole. `None` elsewhere, and when the file owns all its lines.
    fn copies_digest(&self) -> Option<String> {
        None
    }

    /// Claude Code: the files that lost lines to a claim this parser's lines made since the
    /// last call (read them again whole). Empty elsewhere.
    fn take_displaced(&mut self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// The session only this file can produce, fixed by the file's name (a Claude Code main
    /// file `<uuid>.jsonl`: that uuid; no other file's lines become that session). With
    /// [`SessionParser::copies_digest`] it lets a whole read that yields no item for it, its
    /// lines now copies another file owns, retract the session an earlier read produced (item
    /// rule 15, `file_state`). `None` elsewhere: their sessions may come from several files, or
    /// a source that yields nothing may merely have lost its content (rows outlive it).
    fn sole_session(&self) -> Option<String> {
        None
    }

    /// Sessions of this file that an earlier mapping named otherwise, as `(former id, current
    /// id)`: the first whole read after an upgrade that yields the current session retracts
    /// the former one (item rule 15, `file_state`), so the ledger does not keep the session
    /// twice under two names. Empty elsewhere.
    fn renamed_sessions(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Makes the next `take_items` re-send the file's own item (header and open turn) although
    /// no line came: for a child whose lineage the runtime learnt later from its parent's
    /// `spawn_links()` (apply `fill_spawn_link` to the re-sent item). No effect before the item
    /// has a turn.
    fn resend_header(&mut self) {}
}
