//! The supervisor's reactions: run updates into live status and job stats, run ends into
//! restarts, retries and job transitions, timers into restarts, and the final shutdown.

use tokio::time::Instant;

use super::{ABORT_WAIT, RunKind, Supervisor, panicked};
use crate::control::health::{HealthState, RunPhase, TailState};
use crate::control::jobs::{self, JobRecord, JobStatus};
use crate::control::policy::RestartDecision;
use crate::control::run::RunUpdate;
use crate::control::store::now_ms;
use crate::pipeline::{FinalOutcome, ImportEvent, RunEnding};
use crate::protocol::Code;

impl Supervisor {
    pub(super) async fn on_update(&mut self, run_id: &str, update: RunUpdate) {
        let policy = self.deps.settings.restart.clone();
        let stats_every = self.deps.settings.timings.stats_every;
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        let st = &mut run.status;
        let mut committed = false;
        match update {
            RunUpdate::Spawned { pid } => {
                st.pid = Some(pid);
                let event = ImportEvent::RunStarted {
                    run_id: Some(run_id.to_owned()),
                    mode: Some(if run.kind == RunKind::Tail {
                        "tail"
                    } else {
                        "backfill"
                    }),
                    job_id: st.job_id.clone(),
                    pid: Some(pid),
                };
                let _ = self.bus.send(event);
            }
            RunUpdate::Phase(p) => {
                // Stopping is final for a run's phase.
                if st.phase != RunPhase::Stopping {
                    st.phase = p;
                }
            }
            RunUpdate::Activity { at } => st.last_frame_at = Some(at),
            RunUpdate::Health {
                state,
                connected,
                worker_lag_ms,
                at,
            } => {
                st.health = state;
                st.connected = connected;
                st.last_health_at = Some(at);
                if st.newest_event_at.is_none() {
                    st.lag_ms = worker_lag_ms;
                }
                if run.kind == RunKind::Tail {
                    self.tail.tracker.observe_health(
                        &policy,
                        state == HealthState::Healthy,
                        Instant::now(),
                    );
                }
            }
            RunUpdate::Progress(p) => {
                st.counters.note_worker(&p);
                committed = true;
            }
            RunUpdate::Committed {
                counters,
                newest_event_at,
                at,
            } => {
                let (total, emitted) = (st.counters.total, st.counters.emitted);
                st.counters = counters;
                st.counters.total = st.counters.total.or(total);
                st.counters.emitted = st.counters.emitted.or(emitted);
                st.last_commit_at = Some(at);
                if newest_event_at.is_some() {
                    st.newest_event_at = newest_event_at.max(st.newest_event_at);
                }
                committed = true;
            }
            // The run's pipeline published `import.frame.rejected` on the bus.
            RunUpdate::Rejected { code, .. } => {
                *st.rejects.entry(code.clone()).or_default() += 1;
                *self.rejects.entry(code).or_default() += 1;
            }
        }
        if !committed {
            return;
        }
        // `import.run.progress` is the run's pipeline's to publish.
        let now = Instant::now();
        if let RunKind::Job(job_id) = &run.kind
            && let Some(job) = self.jobs.get_mut(job_id)
        {
            let mut total = job.base.clone();
            total.absorb(&run.status.counters);
            job.record.stats.counters = total;
            if job
                .last_stats_write
                .is_none_or(|t| now.duration_since(t) >= stats_every)
            {
                job.last_stats_write = Some(now);
                let (id, stats) = (job_id.clone(), job.record.stats.clone());
                self.store_detached("job_stats", move |c| jobs::set_stats(c, &id, &stats));
            }
        }
    }

    pub(super) async fn on_run_end(&mut self, run_id: String, result: RunEnding) {
        let Some(run) = self.runs.remove(&run_id) else {
            return;
        };
        let mut result = result;
        // A panicked task reports no counters: keep the last ones seen.
        if result.failed_with(Code::InternalPanic) {
            result.counters = run.status.counters.clone();
        }
        self.publish(result.event(Some(run_id.clone())));
        match run.kind {
            RunKind::Tail => self.on_tail_end(&run_id, &result),
            RunKind::Job(job_id) => self.on_job_run_end(&job_id, result).await,
        }
    }

