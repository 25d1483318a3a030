//! Codex rollout files (SOURCES.md "Mapping rules: Codex"): `{timestamp, type, payload}` lines.
//!
//! - Session: the first `session_meta` (id, cwd, versions, lineage). A fork names its origin in
//!   `forked_from_id`; a subagent in `source.subagent.thread_spawn` (`parent_thread_id`,
//!   `spawn_call_id`). Both files begin by replaying the parent's records, with timestamps
//!   earlier than their own `session_meta`: that prefix is skipped (counted as `replayed`), and
//!   only its cumulative token totals are kept as the baseline of the first delta.
//! - Turns (see `turns.rs`): a native turn id (`turn_context.turn_id`, `task_started.turn_id`)
//!   names its turn, and every prompt inside it stays in it (steering). Without one, a turn
//!   holds at most one `turn_context` and one human prompt (`event_msg user_message`), and the
//!   record that would be the second of its kind opens the next turn, whichever order a version
//!   writes them in. Turns without a native id are named `L<n>` (1-based line number of the
//!   opening record); a native id that arrives after such a turn opened (prompt written first)
//!   is adopted by it, which keeps its `L<n>` name (ids never change once emitted). Turns chain
//!   linearly; a second `session_meta` (a resumed session) is skipped and counted.
//! - Messages: the prompt is the `event_msg user_message` (the visible half); `response_item`
//!   `user` items are its model-input copy or injected context (`<environment_context>`,
//!   AGENTS.md, …) and are dropped, as are `developer`/`system` items. Assistant text comes from
//!   `response_item message` and `event_msg agent_message`, which duplicate each other: within a
//!   turn the first of a pair with equal text is kept. `reasoning` becomes an assistant message
//!   with `thinking`. Message ids are `L<n>`, `sequence` the 0-based line index.
//! - Tool calls: `function_call`, `custom_tool_call`, `local_shell_call` joined to their
//!   `*_output` by `call_id`; `collab_tool_call`'s `new_thread_id` names the spawned session.
//! - Tokens: deltas of the cumulative `token_count.info.total_token_usage`; a re-emitted equal
//!   total adds nothing; a total below the previous one (a reset) counts as a fresh start.

mod content;
mod record;
mod turns;

use serde_json::{Map, Value, json};

use self::content::{content_texts, json_or_string, line_id, message, push_message};
use self::record::{Payload, Record};
use self::turns::{CodexTurn, Totals};
use super::assembler::{Assembler, STATUS_COMPLETED, STATUS_FAILED, STATUS_PENDING};
use super::common::{
    FingerprintChain, Line, LineCursor, count_skip, join_nonempty, later, parse_rfc3339_ms,
};
use super::{ParseStats, Provider, SessionParser, SourceFile};
use crate::protocol::{ImportSessionItem, SessionInfo, ToolCall};

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

/// The incremental parser of one Codex rollout file.
pub struct CodexParser {
    cursor: LineCursor,
    chain: FingerprintChain,
    stats: ParseStats,
    session_id: Option<String>,
    /// Timestamp of the own `session_meta`: earlier records of a fork/subagent are replayed.
    meta_ts: Option<i64>,
    in_replayed_prefix: bool,
    header: Header,
    asm: Assembler<CodexTurn>,
    last_turn_id: Option<String>,
    current_model: Option<String>,
    last_total: Option<Totals>,
}

