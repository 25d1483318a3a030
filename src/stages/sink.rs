//! Batched ledger sink: groups ops by size or time ([`BatchPolicy`]), hands each batch to the
//! ledger writer thread (one transaction per batch), and yields every frame's outcome only
//! after the commit of the batch that holds it. Rejects and report frames travel in the same
//! batches, so outcomes leave in input order.
//!
//! Pure per-frame work (request hashes, decoding of completed chunk uploads) is done as frames
//! arrive, before batching ([`super::prepare`]), so that a batch is queued as soon as it is cut
//! and the writer thread (the pipeline's bottleneck) only does ledger work.
//!
//! # Backpressure
//! At most `in_flight` batches are submitted and not yet committed; while that many wait, the
//! sink pulls nothing. So at most `in_flight × max_ops + PREPARE_AHEAD` frames are past the
//! validator and not yet reported (the batches, and the frames being prepared): a ledger that does not commit stops the source after that many frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::import::ImportOptions;
use crate::pipeline::batch::batched_with;
use crate::pipeline::writer::{LedgerHandle, Pending, WriteBatch, WriteResult};
use crate::pipeline::{BatchPolicy, Flow, Flowing, FrameMeta, PipelineError, StreamStage};

use super::prepare::{Prepared, Preparer};
use super::{BatchStamp, FrameOutcome, Outcome, RunIdCell, ValidOp};

/// Default number of batches submitted and not yet committed.
pub const DEFAULT_IN_FLIGHT: usize = 2;

pub struct LedgerSink {
    ledger: LedgerHandle,
    policy: BatchPolicy,
    options: Arc<ImportOptions>,
    run_id: RunIdCell,
    in_flight: usize,
}

impl LedgerSink {
    pub fn new(
        ledger: LedgerHandle,
        policy: BatchPolicy,
        options: ImportOptions,
        run_id: RunIdCell,
    ) -> Self {
        Self {
            ledger,
            policy,
            options: Arc::new(options),
            run_id,
            in_flight: DEFAULT_IN_FLIGHT,
        }
    }

    /// Batches submitted and not yet committed (at least 1).
    pub fn with_in_flight(mut self, in_flight: usize) -> Self {
        self.in_flight = in_flight.max(1);
        self
    }
}

/// A frame of a batch: its outcome is known (reject, report) or awaits the next write result.
enum Entry {
    Ready(FrameMeta, Outcome),
    Awaiting(FrameMeta),
}

struct InFlight {
    number: u64,
    entries: Vec<Entry>,
    pending: Option<Pending>,
    submitted_at: Instant,
}

impl InFlight {
    async fn resolve(self) -> Result<Vec<FrameOutcome>, PipelineError> {
        let (mut results, stamp) = match self.pending {
            None => (Vec::new().into_iter(), None),
            Some(pending) => {
                let results = pending
                    .await
                    .map_err(|_| PipelineError::WriterGone)?
                    .map_err(PipelineError::Ledger)?;
                let now = Instant::now();
                let stamp = BatchStamp {
                    batch: self.number,
                    commit_latency: now.duration_since(self.submitted_at),
                    committed_at: now.into_std(),
                    committed_at_ms: crate::import::system_now_ms(),
                };
                (results.into_iter(), Some(stamp))
            }
        };
        let mut out = Vec::with_capacity(self.entries.len());
        for entry in self.entries {
            let (meta, result) = match entry {
                Entry::Ready(meta, result) => (meta, result),
                Entry::Awaiting(meta) => {
                    // The writer returns exactly one result per op, in order.
                    let result = match results.next().ok_or(PipelineError::WriterGone)? {
                        WriteResult::Import {
                            response,
                            cursors_stored,
                        } => Outcome::Imported {
                            response,
                            cursors_stored,
                        },
                        WriteResult::Chunk {
                            response,
                            cursors_stored,
                        } => Outcome::Chunk {
                            response,
                            cursors_stored,
                        },
                        WriteResult::Rejected(code) => Outcome::Rejected(code),
                    };
                    (meta, result)
                }
            };
            out.push(FrameOutcome {
                meta,
                result,
                batch: stamp,
            });
        }
        Ok(out)
    }
}