    fn on_tail_end(&mut self, run_id: &str, result: &RunEnding) {
        if self.tail.run_id.as_deref() != Some(run_id) {
            return;
        }
        self.tail.run_id = None;
        if let Some(code) = &result.error_code {
            self.tail.last_error = Some(code.as_str().to_owned());
        }
        if self.shutdown.is_cancelled() {
            self.tail.state = TailState::Stopped;
            return;
        }
        if self.tail.restart_pending {
            self.tail.restart_pending = false;
            self.start_tail(false);
            return;
        }
        if self.tail.state == TailState::Stopped || self.tail.once {
            self.tail.state = TailState::Stopped;
            return;
        }
        // The tail ended without being asked to: restart per the policy, whatever the outcome.
        let policy = self.deps.settings.restart.clone();
        match self.tail.tracker.on_failure(&policy, Instant::now()) {
            RestartDecision::After { restart, delay } => {
                self.tail.state = TailState::Backoff;
                self.tail.next_at = Some(Instant::now() + delay);
                tracing::warn!(
                    restart,
                    delay_ms = delay.as_millis() as u64,
                    error_code = result.error_code.as_ref().map(|c| c.as_str()),
                    "tail restart scheduled"
                );
                self.publish(ImportEvent::RestartScheduled {
                    target: "tail".into(),
                    restart,
                    delay_ms: delay.as_millis() as u64,
                });
            }
            RestartDecision::GiveUp => {
                self.tail.state = TailState::Error;
                let code = result
                    .error_code
                    .as_ref()
                    .map_or(Code::WorkerExited.as_str(), |c| c.as_str())
                    .to_owned();
                tracing::error!(restarts = self.tail.tracker.restarts, error_code = %code,
                    "tail gave up; waiting for `nex import restart`");
                self.publish(ImportEvent::TailError {
                    restarts: self.tail.tracker.restarts,
                    error_code: code,
                });
            }
        }
    }

    async fn on_job_run_end(&mut self, job_id: &str, result: RunEnding) {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        job.run_id = None;
        job.base.absorb(&result.counters);
        job.record.stats.counters = job.base.clone();
        let retry = result.outcome == FinalOutcome::Failed
            && result.retryable
            && !job.cancel_requested
            && !self.shutdown.is_cancelled();
        if retry {
            let policy = self.deps.settings.job_retry.clone();
            if let RestartDecision::After { restart, delay } =
                job.tracker.on_failure(&policy, Instant::now())
            {
                job.next_at = Some(Instant::now() + delay);
                tracing::warn!(
                    job_id,
                    restart,
                    delay_ms = delay.as_millis() as u64,
                    error_code = result.error_code.as_ref().map(|c| c.as_str()),
                    "job run retry scheduled"
                );
                let _ = self.bus.send(ImportEvent::RestartScheduled {
                    target: job_id.to_owned(),
                    restart,
                    delay_ms: delay.as_millis() as u64,
                });
                let (id, stats) = (job_id.to_owned(), job.record.stats.clone());
                self.store_detached("job_stats", move |c| jobs::set_stats(c, &id, &stats));
                return;
            }
        }
        self.finish_job(job_id, &result).await;
    }

    /// Moves an active job to its terminal state after its last run and forgets it.
    pub(super) async fn finish_job(&mut self, job_id: &str, result: &RunEnding) -> JobRecord {
        let Some(job) = self.jobs.remove(job_id) else {
            return self.jobs_fallback(job_id);
        };
        let (to, error): (JobStatus, Option<(String, String)>) = match result.outcome {
            _ if job.cancel_requested => (JobStatus::Cancelled, None),
            FinalOutcome::Completed => (JobStatus::Completed, None),
            FinalOutcome::Cancelled if self.shutdown.is_cancelled() => (
                JobStatus::Failed,
                Some((
                    Code::DaemonShutdown.as_str().to_owned(),
                    "the daemon shut down while the job was running".to_owned(),
                )),
            ),
            FinalOutcome::Cancelled => (JobStatus::Cancelled, None),
            // Killed at the shutdown deadline: interrupted like any shutdown, retried at the
            // next start (the run's own row keeps `shutdown_timeout`).
            FinalOutcome::Failed
                if self.shutdown.is_cancelled() && result.failed_with(Code::ShutdownTimeout) =>
            {
                (
                    JobStatus::Failed,
                    Some((
                        Code::DaemonShutdown.as_str().to_owned(),
                        "the daemon shut down while the job was running".to_owned(),
                    )),
                )
            }
            FinalOutcome::Failed => (
                JobStatus::Failed,
                Some((
                    result
                        .error_code
                        .as_ref()
                        .map_or(Code::WorkerExited.as_str(), |c| c.as_str())
                        .to_owned(),
                    result.error_message.clone().unwrap_or_default(),
                )),
            ),
        };
        let from = job.record.status;
        let id = job_id.to_owned();
        let stats = job.record.stats.clone();
        let now = now_ms();
        let done = self
            .store
            .call(move |c| {
                jobs::set_stats(c, &id, &stats)?;
                let err = error.as_ref().map(|(c, m)| (c.as_str(), m.as_str()));
                jobs::transition(c, &id, to, err, now)
            })
            .await;
        match done {
            Ok(record) => {
                self.publish_job(&record, from);
                record
            }
            Err(e) => {
                tracing::error!(job_id, error_code = %e.code(), error = %e, "job end not recorded");
                job.record
            }
        }
    }

