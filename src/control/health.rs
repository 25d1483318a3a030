//! Health of runs (seed "health operation", the adapter system's health states) and the status
//! snapshot `nex import status` prints. Everything here is plain data owned by the supervisor.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::Timings;
use super::jobs::JobRecord;
use crate::pipeline::CommittedCounters;
use crate::protocol::HealthStatus;

/// The adapter system's health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Answering, connected, not behind.
    Healthy,
    /// Answering and connected, but behind by more than `stale_after` (`details.lagMs`).
    Degraded,
    /// Answering with `connected: false`.
    Disconnected,
    /// No answer yet.
    Unknown,
}

impl HealthState {
    /// Classifies a `health.status` answer.
    pub fn classify(status: &HealthStatus, stale_after: Duration) -> HealthState {
        if !status.connected {
            return HealthState::Disconnected;
        }
        match worker_lag_ms(status) {
            Some(lag) if lag > stale_after.as_millis() as i64 => HealthState::Degraded,
            _ => HealthState::Healthy,
        }
    }

    /// Time until the next probe in this state: 60 s healthy, 15 s degraded, 10 s otherwise.
    pub fn probe_interval(self, t: &Timings) -> Duration {
        match self {
            HealthState::Healthy => t.probe_healthy,
            HealthState::Degraded => t.probe_degraded,
            HealthState::Disconnected | HealthState::Unknown => t.probe_disconnected,
        }
    }
}

/// `details.lagMs` of a `health.status`, when the worker reports it.
pub fn worker_lag_ms(status: &HealthStatus) -> Option<i64> {
    status.details.as_ref()?.get("lagMs")?.as_i64()
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// Spawned, `run.start` sent, no frame yet.
    Starting,
    Running,
    /// `run.stop` sent or a terminal frame read; draining.
    Stopping,
}

/// Live view of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    pub run_id: String,
    pub mode: String,
    pub job_id: Option<String>,
    pub pid: Option<u32>,
    pub phase: RunPhase,
    pub health: HealthState,
    /// The worker's `connected`, from its last `health.status`.
    pub connected: bool,
    pub started_at: i64,
    pub last_frame_at: Option<i64>,
    pub last_health_at: Option<i64>,
    pub last_commit_at: Option<i64>,
    /// Newest source event committed (epoch ms).
    pub newest_event_at: Option<i64>,
    /// Now minus `newest_event_at`, or the worker's `lagMs` when that is unknown.
    pub lag_ms: Option<i64>,
    pub counters: CommittedCounters,
    pub rejects: BTreeMap<String, u64>,
}

/// The tail's supervised state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TailState {
    /// Not requested (or stopped by an operator).
    Stopped,
    Running,
    /// Failed; restarts after `next_restart_in_ms`.
    Backoff,
    /// Gave up after `max_restarts`; waits for `nex import restart`.
    Error,
    /// Import orchestration is off (rollback switch).
    Disabled,
}

/// The tail's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailStatus {
    pub state: TailState,
    /// Restarts since the last reset (10 min healthy, or `nex import restart`).
    pub restarts: u32,
    pub next_restart_in_ms: Option<u64>,
    pub last_error: Option<String>,
    pub run: Option<RunStatus>,
}

/// A job with its live run, if one is running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    #[serde(flatten)]
    pub job: JobRecord,
    pub run: Option<RunStatus>,
    /// Set while a failed run waits for its retry.
    pub next_retry_in_ms: Option<u64>,
}

/// The whole control plane at one instant (`nex import status --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// `daemon` or `in_process`.
    pub mode: String,
    pub pid: u32,
    pub started_at: i64,
    pub import_enabled: bool,
    pub persona: String,
    pub ledger: String,
    pub tail: TailStatus,
    /// Active jobs (queued or running).
    pub jobs: Vec<JobView>,
    /// Rejects by code over every run since start.
    pub rejects: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classification_and_intervals_follow_the_adapter_system() {
        let t = Timings::default();
        let stale = t.stale_after;
        let st = |connected, details| HealthStatus {
            connected,
            last_event_at: None,
            details,
        };
        let healthy = HealthState::classify(&st(true, None), stale);
        assert_eq!(healthy, HealthState::Healthy);
        assert_eq!(healthy.probe_interval(&t), Duration::from_secs(60));
        let degraded = HealthState::classify(&st(true, Some(json!({"lagMs": 300_001}))), stale);
        assert_eq!(degraded, HealthState::Degraded);
        assert_eq!(degraded.probe_interval(&t), Duration::from_secs(15));
        let fresh = HealthState::classify(&st(true, Some(json!({"lagMs": 35}))), stale);
        assert_eq!(fresh, HealthState::Healthy);
        let down = HealthState::classify(&st(false, None), stale);
        assert_eq!(down, HealthState::Disconnected);
        assert_eq!(down.probe_interval(&t), Duration::from_secs(10));
        assert_eq!(
            HealthState::Unknown.probe_interval(&t),
            Duration::from_secs(10)
        );
    }
}
