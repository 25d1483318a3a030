//! Claude Code session files (SOURCES.md "Mapping rules: Claude Code").
//!
//! One parser per file. A main file gives its own item plus one item per inline sidechain agent
//! (old layout: `isSidechain` lines inside the main file); a subagent file (flat
//! `agent-<id>.jsonl` or `<session>/subagents/agent-<id>.jsonl`) gives one item whose source
//! session id is `<parentSessionId>/agent-<agentId>`.
//!
//! Session ids:
//! - main file: the file stem when it is a UUID (the file is `<sessionId>.jsonl`; a resumed
//!   session's file starts with lines copied from the earlier session, which keep that
//!   session's `sessionId`), else the first `sessionId` in the body;
//! - subagent file: `<parent>/agent-<agentId>`, parent from the layout, else the body's
//!   `sessionId` (subagent lines carry their parent's);
//! - inline sidechain agent: `<mainSessionId>/agent-<agentId>`; lines without `agentId` inherit
//!   it from their `parentUuid`, and a root without one is named by its own uuid.
//!
//! Turns (SOURCES.md "Real-world variants"): a turn opens at each prompt someone typed: a `user`
//! line that is no tool result, no `isMeta`/`isVisibleInTranscriptOnly`/`isCompactSummary`
//! record, and does not start with shell-mode (`<bash-input>`, `<bash-stdout>`,
//! `<bash-stderr>`), local command output, an interrupt marker, a `<task-notification>` or the
//! 1.0.x compaction text; slash commands and image-only messages are prompts. So is a prompt the
//! user typed while the agent worked, handed to it mid-turn (2.1.x): an `attachment` line
//! `queued_command` in `prompt` mode (or without a mode) is read as the `user` line it stands for,
//! its `prompt` the content (metadata `queued: true`); a background task's notice
//! (`task-notification` mode) stays a skipped attachment. 2.1.81-2.1.87 log such a prompt only in
//! the input queue (`queue-operation` lines): the `remove` that hands it to the agent stands for
//! its `user` line (`queue`). The other lines
//! stay messages of the current turn; those before the item's first prompt open a turn without
//! one, which that prompt then takes as its own (a 2.x session begun by a slash command starts
//! with the command's `isMeta` caveat, written after it), unless a reply came first. A line
//! whose uuid the item already holds is a copy and
//! changes nothing (a 2.1.x subagent sent a follow-up writes its earlier transcript to its file
//! again, same uuids, before the new prompt): the first line stands.
//!
//! Tokens: one API response (`message.id`) counts once per item, with the usage of its last
//! line whatever its `requestId`, in the turn of its first line; `<synthetic>` lines count none.
//!
//! Models: a turn's model is its last reply's model, else the model in effect before it; turns
//! opened before the item's first model stay in memory (pinned) until that model comes and are
//! re-sent once with it. So every field of a turn is a function of the final file, wherever the
//! file was cut (the ledger would otherwise fill a missing turn model with the session model of
//! the moment).
//!
//! Lines several files hold (a resumed 1.0.x file starts with a copy of the earlier
//! session's conversation, same uuids and `message.id`s, `sessionId` and timestamps partly
//! rewritten; a 2.1.x `aside_question` subagent file starts with a copy of its parent's
//! conversation): with the run's index
//! (`aix::claude_copies`, [`ClaudeCodeParser::with_copies`]) a line whose uuid another file owns
//! is skipped whole (counted as a `copy` record) before it reaches any item; within the file, the
//! first line with a uuid stands (above). One rule: a uuid belongs to one item. The own item
//! then carries `copiesElsewhere`, and its fingerprint folds in the uuids it skipped.

