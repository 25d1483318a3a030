//! One Claude Code item under construction (a main session, a subagent file, or one inline
//! sidechain agent of a main file): turns by human user lines with DAG parents, messages, tool
//! calls joined to their results, tokens deduplicated per API response.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::aix::sources::assembler::{
    Assembler, STATUS_COMPLETED, STATUS_FAILED, STATUS_PENDING, Taken,
};
use crate::aix::sources::common::{
    FingerprintChain, Line, count_at, join_nonempty, later, str_at, ts_at,
};
use crate::protocol::{Message, ToolCall, Turn};

/// Model name Claude Code writes on locally generated (non-API) assistant lines.
const SYNTHETIC_MODEL: &str = "<synthetic>";

/// Usage of one API response, as carried by its last line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Usage {
    input: i64,
    output: i64,
    cache_read: i64,
    cache_write: i64,
}

/// Per-turn usage by `(message.id, requestId)`: the last line of a response replaces the
/// earlier ones, so the sum counts each response once with its final `output_tokens`.
#[derive(Debug, Default)]
pub(super) struct TurnUsage {
    by_response: BTreeMap<(String, String), Usage>,
}

/// Session header facts, folded over the item's lines.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Header {
    pub created: Option<i64>,
    pub updated: Option<i64>,
    pub model: Option<String>,
    pub cwd: Option<String>,
    pub version: Option<String>,
    pub git_branch: Option<String>,
    pub slug: Option<String>,
    pub ai_title: Option<String>,
    pub custom_title: Option<String>,
    pub summary_title: Option<String>,
    /// Session id of copied lines at the start of a resumed session's file.
    pub resumed_from: Option<String>,
}

impl Header {
    pub fn title(&self) -> Option<&String> {
        self.custom_title
            .as_ref()
            .or(self.ai_title.as_ref())
            .or(self.summary_title.as_ref())
    }

    pub fn metadata(&self) -> Option<Value> {
        let mut m = Map::new();
        for (k, v) in [
            ("version", &self.version),
            ("gitBranch", &self.git_branch),
            ("slug", &self.slug),
            ("title", &self.title().cloned()),
            ("resumedFromSessionId", &self.resumed_from),
        ] {
            if let Some(v) = v {
                m.insert(k.to_owned(), Value::String(v.clone()));
            }
        }
        (!m.is_empty()).then_some(Value::Object(m))
    }
}

/// A spawn reference found on a line: the tool call and the agent id it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SpawnSeen {
    pub tool_use_id: String,
    pub agent_id: String,
    pub status: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct ItemState {
    pub asm: Assembler<TurnUsage>,
    /// Line uuid -> ordinal of the turn that held it (for DAG parents of later turns).
    uuid_turn: HashMap<Box<str>, u32>,
    /// Turn ordinal -> source turn id.
    turn_ids: Vec<Box<str>>,
    pub header: Header,
    /// Own chain for items that are a subset of a file's lines (inline sidechains).
    pub chain: Option<FingerprintChain>,
}

fn set_if_changed(dirty: &mut bool, slot: &mut Option<String>, value: Option<&str>) {
    if let Some(v) = value
        && slot.as_deref() != Some(v)
    {
        *slot = Some(v.to_owned());
        *dirty = true;
    }
}

impl ItemState {
    pub fn with_own_chain() -> Self {
        Self {
            chain: Some(FingerprintChain::default()),
            ..Self::default()
        }
    }

    /// `createdAtMs` is the first timestamp of any record of the item, `updatedAtMs` the latest.
    pub fn note_timestamp(&mut self, v: &Value) {
        let ts = ts_at(v, "timestamp");
        if self.header.created.is_none() && ts.is_some() {
            self.header.created = ts;
            self.asm.header_dirty = true;
        }
        if later(&mut self.header.updated, ts) {
            self.asm.header_dirty = true;
        }
    }

