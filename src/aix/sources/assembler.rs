//! The in-memory half of a partial item: the turns a parser still holds, which of them changed
//! since the last `take`, what of each was already sent, and the tool calls that may still be
//! joined to a result.
//!
//! Memory stays O(open turn + unresolved tool calls): after a take, every turn but the open one
//! is dropped, and so is every tool call of a dropped turn that already has its result.
//!
//! # Deltas (SOURCES.md "Tail")
//! A take sends each touched turn's row with its running aggregates (tokens, completion, response
//! message, model, and `toolCallCount`: the count of all its tool calls, item rule 14), but of
//! its messages and tool calls only those the take before did not send: messages pushed since,
//! tool calls started since, and tool calls changed since (`tool_mut`). Messages are never
//! changed once pushed (the parsers only push), so a take moves them out and the open turn
//! holds only the messages not sent yet. The cost of a take is O(what changed), whatever the
//! size of the open turn. Lines fed with `emit == false` (`discard_changes`) count as sent:
//! they are below a committed cursor.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::protocol::{Message, ToolCall, Turn};

/// One held turn with its messages not sent yet and the ids of the tool calls it started, plus
/// the provider's own per-turn bookkeeping `X` (token accumulators, duplicate detection, …).
#[derive(Debug, Default)]
pub(crate) struct HeldTurn<X> {
    pub turn: Turn,
    /// Messages pushed since the last take (a take moves them out: a message is never changed
    /// once pushed, so nothing needs them in memory after it is sent).
    pub messages: Vec<Message>,
    pub tool_ids: Vec<String>,
    /// Byte offset of the turn's first line.
    pub offset: u64,
    pub extra: X,
    /// `tool_ids[..sent_tools]` went out with an earlier take (their later changes are sent as
    /// touched tool calls).
    sent_tools: usize,
}

/// What one take produced for an item.
pub(crate) struct Taken {
    pub turns: Vec<Turn>,
    pub messages: Vec<Message>,
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Debug)]
pub(crate) struct Assembler<X> {
    turns: BTreeMap<u64, HeldTurn<X>>,
    next_ordinal: u64,
    open: Option<u64>,
    touched: BTreeSet<u64>,
    /// Tool calls by source id, with the ordinal of the turn that started them.
    tools: HashMap<String, (u64, ToolCall)>,
    touched_tools: BTreeSet<String>,
    /// Closed turns kept in memory (and re-sent whole when touched) because a later line can
    /// still change them; a provider pins and unpins them.
    pinned: BTreeSet<u64>,
    /// Set when a header field changed; cleared by a take.
    pub header_dirty: bool,
}

impl<X> Default for Assembler<X> {
    fn default() -> Self {
        Self {
            turns: BTreeMap::new(),
            next_ordinal: 0,
            open: None,
            touched: BTreeSet::new(),
            tools: HashMap::new(),
            touched_tools: BTreeSet::new(),
            pinned: BTreeSet::new(),
            header_dirty: false,
        }
    }
}

impl<X: Default> Assembler<X> {
    /// Opens a new turn (the previous open turn is closed) and returns its ordinal.
    pub fn open_turn(&mut self, turn: Turn, offset: u64) -> u64 {
        let ordinal = self.next_ordinal;
        self.next_ordinal += 1;
        self.turns.insert(
            ordinal,
            HeldTurn {
                turn,
                messages: Vec::new(),
                tool_ids: Vec::new(),
                offset,
                extra: X::default(),
                sent_tools: 0,
            },
        );
        self.open = Some(ordinal);
        self.touched.insert(ordinal);
        ordinal
    }

    /// The open turn, marked as touched.
    pub fn open_mut(&mut self) -> Option<&mut HeldTurn<X>> {
        let ordinal = self.open?;
        self.touched.insert(ordinal);
        self.turns.get_mut(&ordinal)
    }

    /// A held turn (the open one or a pinned one), marked as touched.
    pub fn held_mut(&mut self, ordinal: u64) -> Option<&mut HeldTurn<X>> {
        let held = self.turns.get_mut(&ordinal)?;
        self.touched.insert(ordinal);
        Some(held)
    }

