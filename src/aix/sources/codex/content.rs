//! Building Codex messages and reading content blocks and tool arguments.

use serde_json::Value;

use super::turns::CodexTurn;
use crate::aix::sources::assembler::HeldTurn;
use crate::aix::sources::common::{Line, later, str_at};
use crate::protocol::Message;

/// `L<n>`: the 1-based line number of a record, the id of records without a native one.
pub(super) fn line_id(line: &Line<'_>) -> String {
    format!("L{}", line.index + 1)
}

pub(super) fn message(
    line: &Line<'_>,
    id: &str,
    role: &str,
    content: Option<String>,
    thinking: Option<String>,
    ts: Option<i64>,
) -> Message {
    Message {
        source_message_id: id.to_owned(),
        role: role.to_owned(),
        content,
        sequence: line.index as i64,
        created_at_ms: ts.unwrap_or(0),
        thinking,
        ..Message::default()
    }
}

pub(super) fn push_message(t: &mut HeldTurn<CodexTurn>, mut msg: Message, ts: Option<i64>) {
    msg.source_turn_id = Some(t.turn.source_turn_id.clone());
    t.messages.push(msg);
    later(&mut t.turn.completed_at_ms, ts);
}

/// Text of `input_text`/`output_text`/`text` content blocks, or a plain string content.
pub(super) fn content_texts(p: &Value) -> Vec<String> {
    match p.get("content") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| {
                matches!(
                    b.get("type").and_then(Value::as_str),
                    Some("input_text" | "output_text" | "text")
                )
            })
            .filter_map(|b| str_at(b, "text").map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Tool arguments may be a JSON string or already an object: a string that parses as JSON is
/// replaced by its value, any other value is kept as is.
pub(super) fn json_or_string(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}