    /// Remembers which turn holds a non-message record that has a uuid (DAG parents may point
    /// at progress, system or attachment lines).
    pub fn note_uuid(&mut self, v: &Value) {
        if let (Some(uuid), Some(ordinal)) = (str_at(v, "uuid"), self.asm.open_ordinal()) {
            self.uuid_turn.insert(uuid.into(), ordinal as u32);
        }
    }

    pub fn set_title(&mut self, kind: &str, v: &Value) {
        let dirty = &mut self.asm.header_dirty;
        match kind {
            "ai-title" => set_if_changed(dirty, &mut self.header.ai_title, str_at(v, "aiTitle")),
            "custom-title" => set_if_changed(
                dirty,
                &mut self.header.custom_title,
                str_at(v, "customTitle"),
            ),
            _ => set_if_changed(dirty, &mut self.header.summary_title, str_at(v, "summary")),
        }
    }

    pub fn set_resumed_from(&mut self, sid: &str) {
        if self.header.resumed_from.is_none() {
            self.header.resumed_from = Some(sid.to_owned());
            self.asm.header_dirty = true;
        }
    }

    fn turn_id_of(&self, uuid: Option<&str>) -> Option<String> {
        let ordinal = *self.uuid_turn.get(uuid?)?;
        self.turn_ids.get(ordinal as usize).map(|s| s.to_string())
    }

