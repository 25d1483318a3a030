//! One Claude Code item under construction (a main session, a subagent file, or one inline
//! sidechain agent of a main file): turns by human user lines with DAG parents, messages, tool
//! calls joined to their results, tokens deduplicated per API response.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::prompt::{is_prompt, prompt_link};
use super::queue::PromptQueue;
use super::record::{Block, Record};
use super::tool_result::result_json;
use crate::aix::sources::assembler::{
    Assembler, STATUS_COMPLETED, STATUS_FAILED, STATUS_PENDING, Taken,
};
use crate::aix::sources::common::{
    FingerprintChain, Line, join_nonempty, later, parse_rfc3339_ms, str_at,
};
use crate::aix::sources::lenient::TextOrList;
use crate::aix::sources::{SpawnLink, workflow_link_key};
use crate::protocol::{Message, ToolCall, ToolJson, Turn};

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

/// Per-turn usage by `message.id`: the last line of a response replaces the earlier ones
/// (whatever their `requestId`: early lines hold placeholder output counts and a later copy may
/// have none), so the sum counts each response once with its final `output_tokens`.
#[derive(Debug, Default)]
pub(super) struct TurnUsage {
    by_response: BTreeMap<String, Usage>,
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
    /// API response (`message.id`) -> ordinal of the turn that counts its usage (the turn of its
    /// first line): a response is counted once per session.
    response_turn: HashMap<Box<str>, u64>,
    /// Turns opened before the item's first model: pinned until that model is known, then
    /// given it (a turn's model never depends on where the file was cut).
    modelless: Vec<u64>,
    /// Every `tool_use` id met: a line copied again later in the file (real subagent files
    /// replay earlier lines) must not start the call a second time once the first was resolved
    /// and let go.
    tools_seen: HashSet<Box<str>>,
    /// The open turn has neither a prompt nor a reply yet: it holds only lines written before
    /// the first prompt (a 2.x session begun by a slash command starts with its `isMeta`
    /// caveat, timed after the command). The next prompt is that turn's prompt.
    open_turn_awaits_prompt: bool,
    /// Spawning calls met since the parser last took them, by the key of their prompt
    /// ([`crate::aix::sources::prompt_link_key`]).
    prompt_links: Vec<(String, SpawnLink)>,
    /// Prompts typed while the agent worked (`queue-operation` lines).
    pub queue: PromptQueue,
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
    pub fn note_timestamp(&mut self, r: &Record<'_>) {
        let ts = r.timestamp.as_deref().and_then(parse_rfc3339_ms);
        if self.header.created.is_none() && ts.is_some() {
            self.header.created = ts;
            self.asm.header_dirty = true;
        }
        if later(&mut self.header.updated, ts) {
            self.asm.header_dirty = true;
        }
    }

    /// The id of the open turn.
    pub fn open_turn_id(&self) -> Option<String> {
        let ordinal = self.asm.open_ordinal()?;
        self.turn_ids.get(ordinal as usize).map(|s| s.to_string())
    }

    /// Remembers which turn holds a non-message record that has a uuid (DAG parents may point
    /// at progress, system or attachment lines).
    pub fn note_uuid(&mut self, r: &Record<'_>) {
        if let (Some(uuid), Some(ordinal)) = (r.uuid.as_deref(), self.asm.open_ordinal()) {
            self.uuid_turn.insert(uuid.into(), ordinal as u32);
        }
    }