impl CodexParser {
    pub fn new(_file: &SourceFile) -> Self {
        Self {
            cursor: LineCursor::default(),
            chain: FingerprintChain::default(),
            stats: ParseStats::default(),
            session_id: None,
            meta_ts: None,
            in_replayed_prefix: false,
            header: Header::default(),
            asm: Assembler::default(),
            last_turn_id: None,
            current_model: None,
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
        let mut record: Record<'_> = match serde_json::from_slice(line.bytes) {
            Ok(r) => r,
            Err(_) => {
                self.stats.malformed_lines += 1;
                return;
            }
        };
        let mut payload = record.payload.0.take().unwrap_or_default();
        let kind = record.kind.as_deref().unwrap_or("");
        let ts = record.timestamp.as_deref().and_then(parse_rfc3339_ms);
        if kind == "session_meta" {
            self.session_meta(&payload, ts);
            return;
        }
        if self.in_replayed_prefix {
            match (ts, self.meta_ts) {
                (Some(t), Some(m)) if t < m => {
                    if kind == "event_msg"
                        && payload.kind() == "token_count"
                        && let Some(total) = Totals::from_token_count(&payload)
                    {
                        self.last_total = Some(total);
                    }
                    count_skip(&mut self.stats, "replayed");
                    return;
                }
                _ => self.in_replayed_prefix = false,
            }
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
            ("turn_context", _) => self.turn_context(&line, &payload, ts),
            ("event_msg", "task_started" | "turn_started") => match payload.turn_id.as_deref() {
                Some(id) => self.native_turn(&line, id, ts),
                None => count_skip(&mut self.stats, &format!("event_msg/{sub}")),
            },
            ("event_msg", "user_message") => self.user_message(&line, payload.message.take(), ts),
            ("event_msg", "agent_message") => {
                self.assistant_text(&line, payload.message.take(), true, ts);
            }
            ("event_msg", "token_count") => self.token_count(&payload, ts),
            ("event_msg", "task_complete" | "turn_complete") => {
                self.touch_completion(ts);
            }
            ("event_msg", "thread_name_updated") => {
                if let Some(name) = payload.thread_name.as_deref() {
                    self.set_meta("title", name);
                }
            }
            ("event_msg", _) if payload.call_id.is_some() && payload.new_thread_id.is_some() => {
                self.spawned(&payload);
            }
            ("response_item", "message") => {
                let role = payload.role.as_deref().unwrap_or("unknown");
                if role == "assistant" {
                    let text = join_nonempty(content_texts(&mut payload));
                    self.assistant_text(&line, text, false, ts);
                } else {
                    count_skip(&mut self.stats, &format!("response_item/message:{role}"));
                }
            }
            ("response_item", "reasoning") => self.reasoning(&line, &mut payload, ts),
            ("response_item", "function_call" | "custom_tool_call" | "local_shell_call") => {
                self.tool_call(&line, &mut payload, sub, ts);
            }
            (
                "response_item",
                "function_call_output" | "custom_tool_call_output" | "local_shell_call_output",
            ) => self.tool_output(&mut payload, ts),
            ("compacted", _) => self.compacted(&line, payload.message.take(), ts),
            ("response_item" | "event_msg", _) => {
                count_skip(&mut self.stats, &format!("{kind}/{sub}"));
            }
            ("", _) => count_skip(&mut self.stats, "unknown"),
            (other, _) => count_skip(&mut self.stats, other),
        }
    }

    fn session_meta(&mut self, p: &Payload<'_>, ts: Option<i64>) {
        if self.session_id.is_some() {
            count_skip(&mut self.stats, "session_meta");
            return;
        }
        let Some(id) = p.id.as_deref() else {
            count_skip(&mut self.stats, "session_meta");
            return;
        };
        self.session_id = Some(id.to_owned());
        let meta_ts = p.timestamp.as_deref().and_then(parse_rfc3339_ms).or(ts);
        self.meta_ts = meta_ts;
        let h = &mut self.header;
        h.created = meta_ts;
        h.cwd = p.cwd.as_deref().map(str::to_owned);
        let spawn = p.thread_spawn();
        if let Some(spawn) = spawn {
            h.is_subagent = true;
            h.parent = spawn.parent_thread_id.as_deref().map(str::to_owned);
            h.spawn_call_id = spawn.spawn_call_id.as_deref().map(str::to_owned);
        }
        let forked = p.forked_from_id.as_deref().map(str::to_owned);
        if h.parent.is_none() {
            h.parent = forked.clone();
        }
        for (k, val) in [
            ("cliVersion", p.cli_version.as_deref()),
            ("originator", p.originator.as_deref()),
            ("modelProvider", p.model_provider.as_deref()),
            (
                "gitBranch",
                p.git.0.as_ref().and_then(|g| g.branch.as_deref()),
            ),
            ("forkedFromId", forked.as_deref()),
            ("agentNickname", p.agent_nickname.as_deref()),
            ("agentRole", p.agent_role.as_deref()),
        ] {
            if let Some(val) = val {
                h.metadata.insert(k.to_owned(), json!(val));
            }
        }
        self.in_replayed_prefix = spawn.is_some() || forked.is_some();
        self.asm.header_dirty = true;
    }