    /// A `user`, `assistant` or `system/compact_boundary` line: one message, maybe a new turn,
    /// tool calls and tool results. `spawned_prefix` is `<rootSessionId>/agent-` when known, to
    /// name the session a spawning tool call started. Returns the spawns this line revealed.
    pub fn content_line(
        &mut self,
        line: &Line<'_>,
        v: &Value,
        kind: &str,
        spawned_prefix: Option<&str>,
    ) -> Vec<SpawnSeen> {
        let uuid = str_at(v, "uuid").map(str::to_owned);
        let ts = ts_at(v, "timestamp");
        let line_id = || format!("L{}", line.index + 1);
        let message = v.get("message").filter(|m| m.is_object());
        let blocks: &[Value] = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let has_tool_result = blocks.iter().any(|b| block_type(b) == Some("tool_result"));
        let flag = |k: &str| v.get(k).and_then(Value::as_bool) == Some(true);
        let (role, human) = match kind {
            "user" if flag("isCompactSummary") => ("system", false),
            "user" if has_tool_result => ("tool", false),
            "user" => ("user", !flag("isMeta")),
            "assistant" => ("assistant", false),
            _ => ("system", false),
        };

        // Turn boundary.
        if human || self.asm.open_ordinal().is_none() {
            let id = uuid.clone().unwrap_or_else(line_id);
            let parent = self.turn_id_of(str_at(v, "parentUuid"));
            let turn = Turn {
                source_turn_id: id.clone(),
                parent_source_turn_id: parent,
                started_at_ms: ts.unwrap_or(0),
                completed_at_ms: ts,
                query_message_source_ids: if human { vec![id.clone()] } else { Vec::new() },
                ..Turn::default()
            };
            self.asm.open_turn(turn, line.offset);
            self.turn_ids.push(id.into());
        }
        let Some(ordinal) = self.asm.open_ordinal() else {
            return Vec::new();
        };
        let message_id = uuid.clone().unwrap_or_else(line_id);
        self.uuid_turn
            .insert(message_id.as_str().into(), ordinal as u32);

        // Header facts carried by content lines.
        {
            let h = &mut self.header;
            let dirty = &mut self.asm.header_dirty;
            if h.cwd.is_none() {
                set_if_changed(dirty, &mut h.cwd, str_at(v, "cwd"));
            }
            set_if_changed(dirty, &mut h.version, str_at(v, "version"));
            set_if_changed(dirty, &mut h.git_branch, str_at(v, "gitBranch"));
            set_if_changed(dirty, &mut h.slug, str_at(v, "slug"));
        }

        // The message.
        let content = match kind {
            "system" => str_at(v, "content").map(str::to_owned),
            _ => match message.and_then(|m| m.get("content")) {
                Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
                _ => join_nonempty(blocks.iter().flat_map(block_texts)),
            },
        };
        let thinking = join_nonempty(
            blocks
                .iter()
                .filter(|b| block_type(b) == Some("thinking"))
                .filter_map(|b| str_at(b, "thinking").map(str::to_owned)),
        );
        let mut meta = Map::new();
        if let Some(id) = message.and_then(|m| str_at(m, "id")) {
            meta.insert("messageId".into(), json!(id));
        }
        if let Some(id) = str_at(v, "requestId") {
            meta.insert("requestId".into(), json!(id));
        }
        if let Some(b) = v.get("isSidechain").and_then(Value::as_bool) {
            meta.insert("isSidechain".into(), json!(b));
        }
        if let Some(id) = str_at(v, "agentId") {
            meta.insert("agentId".into(), json!(id));
        }
        let has_text = kind == "assistant" && content.is_some();
        let msg = Message {
            source_message_id: message_id.clone(),
            source_turn_id: None,
            role: role.to_owned(),
            content,
            sequence: line.index as i64,
            created_at_ms: ts.unwrap_or(0),
            thinking,
            context_json: None,
            metadata_json: (!meta.is_empty()).then_some(Value::Object(meta)),
        };

        let model = message
            .and_then(|m| str_at(m, "model"))
            .filter(|m| *m != SYNTHETIC_MODEL);
        if let Some(model) = model {
            set_if_changed(
                &mut self.asm.header_dirty,
                &mut self.header.model,
                Some(model),
            );
        }
        let usage_key = (kind == "assistant")
            .then(|| message.and_then(|m| str_at(m, "id")))
            .flatten()
            .map(|id| {
                (
                    id.to_owned(),
                    str_at(v, "requestId").unwrap_or("").to_owned(),
                )
            });
        let usage = message.and_then(|m| m.get("usage")).map(|u| Usage {
            input: count_at(u, "input_tokens").unwrap_or(0),
            output: count_at(u, "output_tokens").unwrap_or(0),
            cache_read: count_at(u, "cache_read_input_tokens").unwrap_or(0),
            cache_write: count_at(u, "cache_creation_input_tokens").unwrap_or(0),
        });

        if let Some(held) = self.asm.open_mut() {
            let mut msg = msg;
            msg.source_turn_id = Some(held.turn.source_turn_id.clone());
            held.messages.push(msg);
            later(&mut held.turn.completed_at_ms, ts);
            if let Some(model) = model {
                held.turn.model = Some(model.to_owned());
            }
            if has_text {
                held.turn.response_message_source_id = Some(message_id.clone());
            }
            if let (Some(key), Some(usage)) = (usage_key, usage) {
                held.extra.by_response.insert(key, usage);
                let sum = held
                    .extra
                    .by_response
                    .values()
                    .fold(Usage::default(), |a, u| Usage {
                        input: a.input + u.input,
                        output: a.output + u.output,
                        cache_read: a.cache_read + u.cache_read,
                        cache_write: a.cache_write + u.cache_write,
                    });
                let t = &mut held.turn;
                t.input_tokens = Some(sum.input);
                t.output_tokens = Some(sum.output);
                t.cached_input_tokens = Some(sum.cache_read);
                t.cache_write_tokens = Some(sum.cache_write);
                t.total_tokens = Some(sum.input + sum.output + sum.cache_read + sum.cache_write);
            }
        }

        // Tool calls started by this line.
        let turn_id = self.asm.open_ref().map(|t| t.turn.source_turn_id.clone());
        for block in blocks.iter().filter(|b| block_type(b) == Some("tool_use")) {
            let Some(id) = str_at(block, "id") else {
                continue;
            };
            self.asm.add_tool(ToolCall {
                source_tool_call_id: id.to_owned(),
                source_turn_id: turn_id.clone(),
                source_message_id: Some(message_id.clone()),
                tool_name: str_at(block, "name").unwrap_or("unknown").to_owned(),
                params_json: block.get("input").cloned(),
                status: Some(STATUS_PENDING.to_owned()),
                started_at_ms: ts.unwrap_or(0),
                sequence: line.index as i64,
                ..ToolCall::default()
            });
        }

        // Tool results carried by this line.
        let results: Vec<&Value> = blocks
            .iter()
            .filter(|b| block_type(b) == Some("tool_result"))
            .collect();
        let tool_use_result = v.get("toolUseResult").filter(|_| results.len() == 1);
        let mut spawns = Vec::new();
        for block in &results {
            let Some(id) = str_at(block, "tool_use_id") else {
                continue;
            };
            let failed = block.get("is_error").and_then(Value::as_bool) == Some(true);
            let mut result = Map::new();
            result.insert(
                "content".into(),
                block.get("content").cloned().unwrap_or(Value::Null),
            );
            if let Some(tur) = tool_use_result {
                result.insert("toolUseResult".into(), tur.clone());
            }
            // The agent a spawning call started: `toolUseResult.agentId`, or on old inline
            // layouts the result line's own `agentId`.
            let agent = tool_use_result
                .and_then(|t| str_at(t, "agentId"))
                .or_else(|| {
                    (results.len() == 1
                        && v.get("isSidechain").and_then(Value::as_bool) != Some(true))
                    .then(|| str_at(v, "agentId"))
                    .flatten()
                });
            let status = tool_use_result.and_then(|t| str_at(t, "status"));
            let Some(call) = self.asm.tool_mut(id) else {
                continue;
            };
            call.result_json = Some(Value::Object(result));
            call.status = Some(
                if failed {
                    STATUS_FAILED
                } else {
                    STATUS_COMPLETED
                }
                .to_owned(),
            );
            call.completed_at_ms = ts;
            if let Some(agent) = agent {
                if let Some(prefix) = spawned_prefix {
                    call.spawned_source_session_id = Some(format!("{prefix}{agent}"));
                }
                spawns.push(SpawnSeen {
                    tool_use_id: id.to_owned(),
                    agent_id: agent.to_owned(),
                    status: status.map(str::to_owned),
                });
            }
        }
        spawns
    }

