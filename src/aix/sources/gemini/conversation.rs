//! The conversation a Gemini log describes, as the ledger keeps it: every message ever written
//! (latest version by id, never dropped), the live history that rewinds and replacements act
//! on, and the turn each message belongs to, fixed when its id is first seen. Items are built
//! from this state (see `rows`), so a rewrite of any message re-sends its current rows.
//!
//! Memory: the whole conversation (every message's text, tool arguments and results) while the
//! parser lives; the tail drops idle files' parsers and rebuilds them from the cursor.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::record::{Kind, MessageRecord, Patch, Record};
use crate::aix::sources::ParseStats;
use crate::aix::sources::common::{count_skip, later};

/// One message as last written, with what was fixed when it was first seen.
#[derive(Debug)]
pub(super) struct Stored {
    pub rec: MessageRecord,
    /// Ordinal of its turn.
    pub turn: usize,
    /// Order of first appearance in the file (the message's `sequence`).
    pub seq: i64,
}

/// One turn: the message that opened it (its id is the turn's id) and every message that
/// joined it, in order of first appearance.
#[derive(Debug)]
pub(super) struct TurnSlot {
    pub id: String,
    pub parent: Option<String>,
    pub members: Vec<String>,
    /// Opened by a message that is no prompt (a notice before the first prompt, or after a
    /// rewind that cleared the history) and joined by no prompt yet: the next prompt joins it.
    awaits_prompt: bool,
    /// The ledger's head-rule time (completion, else start) as of the last refresh.
    time: i64,
}

/// Session metadata from the metadata record and `$set` patches (latest value of each field).
#[derive(Debug, Default)]
pub(super) struct Meta {
    /// The first `sessionId` seen; a later, different one is ignored (items of one file keep
    /// one session id).
    pub session_id: Option<String>,
    pub project_hash: Option<String>,
    pub start_time: Option<i64>,
    pub last_updated: Option<i64>,
    pub summary: Option<String>,
    pub directories: Option<Vec<String>>,
    pub kind: Option<String>,
}

/// The header values the ledger gives rows that lack their own: (model, created).
type HeaderKey = (Option<String>, Option<i64>);

#[derive(Debug, Default)]
pub(super) struct Conversation {
    pub meta: Meta,
    pub messages: HashMap<String, Stored>,
    pub turns: Vec<TurnSlot>,
    /// The live history (message ids in order) and its members.
    history: Vec<String>,
    in_history: HashSet<String>,
    /// While a `$set.messages` rebuilds the history: the head turn before the replacement.
    replacing_head: Option<usize>,
    /// Turns by (head-rule time, earliest ordinal first): the last entry is the anchor turn.
    by_time: BTreeSet<(i64, Reverse<usize>)>,
    /// The message that owns each tool call id (the first to carry it).
    pub tool_owner: HashMap<String, String>,
    /// Order of first appearance of each tool call id (the call's `sequence`).
    pub tool_seq: HashMap<String, i64>,
    next_seq: i64,
    next_tool_seq: i64,
    /// Subagent session id -> the tool call that ran it (the first to name it).
    pub spawns: BTreeMap<String, String>,
    touched: BTreeSet<usize>,
    /// Messages whose rows are new or changed since the last take, by id: of a turn that is
    /// not sent whole, a take sends only these (SOURCES.md "Tail": deltas).
    changed_messages: HashSet<String>,
    /// Tool calls whose rows are new or changed since the last take, by id.
    changed_tools: HashSet<String>,
    /// Turns whose ledger rows take a value from the session header (a turn without a model
    /// takes the session's; a message without a time takes the session's creation time).
    header_dependent: BTreeSet<usize>,
    /// The header values those rows took at the last take.
    emitted_header: Option<HeaderKey>,
    /// A header field or the fingerprint changed since the last take.
    pub header_dirty: bool,
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    /// Model of the latest message (highest sequence) that named one, with that sequence: a
    /// rewrite or replay of an older message does not move it back.
    model_at: Option<(i64, String)>,
}

