//! The session a Codex rollout describes: its header (`session_meta`, or the bare first line
//! of the pre-envelope format), its lineage, and which records are the replay of a parent
//! rather than the session's own.

use serde_json::{Value, json};

use super::record::Payload;
use super::{CodexParser, Format, Replay};
use crate::aix::sources::common::{Line, count_skip, parse_rfc3339_ms};

impl CodexParser {
    /// The first line of a pre-envelope rollout: `{id, timestamp, instructions, git}`.
    pub(super) fn bare_header(&mut self, line: &Line<'_>) {
        let Ok(p) = serde_json::from_slice::<Payload<'_>>(line.bytes) else {
            self.stats.malformed_lines += 1;
            return;
        };
        let Some(id) = p.id.as_deref() else {
            count_skip(&mut self.stats, "unknown");
            return;
        };
        self.format = Format::Bare;
        self.stats.format_version = Some("pre-envelope".to_owned());
        self.session_id = Some(id.to_owned());
        let ts = p.timestamp.as_deref().and_then(parse_rfc3339_ms);
        self.header.created = ts;
        self.header.updated = ts;
        if let Some(branch) = p.git.0.as_ref().and_then(|g| g.branch.as_deref()) {
            self.header
                .metadata
                .insert("gitBranch".to_owned(), json!(branch));
        }
        self.asm.header_dirty = true;
    }

    /// A line after the bare header: a bare response item or a `{"record_type": …}` marker.
    pub(super) fn bare_line(&mut self, line: &Line<'_>) {
        let mut p: Payload<'_> = match serde_json::from_slice(line.bytes) {
            Ok(p) => p,
            Err(_) => {
                self.stats.malformed_lines += 1;
                return;
            }
        };
        let Some(kind) = p.kind.clone() else {
            count_skip(&mut self.stats, "record_type");
            return;
        };
        // The old format has no per-line timestamps: its records carry the session's.
        let ts = self.header.created;
        self.response_item(line, &mut p, kind.as_ref(), ts, true);
    }

    /// Whether a record belongs to the replay of the parent at the head of a child's file.
    pub(super) fn replayed(&mut self, kind: &str, p: &Payload<'_>, ts: Option<i64>) -> bool {
        match self.replay {
            Replay::None => false,
            Replay::OlderThanMeta => match (ts, self.meta_ts) {
                (Some(t), Some(m)) if t < m => true,
                _ => {
                    self.replay = Replay::None;
                    false
                }
            },
            Replay::UntilOwnTask => {
                let own = self.session_id.as_deref().unwrap_or("");
                if kind == "event_msg"
                    && p.kind() == "task_started"
                    && p.turn_id.as_deref().is_some_and(|t| t >= own)
                {
                    self.replay = Replay::None;
                    false
                } else {
                    true
                }
            }
        }
    }

    pub(super) fn session_meta(&mut self, p: &Payload<'_>, ts: Option<i64>) {
        if let Some(own) = self.session_id.as_deref() {
            if p.id.as_deref().is_some_and(|id| id != own) {
                // A spawned subagent's file: the parent's meta, then the parent's history.
                self.replay = Replay::UntilOwnTask;
                count_skip(&mut self.stats, "replayed");
            } else {
                count_skip(&mut self.stats, "session_meta");
            }
            return;
        }
        let Some(id) = p.id.as_deref() else {
            count_skip(&mut self.stats, "session_meta");
            return;
        };
        self.session_id = Some(id.to_owned());
        let meta_ts = p.timestamp.as_deref().and_then(parse_rfc3339_ms).or(ts);
        self.meta_ts = meta_ts;
        let h = &mut self.header;
        h.created = meta_ts;
        h.cwd = p.cwd.as_deref().map(str::to_owned);
        // Any form of `source.subagent` is a subagent, also one that names no parent
        // (`{other: "guardian"}`, `"review"`: the run's review index may learn its parent).
        h.is_subagent = p.is_subagent();
        let spawn = p.thread_spawn();
        if let Some(spawn) = spawn {
            h.parent = spawn.parent_thread_id.as_deref().map(str::to_owned);
            h.spawn_call_id = spawn.spawn_call_id.as_deref().map(str::to_owned);
        }
        let agent_path = spawn
            .and_then(|s| s.agent_path.as_deref())
            .filter(|a| !a.trim().is_empty());
        self.agent_path = agent_path.map(str::to_owned);
        let kind = p.subagent_label();
        let forked = p.forked_from_id.as_deref().map(str::to_owned);
        if h.parent.is_none() {
            h.parent = forked.clone();
        }
        for (k, val) in [
            ("cliVersion", p.cli_version.as_deref()),
            ("originator", p.originator.as_deref()),
            ("modelProvider", p.model_provider.as_deref()),
            (
                "gitBranch",
                p.git.0.as_ref().and_then(|g| g.branch.as_deref()),
            ),
            ("forkedFromId", forked.as_deref()),
            ("agentNickname", p.agent_nickname.as_deref()),
            ("agentRole", p.agent_role.as_deref()),
            ("agentPath", agent_path),
            ("subagent", kind),
        ] {
            if let Some(val) = val {
                h.metadata.insert(k.to_owned(), json!(val));
            }
        }
        self.own_from_ordinal = p.subagent_history_start_ordinal;
        if self.own_from_ordinal.is_none() && (spawn.is_some() || forked.is_some()) {
            self.replay = Replay::OlderThanMeta;
        }
        self.asm.header_dirty = true;
    }

    pub(super) fn set_meta(&mut self, key: &str, value: &str) {
        if self.header.metadata.get(key).and_then(Value::as_str) != Some(value) {
            self.header.metadata.insert(key.to_owned(), json!(value));
            self.asm.header_dirty = true;
        }
    }
}
