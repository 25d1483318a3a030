//! The in-process event bus of the import control plane (ARCHITECTURE.md "Bus events"): a
//! `tokio::sync::broadcast` of [`ImportEvent`]s. Events carry ids, codes and counters, never
//! payload content. A slow subscriber loses the oldest events (`Lagged`), never blocks a run.

use serde::Serialize;
use tokio::sync::broadcast;

use super::jobs::JobStatus;
use super::port::RunCounters;

/// One event. Serialised with its `type` (e.g. `"import.run.started"`) and snake_case fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ImportEvent {
    #[serde(rename = "import.run.started")]
    RunStarted {
        run_id: String,
        mode: &'static str,
        job_id: Option<String>,
        pid: u32,
    },
    #[serde(rename = "import.run.progress")]
    RunProgress {
        run_id: String,
        counters: RunCounters,
    },
    /// The run ended without failure: `outcome` is `completed` or `cancelled`.
    #[serde(rename = "import.run.completed")]
    RunCompleted {
        run_id: String,
        outcome: &'static str,
        counters: RunCounters,
    },
    #[serde(rename = "import.run.failed")]
    RunFailed {
        run_id: String,
        error_code: String,
        retryable: bool,
        counters: RunCounters,
    },
    /// The tail (or a job's run) will be restarted after `delay_ms`; `restart` counts from 1.
    #[serde(rename = "import.run.restart_scheduled")]
    RestartScheduled {
        target: String,
        restart: u32,
        delay_ms: u64,
    },
    /// The tail gave up after too many restarts and waits for `nex import restart`.
    #[serde(rename = "import.tail.error")]
    TailError { restarts: u32, error_code: String },
    #[serde(rename = "import.job.state_changed")]
    JobStateChanged {
        job_id: String,
        from: Option<JobStatus>,
        to: JobStatus,
        error_code: Option<String>,
    },
    #[serde(rename = "import.frame.rejected")]
    FrameRejected {
        run_id: String,
        error_code: String,
        seq: Option<u64>,
    },
}

/// Sender side of the bus; cloning is cheap.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<ImportEvent>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new(1024)
    }
}

impl Bus {
    pub fn new(capacity: usize) -> Bus {
        Bus {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// Publishes `event`; having no subscriber is fine.
    pub fn publish(&self, event: ImportEvent) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ImportEvent> {
        self.tx.subscribe()
    }
}
