//! Building Codex messages and reading content blocks and tool arguments.

use serde_json::Value;

use super::record::Payload;
use super::turns::CodexTurn;
use crate::aix::sources::assembler::HeldTurn;
use crate::aix::sources::common::{Line, later};
use crate::aix::sources::lenient::TextOrList;
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

/// Text of `input_text`/`output_text`/`text`/`reasoning_text` content blocks, or a plain
/// string content (moved out of the payload).
pub(super) fn content_texts(p: &mut Payload<'_>) -> Vec<String> {
    match std::mem::take(&mut p.content) {
        TextOrList::Text(s) => vec![s],
        TextOrList::List(blocks) => blocks
            .into_iter()
            .filter(|b| {
                matches!(
                    b.kind.as_deref(),
                    Some("input_text" | "output_text" | "text" | "reasoning_text")
                )
            })
            .filter_map(|b| b.text)
            .collect(),
        TextOrList::Absent => Vec::new(),
    }
}

/// Tool arguments may be a JSON string or already an object: a string that parses as JSON is
/// replaced by its value, any other value is kept as is.
pub(super) fn json_or_string(v: Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

/// Text Codex injects as a `user` message that no human typed: the environment, the user's
/// instructions (AGENTS.md), permissions, review hand-offs.
pub(super) fn injected(text: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "<environment_context>",
        "<user_instructions>",
        "# AGENTS.md instructions",
        "<permissions instructions>",
        "<user_action>",
    ];
    let t = text.trim_start();
    PREFIXES.iter().any(|p| t.starts_with(p))
}

/// The `<cwd>` of an `<environment_context>` message (the only place the old format names the
/// working directory).
pub(super) fn cwd_of_environment(text: &str) -> Option<String> {
    let rest = text.trim_start().strip_prefix("<environment_context>")?;
    let start = rest.find("<cwd>")? + "<cwd>".len();
    let end = rest[start..].find("</cwd>")? + start;
    let cwd = rest[start..end].trim();
    (!cwd.is_empty()).then(|| cwd.to_owned())
}
