//! One Cursor session's conversation (bubbles already in order) to its import item: turns by
//! user bubbles, messages, tool calls, tokens; and the subagent spawns its tool calls name.

use std::collections::HashSet;

use serde_json::{Map, Value};

use serde::Deserialize;

use super::record::{Bubble, Composer, Role, TASK_TOOL, ToolFormer, json_or_string};
use crate::aix::sources::ParseStats;
use crate::aix::sources::Provider;
use crate::aix::sources::assembler::{STATUS_COMPLETED, STATUS_FAILED, STATUS_PENDING};
use crate::aix::sources::common::count_skip;
use crate::protocol::{ImportSessionItem, Message, SessionInfo, ToolCall, ToolJson, Turn};

/// Prefix of a subagent session's id: `task-<toolCallId>`.
pub(super) const TASK_PREFIX: &str = "task-";

/// One bubble of a conversation, in conversation order.
pub(super) struct Entry<'a> {
    /// The bubble id (the key's last part, the header's or the inline object's id).
    pub id: String,
    pub bubble: Bubble<'a>,
}

/// Session header facts that do not come from the bubbles.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Head {
    pub session_id: String,
    pub created: Option<i64>,
    pub updated: Option<i64>,
    pub model: Option<String>,
    pub metadata: Map<String, Value>,
    pub lineage: Option<Spawn>,
}

/// A subagent spawned by a `task_v2` tool call.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spawn {
    /// `task-<toolCallId>`.
    pub child_id: String,
    pub tool_call_id: String,
    /// The session whose bubble holds the call.
    pub parent_id: String,
    /// The bubble holding the call.
    pub bubble_id: String,
    pub description: Option<String>,
    pub status: Option<String>,
    pub model: Option<String>,
    /// Time of the spawning bubble.
    pub at: Option<i64>,
    /// The child's header embedded in the call (`additionalData.composerData`), when present.
    pub embedded: Option<EmbeddedHead>,
}

/// What the mapping takes from a child's header embedded in its spawn.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct EmbeddedHead {
    pub created: Option<i64>,
    pub updated: Option<i64>,
    pub model: Option<String>,
    pub name: Option<String>,
}

impl EmbeddedHead {
    fn of(tf: &ToolFormer<'_>) -> Option<Self> {
        let raw = tf.additional_data.0.as_ref()?.composer_data.clone()?;
        let value = json_or_string(raw);
        let c = Composer::deserialize(&value).ok()?;
        Some(Self {
            created: c.created_at,
            updated: c.last_updated_at,
            model: c.model(),
            name: c.name.as_deref().map(str::to_owned),
        })
    }
}

impl Spawn {
    /// The spawn a bubble's tool call makes, if it is a `task_v2` call with an id.
    pub fn of(parent_id: &str, bubble_id: &str, bubble: &Bubble<'_>) -> Option<Spawn> {
        let t = bubble.tool_former_data.0.as_ref()?;
        if t.name.as_deref() != Some(TASK_TOOL) {
            return None;
        }
        let tool_call_id = t.tool_call_id.as_deref()?.to_owned();
        let params = t.params_object().unwrap_or_default();
        let param = |k: &str| {
            params
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        Some(Spawn {
            child_id: format!("{TASK_PREFIX}{tool_call_id}"),
            tool_call_id,
            parent_id: parent_id.to_owned(),
            bubble_id: bubble_id.to_owned(),
            description: param("description"),
            status: t.status().map(str::to_owned),
            model: param("model"),
            at: bubble.created_at,
            embedded: EmbeddedHead::of(t),
        })
    }
}

/// A turn being built: one user bubble and the bubbles up to the next one (or a leading run
/// of assistant bubbles, named by its first).
struct TurnAcc {
    id: String,
    query: Vec<String>,
    /// The bubbles' own times (see `Bubble::at`), in conversation order.
    times: Vec<i64>,
    /// When the bubbles' requests ended (see `Bubble::ended`).
    ends: Vec<i64>,
    has_assistant: bool,
    tokens: Option<(i64, i64)>,
    /// An assistant bubble of the turn carries counts (all zero when `tokens` is `None`).
    counted: bool,
    /// The last model an assistant bubble names.
    model: Option<String>,
    /// The model the prompt bubble names (`modelInfo`), for a turn whose replies name none.
    prompt_model: Option<String>,
    response: Option<String>,
    /// Indexes into the entries.
    members: Vec<usize>,
}

impl TurnAcc {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            query: Vec::new(),
            times: Vec::new(),
            ends: Vec::new(),
            has_assistant: false,
            tokens: None,
            counted: false,
            model: None,
            prompt_model: None,
            response: None,
            members: Vec::new(),
        }
    }

    fn model(&self) -> Option<String> {
        self.model.clone().or_else(|| self.prompt_model.clone())
    }
}

