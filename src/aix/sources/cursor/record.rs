//! The JSON values of `state.vscdb` the mapping reads, with only the fields it uses (every leaf
//! lenient, see `lenient`): a composer (`composerData:<id>`, or one entry of the legacy
//! `composer.composerData`), a bubble (`bubbleId:<composer>:<bubble>`, an element of an inline
//! `conversation`, or a legacy chat tab's bubble) and its tool call (`toolFormerData`). Large
//! fields nobody maps (`codeBlockData`, `originalFileStates`, `context`, …) are skipped without
//! being built.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::aix::sources::common::parse_rfc3339_ms;
use crate::aix::sources::lenient::{self, List, Obj};

/// A session header: `composerData:<id>` (also a subagent's `composerData:task-<id>`, the
/// embedded `additionalData.composerData` of its spawn, and a legacy `allComposers` entry).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Composer<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub composer_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "time")]
    pub created_at: Option<i64>,
    #[serde(deserialize_with = "time")]
    pub last_updated_at: Option<i64>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub unified_mode: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub model_config: Obj<ModelName<'a>>,
    /// The conversation order of the bubbles stored under their own keys; `None` when the field
    /// is absent or not a list (an older composer, or a subagent's header).
    #[serde(borrow, deserialize_with = "headers")]
    pub full_conversation_headers_only: Option<Vec<Header<'a>>>,
    /// An older composer's inline conversation.
    #[serde(borrow)]
    pub conversation: List<Bubble<'a>>,
    /// Inline bubbles by id (some versions), looked up before the bubble keys.
    #[serde(borrow)]
    pub conversation_map: Obj<BTreeMap<Cow<'a, str>, Obj<Bubble<'a>>>>,
}

impl Composer<'_> {
    pub fn model(&self) -> Option<String> {
        self.model_config
            .0
            .as_ref()
            .and_then(|m| m.model_name.as_deref())
            .map(str::to_owned)
    }
}

/// Only `createdAt` of a composer: what ordering the changed sessions needs before reading them.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct CreatedAt {
    #[serde(deserialize_with = "time")]
    pub created_at: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ModelName<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub model_name: Option<Cow<'a, str>>,
}

/// One entry of `fullConversationHeadersOnly`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Header<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub bubble_id: Option<Cow<'a, str>>,
}

/// One message: `type` 1 (user) or 2 (assistant); legacy chat tabs write `"user"` / `"ai"`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Bubble<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub bubble_id: Option<Cow<'a, str>>,
    /// A legacy chat tab bubble's id.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, deserialize_with = "kind")]
    pub kind: Option<Kind<'a>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub raw_text: Option<Cow<'a, str>>,
    /// A legacy chat tab user bubble's editor state (a Lexical JSON document, as a string): the
    /// only copy of a follow-up prompt's text, whose `text` and `rawText` are empty.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub init_text: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "time")]
    pub created_at: Option<i64>,
    pub token_count: Obj<TokenCount>,
    #[serde(borrow)]
    pub tool_former_data: Obj<ToolFormer<'a>>,
    #[serde(borrow)]
    pub model_info: Obj<ModelName<'a>>,
    /// A legacy chat tab bubble's model.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub model_type: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "thinking")]
    pub thinking: Option<Cow<'a, str>>,
}

/// The `type` of a bubble, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind<'a> {
    Number(i64),
    Name(Cow<'a, str>),
}

/// What a bubble is to the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    User,
    Assistant,
}