    fn set_meta(&mut self, key: &str, value: &str) {
        if self.header.metadata.get(key).and_then(Value::as_str) != Some(value) {
            self.header.metadata.insert(key.to_owned(), json!(value));
            self.asm.header_dirty = true;
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
        self.last_turn_id = Some(id);
    }

    fn ensure_turn(&mut self, line: &Line<'_>, ts: Option<i64>) {
        if self.asm.open_ordinal().is_none() {
            self.open_turn(line, line_id(line), None, ts);
        }
    }

    fn native_turn(&mut self, line: &Line<'_>, id: &str, ts: Option<i64>) {
        match self.asm.open_ref().map(|t| &t.extra) {
            Some(x) if x.native_id.as_deref() == Some(id) => {}
            Some(x) if x.native_id.is_none() && !x.has_context && !x.has_output => {
                if let Some(t) = self.asm.open_mut() {
                    t.extra.native_id = Some(id.to_owned());
                }
            }
            _ => self.open_turn(line, id.to_owned(), Some(id.to_owned()), ts),
        }
    }

    fn turn_context(&mut self, line: &Line<'_>, p: &Payload<'_>, ts: Option<i64>) {
        if let Some(id) = p.turn_id.as_deref() {
            self.native_turn(line, id, ts);
        } else {
            match self.asm.open_ref().map(|t| &t.extra) {
                Some(x) if !x.has_context || x.compacted_since_context => {}
                _ => self.open_turn(line, line_id(line), None, ts),
            }
        }
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
        }
        if let Some(t) = self.asm.open_mut() {
            t.extra.has_context = true;
            t.extra.compacted_since_context = false;
            if model.is_some() {
                t.turn.model = model;
            }
        }
    }

    fn user_message(&mut self, line: &Line<'_>, text: Option<String>, ts: Option<i64>) {
        match self.asm.open_ref().map(|t| &t.extra) {
            Some(x) if !x.has_prompt || x.native_id.is_some() => {}
            _ => self.open_turn(line, line_id(line), None, ts),
        }
        let id = line_id(line);
        let msg = message(line, &id, "user", text, None, ts);
        if let Some(t) = self.asm.open_mut() {
            t.extra.has_prompt = true;
            t.turn.query_message_source_ids.push(id);
            push_message(t, msg, ts);
        }
    }

    fn assistant_text(
        &mut self,
        line: &Line<'_>,
        text: Option<String>,
        from_event: bool,
        ts: Option<i64>,
    ) {
        let Some(text) = text else {
            count_skip(
                &mut self.stats,
                if from_event {
                    "event_msg/agent_message"
                } else {
                    "response_item/message:assistant"
                },
            );
            return;
        };
        self.ensure_turn(line, ts);
        let id = line_id(line);
        let Some(t) = self.asm.open_mut() else {
            return;
        };
        if t.extra.take_pair(from_event, &text) {
            // The other half of a visible pair already gave this message.
            count_skip(&mut self.stats, "visible_pair_duplicate");
            return;
        }
        t.extra.has_output = true;
        t.turn.response_message_source_id = Some(id.clone());
        let msg = message(line, &id, "assistant", Some(text), None, ts);
        push_message(t, msg, ts);
    }

