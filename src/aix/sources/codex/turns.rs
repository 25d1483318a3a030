//! Per-turn bookkeeping of the Codex parser: what opened the turn, visible-pair detection and
//! token deltas.

use super::record::Payload;
use crate::protocol::Turn;

/// Cumulative or delta token counts (`TokenUsage`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Totals {
    input: i64,
    cached: i64,
    output: i64,
    reasoning: i64,
    total: i64,
}

impl Totals {
    /// `info.total_token_usage` of a `token_count` payload; `None` when `info` is null.
    pub fn from_token_count(p: &Payload<'_>) -> Option<Self> {
        let u = p.info.0.as_ref()?.total_token_usage.0.as_ref()?;
        Some(Self {
            input: u.input_tokens.unwrap_or(0),
            cached: u.cached_input_tokens.unwrap_or(0),
            output: u.output_tokens.unwrap_or(0),
            reasoning: u.reasoning_output_tokens.unwrap_or(0),
            total: u.total_tokens.unwrap_or(0),
        })
    }

    /// What this cumulative total adds to `prev`; the whole total when there is no previous
    /// one or a counter went down (a reset).
    pub fn delta_from(self, prev: Option<Self>) -> Self {
        let Some(p) = prev else {
            return self;
        };
        let d = Self {
            input: self.input - p.input,
            cached: self.cached - p.cached,
            output: self.output - p.output,
            reasoning: self.reasoning - p.reasoning,
            total: self.total - p.total,
        };
        if [d.input, d.cached, d.output, d.reasoning, d.total]
            .iter()
            .any(|x| *x < 0)
        {
            self
        } else {
            d
        }
    }

    pub fn is_zero(self) -> bool {
        self == Self::default()
    }

    pub fn plus(self, o: Self) -> Self {
        Self {
            input: self.input.saturating_add(o.input),
            cached: self.cached.saturating_add(o.cached),
            output: self.output.saturating_add(o.output),
            reasoning: self.reasoning.saturating_add(o.reasoning),
            total: self.total.saturating_add(o.total),
        }
    }

    pub fn write_to(self, t: &mut Turn) {
        t.input_tokens = Some(self.input);
        t.cached_input_tokens = Some(self.cached);
        t.output_tokens = Some(self.output);
        t.reasoning_tokens = Some(self.reasoning);
        t.total_tokens = Some(self.total);
    }
}

#[derive(Debug, Default)]
pub(super) struct CodexTurn {
    /// The turn id Codex wrote for this turn, when it did.
    pub native_id: Option<String>,
    pub has_context: bool,
    pub has_prompt: bool,
    /// Assistant text, reasoning or a tool call was seen.
    pub has_output: bool,
    /// A `compacted` record came after the turn's `turn_context` (Codex re-writes the context
    /// after compacting, inside the same turn).
    pub compacted_since_context: bool,
    /// Assistant texts still waiting for the other half of their visible pair, with the kind
    /// that gave them (`true` = `event_msg agent_message`).
    unpaired: Vec<(bool, String)>,
    pub tokens: Totals,
}

impl CodexTurn {
    /// True when `text` completes a visible pair (the other kind gave it already); otherwise
    /// remembers it as waiting for its pair.
    /// Texts compare without surrounding whitespace (the two halves are written separately).
    pub fn take_pair(&mut self, from_event: bool, text: &str) -> bool {
        let text = text.trim();
        if let Some(i) = self
            .unpaired
            .iter()
            .position(|(kind, t)| *kind != from_event && t == text)
        {
            self.unpaired.remove(i);
            return true;
        }
        self.unpaired.push((from_event, text.to_owned()));
        false
    }
}
