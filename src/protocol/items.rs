//! The import item (`ImportSessionItem`): one source session graph, as the worker emits it and
//! the import service consumes it.
//!
//! The normalised types serialise in camelCase and skip absent optionals, so the canonical form
//! of an item does not depend on how the sender spelled it. Deserialisation goes through a raw
//! mirror that also accepts the baseline's snake_case aliases (IMPORT_SEMANTICS.md "Requests"):
//! a non-blank camelCase value wins, else the snake_case one. Every string is trimmed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::alias::{
    pick_bool, pick_int, pick_json, pick_opt_int, pick_str, pick_string, pick_value, pick_vec,
};
use super::tool_json::ToolJson;

/// One source session graph: the session header plus its turns, messages and tool calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawItem")]
pub struct ImportSessionItem {
    pub source_provider: String,
    pub source_session_id: String,
    pub source_session_fingerprint: String,
    /// When the worker produced the item; `0` (absent) means "now" at import time.
    #[serde(skip_serializing_if = "is_zero")]
    pub imported_at_ms: i64,
    pub session: SessionInfo,
    pub turns: Vec<Turn>,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// (extension) The version of the worker's mapping of this provider that produced the
    /// item (`aix::mapping`); absent from a worker without versions (version 1). Recorded for
    /// a new session, and raised by a `wholeSession` item (item rule 13).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping_version: Option<u32>,
    /// (extension) The item carries the whole session as its source holds it (a backfill's
    /// item, a file or store session read whole), not a partial tail item. Only such an item
    /// with a `mappingVersion` above the one stored for its session replaces the session's
    /// rows: those it does not carry are removed. A partial item never removes anything.
    #[serde(skip_serializing_if = "is_false")]
    pub whole_session: bool,
    /// (extension) Some lines of the session's source are copies that another session owns
    /// (Claude Code resumed files, `aix::claude_copies`), and the item leaves them out. A
    /// `wholeSession` item with it whose fingerprint moved also replaces the session's rows:
    /// the lines it left out may have been imported as this session's before their owner was
    /// known.
    #[serde(skip_serializing_if = "is_false")]
    pub copies_elsewhere: bool,
    /// (extension) Item rule 15: the session is no session any more. The worker produced it
    /// from a source that still exists, and that source's final content, read whole under the
    /// current mapping, yields no such session (a Cursor chat tab holding only its input box
    /// under mapping 3; a resumed Claude Code file whose every line another file owns). The
    /// service deletes the session's rows; the item carries no turns, messages nor tool calls,
    /// and its fingerprint only keys the request. Never sent because a source disappeared.
    #[serde(skip_serializing_if = "is_false")]
    pub retract: bool,
}

impl ImportSessionItem {
    /// The `retract` item (rule 15) of `session_id`; `fingerprint` only keys the request (what
    /// the source held when the session went).
    pub fn retraction(provider: &str, session_id: String, fingerprint: &str) -> Self {
        Self {
            source_provider: provider.to_owned(),
            source_session_id: session_id,
            source_session_fingerprint: format!("retract:{fingerprint}"),
            retract: true,
            ..Self::default()
        }
    }
}

/// The session header of an item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawSession")]
pub struct SessionInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub is_subagent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_source_session_id: Option<String>,
    /// Accepted for parity; the baseline parses it and never uses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_source_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawn_tool_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// One turn: a human prompt and everything up to the next one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawTurn")]
pub struct Turn {
    pub source_turn_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_source_turn_id: Option<String>,
    pub started_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_message_source_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_message_source_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// (extension) How many tool calls the turn holds in the source, counted by the worker:
    /// the turn row's `tool_call_count`. It lets an item carry a turn without all its tool
    /// calls (a tail append sends the open turn's row with only its new and changed messages
    /// and tool calls: item rule 14). Absent (an older worker, whose items hold whole turns):
    /// the item's tool calls naming the turn are counted, as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_count: Option<i64>,
}