    /// Keeps a turn in memory after it closes, until `unpin`.
    pub fn pin(&mut self, ordinal: u64) {
        self.pinned.insert(ordinal);
    }

    /// Lets a pinned turn go (dropped by the next take or discard once closed and sent).
    pub fn unpin(&mut self, ordinal: u64) {
        self.pinned.remove(&ordinal);
    }

    /// The open turn, read only.
    pub fn open_ref(&self) -> Option<&HeldTurn<X>> {
        self.turns.get(&self.open?)
    }

    pub fn open_ordinal(&self) -> Option<u64> {
        self.open
    }

    /// Byte offset of the open turn's first line.
    pub fn open_offset(&self) -> Option<u64> {
        self.open_ref().map(|t| t.offset)
    }

    /// Adds a tool call to the open turn; a call id seen before keeps its first occurrence.
    /// Returns false when there is no open turn or the id is known.
    pub fn add_tool(&mut self, call: ToolCall) -> bool {
        let Some(ordinal) = self.open else {
            return false;
        };
        if call.source_tool_call_id.is_empty() || self.tools.contains_key(&call.source_tool_call_id)
        {
            return false;
        }
        let id = call.source_tool_call_id.clone();
        if let Some(turn) = self.turns.get_mut(&ordinal) {
            turn.tool_ids.push(id.clone());
        }
        self.touched.insert(ordinal);
        self.tools.insert(id, (ordinal, call));
        true
    }

    /// A known tool call, marked as touched.
    pub fn tool_mut(&mut self, id: &str) -> Option<&mut ToolCall> {
        let (_, call) = self.tools.get_mut(id)?;
        self.touched_tools.insert(id.to_owned());
        Some(call)
    }

    pub fn tool_ref(&self, id: &str) -> Option<&ToolCall> {
        self.tools.get(id).map(|(_, c)| c)
    }

    pub fn has_turns(&self) -> bool {
        self.next_ordinal > 0
    }

    /// Whether a take would produce anything new.
    pub fn is_dirty(&self) -> bool {
        self.header_dirty || !self.touched.is_empty() || !self.touched_tools.is_empty()
    }

    /// Forgets what changed (lines fed with `emit == false`: below a committed cursor, so in
    /// the ledger already) and drops closed turns; what the held turns hold counts as sent.
    pub fn discard_changes(&mut self) {
        self.touched.clear();
        self.touched_tools.clear();
        self.header_dirty = false;
        self.gc();
        for held in self.turns.values_mut() {
            held.messages.clear();
            held.sent_tools = held.tool_ids.len();
        }
    }

    /// Every touched turn plus the open one, as deltas (module doc): each turn's row with its
    /// `toolCallCount`, its messages and tool calls not sent yet, and every touched tool call;
    /// then drops closed turns. `None` while the item has no turn (an item without turns would
    /// make the ledger invent a root turn that a later item could not remove).
    pub fn take(&mut self) -> Option<Taken> {
        if !self.is_dirty() || !self.has_turns() {
            return None;
        }
        let mut ordinals = std::mem::take(&mut self.touched);
        ordinals.extend(self.open);
        let mut out = Taken {
            turns: Vec::new(),
            messages: Vec::new(),
            tool_calls: Vec::new(),
        };
        let mut emitted_tools = BTreeSet::new();
        // Tool ids of the closed turns moved out: their resolved calls are let go below.
        let mut dropped_tools = Vec::new();
        // A turn that stays held (the open one, a pinned one) is copied; a closed one is moved
        // out, with the tool calls that are resolved (pending ones stay, to be joined to a later
        // result).
        for ordinal in &ordinals {
            let stays = self.open == Some(*ordinal) || self.pinned.contains(ordinal);
            let Some(held) = self.turns.get_mut(ordinal) else {
                continue;
            };
            let mut turn = held.turn.clone();
            turn.tool_call_count = Some(held.tool_ids.len() as i64);
            out.turns.push(turn);
            out.messages.append(&mut held.messages);
            let new_tools = held.tool_ids[held.sent_tools.min(held.tool_ids.len())..].to_vec();
            held.sent_tools = held.tool_ids.len();
            if !stays && let Some(h) = self.turns.remove(ordinal) {
                dropped_tools.extend(h.tool_ids);
            }
            for id in new_tools {
                if let Some(call) = self.take_tool(&id, stays) {
                    out.tool_calls.push(call);
                    emitted_tools.insert(id);
                }
            }
        }
        for id in std::mem::take(&mut self.touched_tools) {
            if emitted_tools.contains(&id) {
                continue;
            }
            let stays = self
                .tools
                .get(&id)
                .is_some_and(|(o, _)| self.open == Some(*o) || self.pinned.contains(o));
            if let Some(call) = self.take_tool(&id, stays) {
                out.tool_calls.push(call);
            }
        }
        self.drop_resolved(dropped_tools);
        self.header_dirty = false;
        self.gc();
        Some(out)
    }