    pub fn set_title(&mut self, r: &Record<'_>) {
        let dirty = &mut self.asm.header_dirty;
        let h = &mut self.header;
        match r.kind() {
            "ai-title" => set_if_changed(dirty, &mut h.ai_title, r.ai_title.as_deref()),
            "custom-title" => set_if_changed(dirty, &mut h.custom_title, r.custom_title.as_deref()),
            _ => set_if_changed(dirty, &mut h.summary_title, r.summary.as_deref()),
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
        mut r: Record<'_>,
        spawned_prefix: Option<&str>,
    ) -> Vec<SpawnSeen> {
        let kind: &'static str = match r.kind() {
            "user" => "user",
            "assistant" => "assistant",
            _ => "system",
        };
        let uuid = r.uuid.as_deref().map(str::to_owned);
        // A line whose uuid the item already holds is a copy (a resumed 2.1.x subagent writes
        // its whole earlier transcript again before the new prompt): the first line stands. A
        // copied prompt re-opening its turn under the same id would re-send that turn without
        // the tool calls already seen, so the rows would depend on where the file was cut.
        if uuid
            .as_deref()
            .is_some_and(|u| self.uuid_turn.contains_key(u))
        {
            return Vec::new();
        }
        let ts = r.timestamp.as_deref().and_then(parse_rfc3339_ms);
        let line_id = || format!("L{}", line.index + 1);
        let mut message = r.message.0.take();
        let (plain_text, blocks): (Option<String>, Vec<Block<'_>>) =
            match message.as_mut().map(|m| std::mem::take(&mut m.content)) {
                Some(TextOrList::Text(t)) => (Some(t), Vec::new()),
                Some(TextOrList::List(b)) => (None, b),
                _ => (None, Vec::new()),
            };
        let message = message.as_ref();
        let has_tool_result = blocks.iter().any(|b| b.kind() == "tool_result");
        // Which results land on a call that waits for one (the first result of a call wins): their
        // text is stored once, in the call's `result_json`; the message keeps the rest.
        let lands = self.results_landing(&blocks);
        let (role, human) = match kind {
            "user" if r.is_compact_summary == Some(true) => ("system", false),
            "user" if has_tool_result => ("tool", false),
            "user" => ("user", is_prompt(&r, plain_text.as_deref(), &blocks)),
            "assistant" => ("assistant", false),
            _ => ("system", false),
        };

        // Turn boundary.
        if human && self.open_turn_awaits_prompt {
            self.open_turn_awaits_prompt = false;
            let id = uuid.clone().unwrap_or_else(line_id);
            if let Some(held) = self.asm.open_mut() {
                let turn = &mut held.turn;
                turn.query_message_source_ids.push(id);
                if let Some(ts) = ts
                    && (turn.started_at_ms == 0 || ts < turn.started_at_ms)
                {
                    turn.started_at_ms = ts;
                }
            }
        } else if human || self.asm.open_ordinal().is_none() {
            // A reply or tool result joining it below clears this again.
            self.open_turn_awaits_prompt = !human;
            let id = uuid.clone().unwrap_or_else(line_id);
            let parent = self.turn_id_of(r.parent_uuid.as_deref());
            // Until its own reply names one, a turn runs on the model in effect before it.
            let turn = Turn {
                source_turn_id: id.clone(),
                parent_source_turn_id: parent,
                started_at_ms: ts.unwrap_or(0),
                completed_at_ms: ts,
                model: self.header.model.clone(),
                query_message_source_ids: if human { vec![id.clone()] } else { Vec::new() },
                ..Turn::default()
            };
            let ordinal = self.asm.open_turn(turn, line.offset);
            if self.header.model.is_none() {
                self.asm.pin(ordinal);
                self.modelless.push(ordinal);
            }
            self.turn_ids.push(id.into());
        }
        let Some(ordinal) = self.asm.open_ordinal() else {
            return Vec::new();
        };
        if matches!(role, "assistant" | "tool") {
            self.open_turn_awaits_prompt = false;
        }
        let message_id = uuid.clone().unwrap_or_else(line_id);
        self.uuid_turn
            .insert(message_id.as_str().into(), ordinal as u32);

        // Header facts carried by content lines.
        {
            let h = &mut self.header;
            let dirty = &mut self.asm.header_dirty;
            if h.cwd.is_none() {
                set_if_changed(dirty, &mut h.cwd, r.cwd.as_deref());
            }
            set_if_changed(dirty, &mut h.version, r.version.as_deref());
            set_if_changed(dirty, &mut h.git_branch, r.git_branch.as_deref());
            set_if_changed(dirty, &mut h.slug, r.slug.as_deref());
        }

        // The message.
        let content = match (kind, plain_text) {
            ("system", _) => r.content.as_deref().map(str::to_owned),
            (_, Some(text)) => Some(text).filter(|s| !s.is_empty()),
            _ => join_nonempty(
                blocks
                    .iter()
                    .zip(&lands)
                    .filter(|(_, lands)| !**lands)
                    .flat_map(|(b, _)| block_texts(b)),
            ),
        };
        let thinking = join_nonempty(
            blocks
                .iter()
                .filter(|b| b.kind() == "thinking")
                .filter_map(|b| b.thinking.clone()),
        );
        let message_api_id = message.and_then(|m| m.id.as_deref());
        let mut meta = Map::new();
        if let Some(id) = message_api_id {
            meta.insert("messageId".into(), json!(id));
        }
        if let Some(id) = r.request_id.as_deref() {
            meta.insert("requestId".into(), json!(id));
        }
        if let Some(b) = r.is_sidechain {
            meta.insert("isSidechain".into(), json!(b));
        }
        if let Some(id) = r.agent_id.as_deref() {
            meta.insert("agentId".into(), json!(id));
        }
        if r.queued {
            meta.insert("queued".into(), json!(true));
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

        let raw_model = message.and_then(|m| m.model.as_deref());
        let synthetic = raw_model == Some(SYNTHETIC_MODEL);
        let model = raw_model.filter(|_| !synthetic);
        if let Some(model) = model {
            set_if_changed(
                &mut self.asm.header_dirty,
                &mut self.header.model,
                Some(model),
            );
            self.give_first_model(model);
        }
        // `<synthetic>` lines are written locally, not by the API: they carry no usage.
        let usage_key = message_api_id.filter(|_| kind == "assistant" && !synthetic);
        let usage = message.and_then(|m| m.usage.0.as_ref()).map(|u| Usage {
            input: u.input_tokens.unwrap_or(0),
            output: u.output_tokens.unwrap_or(0),
            cache_read: u.cache_read_input_tokens.unwrap_or(0),
            cache_write: u.cache_creation_input_tokens.unwrap_or(0),
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
            let owner = usage_key
                .filter(|_| usage.is_some())
                .map(|id| *self.response_turn.entry(id.into()).or_insert(ordinal));
            if let (Some(key), Some(usage), true) = (usage_key, usage, owner == Some(ordinal)) {
                held.extra.by_response.insert(key.to_owned(), usage);
                let sum = held
                    .extra
                    .by_response
                    .values()
                    .fold(Usage::default(), |a, u| Usage {
                        input: a.input.saturating_add(u.input),
                        output: a.output.saturating_add(u.output),
                        cache_read: a.cache_read.saturating_add(u.cache_read),
                        cache_write: a.cache_write.saturating_add(u.cache_write),
                    });
                let t = &mut held.turn;
                t.input_tokens = Some(sum.input);
                t.output_tokens = Some(sum.output);
                t.cached_input_tokens = Some(sum.cache_read);
                t.cache_write_tokens = Some(sum.cache_write);
                t.total_tokens = Some(
                    sum.input
                        .saturating_add(sum.output)
                        .saturating_add(sum.cache_read)
                        .saturating_add(sum.cache_write),
                );
            }
        }

        // Tool calls started by this line.
        let turn_id = self.asm.open_ref().map(|t| t.turn.source_turn_id.clone());
        let (uses, results): (Vec<_>, Vec<_>) = blocks
            .into_iter()
            .zip(lands)
            .filter(|(b, _)| matches!(b.kind(), "tool_use" | "tool_result"))
            .partition(|(b, _)| b.kind() == "tool_use");
        for (mut block, _) in uses {
            let Some(id) = block.id.as_deref() else {
                continue;
            };
            if !self.tools_seen.insert(id.into()) {
                continue;
            }
            if let Some(link) = prompt_link(&block, id) {
                self.prompt_links.push(link);
            }
            self.asm.add_tool(ToolCall {
                source_tool_call_id: id.to_owned(),
                source_turn_id: turn_id.clone(),
                source_message_id: Some(message_id.clone()),
                tool_name: block.name.as_deref().unwrap_or("unknown").to_owned(),
                params_json: block.input.take().map(ToolJson::from),
                status: Some(STATUS_PENDING.to_owned()),
                started_at_ms: ts.unwrap_or(0),
                sequence: line.index as i64,
                ..ToolCall::default()
            });
        }

        // Tool results carried by this line.
        let single_result = results.len() == 1;
        let mut tool_use_result = r.tool_use_result.take().filter(|_| single_result);
        let mut spawns = Vec::new();
        for (mut block, lands) in results {
            let Some(id) = block.tool_use_id.as_deref().map(str::to_owned) else {
                continue;
            };
            let failed = block.is_error == Some(true);
            // The agent a spawning call started: `toolUseResult.agentId`, or on old inline
            // layouts the result line's own `agentId`.
            let agent = tool_use_result
                .as_ref()
                .and_then(|t| str_at(t, "agentId"))
                .or_else(|| {
                    (single_result && r.is_sidechain != Some(true))
                        .then_some(r.agent_id.as_deref())
                        .flatten()
                })
                .map(str::to_owned);
            let status = tool_use_result
                .as_ref()
                .and_then(|t| str_at(t, "status"))
                .map(str::to_owned);
            // A `Workflow` call (2.1.16x) names the run its agents belong to.
            let run = tool_use_result
                .as_ref()
                .and_then(|t| str_at(t, "runId"))
                .filter(|r| !r.trim().is_empty())
                .map(workflow_link_key);
            // The first result wins: a replayed copy of a result line changes nothing, whether
            // its call is still held or was already sent and let go.
            if !lands {
                continue;
            }
            let Some(call) = self.asm.tool_mut(&id) else {
                continue;
            };
            let content = block.content.take().unwrap_or(Value::Null);
            // Only a line with a single result has one: it can be moved.
            let tur = tool_use_result.take();
            let params = call.params_json.as_ref().and_then(ToolJson::as_value);
            call.result_json = Some(result_json(content, tur, params).into());
            call.result_source_message_id = Some(message_id.clone());
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
                    tool_use_id: id,
                    agent_id: agent,
                    status,
                });
            } else if let Some(run) = run {
                // Its agents are several sessions: the call names none of them.
                spawns.push(SpawnSeen {
                    tool_use_id: id,
                    agent_id: run,
                    status,
                });
            }
        }
        spawns
    }

