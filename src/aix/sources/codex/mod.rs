//! Codex rollout files (SOURCES.md "Mapping rules: Codex", "Real-world variants" > Codex).
//!
//! - Formats: `{timestamp, type, payload}` lines; and the pre-envelope rollouts of 2025 builds,
//!   whose first line is a bare `{id, timestamp, instructions, git}` followed by bare response
//!   items and `{"record_type":"state"}` lines (no token usage, no per-line timestamps: their
//!   records carry the session's timestamp). The first record decides.
//! - Session: the first `session_meta` (id, cwd, versions, lineage). A fork names its origin in
//!   `forked_from_id`; a spawned subagent in `source.subagent.thread_spawn` (`parent_thread_id`,
//!   `spawn_call_id`, `agent_path`); any other form of `source.subagent` is a subagent too,
//!   its parent unknown (`{other: "guardian"}`, 0.126); a `/review` rollout has
//!   `source.subagent: "review"` (a subagent whose
//!   parent its own file does not name: with the run's index, `aix::codex_reviews`, it is the
//!   session whose file wrote `entered_review_mode` then a `task_started` with the review's
//!   first turn id; the parent, learnt from another file, is folded into the fingerprint and
//!   the cursor). A replay of the parent is skipped (counted as
//!   `replayed`): records older than the child's `session_meta` in a fork or subagent, and,
//!   after a second `session_meta` with another id (0.118+ subagents), everything up to the
//!   first `task_started` whose `turn_id` is not older than the child's id. A second
//!   `session_meta` with the session's own id (a resume) is skipped and counted.
//! - Paginated rollouts (`history_mode: "paginated"`, 0.152+): every record has an `ordinal`;
//!   prompts, replies and v2 spawn links are `item_completed` events (`UserMessage`,
//!   `AgentMessage`, `SubAgentActivity` items), not `user_message`, `agent_message`,
//!   `sub_agent_activity`; the other completed items repeat `response_item`s and are counted.
//!   A subagent's `subagent_history_start_ordinal` is its first own record: the records before
//!   it replay the parent (counted as `replayed`; the timestamp rule is then not used).
//! - Turns: each human prompt opens a turn: `event_msg user_message`, or `event_msg
//!   item_completed` of a `UserMessage` item (0.15x writes prompts so, and no `user_message`),
//!   or in the old format a user `message` that is not injected context (`<environment_context>`,
//!   AGENTS.md, …). The same prompt written again on the very next record (`/review` does; a
//!   build writing both events would too) is one prompt.
//!   `turn_context` never opens a turn (some versions write one per model request); it gives
//!   the model. A turn is named by the Codex turn id announced (`task_started`, `turn_context`)
//!   since the previous prompt and not yet used, else `L<n>` (1-based line of the prompt);
//!   output before any prompt opens an `L<n>` turn of its own. Turns chain linearly. A prompt
//!   written while a turn runs (steering) opens its own turn: one turn per prompt. A
//!   `thread_rolled_back` is not applied (the history stays).
//! - Messages: the prompt; `response_item` `user` items are its model-input copy or injected
//!   context and are dropped, as are `developer`/`system` items. Assistant text comes from
//!   `response_item message` and `event_msg agent_message` (or a completed `AgentMessage`
//!   item), which duplicate each other: within a turn the first of a pair with equal text is
//!   kept; the two event forms of one reply on consecutive records are one. A reply citing memories (0.126+) is the
//!   event (the text, and `memory_citation` `{entries, rolloutIds}`, kept as the message's
//!   metadata `memoryCitation`) then the model's copy with an `<oai-mem-citation>` block
//!   appended: the block is cut before the pair is compared. `reasoning` becomes an assistant
//!   message with `thinking`. Message ids are `L<n>`, `sequence` the 0-based line index.
//!   Messages between agents (multi-agent v2) are `user` messages, a task handed to the session
//!   its prompt (`agents.rs`).
//! - Tool calls: see `tools.rs`; which session a call spawned: `agents.rs`.
//! - Tokens: each API call once: `last_token_usage` summed over unique (`total_token_usage`,
//!   `last_token_usage`) pairs (events are written twice, re-emitted after a `/review`, and the
//!   total restarts after a resume); `info: null` events carry only rate limits; counts
//!   written between `entered_review_mode` and `exited_review_mode` are the review's own (its
//!   rollout counts them), not the parent's. Codex's
//!   `input_tokens` includes `cached_input_tokens`: the turn's `inputTokens` is the uncached
//!   input (input - cached, clamped at 0), `cachedInputTokens` the cache reads,
//!   `reasoningTokens` = `reasoning_output_tokens` (part of the output), `totalTokens` Codex's
//!   `total_tokens`; cache writes (`cache_write_input_tokens`, 0.15x, also inside
//!   `input_tokens`) are `cacheWriteTokens` and come off `inputTokens` too (none reported:
//!   NULL).
//!
//! Layout: this file reads lines and opens turns; `events` adds prompts, assistant text,
//! reasoning, token usage and compactions to them; `session` the header, lineage and replay;
//! `tools` the tool calls; `agents` messages between agents and spawn links; `turns` per-turn
//! bookkeeping and token arithmetic; `record` the typed view of a line; `content` message text
//! and injected-context detection.

