//! The stages of the import pipeline, one file each, and the data that flows between them.
//!
//! ```text
//! source (Line) -> decode (Frame) -> assemble (FrameOp) -> validate (ValidOp)
//!   -> sink (FrameOutcome) -> [telemetry] -> metrics -> [inserted taps] -> [audit]
//! ```
//!
//! Each stage is domain logic only; the builder ([`crate::pipeline::PipelineBuilder`]) adds
//! spans, counters and reject routing.

pub mod assemble;
pub mod audit;
pub mod decode;
pub mod metrics;
pub mod prepare;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod validate;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::pipeline::{FrameMeta, RejectCode};
use crate::protocol::{
    ChunkRequest, ChunkResponse, HealthStatus, ImportRequest, ImportResponse, RunError, RunProgress,
};

/// One line read by the source (without its newline).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub text: String,
    pub meta: FrameMeta,
}

/// A decoded worker frame of this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub body: crate::protocol::WorkerFrame,
    pub meta: FrameMeta,
}

/// What the sink does with one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Apply an import request (`import::import`) and store its cursors.
    Import(ImportRequest),
    /// Stage a chunk part (`import::chunk`), importing the upload when it completes.
    Chunk(ChunkRequest),
    /// No ledger write: reported in order after the preceding frames committed.
    Report(Report),
}

/// Frames that carry no ledger work.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Progress(RunProgress),
    Complete(RunProgress),
    Error(RunError),
    Health(HealthStatus),
}

/// An op with the frame it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameOp {
    pub op: Op,
    pub meta: FrameMeta,
}

/// An op that passed the request-level checks. Only the validator makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidOp(pub(crate) FrameOp);

impl ValidOp {
    pub fn get(&self) -> &FrameOp {
        &self.0
    }

    pub fn into_inner(self) -> FrameOp {
        self.0
    }
}

/// The final outcome of one frame, reported only after the transaction holding it committed
/// (or, for a reject, once it is known that nothing of it will be written).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameOutcome {
    pub meta: FrameMeta,
    pub result: Outcome,
    /// The batch whose commit made this outcome true (`None` for frames without ledger work
    /// rejected before the sink).
    pub batch: Option<BatchStamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Imported {
        response: ImportResponse,
        cursors_stored: u64,
    },
    Chunk {
        response: ChunkResponse,
        cursors_stored: u64,
    },
    Reported(Report),
    Rejected(RejectCode),
}

/// Identifies the committed transaction of an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStamp {
    /// Per-run batch number, from 1.
    pub batch: u64,
    /// Batch handed to the writer -> committed.
    pub commit_latency: Duration,
    pub committed_at: Instant,
    /// The same moment as wall-clock epoch milliseconds (health: "last commit at").
    pub committed_at_ms: i64,
}

/// The run's id, shared by the stages: set once, by the decoder from the first frame (or up
/// front when the run was started with a known id).
#[derive(Debug, Clone, Default)]
pub struct RunIdCell(Arc<OnceLock<String>>);

impl RunIdCell {
    pub fn new(known: Option<String>) -> Self {
        let cell = OnceLock::new();
        if let Some(id) = known {
            // A fresh cell: this first `set` cannot fail.
            let _ = cell.set(id);
        }
        Self(Arc::new(cell))
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Sets the id if none is set; returns the id in force.
    pub fn get_or_set(&self, id: &str) -> &str {
        self.0.get_or_init(|| id.to_owned())
    }
}