    /// The call with `id` for an item: moved out when nothing needs it any more (its turn is
    /// not held and it has its result), else copied.
    fn take_tool(&mut self, id: &str, turn_stays: bool) -> Option<ToolCall> {
        let (_, call) = self.tools.get(id)?;
        if turn_stays || call.status.as_deref() == Some(STATUS_PENDING) {
            return Some(call.clone());
        }
        self.tools.remove(id).map(|(_, call)| call)
    }

    /// Drops every turn that is neither open, pinned nor touched, with its resolved tool calls.
    /// Costs O(held turns + tool calls of the dropped turns), not O(tool calls in memory).
    fn gc(&mut self) {
        let dropped: Vec<u64> = self
            .turns
            .keys()
            .filter(|o| {
                self.open != Some(**o) && !self.pinned.contains(o) && !self.touched.contains(o)
            })
            .copied()
            .collect();
        let mut tool_ids = Vec::new();
        for ordinal in dropped {
            if let Some(held) = self.turns.remove(&ordinal) {
                tool_ids.extend(held.tool_ids);
            }
        }
        self.drop_resolved(tool_ids);
    }

    /// Lets go of the calls among `ids` that have their result and are not touched (a touched
    /// one is still due in the next take).
    fn drop_resolved(&mut self, ids: Vec<String>) {
        for id in ids {
            let resolved = self
                .tools
                .get(&id)
                .is_some_and(|(_, c)| c.status.as_deref() != Some(STATUS_PENDING));
            if resolved && !self.touched_tools.contains(&id) {
                self.tools.remove(&id);
            }
        }
    }
}