/// Builds the item of one session from its bubbles in conversation order; `None` when no
/// bubble makes a message (a session is never sent without a turn). Bubbles of an unknown
/// type are skipped and counted; a repeated tool call id keeps its first call.
pub(super) fn build_item(
    head: &Head,
    entries: &[Entry<'_>],
    fingerprint: String,
    stats: &mut ParseStats,
) -> Option<ImportSessionItem> {
    let mut turns: Vec<TurnAcc> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Some(role) = e.bubble.role() else {
            count_skip(stats, "bubble_unknown_type");
            continue;
        };
        if role == Role::User || turns.is_empty() {
            turns.push(TurnAcc::new(&e.id));
        }
        let Some(t) = turns.last_mut() else { continue };
        t.members.push(i);
        t.times.extend(e.bubble.at());
        t.ends.extend(e.bubble.ended());
        match role {
            Role::User => {
                t.query.push(e.id.clone());
                if let Some(m) = e.bubble.info_model() {
                    t.prompt_model.get_or_insert_with(|| m.to_owned());
                }
            }
            Role::Assistant => {
                t.has_assistant = true;
                t.counted |= e.bubble.has_token_count();
                if let Some(tokens) = e.bubble.tokens() {
                    t.tokens = Some(tokens);
                }
                if let Some(m) = e.bubble.model() {
                    t.model = Some(m);
                }
                if e.bubble.content().is_some() {
                    t.response = Some(e.id.clone());
                }
            }
        }
    }
    if turns.is_empty() {
        return None;
    }
    let all_times = turns.iter().flat_map(|t| t.times.iter().copied());
    let all_ends = turns.iter().flat_map(|t| t.ends.iter().copied());
    let created = head.created.or_else(|| all_times.clone().min());
    let updated = head
        .updated
        .or_else(|| all_times.chain(all_ends).max())
        .or(created);
    // The first own time after each turn, for the turns that have none.
    let mut next_time = vec![None; turns.len()];
    let mut after = None;
    for (n, t) in turns.iter().enumerate().rev() {
        next_time[n] = after;
        after = t.times.first().copied().or(after);
    }
    let mut out_turns = Vec::with_capacity(turns.len());
    let mut messages = Vec::new();
    let mut tools: Vec<ToolCall> = Vec::new();
    let mut tool_ids = HashSet::new();
    let mut parent: Option<String> = None;
    for (t, next) in turns.iter().zip(next_time) {
        // A turn without a time of its own starts with the session, but never after the
        // bubble that follows it.
        let started = t
            .times
            .iter()
            .copied()
            .min()
            .or_else(|| created.map(|c| next.map_or(c, |n| c.min(n))))
            .unwrap_or(0);
        let completed = t.has_assistant.then(|| {
            t.times
                .iter()
                .chain(&t.ends)
                .copied()
                .max()
                .unwrap_or(started)
                .max(started)
        });
        for &i in &t.members {
            let Some(e) = entries.get(i) else { continue };
            let b = &e.bubble;
            let at = b.at().unwrap_or(started);
            let role = match b.role() {
                Some(Role::User) => "user",
                _ => "assistant",
            };
            messages.push(Message {
                source_message_id: e.id.clone(),
                source_turn_id: Some(t.id.clone()),
                role: role.to_owned(),
                content: b.content(),
                sequence: i as i64,
                created_at_ms: at,
                thinking: b.thinking.as_deref().map(str::to_owned),
                context_json: None,
                metadata_json: None,
            });
            // Cursor writes an empty `toolFormerData` on bubbles that call nothing.
            if let Some(tf) = b
                .tool_former_data
                .0
                .as_ref()
                .filter(|tf| tf.name.is_some() || tf.tool_call_id.is_some())
            {
                let Some(call) = tool_call(tf, &e.id, &t.id, at, i as i64) else {
                    count_skip(stats, "tool_without_name");
                    continue;
                };
                if tool_ids.insert(call.source_tool_call_id.clone()) {
                    tools.push(call);
                } else {
                    count_skip(stats, "duplicate_tool_call");
                }
            }
        }
        // Counts Cursor wrote as zero are recorded as zero (SOURCES.md: never invent them, even
        // where a version fills none); none written, none recorded.
        let tokens = t.tokens.or(t.counted.then_some((0, 0)));
        let (input, output) = match tokens {
            Some((i, o)) => (Some(i), Some(o)),
            None => (None, None),
        };
        out_turns.push(Turn {
            source_turn_id: t.id.clone(),
            parent_source_turn_id: parent.replace(t.id.clone()),
            started_at_ms: started,
            completed_at_ms: completed,
            model: t.model(),
            input_tokens: input,
            output_tokens: output,
            total_tokens: tokens.map(|(i, o)| i.saturating_add(o)),
            response_message_source_id: t.response.clone(),
            query_message_source_ids: t.query.clone(),
            ..Turn::default()
        });
    }
    let model = head
        .model
        .clone()
        .or_else(|| turns.iter().rev().find_map(TurnAcc::model));
    let lineage = head.lineage.as_ref();
    Some(ImportSessionItem {
        source_provider: Provider::Cursor.as_str().to_owned(),
        source_session_id: head.session_id.clone(),
        source_session_fingerprint: fingerprint,
        imported_at_ms: 0,
        session: SessionInfo {
            created_at_ms: created,
            updated_at_ms: updated,
            model,
            is_subagent: lineage.is_some(),
            parent_source_session_id: lineage.map(|l| l.parent_id.clone()),
            parent_source_message_id: lineage.map(|l| l.bubble_id.clone()),
            spawn_tool_call_id: lineage.map(|l| l.tool_call_id.clone()),
            task_description: lineage.and_then(|l| l.description.clone()),
            task_status: lineage.and_then(|l| l.status.clone()),
            metadata: (!head.metadata.is_empty()).then(|| Value::Object(head.metadata.clone())),
            ..SessionInfo::default()
        },
        turns: out_turns,
        messages,
        tool_calls: tools,
        ..Default::default()
    })
}

