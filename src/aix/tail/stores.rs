//! The tail's stores (Cursor, OpenCode databases): polled, not read by offset; when a dirty
//! store is due, and the follow-up poll after a notified one (the module doc of `tail`).

use std::time::Instant;

use super::Tail;
use crate::aix::error::WorkerError;
use crate::aix::stores::{OutputFailed, StoreRun, open_stores};

/// A store followed by the tail.
pub(super) struct TrackedStore {
    pub(super) run: StoreRun,
    /// When the first change not yet polled was announced.
    pub(super) dirty: Option<Instant>,
    /// A notification (not a reconcile) announced it: poll even if the stamp did not move, and
    /// poll once more after [`SETTLE`] (see there).
    pub(super) notified: bool,
    /// The follow-up poll of a notified poll, when due.
    pub(super) settle_at: Option<Instant>,
    pub(super) last_poll: Option<Instant>,
    /// How long the last poll took: the next one waits at least [`POLL_COST_FACTOR`] times as
    /// long, so a large database written continuously costs a bounded share of a core.
    pub(super) last_cost: std::time::Duration,
}

/// A store is polled at most once per this many times its last poll's duration (and never more
/// often than `max_debounce`): a poll of 150 ms waits 600 ms, about 20 % of one core while the
/// agent writes, and nothing while it is idle.
const POLL_COST_FACTOR: u32 = 4;

/// A poll that a notification triggered is followed by one more poll this long after it (or a
/// period, when longer). The notification comes when the agent writes its WAL frames, but the
/// commit becomes visible to readers only once SQLite publishes it in the `-shm` index (after
/// an fsync under `synchronous=FULL`), which nothing notifies: a poll in between sees the old
/// rows, and without a follow-up the agent's last write would wait for the next change.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

impl Tail<'_, '_> {
    /// Opens the stores of the options not followed yet (a database that appeared since the
    /// start: e.g. an agent installed while the tail runs); new ones are polled at once.
    pub(super) fn open_new_stores(&mut self) {
        let now = Instant::now();
        for store in open_stores(self.options) {
            if self.stores.iter().any(|s| {
                s.run.location() == store.location() && s.run.store().provider() == store.provider()
            }) {
                continue;
            }
            self.stores.push(TrackedStore {
                run: StoreRun::new(store, self.store_cursors),
                dirty: Some(now),
                notified: false,
                settle_at: None,
                last_poll: None,
                last_cost: std::time::Duration::ZERO,
            });
        }
    }

    /// When a dirty store is polled: at once when it was not polled within its period, else
    /// once that has passed (a database written continuously is read at most once per period).
    /// The period is `max_debounce`, or [`POLL_COST_FACTOR`] times the last poll's duration
    /// when that is longer.
    fn store_due(&self, s: &TrackedStore) -> Option<Instant> {
        let period = self.store_period(s);
        let dirty = s.dirty.map(|dirty| match s.last_poll {
            Some(last) => dirty.max(last + period),
            None => dirty,
        });
        dirty.into_iter().chain(s.settle_at).min()
    }

    fn store_period(&self, s: &TrackedStore) -> std::time::Duration {
        self.options
            .max_debounce
            .max(s.last_cost * POLL_COST_FACTOR)
    }

    pub(super) fn next_store_due(&self) -> Option<Instant> {
        self.stores.iter().filter_map(|s| self.store_due(s)).min()
    }

    /// Polls every store whose debounce expired; `true` when any was polled.
    pub(super) fn poll_due_stores(&mut self, now: Instant) -> Result<bool, WorkerError> {
        let due: Vec<usize> = (0..self.stores.len())
            .filter(|&i| self.store_due(&self.stores[i]).is_some_and(|t| t <= now))
            .collect();
        if due.is_empty() {
            return Ok(false);
        }
        for i in due {
            let period = self.store_period(&self.stores[i]);
            let store = &mut self.stores[i];
            // A settle poll is forced like the notified one it follows; a poll for a new
            // change schedules its own settle poll (replacing one still pending).
            let settling = store.settle_at.take().is_some();
            let notified = std::mem::take(&mut store.notified);
            let changed = store.dirty.take().is_some();
            let started = Instant::now();
            store.last_poll = Some(started);
            let polled = store
                .run
                .poll(
                    false,
                    notified || settling,
                    &self.options.mappings,
                    self.emitter,
                    &mut self.counters,
                )
                .map_err(|OutputFailed(e)| WorkerError::Output(e))?;
            if polled {
                store.last_cost = started.elapsed();
            }
            if notified && changed {
                store.settle_at = Some(Instant::now() + period.max(SETTLE));
            }
        }
        self.emitter.flush().map_err(WorkerError::Output)?;
        self.report_problems()?;
        Ok(true)
    }
}
