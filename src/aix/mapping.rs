//! Mapping versions: how a parser fix reaches ledgers written before it (SOURCES.md "Rewrites",
//! IMPORT_SEMANTICS.md item rule 13).
//!
//! Each provider's mapping (its parser: which lines make which turns, messages, tool calls and
//! token figures) has a version, [`MappingVersions::CURRENT`]. Bump a provider's constant when a
//! change alters the rows it produces for files that were already imported. The version is part
//! of everything that decides whether a session is read again:
//! - **cursors**: a file cursor records the version it was taken under (`FileCursor::mapping`),
//!   a store cursor carries it in its token (`m<version>:<token>`). At run start a cursor of
//!   another version is dropped ([`StartCursors`]; a store cursor keeps only its key,
//!   [`current_store_cursors`], which says the session was imported), so the next backfill (not
//!   only `--full`) and the next tail start read those files and sessions whole;
//! - **fingerprints**: an item's fingerprint is the parser's, folded with the version
//!   ([`versioned_fingerprint`]), so the service never skips the re-read as
//!   `fingerprint_unchanged` and a new idempotency key is used;
//! - **items**: every item carries `mappingVersion`, and an item read whole is `wholeSession`;
//!   for such an item above the session's stored version the service removes the rows of that
//!   session that an older mapping produced and this item no longer holds, in the same
//!   savepoint as the re-import. Partial (tail) items never remove; they record their version
//!   only for a session they create (so a session the tail built equals one a backfill built).
//!
//! Version 1 means "before versions": an item of version 1 is what a worker without versions
//! sent (its fingerprint unchanged, no `mappingVersion`, cursors without a version). Tests use
//! it, through [`MappingVersions::with`] on `WorkerOptions::mappings`, to write the ledger an
//! older worker would have written.

use sha2::{Digest, Sha256};

use super::sources::Provider;
use crate::protocol::ImportSessionItem;

/// The version every ledger written before mapping versions existed has.
pub const BEFORE_VERSIONS: u32 = 1;