impl StreamStage<ValidOp, FrameOutcome> for LedgerSink {
    fn name(&self) -> &'static str {
        "sink"
    }

    fn apply(self: Box<Self>, input: Flow<ValidOp>) -> Flow<FrameOutcome> {
        let LedgerSink {
            ledger,
            policy,
            options,
            run_id,
            in_flight,
        } = *self;
        let mut number = 0u64;
        let mut preparer = Preparer::new(options.max_inflated_bytes);
        // Each frame is admitted in order (part ids, uploads in progress); the rest of its
        // preparation depends on it alone and runs while the frames after it are read and
        // admitted: up to `PREPARE_AHEAD` frames at once, in order. Frames of more than
        // `INLINE_PREPARE_BYTES` are prepared on blocking threads, so that two large frames
        // are prepared on two cores and this task still cuts and submits the batch in hand as
        // soon as the writer is free.
        let prepared = input
            .map(move |flowing| {
                let job = flowing.map(|flowing| preparer.admit(flowing));
                async move {
                    let job = job?;
                    if job.bytes() <= INLINE_PREPARE_BYTES {
                        return Ok(job.finish());
                    }
                    tokio::task::spawn_blocking(move || job.finish())
                        .await
                        .map_err(|e| stage_error(e.to_string()))
                }
            })
            .buffered(PREPARE_AHEAD)
            .boxed();
        // A chunk part that is not its upload's last holds the batch open (within bounds) for
        // the rest of the upload, so that the writer can stage the upload in memory.
        // Group commit: while a batch of this run is with the writer, the next one keeps
        // growing (up to `max_ops`) instead of being cut on time only to wait in the queue.
        let busy = Arc::new(AtomicUsize::new(0));
        let busy_check = busy.clone();
        let writer_busy = move || busy_check.load(Ordering::Acquire) > 0;
        let busy_submit = busy.clone();
        batched_with(
            prepared,
            policy,
            Prepared::opens_upload,
            Prepared::frame_bytes,
            writer_busy,
        )
        .then(move |batch| {
            let busy = busy_submit.clone();
            let ledger = ledger.clone();
            let options = options.clone();
            let run_id = run_id.get().map(str::to_owned);
            number += 1;
            let number = number;
            async move {
                let batch = batch?;
                let mut entries = Vec::with_capacity(batch.len());
                let mut ops = Vec::new();
                for prepared in batch {
                    match prepared {
                        Prepared::Ready(meta, outcome) => entries.push(Entry::Ready(meta, outcome)),
                        Prepared::Write(meta, op) => {
                            ops.push(op);
                            entries.push(Entry::Awaiting(meta));
                        }
                    }
                }
                let submitted_at = Instant::now();
                let pending = if ops.is_empty() {
                    None
                } else {
                    let batch = WriteBatch {
                        run_id,
                        options,
                        ops,
                    };
                    let pending = ledger.submit(batch).await?;
                    busy.fetch_add(1, Ordering::AcqRel);
                    Some(pending)
                };
                Ok::<_, PipelineError>(InFlight {
                    number,
                    entries,
                    pending,
                    submitted_at,
                })
            }
        })
        .map(move |submitted| {
            let busy = busy.clone();
            async move {
                let submitted = submitted?;
                let counted = submitted.pending.is_some();
                let resolved = submitted.resolve().await;
                if counted {
                    busy.fetch_sub(1, Ordering::AcqRel);
                }
                resolved
            }
        })
        .buffered(in_flight)
        .flat_map(|resolved| {
            let items: Vec<_> = match resolved {
                Ok(outcomes) => outcomes.into_iter().map(|o| Ok(Flowing::Item(o))).collect(),
                Err(e) => vec![Err(e)],
            };
            stream::iter(items)
        })
        // Nothing after a fatal error.
        .scan(false, |failed, item| {
            let next = (!*failed).then(|| {
                *failed = item.is_err();
                item
            });
            futures::future::ready(next)
        })
        .boxed()
    }
}

/// Frames up to this size are prepared inline, larger ones on a blocking thread.
const INLINE_PREPARE_BYTES: usize = 256 * 1024;

/// Frames being prepared at once, besides the one the sink's batching waits on: the cores a
/// backfill's frames can use before the writer (P1). Each holds one frame (or the upload it
/// completes) while it is prepared.
pub const PREPARE_AHEAD: usize = 2;

fn stage_error(message: String) -> PipelineError {
    PipelineError::Stage {
        stage: "sink",
        source: message.into(),
    }
}