mod agents;
mod content;
mod events;
mod record;
mod session;
mod tools;
mod turns;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use self::content::{content_texts, cwd_of_environment, injected, line_id};
use self::events::Previous;
use self::record::{Payload, Record};
use self::turns::{CodexTurn, TokenEvent, Totals};
use super::assembler::Assembler;
use super::common::{
    FingerprintChain, Line, LineCursor, count_skip, join_nonempty, later, parse_rfc3339_ms,
};
use super::{ParseStats, Provider, SessionParser, SourceFile};
use crate::aix::codex_reviews::{ReviewIndex, ReviewKeys};
use crate::protocol::{ImportSessionItem, SessionInfo};

/// What `aix::codex_reviews` reads of a record: its kind, payload kind, session id (of a
/// `session_meta`), whether that meta is a `/review` rollout's, and a turn id.
pub struct ReviewFields<'a> {
    pub kind: &'a str,
    pub payload_kind: &'a str,
    pub id: Option<&'a str>,
    pub is_review: bool,
    pub turn_id: Option<&'a str>,
}

impl<'a> ReviewFields<'a> {
    fn of(kind: &'a str, p: &'a Payload<'a>) -> Self {
        Self {
            kind,
            payload_kind: p.kind(),
            id: p.id.as_deref(),
            is_review: p.subagent_kind() == Some("review"),
            turn_id: p.turn_id.as_deref(),
        }
    }
}

/// Calls `f` with the review fields of one rollout line (nothing for a line that is no
/// envelope record).
pub fn review_fields(line: &[u8], f: impl FnOnce(&ReviewFields<'_>)) {
    if let Ok(mut r) = serde_json::from_slice::<Record<'_>>(line) {
        let p = r.payload.0.take().unwrap_or_default();
        f(&ReviewFields::of(r.kind.as_deref().unwrap_or(""), &p));
    }
}

/// `session.provider` of every Codex item.
pub const MODEL_PROVIDER: &str = "openai";

#[derive(Debug, Default, Clone, PartialEq)]
struct Header {
    created: Option<i64>,
    updated: Option<i64>,
    model: Option<String>,
    cwd: Option<String>,
    is_subagent: bool,
    parent: Option<String>,
    spawn_call_id: Option<String>,
    metadata: Map<String, Value>,
}

/// Which on-disk format the file is in (its first record tells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Unknown,
    Envelope,
    /// Pre-envelope: bare response items after a bare `{id, timestamp, …}` line.
    Bare,
}