/// Claude Code: 2 = prompts without shell-mode, local-command and interrupt lines; last-line usage
/// per `message.id`; resumed files; subagent folders without their main file. 3 = a line whose
/// uuid the item already holds is a copy and changes nothing (resumed 2.1.x subagent files).
/// 4 = each tool result's text stored once: in the call's `result_json` (not again in its role
/// `tool` message, which the call names as `resultSourceMessageId`), `toolUseResult` without the
/// strings that repeat the text or the call's input. 5 = a line several main files hold (a
/// resumed 1.0.x file's copy of the earlier session) belongs to one file only
/// (`aix::claude_copies`): the copies leave the other items. 6 = subagent files take part in
/// that rule too (a 2.1.x `aside_question` agent's copy of its parent's conversation leaves the
/// agent's item), and a file that lost every line it held to another file drops their rows.
/// 7 = a prompt queued while the agent worked (`attachment` `queued_command`, 2.1.x) is a prompt
/// opening its turn, not a skipped attachment. 8 = the lines before a session's first prompt
/// (a 2.x session begun by a slash command opens with its `isMeta` caveat) are that prompt's
/// turn, not a turn of their own without a prompt; a subagent whose call's result never named it
/// (an interrupted `Task`) is linked to the call that sent its first prompt. 9 = a prompt the
/// user typed while the agent worked that only the input queue logs (`queue-operation`
/// `remove`, 2.1.81-2.1.87) is a prompt opening its turn (`claude_code::queue`); an agent
/// Claude Code runs itself (`agent-acompact-…`) is never linked by its first prompt; the agents
/// of a `Workflow` run (2.1.16x) are linked to the call whose result names the run.
pub const CLAUDE_CODE: u32 = 9;
/// Codex: 2 = a turn per prompt (not per `turn_context`), each API call's tokens once, the old
/// pre-envelope format, spawned subagents without their parent's replay. 3 = `input_tokens`
/// without the cache reads (Codex's input includes them). 4 = a `/review` rollout names the
/// session that started it (`aix::codex_reviews`). 5 = a command whose output reports an exit
/// code other than 0 is a failed call (`status` `failed`), as Claude Code's are; a prompt
/// written as an `item_completed` `UserMessage` (0.15x, which writes no `user_message`) opens
/// its turn. 6 = a reply citing memories is one message (the model's copy, with its
/// `<oai-mem-citation>` block, pairs with the event; the entries go to the message's metadata);
/// a spawning call names the session it spawned from a `spawn_agent` output's `agent_id` (0.104)
/// and from `sub_agent_activity` (multi-agent v2); messages between agents (v2 `agent_message`
/// items) are `user` messages, a task handed to the session its prompt; any `source.subagent`
/// (a `guardian`) is a subagent; a `tool_search_output` is its call's result. 7 = paginated
/// rollouts (`history_mode: "paginated"`, 0.15x+): a completed `AgentMessage` item is the
/// reply as `agent_message` is (the first of the pair, with its `memory_citation`), a completed
/// `SubAgentActivity` item names the spawned session as `sub_agent_activity` does, and the
/// records before a subagent's `subagent_history_start_ordinal` are its parent's replay.
pub const CODEX: u32 = 7;
/// Cursor: 2 = workspace databases and the `ItemTable` formats. 3 = a legacy chat tab's
/// follow-up prompt read from its editor state (`initText`) when `text` and `rawText` are empty;
/// its input box (a last user bubble without text) is not a prompt. 4 = that input box is a
/// last user bubble without `text` and `rawText` whatever its `initText` holds (a draft never
/// sent: a tab holding only one is no session); a composer's own `workspaceIdentifier` gives
/// `workspacePath` when no workspace lists it; a turn whose replies name no model takes its
/// prompt's `modelInfo`; bubbles without `createdAt` take their times from `timingInfo`.
pub const CURSOR: u32 = 4;
/// OpenCode: 2 = the per-project JSON tree, channel databases, tokens from messages only.
/// 3 = a user message whose only text is synthetic (a `!command` run from the prompt box) takes
/// that text as its prompt text instead of none.
pub const OPENCODE: u32 = 3;
/// Gemini CLI: 2 = subagent chats, every user message a prompt, tokens per message id once.
/// 3 = `input_tokens` without the cache reads (Gemini's input includes them). 4 = a later chat
/// file carrying the `sessionId` of an earlier one is its own session. 5 = a log whose metadata
/// record is written more than once (Code Assist resuming a chat) was created at the earliest
/// `startTime`, not the last. 6 = a Code Assist log is the session
/// `a2a-server/<project>/<file stem>`, no longer `a2a-server/<file stem>` (two projects' chats
/// begun in the same minute were one session); the former name is retracted. Messages before
/// the first prompt (an `info` notice a chat opens with) are that prompt's turn, not a turn
/// of their own without a prompt.
pub const GEMINI_CLI: u32 = 6;

/// The mapping version of each provider a run works under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingVersions([u32; 5]);

impl Default for MappingVersions {
    fn default() -> Self {
        Self::CURRENT
    }
}

impl MappingVersions {
    /// This build's versions.
    pub const CURRENT: MappingVersions =
        MappingVersions([CLAUDE_CODE, CODEX, CURSOR, OPENCODE, GEMINI_CLI]);

    fn index(provider: Provider) -> usize {
        match provider {
            Provider::ClaudeCode => 0,
            Provider::Codex => 1,
            Provider::Cursor => 2,
            Provider::OpenCode => 3,
            Provider::GeminiCli => 4,
        }
    }

    pub fn of(&self, provider: Provider) -> u32 {
        self.0[Self::index(provider)]
    }

    /// These versions with `provider`'s set to `version` (at least [`BEFORE_VERSIONS`]).
    pub fn with(mut self, provider: Provider, version: u32) -> Self {
        self.0[Self::index(provider)] = version.max(BEFORE_VERSIONS);
        self
    }
}

