//! Audit tap: records a run's start in `nexus.db.import_runs` (seed Security Considerations 4)
//! through the trail's repository ([`crate::ledger::runs`]).
//!
//! A pure tap: it passes every outcome through unchanged, counts nothing (the metrics tap
//! tallies the run) and decides nothing. The builder inserts it at the outcome seam
//! (`PipelineConfig.audit`). The run's end is recorded once it is classified, by whoever
//! classifies it (`run_lines` for an unsupervised run, the control plane for a supervised one).
//!
//! The start is written on a blocking thread when the run's id is known up front; a run
//! started without one gets its row with its end. A failure to write the start is logged and
//! does not stop the run: the end's upsert creates the row.

use futures::StreamExt;
use futures::stream;

use crate::ledger::runs::{self, AuditConfig};
use crate::pipeline::{Flow, Flowing, PipelineError, StreamStage};
use crate::protocol::Code;

use super::{FrameOutcome, RunIdCell};

pub struct AuditStage {
    config: AuditConfig,
    run_id: RunIdCell,
    started_at_ms: i64,
}

impl AuditStage {
    /// Records the start of the run `run_id` names, as started at `started_at_ms`.
    pub fn new(config: AuditConfig, run_id: RunIdCell, started_at_ms: i64) -> Self {
        Self {
            config,
            run_id,
            started_at_ms,
        }
    }

    /// Records the start when the run's id is already known.
    async fn start(self) {
        let Some(run_id) = self.run_id.get().map(str::to_owned) else {
            return;
        };
        let (config, at) = (self.config, self.started_at_ms);
        let written =
            tokio::task::spawn_blocking(move || runs::record_start(&config, &run_id, at)).await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!(
                error_code = Code::LedgerWriteFailed.as_str(),
                "audit row of a starting run not written"
            );
        }
    }
}

impl StreamStage<FrameOutcome, FrameOutcome> for AuditStage {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn apply(self: Box<Self>, input: Flow<FrameOutcome>) -> Flow<FrameOutcome> {
        stream::once(self.start())
            .filter_map(|()| async { None::<Result<Flowing<FrameOutcome>, PipelineError>> })
            .chain(input)
            .boxed()
    }
}
