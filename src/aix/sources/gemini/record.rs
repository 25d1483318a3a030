//! One Gemini CLI record read into owned values: a JSONL line, an element of a `$set.messages`
//! array, or a whole legacy document. Only the fields the mapping uses are kept, and every leaf
//! is lenient: a value of an unexpected type reads as absent, never as a malformed record.
//!
//! Classification follows the CLI's own loader (`chatRecordingService.ts`
//! `loadConversationRecord`), in this order: a string `$rewindTo` is a rewind, a string `id` a
//! message, an object `$set` a metadata patch, a string `sessionId` the metadata record (the
//! first line of a log, or a whole legacy document); anything else is unknown.

use serde_json::{Map, Value};

use crate::aix::sources::common::{join_nonempty, parse_rfc3339_ms};

/// What one record does to the conversation.
#[derive(Debug)]
pub(super) enum Record {
    /// `{"$rewindTo": id}`: the history is cut before `id` (inclusive).
    Rewind(String),
    /// A message, new or replacing the one with the same id.
    Message(MessageRecord),
    /// `{"$set": {…}}` or a metadata record.
    Patch(Patch),
    /// Any other shape (skipped and counted).
    Unknown,
}

impl Record {
    /// Reads one parsed JSON value; a value that is not an object is `Unknown`.
    pub fn from_value(v: Value) -> Self {
        let Value::Object(mut map) = v else {
            return Record::Unknown;
        };
        if let Some(target) = text(&map, "$rewindTo") {
            return Record::Rewind(target);
        }
        if text(&map, "id").is_some() {
            return MessageRecord::from_map(map).map_or(Record::Unknown, Record::Message);
        }
        if let Some(Value::Object(set)) = map.remove("$set") {
            return Record::Patch(Patch::from_map(set));
        }
        if text(&map, "sessionId").is_some() {
            return Record::Patch(Patch::from_map(map));
        }
        Record::Unknown
    }
}

/// Session fields a patch sets (absent fields leave the session as it was).
#[derive(Debug, Default)]
pub(super) struct Patch {
    pub session_id: Option<String>,
    pub project_hash: Option<String>,
    pub start_time: Option<i64>,
    pub last_updated: Option<i64>,
    pub summary: Option<String>,
    pub directories: Option<Vec<String>>,
    pub kind: Option<String>,
    /// `messages`: the new history, in order. Elements that are not message records are
    /// dropped and counted in `dropped_messages`.
    pub messages: Option<Vec<MessageRecord>>,
    pub dropped_messages: u64,
}

impl Patch {
    fn from_map(mut map: Map<String, Value>) -> Self {
        let mut patch = Patch {
            session_id: text(&map, "sessionId"),
            project_hash: text(&map, "projectHash"),
            start_time: time(&map, "startTime"),
            last_updated: time(&map, "lastUpdated"),
            summary: text(&map, "summary"),
            kind: text(&map, "kind"),
            directories: match map.get("directories") {
                Some(Value::Array(dirs)) => Some(
                    dirs.iter()
                        .filter_map(Value::as_str)
                        .filter(|s| !s.trim().is_empty())
                        .map(str::to_owned)
                        .collect(),
                ),
                _ => None,
            },
            ..Patch::default()
        };
        if let Some(Value::Array(list)) = map.remove("messages") {
            let mut messages = Vec::with_capacity(list.len());
            for v in list {
                match v {
                    Value::Object(m) if text(&m, "id").is_some() => {
                        messages.extend(MessageRecord::from_map(m));
                    }
                    _ => patch.dropped_messages += 1,
                }
            }
            patch.messages = Some(messages);
        }
        patch
    }
}

/// The `type` of a message, as the mapping sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// A `user` message with text: a human prompt, which opens a turn.
    Prompt,
    /// A `user` message made only of `functionResponse` parts (tool results written back into
    /// the history by a `$set.messages`): role `tool`, opens no turn.
    ToolResponse,
    /// `gemini`: the model's answer, with its thoughts, tool calls and tokens.
    Gemini,
    /// `info`, `warning`, `error`: CLI notices, role `system`.
    Notice,
    /// Any other `type` (or none): kept in the history for rewinds, not imported.
    Other,
}