/// The fingerprint of an item produced under `version` from the parser's own `fingerprint`:
/// unchanged under [`BEFORE_VERSIONS`], else a hex SHA-256 of the provider, the version and the
/// parser's value. A function of the final content and the version only, so tail and backfill
/// still agree.
pub fn versioned_fingerprint(provider: Provider, version: u32, fingerprint: &str) -> String {
    if version <= BEFORE_VERSIONS {
        return fingerprint.to_owned();
    }
    let mut h = Sha256::new();
    h.update(b"aix-mapping\x1f");
    h.update(provider.as_str().as_bytes());
    h.update([0x1f]);
    h.update(version.to_string().as_bytes());
    h.update([0x1f]);
    h.update(fingerprint.as_bytes());
    format!("{:x}", h.finalize())
}

/// Stamps the items of one read of `provider`'s source with `version`: every fingerprint is
/// versioned and every item carries `mappingVersion`; with `whole` (the items carry their
/// sessions whole: a file read from byte 0, a store session) they are also `wholeSession`,
/// which lets the service replace the rows an older mapping produced. Under
/// [`BEFORE_VERSIONS`] items are left as a worker without versions sent them.
pub fn stamp_items(items: &mut [ImportSessionItem], provider: Provider, version: u32, whole: bool) {
    for item in items {
        item.source_session_fingerprint =
            versioned_fingerprint(provider, version, &item.source_session_fingerprint);
        let versioned = version > BEFORE_VERSIONS;
        item.mapping_version = versioned.then_some(version);
        item.whole_session = whole && versioned;
    }
}

/// A store session's change token as stored in its cursor under `version`.
pub fn versioned_token(version: u32, token: &str) -> String {
    if version <= BEFORE_VERSIONS {
        return token.to_owned();
    }
    format!("m{version}:{token}")
}

/// The store's own token of a stored cursor's token, when it was stored under `version`; `None`
/// for a token of another version (its session is then read whole).
pub fn current_token(version: u32, stored: &str) -> Option<String> {
    if version <= BEFORE_VERSIONS {
        return Some(stored.to_owned());
    }
    stored
        .strip_prefix(&format!("m{version}:"))
        .map(str::to_owned)
}

/// The provider a cursor key names (`<provider>:<path>[#<session>]`).
pub fn provider_of_key(key: &str) -> Option<Provider> {
    let name = key.split_once(':')?.0;
    Provider::ALL.into_iter().find(|p| p.as_str() == name)
}

/// The cursors of `run.start` as a run under `versions` takes them.
#[derive(Debug, Default)]
pub struct StartCursors {
    /// The file cursors taken under the run's versions. The others are dropped, so their
    /// files are read whole.
    pub files: std::collections::HashMap<String, super::FileCursor>,
    /// The keys of the dropped ones: files imported under another mapping version, whose first
    /// whole read may retract the sessions that version named otherwise
    /// (`SessionParser::renamed_sessions`).
    pub upgraded_files: std::collections::HashSet<String>,
    /// The store cursors, tokens as the stores know them ([`current_store_cursors`]).
    pub stores: std::collections::HashMap<String, super::sources::StoreCursor>,
}

impl StartCursors {
    pub fn of(
        files: &std::collections::HashMap<String, super::FileCursor>,
        stores: &std::collections::HashMap<String, super::sources::StoreCursor>,
        versions: &MappingVersions,
    ) -> Self {
        let mut start = Self {
            stores: current_store_cursors(stores, versions),
            ..Self::default()
        };
        for (key, c) in files {
            match provider_of_key(key).map(|p| c.mapping == versions.of(p)) {
                Some(true) => {
                    start.files.insert(key.clone(), c.clone());
                }
                Some(false) => {
                    start.upgraded_files.insert(key.clone());
                }
                None => {}
            }
        }
        start
    }
}

/// The token [`current_store_cursors`] gives a cursor stored under another version: no store
/// takes it for its session's (`StoreRun` hands stores only the others), and it tells the run
/// that the session was imported (a session the store still holds that now makes no item is
/// then retracted, item rule 15).
pub const STALE_TOKEN: &str = "";