//! Fingerprints: the file's own item carries the file's chain (every line of the file); an
//! inline agent's item carries a chain over its own lines only, so it changes exactly when one
//! of its lines is appended.
//!
//! Lineage: a spawning `Task`/`Agent` call learns its child's agent id from `agent_progress`
//! (`data.agentId` + `parentToolUseID`), from its result's `toolUseResult.agentId`, or (old
//! inline layout) from the result line's own `agentId`; the call then carries
//! `spawnedSourceSessionId = <rootSessionId>/agent-<agentId>` and `spawn_links()` maps the agent
//! id to the call, its `description` and the result's `status`. A subagent file's item takes
//! `spawnToolCallId`/`taskDescription` from `FileRole::Subagent.meta`; what is still blank is
//! filled by the runtime from the parent's links (`fill_spawn_link`). Inline agents get theirs
//! from the same file. A call whose result never names its agent (interrupted: `is_error`,
//! `toolUseResult` a plain string) is also known by its prompt: `spawn_links()` holds, beside
//! the agent ids, `prompt:<digest>` of every spawning call's `input.prompt` (the first call to
//! send a prompt keeps it), and the runtime links a subagent no agent id names to the call that
//! sent its first prompt (`aix::lineage`). That call carries no `spawnedSourceSessionId`: the
//! link is the child's. An agent Claude Code runs itself (`agent-acompact-…`) is never linked
//! by prompt. A `Workflow` call (2.1.16x) starts a run of agents and its result names the run
//! (`toolUseResult.runId`): `spawn_links()` holds `workflow:<runId>`, which links every agent
//! of `<session>/subagents/workflows/<runId>/`; the call names none of them.
//!
//! Reading: each line is read typed, with only the fields the mapping uses and every leaf
//! lenient (`record`), so progress payloads are skipped without being built.

mod item;
mod prompt;
mod queue;
mod record;
mod tool_result;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use self::item::ItemState;
pub use self::prompt::first_prompt;
use self::record::Record;
use super::assembler::Taken;
use super::common::{FingerprintChain, Line, LineCursor, count_skip, parse_rfc3339_ms};
use super::{FileRole, ParseStats, SessionParser, SourceFile, SpawnLink};
use crate::aix::claude_copies::{CopyIndex, FileId};
use crate::protocol::{ImportSessionItem, SessionInfo};

/// `session.provider` of every Claude Code item.
pub const MODEL_PROVIDER: &str = "anthropic";

/// The incremental parser of one Claude Code file.
pub struct ClaudeCodeParser {
    role: FileRole,
    /// The file stem when it is a UUID (main files only).
    stem_session: Option<String>,
    /// The first `sessionId` in the body.
    body_session: Option<String>,
    cursor: LineCursor,
    chain: FingerprintChain,
    stats: ParseStats,
    own: ItemState,
    /// Inline sidechain agents of a main file, by agent key.
    inline: BTreeMap<String, ItemState>,
    /// Inline line uuid -> agent key, to place lines that lack `agentId`.
    inline_agent_of: HashMap<Box<str>, String>,
    /// Agents this file spawned, by agent id.
    links: BTreeMap<String, SpawnLink>,
    /// The run's ownership index of lines several files hold, with this file's id in it.
    copies: Option<(Arc<CopyIndex>, FileId)>,
    /// The uuids of the lines skipped as copies another file owns, in file order.
    copies_chain: Option<FingerprintChain>,
}

impl ClaudeCodeParser {
    /// A parser that reads every line as the file's own (no other file consulted).
    pub fn new(file: &SourceFile) -> Self {
        Self::with_copies(file, None)
    }