/// One message of a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawMessage")]
pub struct Message {
    pub source_message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_turn_id: Option<String>,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub sequence: i64,
    pub created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_json: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_json: Option<Value>,
}

/// One tool call, joined with its result when the source has one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawToolCall")]
pub struct ToolCall {
    pub source_tool_call_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_turn_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_message_id: Option<String>,
    pub tool_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params_json: Option<ToolJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_json: Option<ToolJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawned_source_session_id: Option<String>,
    pub started_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<i64>,
    pub sequence: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// (extension) The message that carried the result (a Claude Code `tool_result` line):
    /// the result's text is stored once, in `result_json`, and this links the call to the
    /// message's place in the conversation (`tool_calls.result_message_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_source_message_id: Option<String>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

// ---- raw mirrors: every field under both spellings --------------------------------------------

#[derive(Deserialize)]
struct RawItem {
    #[serde(rename = "sourceProvider")]
    source_provider: Option<String>,
    #[serde(rename = "source_provider")]
    source_provider_s: Option<String>,
    #[serde(rename = "sourceSessionId")]
    source_session_id: Option<String>,
    #[serde(rename = "source_session_id")]
    source_session_id_s: Option<String>,
    #[serde(rename = "sourceSessionFingerprint")]
    fingerprint: Option<String>,
    #[serde(rename = "source_session_fingerprint")]
    fingerprint_s: Option<String>,
    #[serde(rename = "importedAtMs")]
    imported_at_ms: Option<i64>,
    #[serde(rename = "imported_at_ms")]
    imported_at_ms_s: Option<i64>,
    session: Option<SessionInfo>,
    turns: Option<Vec<Turn>>,
    messages: Option<Vec<Message>>,
    #[serde(rename = "toolCalls")]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(rename = "tool_calls")]
    tool_calls_s: Option<Vec<ToolCall>>,
    #[serde(rename = "mappingVersion")]
    mapping_version: Option<u32>,
    #[serde(rename = "mapping_version")]
    mapping_version_s: Option<u32>,
    #[serde(rename = "wholeSession")]
    whole_session: Option<bool>,
    #[serde(rename = "whole_session")]
    whole_session_s: Option<bool>,
    #[serde(rename = "copiesElsewhere")]
    copies_elsewhere: Option<bool>,
    #[serde(rename = "copies_elsewhere")]
    copies_elsewhere_s: Option<bool>,
    retract: Option<bool>,
}

impl From<RawItem> for ImportSessionItem {
    fn from(r: RawItem) -> Self {
        Self {
            source_provider: pick_string(r.source_provider, r.source_provider_s),
            source_session_id: pick_string(r.source_session_id, r.source_session_id_s),
            source_session_fingerprint: pick_string(r.fingerprint, r.fingerprint_s),
            imported_at_ms: pick_int(r.imported_at_ms, r.imported_at_ms_s),
            session: r.session.unwrap_or_default(),
            turns: r.turns.unwrap_or_default(),
            messages: r.messages.unwrap_or_default(),
            tool_calls: pick_vec(r.tool_calls, r.tool_calls_s),
            mapping_version: r.mapping_version.or(r.mapping_version_s),
            whole_session: r.whole_session.or(r.whole_session_s).unwrap_or(false),
            copies_elsewhere: r.copies_elsewhere.or(r.copies_elsewhere_s).unwrap_or(false),
            retract: r.retract.unwrap_or(false),
        }
    }
}

#[derive(Deserialize)]
struct RawSession {
    #[serde(rename = "labelHint")]
    label_hint: Option<String>,
    #[serde(rename = "label_hint")]
    label_hint_s: Option<String>,
    #[serde(rename = "createdAtMs")]
    created_at_ms: Option<i64>,
    #[serde(rename = "created_at_ms")]
    created_at_ms_s: Option<i64>,
    #[serde(rename = "updatedAtMs")]
    updated_at_ms: Option<i64>,
    #[serde(rename = "updated_at_ms")]
    updated_at_ms_s: Option<i64>,
    model: Option<String>,
    provider: Option<String>,
    #[serde(rename = "workspacePath")]
    workspace_path: Option<String>,
    #[serde(rename = "workspace_path")]
    workspace_path_s: Option<String>,
    project: Option<String>,
    #[serde(rename = "isSubagent")]
    is_subagent: Option<bool>,
    #[serde(rename = "is_subagent")]
    is_subagent_s: Option<bool>,
    #[serde(rename = "parentSourceSessionId")]
    parent_source_session_id: Option<String>,
    #[serde(rename = "parent_source_session_id")]
    parent_source_session_id_s: Option<String>,
    #[serde(rename = "parentSourceMessageId")]
    parent_source_message_id: Option<String>,
    #[serde(rename = "parent_source_message_id")]
    parent_source_message_id_s: Option<String>,
    #[serde(rename = "spawnToolCallId")]
    spawn_tool_call_id: Option<String>,
    #[serde(rename = "spawn_tool_call_id")]
    spawn_tool_call_id_s: Option<String>,
    #[serde(rename = "taskDescription")]
    task_description: Option<String>,
    #[serde(rename = "task_description")]
    task_description_s: Option<String>,
    #[serde(rename = "taskStatus")]
    task_status: Option<String>,
    #[serde(rename = "task_status")]
    task_status_s: Option<String>,
    metadata: Option<Value>,
}

impl From<RawSession> for SessionInfo {
    fn from(r: RawSession) -> Self {
        Self {
            label_hint: pick_str(r.label_hint, r.label_hint_s),
            created_at_ms: pick_opt_int(r.created_at_ms, r.created_at_ms_s),
            updated_at_ms: pick_opt_int(r.updated_at_ms, r.updated_at_ms_s),
            model: pick_str(r.model, None),
            provider: pick_str(r.provider, None),
            workspace_path: pick_str(r.workspace_path, r.workspace_path_s),
            project: pick_str(r.project, None),
            is_subagent: pick_bool(r.is_subagent, r.is_subagent_s),
            parent_source_session_id: pick_str(
                r.parent_source_session_id,
                r.parent_source_session_id_s,
            ),
            parent_source_message_id: pick_str(
                r.parent_source_message_id,
                r.parent_source_message_id_s,
            ),
            spawn_tool_call_id: pick_str(r.spawn_tool_call_id, r.spawn_tool_call_id_s),
            task_description: pick_str(r.task_description, r.task_description_s),
            task_status: pick_str(r.task_status, r.task_status_s),
            metadata: pick_value(r.metadata, None),
        }
    }
}

#[derive(Deserialize)]
struct RawTurn {
    #[serde(rename = "sourceTurnId")]
    source_turn_id: Option<String>,
    #[serde(rename = "source_turn_id")]
    source_turn_id_s: Option<String>,
    #[serde(rename = "parentSourceTurnId")]
    parent_source_turn_id: Option<String>,
    #[serde(rename = "parent_source_turn_id")]
    parent_source_turn_id_s: Option<String>,
    #[serde(rename = "startedAtMs")]
    started_at_ms: Option<i64>,
    #[serde(rename = "started_at_ms")]
    started_at_ms_s: Option<i64>,
    #[serde(rename = "completedAtMs")]
    completed_at_ms: Option<i64>,
    #[serde(rename = "completed_at_ms")]
    completed_at_ms_s: Option<i64>,
    model: Option<String>,
    provider: Option<String>,
    #[serde(rename = "inputTokens")]
    input_tokens: Option<i64>,
    #[serde(rename = "input_tokens")]
    input_tokens_s: Option<i64>,
    #[serde(rename = "outputTokens")]
    output_tokens: Option<i64>,
    #[serde(rename = "output_tokens")]
    output_tokens_s: Option<i64>,
    #[serde(rename = "cachedInputTokens")]
    cached_input_tokens: Option<i64>,
    #[serde(rename = "cached_input_tokens")]
    cached_input_tokens_s: Option<i64>,
    #[serde(rename = "cacheWriteTokens")]
    cache_write_tokens: Option<i64>,
    #[serde(rename = "cache_write_tokens")]
    cache_write_tokens_s: Option<i64>,
    #[serde(rename = "reasoningTokens")]
    reasoning_tokens: Option<i64>,
    #[serde(rename = "reasoning_tokens")]
    reasoning_tokens_s: Option<i64>,
    #[serde(rename = "totalTokens")]
    total_tokens: Option<i64>,
    #[serde(rename = "total_tokens")]
    total_tokens_s: Option<i64>,
    #[serde(rename = "responseMessageSourceId")]
    response_message_source_id: Option<String>,
    #[serde(rename = "response_message_source_id")]
    response_message_source_id_s: Option<String>,
    #[serde(rename = "queryMessageSourceIds")]
    query_message_source_ids: Option<Vec<String>>,
    #[serde(rename = "query_message_source_ids")]
    query_message_source_ids_s: Option<Vec<String>>,
    metadata: Option<Value>,
    #[serde(rename = "toolCallCount")]
    tool_call_count: Option<i64>,
    #[serde(rename = "tool_call_count")]
    tool_call_count_s: Option<i64>,
}

impl From<RawTurn> for Turn {
    fn from(r: RawTurn) -> Self {
        Self {
            source_turn_id: pick_string(r.source_turn_id, r.source_turn_id_s),
            parent_source_turn_id: pick_str(r.parent_source_turn_id, r.parent_source_turn_id_s),
            started_at_ms: pick_int(r.started_at_ms, r.started_at_ms_s),
            completed_at_ms: pick_opt_int(r.completed_at_ms, r.completed_at_ms_s),
            model: pick_str(r.model, None),
            provider: pick_str(r.provider, None),
            input_tokens: pick_opt_int(r.input_tokens, r.input_tokens_s),
            output_tokens: pick_opt_int(r.output_tokens, r.output_tokens_s),
            cached_input_tokens: pick_opt_int(r.cached_input_tokens, r.cached_input_tokens_s),
            cache_write_tokens: pick_opt_int(r.cache_write_tokens, r.cache_write_tokens_s),
            reasoning_tokens: pick_opt_int(r.reasoning_tokens, r.reasoning_tokens_s),
            total_tokens: pick_opt_int(r.total_tokens, r.total_tokens_s),
            response_message_source_id: pick_str(
                r.response_message_source_id,
                r.response_message_source_id_s,
            ),
            query_message_source_ids: pick_vec(
                r.query_message_source_ids,
                r.query_message_source_ids_s,
            )
            .into_iter()
            .map(|s| s.trim().to_owned())
            .collect(),
            metadata: pick_value(r.metadata, None),
            tool_call_count: pick_opt_int(r.tool_call_count, r.tool_call_count_s),
        }
    }
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "sourceMessageId")]
    source_message_id: Option<String>,
    #[serde(rename = "source_message_id")]
    source_message_id_s: Option<String>,
    #[serde(rename = "sourceTurnId")]
    source_turn_id: Option<String>,
    #[serde(rename = "source_turn_id")]
    source_turn_id_s: Option<String>,
    role: Option<String>,
    content: Option<String>,
    sequence: Option<i64>,
    #[serde(rename = "createdAtMs")]
    created_at_ms: Option<i64>,
    #[serde(rename = "created_at_ms")]
    created_at_ms_s: Option<i64>,
    thinking: Option<String>,
    #[serde(rename = "contextJson")]
    context_json: Option<Value>,
    #[serde(rename = "context_json")]
    context_json_s: Option<Value>,
    #[serde(rename = "metadataJson")]
    metadata_json: Option<Value>,
    #[serde(rename = "metadata_json")]
    metadata_json_s: Option<Value>,
}