    fn reasoning(&mut self, line: &Line<'_>, p: &mut Payload<'_>, ts: Option<i64>) {
        let mut parts: Vec<String> = std::mem::take(&mut p.summary.0)
            .into_iter()
            .filter_map(|b| b.text)
            .collect();
        parts.extend(content_texts(p));
        let Some(thinking) = join_nonempty(parts) else {
            count_skip(&mut self.stats, "response_item/reasoning");
            return;
        };
        self.ensure_turn(line, ts);
        let id = line_id(line);
        if let Some(t) = self.asm.open_mut() {
            t.extra.has_output = true;
            let msg = message(line, &id, "assistant", None, Some(thinking), ts);
            push_message(t, msg, ts);
        }
    }

    fn tool_call(&mut self, line: &Line<'_>, p: &mut Payload<'_>, sub: &str, ts: Option<i64>) {
        let Some(call_id) = p.call_id.as_deref().or(p.id.as_deref()).map(str::to_owned) else {
            count_skip(&mut self.stats, &format!("response_item/{sub}"));
            return;
        };
        let (name, params) = match sub {
            "function_call" => (p.name.as_deref(), p.arguments.take()),
            "custom_tool_call" => (p.name.as_deref(), p.input.take()),
            _ => (Some("local_shell"), p.action.take()),
        };
        self.ensure_turn(line, ts);
        let turn_id = self.asm.open_ref().map(|t| t.turn.source_turn_id.clone());
        let call = ToolCall {
            source_tool_call_id: call_id,
            source_turn_id: turn_id,
            tool_name: name.unwrap_or("unknown").to_owned(),
            params_json: params.map(json_or_string),
            status: Some(STATUS_PENDING.to_owned()),
            started_at_ms: ts.unwrap_or(0),
            sequence: line.index as i64,
            ..ToolCall::default()
        };
        if self.asm.add_tool(call)
            && let Some(t) = self.asm.open_mut()
        {
            t.extra.has_output = true;
            later(&mut t.turn.completed_at_ms, ts);
        }
    }

    fn tool_output(&mut self, p: &mut Payload<'_>, ts: Option<i64>) {
        let Some(call_id) = p.call_id.as_deref() else {
            return;
        };
        let output = p.output.take().unwrap_or(Value::Null);
        let failed = output.get("success").and_then(Value::as_bool) == Some(false);
        let Some(call) = self.asm.tool_mut(call_id) else {
            return;
        };
        call.result_json = Some(output);
        call.status = Some(
            if failed {
                STATUS_FAILED
            } else {
                STATUS_COMPLETED
            }
            .to_owned(),
        );
        call.completed_at_ms = ts;
        self.touch_completion(ts);
    }

    fn spawned(&mut self, p: &Payload<'_>) {
        let (Some(call_id), Some(thread)) = (p.call_id.as_deref(), p.new_thread_id.as_deref())
        else {
            return;
        };
        let thread = Some(thread.to_owned());
        if self
            .asm
            .tool_ref(call_id)
            .is_some_and(|c| c.spawned_source_session_id != thread)
            && let Some(call) = self.asm.tool_mut(call_id)
        {
            call.spawned_source_session_id = thread;
        }
    }

    fn token_count(&mut self, p: &Payload<'_>, ts: Option<i64>) {
        let Some(total) = Totals::from_token_count(p) else {
            return;
        };
        let delta = total.delta_from(self.last_total);
        self.last_total = Some(total);
        if delta.is_zero() {
            return;
        }
        if let Some(t) = self.asm.open_mut() {
            t.extra.tokens = t.extra.tokens.plus(delta);
            t.extra.tokens.write_to(&mut t.turn);
            later(&mut t.turn.completed_at_ms, ts);
        }
    }

    fn compacted(&mut self, line: &Line<'_>, text: Option<String>, ts: Option<i64>) {
        self.ensure_turn(line, ts);
        let id = line_id(line);
        let msg = message(line, &id, "system", text, None, ts);
        if let Some(t) = self.asm.open_mut() {
            t.extra.compacted_since_context = true;
            push_message(t, msg, ts);
        }
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
            parent_source_session_id: h.parent.clone(),
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
        vec![ImportSessionItem {
            source_provider: Provider::Codex.as_str().to_owned(),
            source_session_id: id,
            source_session_fingerprint: self.chain.hex(),
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
}