    /// The item's first model reached the turns opened before it: each gets it (unless its own
    /// reply named one) and is re-sent once, then let go.
    fn give_first_model(&mut self, model: &str) {
        for ordinal in std::mem::take(&mut self.modelless) {
            if let Some(held) = self.asm.held_mut(ordinal)
                && held.turn.model.is_none()
            {
                held.turn.model = Some(model.to_owned());
            }
            self.asm.unpin(ordinal);
        }
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

    /// Per block of a line: whether it is a `tool_result` that lands on a call waiting for
    /// one (known, still pending, and not answered by an earlier block of the same line).
    fn results_landing(&self, blocks: &[Block<'_>]) -> Vec<bool> {
        let mut answered: HashSet<&str> = HashSet::new();
        blocks
            .iter()
            .map(|b| {
                let Some(id) = b
                    .tool_use_id
                    .as_deref()
                    .filter(|_| b.kind() == "tool_result")
                else {
                    return false;
                };
                self.asm
                    .tool_ref(id)
                    .is_some_and(|c| c.status.as_deref() == Some(STATUS_PENDING))
                    && answered.insert(id)
            })
            .collect()
    }

    /// The `description` input of a known tool call.
    pub fn tool_description(&self, tool_use_id: &str) -> Option<String> {
        self.asm
            .tool_ref(tool_use_id)
            .and_then(|c| c.params_json.as_ref())
            .and_then(ToolJson::as_value)
            .and_then(|p| str_at(p, "description"))
            .map(str::to_owned)
    }

    /// The spawning calls met since the last call, by the key of their prompt.
    pub fn take_prompt_links(&mut self) -> Vec<(String, SpawnLink)> {
        std::mem::take(&mut self.prompt_links)
    }

    pub fn take(&mut self) -> Option<Taken> {
        self.asm.take()
    }
}

/// Text a content block contributes to a message: `text` blocks, and the text of a
/// `tool_result`'s content (a string or text blocks).
fn block_texts(b: &Block<'_>) -> Vec<String> {
    match b.kind() {
        "text" => b.text.clone().into_iter().collect(),
        "tool_result" => match &b.content {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(parts)) => parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| str_at(p, "text").map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
