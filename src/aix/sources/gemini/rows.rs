//! Ledger rows of a Gemini conversation: one turn (its row, and its messages and tool calls a
//! take sends), and the spawn link of a subagent's tool call. Pure functions of the
//! conversation state, so a turn re-sent after any rewrite carries its current values.

use serde_json::{Map, Value, json};

use super::conversation::{Changes, Conversation, Stored};
use super::record::{Kind, Tokens, ToolCallRecord};
use crate::aix::sources::SpawnLink;
use crate::aix::sources::assembler::{STATUS_COMPLETED, STATUS_FAILED, STATUS_PENDING};
use crate::protocol::{Message, ToolCall, ToolJson, Turn};

const STATUS_RUNNING: &str = "running";

/// The rows of one turn, appended to `turns`, `messages` and `tools`: the turn's row with its
/// running aggregates (over all its messages), and of its messages and tool calls those
/// `changes` sends. A turn sent without some of them carries `toolCallCount`, the count of all
/// its tool calls (item rule 14); a turn sent whole carries none, as it always has (the count
/// is its tool calls in the item), so a full import's items are those of earlier versions.
pub(super) fn push_turn(
    conv: &Conversation,
    ordinal: usize,
    changes: &Changes,
    turns: &mut Vec<Turn>,
    messages: &mut Vec<Message>,
    tools: &mut Vec<ToolCall>,
) {
    let Some(slot) = conv.turns.get(ordinal) else {
        return;
    };
    let (started, completed) = conv.span(ordinal);
    let mut turn = Turn {
        source_turn_id: slot.id.clone(),
        parent_source_turn_id: slot.parent.clone(),
        started_at_ms: started.unwrap_or(0),
        completed_at_ms: completed,
        ..Turn::default()
    };
    let mut tokens: Option<Tokens> = None;
    let (mut calls, mut partial) = (0i64, false);
    for s in conv.members(ordinal) {
        let rec = &s.rec;
        // The turn's prompt: the message that opened it, or the first prompt to join a turn
        // opened by what came before it.
        if rec.kind == Kind::Prompt && turn.query_message_source_ids.is_empty() {
            turn.query_message_source_ids.push(rec.id.clone());
        }
        if rec.kind == Kind::Gemini {
            if let Some(t) = rec.tokens {
                tokens = Some(tokens.unwrap_or_default().plus(t));
            }
            if rec.model.is_some() {
                turn.model.clone_from(&rec.model);
            }
            if rec.content.is_some() {
                turn.response_message_source_id = Some(rec.id.clone());
            }
            for call in &rec.tool_calls {
                if conv.tool_owner.get(&call.id) != Some(&rec.id) {
                    continue;
                }
                calls += 1;
                if changes.sends_tool(ordinal, &call.id) {
                    tools.push(tool_call(conv, s, &slot.id, call));
                } else {
                    partial = true;
                }
            }
        }
        if changes.sends_message(ordinal, &rec.id) {
            messages.push(message(s, &slot.id));
        } else {
            partial = true;
        }
    }
    if partial {
        turn.tool_call_count = Some(calls);
    }
    if let Some(t) = tokens {
        // Gemini's `input` (the prompt count) includes `cached`: the ledger's input is the
        // uncached part, clamped at 0 (a file with more cached than input gives 0).
        turn.input_tokens = Some(t.input.saturating_sub(t.cached).max(0));
        turn.output_tokens = Some(t.output);
        turn.cached_input_tokens = Some(t.cached);
        turn.reasoning_tokens = Some(t.thoughts);
        turn.total_tokens = Some(t.total);
    }
    turns.push(turn);
}

fn message(s: &Stored, turn_id: &str) -> Message {
    let rec = &s.rec;
    let role = match rec.kind {
        Kind::Prompt => "user",
        Kind::ToolResponse => "tool",
        Kind::Notice => "system",
        Kind::Gemini | Kind::Other => "assistant",
    };
    let mut meta = Map::new();
    meta.insert("type".to_owned(), json!(rec.raw_type));
    if let Some(model) = &rec.model {
        meta.insert("model".to_owned(), json!(model));
    }
    if let Some(display) = &rec.display {
        meta.insert("displayContent".to_owned(), json!(display));
    }
    Message {
        source_message_id: rec.id.clone(),
        source_turn_id: Some(turn_id.to_owned()),
        role: role.to_owned(),
        content: rec.content.clone(),
        sequence: s.seq,
        created_at_ms: rec.ts.unwrap_or(0),
        thinking: rec.thinking.clone(),
        metadata_json: Some(Value::Object(meta)),
        ..Message::default()
    }
}

fn tool_call(conv: &Conversation, s: &Stored, turn_id: &str, call: &ToolCallRecord) -> ToolCall {
    let status = status(call);
    let terminal = status == STATUS_COMPLETED || status == STATUS_FAILED;
    ToolCall {
        source_tool_call_id: call.id.clone(),
        source_turn_id: Some(turn_id.to_owned()),
        source_message_id: Some(s.rec.id.clone()),
        tool_name: call.name.clone().unwrap_or_else(|| "unknown".to_owned()),
        params_json: call.args.clone().map(ToolJson::from),
        result_json: call.result.clone().map(ToolJson::from),
        status: Some(status.to_owned()),
        spawned_source_session_id: call.agent_id.clone(),
        // The model asked for the call in its message; the call's own timestamp moves with its
        // status and is the completion time once it is done.
        started_at_ms: s.rec.ts.or(call.ts).unwrap_or(0),
        completed_at_ms: if terminal { call.ts.or(s.rec.ts) } else { None },
        sequence: conv.tool_seq.get(&call.id).copied().unwrap_or(0),
        // `failed` covers both; the written status tells an error from a cancellation.
        error: call
            .status
            .clone()
            .filter(|s| s == "error" || s == "cancelled"),
        ..ToolCall::default()
    }
}

/// The ledger status of a tool call's written `status`: `success` -> completed; `error`,
/// `cancelled` -> failed; `executing` -> running; `validating`, `scheduled`,
/// `awaiting_approval` and unknown values -> pending; none -> completed when it has a result,
/// else pending.
fn status(call: &ToolCallRecord) -> &'static str {
    match call.status.as_deref() {
        Some("success") => STATUS_COMPLETED,
        Some("error" | "cancelled") => STATUS_FAILED,
        Some("executing") => STATUS_RUNNING,
        Some(_) => STATUS_PENDING,
        None if call.result.is_some() => STATUS_COMPLETED,
        None => STATUS_PENDING,
    }
}

/// The spawn link of the call that ran subagent `tool_id` (its `description` and status).
pub(super) fn spawn_link(conv: &Conversation, tool_id: &str) -> Option<SpawnLink> {
    let owner = conv.tool_owner.get(tool_id)?;
    let call = conv
        .messages
        .get(owner)?
        .rec
        .tool_calls
        .iter()
        .find(|c| c.id == tool_id)?;
    Some(SpawnLink {
        tool_use_id: tool_id.to_owned(),
        description: call.description.clone(),
        status: Some(status(call).to_owned()),
    })
}
