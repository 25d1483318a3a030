//! Building Codex messages and reading content blocks and tool arguments.

use serde_json::Value;

use super::record::Payload;
use super::turns::CodexTurn;
use crate::aix::sources::assembler::HeldTurn;
use crate::aix::sources::common::{Line, join_nonempty, later};
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

/// A reply's text without the `<oai-mem-citation>…</oai-mem-citation>` blocks Codex appends to
/// the model's copy of a reply that cites its memories (the `agent_message` event has the clean
/// text and the entries as `memory_citation`). A block without its closing tag is kept.
pub(super) fn without_memory_citation(text: String) -> String {
    const OPEN: &str = "<oai-mem-citation>";
    const CLOSE: &str = "</oai-mem-citation>";
    if !text.contains(OPEN) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find(OPEN)
        && let Some(len) = rest[start..].find(CLOSE)
    {
        out.push_str(&rest[..start]);
        rest = &rest[start + len + CLOSE.len()..];
    }
    if rest.len() == text.len() {
        return text;
    }
    out.push_str(rest);
    // The blank lines that set the block apart from the reply go with it.
    out.truncate(out.trim_end().len());
    out
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

/// The text of a completed item: its blocks of type `block` (`text` in a `UserMessage`, `Text`
/// in an `AgentMessage`), joined as a message's are.
pub(super) fn completed_item_text(p: &mut Payload<'_>, block: &str) -> Option<String> {
    let item = p.item.0.take()?;
    join_nonempty(
        item.content
            .0
            .into_iter()
            .filter(|b| b.kind.as_deref() == Some(block))
            .filter_map(|b| b.text),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_citation_block_is_cut_and_anything_else_kept() {
        let cases = [
            (
                "Done.\n\n<oai-mem-citation>\n<citation_entries>\nM.md:1-2|note=[x]\n</citation_entries>\n</oai-mem-citation>",
                "Done.",
            ),
            ("A <oai-mem-citation>x</oai-mem-citation> B", "A  B"),
            ("No block.\n\n", "No block.\n\n"),
            (
                "Unclosed <oai-mem-citation> stays.\n",
                "Unclosed <oai-mem-citation> stays.\n",
            ),
            ("<oai-mem-citation></oai-mem-citation>", ""),
        ];
        for (text, want) in cases {
            assert_eq!(without_memory_citation(text.to_owned()), want, "{text:?}");
        }
    }
}