    /// A parser that skips the lines `copies` gives to another file (`aix::claude_copies`).
    /// Making it reads the claims of the file's project when the index has not read them yet.
    pub fn with_copies(file: &SourceFile, copies: Option<Arc<CopyIndex>>) -> Self {
        let stem_session = match file.role {
            FileRole::Main => file
                .path
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| looks_like_uuid(s))
                .map(str::to_owned),
            FileRole::Subagent { .. } => None,
        };
        Self {
            role: file.role.clone(),
            stem_session,
            body_session: None,
            cursor: LineCursor::default(),
            chain: FingerprintChain::default(),
            stats: ParseStats::default(),
            own: ItemState::default(),
            inline: BTreeMap::new(),
            inline_agent_of: HashMap::new(),
            links: BTreeMap::new(),
            copies: copies.map(|index| {
                let id = index.file(&file.path);
                (index, id)
            }),
            copies_chain: None,
        }
    }

    /// Whether the line (at byte `offset`) is a copy of a line another file owns (it is then
    /// skipped whole).
    fn is_copy_elsewhere(&mut self, r: &Record<'_>, offset: u64) -> bool {
        let (Some((index, file)), Some(uuid)) = (&self.copies, r.uuid.as_deref()) else {
            return false;
        };
        if uuid.trim().is_empty() {
            return false;
        }
        let at = r.timestamp.as_deref().and_then(parse_rfc3339_ms);
        if index.claim(*file, uuid, at, r.session_id.as_deref(), offset) {
            return false;
        }
        self.copies_chain
            .get_or_insert_with(FingerprintChain::default)
            .push(uuid.trim().as_bytes());
        true
    }

    /// The own item's fingerprint: the file's chain, folded with the chain of the lines it
    /// skipped as copies (their owner can change while this file does not).
    fn own_fingerprint(&self) -> String {
        match &self.copies_chain {
            None => self.chain.hex(),
            Some(copies) => {
                let mut both = FingerprintChain::default();
                both.push(self.chain.hex().as_bytes());
                both.push(copies.hex().as_bytes());
                both.hex()
            }
        }
    }

    /// The session id of the file's root session: the main session of a main file, the parent
    /// session of a subagent file.
    fn root_session(&self) -> Option<&str> {
        match &self.role {
            FileRole::Main => self
                .stem_session
                .as_deref()
                .or(self.body_session.as_deref()),
            FileRole::Subagent {
                parent_session_id, ..
            } => parent_session_id
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .or(self.body_session.as_deref()),
        }
    }

    fn own_session_id(&self) -> Option<String> {
        let root = self.root_session()?;
        match &self.role {
            FileRole::Main => Some(root.to_owned()),
            FileRole::Subagent { agent_id, .. } => Some(format!("{root}/agent-{agent_id}")),
        }
    }

    fn line(&mut self, line: Line<'_>) {
        self.stats.lines += 1;
        self.chain.push(line.bytes);
        // Every line, even a blank or malformed one, moves the file's chain, which is the item's
        // fingerprint: the item is re-sent (header and open turn) so that the ledger's
        // fingerprint follows the file.
        self.own.asm.header_dirty = true;
        if line.bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let mut r: Record<'_> = match serde_json::from_slice(line.bytes) {
            Ok(r) => r,
            Err(_) => {
                self.stats.malformed_lines += 1;
                return;
            }
        };
        if r.kind() == "attachment" {
            r.take_queued_prompt();
        }
        if self.stats.format_version.is_none() {
            self.stats.format_version = r.version.as_deref().map(|v| format!("version {v}"));
        }
        if let Some(sid) = r.session_id.as_deref() {
            if self.body_session.is_none() {
                self.body_session = Some(sid.to_owned());
            }
            if let Some(stem) = &self.stem_session
                && sid != stem
            {
                let sid = sid.to_owned();
                self.own.set_resumed_from(&sid);
            }
        }
        if self.is_copy_elsewhere(&r, line.offset) {
            count_skip(&mut self.stats, "copy");
            return;
        }

        // Which item the line belongs to.
        let inline_key = (matches!(self.role, FileRole::Main) && r.is_sidechain == Some(true))
            .then(|| self.inline_key(&r));
        // Only lines that can name a spawned session need the prefix.
        let spawned_prefix = matches!(r.kind(), "user" | "progress")
            .then(|| self.root_session().map(|r| format!("{r}/agent-")))
            .flatten();
        let item = match &inline_key {
            Some(key) => {
                let item = self
                    .inline
                    .entry(key.clone())
                    .or_insert_with(ItemState::with_own_chain);
                if let Some(chain) = item.chain.as_mut() {
                    chain.push(line.bytes);
                }
                item
            }
            None => &mut self.own,
        };
        item.note_timestamp(&r);

        let mut spawns = Vec::new();
        match (r.kind(), r.subtype.as_deref()) {
            ("user", _)
                if queue::queued_text(&r).is_some_and(|t| {
                    item.queue.is_delivered(item.open_turn_id().as_deref(), t)
                }) =>
            {
                // The attachment of a prompt its queue's `remove` delivered (`queue`).
                item.note_uuid(&r);
                count_skip(&mut self.stats, "attachment/queued_command_delivered");
            }
            ("user" | "assistant", _) | ("system", Some("compact_boundary")) => {
                spawns = item.content_line(&line, r, spawned_prefix.as_deref());
            }
            ("queue-operation", _) => match item.queue.apply(&r) {
                Some(text) => {
                    let r = queue::prompt_line(r, text.clone(), item.open_turn_id());
                    spawns = item.content_line(&line, r, spawned_prefix.as_deref());
                    if let Some(turn) = item.open_turn_id() {
                        item.queue.deliver(turn, text);
                    }
                }
                _ => count_skip(&mut self.stats, "queue-operation"),
            },
            ("summary" | "ai-title" | "custom-title", _) => item.set_title(&r),
            ("progress", _) => {
                item.note_uuid(&r);
                count_skip(&mut self.stats, "progress");
                let data = r.data.0.as_ref();
                if data.and_then(|d| d.kind.as_deref()) == Some("agent_progress")
                    && let (Some(agent), Some(tool)) = (
                        data.and_then(|d| d.agent_id.as_deref()),
                        r.parent_tool_use_id.as_deref(),
                    )
                {
                    let spawned = spawned_prefix.as_deref().map(|p| format!("{p}{agent}"));
                    if item.mark_spawn(tool, spawned) {
                        spawns.push(item::SpawnSeen {
                            tool_use_id: tool.to_owned(),
                            agent_id: agent.to_owned(),
                            status: None,
                        });
                    }
                }
            }
            ("system", subtype) => {
                item.note_uuid(&r);
                let subtype = subtype.unwrap_or("unknown");
                count_skip(&mut self.stats, &format!("system/{subtype}"));
            }
            (other, _) => {
                item.note_uuid(&r);
                count_skip(
                    &mut self.stats,
                    if other.is_empty() { "unknown" } else { other },
                );
            }
        }

        // A spawning call is also known by its prompt; the first call to send a prompt keeps it.
        let item = match inline_key.as_deref() {
            Some(k) => self.inline.get_mut(k),
            None => Some(&mut self.own),
        };
        for (key, link) in item.map(ItemState::take_prompt_links).unwrap_or_default() {
            self.links.entry(key).or_insert(link);
        }
        for spawn in spawns {
            let description = self.describe(inline_key.as_deref(), &spawn.tool_use_id);
            let link = self.links.entry(spawn.agent_id.clone()).or_default();
            let mut changed = false;
            if link.tool_use_id != spawn.tool_use_id {
                link.tool_use_id = spawn.tool_use_id;
                changed = true;
            }
            if description.is_some() && link.description != description {
                link.description = description;
                changed = true;
            }
            if spawn.status.is_some() && link.status != spawn.status {
                link.status = spawn.status;
                changed = true;
            }
            if changed && let Some(child) = self.inline.get_mut(&spawn.agent_id) {
                child.asm.header_dirty = true;
            }
        }
    }

    fn describe(&self, inline_key: Option<&str>, tool_use_id: &str) -> Option<String> {
        let item = match inline_key {
            Some(k) => self.inline.get(k)?,
            None => &self.own,
        };
        item.tool_description(tool_use_id)
    }

    /// The inline agent a sidechain line belongs to (and remembers it for its children).
    fn inline_key(&mut self, r: &Record<'_>) -> String {
        let key = r
            .agent_id
            .as_deref()
            .map(str::to_owned)
            .or_else(|| {
                r.parent_uuid
                    .as_deref()
                    .and_then(|p| self.inline_agent_of.get(p).cloned())
            })
            .or_else(|| r.uuid.as_deref().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        if let Some(uuid) = r.uuid.as_deref() {
            self.inline_agent_of.insert(uuid.into(), key.clone());
        }
        key
    }

    fn own_session_info(&self) -> SessionInfo {
        let mut s = session_info(&self.own);
        if let FileRole::Subagent {
            parent_session_id: _,
            meta,
            ..
        } = &self.role
        {
            s.is_subagent = true;
            s.parent_source_session_id = self.root_session().map(str::to_owned);
            if let Some(meta) = meta {
                s.spawn_tool_call_id = meta.tool_use_id.clone();
                s.task_description = meta.description.clone();
            }
        }
        s
    }

    fn item(
        &self,
        session_id: String,
        fingerprint: String,
        session: SessionInfo,
        t: Taken,
    ) -> ImportSessionItem {
        ImportSessionItem {
            source_provider: super::Provider::ClaudeCode.as_str().to_owned(),
            source_session_id: session_id,
            source_session_fingerprint: fingerprint,
            imported_at_ms: 0,
            session,
            turns: t.turns,
            messages: t.messages,
            tool_calls: t.tool_calls,
            ..Default::default()
        }
    }
}