    fn jobs_fallback(&self, job_id: &str) -> JobRecord {
        JobRecord {
            id: job_id.to_owned(),
            source: crate::protocol::SOURCE_AIX.to_owned(),
            mode: "backfill".to_owned(),
            status: JobStatus::Failed,
            requested_at: 0,
            started_at: None,
            completed_at: None,
            error_code: None,
            error_message: None,
            stats: Default::default(),
        }
    }

    pub(super) async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.tail.next_at.is_some_and(|at| at <= now) {
            self.tail.next_at = None;
            let once = self.tail.once;
            self.start_tail(once);
        }
        let due: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.next_at.is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.start_job_run(&id);
        }
    }

    /// Shutdown: stop every run, wait `shutdown_grace`, then kill stragglers.
    pub(super) async fn stop_all(&mut self) {
        // Refuse new commands; answered `shutting_down` by the handle.
        self.rx.close();
        self.shutdown.cancel();
        self.tail.next_at = None;
        for job in self.jobs.values_mut() {
            job.next_at = None;
        }
        let ids: Vec<String> = self.runs.keys().cloned().collect();
        for id in &ids {
            self.request_stop(id, "shutdown");
        }
        // Graceful until the last ABORT_WAIT of the grace, then killed: the whole shutdown
        // fits in `shutdown_grace`.
        let grace = self.deps.settings.timings.shutdown_grace;
        let abort_wait = ABORT_WAIT.min(grace / 2);
        let started = Instant::now();
        self.drain_until(started + grace - abort_wait).await;
        if !self.tasks.is_empty() {
            tracing::warn!(
                runs = self.tasks.len(),
                error_code = Code::ShutdownTimeout.as_str(),
                "shutdown grace expiring; killing workers"
            );
            self.abort_root.cancel();
            self.drain_until(started + grace).await;
        }
        if !self.tasks.is_empty() {
            self.tasks.abort_all();
            while let Some(joined) = self.tasks.join_next_with_id().await {
                let id = match &joined {
                    Ok((id, _)) => *id,
                    Err(e) => e.id(),
                };
                if let Some(run_id) = self.task_runs.remove(&id) {
                    let r = RunEnding::failed(
                        Code::ShutdownTimeout,
                        "aborted at the shutdown deadline",
                    );
                    self.on_run_end(run_id, r).await;
                }
            }
        }
        // Jobs between retries have no run: they end as interrupted too.
        let waiting: Vec<String> = self.jobs.keys().cloned().collect();
        for id in waiting {
            self.finish_job(&id, &RunEnding::cancelled()).await;
        }
        // Let detached store writes land before the store handle goes away.
        let _ = self.store.call(|_| Ok(())).await;
        tracing::info!("control plane stopped");
    }

    async fn drain_until(&mut self, deadline: Instant) {
        while !self.tasks.is_empty() {
            tokio::select! {
                joined = self.tasks.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let (id, result) = match joined {
                        Ok((id, r)) => (id, r),
                        Err(e) => (e.id(), panicked()),
                    };
                    if let Some(run_id) = self.task_runs.remove(&id) {
                        self.on_run_end(run_id, result).await;
                    }
                }
                Some((run_id, update)) = self.updates_rx.recv() => self.on_update(&run_id, update).await,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
}
