//! The per-run streaming import pipeline: the stage traits, the typed [`PipelineBuilder`] that
//! instruments every stage, batching, the ledger writer thread, bus events and the run report.
//!
//! A pipeline is one future: stages are composed as streams, so backpressure is pull-based
//! (nothing is read from the input while the sink is not pulling) and cancellation is applied
//! at the source only ([`crate::stages::source`]); everything downstream drains. The single
//! task boundary is the bounded channel in front of the ledger writer thread ([`writer`]), the
//! one place that owns a `rusqlite::Connection`.
//!
//! Layout:
//! - `stage`: the [`Stage`] and [`StreamStage`] traits and the [`Emit`] buffer.
//! - `builder`: [`PipelineBuilder`] (`.stage`, `.option_stage`, `.stream_stage`, `.taps`) and
//!   the per-stage instrumentation (span, in/out/reject counters).
//! - `batch`: [`BatchPolicy`] and the size-or-time batching of the sink.
//! - `writer`: the ledger writer thread and its handle; `apply`: one batch in one transaction.
//! - `events`: the bus and its [`ImportEvent`]s (the one vocabulary of `nex import watch`).
//! - `report`: run counters, the [`RunReport`] and the one typed end of a run ([`StreamEnd`]
//!   classified into a [`RunEnding`]).
//! - `run`: [`PipelineConfig`] and [`run_pipeline`], the entry point of the daemon and the CLI.

mod apply;
pub mod batch;
pub mod builder;
pub mod events;
pub mod report;
pub mod run;
pub mod stage;
pub mod writer;

use std::borrow::Cow;
use std::time::Instant;

use futures::stream::BoxStream;

use crate::protocol::Code;

pub use batch::BatchPolicy;
pub use builder::{PipelineBuilder, StageCounters, StageSnapshot};
pub use events::{Bus, CommittedCounters, ImportEvent};
pub use report::{FinalOutcome, RunCounters, RunEnding, RunReport, StopFacts, StreamEnd};
pub use run::{OutcomeTaps, PipelineConfig, run_lines, run_pipeline, run_tallied};
pub use stage::{Emit, Stage, StreamStage};
pub use writer::{LedgerHandle, LedgerWriter};

/// What flows between two stages: an item for the next stage, or a frame already rejected
/// upstream, travelling in order so that its outcome is reported in input order.
#[derive(Debug)]
pub enum Flowing<T> {
    Item(T),
    Reject(Reject),
}

/// The stream between two stages. An `Err` is fatal and ends the run (a read failure of the
/// input, a ledger failure); per-frame problems are [`Reject`]s, which are data.
pub type Flow<T> = BoxStream<'static, Result<Flowing<T>, PipelineError>>;

/// Longest code kept in reports and events.
pub const MAX_CODE_LEN: usize = 64;

/// A stable snake_case reject code: a transport/pipeline [`Code`] or an import service code
/// (some of which carry a suffix, e.g. `chunk_encoding_unsupported:utf-8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RejectCode(Cow<'static, str>);