impl Bubble<'_> {
    /// `None` for a type the mapping does not know (the bubble is skipped and counted).
    pub fn role(&self) -> Option<Role> {
        match self.kind.as_ref()? {
            Kind::Number(1) => Some(Role::User),
            Kind::Number(2) => Some(Role::Assistant),
            Kind::Name(n) if n == "user" => Some(Role::User),
            Kind::Name(n) if n == "ai" || n == "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }

    /// `text`, else `rawText`, else the text of `initText`.
    pub fn content(&self) -> Option<String> {
        self.text
            .as_deref()
            .or(self.raw_text.as_deref())
            .map(str::to_owned)
            .or_else(|| editor_text(self.init_text.as_deref()?))
    }

    pub fn model(&self) -> Option<String> {
        self.model_info
            .0
            .as_ref()
            .and_then(|m| m.model_name.as_deref())
            .or(self.model_type.as_deref())
            .map(str::to_owned)
    }

    /// Whether the bubble carries a `tokenCount` object (zeros included).
    pub fn has_token_count(&self) -> bool {
        self.token_count.0.is_some()
    }

    /// `(input, output)` when either is above zero (Cursor writes zeros on every bubble but the
    /// one that closes a request).
    pub fn tokens(&self) -> Option<(i64, i64)> {
        let t = self.token_count.0.as_ref()?;
        let (i, o) = (t.input_tokens.unwrap_or(0), t.output_tokens.unwrap_or(0));
        (i > 0 || o > 0).then_some((i, o))
    }
}

/// The plain text of a Lexical editor state (`{"root": {"children": [paragraph, …]}}`): each
/// top-level block's text nodes in order (a `linebreak` node is a newline), blocks joined by a
/// newline. `None` when it is not such a document or holds no text.
fn editor_text(state: &str) -> Option<String> {
    fn inline(node: &Value, out: &mut String) {
        if node.get("type").and_then(Value::as_str) == Some("linebreak") {
            out.push('\n');
        } else if let Some(t) = node.get("text").and_then(Value::as_str) {
            out.push_str(t);
        } else if let Some(children) = node.get("children").and_then(Value::as_array) {
            for c in children {
                inline(c, out);
            }
        }
    }
    let doc: Value = serde_json::from_str(state).ok()?;
    let blocks = doc.pointer("/root/children")?.as_array()?;
    let text = blocks
        .iter()
        .map(|b| {
            let mut s = String::new();
            inline(b, &mut s);
            s
        })
        .collect::<Vec<_>>()
        .join("\n");
    (!text.trim().is_empty()).then_some(text)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct TokenCount {
    #[serde(deserialize_with = "lenient::count")]
    pub input_tokens: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub output_tokens: Option<i64>,
}

/// A bubble's tool call.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ToolFormer<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "lenient::count")]
    pub tool: Option<i64>,
    /// Kept exact: OpenAI ids are `call_…\nfc_…`, newline included, and name the child keys.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub tool_call_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub status: Option<Cow<'a, str>>,
    pub raw_args: Option<Value>,
    pub params: Option<Value>,
    pub result: Option<Value>,
    #[serde(borrow)]
    pub additional_data: Obj<AdditionalData<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct AdditionalData<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub status: Option<Cow<'a, str>>,
    /// The child session's header, embedded by some versions (a JSON string or an object).
    pub composer_data: Option<Value>,
}

/// The name of the tool that spawns a subagent session `task-<toolCallId>`.
pub(super) const TASK_TOOL: &str = "task_v2";

impl ToolFormer<'_> {
    /// `params` as an object (a JSON string holding one is parsed).
    pub fn params_object(&self) -> Option<serde_json::Map<String, Value>> {
        match json_or_string(self.params.clone()?) {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The arguments as JSON: `rawArgs` (what the model sent), else `params`; a string holding
    /// JSON is parsed, any other string is kept as a string.
    pub fn params_json(&self) -> Option<Value> {
        [&self.raw_args, &self.params]
            .into_iter()
            .flatten()
            .find(|v| !is_blank(v))
            .cloned()
            .map(json_or_string)
    }

    pub fn result_json(&self) -> Option<Value> {
        self.result
            .as_ref()
            .filter(|v| !is_blank(v))
            .cloned()
            .map(json_or_string)
    }

    /// `status`, else `additionalData.status`.
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref().or_else(|| {
            self.additional_data
                .0
                .as_ref()
                .and_then(|a| a.status.as_deref())
        })
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// A string holding JSON becomes that JSON; anything else is kept.
pub(super) fn json_or_string(v: Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Header<'de>>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Vec<Header<'de>>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            List::<Header<'de>>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                .map(|l| Some(l.0))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// A bubble `type`: a number or a name; anything else reads as absent.
fn kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Kind<'de>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Kind<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Kind::Number(v)))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(v).ok().map(Kind::Number))
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Kind::Name(Cow::Borrowed(v))))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Kind::Name(Cow::Owned(v.to_owned()))))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// A time: epoch milliseconds as a number (or a string of digits), or an RFC 3339 string.
/// Zero, negative and anything else read as absent.
pub(super) fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok((v > 0).then_some(v))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(v).ok().filter(|v| *v > 0))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // Saturating cast; the range check keeps only plausible epoch milliseconds.
            Ok((1.0..9.0e15).contains(&v).then_some(v as i64))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(v.parse::<i64>().ok().filter(|v| *v > 0));
            }
            Ok(parse_rfc3339_ms(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// `thinking`: a string, or an object with a `text` string; anything else reads as absent.
fn thinking<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Block<'a> {
        #[serde(borrow, deserialize_with = "lenient::str")]
        text: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Thinking<'a> {
        #[serde(borrow)]
        Text(Cow<'a, str>),
        #[serde(borrow)]
        Block(Block<'a>),
        Other(IgnoredAny),
    }
    Ok(match Thinking::deserialize(d)? {
        Thinking::Text(t) => Some(t),
        Thinking::Block(b) => b.text,
        Thinking::Other(_) => None,
    }
    .filter(|t| !t.trim().is_empty()))
}

/// Parses `bytes` as `T` (an object): `Err` for malformed JSON, `Ok(None)` for valid JSON of
/// another type.
pub(super) fn parse_object<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<Option<T>, serde_json::Error> {
    serde_json::from_slice::<Obj<T>>(bytes).map(|o| o.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bubbles_read_leniently() {
        let b: Bubble<'_> = serde_json::from_str(
            r#"{"type":2,"text":"","rawText":"hi","createdAt":"2026-01-22T00:53:34.189Z",
               "tokenCount":{"inputTokens":10,"outputTokens":"x"},"thinking":{"text":"t"},
               "toolFormerData":{"name":"read_file","toolCallId":"call_a\nfc_b",
                                 "rawArgs":"{\"p\":1}","result":"plain","status":"completed"},
               "modelInfo":{"modelName":"m"}}"#,
        )
        .unwrap();
        assert_eq!(b.role(), Some(Role::Assistant));
        assert_eq!(b.content().as_deref(), Some("hi"));
        assert_eq!(b.created_at, Some(1_769_043_214_189));
        assert_eq!(b.tokens(), Some((10, 0)));
        assert_eq!(b.thinking.as_deref(), Some("t"));
        assert_eq!(b.model().as_deref(), Some("m"));
        let t = b.tool_former_data.0.unwrap();
        assert_eq!(t.tool_call_id.as_deref(), Some("call_a\nfc_b"));
        assert_eq!(t.params_json(), Some(serde_json::json!({"p": 1})));
        assert_eq!(t.result_json(), Some(serde_json::json!("plain")));
        let b: Bubble<'_> =
            serde_json::from_str(r#"{"type":"ai","createdAt":1700000000000.5,"thinking":[1]}"#)
                .unwrap();
        assert_eq!(b.role(), Some(Role::Assistant));
        assert_eq!(b.created_at, Some(1_700_000_000_000));
        assert_eq!(b.thinking, None);
        let b: Bubble<'_> = serde_json::from_str(r#"{"type":3,"createdAt":true}"#).unwrap();
        assert_eq!(b.role(), None);
        assert_eq!(b.created_at, None);
    }

    #[test]
    fn a_follow_up_prompt_is_read_from_its_editor_state() {
        let state = serde_json::json!({"root": {"type": "root", "children": [
            {"type": "paragraph", "children": [
                {"type": "text", "text": "Why does "},
                {"type": "mention", "text": "@main.rs", "children": []},
                {"type": "text", "text": " panic?"},
                {"type": "linebreak"},
                {"type": "text", "text": "It worked before."}]},
            {"type": "paragraph", "children": []},
            {"type": "paragraph", "children": [{"type": "text", "text": "Thanks"}]}]}});
        let bubble =
            serde_json::json!({"type": "user", "rawText": "", "initText": state.to_string()})
                .to_string();
        let b: Bubble<'_> = serde_json::from_str(&bubble).unwrap();
        assert_eq!(
            b.content().as_deref(),
            Some("Why does @main.rs panic?\nIt worked before.\n\nThanks")
        );
        // `rawText` first; an editor state without text, or not a document, is no content.
        let b: Bubble<'_> = serde_json::from_str(
            r#"{"type":"user","rawText":"typed","initText":"{\"root\":{\"children\":[]}}"}"#,
        )
        .unwrap();
        assert_eq!(b.content().as_deref(), Some("typed"));
        for init in [
            r#"{\"root\":{\"children\":[{\"children\":[]}]}}"#,
            "not json",
            "[1]",
        ] {
            let bubble = format!(r#"{{"type":"user","initText":"{init}"}}"#);
            let b: Bubble<'_> = serde_json::from_str(&bubble).unwrap();
            assert_eq!(b.content(), None, "{init}");
        }
    }

    #[test]
    fn composers_read_headers_or_inline_conversations() {
        let c: Composer<'_> = serde_json::from_str(
            r#"{"composerId":"c","createdAt":"1700000000000","fullConversationHeadersOnly":
               [{"bubbleId":"b1","type":1},7,{"type":2}],"modelConfig":{"modelName":"m"}}"#,
        )
        .unwrap();
        let ids: Vec<Option<&str>> = c
            .full_conversation_headers_only
            .as_ref()
            .unwrap()
            .iter()
            .map(|h| h.bubble_id.as_deref())
            .collect();
        assert_eq!(ids, vec![Some("b1"), None]);
        assert_eq!(c.created_at, Some(1_700_000_000_000));
        assert_eq!(c.model().as_deref(), Some("m"));
        let c: Composer<'_> = serde_json::from_str(
            r#"{"fullConversationHeadersOnly":{},"conversation":[{"type":1}]}"#,
        )
        .unwrap();
        assert!(c.full_conversation_headers_only.is_none());
        assert_eq!(c.conversation.0.len(), 1);
        assert!(parse_object::<Composer<'_>>(b"[1]").unwrap().is_none());
        assert!(parse_object::<Composer<'_>>(b"{").is_err());
    }
}