fn session_info(item: &ItemState) -> SessionInfo {
    let h = &item.header;
    SessionInfo {
        created_at_ms: h.created,
        updated_at_ms: h.updated.or(h.created),
        model: h.model.clone(),
        provider: Some(MODEL_PROVIDER.to_owned()),
        workspace_path: h.cwd.clone(),
        metadata: h.metadata(),
        ..SessionInfo::default()
    }
}

impl SessionParser for ClaudeCodeParser {
    fn push_lines(&mut self, bytes: &[u8], offset: u64, emit: bool) {
        let mut cursor = std::mem::take(&mut self.cursor);
        cursor.feed(bytes, offset, |line| self.line(line));
        self.stats.lossy_lines = cursor.lossy_lines();
        self.cursor = cursor;
        if !emit {
            self.own.asm.discard_changes();
            for item in self.inline.values_mut() {
                item.asm.discard_changes();
            }
        }
    }

    fn sole_session(&self) -> Option<String> {
        match self.role {
            FileRole::Main => self.stem_session.clone(),
            FileRole::Subagent { .. } => None,
        }
    }

    fn take_items(&mut self) -> Vec<ImportSessionItem> {
        let mut out = Vec::new();
        // Without a session id nothing can be named yet: keep the changes for a later take.
        let Some(own_id) = self.own_session_id() else {
            return out;
        };
        let session = self.own_session_info();
        if let Some(t) = self.own.take() {
            let mut item = self.item(own_id, self.own_fingerprint(), session, t);
            item.copies_elsewhere = self.copies_chain.is_some();
            out.push(item);
        }
        let Some(root) = self.root_session().map(str::to_owned) else {
            return out;
        };
        let keys: Vec<String> = self.inline.keys().cloned().collect();
        for key in keys {
            let Some(child) = self.inline.get(&key) else {
                continue;
            };
            let mut session = session_info(child);
            session.is_subagent = true;
            session.parent_source_session_id = Some(root.clone());
            if let Some(link) = self.links.get(&key) {
                session.spawn_tool_call_id =
                    Some(link.tool_use_id.clone()).filter(|s| !s.is_empty());
                session.task_description = link.description.clone();
                session.task_status = link.status.clone();
            }
            let fingerprint = child
                .chain
                .as_ref()
                .map(FingerprintChain::hex)
                .unwrap_or_default();
            let Some(child) = self.inline.get_mut(&key) else {
                continue;
            };
            if let Some(t) = child.take() {
                out.push(self.item(format!("{root}/agent-{key}"), fingerprint, session, t));
            }
        }
        out
    }

    fn open_turn_offset(&self) -> u64 {
        std::iter::once(&self.own)
            .chain(self.inline.values())
            .filter_map(|i| i.asm.open_offset())
            .min()
            .unwrap_or_else(|| self.cursor.consumed())
    }

    fn fingerprint(&self) -> String {
        self.chain.hex()
    }

    fn resend_header(&mut self) {
        self.own.asm.header_dirty = true;
    }

    fn stats(&self) -> &ParseStats {
        &self.stats
    }

    fn spawn_links(&self) -> BTreeMap<String, SpawnLink> {
        self.links.clone()
    }

    fn copies_digest(&self) -> Option<String> {
        let (index, file) = self.copies.as_ref()?;
        index.digest(*file)
    }

    fn take_displaced(&mut self) -> Vec<std::path::PathBuf> {
        self.copies
            .as_ref()
            .map(|(index, _)| index.take_displaced())
            .unwrap_or_default()
    }
}

/// `8-4-4-4-12` hex digits.
fn looks_like_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}
