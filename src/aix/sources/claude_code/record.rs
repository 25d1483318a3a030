//! One Claude Code line, read with only the fields the mapping uses (every leaf lenient, see
//! `lenient`): the envelope of every record type, the message body of user/assistant lines and
//! the `data` of progress lines. Tool inputs, tool results and `toolUseResult` stay JSON values.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::aix::sources::lenient::{self, Obj, TextOrList};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Record<'a> {
    #[serde(rename = "type", borrow, deserialize_with = "lenient::str")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub subtype: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub uuid: Option<Cow<'a, str>>,
    #[serde(rename = "parentUuid", borrow, deserialize_with = "lenient::str")]
    pub parent_uuid: Option<Cow<'a, str>>,
    #[serde(rename = "sessionId", borrow, deserialize_with = "lenient::str")]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub cwd: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub version: Option<Cow<'a, str>>,
    #[serde(rename = "gitBranch", borrow, deserialize_with = "lenient::str")]
    pub git_branch: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub slug: Option<Cow<'a, str>>,
    #[serde(rename = "agentId", borrow, deserialize_with = "lenient::str")]
    pub agent_id: Option<Cow<'a, str>>,
    #[serde(rename = "requestId", borrow, deserialize_with = "lenient::str")]
    pub request_id: Option<Cow<'a, str>>,
    #[serde(rename = "parentToolUseID", borrow, deserialize_with = "lenient::str")]
    pub parent_tool_use_id: Option<Cow<'a, str>>,
    /// `system` lines' text (`compact_boundary`: "Conversation compacted"); a
    /// `queue-operation` line's queued text.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub content: Option<Cow<'a, str>>,
    /// `queue-operation` lines: `enqueue`, `dequeue`, `remove`, `popAll` (`queue`).
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub operation: Option<Cow<'a, str>>,
    #[serde(rename = "aiTitle", borrow, deserialize_with = "lenient::str")]
    pub ai_title: Option<Cow<'a, str>>,
    #[serde(rename = "customTitle", borrow, deserialize_with = "lenient::str")]
    pub custom_title: Option<Cow<'a, str>>,
    /// Legacy `summary` records' title.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub summary: Option<Cow<'a, str>>,
    #[serde(rename = "isSidechain", deserialize_with = "lenient::bool")]
    pub is_sidechain: Option<bool>,
    #[serde(rename = "isMeta", deserialize_with = "lenient::bool")]
    pub is_meta: Option<bool>,
    #[serde(rename = "isCompactSummary", deserialize_with = "lenient::bool")]
    pub is_compact_summary: Option<bool>,
    #[serde(
        rename = "isVisibleInTranscriptOnly",
        deserialize_with = "lenient::bool"
    )]
    pub is_visible_in_transcript_only: Option<bool>,
    #[serde(borrow)]
    pub message: Obj<MessageBody<'a>>,
    #[serde(rename = "toolUseResult")]
    pub tool_use_result: Option<Value>,
    #[serde(borrow)]
    pub data: Obj<ProgressData<'a>>,
    /// `attachment` lines' body (2.1.x).
    #[serde(borrow)]
    pub attachment: Obj<Attachment<'a>>,
    /// Set by the parser, never read: the line is a queued prompt taken as a `user` line.
    #[serde(skip)]
    pub queued: bool,
}

/// An `attachment` line's body. `queued_command`: what the user typed while the agent worked,
/// handed to it mid-turn (`prompt`; `commandMode` `prompt`, or `task-notification` for a
/// background task's notice).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Attachment<'a> {
    #[serde(rename = "type", borrow, deserialize_with = "lenient::str")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub prompt: TextOrList<Block<'a>>,
    #[serde(rename = "commandMode", borrow, deserialize_with = "lenient::str")]
    pub command_mode: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MessageBody<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub content: TextOrList<Block<'a>>,
    pub usage: Obj<UsageBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Block<'a> {
    #[serde(rename = "type", borrow, deserialize_with = "lenient::str")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "owned_str")]
    pub text: Option<String>,
    #[serde(deserialize_with = "owned_str")]
    pub thinking: Option<String>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub name: Option<Cow<'a, str>>,
    pub input: Option<Value>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub tool_use_id: Option<Cow<'a, str>>,
    /// A `tool_result`'s content: a string or content blocks.
    pub content: Option<Value>,
    #[serde(deserialize_with = "lenient::bool")]
    pub is_error: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct UsageBody {
    #[serde(deserialize_with = "lenient::count")]
    pub input_tokens: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub output_tokens: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub cache_read_input_tokens: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub cache_creation_input_tokens: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ProgressData<'a> {
    #[serde(rename = "type", borrow, deserialize_with = "lenient::str")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(rename = "agentId", borrow, deserialize_with = "lenient::str")]
    pub agent_id: Option<Cow<'a, str>>,
}

fn owned_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(lenient::str(d)?.map(Cow::into_owned))
}

impl Record<'_> {
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("")
    }

    /// An `attachment` line holding a prompt the user queued while the agent worked
    /// (`queued_command` in `prompt` mode, or without a mode) becomes the `user` line it stands
    /// for: its prompt is the message content. Returns whether it did.
    pub fn take_queued_prompt(&mut self) -> bool {
        let Some(a) = self.attachment.0.as_mut() else {
            return false;
        };
        if a.kind.as_deref() != Some("queued_command")
            || a.command_mode.as_deref().is_some_and(|m| m != "prompt")
            || matches!(a.prompt, TextOrList::Absent)
        {
            return false;
        }
        let content = std::mem::take(&mut a.prompt);
        self.kind = Some(Cow::Borrowed("user"));
        self.message = Obj(Some(MessageBody {
            content,
            ..MessageBody::default()
        }));
        self.queued = true;
        true
    }
}

impl Block<'_> {
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("")
    }
}
