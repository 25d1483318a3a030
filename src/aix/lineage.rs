//! Spawn links across files: what a parent session's file says about the subagents it spawned,
//! filled into a child item whose own file does not say it (SOURCES.md "Lineage"). A child read
//! before its parent's link is known is remembered; once the link arrives, the caller re-sends
//! the child's header (`SessionParser::resend_header`) with the link filled in. Memory is one
//! small record per subagent and per file seen in the run.

use std::collections::HashMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::cursor::FileCursor;
use super::sources::{FileRole, SessionParser, SourceFile, SpawnLink, fill_spawn_link};
use crate::protocol::ImportSessionItem;

/// A child file whose items went out without their spawn link.
pub type Unlinked = (SourceFile, FileCursor);

#[derive(Default)]
pub struct Lineage {
    /// Spawn links by (parent session id, agent id).
    links: HashMap<(String, String), SpawnLink>,
    /// The session id a file's own items carry, by path (learnt from its items).
    file_sessions: HashMap<PathBuf, String>,
    /// Children emitted without a spawn tool call id, by (parent session id, agent id).
    unlinked: HashMap<(String, String), Unlinked>,
}

impl Lineage {
    /// Remembers the spawn links a file's parser knows, under the session ids they belong to.
    /// Returns the children already emitted without one of these links: their headers should
    /// be re-sent.
    pub fn record(
        &mut self,
        source: &SourceFile,
        items: &[ImportSessionItem],
        parser: &dyn SessionParser,
    ) -> Vec<Unlinked> {
        let own = items
            .iter()
            .find(|i| !i.session.is_subagent)
            .or_else(|| items.first())
            .map(|i| i.source_session_id.clone());
        if let Some(own) = own {
            self.file_sessions.insert(source.path.clone(), own);
        }
        let links = parser.spawn_links();
        if links.is_empty() {
            return Vec::new();
        }
        let mut parents: Vec<String> = self
            .file_sessions
            .get(&source.path)
            .cloned()
            .into_iter()
            .collect();
        if let FileRole::Subagent {
            parent_session_id: Some(p),
            ..
        } = &source.role
        {
            parents.push(p.clone());
        }
        let mut resend: Vec<Unlinked> = Vec::new();
        for (agent_id, link) in links {
            for parent in &parents {
                let key = (parent.clone(), agent_id.clone());
                if let Some(child) = self.unlinked.remove(&key)
                    && !resend.iter().any(|(s, _)| s.path == child.0.path)
                {
                    resend.push(child);
                }
                self.links.insert(key, link.clone());
            }
        }
        // A child found under one key is linked under all of them.
        let paths: Vec<PathBuf> = resend.iter().map(|(s, _)| s.path.clone()).collect();
        self.unlinked.retain(|_, (s, _)| !paths.contains(&s.path));
        resend
    }

    /// Fills `spawnToolCallId`, `taskDescription`, `taskStatus` of a subagent file's items from
    /// its meta file or a known parent, where the item lacks them, and remembers a child still
    /// lacking its spawn tool call id (with `cursor`, the file's cursor after these items).
    /// Returns a tag of what was filled (empty when nothing was), to be part of the items'
    /// idempotency key: the same content always travels under the same key.
    pub fn fill(
        &mut self,
        source: &SourceFile,
        items: &mut [ImportSessionItem],
        cursor: &FileCursor,
    ) -> String {
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
            let mut parents: Vec<String> = Vec::new();
            for p in [&s.parent_source_session_id, parent_session_id]
                .into_iter()
                .flatten()
            {
                if !parents.contains(p) {
                    parents.push(p.clone());
                }
            }
            let link = parents
                .iter()
                .find_map(|p| self.links.get(&(p.clone(), agent_id.clone())));
            if let Some(link) = link {
                fill_spawn_link(s, link);
            }
            if s.spawn_tool_call_id.is_none() {
                for p in parents {
                    self.unlinked
                        .insert((p, agent_id.clone()), (source.clone(), cursor.clone()));
                }
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

/// Folds a subagent item's lineage (`spawnToolCallId`, `taskDescription`, `taskStatus`) into its
/// fingerprint.
///
/// The lineage of a subagent often comes from another file (its parent's tool result) or from a
/// later line of its parent, so it can change while the subagent's own lines do not. The
/// fingerprint must change whenever the imported content does (SOURCES.md "Items, fingerprints,
/// keys"), or the import service would skip the re-sent header as `fingerprint_unchanged` and the
/// link would never reach the ledger. The result is a function of the final content only, so a
/// tail that learnt the link late and a backfill that knew it from the start agree.
pub fn seal_lineage(items: &mut [ImportSessionItem]) {
    for item in items.iter_mut().filter(|i| i.session.is_subagent) {
        let s = &item.session;
        let parts = [&s.spawn_tool_call_id, &s.task_description, &s.task_status];
        if parts.iter().all(|p| p.is_none()) {
            continue;
        }
        let mut h = Sha256::new();
        h.update(item.source_session_fingerprint.as_bytes());
        for p in parts {
            h.update([0x1f]);
            h.update(p.as_deref().unwrap_or("").as_bytes());
        }
        item.source_session_fingerprint = format!("{:x}", h.finalize());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subagent(spawn: Option<&str>) -> ImportSessionItem {
        let mut item = ImportSessionItem {
            source_session_fingerprint: "f".repeat(64),
            ..Default::default()
        };
        item.session.is_subagent = true;
        item.session.spawn_tool_call_id = spawn.map(str::to_owned);
        item
    }

    #[test]
    fn lineage_changes_the_fingerprint_and_only_lineage_does() {
        let mut unlinked = [subagent(None)];
        seal_lineage(&mut unlinked);
        assert_eq!(unlinked[0].source_session_fingerprint, "f".repeat(64));

        let mut a = [subagent(Some("toolu_1"))];
        let mut b = [subagent(Some("toolu_1"))];
        let mut c = [subagent(Some("toolu_2"))];
        seal_lineage(&mut a);
        seal_lineage(&mut b);
        seal_lineage(&mut c);
        assert_ne!(a[0].source_session_fingerprint, "f".repeat(64));
        assert_eq!(
            a[0].source_session_fingerprint,
            b[0].source_session_fingerprint
        );
        assert_ne!(
            a[0].source_session_fingerprint,
            c[0].source_session_fingerprint
        );

        let mut main = [ImportSessionItem {
            source_session_fingerprint: "f".repeat(64),
            ..Default::default()
        }];
        main[0].session.spawn_tool_call_id = Some("toolu_1".into());
        seal_lineage(&mut main);
        assert_eq!(main[0].source_session_fingerprint, "f".repeat(64));
    }
}