/// The store cursors of `run.start` stored under the run's versions, their tokens as the stores
/// know them; the others keep their key with [`STALE_TOKEN`], so their sessions are read whole.
pub fn current_store_cursors(
    cursors: &std::collections::HashMap<String, super::sources::StoreCursor>,
    versions: &MappingVersions,
) -> std::collections::HashMap<String, super::sources::StoreCursor> {
    cursors
        .iter()
        .filter_map(|(key, c)| {
            let version = versions.of(provider_of_key(key)?);
            let token = current_token(version, &c.token).unwrap_or_else(|| STALE_TOKEN.to_owned());
            Some((
                key.clone(),
                super::sources::StoreCursor { token, ..c.clone() },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_versions_leaves_items_as_an_unversioned_worker_sent_them() {
        let mut items = vec![ImportSessionItem {
            source_session_fingerprint: "abc".into(),
            ..Default::default()
        }];
        stamp_items(&mut items, Provider::Codex, BEFORE_VERSIONS, true);
        assert_eq!(items[0].source_session_fingerprint, "abc");
        assert_eq!(items[0].mapping_version, None);
        assert!(!items[0].whole_session);
        assert_eq!(versioned_token(1, "t"), "t");
        assert_eq!(current_token(1, "m2:t").as_deref(), Some("m2:t"));
    }

    #[test]
    fn a_version_changes_fingerprint_and_token_and_only_whole_items_carry_it() {
        let fp2 = versioned_fingerprint(Provider::Codex, 2, "abc");
        assert_ne!(fp2, "abc");
        assert_eq!(fp2.len(), 64);
        assert_ne!(fp2, versioned_fingerprint(Provider::Codex, 3, "abc"));
        assert_ne!(fp2, versioned_fingerprint(Provider::ClaudeCode, 2, "abc"));
        let mut items = vec![ImportSessionItem {
            source_session_fingerprint: "abc".into(),
            ..Default::default()
        }];
        let mut partial = items.clone();
        stamp_items(&mut items, Provider::Codex, 2, true);
        stamp_items(&mut partial, Provider::Codex, 2, false);
        assert_eq!(items[0].mapping_version, Some(2));
        assert!(items[0].whole_session);
        assert_eq!(partial[0].mapping_version, Some(2));
        assert!(!partial[0].whole_session);
        assert_eq!(items[0].source_session_fingerprint, fp2);
        assert_eq!(partial[0].source_session_fingerprint, fp2);
        assert_eq!(
            current_token(2, &versioned_token(2, "5:9")).as_deref(),
            Some("5:9")
        );
        assert_eq!(current_token(2, "5:9"), None);
        assert_eq!(current_token(3, &versioned_token(2, "5:9")), None);
    }

    #[test]
    fn store_cursors_of_another_version_stay_known_with_a_stale_token() {
        let cursor = |token: String| super::super::sources::StoreCursor {
            v: 1,
            token,
            fingerprint: "f".into(),
        };
        let stored = std::collections::HashMap::from([
            (
                "cursor:/db#a".to_owned(),
                cursor(versioned_token(CURSOR, "t")),
            ),
            ("cursor:/db#b".to_owned(), cursor(versioned_token(2, "u"))),
        ]);
        let now = current_store_cursors(&stored, &MappingVersions::CURRENT);
        assert_eq!(now.len(), 2);
        assert_eq!(now["cursor:/db#a"].token, "t");
        assert_eq!(now["cursor:/db#b"].token, STALE_TOKEN);
    }

    #[test]
    fn every_provider_is_at_its_current_version() {
        let expected = [
            (Provider::ClaudeCode, 9),
            (Provider::Codex, 7),
            (Provider::Cursor, 4),
            (Provider::OpenCode, 3),
            (Provider::GeminiCli, 6),
        ];
        assert_eq!(expected.len(), Provider::ALL.len());
        for (p, v) in expected {
            assert_eq!(MappingVersions::CURRENT.of(p), v, "{}", p.as_str());
            assert_eq!(MappingVersions::CURRENT.with(p, 7).of(p), 7);
        }
        assert_eq!(
            provider_of_key("gemini-cli:/a:b"),
            Some(Provider::GeminiCli)
        );
        assert_eq!(provider_of_key("nope:/a"), None);
    }
}
