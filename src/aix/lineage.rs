//! Spawn links across files: what a parent session's file says about the subagents it spawned,
//! filled into a child item whose own file does not say it (SOURCES.md "Lineage"). Memory is
//! one small record per subagent seen in the run.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::sources::{FileRole, SessionParser, SourceFile, SpawnLink, fill_spawn_link};
use crate::protocol::ImportSessionItem;

/// Spawn links by (parent session id, agent id).
#[derive(Default)]
pub struct Lineage {
    links: HashMap<(String, String), SpawnLink>,
}

impl Lineage {
    /// Remembers the spawn links of a main file whose items were just taken.
    pub fn record(&mut self, items: &[ImportSessionItem], parser: &dyn SessionParser) {
        let links = parser.spawn_links();
        if links.is_empty() {
            return;
        }
        let Some(parent) = items
            .iter()
            .find(|i| !i.session.is_subagent)
            .map(|i| i.source_session_id.clone())
        else {
            return;
        };
        for (agent_id, link) in links {
            self.links.insert((parent.clone(), agent_id), link);
        }
    }

    /// Fills `spawnToolCallId`, `taskDescription`, `taskStatus` of a subagent file's items from
    /// its meta file or a known parent, where the item lacks them. Returns a tag of what was
    /// filled (empty when nothing was), to be part of the items' idempotency key: the same
    /// content always travels under the same key.
    pub fn fill(&self, source: &SourceFile, items: &mut [ImportSessionItem]) -> String {
        let FileRole::Subagent {
            agent_id,
            parent_session_id,
            meta,
        } = &source.role
        else {
            return String::new();
        };
        let mut filled = Vec::new();
        for item in items.iter_mut() {
            let s = &mut item.session;
            let before = (
                s.spawn_tool_call_id.clone(),
                s.task_description.clone(),
                s.task_status.clone(),
            );
            if let Some(meta) = meta {
                if s.spawn_tool_call_id.is_none() {
                    s.spawn_tool_call_id = meta.tool_use_id.clone();
                }
                if s.task_description.is_none() {
                    s.task_description = meta.description.clone();
                }
            }
            let parent = s
                .parent_source_session_id
                .clone()
                .or_else(|| parent_session_id.clone());
            if let Some(link) = parent.and_then(|p| self.links.get(&(p, agent_id.clone()))) {
                fill_spawn_link(s, link);
            }
            let after = (
                s.spawn_tool_call_id.clone(),
                s.task_description.clone(),
                s.task_status.clone(),
            );
            if after != before {
                filled.extend([after.0, after.1, after.2].into_iter().flatten());
            }
        }
        if filled.is_empty() {
            return String::new();
        }
        let mut h = Sha256::new();
        for f in &filled {
            h.update(f.as_bytes());
            h.update([0x1f]);
        }
        format!("{:x}", h.finalize())[..16].to_owned()
    }
}
