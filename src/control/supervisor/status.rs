//! The supervisor's answers about itself: the status snapshot, run and tail views, job views.

use tokio::time::Instant;

use super::{HostMode, Supervisor};
use crate::control::error::ControlError;
use crate::control::health::{JobView, RunStatus, StatusReport, TailStatus};
use crate::control::jobs::{self, JobRecord};
use crate::control::store::now_ms;

impl Supervisor {
    pub(super) fn status(&self) -> StatusReport {
        let jobs = self
            .jobs
            .values()
            .map(|j| self.view_of(j.record.clone()))
            .collect();
        let s = &self.deps.settings;
        StatusReport {
            mode: match self.mode {
                HostMode::Daemon => "daemon",
                HostMode::InProcess => "in_process",
            }
            .to_owned(),
            pid: std::process::id(),
            started_at: self.started_at,
            import_enabled: s.import_enabled,
            persona: s.persona.clone(),
            ledger: s.paths.ledger.display().to_string(),
            tail: self.tail_status(),
            jobs,
            rejects: self.rejects.clone(),
        }
    }

    pub(super) fn run_status(&self, run_id: &str) -> Option<RunStatus> {
        self.runs.get(run_id).map(|r| {
            let mut st = r.status.clone();
            if let Some(newest) = st.newest_event_at {
                st.lag_ms = Some((now_ms() - newest).max(0));
            }
            st
        })
    }

    pub(super) fn tail_status(&self) -> TailStatus {
        let now = Instant::now();
        TailStatus {
            state: self.tail.state,
            restarts: self.tail.tracker.restarts,
            next_restart_in_ms: self
                .tail
                .next_at
                .map(|at| at.saturating_duration_since(now).as_millis() as u64),
            last_error: self.tail.last_error.clone(),
            run: self.tail.run_id.as_deref().and_then(|r| self.run_status(r)),
        }
    }

    pub(super) fn view_of(&self, record: JobRecord) -> JobView {
        let active = self.jobs.get(&record.id);
        let run = active
            .and_then(|j| j.run_id.as_deref())
            .and_then(|r| self.run_status(r));
        let next_retry_in_ms = active
            .and_then(|j| j.next_at)
            .map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64);
        let record = match active {
            Some(j) => j.record.clone(),
            None => record,
        };
        JobView {
            job: record,
            run,
            next_retry_in_ms,
        }
    }

    pub(super) async fn job_view(&self, id: String) -> Result<JobView, ControlError> {
        let record = self.store.call(move |c| jobs::get(c, &id)).await?;
        Ok(self.view_of(record))
    }
}
