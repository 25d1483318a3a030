//! Metrics tap: folds committed frame outcomes into the run's [`RunCounters`] and publishes
//! bus events: `import.frame.rejected` per reject, `import.run.terminal` for a worker's
//! terminal frame, and `import.run.progress` at most once per `interval`.
//!
//! It sits after the sink, so every count it publishes is already committed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::pipeline::{
    Bus, Emit, ImportEvent, PipelineError, RejectCode, RunCounters, SeqNote, Stage, StreamEnd,
};
use crate::protocol::{ChunkStatus, ImportResponse, RunError};

use super::{FrameOutcome, Outcome, Report, RunIdCell};

/// Default minimum time between two progress events.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Folds frame outcomes into [`RunCounters`] and remembers the worker's terminal frame: the
/// run's one tally.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub counters: RunCounters,
    /// [`StreamEnd::Complete`] or [`StreamEnd::WorkerError`], once the worker sent it.
    pub terminal: Option<StreamEnd>,
    last_batch: Option<u64>,
}

impl Tally {
    /// A replayed request wrote nothing: its items count as `replayed`, never again as what the
    /// earlier request did.
    fn add_import(c: &mut RunCounters, r: &ImportResponse) {
        if r.replayed {
            c.replayed += r.items();
            return;
        }
        c.imported += r.imported;
        c.upserted += r.upserted;
        c.skipped += r.skipped;
        c.failed += r.failed;
        c.retracted += r.retracted;
    }

    pub fn add(&mut self, outcome: &FrameOutcome) {
        let c = &mut self.counters;
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
            c.last_commit_at_ms = Some(stamp.committed_at_ms);
        }
        match &outcome.result {
            Outcome::Imported {
                response,
                cursors_stored,
            } => {
                c.requests += 1;
                c.newest_event_at_ms = c.newest_event_at_ms.max(outcome.meta.newest_event_at_ms);
                Self::add_import(c, response);
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
                    c.requests += 1;
                    Self::add_import(c, import);
                }
                c.cursors_stored += cursors_stored;
            }
            Outcome::Reported(Report::Progress(p)) => c.note_worker(p),
            Outcome::Reported(Report::Complete(p)) => {
                c.note_worker(p);
                self.terminal = Some(StreamEnd::Complete);
            }
            Outcome::Reported(Report::Error(e)) => self.terminal = Some(worker_error(e)),
            Outcome::Reported(Report::Health(_)) => {}
            Outcome::Rejected(code) => {
                *c.rejected.entry(code.as_str().to_owned()).or_insert(0) += 1;
            }
        }
    }
}

/// A worker's `run.error` as the end of its stream. The worker's code is untrusted text:
/// bounded and sanitised like ours.
fn worker_error(e: &RunError) -> StreamEnd {
    StreamEnd::WorkerError {
        code: RejectCode::service(e.code.clone()),
        message: e.message.clone(),
        retryable: e.retryable,
    }
}

/// The run's tally, shared between the tap (writer) and whoever reads the counters (the
/// report, a supervisor's tap placed after this one).
///
/// A `std::sync::Mutex` because the critical sections are a few integer additions and are
/// never held across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct MetricsHandle(Arc<Mutex<Tally>>);

impl MetricsHandle {
    pub fn snapshot(&self) -> RunCounters {
        self.lock().counters.clone()
    }

    pub fn terminal(&self) -> Option<StreamEnd> {
        self.lock().terminal.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        // A panic while holding the lock could only come from a bug in `Tally::add`; the
        // counters are still meaningful, so recover them.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct MetricsTap {
    tally: MetricsHandle,
    bus: Option<Bus>,
    run_id: RunIdCell,
    interval: Duration,
    last_progress: Option<Instant>,
}

impl MetricsTap {
    /// The tap that tallies into `tally`.
    pub fn new(
        run_id: RunIdCell,
        bus: Option<Bus>,
        interval: Duration,
        tally: MetricsHandle,
    ) -> Self {
        Self {
            tally,
            bus,
            run_id,
            interval,
            last_progress: None,
        }
    }

    fn publish(&self, event: impl FnOnce(Option<String>) -> ImportEvent) {
        if let Some(bus) = &self.bus {
            // No subscriber is not an error: events are advisory.
            let _ = bus.send(event(self.run_id.get().map(str::to_owned)));
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
        self.tally.lock().add(&outcome);
        let seq = outcome.meta.seq;
        match &outcome.result {
            Outcome::Rejected(code) => self.publish(|run_id| ImportEvent::FrameRejected {
                run_id,
                seq,
                error_code: code.as_str().to_owned(),
            }),
            Outcome::Reported(Report::Complete(_)) => {
                self.publish(|run_id| ImportEvent::RunTerminal {
                    run_id,
                    seq,
                    terminal: StreamEnd::Complete,
                })
            }
            Outcome::Reported(Report::Error(e)) => {
                self.publish(|run_id| ImportEvent::RunTerminal {
                    run_id,
                    seq,
                    terminal: worker_error(e),
                })
            }
            Outcome::Reported(Report::Health(h)) => {
                let lag_ms = h
                    .details
                    .as_ref()
                    .and_then(|d| d.get("lagMs"))
                    .and_then(serde_json::Value::as_u64);
                self.publish(|run_id| ImportEvent::WorkerHealth {
                    run_id,
                    seq,
                    connected: h.connected,
                    last_event_at_ms: h.last_event_at,
                    lag_ms,
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
            let counters = (&self.tally.snapshot()).into();
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
        let handle = MetricsHandle::default();
        let mut tap = MetricsTap::new(
            RunIdCell::new(Some("r".into())),
            Some(bus),
            DEFAULT_PROGRESS_INTERVAL,
            handle.clone(),
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
