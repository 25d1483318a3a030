//! The events of a rollout that add to the open turn: a human prompt, assistant text, reasoning,
//! token usage and a compaction summary, each prompt or reply written twice in a row (two event
//! forms of one) counted once, and the completed items of paginated rollouts (the rules are in
//! `mod.rs`'s module doc).

use super::CodexParser;
use serde_json::{Value, json};

use super::content::{
    completed_item_text, content_texts, line_id, message, push_message, without_memory_citation,
};
use super::record::Payload;
use super::turns::TokenEvent;
use crate::aix::sources::common::{Line, count_skip, join_nonempty, later};

/// The prompt and reply event texts of the record before the one being read.
pub(super) struct Previous {
    pub prompt: Option<String>,
    pub reply: Option<String>,
}

impl CodexParser {
    /// A human prompt: opens its turn, named by the Codex turn id announced for it if any.
    pub(super) fn prompt(&mut self, line: &Line<'_>, text: Option<String>, ts: Option<i64>) {
        self.prompt_with(line, text, None, ts);
    }

    /// A prompt whose message carries `metadata` (a task another agent sent, `agents.rs`).
    pub(super) fn prompt_with(
        &mut self,
        line: &Line<'_>,
        text: Option<String>,
        metadata: Option<Value>,
        ts: Option<i64>,
    ) {
        let id = line_id(line);
        let native = self
            .pending_native_id
            .take()
            .filter(|n| !self.used_turn_ids.contains(n));
        let turn_id = native.clone().unwrap_or_else(|| id.clone());
        self.open_turn(line, turn_id, native, ts);
        let mut msg = message(line, &id, "user", text, None, ts);
        msg.metadata_json = metadata;
        if let Some(t) = self.asm.open_mut() {
            t.turn.query_message_source_ids.push(id);
            push_message(t, msg, ts);
        }
    }

    /// Assistant text: `from_event` for `event_msg agent_message` (with the `memory_citation`
    /// it may carry), else a `response_item` message, whose appended citation block is no part
    /// of the reply (the event gives the same entries as data).
    pub(super) fn assistant_text(
        &mut self,
        line: &Line<'_>,
        text: Option<String>,
        from_event: bool,
        cited: Option<Value>,
        ts: Option<i64>,
    ) {
        let text = if from_event {
            text
        } else {
            text.map(without_memory_citation)
        };
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
        let mut msg = message(line, &id, "assistant", Some(text), None, ts);
        msg.metadata_json = cited
            .filter(Value::is_object)
            .map(|c| json!({ "memoryCitation": c }));
        push_message(t, msg, ts);
    }

    pub(super) fn reasoning(&mut self, line: &Line<'_>, p: &mut Payload<'_>, ts: Option<i64>) {
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

    /// Counts an API call's usage once: a (total, last) pair seen before adds nothing.
    pub(super) fn token_count(&mut self, line: &Line<'_>, p: &Payload<'_>, ts: Option<i64>) {
        let Some(event) = TokenEvent::of(p) else {
            return;
        };
        let previous = self.last_total.replace(event.total);
        if !self.token_events.insert(event) {
            return;
        }
        let usage = event
            .last
            .unwrap_or_else(|| event.total.delta_from(previous));
        if usage.is_zero() {
            return;
        }
        self.ensure_turn(line, ts);
        if let Some(t) = self.asm.open_mut() {
            t.extra.has_output = true;
            t.extra.tokens = t.extra.tokens.plus(usage);
            t.extra.tokens.write_to(&mut t.turn);
            later(&mut t.turn.completed_at_ms, ts);
        }
    }

    pub(super) fn compacted(&mut self, line: &Line<'_>, text: Option<String>, ts: Option<i64>) {
        self.ensure_turn(line, ts);
        let id = line_id(line);
        let msg = message(line, &id, "system", text, None, ts);
        if let Some(t) = self.asm.open_mut() {
            push_message(t, msg, ts);
        }
    }

    /// A prompt event: the same text as the prompt of the record just before is one prompt
    /// (counted as repeated), else a prompt that opens its turn.
    pub(super) fn prompt_unless_repeated(
        &mut self,
        line: &Line<'_>,
        text: Option<String>,
        previous: Option<String>,
        ts: Option<i64>,
    ) {
        if !self.repeated(&text, &previous, "repeated_prompt") {
            self.previous_prompt.clone_from(&text);
            self.prompt(line, text, ts);
        }
    }

    /// A reply event (`agent_message`, or a completed `AgentMessage` item): the same text as
    /// the reply event of the record just before is one reply (a build writing both; counted
    /// as repeated), else the event half of a visible pair.
    pub(super) fn reply_unless_repeated(
        &mut self,
        line: &Line<'_>,
        text: Option<String>,
        cited: Option<Value>,
        previous: Option<String>,
        ts: Option<i64>,
    ) {
        if !self.repeated(&text, &previous, "repeated_reply") {
            self.previous_reply.clone_from(&text);
            self.assistant_text(line, text, true, cited, ts);
        }
    }

    /// A completed turn item (`event_msg item_completed`; paginated rollouts write these instead
    /// of `user_message`, `agent_message` and `sub_agent_activity`): a `UserMessage` is a prompt,
    /// an `AgentMessage` assistant text as its event is, a `SubAgentActivity` a spawn link.
    /// Any other item repeats a `response_item` (reasoning, tool calls and their outputs) or
    /// carries nothing the mapping reads: counted under its type.
    pub(super) fn item_completed(
        &mut self,
        line: &Line<'_>,
        p: &mut Payload<'_>,
        previous: Previous,
        ts: Option<i64>,
    ) {
        let kind = p.item.0.as_ref().and_then(|i| i.kind.as_deref());
        match kind {
            Some("UserMessage") => {
                let text = completed_item_text(p, "text");
                self.prompt_unless_repeated(line, text, previous.prompt, ts);
            }
            Some("AgentMessage") => {
                let cited = p.item.0.as_mut().and_then(|i| i.memory_citation.take());
                let text = completed_item_text(p, "Text");
                self.reply_unless_repeated(line, text, cited, previous.reply, ts);
            }
            Some("SubAgentActivity") => self.spawn_item(p),
            other => {
                let reason = format!("event_msg/item_completed:{}", other.unwrap_or("unknown"));
                count_skip(&mut self.stats, &reason);
            }
        }
    }

    /// Whether `text` repeats the same event's text on the record just before (`previous`):
    /// then it is counted under `reason` and goes no further.
    fn repeated(&mut self, text: &Option<String>, previous: &Option<String>, reason: &str) -> bool {
        let repeated = text.is_some() && text == previous;
        if repeated {
            count_skip(&mut self.stats, reason);
        }
        repeated
    }
}
