//! The supervisor's backfill jobs: enqueue (one active per source), adopt and start, cancel.

use super::{ActiveJob, RunKind, Supervisor};
use crate::control::error::ControlError;
use crate::control::jobs::{self, Enqueued, JobRecord, JobStats, JobStatus};
use crate::control::policy::RestartTracker;
use crate::control::store::now_ms;
use crate::pipeline::ImportEvent;
use crate::pipeline::RunEnding;
use crate::protocol::{RunMode, SOURCE_AIX};

impl Supervisor {
    pub(super) async fn enqueue(&mut self, stats: JobStats) -> Result<Enqueued, ControlError> {
        let now = now_ms();
        let enq = self
            .store
            .call(move |c| jobs::enqueue(c, SOURCE_AIX, stats, now))
            .await?;
        if enq.created {
            self.publish(ImportEvent::JobStateChanged {
                job_id: enq.job.id.clone(),
                from: None,
                to: JobStatus::Queued,
                error_code: None,
            });
            self.adopt_job(enq.job.clone());
            if let Some(job) = self.jobs.get(&enq.job.id) {
                return Ok(Enqueued {
                    job: job.record.clone(),
                    created: true,
                });
            }
        } else if let Some(job) = self.jobs.get(&enq.job.id) {
            return Ok(Enqueued {
                job: job.record.clone(),
                created: false,
            });
        }
        Ok(enq)
    }

    /// Takes charge of a queued job and starts its first run (queued -> running).
    pub(super) fn adopt_job(&mut self, record: JobRecord) {
        let id = record.id.clone();
        self.jobs.insert(
            id.clone(),
            ActiveJob {
                base: record.stats.counters.clone(),
                record,
                run_id: None,
                tracker: RestartTracker::default(),
                next_at: None,
                cancel_requested: false,
                last_stats_write: None,
            },
        );
        self.start_job_run(&id);
    }

    pub(super) fn start_job_run(&mut self, job_id: &str) {
        let Some(job) = self.jobs.get(job_id) else {
            return;
        };
        let full = job.record.stats.full;
        let was_queued = job.record.status == JobStatus::Queued;
        let options = self.options(RunMode::Backfill, full);
        let run_id = self.spawn_run(
            RunKind::Job(job_id.to_owned()),
            RunMode::Backfill,
            full,
            options,
            Some(job_id.to_owned()),
        );
        let now = now_ms();
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        job.run_id = Some(run_id.clone());
        job.next_at = None;
        job.record.stats.attempts += 1;
        job.record.stats.run_id = Some(run_id);
        let stats = job.record.stats.clone();
        let id = job_id.to_owned();
        if was_queued {
            job.record.status = JobStatus::Running;
            job.record.started_at = Some(now);
            self.publish(ImportEvent::JobStateChanged {
                job_id: id.clone(),
                from: Some(JobStatus::Queued),
                to: JobStatus::Running,
                error_code: None,
            });
            self.store_detached("job_running", move |c| {
                jobs::transition(c, &id, JobStatus::Running, None, now)?;
                jobs::set_stats(c, &id, &stats)
            });
        } else {
            self.store_detached("job_stats", move |c| jobs::set_stats(c, &id, &stats));
        }
    }

    pub(super) async fn cancel_job(&mut self, id: String) -> Result<JobRecord, ControlError> {
        let record = self.store.call(move |c| jobs::get(c, &id)).await?;
        let Some(job) = self.jobs.get_mut(&record.id) else {
            // Not ours: only a queued row can still be cancelled (terminal rows refuse).
            let now = now_ms();
            let rid = record.id.clone();
            let done = self
                .store
                .call(move |c| jobs::transition(c, &rid, JobStatus::Cancelled, None, now))
                .await?;
            self.publish_job(&done, record.status);
            return Ok(done);
        };
        job.cancel_requested = true;
        match job.run_id.clone() {
            Some(run_id) => {
                self.request_stop(&run_id, "cancelled");
                Ok(self.jobs[&record.id].record.clone())
            }
            None => {
                // Waiting for a retry: no run to stop.
                Ok(self.finish_job(&record.id, &RunEnding::cancelled()).await)
            }
        }
    }

    pub(super) fn publish_job(&self, job: &JobRecord, from: JobStatus) {
        self.publish(ImportEvent::JobStateChanged {
            job_id: job.id.clone(),
            from: Some(from),
            to: job.status,
            error_code: job.error_code.clone(),
        });
    }
}
