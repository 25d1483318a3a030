//! The JSON values OpenCode stores (`session.data` of old schemas and legacy session files,
//! `message.data`, `part.data`), read with only the fields the mapping uses. Every leaf is
//! lenient (`lenient`): a field of another type reads as absent, so a value is malformed only
//! when it is not a JSON object at all. Tool inputs and outputs stay JSON values; the large
//! fields nobody maps (`metadata.summary` of a task, file URLs, snapshots) are skipped unbuilt.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::aix::sources::lenient::{self, Obj};

/// A non-blank string, owned.
fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(lenient::str(d)?.map(Cow::into_owned))
}

/// A JSON number (costs are fractional); any other type reads as absent.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.filter(Value::is_number))
}

/// `time` objects of sessions, messages and tool states (epoch milliseconds).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Times {
    #[serde(deserialize_with = "lenient::count")]
    pub created: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub updated: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub completed: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub archived: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub start: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub end: Option<i64>,
}

/// Session info: a legacy `storage/session/<project>/<id>.json` file, or the `data` column of
/// a schema that kept the session as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SessionData {
    #[serde(deserialize_with = "string")]
    pub id: Option<String>,
    #[serde(rename = "parentID", deserialize_with = "string")]
    pub parent_id: Option<String>,
    #[serde(rename = "projectID", deserialize_with = "string")]
    pub project_id: Option<String>,
    #[serde(deserialize_with = "string")]
    pub title: Option<String>,
    #[serde(deserialize_with = "string")]
    pub directory: Option<String>,
    #[serde(deserialize_with = "string")]
    pub version: Option<String>,
    #[serde(deserialize_with = "string")]
    pub slug: Option<String>,
    pub time: Obj<Times>,
}

/// `{providerID, modelID}` of a user message (assistant messages spell them flat).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ModelRef {
    #[serde(rename = "providerID", deserialize_with = "string")]
    pub provider_id: Option<String>,
    #[serde(rename = "modelID", deserialize_with = "string")]
    pub model_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Cache {
    #[serde(deserialize_with = "lenient::count")]
    pub read: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub write: Option<i64>,
}

/// `tokens` of an assistant message: disjoint counts, as OpenCode reports them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Tokens {
    #[serde(deserialize_with = "lenient::count")]
    pub input: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub output: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub reasoning: Option<i64>,
    pub cache: Obj<Cache>,
}

/// `message.data` (or a legacy message file).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MessageData {
    #[serde(deserialize_with = "string")]
    pub role: Option<String>,
    pub time: Obj<Times>,
    #[serde(rename = "parentID", deserialize_with = "string")]
    pub parent_id: Option<String>,
    #[serde(rename = "modelID", deserialize_with = "string")]
    pub model_id: Option<String>,
    #[serde(rename = "providerID", deserialize_with = "string")]
    pub provider_id: Option<String>,
    pub model: Obj<ModelRef>,
    pub tokens: Obj<Tokens>,
    #[serde(deserialize_with = "number")]
    pub cost: Option<Value>,
    #[serde(deserialize_with = "string")]
    pub agent: Option<String>,
    #[serde(deserialize_with = "string")]
    pub mode: Option<String>,
    #[serde(deserialize_with = "string")]
    pub finish: Option<String>,
}

impl MessageData {
    /// The model that produced (assistant) or was asked for (user) this message.
    pub fn model(&self) -> Option<&str> {
        self.model_id
            .as_deref()
            .or_else(|| self.model.0.as_ref()?.model_id.as_deref())
    }

    pub fn provider(&self) -> Option<&str> {
        self.provider_id
            .as_deref()
            .or_else(|| self.model.0.as_ref()?.provider_id.as_deref())
    }
}

/// `part.data` (or a legacy part file), discriminated by `type`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PartData {
    #[serde(rename = "type", deserialize_with = "string")]
    pub kind: Option<String>,
    /// `text` and `reasoning`.
    #[serde(deserialize_with = "string")]
    pub text: Option<String>,
    /// A `text` part OpenCode wrote itself (attached file contents, command expansions).
    #[serde(deserialize_with = "lenient::bool")]
    pub synthetic: Option<bool>,
    #[serde(deserialize_with = "lenient::bool")]
    pub ignored: Option<bool>,
    /// `tool`.
    #[serde(rename = "callID", deserialize_with = "string")]
    pub call_id: Option<String>,
    #[serde(deserialize_with = "string")]
    pub tool: Option<String>,
    pub state: Obj<ToolState>,
}

/// `state` of a `tool` part: `pending` -> `running` -> `completed` | `error`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ToolState {
    #[serde(deserialize_with = "string")]
    pub status: Option<String>,
    pub input: Option<Value>,
    pub output: Option<Value>,
    #[serde(deserialize_with = "string")]
    pub error: Option<String>,
    pub metadata: Obj<ToolMetadata>,
    pub time: Obj<Times>,
}

/// The part of a tool's `metadata` the mapping reads: the session a `task` spawned.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ToolMetadata {
    #[serde(rename = "sessionId", deserialize_with = "string")]
    pub session_id: Option<String>,
    #[serde(rename = "sessionID", deserialize_with = "string")]
    pub session_id_upper: Option<String>,
}

impl PartData {
    /// The child session a `task` tool part names (`state.metadata.sessionId`), if any.
    pub fn spawned_session(&self) -> Option<&str> {
        if self.kind.as_deref() != Some("tool") || self.tool.as_deref() != Some("task") {
            return None;
        }
        let meta = self.state.0.as_ref()?.metadata.0.as_ref()?;
        meta.session_id
            .as_deref()
            .or(meta.session_id_upper.as_deref())
            .map(str::trim)
    }
}