impl Conversation {
    /// Applies one record.
    pub fn apply(&mut self, record: Record, stats: &mut ParseStats) {
        self.header_dirty = true;
        match record {
            Record::Rewind(target) => self.rewind(&target),
            Record::Message(m) => self.message(m, stats),
            Record::Patch(p) => self.patch(p, stats),
            Record::Unknown => count_skip(stats, "unknown"),
        }
    }

    /// Upserts a message: a known id keeps its turn and sequence and takes the new content (its
    /// turn is touched only when the content differs: a `$set.messages` rewriting a long
    /// history costs a re-send of what changed); a new id joins the history's head turn, or
    /// opens a turn when it is a prompt (parent: the head turn) or when there is no head turn.
    /// A prompt joins the head turn instead when that turn awaits its prompt (it holds only
    /// what came before the first prompt: the lines before a prompt are its turn). Either way
    /// it (re)enters the live history.
    fn message(&mut self, rec: MessageRecord, stats: &mut ParseStats) {
        if rec.kind == Kind::Other {
            // Kept in the history so that a rewind to it finds it; never imported (and a known
            // message does not turn into one).
            count_skip(stats, &format!("message/{}", rec.raw_type));
            self.enter_history(&rec.id);
            return;
        }
        if let Some(ts) = rec.ts {
            later(&mut self.max_ts, Some(ts));
            if self.min_ts.is_none_or(|m| ts < m) {
                self.min_ts = Some(ts);
            }
        }
        let id = rec.id.clone();
        let turn = match self.messages.get_mut(&id) {
            Some(stored) if stored.rec == rec => None,
            Some(stored) => {
                if message_row_changed(&stored.rec, &rec) {
                    self.changed_messages.insert(id.clone());
                }
                self.changed_tools
                    .extend(changed_calls(&stored.rec, &rec).map(str::to_owned));
                stored.rec = rec;
                Some(stored.turn)
            }
            None => {
                let head = self.head_turn();
                let prompt = rec.kind == Kind::Prompt;
                let awaiting = head.filter(|&t| self.turns.get(t).is_some_and(|s| s.awaits_prompt));
                let turn = match (prompt, head, awaiting) {
                    (false, Some(t), _) | (true, _, Some(t)) => t,
                    (true, _, None) | (false, None, _) => {
                        let parent = head.and_then(|t| self.turns.get(t)).map(|t| t.id.clone());
                        self.open_turn(id.clone(), parent, !prompt)
                    }
                };
                if let Some(slot) = self.turns.get_mut(turn) {
                    slot.members.push(id.clone());
                    slot.awaits_prompt &= !prompt;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.changed_messages.insert(id.clone());
                self.changed_tools
                    .extend(rec.tool_calls.iter().map(|c| c.id.clone()));
                self.messages.insert(id.clone(), Stored { rec, turn, seq });
                Some(turn)
            }
        };
        if let Some(turn) = turn {
            self.register_tools(&id, stats);
            self.touched.insert(turn);
            if let Some(s) = self.messages.get(&id)
                && let Some(model) = &s.rec.model
                && self.model_at.as_ref().is_none_or(|(seq, _)| s.seq >= *seq)
            {
                self.model_at = Some((s.seq, model.clone()));
            }
        }
        self.enter_history(&id);
    }

    /// The session's model: that of the latest message naming one.
    pub fn model(&self) -> Option<&String> {
        self.model_at.as_ref().map(|(_, m)| m)
    }

    /// Claims the tool call ids of a gemini message: the first message to carry an id owns
    /// it (a later message carrying it again does not get that call; counted).
    fn register_tools(&mut self, message_id: &str, stats: &mut ParseStats) {
        let Some(stored) = self.messages.get(message_id) else {
            return;
        };
        if stored.rec.kind != Kind::Gemini {
            return;
        }
        for call in &stored.rec.tool_calls {
            let owner = self
                .tool_owner
                .entry(call.id.clone())
                .or_insert_with(|| message_id.to_owned());
            if owner != message_id {
                count_skip(stats, "toolCall/duplicate_id");
                continue;
            }
            self.tool_seq.entry(call.id.clone()).or_insert_with(|| {
                self.next_tool_seq += 1;
                self.next_tool_seq - 1
            });
            if let Some(agent) = &call.agent_id {
                self.spawns
                    .entry(agent.clone())
                    .or_insert_with(|| call.id.clone());
            }
        }
    }

    /// `$rewindTo`: the history loses the target and everything after it (inclusive, as the
    /// CLI's `rewindTo` documents: "all messages from (and including) the specified ID onwards
    /// are removed"); an id not in the history clears it (as the CLI's loader does). Messages
    /// and turns stay: they are an abandoned branch.
    fn rewind(&mut self, target: &str) {
        match self.history.iter().position(|h| h == target) {
            Some(pos) => {
                for id in self.history.drain(pos..) {
                    self.in_history.remove(&id);
                }
            }
            None => {
                self.history.clear();
                self.in_history.clear();
            }
        }
    }

    fn patch(&mut self, p: Patch, stats: &mut ParseStats) {
        let m = &mut self.meta;
        if m.session_id.is_none() {
            m.session_id = p.session_id;
        }
        for (slot, value) in [
            (&mut m.project_hash, p.project_hash),
            (&mut m.summary, p.summary),
            (&mut m.kind, p.kind),
        ] {
            if value.is_some() {
                *slot = value;
            }
        }
        // A log whose metadata record is written again (Code Assist's `a2a-server` writes one
        // each time it resumes the chat, each with a new `startTime`) began at the earliest.
        if let Some(start) = p.start_time {
            m.start_time = Some(m.start_time.map_or(start, |t| t.min(start)));
        }
        if p.last_updated.is_some() {
            m.last_updated = p.last_updated;
        }
        if p.directories.is_some() {
            m.directories = p.directories;
        }
        for _ in 0..p.dropped_messages {
            count_skip(stats, "message/invalid");
        }
        if let Some(list) = p.messages {
            // The array is the new history: each element upserted in order; a new one joins
            // (or, a prompt, branches from) the element before it, the first one the head turn
            // of the history it replaces.
            self.replacing_head = self.head_turn();
            self.history.clear();
            self.in_history.clear();
            for rec in list {
                self.message(rec, stats);
            }
            self.replacing_head = None;
        }
    }

    fn enter_history(&mut self, id: &str) {
        if self.in_history.insert(id.to_owned()) {
            self.history.push(id.to_owned());
        }
    }

    /// The turn of the last imported message of the live history.
    fn head_turn(&self) -> Option<usize> {
        self.history
            .iter()
            .rev()
            .find_map(|id| self.messages.get(id).map(|s| s.turn))
            .or(self.replacing_head)
    }

    fn open_turn(&mut self, id: String, parent: Option<String>, awaits_prompt: bool) -> usize {
        let ordinal = self.turns.len();
        self.turns.push(TurnSlot {
            id,
            parent,
            members: Vec::new(),
            awaits_prompt,
            time: 0,
        });
        self.by_time.insert((0, Reverse(ordinal)));
        ordinal
    }

    /// The stored messages of a turn, in order of first appearance.
    pub fn members(&self, ordinal: usize) -> impl Iterator<Item = &Stored> {
        self.turns
            .get(ordinal)
            .into_iter()
            .flat_map(|t| t.members.iter())
            .filter_map(|id| self.messages.get(id))
    }

    /// `(started, completed)` of a turn: the first member timestamp, and the latest of its
    /// messages' and tool calls' timestamps.
    pub fn span(&self, ordinal: usize) -> (Option<i64>, Option<i64>) {
        let mut started = None;
        let mut completed = None;
        for s in self.members(ordinal) {
            if started.is_none() {
                started = s.rec.ts;
            }
            later(&mut completed, s.rec.ts);
            for call in &s.rec.tool_calls {
                later(&mut completed, call.ts);
            }
        }
        (started, completed)
    }

    /// The session's creation time: the earliest `startTime`, else the earliest message time.
    pub fn created(&self) -> Option<i64> {
        self.meta.start_time.or(self.min_ts)
    }

    fn header_key(&self) -> HeaderKey {
        (self.model().cloned(), self.created())
    }

    /// Re-reads the head-rule time and the header dependence of the touched turns.
    fn refresh_touched(&mut self) {
        for &ordinal in &self.touched {
            let mut has_model = false;
            let mut untimed = false;
            for s in self.members(ordinal) {
                has_model |= s.rec.kind == Kind::Gemini && s.rec.model.is_some();
                untimed |= s.rec.ts.is_none();
            }
            if has_model && !untimed {
                self.header_dependent.remove(&ordinal);
            } else {
                self.header_dependent.insert(ordinal);
            }
            let (started, completed) = self.span(ordinal);
            let time = completed.or(started).unwrap_or(0).max(0);
            let Some(slot) = self.turns.get_mut(ordinal) else {
                continue;
            };
            if slot.time != time {
                self.by_time.remove(&(slot.time, Reverse(ordinal)));
                self.by_time.insert((time, Reverse(ordinal)));
                slot.time = time;
            }
        }
    }

    /// What the next item holds: every turn touched since the last take, the anchor (the turn
    /// the ledger takes as the session's head: latest completion-or-start time, the earliest
    /// such turn on a tie), and, when the header's model or creation time changed, every turn
    /// whose rows take those from the header (sent whole: each of its rows takes the new
    /// value); ascending; with the messages and tool calls changed since the last take. `None`
    /// when nothing changed or there is no turn yet (the change waits for the first turn).
    pub fn take_changes(&mut self) -> Option<Changes> {
        if self.turns.is_empty() || (!self.header_dirty && self.touched.is_empty()) {
            return None;
        }
        self.refresh_touched();
        let mut ordinals = std::mem::take(&mut self.touched);
        let key = self.header_key();
        let mut whole = BTreeSet::new();
        if self.emitted_header.as_ref() != Some(&key) {
            whole.clone_from(&self.header_dependent);
            ordinals.extend(self.header_dependent.iter().copied());
            self.emitted_header = Some(key);
        }
        if let Some((_, Reverse(anchor))) = self.by_time.last() {
            ordinals.insert(*anchor);
        }
        self.header_dirty = false;
        Some(Changes {
            turns: ordinals.into_iter().collect(),
            whole,
            messages: std::mem::take(&mut self.changed_messages),
            tools: std::mem::take(&mut self.changed_tools),
        })
    }

    /// Forgets what changed (lines fed with `emit == false`), keeping the state.
    pub fn discard_changes(&mut self) {
        self.refresh_touched();
        self.touched.clear();
        self.changed_messages.clear();
        self.changed_tools.clear();
        self.header_dirty = false;
        // What the ledger holds was emitted with the header of these lines.
        self.emitted_header = Some(self.header_key());
    }
}

/// What one take sends (see [`Conversation::take_changes`]).
#[derive(Debug)]
pub(super) struct Changes {
    /// Ordinals of the turns whose rows go out, ascending.
    pub turns: Vec<usize>,
    /// Those sent whole (every message and tool call); the others carry only the changed ones
    /// below, with their `toolCallCount` (item rule 14).
    pub whole: BTreeSet<usize>,
    pub messages: HashSet<String>,
    pub tools: HashSet<String>,
}

impl Changes {
    /// Whether the item sends the row of message `id` of turn `ordinal`.
    pub fn sends_message(&self, ordinal: usize, id: &str) -> bool {
        self.whole.contains(&ordinal) || self.messages.contains(id)
    }

