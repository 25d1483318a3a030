//! One Codex rollout line, `{timestamp, type, payload}`, read with only the fields the mapping
//! uses (every leaf lenient, see `lenient`): large fields nobody maps (`encrypted_content`,
//! `base_instructions`, `rate_limits`, …) are skipped without being built. Tool arguments,
//! inputs, actions and outputs stay JSON values.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::aix::sources::lenient::{self, List, Obj, TextOrList};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Record<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, deserialize_with = "lenient::str")]
    pub kind: Option<Cow<'a, str>>,
    /// The record's 0-based position in its file (`history_mode: "paginated"`, 0.15x+).
    #[serde(deserialize_with = "lenient::count")]
    pub ordinal: Option<i64>,
    #[serde(borrow)]
    pub payload: Obj<Box<Payload<'a>>>,
}

/// The union of the payload fields of every record type the mapping reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Payload<'a> {
    #[serde(rename = "type", borrow, deserialize_with = "lenient::str")]
    pub kind: Option<Cow<'a, str>>,
    // session_meta
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub cwd: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub originator: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub cli_version: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub model_provider: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub forked_from_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub agent_nickname: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub agent_role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub git: Obj<Git<'a>>,
    #[serde(borrow)]
    pub source: Obj<Source<'a>>,
    /// A paginated subagent's first own `ordinal`: the records before it replay its parent.
    #[serde(deserialize_with = "lenient::count")]
    pub subagent_history_start_ordinal: Option<i64>,
    // turn_context, task_started
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub turn_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub model: Option<Cow<'a, str>>,
    // event_msg: user_message, agent_message; compacted
    #[serde(deserialize_with = "owned_str")]
    pub message: Option<String>,
    // event_msg: item_completed (0.15x writes a prompt as a completed `UserMessage` item)
    #[serde(borrow)]
    pub item: Obj<CompletedItem<'a>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub thread_name: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub new_thread_id: Option<Cow<'a, str>>,
    /// `agent_message`: the memory entries the reply cites (0.12x+), kept as written.
    pub memory_citation: Option<Value>,
    // event_msg: sub_agent_activity (multi-agent v2): the spawning call, the spawned thread.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub event_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub agent_thread_id: Option<Cow<'a, str>>,
    /// `sub_agent_activity`'s `kind` (`started`, …), not the payload's `type`.
    #[serde(rename = "kind", borrow, deserialize_with = "lenient::str")]
    pub activity: Option<Cow<'a, str>>,
    pub info: Obj<Info>,
    // response_item
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub content: TextOrList<TextBlock<'a>>,
    #[serde(borrow)]
    pub summary: List<TextBlock<'a>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub call_id: Option<Cow<'a, str>>,
    pub arguments: Option<Value>,
    pub input: Option<Value>,
    pub action: Option<Value>,
    pub output: Option<Value>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub status: Option<Cow<'a, str>>,
    /// `tool_search_output`: the tools found, its result.
    pub tools: Option<Value>,
    // response_item agent_message (multi-agent v2): the agent paths of sender and addressee.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub author: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub recipient: Option<Cow<'a, str>>,
}

/// `item_completed`'s item: its type (`UserMessage`, `AgentMessage`, …) and content blocks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CompletedItem<'a> {
    #[serde(rename = "type", borrow, deserialize_with = "lenient::str")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub content: List<TextBlock<'a>>,
    /// `AgentMessage`: the memory entries the reply cites, as `agent_message` carries them.
    pub memory_citation: Option<Value>,
    /// `SubAgentActivity` (paginated multi-agent v2): the spawning call, the spawned thread and
    /// the activity (`started`, …), as `sub_agent_activity` carries them.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub id: Option<Cow<'a, str>>,
    #[serde(rename = "agentThreadId", borrow, deserialize_with = "lenient::str")]
    pub agent_thread_id: Option<Cow<'a, str>>,
    #[serde(rename = "kind", borrow, deserialize_with = "lenient::str")]
    pub activity: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Git<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub branch: Option<Cow<'a, str>>,
}