/// How much of a child's file is the replay of its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    None,
    /// A fork or subagent: records older than the child's own `session_meta`.
    OlderThanMeta,
    /// After the parent's `session_meta` (0.118+): up to the child's first `task_started`.
    UntilOwnTask,
}

/// The incremental parser of one Codex rollout file.
pub struct CodexParser {
    cursor: LineCursor,
    chain: FingerprintChain,
    stats: ParseStats,
    format: Format,
    session_id: Option<String>,
    /// Timestamp of the own `session_meta`: earlier records of a fork/subagent are replayed.
    meta_ts: Option<i64>,
    replay: Replay,
    header: Header,
    asm: Assembler<CodexTurn>,
    last_turn_id: Option<String>,
    /// Every turn id given so far (a Codex turn id names at most one turn).
    used_turn_ids: HashSet<String>,
    /// The Codex turn id announced since the last prompt, for the next prompt's turn.
    pending_native_id: Option<String>,
    /// The text of the prompt on the previous record, if that record was one.
    previous_prompt: Option<String>,
    /// The text of the reply event (`agent_message`, or a completed `AgentMessage` item) on the
    /// previous record, if that record was one.
    previous_reply: Option<String>,
    current_model: Option<String>,
    /// Every (total, last) token pair counted (each API call once).
    token_events: HashSet<TokenEvent>,
    /// The last cumulative total, for events without `last_token_usage`.
    last_total: Option<Totals>,
    /// The run's index of `/review` links, with this file's path (`aix::codex_reviews`).
    reviews: Option<(Arc<ReviewIndex>, PathBuf)>,
    /// What this file says about reviews so far.
    review_keys: ReviewKeys,
    /// Between `entered_review_mode` and `exited_review_mode`: the token counts written then
    /// are the review's own (its rollout has them), not this session's.
    in_review: bool,
    /// This session's agent path (`thread_spawn.agent_path`, multi-agent v2): messages
    /// addressed to it are its tasks (`agents.rs`).
    agent_path: Option<String>,
    /// A paginated subagent's `subagent_history_start_ordinal`: records with a smaller
    /// `ordinal` replay its parent.
    own_from_ordinal: Option<i64>,
}

impl CodexParser {
    /// A parser that reads the file alone (a `/review` rollout then names no parent).
    pub fn new(file: &SourceFile) -> Self {
        Self::with_reviews(file, None)
    }

    /// A parser that links a `/review` rollout to the session that started it through
    /// `reviews`. Making it reads the review keys of the file's `sessions` directory when the
    /// index has not read them yet.
    pub fn with_reviews(file: &SourceFile, reviews: Option<Arc<ReviewIndex>>) -> Self {
        if let Some(index) = &reviews {
            index.file(&file.path);
        }
        Self {
            reviews: reviews.map(|r| (r, file.path.clone())),
            review_keys: ReviewKeys::default(),
            in_review: false,
            agent_path: None,
            own_from_ordinal: None,
            cursor: LineCursor::default(),
            chain: FingerprintChain::default(),
            stats: ParseStats::default(),
            format: Format::Unknown,
            session_id: None,
            meta_ts: None,
            replay: Replay::None,
            header: Header::default(),
            asm: Assembler::default(),
            last_turn_id: None,
            used_turn_ids: HashSet::new(),
            pending_native_id: None,
            previous_prompt: None,
            previous_reply: None,
            current_model: None,
            token_events: HashSet::new(),
            last_total: None,
        }
    }