    /// Whether the item sends the row of tool call `id` of turn `ordinal`.
    pub fn sends_tool(&self, ordinal: usize, id: &str) -> bool {
        self.whole.contains(&ordinal) || self.tools.contains(id)
    }
}

/// Whether a rewrite of a message changes its own row (`rows::message`: its kind, type, time,
/// text, display text, thinking, model; tokens and tool calls are other rows').
fn message_row_changed(old: &MessageRecord, new: &MessageRecord) -> bool {
    old.kind != new.kind
        || old.raw_type != new.raw_type
        || old.ts != new.ts
        || old.content != new.content
        || old.display != new.display
        || old.thinking != new.thinking
        || old.model != new.model
}

/// The tool calls of `new` whose rows a rewrite of their message changes: new or changed calls,
/// or all of them when the message's kind or time changed (each call's row takes its message's
/// time). A message holds a few calls: the scan of `old` per call stays cheap.
fn changed_calls<'a>(
    old: &'a MessageRecord,
    new: &'a MessageRecord,
) -> impl Iterator<Item = &'a str> + 'a {
    let all = old.kind != new.kind || old.ts != new.ts;
    new.tool_calls
        .iter()
        .filter(move |c| all || !old.tool_calls.iter().any(|o| o == *c))
        .map(|c| c.id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feed(c: &mut Conversation, records: &[serde_json::Value]) {
        let mut stats = ParseStats::default();
        for r in records {
            c.apply(Record::from_value(r.clone()), &mut stats);
        }
    }

    fn turn_of(c: &Conversation, id: &str) -> String {
        c.turns[c.messages[id].turn].id.clone()
    }

    #[test]
    fn rewind_branches_the_next_prompt_from_the_turn_before_the_target() {
        let mut c = Conversation::default();
        feed(
            &mut c,
            &[
                json!({"id": "u1", "type": "user", "content": "a"}),
                json!({"id": "g1", "type": "gemini", "content": "b"}),
                json!({"id": "u2", "type": "user", "content": "c"}),
                json!({"id": "g2", "type": "gemini", "content": "d"}),
                json!({"$rewindTo": "u2"}),
                json!({"id": "u3", "type": "user", "content": "e"}),
                json!({"id": "g3", "type": "gemini", "content": "f"}),
            ],
        );
        let parents: Vec<_> = c.turns.iter().map(|t| t.parent.clone()).collect();
        assert_eq!(parents, vec![None, Some("u1".into()), Some("u1".into())]);
        assert_eq!(turn_of(&c, "g3"), "u3");
        assert_eq!(turn_of(&c, "g2"), "u2", "the rewound branch keeps its rows");
        assert_eq!(c.history, vec!["u1", "g1", "u3", "g3"]);
    }

    #[test]
    fn a_log_whose_metadata_record_is_written_again_keeps_its_earliest_start() {
        let header = |start: &str| {
            json!({"sessionId": "a2a-server", "projectHash": "p", "startTime": start,
                   "lastUpdated": start, "kind": "main"})
        };
        let mut c = Conversation::default();
        feed(
            &mut c,
            &[
                header("2026-08-06T18:10:18.922Z"),
                json!({"id": "u1", "type": "user", "timestamp": "2026-08-06T18:10:19.000Z",
                       "content": "a"}),
                header("2026-08-06T18:10:34.019Z"),
                header("2026-08-06T18:10:50.014Z"),
            ],
        );
        assert_eq!(c.created(), Some(1_786_039_818_922));
        assert_eq!(c.meta.last_updated, Some(1_786_039_850_014));
    }

    #[test]
    fn replacement_rebuilds_the_history_and_keeps_turns() {
        let mut c = Conversation::default();
        feed(
            &mut c,
            &[
                json!({"id": "u1", "type": "user", "content": "a"}),
                json!({"id": "g1", "type": "gemini", "content": "b"}),
                json!({"$set": {"messages": [
                    {"id": "s1", "type": "user", "content": "summary"},
                    {"id": "g1", "type": "gemini", "content": "b2"},
                    7
                ]}}),
                json!({"id": "g2", "type": "gemini", "content": "c"}),
            ],
        );
        assert_eq!(c.turns[1].parent.as_deref(), Some("u1"), "s1 branches");
        assert_eq!(turn_of(&c, "g1"), "u1");
        assert_eq!(c.messages["g1"].rec.content.as_deref(), Some("b2"));
        assert_eq!(turn_of(&c, "g2"), "u1", "joins the head of the new history");
        assert_eq!(c.history, vec!["s1", "g1", "g2"]);
    }
}