/// The tool call of a bubble; `None` when it has no name.
fn tool_call(
    tf: &ToolFormer<'_>,
    bubble_id: &str,
    turn_id: &str,
    at: i64,
    sequence: i64,
) -> Option<ToolCall> {
    let name = tf.name.as_deref()?;
    let id = tf.tool_call_id.as_deref().unwrap_or(bubble_id);
    let spawned = (name == TASK_TOOL)
        .then_some(tf.tool_call_id.as_deref())
        .flatten()
        .map(|id| format!("{TASK_PREFIX}{id}"));
    Some(ToolCall {
        source_tool_call_id: id.to_owned(),
        source_turn_id: Some(turn_id.to_owned()),
        source_message_id: Some(bubble_id.to_owned()),
        tool_name: name.to_owned(),
        tool_number: tf.tool,
        params_json: tf.params_json().map(ToolJson::from),
        result_json: tf.result_json().map(ToolJson::from),
        status: tf.status().map(tool_status),
        spawned_source_session_id: spawned,
        started_at_ms: at,
        completed_at_ms: None,
        sequence,
        error: None,
        result_source_message_id: None,
    })
}

/// Cursor's tool statuses in the ledger's words; an unknown one is passed on as written (the
/// ledger reads it as pending).
fn tool_status(s: &str) -> String {
    match s.trim().to_ascii_lowercase().as_str() {
        "completed" | "complete" | "success" | "succeeded" | "done" => STATUS_COMPLETED,
        "error" | "failed" | "failure" | "cancelled" | "canceled" | "aborted" | "rejected" => {
            STATUS_FAILED
        }
        "loading" | "running" | "in_progress" | "streaming" => "running",
        "pending" | "requested" => STATUS_PENDING,
        _ => s,
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, json: &'static str) -> Entry<'static> {
        Entry {
            id: id.to_owned(),
            bubble: serde_json::from_str(json).unwrap(),
        }
    }

    #[test]
    fn turns_open_at_user_bubbles_and_a_leading_assistant_run() {
        let entries = vec![
            entry("a0", r#"{"type":2,"text":"hello","createdAt":5}"#),
            entry("u1", r#"{"type":1,"text":"q","createdAt":10}"#),
            entry("x", r#"{"type":9}"#),
            entry(
                "a1",
                r#"{"type":2,"text":"r","createdAt":12,"tokenCount":{"inputTokens":3,"outputTokens":4},
                   "modelInfo":{"modelName":"m1"}}"#,
            ),
            entry("u2", r#"{"type":1,"text":"q2"}"#),
        ];
        let head = Head {
            session_id: "s".into(),
            created: Some(1),
            ..Head::default()
        };
        let mut stats = ParseStats::default();
        let item = build_item(&head, &entries, "fp".into(), &mut stats).unwrap();
        let ids: Vec<(&str, Option<&str>, i64, Option<i64>)> = item
            .turns
            .iter()
            .map(|t| {
                (
                    t.source_turn_id.as_str(),
                    t.parent_source_turn_id.as_deref(),
                    t.started_at_ms,
                    t.completed_at_ms,
                )
            })
            .collect();
        assert_eq!(
            ids,
            vec![
                ("a0", None, 5, Some(5)),
                ("u1", Some("a0"), 10, Some(12)),
                ("u2", Some("u1"), 1, None)
            ]
        );
        assert_eq!(item.turns[1].total_tokens, Some(7));
        assert_eq!(item.turns[1].model.as_deref(), Some("m1"));
        assert_eq!(item.session.model.as_deref(), Some("m1"));
        assert_eq!(item.session.updated_at_ms, Some(12));
        let seqs: Vec<i64> = item.messages.iter().map(|m| m.sequence).collect();
        assert_eq!(seqs, vec![0, 1, 3, 4]);
        assert_eq!(stats.skipped_records.get("bubble_unknown_type"), Some(&1));
    }

    /// Versions without `createdAt`: a turn with no time of its own starts with the session,
    /// but not after the next bubble's time (here the composer claims a later creation).
    #[test]
    fn a_turn_without_times_starts_no_later_than_the_next_bubble() {
        let entries = vec![
            entry("u1", r#"{"type":1,"text":"q"}"#),
            entry("a1", r#"{"type":2,"text":"r"}"#),
            entry("u2", r#"{"type":1,"text":"q2"}"#),
            entry(
                "a2",
                r#"{"type":2,"text":"r2","timingInfo":{"clientStartTime":812.5,
                   "clientRpcSendTime":1700000040000,"clientEndTime":1700000045000}}"#,
            ),
        ];
        let head = Head {
            session_id: "s".into(),
            created: Some(1_700_000_050_000),
            ..Head::default()
        };
        let mut stats = ParseStats::default();
        let item = build_item(&head, &entries, "fp".into(), &mut stats).unwrap();
        let turns: Vec<(&str, i64, Option<i64>)> = item
            .turns
            .iter()
            .map(|t| {
                (
                    t.source_turn_id.as_str(),
                    t.started_at_ms,
                    t.completed_at_ms,
                )
            })
            .collect();
        let t = 1_700_000_040_000;
        assert_eq!(
            turns,
            vec![("u1", t, Some(t)), ("u2", t, Some(1_700_000_045_000))]
        );
        let times: Vec<i64> = item.messages.iter().map(|m| m.created_at_ms).collect();
        assert_eq!(times, vec![t, t, t, t]);
        assert_eq!(item.session.created_at_ms, Some(1_700_000_050_000));
        assert_eq!(item.session.updated_at_ms, Some(1_700_000_045_000));
    }

    #[test]
    fn statuses_map_to_the_ledgers_words() {
        assert_eq!(tool_status("completed"), "completed");
        assert_eq!(tool_status("Error"), "failed");
        assert_eq!(tool_status("loading"), "running");
        assert_eq!(tool_status("weird"), "weird");
    }
}
