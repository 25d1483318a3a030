//! What a rollout says about other agents: the messages agents send each other (multi-agent
//! v2), and which session a spawning tool call started.
//!
//! - Messages: a `response_item agent_message` `{author, recipient, content}` (after an
//!   `inter_agent_communication_metadata` record) is a `user` message whose metadata names
//!   `author` and `recipient` (agent paths such as `/root` and `/root/<task name>`). A message
//!   addressed to this session's own agent path (`thread_spawn.agent_path`) by an agent that is
//!   not one of its own subagents is a task handed to it: a prompt, opening its turn as a
//!   Claude Code subagent's first prompt does. Any other (a subagent reporting back to the
//!   session that spawned it) joins the open turn.
//! - Spawn links: the spawning call names the session it started (`spawnedSourceSessionId`)
//!   from `collab_agent_spawn_end` `{call_id, new_thread_id}` (0.12x), a `spawn_agent` output
//!   `{agent_id}` (0.104 on: the child's session id), or `sub_agent_activity`
//!   `{event_id, agent_thread_id, kind: "started"}` (multi-agent v2, whose output names only
//!   the task). All three are written by the parent's own file, between the call and the end of
//!   its turn, so the link never waits for another file.

use serde_json::{Map, Value, json};

use super::CodexParser;
use super::content::{content_texts, line_id, message, push_message};
use super::record::Payload;
use crate::aix::sources::common::{Line, count_skip, join_nonempty};

/// The tool that spawns an agent; its output may name the agent (`{agent_id}`).
const SPAWN_TOOL: &str = "spawn_agent";

impl CodexParser {
    /// A message from another agent (module doc): this session's task, or a report joining
    /// the open turn.
    pub(super) fn agent_message(&mut self, line: &Line<'_>, p: &mut Payload<'_>, ts: Option<i64>) {
        let text = join_nonempty(content_texts(p));
        let mut meta = Map::new();
        for (k, v) in [("author", &p.author), ("recipient", &p.recipient)] {
            if let Some(v) = v.as_deref() {
                meta.insert(k.to_owned(), json!(v));
            }
        }
        let metadata = Some(Value::Object(meta));
        if self.is_own_task(p.author.as_deref(), p.recipient.as_deref()) {
            self.prompt_with(line, text, metadata, ts);
            return;
        }
        if text.is_none() {
            count_skip(&mut self.stats, "response_item/agent_message");
            return;
        }
        self.ensure_turn(line, ts);
        let id = line_id(line);
        let mut msg = message(line, &id, "user", text, None, ts);
        msg.metadata_json = metadata;
        if let Some(t) = self.asm.open_mut() {
            push_message(t, msg, ts);
        }
    }

    /// Whether a message is a task for this session: addressed to its own agent path, by an
    /// agent other than its own subagents (whose paths lie below its own).
    fn is_own_task(&self, author: Option<&str>, recipient: Option<&str>) -> bool {
        let Some(own) = self.agent_path.as_deref() else {
            return false;
        };
        let from_below = author.is_some_and(|a| {
            a.strip_prefix(own)
                .is_some_and(|rest| rest.starts_with('/'))
        });
        recipient == Some(own) && !from_below
    }

    /// `collab_agent_spawn_end` and `sub_agent_activity` (`started`): the call that spawned a
    /// session names it.
    pub(super) fn spawn_event(&mut self, p: &Payload<'_>, sub: &str) {
        let link = match sub {
            "sub_agent_activity" if p.activity.as_deref() == Some("started") => {
                p.event_id.as_deref().zip(p.agent_thread_id.as_deref())
            }
            "sub_agent_activity" => None,
            _ => p.call_id.as_deref().zip(p.new_thread_id.as_deref()),
        };
        match link {
            Some((call_id, thread)) => self.link_spawned(call_id, thread),
            None => count_skip(&mut self.stats, &format!("event_msg/{sub}")),
        }
    }

    /// A completed `SubAgentActivity` item (paginated rollouts): `{id, kind, agentThreadId}`,
    /// `sub_agent_activity`'s `{event_id, kind, agent_thread_id}` under other names.
    pub(super) fn spawn_item(&mut self, p: &Payload<'_>) {
        let item = p.item.0.as_ref();
        let link = item
            .filter(|i| i.activity.as_deref() == Some("started"))
            .and_then(|i| i.id.as_deref().zip(i.agent_thread_id.as_deref()))
            .map(|(call, thread)| (call.to_owned(), thread.to_owned()));
        match link {
            Some((call_id, thread)) => self.link_spawned(&call_id, &thread),
            None => count_skip(&mut self.stats, "event_msg/item_completed:SubAgentActivity"),
        }
    }

    /// A `spawn_agent` output `{agent_id}` (a JSON text or object) names the spawned session.
    pub(super) fn spawn_output(&mut self, call_id: &str, output: &Value) {
        if self.asm.tool_ref(call_id).map(|c| c.tool_name.as_str()) != Some(SPAWN_TOOL) {
            return;
        }
        let parsed;
        let output = match output {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(v) => {
                    parsed = v;
                    &parsed
                }
                Err(_) => return,
            },
            other => other,
        };
        if let Some(agent) = output
            .get("agent_id")
            .and_then(Value::as_str)
            .filter(|a| !a.trim().is_empty())
        {
            self.link_spawned(call_id, agent);
        }
    }

    fn link_spawned(&mut self, call_id: &str, thread: &str) {
        let thread = Some(thread.to_owned());
        if self
            .asm
            .tool_ref(call_id)
            .is_some_and(|c| c.spawned_source_session_id != thread)
            && let Some(call) = self.asm.tool_mut(call_id)
        {
            call.spawned_source_session_id = thread;
        }
    }
}
