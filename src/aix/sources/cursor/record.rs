//! The JSON values of `state.vscdb` the mapping reads, with only the fields it uses (every leaf
//! lenient, see `lenient`): a composer (`composerData:<id>`, or one entry of the legacy
//! `composer.composerData`), a bubble (`bubbleId:<composer>:<bubble>`, an element of an inline
//! `conversation`, or a legacy chat tab's bubble) and its tool call (`toolFormerData`). Large
//! fields nobody maps (`codeBlockData`, `originalFileStates`, `context`, …) are skipped without
//! being built.

mod fields;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub(super) use self::fields::time;
use self::fields::{headers, kind, thinking};
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
    /// The workspace the composer was opened in (Cursor 3.x: `{id, uri: {fsPath, path, …}}`).
    #[serde(borrow)]
    pub workspace_identifier: Obj<WorkspaceIdentifier<'a>>,
}

impl Composer<'_> {
    pub fn model(&self) -> Option<String> {
        self.model_config
            .0
            .as_ref()
            .and_then(|m| m.model_name.as_deref())
            .map(str::to_owned)
    }

    /// The folder of the composer's own `workspaceIdentifier`: `uri.fsPath`, else `uri.path`.
    pub fn workspace_path(&self) -> Option<String> {
        let uri = self.workspace_identifier.0.as_ref()?.uri.0.as_ref()?;
        uri.fs_path
            .as_deref()
            .or(uri.path.as_deref())
            .map(str::to_owned)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct WorkspaceIdentifier<'a> {
    #[serde(borrow)]
    pub uri: Obj<WorkspaceUri<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct WorkspaceUri<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub fs_path: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub path: Option<Cow<'a, str>>,
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
    /// When the bubble's request ran; the only times of versions that write no `createdAt`.
    pub timing_info: Obj<TimingInfo>,
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

    /// `modelInfo.modelName`, else a legacy chat tab bubble's `modelType`.
    pub fn model(&self) -> Option<String> {
        self.info_model()
            .or(self.model_type.as_deref())
            .map(str::to_owned)
    }

    /// `modelInfo.modelName` alone.
    pub fn info_model(&self) -> Option<&str> {
        self.model_info
            .0
            .as_ref()
            .and_then(|m| m.model_name.as_deref())
    }

    /// Whether the bubble carries a `tokenCount` object (zeros included).
    pub fn has_token_count(&self) -> bool {
        self.token_count.0.is_some()
    }

    /// Whether the bubble holds no `text` nor `rawText` (whatever its `initText` holds).
    pub fn without_text(&self) -> bool {
        self.text.is_none() && self.raw_text.is_none()
    }

    /// The bubble's own time: `createdAt`; without one (versions before late 2025), its
    /// request's send time from `timingInfo`: `clientRpcSendTime`, else `clientStartTime`,
    /// each only when it is epoch milliseconds (`clientStartTime` is often an offset from the
    /// window's load).
    pub fn at(&self) -> Option<i64> {
        self.created_at.or_else(|| {
            let t = self.timing_info.0.as_ref()?;
            epoch(t.client_rpc_send_time).or(epoch(t.client_start_time))
        })
    }

    /// When the bubble's request ended, for a bubble without `createdAt`: the later of
    /// `timingInfo.clientEndTime` and `clientSettleTime`, epoch milliseconds only.
    pub fn ended(&self) -> Option<i64> {
        if self.created_at.is_some() {
            return None;
        }
        let t = self.timing_info.0.as_ref()?;
        epoch(t.client_end_time).max(epoch(t.client_settle_time))
    }

    /// `(input, output)` when either is above zero (Cursor writes zeros on every bubble but the
    /// one that closes a request, and on every bubble in versions that do not count).
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

/// Epoch milliseconds from 2001-09-09 on: the smallest value a `timingInfo` time is read as a
/// date from (offsets from a window's load are far smaller).
const EPOCH_MIN_MS: i64 = 1_000_000_000_000;

fn epoch(t: Option<i64>) -> Option<i64> {
    t.filter(|t| *t >= EPOCH_MIN_MS)
}

/// A bubble's `timingInfo` (client clock, epoch milliseconds or a page-relative offset).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct TimingInfo {
    #[serde(deserialize_with = "time")]
    pub client_start_time: Option<i64>,
    #[serde(deserialize_with = "time")]
    pub client_rpc_send_time: Option<i64>,
    #[serde(deserialize_with = "time")]
    pub client_settle_time: Option<i64>,
    #[serde(deserialize_with = "time")]
    pub client_end_time: Option<i64>,
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
    fn timing_info_times_a_bubble_without_created_at() {
        let b: Bubble<'_> = serde_json::from_str(
            r#"{"type":2,"timingInfo":{"clientStartTime":10565.8,"clientRpcSendTime":"x",
               "clientSettleTime":1700000002000,"clientEndTime":1700000001000}}"#,
        )
        .unwrap();
        // `clientStartTime` is an offset from the window's load, not a date.
        assert_eq!(b.at(), None);
        assert_eq!(b.ended(), Some(1_700_000_002_000));
        let b: Bubble<'_> = serde_json::from_str(
            r#"{"type":2,"timingInfo":{"clientStartTime":1700000000500.25,"clientEndTime":3}}"#,
        )
        .unwrap();
        assert_eq!(b.at(), Some(1_700_000_000_500));
        assert_eq!(b.ended(), None);
        // `createdAt` wins, and its bubble takes no end from its timings.
        let b: Bubble<'_> = serde_json::from_str(
            r#"{"type":2,"createdAt":1700000000005,"timingInfo":{
               "clientRpcSendTime":1700000000000,"clientEndTime":1700000009000}}"#,
        )
        .unwrap();
        assert_eq!((b.at(), b.ended()), (Some(1_700_000_000_005), None));
        let b: Bubble<'_> = serde_json::from_str(r#"{"type":1,"timingInfo":[1]}"#).unwrap();
        assert_eq!((b.at(), b.ended()), (None, None));
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
        assert_eq!(c.workspace_path(), None);
        for (ident, want) in [
            (r#"{"uri":{"fsPath":"/a/b","path":"/x"}}"#, Some("/a/b")),
            (r#"{"uri":{"fsPath":"","path":"/c:/w"}}"#, Some("/c:/w")),
            (r#"{"id":"9f","uri":"file:///a"}"#, None),
        ] {
            let json = format!(r#"{{"workspaceIdentifier":{ident}}}"#);
            let c: Composer<'_> = serde_json::from_str(&json).unwrap();
            assert_eq!(c.workspace_path().as_deref(), want, "{ident}");
        }
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