    /// A spawn seen outside the spawning call's result (`agent_progress`): names the child
    /// session on the call. Returns false when the call is unknown here.
    pub fn mark_spawn(&mut self, tool_use_id: &str, spawned: Option<String>) -> bool {
        let Some(current) = self.asm.tool_ref(tool_use_id) else {
            return false;
        };
        if spawned.is_some()
            && current.spawned_source_session_id != spawned
            && let Some(call) = self.asm.tool_mut(tool_use_id)
        {
            call.spawned_source_session_id = spawned;
        }
        true
    }

    /// The `description` input of a known tool call.
    pub fn tool_description(&self, tool_use_id: &str) -> Option<String> {
        self.asm
            .tool_ref(tool_use_id)
            .and_then(|c| c.params_json.as_ref())
            .and_then(|p| str_at(p, "description"))
            .map(str::to_owned)
    }

    pub fn take(&mut self) -> Option<Taken> {
        self.asm.take()
    }
}

fn block_type(b: &Value) -> Option<&str> {
    b.get("type").and_then(Value::as_str)
}

/// Text a content block contributes to a message: `text` blocks, and the text of a
/// `tool_result`'s content (a string or text blocks).
fn block_texts(b: &Value) -> Vec<String> {
    match block_type(b) {
        Some("text") => str_at(b, "text").map(str::to_owned).into_iter().collect(),
        Some("tool_result") => match b.get("content") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(parts)) => parts
                .iter()
                .filter(|p| block_type(p) == Some("text"))
                .filter_map(|p| str_at(p, "text").map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