    fn line(&mut self, line: Line<'_>) {
        self.stats.lines += 1;
        self.chain.push(line.bytes);
        // Every line, even a blank or malformed one, moves the file's chain, which is the item's
        // fingerprint: the item is re-sent (header and open turn) so that the ledger's
        // fingerprint follows the file.
        self.asm.header_dirty = true;
        if line.bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if self.format == Format::Bare {
            return self.bare_line(&line);
        }
        let mut record: Record<'_> = match serde_json::from_slice(line.bytes) {
            Ok(r) => r,
            Err(_) => {
                self.stats.malformed_lines += 1;
                return;
            }
        };
        let previous_prompt = self.previous_prompt.take();
        let previous_reply = self.previous_reply.take();
        if self.format == Format::Unknown {
            if record.kind.is_none() && record.payload.0.is_none() {
                return self.bare_header(&line);
            }
            self.format = Format::Envelope;
        }
        let mut payload = record.payload.0.take().unwrap_or_default();
        let kind = record.kind.as_deref().unwrap_or("");
        let ts = record.timestamp.as_deref().and_then(parse_rfc3339_ms);
        let fields = ReviewFields::of(kind, &payload);
        match (kind, fields.payload_kind) {
            ("session_meta", _) | ("event_msg", "task_started" | "turn_started") => {
                self.review_keys.record(&fields);
                if let Some((index, path)) = &self.reviews {
                    index.add(path, &self.review_keys);
                }
            }
            ("event_msg", "entered_review_mode") => self.review_keys.record(&fields),
            _ => {}
        }
        if self.session_id.is_some()
            && let (Some(start), Some(ordinal)) = (self.own_from_ordinal, record.ordinal)
            && ordinal < start
        {
            count_skip(&mut self.stats, "replayed");
            return;
        }
        if kind == "session_meta" {
            if self.stats.format_version.is_none() {
                self.stats.format_version = payload
                    .cli_version
                    .as_deref()
                    .map(|v| format!("cli_version {v}"));
            }
            self.session_meta(&payload, ts);
            return;
        }
        if self.replayed(kind, &payload, ts) {
            // Only a total without `last_token_usage` needs the replayed one as its baseline.
            if let Some(event) =
                TokenEvent::of(&payload).filter(|_| payload.kind() == "token_count")
            {
                self.last_total = Some(event.total);
            }
            count_skip(&mut self.stats, "replayed");
            return;
        }
        if self.header.created.is_none() && ts.is_some() {
            self.header.created = ts;
        }
        later(&mut self.header.updated, ts);
        let sub = payload
            .kind
            .clone()
            .unwrap_or(std::borrow::Cow::Borrowed("unknown"));
        let sub = sub.as_ref();
        match (kind, sub) {
            ("turn_context", _) => self.turn_context(&payload),
            ("event_msg", "task_started" | "turn_started") => match payload.turn_id.as_deref() {
                Some(id) => self.native_id(id),
                None => count_skip(&mut self.stats, &format!("event_msg/{sub}")),
            },
            ("event_msg", "user_message") => {
                let text = payload.message.take();
                self.prompt_unless_repeated(&line, text, previous_prompt, ts);
            }
            ("event_msg", "item_completed") => {
                let previous = Previous {
                    prompt: previous_prompt,
                    reply: previous_reply,
                };
                self.item_completed(&line, &mut payload, previous, ts);
            }
            ("event_msg", "agent_message") => {
                let text = payload.message.take();
                let cited = payload.memory_citation.take();
                self.reply_unless_repeated(&line, text, cited, previous_reply, ts);
            }
            ("event_msg", "entered_review_mode" | "exited_review_mode") => {
                self.in_review = sub == "entered_review_mode";
                count_skip(&mut self.stats, &format!("{kind}/{sub}"));
            }
            ("event_msg", "token_count") if self.in_review => {
                if let Some(event) = TokenEvent::of(&payload) {
                    self.token_events.insert(event);
                }
                count_skip(&mut self.stats, "review_token_count");
            }
            ("event_msg", "token_count") => self.token_count(&line, &payload, ts),
            ("event_msg", "task_complete" | "turn_complete") => {
                self.touch_completion(ts);
            }
            ("event_msg", "thread_name_updated") => {
                if let Some(name) = payload.thread_name.as_deref() {
                    self.set_meta("title", name);
                }
            }
            ("event_msg", "sub_agent_activity") => self.spawn_event(&payload, sub),
            ("event_msg", _) if payload.call_id.is_some() && payload.new_thread_id.is_some() => {
                self.spawn_event(&payload, sub);
            }
            ("response_item", _) => self.response_item(&line, &mut payload, sub, ts, false),
            ("compacted", _) => self.compacted(&line, payload.message.take(), ts),
            ("event_msg", _) => count_skip(&mut self.stats, &format!("{kind}/{sub}")),
            ("", _) => count_skip(&mut self.stats, "unknown"),
            (other, _) => count_skip(&mut self.stats, other),
        }
    }

    fn response_item(
        &mut self,
        line: &Line<'_>,
        p: &mut Payload<'_>,
        kind: &str,
        ts: Option<i64>,
        bare: bool,
    ) {
        match kind {
            "message" => {
                let role = p.role.as_deref().unwrap_or("unknown").to_owned();
                let text = join_nonempty(content_texts(p));
                match role.as_str() {
                    "assistant" => self.assistant_text(line, text, false, None, ts),
                    // In the old format the user item is the prompt itself.
                    "user" if bare && !text.as_deref().is_some_and(injected) => {
                        self.prompt(line, text, ts);
                    }
                    _ => {
                        if let Some(cwd) = text.as_deref().and_then(cwd_of_environment)
                            && self.header.cwd.is_none()
                        {
                            self.header.cwd = Some(cwd);
                        }
                        count_skip(&mut self.stats, &format!("response_item/message:{role}"));
                    }
                }
            }
            "reasoning" => self.reasoning(line, p, ts),
            "agent_message" => self.agent_message(line, p, ts),
            k if k.ends_with("_output") => self.tool_output(p, ts),
            k if k.ends_with("_call") => self.tool_call(line, p, k, ts),
            other => count_skip(&mut self.stats, &format!("response_item/{other}")),
        }
    }

    fn touch_completion(&mut self, ts: Option<i64>) {
        if let Some(t) = self.asm.open_mut() {
            later(&mut t.turn.completed_at_ms, ts);
        }
    }

    fn open_turn(&mut self, line: &Line<'_>, id: String, native: Option<String>, ts: Option<i64>) {
        let turn = crate::protocol::Turn {
            source_turn_id: id.clone(),
            parent_source_turn_id: self.last_turn_id.clone(),
            started_at_ms: ts.unwrap_or(0),
            completed_at_ms: ts,
            model: self.current_model.clone(),
            ..Default::default()
        };
        self.asm.open_turn(turn, line.offset);
        if let Some(t) = self.asm.open_mut() {
            t.extra.native_id = native;
        }
        self.used_turn_ids.insert(id.clone());
        self.last_turn_id = Some(id);
    }

    /// Opens an `L<n>` turn for output that came before any prompt.
    fn ensure_turn(&mut self, line: &Line<'_>, ts: Option<i64>) {
        if self.asm.open_ordinal().is_none() {
            self.open_turn(line, line_id(line), None, ts);
        }
    }

    /// A Codex turn id (`task_started`, `turn_context`): the open turn's own, adopted by an open
    /// turn that has none, or remembered for the next prompt.
    fn native_id(&mut self, id: &str) {
        match self.asm.open_ref().map(|t| t.extra.native_id.as_deref()) {
            Some(Some(open)) if open == id => {}
            Some(None)
                if self.pending_native_id.is_none()
                    && !self.asm.open_ref().is_some_and(|t| t.extra.has_output) =>
            {
                if let Some(t) = self.asm.open_mut() {
                    t.extra.native_id = Some(id.to_owned());
                }
            }
            _ => self.pending_native_id = Some(id.to_owned()),
        }
    }

    fn turn_context(&mut self, p: &Payload<'_>) {
        // A context names the open turn when it carries no turn id or the open turn's own;
        // a new id is the next prompt's turn, which takes its model when it opens.
        let ours = match p.turn_id.as_deref() {
            Some(id) => {
                self.native_id(id);
                self.asm
                    .open_ref()
                    .is_some_and(|t| t.extra.native_id.as_deref() == Some(id))
            }
            None => true,
        };
        let model = p.model.as_deref().map(str::to_owned);
        if let Some(m) = &model
            && self.header.model.as_ref() != Some(m)
        {
            self.header.model = Some(m.clone());
            self.asm.header_dirty = true;
        }
        if self.header.cwd.is_none()
            && let Some(cwd) = p.cwd.as_deref()
        {
            self.header.cwd = Some(cwd.to_owned());
            self.asm.header_dirty = true;
        }
        if model.is_some() {
            self.current_model = model.clone();
            if ours && let Some(t) = self.asm.open_mut() {
                t.turn.model = model;
            }
        }
    }

    /// The session that started this `/review` rollout, as the run's index knows it (`None`
    /// when the file names its parent itself, or is no review).
    fn review_parent(&self) -> Option<String> {
        if self.header.parent.is_some() {
            return None;
        }
        let (index, path) = self.reviews.as_ref()?;
        index.parent_of_file(path)
    }

    fn session_info(&self) -> SessionInfo {
        let h = &self.header;
        SessionInfo {
            created_at_ms: h.created,
            updated_at_ms: h.updated.or(h.created),
            model: h.model.clone(),
            provider: Some(MODEL_PROVIDER.to_owned()),
            workspace_path: h.cwd.clone(),
            is_subagent: h.is_subagent,
            parent_source_session_id: h.parent.clone().or_else(|| self.review_parent()),
            spawn_tool_call_id: h.spawn_call_id.clone(),
            metadata: (!h.metadata.is_empty()).then(|| Value::Object(h.metadata.clone())),
            ..SessionInfo::default()
        }
    }
}

