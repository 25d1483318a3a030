//! The benchmark harness behind `nex-bench` (TARGETS.md): a deterministic corpus generator of
//! worker frame streams, the raw SQLite insert loop that serves as the in-run baseline, and the
//! scenarios that time the pipeline against it.
//!
//! Layout:
//! - `rng`: a small deterministic generator (SplitMix64), so a seed always gives the same bytes.
//! - `corpus`: Claude Code-like sessions as import items and as the frame stream a worker
//!   would emit (batches, chunked large sessions, progress, cursors).
//! - `raw`: the baseline: the same rows inserted by a minimal prepared-statement loop.
//! - `replay`: the `replay` scenario: pipeline vs baseline, median/min/max of the ratio.
//! - `files`, `codex_files`: the standard corpus as Claude Code session FILES, plus Codex
//!   rollouts (input of the worker benches).
//! - `procs`: `aix | nex import replay -` spawned as two processes; reports and peak RSS.
//! - `backfill`: the `backfill` (P1, P3) and `rebackfill` (P4) scenarios.
//! - `big`: the `big-session` scenario (P8): one huge session, peak RSS against its bound.
//! - `tail`: the `tail-latency` (P5) and `tail-scaling` (P6) scenarios.
//! - `search`: the `search` scenario (issue 13): the index's cost to the import and to the
//!   ledger's size, and the latency of 100 fixed queries.
//! - `tail_turn`: the `tail-long-turn` scenario (issue 12): one tool call appended to open turns
//!   of growing size.
//! - `fuzz`: the bad-input harness (R3): valid and bad frames, every outcome checked.
//! - `stores`: the `stores` scenario: generated Cursor and OpenCode databases, backfill,
//!   rebackfill and tail latency of the polled sources.
//! - `worker_cli`: the command line of those scenarios, flattened into `nex-bench`.
//! - `proctree`: CPU time, resident sets and peaks of a process tree, from `/proc`.
//! - `home`: `nex` in a throwaway `NEX_HOME` whose only source is a corpus; `nex daemon` there.
//! - `idle`: the `idle` scenario (P7): CPU of `nex daemon` + its tail worker over a quiet window.
//! - `peer`: the `peer` scenario (P2): claude-code-to-sqlite (installed into a venv) vs NEX.
//! - `peer_idle_cli`: the command line of those two, flattened into `nex-bench`.
//! - `usage`: the `usage` scenario (issue 13): `nex usage --by day` over a ledger of the
//!   standard corpus.
//! - `replica`: the `replica` scenario: M ledgers replicating into one PostgreSQL at once.
//! - `pg`: a private PostgreSQL server (initdb in a temp dir) and replica-vs-ledger comparison.

pub mod backfill;
pub mod big;
pub mod codex_files;
pub mod corpus;
pub mod files;
pub mod floor;
pub mod fuzz;
pub mod home;
pub mod idle;
pub mod peer;
pub mod peer_idle_cli;
pub mod pg;
pub mod procs;
pub mod proctree;
pub mod raw;
pub mod replay;
pub mod replica;
pub mod rng;
pub mod search;
pub mod stores;
pub mod tail;
pub mod tail_turn;
pub mod usage;
pub mod worker_cli;

/// Median, min and max of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for an empty set. The median of an even count is the mean of the middle two.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// [`Spread::of`], with NaN for an empty set (printed as such: no figure is invented).
    pub fn of_or_nan(values: &[f64]) -> Self {
        Self::of(values).unwrap_or(Self {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        })
    }
}

/// `a[i] / b[i]` for each run measured on both sides.
pub fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_sets() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Some(Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            })
        );
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of(&[]), None);
    }
}
