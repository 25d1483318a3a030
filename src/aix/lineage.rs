//! Spawn links across files: what a parent session's file says about the subagents it spawned,
//! filled into a child item whose own file does not say it (SOURCES.md "Lineage"). A child read
//! before its parent's link is known is remembered; once the link arrives, the caller re-sends
//! the child's header (`SessionParser::resend_header`) with the link filled in. Memory is one
//! small record per subagent and per file seen in the run.
//!
//! A child's lineage is a function of the final files, whatever the run read when (issue 11):
//! - a child read in a run that does not read its parent (unchanged since its cursor) gets the
//!   parent's links from a scan of the parent's file ([`Lineage::learn_parents`]);
//! - a parent whose link to a child changes (a result line gives the task's status) re-sends
//!   the headers of the children that went out with another link, and, once per run, of those
//!   this run has not sent at all (an earlier run may have sent them with an older link). An
//!   unchanged lineage re-sent is skipped by the import service (same fingerprint).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::cursor::FileCursor;
use super::file_state::{FileState, ParserFactory};
use super::sources::claude_code::first_prompt;
use super::sources::{
    FileRole, PROMPT_LINK_PREFIX, Provider, SessionParser, SourceFile, SpawnLink, fill_spawn_link,
    prompt_link_key, workflow_link_key, workflow_run,
};

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
    /// Subagent files known to the run, by agent id: the children a link may name.
    children: HashMap<String, Vec<SourceFile>>,
    /// The same files by the parent session id their layout names (a link by prompt looks
    /// among its parent's children only).
    by_parent: HashMap<String, Vec<SourceFile>>,
    /// Main files known to the run: where a child's parent is looked for.
    mains: Vec<SourceFile>,
    /// The cursor of each known file as last committed or emitted (what a re-send starts from).
    cursors: HashMap<PathBuf, FileCursor>,
    /// The parent link each child file's items last went out with in this run (`None`: none).
    sent: HashMap<PathBuf, Option<SpawnLink>>,
    /// Session ids whose file's links are known in this run (read or scanned).
    known: HashSet<String>,
    /// Files scanned for their links.
    scanned: HashSet<PathBuf>,
    /// The key of each Claude Code subagent file's first prompt, read once per run from the
    /// file's head when a link by agent id is missing (`None`: it has none).
    prompt_keys: HashMap<PathBuf, Option<String>>,
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
            self.known.insert(own.clone());
            self.file_sessions.insert(source.path.clone(), own);
        }
        self.scanned.insert(source.path.clone());
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
        for (agent_id, link) in &links {
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
        // Children that went out (in this run, or in an earlier one: not sent yet in this run)
        // with another link than the one the parent now gives: those its links name by agent id,
        // and those of its children no agent id links whose first prompt one of its calls sent.
        let mut named: Vec<(SourceFile, SpawnLink)> = Vec::new();
        for (key, link) in links
            .iter()
            .filter(|(k, _)| !k.starts_with(PROMPT_LINK_PREFIX))
        {
            for child in self.children.get(key).into_iter().flatten() {
                named.push((child.clone(), link.clone()));
            }
        }
        for child in self.children_by_prompt(&parents, source) {
            let link = self
                .prompt_key_of(&child)
                .and_then(|key| links.get(&key).cloned());
            if let Some(link) = link {
                named.push((child, link));
            }
        }
        for (child, link) in &named {
            let FileRole::Subagent {
                parent_session_id, ..
            } = &child.role
            else {
                continue;
            };
            let parent_matches = parent_session_id
                .as_ref()
                .is_none_or(|p| parents.contains(p));
            let stale = match self.sent.get(&child.path) {
                Some(sent) => sent.as_ref() != Some(link),
                None => true,
            };
            if parent_matches
                && stale
                && child.provider == source.provider
                && !resend.iter().any(|(s, _)| s.path == child.path)
                && let Some(cursor) = self.cursors.get(&child.path)
            {
                resend.push((child.clone(), cursor.clone()));
            }
        }
        // A child found under one key is linked under all of them.
        let paths: Vec<PathBuf> = resend.iter().map(|(s, _)| s.path.clone()).collect();
        self.unlinked.retain(|_, (s, _)| !paths.contains(&s.path));
        resend
    }

    /// Makes a discovered file known to the run, with the cursor it starts from (the committed
    /// one, `None` when it was never imported): children are found by their agent id, parents
    /// among the main files.
    pub fn know(&mut self, source: &SourceFile, cursor: Option<&FileCursor>) {
        match &source.role {
            FileRole::Main => self.mains.push(source.clone()),
            FileRole::Subagent {
                agent_id,
                parent_session_id,
                ..
            } => {
                add_once(&mut self.children, agent_id, source);
                if let Some(key) = workflow_key_of(source) {
                    add_once(&mut self.children, &key, source);
                }
                if let Some(parent) = parent_session_id {
                    add_once(&mut self.by_parent, parent, source);
                }
            }
        }
        if let Some(c) = cursor {
            self.cursors.insert(source.path.clone(), c.clone());
        }
    }

    /// Learns the links of a subagent file's parents that this run has not read: scans their
    /// files (found among the known main files in a directory above the child whose name holds
    /// the parent id, or its first 8 characters) with a fresh parser. Returns the children that
    /// scan shows to need a re-send (see [`Lineage::record`]). Unreadable parents are skipped:
    /// the child then goes out with what is known, as before.
    pub fn learn_parents(
        &mut self,
        source: &SourceFile,
        items: &[ImportSessionItem],
        factory: &ParserFactory,
    ) -> Vec<Unlinked> {
        let FileRole::Subagent {
            parent_session_id, ..
        } = &source.role
        else {
            return Vec::new();
        };
        let mut parents: Vec<String> = parent_session_id.iter().cloned().collect();
        for item in items {
            if let Some(p) = item.session.parent_source_session_id.as_ref()
                && !parents.contains(p)
            {
                parents.push(p.clone());
            }
        }
        let mut resend = Vec::new();
        for parent in parents {
            if parent.trim().is_empty() || self.known.contains(&parent) {
                continue;
            }
            self.known.insert(parent.clone());
            let candidates: Vec<SourceFile> = self
                .mains
                .iter()
                .filter(|m| {
                    m.provider == source.provider
                        && !self.scanned.contains(&m.path)
                        && names_parent(&m.path, &source.path, &parent)
                })
                .cloned()
                .collect();
            for main in candidates {
                let mut state = FileState::new(main, None);
                match state.update(factory, true) {
                    Ok(Some(update)) => {
                        if let Some(parser) = state.parser() {
                            resend.extend(self.record(&state.source, &update.items, parser));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(path = %state.source.path.display(), error_kind = ?e.kind(), "parent not scanned")
                    }
                }
            }
        }
        resend
    }

    /// The key of a Claude Code subagent file's first prompt (read from its head once per run).
    /// None for an agent Claude Code runs itself (`agent-<kind>-<id>`: `acompact` compacting a
    /// conversation, `aside_question`, `aprompt_suggestion`), which no tool call spawns: its
    /// first line is a copy of the conversation it works on, which may be a prompt some call
    /// sent another agent.
    fn prompt_key_of(&mut self, child: &SourceFile) -> Option<String> {
        let FileRole::Subagent { agent_id, .. } = &child.role else {
            return None;
        };
        if child.provider != Provider::ClaudeCode || agent_id.contains('-') {
            return None;
        }
        self.prompt_keys
            .entry(child.path.clone())
            .or_insert_with(|| first_prompt(&child.path).map(|p| prompt_link_key(&p)))
            .clone()
    }

    /// The Claude Code subagent files of one of `parents` (by their layout) that no link by
    /// agent id names: those a link by prompt may name.
    fn children_by_prompt(&self, parents: &[String], source: &SourceFile) -> Vec<SourceFile> {
        if source.provider != Provider::ClaudeCode {
            return Vec::new();
        }
        parents
            .iter()
            .flat_map(|parent| self.by_parent.get(parent).into_iter().flatten())
            .filter(|child| {
                let FileRole::Subagent { agent_id, .. } = &child.role else {
                    return false;
                };
                let keys = [Some(agent_id.clone()), workflow_key_of(child)];
                child.provider == source.provider
                    && !keys.iter().flatten().any(|key| {
                        parents
                            .iter()
                            .any(|p| self.links.contains_key(&(p.clone(), key.clone())))
                    })
            })
            .cloned()
            .collect()
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
            // By its agent id, else (an agent of a workflow run) by its run's key.
            let run_key = workflow_key_of(source);
            let by_agent = [Some(agent_id), run_key.as_ref()]
                .into_iter()
                .flatten()
                .find_map(|key| {
                    parents
                        .iter()
                        .find_map(|p| self.links.get(&(p.clone(), key.clone())))
                })
                .cloned();
            // Else the call that sent its first prompt (one interrupted before its result named
            // the agent).
            let prompt_key = match by_agent {
                Some(_) => None,
                None => self.prompt_key_of(source),
            };
            let link = by_agent.or_else(|| {
                let key = prompt_key.as_ref()?;
                parents
                    .iter()
                    .find_map(|p| self.links.get(&(p.clone(), key.clone())))
                    .cloned()
            });
            if let Some(link) = &link {
                fill_spawn_link(s, link);
            }
            self.sent.insert(source.path.clone(), link);
            self.cursors.insert(source.path.clone(), cursor.clone());
            if s.spawn_tool_call_id.is_none() {
                for p in parents {
                    if let Some(key) = &prompt_key {
                        self.unlinked
                            .insert((p.clone(), key.clone()), (source.clone(), cursor.clone()));
                    }
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

/// The link key of a Claude Code subagent file that belongs to a workflow run.
fn workflow_key_of(source: &SourceFile) -> Option<String> {
    if source.provider != Provider::ClaudeCode {
        return None;
    }
    workflow_run(&source.path).map(|run| workflow_link_key(&run))
}

/// Files known under `key`, each path once.
fn add_once(map: &mut HashMap<String, Vec<SourceFile>>, key: &str, source: &SourceFile) {
    let files = map.entry(key.to_owned()).or_default();
    if !files.iter().any(|f| f.path == source.path) {
        files.push(source.clone());
    }
}

/// Whether `main` may be the file of session `parent` for the child at `child`: it sits in a
/// directory above the child (its project: a Claude Code session dir, a Gemini `chats` dir) and
/// its name holds the parent id (Claude Code: `<id>.jsonl`) or the id's first 8 characters
/// (Gemini CLI: `session-<time>-<id8>.jsonl`).
fn names_parent(main: &Path, child: &Path, parent: &str) -> bool {
    let Some(dir) = main.parent() else {
        return false;
    };
    if !child.ancestors().skip(1).take(5).any(|a| a == dir) {
        return false;
    }
    let stem = main
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let short: String = parent.chars().take(8).collect();
    stem == parent || (short.len() == 8 && stem.contains(&short))
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
