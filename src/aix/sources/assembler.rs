//! The in-memory half of a partial item: the turns a parser still holds, which of them changed
//! since the last `take_items`, and the tool calls that may still be joined to a result.
//!
//! Memory stays O(open turn + unresolved tool calls): after a take, every turn but the open one
//! is dropped, and so is every tool call of a dropped turn that already has its result.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::protocol::{Message, ToolCall, Turn};

/// One held turn with its messages and the ids of the tool calls it started, plus the
/// provider's own per-turn bookkeeping `X` (token accumulators, duplicate detection, …).
#[derive(Debug, Default)]
pub(crate) struct HeldTurn<X> {
    pub turn: Turn,
    pub messages: Vec<Message>,
    pub tool_ids: Vec<String>,
    /// Byte offset of the turn's first line.
    pub offset: u64,
    pub extra: X,
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

    /// Forgets what changed (lines fed with `emit == false`) and drops closed turns.
    pub fn discard_changes(&mut self) {
        self.touched.clear();
        self.touched_tools.clear();
        self.header_dirty = false;
        self.gc();
    }

    /// Every touched turn plus the open one, complete, and every touched tool call; then drops
    /// closed turns. `None` while the item has no turn (an item without turns would make the
    /// ledger invent a root turn that a later item could not remove).
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
        for ordinal in &ordinals {
            let Some(held) = self.turns.get(ordinal) else {
                continue;
            };
            out.turns.push(held.turn.clone());
            out.messages.extend(held.messages.iter().cloned());
            for id in &held.tool_ids {
                if let Some((_, call)) = self.tools.get(id) {
                    out.tool_calls.push(call.clone());
                    emitted_tools.insert(id.clone());
                }
            }
        }
        for id in std::mem::take(&mut self.touched_tools) {
            if emitted_tools.contains(&id) {
                continue;
            }
            if let Some((_, call)) = self.tools.get(&id) {
                out.tool_calls.push(call.clone());
            }
        }
        self.header_dirty = false;
        self.gc();
        Some(out)
    }

    /// Drops every turn that is neither open nor touched, with its resolved tool calls.
    fn gc(&mut self) {
        let keep: BTreeSet<u64> = self.touched.iter().copied().chain(self.open).collect();
        self.turns.retain(|ordinal, _| keep.contains(ordinal));
        let touched_tools = &self.touched_tools;
        self.tools.retain(|id, (ordinal, call)| {
            keep.contains(ordinal)
                || touched_tools.contains(id)
                || call.status.as_deref() == Some(STATUS_PENDING)
        });
    }
}

pub(crate) const STATUS_PENDING: &str = "pending";
pub(crate) const STATUS_COMPLETED: &str = "completed";
pub(crate) const STATUS_FAILED: &str = "failed";
