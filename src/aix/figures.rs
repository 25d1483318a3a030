//! Per-session figures of what a source holds, as the import would write them: `aix scan
//! --sessions` prints one [`SessionFigures`] line per session, and `nex import verify`
//! compares them with the ledger's rows of the session.
//!
//! The figures follow the import's rules (IMPORT_SEMANTICS.md), so that a ledger that holds
//! exactly what the source holds gives equal numbers: rows are counted once per source id
//! (items that repeat a turn, message or tool call upsert one row; blank ids are skipped), the
//! last version of a turn gives its tokens (negative counts clamp to 0), and a session whose
//! items name no turn has the service's synthetic root turn.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::protocol::ImportSessionItem;

/// What one source session holds. Serialised camelCase, one JSON line per session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionFigures {
    pub provider: String,
    pub session_id: String,
    pub is_subagent: bool,
    /// The parent session's source id (a subagent's or a fork's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_session_id: Option<String>,
    /// The source id of the tool call that spawned the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawn_tool_call_id: Option<String>,
    /// Turns: one per prompt.
    pub turns: u64,
    pub messages: u64,
    pub tool_calls: u64,
    /// Tool calls that name the session they spawned.
    pub spawn_links: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub total_tokens: i64,
}

/// The token counts of one turn, as last seen.
#[derive(Debug, Clone, Copy, Default)]
struct TurnTokens([i64; 6]);

/// One session's ids and lineage while its items are read.
#[derive(Debug, Default)]
struct Tally {
    figures: SessionFigures,
    turns: HashMap<String, TurnTokens>,
    messages: HashSet<String>,
    /// Tool call id -> whether it names a spawned session (the last version wins).
    tool_calls: HashMap<String, bool>,
}

/// Figures of every session of the items seen, keyed by (provider, session id).
#[derive(Debug, Default)]
pub struct FigureTally {
    sessions: BTreeMap<(String, String), Tally>,
}

impl FigureTally {
    /// Adds items (whole or partial: repeats are counted once, the last version wins).
    pub fn add(&mut self, items: &[ImportSessionItem]) {
        for item in items {
            let provider = item.source_provider.trim();
            let session = item.source_session_id.trim();
            if provider.is_empty() || session.is_empty() {
                continue;
            }
            let t = self
                .sessions
                .entry((provider.to_owned(), session.to_owned()))
                .or_default();
            let s = &item.session;
            t.figures.is_subagent |= s.is_subagent;
            keep_non_blank(
                &mut t.figures.parent_session_id,
                s.parent_source_session_id.as_deref(),
            );
            keep_non_blank(
                &mut t.figures.spawn_tool_call_id,
                s.spawn_tool_call_id.as_deref(),
            );
            for turn in &item.turns {
                let id = turn.source_turn_id.trim();
                if id.is_empty() {
                    continue;
                }
                let c = |v: Option<i64>| v.unwrap_or(0).max(0);
                t.turns.insert(
                    id.to_owned(),
                    TurnTokens([
                        c(turn.input_tokens),
                        c(turn.output_tokens),
                        c(turn.cached_input_tokens),
                        c(turn.cache_write_tokens),
                        c(turn.reasoning_tokens),
                        c(turn.total_tokens),
                    ]),
                );
            }
            for m in &item.messages {
                let id = m.source_message_id.trim();
                if !id.is_empty() {
                    t.messages.insert(id.to_owned());
                }
            }
            for call in &item.tool_calls {
                let id = call.source_tool_call_id.trim();
                if !id.is_empty() {
                    let spawns = call
                        .spawned_source_session_id
                        .as_deref()
                        .is_some_and(|s| !s.trim().is_empty());
                    t.tool_calls.insert(id.to_owned(), spawns);
                }
            }
        }
    }

    /// The figures, ordered by provider and session id.
    pub fn finish(self) -> Vec<SessionFigures> {
        self.sessions
            .into_iter()
            .map(|((provider, session_id), t)| {
                let mut f = t.figures;
                f.provider = provider;
                f.session_id = session_id;
                // The service gives a session without turns its synthetic root turn.
                f.turns = (t.turns.len() as u64).max(1);
                f.messages = t.messages.len() as u64;
                f.tool_calls = t.tool_calls.len() as u64;
                f.spawn_links = t.tool_calls.values().filter(|s| **s).count() as u64;
                let mut sums = [0i64; 6];
                for tokens in t.turns.values() {
                    for (sum, v) in sums.iter_mut().zip(tokens.0) {
                        *sum = sum.saturating_add(v);
                    }
                }
                [
                    f.input_tokens,
                    f.output_tokens,
                    f.cached_input_tokens,
                    f.cache_write_tokens,
                    f.reasoning_tokens,
                    f.total_tokens,
                ] = sums;
                f
            })
            .collect()
    }
}

fn keep_non_blank(slot: &mut Option<String>, value: Option<&str>) {
    if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
        *slot = Some(v.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Message, ToolCall, Turn};

    fn item(session: &str, turns: &[(&str, i64)], messages: &[&str]) -> ImportSessionItem {
        ImportSessionItem {
            source_provider: "codex".into(),
            source_session_id: session.into(),
            turns: turns
                .iter()
                .map(|(id, tokens)| Turn {
                    source_turn_id: (*id).into(),
                    total_tokens: Some(*tokens),
                    input_tokens: Some(-3),
                    ..Default::default()
                })
                .collect(),
            messages: messages
                .iter()
                .map(|id| Message {
                    source_message_id: (*id).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn repeats_count_once_and_the_last_version_of_a_turn_counts() {
        let mut tally = FigureTally::default();
        let mut first = item("s", &[("t1", 10), ("t2", 5)], &["m1", "m2", " "]);
        first.tool_calls = vec![ToolCall {
            source_tool_call_id: "c1".into(),
            spawned_source_session_id: Some("child".into()),
            ..Default::default()
        }];
        tally.add(&[first]);
        // A partial item: t2 grew, one new message, the call again.
        let mut partial = item("s", &[("t2", 8)], &["m2", "m3"]);
        partial.tool_calls = vec![ToolCall {
            source_tool_call_id: "c1".into(),
            spawned_source_session_id: Some("child".into()),
            ..Default::default()
        }];
        tally.add(&[partial, item("empty", &[], &[])]);
        let figures = tally.finish();
        assert_eq!(figures.len(), 2);
        let empty = &figures[0];
        assert_eq!((empty.session_id.as_str(), empty.turns), ("empty", 1));
        let s = &figures[1];
        assert_eq!(
            (s.turns, s.messages, s.tool_calls, s.spawn_links),
            (2, 3, 1, 1)
        );
        assert_eq!((s.total_tokens, s.input_tokens), (18, 0));
    }
}