impl SessionParser for CodexParser {
    fn push_lines(&mut self, bytes: &[u8], offset: u64, emit: bool) {
        let mut cursor = std::mem::take(&mut self.cursor);
        cursor.feed(bytes, offset, |line| self.line(line));
        self.stats.lossy_lines = cursor.lossy_lines();
        self.cursor = cursor;
        if !emit {
            self.asm.discard_changes();
        }
    }

    fn take_items(&mut self) -> Vec<ImportSessionItem> {
        let Some(id) = self.session_id.clone() else {
            return Vec::new();
        };
        let session = self.session_info();
        let Some(t) = self.asm.take() else {
            return Vec::new();
        };
        // A parent learnt from another file is part of the fingerprint: it can come later.
        let fingerprint = match self.review_parent() {
            None => self.chain.hex(),
            Some(parent) => {
                let mut both = FingerprintChain::default();
                both.push(self.chain.hex().as_bytes());
                both.push(parent.as_bytes());
                both.hex()
            }
        };
        vec![ImportSessionItem {
            source_provider: Provider::Codex.as_str().to_owned(),
            source_session_id: id,
            source_session_fingerprint: fingerprint,
            imported_at_ms: 0,
            session,
            turns: t.turns,
            messages: t.messages,
            tool_calls: t.tool_calls,
            ..Default::default()
        }]
    }

    fn open_turn_offset(&self) -> u64 {
        self.asm
            .open_offset()
            .unwrap_or_else(|| self.cursor.consumed())
    }

    fn fingerprint(&self) -> String {
        self.chain.hex()
    }

    fn resend_header(&mut self) {
        self.asm.header_dirty = true;
    }

    fn stats(&self) -> &ParseStats {
        &self.stats
    }

    fn copies_digest(&self) -> Option<String> {
        let (index, path) = self.reviews.as_ref()?;
        index.parent_of_file(path)
    }

    fn take_displaced(&mut self) -> Vec<PathBuf> {
        self.reviews
            .as_ref()
            .map(|(index, _)| index.take_displaced())
            .unwrap_or_default()
    }
}