/// One message record (`MessageRecord` of `chatRecordingTypes.ts`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MessageRecord {
    pub id: String,
    pub kind: Kind,
    /// The `type` as written (`unknown` when absent).
    pub raw_type: String,
    pub ts: Option<i64>,
    /// Text parts of `content` concatenated as the CLI renders them (thought parts excluded).
    pub content: Option<String>,
    /// Text of `displayContent`, when it differs from `content`.
    pub display: Option<String>,
    /// `thoughts[]`: each `subject` and `description` on its own line.
    pub thinking: Option<String>,
    pub model: Option<String>,
    pub tokens: Option<Tokens>,
    pub tool_calls: Vec<ToolCallRecord>,
}

impl MessageRecord {
    /// `None` when `id` is not a non-blank string.
    fn from_map(map: Map<String, Value>) -> Option<Self> {
        let id = text(&map, "id")?;
        let raw_type = text(&map, "type").unwrap_or_else(|| "unknown".to_owned());
        let content = map.get("content");
        let content_text = content.and_then(parts_text);
        let kind = match raw_type.as_str() {
            "user" if content_text.is_none() && content.is_some_and(has_function_response) => {
                Kind::ToolResponse
            }
            "user" => Kind::Prompt,
            "gemini" => Kind::Gemini,
            "info" | "warning" | "error" => Kind::Notice,
            _ => Kind::Other,
        };
        let display = map
            .get("displayContent")
            .and_then(parts_text)
            .filter(|d| Some(d) != content_text.as_ref());
        let thinking = match map.get("thoughts") {
            Some(Value::Array(thoughts)) => join_nonempty(thoughts.iter().filter_map(|t| {
                let t = t.as_object()?;
                join_nonempty(
                    ["subject", "description"]
                        .into_iter()
                        .filter_map(|k| text(t, k)),
                )
            })),
            _ => None,
        };
        let tool_calls = match map.get("toolCalls") {
            Some(Value::Array(calls)) => calls
                .iter()
                .enumerate()
                .filter_map(|(i, c)| ToolCallRecord::from_value(c, &id, i))
                .collect(),
            _ => Vec::new(),
        };
        Some(Self {
            kind,
            ts: time(&map, "timestamp"),
            content: content_text,
            display,
            thinking,
            model: text(&map, "model"),
            tokens: map.get("tokens").and_then(Tokens::from_value),
            tool_calls,
            raw_type,
            id,
        })
    }
}

/// `tokens` of a gemini message (`TokensSummary`). `tool` (tool-use prompt tokens) has no
/// column of its own; it is part of `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tokens {
    pub input: i64,
    pub output: i64,
    pub cached: i64,
    pub thoughts: i64,
    pub total: i64,
}

impl Tokens {
    /// An object gives tokens (absent counters read as 0); `null` or any other type gives none.
    fn from_value(v: &Value) -> Option<Self> {
        let m = v.as_object()?;
        Some(Self {
            input: count(m, "input"),
            output: count(m, "output"),
            cached: count(m, "cached"),
            thoughts: count(m, "thoughts"),
            total: count(m, "total"),
        })
    }

    pub fn plus(self, o: Self) -> Self {
        Self {
            input: self.input.saturating_add(o.input),
            output: self.output.saturating_add(o.output),
            cached: self.cached.saturating_add(o.cached),
            thoughts: self.thoughts.saturating_add(o.thoughts),
            total: self.total.saturating_add(o.total),
        }
    }
}

/// One entry of a gemini message's `toolCalls[]` (`ToolCallRecord`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolCallRecord {
    /// `id`, or `<messageId>#<index>` when the record has none (seen in legacy files).
    pub id: String,
    pub name: Option<String>,
    pub args: Option<Value>,
    /// `result` (the `functionResponse` parts), kept as written.
    pub result: Option<Value>,
    /// `status` as written (`success`, `error`, `cancelled`, `executing`, …).
    pub status: Option<String>,
    pub ts: Option<i64>,
    /// The session id of the subagent this call ran.
    pub agent_id: Option<String>,
    pub description: Option<String>,
}

impl ToolCallRecord {
    fn from_value(v: &Value, message_id: &str, index: usize) -> Option<Self> {
        let m = v.as_object()?;
        Some(Self {
            id: text(m, "id").unwrap_or_else(|| format!("{message_id}#{index}")),
            name: text(m, "name"),
            args: m.get("args").filter(|a| !a.is_null()).cloned(),
            result: m.get("result").filter(|r| !r.is_null()).cloned(),
            status: text(m, "status"),
            ts: time(m, "timestamp"),
            agent_id: text(m, "agentId"),
            description: text(m, "description"),
        })
    }
}