impl RejectCode {
    /// A code produced by the import service (`ImportError::code()`) or sent by a worker.
    ///
    /// Codes become metric labels, event fields and report keys, and some carry a value from
    /// the frame (`chunk_encoding_unsupported:<enc>`): anything outside `[A-Za-z0-9_:+.-]` is
    /// replaced by `_` and the code is cut to [`MAX_CODE_LEN`] bytes, so a hostile frame cannot
    /// smuggle content or unbounded text into them.
    pub fn service(code: impl Into<Cow<'static, str>>) -> Self {
        let code = code.into();
        let clean = |c: char| c.is_ascii_alphanumeric() || "_:+.-".contains(c);
        if code.len() <= MAX_CODE_LEN && code.chars().all(clean) && !code.is_empty() {
            return Self(code);
        }
        let mut out: String = code
            .chars()
            .map(|c| if clean(c) { c } else { '_' })
            .take(MAX_CODE_LEN)
            .collect();
        if out.is_empty() {
            out.push_str(Code::WorkerProtocolViolation.as_str());
        }
        Self(Cow::Owned(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Code> for RejectCode {
    fn from(code: Code) -> Self {
        Self(Cow::Borrowed(code.as_str()))
    }
}

impl PartialEq<Code> for RejectCode {
    fn eq(&self, other: &Code) -> bool {
        self.0 == other.as_str()
    }
}

impl PartialEq<&str> for RejectCode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl serde::Serialize for RejectCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl std::fmt::Display for RejectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a frame came from, carried by everything derived from it so that its outcome can be
/// reported (seq, type, size, latency) without its content.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameMeta {
    /// The envelope's seq, once decoded.
    pub seq: Option<u64>,
    /// The frame type, once decoded (`import.batch`, ...).
    pub kind: Option<&'static str>,
    /// Bytes of the line, newline included.
    pub bytes: usize,
    /// When the source read the line (commit latency is measured from here).
    pub read_at: Instant,
    /// A seq anomaly noticed by the decoder: counted and logged, never a reject.
    pub seq_note: Option<SeqNote>,
    /// The newest `session.updatedAtMs` among an `import.batch`'s items (set by the sink; a
    /// time, not content), for the run's lag once committed.
    pub newest_event_at_ms: Option<i64>,
}

impl FrameMeta {
    pub fn new(bytes: usize) -> Self {
        Self {
            seq: None,
            kind: None,
            bytes,
            read_at: Instant::now(),
            seq_note: None,
            newest_event_at_ms: None,
        }
    }
}

/// A gap or repeat in a run's `seq` counter (PROTOCOL.md "Envelope").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNote {
    /// Frames were skipped: `seq` jumped past `last + 1`.
    Gap,
    /// `seq` did not increase.
    Repeat,
}

impl SeqNote {
    pub fn code(self) -> Code {
        match self {
            SeqNote::Gap => Code::FrameSeqGap,
            SeqNote::Repeat => Code::FrameSeqRepeat,
        }
    }
}

/// A frame that will not be applied, with its code. Never holds payload content.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub code: RejectCode,
    pub meta: FrameMeta,
}

impl Reject {
    pub fn new(code: impl Into<RejectCode>, meta: FrameMeta) -> Self {
        Self {
            code: code.into(),
            meta,
        }
    }
}

/// Why a run ended early. Per-frame problems are never errors (see [`Reject`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Reading the input failed (not a codec error: those are rejects).
    #[error("reading the frame input failed")]
    Io(#[source] std::io::Error),
    /// The ledger writer could not apply a batch; nothing of that batch was reported.
    #[error("ledger write failed")]
    Ledger(#[source] writer::LedgerError),
    /// The ledger writer thread is gone (it panicked or was shut down).
    #[error("ledger writer stopped")]
    WriterGone,
    /// The audit trail could not be written.
    #[error("audit trail write failed")]
    Audit(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stage failed for a reason that is not a frame's fault.
    #[error("stage `{stage}` failed")]
    Stage {
        stage: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl PipelineError {
    /// The stable code recorded for the failed run.
    pub fn code(&self) -> Code {
        match self {
            // The worker's stdout (or the replayed file) broke under us.
            PipelineError::Io(_) => Code::WorkerExited,
            PipelineError::Ledger(e) => e.code(),
            PipelineError::WriterGone | PipelineError::Audit(_) | PipelineError::Stage { .. } => {
                Code::LedgerWriteFailed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_are_sanitised_and_bounded() {
        assert_eq!(
            RejectCode::service("items_required").as_str(),
            "items_required"
        );
        assert_eq!(
            RejectCode::service("chunk_encoding_unsupported:utf-8").as_str(),
            "chunk_encoding_unsupported:utf-8"
        );
        let hostile = format!(
            "chunk_encoding_unsupported:my password is {}",
            "x".repeat(100)
        );
        let code = RejectCode::service(hostile);
        assert_eq!(code.as_str().len(), MAX_CODE_LEN);
        assert!(
            code.as_str()
                .starts_with("chunk_encoding_unsupported:my_password_is_")
        );
        assert_eq!(
            RejectCode::service("").as_str(),
            "worker_protocol_violation"
        );
    }
}