pub(crate) const STATUS_PENDING: &str = "pending";
pub(crate) const STATUS_COMPLETED: &str = "completed";
pub(crate) const STATUS_FAILED: &str = "failed";

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(id: &str) -> Turn {
        Turn {
            source_turn_id: id.to_owned(),
            ..Turn::default()
        }
    }

    fn call(id: &str, status: &str) -> ToolCall {
        ToolCall {
            source_tool_call_id: id.to_owned(),
            status: Some(status.to_owned()),
            ..ToolCall::default()
        }
    }

    /// After a take only the open turn and unresolved calls stay in memory.
    #[test]
    fn take_keeps_the_open_turn_and_pending_calls_only() {
        let mut a: Assembler<()> = Assembler::default();
        a.open_turn(turn("t1"), 0);
        assert!(a.add_tool(call("done", STATUS_COMPLETED)));
        assert!(a.add_tool(call("waiting", STATUS_PENDING)));
        assert!(
            !a.add_tool(call("done", STATUS_PENDING)),
            "first occurrence wins"
        );
        a.open_turn(turn("t2"), 10);
        let taken = a.take().expect("something changed");
        assert_eq!(taken.turns.len(), 2);
        assert_eq!(taken.tool_calls.len(), 2);
        assert_eq!(a.turns.len(), 1);
        assert_eq!(a.open_offset(), Some(10));
        assert!(a.tool_ref("done").is_none());
        assert!(a.tool_ref("waiting").is_some());
        assert!(a.take().is_none(), "nothing changed since");
        // A late result re-sends the call alone, then frees it.
        if let Some(c) = a.tool_mut("waiting") {
            c.status = Some(STATUS_COMPLETED.to_owned());
        }
        let taken = a.take().expect("the call changed");
        assert_eq!(taken.turns.len(), 1, "the open turn rides along");
        assert_eq!(taken.tool_calls[0].source_tool_call_id, "waiting");
        assert!(a.tool_ref("waiting").is_none());
    }

    fn message(id: &str) -> Message {
        Message {
            source_message_id: id.to_owned(),
            ..Message::default()
        }
    }

    fn ids<T>(v: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
        v.iter().map(|x| id(x).to_owned()).collect()
    }

    /// Issue 12: an append to a long open turn sends the turn's row with its full tool call
    /// count, and only the messages and tool calls that are new or changed since the last take.
    #[test]
    fn an_open_turn_is_sent_as_deltas_with_its_full_tool_call_count() {
        let mut a: Assembler<()> = Assembler::default();
        a.open_turn(turn("t1"), 0);
        for i in 0..100 {
            a.open_mut()
                .unwrap()
                .messages
                .push(message(&format!("m{i}")));
            assert!(a.add_tool(call(&format!("c{i}"), STATUS_COMPLETED)));
        }
        assert!(a.add_tool(call("waiting", STATUS_PENDING)));
        let first = a.take().unwrap();
        assert_eq!(first.messages.len(), 100);
        assert_eq!(first.tool_calls.len(), 101);
        assert_eq!(first.turns[0].tool_call_count, Some(101));

        // One more call and its message; the pending call gets its result.
        a.open_mut().unwrap().messages.push(message("m100"));
        assert!(a.add_tool(call("c100", STATUS_PENDING)));
        a.tool_mut("waiting").unwrap().status = Some(STATUS_COMPLETED.to_owned());
        let delta = a.take().unwrap();
        assert_eq!(ids(&delta.turns, |t| &t.source_turn_id), ["t1"]);
        assert_eq!(delta.turns[0].tool_call_count, Some(102));
        assert_eq!(ids(&delta.messages, |m| &m.source_message_id), ["m100"]);
        let mut calls = ids(&delta.tool_calls, |c| &c.source_tool_call_id);
        calls.sort();
        assert_eq!(calls, ["c100", "waiting"]);

        // A line that changes nothing but the header: the turn row rides alone.
        a.header_dirty = true;
        let header = a.take().unwrap();
        assert_eq!(header.turns.len(), 1);
        assert!(header.messages.is_empty() && header.tool_calls.is_empty());

        // The turn closes: its last delta goes out, then only its pending call stays in memory.
        a.held_mut(0).unwrap().messages.push(message("m101"));
        a.open_turn(turn("t2"), 50);
        let closing = a.take().unwrap();
        assert_eq!(ids(&closing.turns, |t| &t.source_turn_id), ["t1", "t2"]);
        assert_eq!(ids(&closing.messages, |m| &m.source_message_id), ["m101"]);
        assert!(closing.tool_calls.is_empty());
        assert_eq!(a.turns.len(), 1);
        assert_eq!(ids_of_tools(&a), ["c100"]);
    }

    /// Lines fed without emit are below a committed cursor: a later take does not send them.
    #[test]
    fn discarded_lines_count_as_sent() {
        let mut a: Assembler<()> = Assembler::default();
        a.open_turn(turn("t1"), 0);
        a.open_mut().unwrap().messages.push(message("m0"));
        assert!(a.add_tool(call("c0", STATUS_COMPLETED)));
        a.discard_changes();
        a.open_mut().unwrap().messages.push(message("m1"));
        let taken = a.take().unwrap();
        assert_eq!(ids(&taken.messages, |m| &m.source_message_id), ["m1"]);
        assert!(taken.tool_calls.is_empty());
        assert_eq!(taken.turns[0].tool_call_count, Some(1));
    }

    fn ids_of_tools(a: &Assembler<()>) -> Vec<String> {
        let mut v: Vec<String> = a.tools.keys().cloned().collect();
        v.sort();
        v
    }

    #[test]
    fn no_item_without_a_turn() {
        let mut a: Assembler<()> = Assembler {
            header_dirty: true,
            ..Assembler::default()
        };
        assert!(a.take().is_none());
        assert!(a.is_dirty(), "the change waits for the first turn");
    }
}