impl From<RawMessage> for Message {
    fn from(r: RawMessage) -> Self {
        Self {
            source_message_id: pick_string(r.source_message_id, r.source_message_id_s),
            source_turn_id: pick_str(r.source_turn_id, r.source_turn_id_s),
            role: pick_string(r.role, None),
            content: pick_str(r.content, None),
            sequence: r.sequence.unwrap_or(0),
            created_at_ms: pick_int(r.created_at_ms, r.created_at_ms_s),
            thinking: pick_str(r.thinking, None),
            context_json: pick_value(r.context_json, r.context_json_s),
            metadata_json: pick_value(r.metadata_json, r.metadata_json_s),
        }
    }
}

#[derive(Deserialize)]
struct RawToolCall {
    #[serde(rename = "sourceToolCallId")]
    source_tool_call_id: Option<String>,
    #[serde(rename = "source_tool_call_id")]
    source_tool_call_id_s: Option<String>,
    #[serde(rename = "sourceTurnId")]
    source_turn_id: Option<String>,
    #[serde(rename = "source_turn_id")]
    source_turn_id_s: Option<String>,
    #[serde(rename = "sourceMessageId")]
    source_message_id: Option<String>,
    #[serde(rename = "source_message_id")]
    source_message_id_s: Option<String>,
    #[serde(rename = "toolName")]
    tool_name: Option<String>,
    #[serde(rename = "tool_name")]
    tool_name_s: Option<String>,
    #[serde(rename = "toolNumber")]
    tool_number: Option<i64>,
    #[serde(rename = "tool_number")]
    tool_number_s: Option<i64>,
    #[serde(rename = "paramsJson")]
    params_json: Option<ToolJson>,
    #[serde(rename = "params_json")]
    params_json_s: Option<ToolJson>,
    #[serde(rename = "resultJson")]
    result_json: Option<ToolJson>,
    #[serde(rename = "result_json")]
    result_json_s: Option<ToolJson>,
    status: Option<String>,
    #[serde(rename = "spawnedSourceSessionId")]
    spawned_source_session_id: Option<String>,
    #[serde(rename = "spawned_source_session_id")]
    spawned_source_session_id_s: Option<String>,
    #[serde(rename = "startedAtMs")]
    started_at_ms: Option<i64>,
    #[serde(rename = "started_at_ms")]
    started_at_ms_s: Option<i64>,
    #[serde(rename = "completedAtMs")]
    completed_at_ms: Option<i64>,
    #[serde(rename = "completed_at_ms")]
    completed_at_ms_s: Option<i64>,
    sequence: Option<i64>,
    error: Option<String>,
    #[serde(rename = "resultSourceMessageId")]
    result_source_message_id: Option<String>,
    #[serde(rename = "result_source_message_id")]
    result_source_message_id_s: Option<String>,
}

impl From<RawToolCall> for ToolCall {
    fn from(r: RawToolCall) -> Self {
        Self {
            source_tool_call_id: pick_string(r.source_tool_call_id, r.source_tool_call_id_s),
            source_turn_id: pick_str(r.source_turn_id, r.source_turn_id_s),
            source_message_id: pick_str(r.source_message_id, r.source_message_id_s),
            tool_name: pick_string(r.tool_name, r.tool_name_s),
            tool_number: pick_opt_int(r.tool_number, r.tool_number_s),
            params_json: pick_json(r.params_json, r.params_json_s),
            result_json: pick_json(r.result_json, r.result_json_s),
            status: pick_str(r.status, None),
            spawned_source_session_id: pick_str(
                r.spawned_source_session_id,
                r.spawned_source_session_id_s,
            ),
            started_at_ms: pick_int(r.started_at_ms, r.started_at_ms_s),
            completed_at_ms: pick_opt_int(r.completed_at_ms, r.completed_at_ms_s),
            sequence: r.sequence.unwrap_or(0),
            error: pick_str(r.error, None),
            result_source_message_id: pick_str(
                r.result_source_message_id,
                r.result_source_message_id_s,
            ),
        }
    }
}