/// `source`: a string (`"cli"`, `"exec"`, …, read as absent) or `{subagent: …}`, where the
/// subagent is `{thread_spawn: {…}}` (a spawned agent), `{other: "guardian"}`, or a string
/// (`"review"`, `"compact"`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Source<'a> {
    #[serde(borrow)]
    pub subagent: SubagentField<'a>,
}

/// `source.subagent`: an object (`{thread_spawn}`, `{other}`), a string naming the kind, or
/// absent.
#[derive(Debug, Default)]
pub(super) enum SubagentField<'a> {
    #[default]
    Absent,
    Object(Subagent<'a>),
    Kind(String),
}

impl<'de: 'a, 'a> Deserialize<'de> for SubagentField<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = SubagentField<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                Subagent::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(SubagentField::Object)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SubagentField::Kind(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(SubagentField::Absent)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(SubagentField::Absent)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(SubagentField::Absent)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(SubagentField::Absent)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(SubagentField::Absent)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(SubagentField::Absent)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(SubagentField::Absent)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Subagent<'a> {
    #[serde(borrow)]
    pub thread_spawn: Obj<ThreadSpawn<'a>>,
    /// The kind of a subagent that is no spawned thread (`guardian`, 0.126).
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub other: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ThreadSpawn<'a> {
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub parent_thread_id: Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub spawn_call_id: Option<Cow<'a, str>>,
    /// The agent's path in its tree (multi-agent v2: `/root/<task name>`), the `recipient` of
    /// the messages addressed to it.
    #[serde(borrow, deserialize_with = "lenient::str")]
    pub agent_path: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Info {
    pub total_token_usage: Obj<TokenUsage>,
    pub last_token_usage: Obj<TokenUsage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TokenUsage {
    #[serde(deserialize_with = "lenient::count")]
    pub input_tokens: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub cached_input_tokens: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub cache_write_input_tokens: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub output_tokens: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub reasoning_output_tokens: Option<i64>,
    #[serde(deserialize_with = "lenient::count")]
    pub total_tokens: Option<i64>,
}

/// A content or summary block: `input_text`, `output_text`, `summary_text`, `reasoning_text`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TextBlock<'a> {
    #[serde(rename = "type", borrow, deserialize_with = "lenient::str")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "owned_str")]
    pub text: Option<String>,
}

fn owned_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(lenient::str(d)?.map(Cow::into_owned))
}

impl Payload<'_> {
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("")
    }

    pub fn thread_spawn(&self) -> Option<&ThreadSpawn<'_>> {
        match &self.source.0.as_ref()?.subagent {
            SubagentField::Object(s) => s.thread_spawn.0.as_ref(),
            _ => None,
        }
    }

    /// `source.subagent` when it is a string (`"review"`, …).
    pub fn subagent_kind(&self) -> Option<&str> {
        match &self.source.0.as_ref()?.subagent {
            SubagentField::Kind(k) if !k.trim().is_empty() => Some(k),
            _ => None,
        }
    }

    /// Whether `source.subagent` is given in any form (a spawned thread, `{other}`, a kind).
    pub fn is_subagent(&self) -> bool {
        match self.source.0.as_ref().map(|s| &s.subagent) {
            Some(SubagentField::Object(_)) => true,
            Some(SubagentField::Kind(k)) => !k.trim().is_empty(),
            Some(SubagentField::Absent) | None => false,
        }
    }

    /// The kind a subagent names itself, for the session's metadata: the string form, or
    /// `{other: …}`'s value.
    pub fn subagent_label(&self) -> Option<&str> {
        self.subagent_kind()
            .or_else(|| match &self.source.0.as_ref()?.subagent {
                SubagentField::Object(s) => s.other.as_deref().filter(|k| !k.trim().is_empty()),
                _ => None,
            })
    }
}