/// The non-blank string at `key`.
fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

fn time(m: &Map<String, Value>, key: &str) -> Option<i64> {
    m.get(key)
        .and_then(Value::as_str)
        .and_then(parse_rfc3339_ms)
}

/// A non-negative counter (a JSON number; fractions are truncated); anything else is 0.
fn count(m: &Map<String, Value>, key: &str) -> i64 {
    match m.get(key) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .unwrap_or(0)
            .max(0),
        _ => 0,
    }
}

/// Text of a `PartListUnion`: a string, one part, or a list of strings and parts; `{text}`
/// parts count unless marked `thought: true`. Concatenated without separator, as the CLI
/// renders it. `None` when there is no text.
fn parts_text(v: &Value) -> Option<String> {
    fn part(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => out.push_str(s),
            Value::Object(p) if p.get("thought").and_then(Value::as_bool) != Some(true) => {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    out.push_str(t);
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    match v {
        Value::Array(parts) => parts.iter().for_each(|p| part(p, &mut out)),
        other => part(other, &mut out),
    }
    (!out.trim().is_empty()).then_some(out)
}

/// Whether a `PartListUnion` holds a `functionResponse` part.
fn has_function_response(v: &Value) -> bool {
    let is = |p: &Value| p.get("functionResponse").is_some_and(Value::is_object);
    match v {
        Value::Array(parts) => parts.iter().any(is),
        other => is(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(v: Value) -> MessageRecord {
        match Record::from_value(v) {
            Record::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn records_classify_in_the_loaders_order() {
        assert!(matches!(
            Record::from_value(json!({"$rewindTo": "m1", "id": "x"})),
            Record::Rewind(t) if t == "m1"
        ));
        assert!(matches!(
            Record::from_value(json!({"id": "m1", "type": "user"})),
            Record::Message(_)
        ));
        assert!(matches!(
            Record::from_value(json!({"$set": {"summary": "s"}})),
            Record::Patch(p) if p.summary.as_deref() == Some("s")
        ));
        assert!(matches!(
            Record::from_value(json!({"sessionId": "s1", "projectHash": "h"})),
            Record::Patch(p) if p.session_id.as_deref() == Some("s1")
        ));
        for other in [
            json!({"$set": "x"}),
            json!({"$rewindTo": 3}),
            json!({"id": ""}),
            json!([1]),
            json!("s"),
        ] {
            assert!(matches!(Record::from_value(other), Record::Unknown));
        }
    }

    #[test]
    fn content_parts_thoughts_tokens_and_kinds() {
        let m = message(json!({
            "id": "g1", "type": "gemini", "timestamp": "1970-01-01T00:00:01Z",
            "content": [{"text": "Hel"}, "lo", {"text": "hidden", "thought": true},
                        {"functionCall": {"name": "x"}}],
            "thoughts": [{"subject": "Plan", "description": "Read it."}, {"subject": ""}, 7],
            "tokens": {"input": 10, "output": 2.9, "cached": -1, "total": "12"},
            "toolCalls": [{"name": "read_file", "args": {"p": 1}, "status": "success"}, "bad"]
        }));
        assert_eq!(m.kind, Kind::Gemini);
        assert_eq!(m.ts, Some(1000));
        assert_eq!(m.content.as_deref(), Some("Hello"));
        assert_eq!(m.thinking.as_deref(), Some("Plan\nRead it."));
        assert_eq!(
            m.tokens,
            Some(Tokens {
                input: 10,
                output: 2,
                ..Tokens::default()
            })
        );
        assert_eq!(m.tool_calls.len(), 1);
        assert_eq!(m.tool_calls[0].id, "g1#0");

        let r = message(json!({"id": "u", "type": "user",
            "content": [{"functionResponse": {"id": "c", "name": "n", "response": {}}}]}));
        assert_eq!(r.kind, Kind::ToolResponse);
        assert_eq!(r.content, None);
        let p = message(json!({"id": "u", "type": "user", "content": "hi",
                               "displayContent": "hi"}));
        assert_eq!((p.kind, p.display), (Kind::Prompt, None));
        let n = message(json!({"id": "w", "type": "warning", "content": "careful"}));
        assert_eq!(n.kind, Kind::Notice);
        let o = message(json!({"id": "o"}));
        assert_eq!((o.kind, o.raw_type.as_str()), (Kind::Other, "unknown"));
        assert!(message(json!({"id": "t", "tokens": null})).tokens.is_none());
    }
}
