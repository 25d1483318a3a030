//! Per-turn bookkeeping of the Codex parser (visible-pair detection, the turn's token sum) and
//! token usage arithmetic.

use super::record::{Payload, TokenUsage};
use crate::protocol::Turn;

/// Token counts of one `TokenUsage` (cumulative or per call).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Totals {
    input: i64,
    cached: i64,
    /// Cache writes (`cache_write_input_tokens`, 0.15x; part of `input_tokens` as the cache
    /// reads are).
    cache_write: i64,
    output: i64,
    reasoning: i64,
    total: i64,
}

/// What one `token_count` event says: the thread's cumulative total and, when written, the
/// usage of the API call that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct TokenEvent {
    pub total: Totals,
    pub last: Option<Totals>,
}

impl TokenEvent {
    /// `None` when `info` is null (an event that carries only rate limits).
    pub fn of(p: &Payload<'_>) -> Option<Self> {
        let info = p.info.0.as_ref()?;
        let total = info.total_token_usage.0.as_ref().map(Totals::of);
        let last = info.last_token_usage.0.as_ref().map(Totals::of);
        Some(Self {
            total: total.or(last)?,
            last,
        })
    }
}

impl Totals {
    fn of(u: &TokenUsage) -> Self {
        Self {
            input: u.input_tokens.unwrap_or(0),
            cached: u.cached_input_tokens.unwrap_or(0),
            cache_write: u.cache_write_input_tokens.unwrap_or(0),
            output: u.output_tokens.unwrap_or(0),
            reasoning: u.reasoning_output_tokens.unwrap_or(0),
            total: u.total_tokens.unwrap_or(0),
        }
    }

    /// What this cumulative total adds to `prev` (for events without `last_token_usage`); the
    /// whole total when there is no previous one or a counter went down (a restart).
    pub fn delta_from(self, prev: Option<Self>) -> Self {
        let Some(p) = prev else {
            return self;
        };
        let d = Self {
            input: self.input - p.input,
            cached: self.cached - p.cached,
            cache_write: self.cache_write - p.cache_write,
            output: self.output - p.output,
            reasoning: self.reasoning - p.reasoning,
            total: self.total - p.total,
        };
        if [
            d.input,
            d.cached,
            d.cache_write,
            d.output,
            d.reasoning,
            d.total,
        ]
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
            cache_write: self.cache_write.saturating_add(o.cache_write),
            output: self.output.saturating_add(o.output),
            reasoning: self.reasoning.saturating_add(o.reasoning),
            total: self.total.saturating_add(o.total),
        }
    }

    /// The turn's token columns. Codex's `input_tokens` includes the cache reads
    /// (`cached_input_tokens`); the ledger's `input_tokens` is the uncached input, so the
    /// turn's cached sum is subtracted from its input sum (clamped at 0: a file whose cached
    /// count exceeds its input, never seen in real files, gives 0 rather than a negative).
    /// `total_tokens` is Codex's own (input + output, cache reads included). Cache writes
    /// (reported from 0.15x on) are in `input_tokens` too: they come off the uncached input as
    /// well and are the turn's `cache_write_tokens` (NULL when none were reported).
    pub fn write_to(self, t: &mut Turn) {
        t.input_tokens = Some(
            self.input
                .saturating_sub(self.cached)
                .saturating_sub(self.cache_write)
                .max(0),
        );
        t.cached_input_tokens = Some(self.cached);
        t.cache_write_tokens = (self.cache_write > 0).then_some(self.cache_write);
        t.output_tokens = Some(self.output);
        t.reasoning_tokens = Some(self.reasoning);
        t.total_tokens = Some(self.total);
    }
}

#[derive(Debug, Default)]
pub(super) struct CodexTurn {
    /// The Codex turn id (`task_started`/`turn_context` `turn_id`) this turn runs under, when
    /// one was written: later records with the same id stay in it.
    pub native_id: Option<String>,
    /// Assistant text, reasoning, a tool call or tokens were seen: a Codex turn id announced
    /// after that belongs to the next prompt, not to this turn.
    pub has_output: bool,
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
