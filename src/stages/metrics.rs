//! Metrics tap: folds committed frame outcomes into the run's [`RunCounters`] and publishes
//! bus events: `import.frame.rejected` per reject, `import.run.terminal` for a worker's
//! terminal frame, and `import.run.progress` at most once per `interval`.
//!
//! It sits after the sink, so every count it publishes is already committed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::pipeline::{
    Bus, Emit, ImportEvent, PipelineError, RunCounters, SeqNote, Stage, TerminalKind,
};
use crate::protocol::{ChunkStatus, ImportResponse};

use super::{FrameOutcome, Outcome, Report, RunIdCell};

/// Default minimum time between two progress events.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// The run's counters, shared between the tap (writer) and whoever builds the report.
///
/// A `std::sync::Mutex` because the critical sections are a few integer additions and are
/// never held across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct MetricsHandle(Arc<Mutex<RunCounters>>);

impl MetricsHandle {
    pub fn snapshot(&self) -> RunCounters {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, RunCounters> {
        // A panic while holding the lock can only come from an integer overflow bug; the
        // counters are still meaningful, so recover them.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct MetricsTap {
    counters: MetricsHandle,
    bus: Option<Bus>,
    run_id: RunIdCell,
    interval: Duration,
    last_progress: Option<Instant>,
    last_batch: Option<u64>,
}

impl MetricsTap {
    pub fn new(run_id: RunIdCell, bus: Option<Bus>, interval: Duration) -> (Self, MetricsHandle) {
        let counters = MetricsHandle::default();
        let tap = Self {
            counters: counters.clone(),
            bus,
            run_id,
            interval,
            last_progress: None,
            last_batch: None,
        };
        (tap, counters)
    }

    fn publish(&self, event: impl FnOnce(Option<String>) -> ImportEvent) {
        if let Some(bus) = &self.bus {
            // No subscriber is not an error: events are advisory.
            let _ = bus.send(event(self.run_id.get().map(str::to_owned)));
        }
    }

    fn add_import(c: &mut RunCounters, r: &ImportResponse) {
        c.imported += r.imported;
        c.upserted += r.upserted;
        c.skipped += r.skipped;
        c.failed += r.failed;
    }

    fn count(&mut self, outcome: &FrameOutcome) {
        let mut c = self.counters.lock();
        c.frames += 1;
        c.bytes += outcome.meta.bytes as u64;
        match outcome.meta.seq_note {
            Some(SeqNote::Gap) => c.seq_gaps += 1,
            Some(SeqNote::Repeat) => c.seq_repeats += 1,
            None => {}
        }
        if let Some(stamp) = outcome.batch
            && self.last_batch != Some(stamp.batch)
        {
            self.last_batch = Some(stamp.batch);
            let ms = stamp.commit_latency.as_millis() as u64;
            c.batches += 1;
            c.commit_ms_total += ms;
            c.commit_ms_max = c.commit_ms_max.max(ms);
        }
        match &outcome.result {
            Outcome::Imported {
                response,
                cursors_stored,
            } => {
                Self::add_import(&mut c, response);
                c.cursors_stored += cursors_stored;
            }
            Outcome::Chunk {
                response,
                cursors_stored,
            } => {
                c.chunks_staged += 1;
                if response.status == ChunkStatus::Completed {
                    c.uploads_completed += 1;
                }
                if let Some(import) = &response.import {
                    Self::add_import(&mut c, import);
                }
                c.cursors_stored += cursors_stored;
            }
            Outcome::Reported(Report::Progress(p) | Report::Complete(p)) => {
                c.total = p.total.or(c.total);
                c.emitted = p.emitted.or(c.emitted);
            }
            Outcome::Reported(Report::Error(_) | Report::Health(_)) => {}
            Outcome::Rejected(code) => {
                *c.rejected.entry(code.as_str().to_owned()).or_insert(0) += 1;
            }
        }
    }
}

impl Stage<FrameOutcome, FrameOutcome> for MetricsTap {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn process(
        &mut self,
        outcome: FrameOutcome,
        out: &mut Emit<FrameOutcome>,
    ) -> Result<(), PipelineError> {
        self.count(&outcome);
        let seq = outcome.meta.seq;
        match &outcome.result {
            Outcome::Rejected(code) => self.publish(|run_id| ImportEvent::FrameRejected {
                run_id,
                seq,
                code: code.as_str().to_owned(),
            }),
            Outcome::Reported(Report::Complete(_)) => {
                self.publish(|run_id| ImportEvent::RunTerminal {
                    run_id,
                    seq,
                    terminal: TerminalKind::Complete,
                })
            }
            Outcome::Reported(Report::Error(e)) => {
                self.publish(|run_id| ImportEvent::RunTerminal {
                    run_id,
                    seq,
                    terminal: TerminalKind::Error {
                        code: e.code.clone(),
                        retryable: e.retryable,
                    },
                })
            }
            _ => {}
        }
        let now = Instant::now();
        if self
            .last_progress
            .is_none_or(|last| now.duration_since(last) >= self.interval)
        {
            self.last_progress = Some(now);
            let counters = self.counters.snapshot();
            self.publish(|run_id| ImportEvent::RunProgress { run_id, counters });
        }
        out.push(outcome);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{FrameMeta, RejectCode};
    use crate::protocol::{Code, RunProgress};

    fn outcome(result: Outcome) -> FrameOutcome {
        FrameOutcome {
            meta: FrameMeta::new(10),
            result,
            batch: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn counts_and_throttles_progress() {
        let bus = crate::pipeline::events::bus(64);
        let mut rx = bus.subscribe();
        let (mut tap, handle) = MetricsTap::new(
            RunIdCell::new(Some("r".into())),
            Some(bus),
            DEFAULT_PROGRESS_INTERVAL,
        );
        let mut out = Emit::new();
        let reject = || outcome(Outcome::Rejected(RejectCode::from(Code::FrameJsonInvalid)));
        tap.process(reject(), &mut out).unwrap();
        tap.process(reject(), &mut out).unwrap();
        tokio::time::advance(Duration::from_millis(250)).await;
        let progress = RunProgress {
            total: Some(9),
            emitted: Some(3),
            ..Default::default()
        };
        tap.process(
            outcome(Outcome::Reported(Report::Progress(progress))),
            &mut out,
        )
        .unwrap();
        let c = handle.snapshot();
        assert_eq!(
            (c.frames, c.bytes, c.rejected_with("frame_json_invalid")),
            (3, 30, 2)
        );
        assert_eq!((c.total, c.emitted), (Some(9), Some(3)));
        let mut kinds = Vec::new();
        while let Ok(e) = rx.try_recv() {
            kinds.push(match e {
                ImportEvent::FrameRejected { .. } => "rejected",
                ImportEvent::RunProgress { .. } => "progress",
                _ => "other",
            });
        }
        // Two progress events: the first outcome, and one 250 ms later; not one per outcome.
        assert_eq!(kinds, ["rejected", "progress", "rejected", "progress"]);
        assert_eq!(out.items().len(), 3);
    }
}
