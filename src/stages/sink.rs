//! Batched ledger sink: groups ops by size or time ([`BatchPolicy`]), hands each batch to the
//! ledger writer thread (one transaction per batch), and yields every frame's outcome only
//! after the commit of the batch that holds it. Rejects and report frames travel in the same
//! batches, so outcomes leave in input order.
//!
//! Pure per-request work is done here, before the batch is queued, so that the writer thread
//! (the pipeline's bottleneck) only does ledger work: each import request is hashed
//! (`import::request_hash`) on the runtime's thread, and each chunk upload whose parts all
//! arrive in the batch is decoded and hashed ([`decode_uploads`]); the writer uses that result
//! only if the parts it holds when the upload completes are exactly the ones decoded here.
//!
//! # Backpressure
//! At most `in_flight` batches are submitted and not yet committed; while that many wait, the
//! sink pulls nothing. So at most `in_flight × max_ops` frames are past the validator and not
//! yet reported: a ledger that does not commit stops the source after that many frames.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::import::{DecodedUpload, ImportOptions, decode_chunked_item, request_hash, upload_hash};
use crate::pipeline::batch::batched_with;
use crate::pipeline::writer::{LedgerHandle, Pending, WriteBatch, WriteOp, WriteResult};
use crate::pipeline::{BatchPolicy, Flow, Flowing, FrameMeta, PipelineError, StreamStage};

use super::{BatchStamp, FrameOutcome, Op, Outcome, RunIdCell, ValidOp};

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
        // A chunk part that is not its upload's last holds the batch open (within bounds) for
        // the rest of the upload, so that the writer can stage the upload in memory.
        batched_with(input, policy, |flowing: &Flowing<ValidOp>| {
            matches!(flowing, Flowing::Item(valid)
                if matches!(&valid.get().op, Op::Chunk(req)
                    if req.chunk_index.max(0) + 1 < req.chunk_total.max(1)))
        })
        .then(move |batch| {
            let ledger = ledger.clone();
            let options = options.clone();
            let run_id = run_id.get().map(str::to_owned);
            number += 1;
            let number = number;
            async move {
                let batch = batch?;
                let mut entries = Vec::with_capacity(batch.len());
                let mut ops = Vec::new();
                for flowing in batch {
                    match flowing {
                        Flowing::Reject(r) => {
                            entries.push(Entry::Ready(r.meta, Outcome::Rejected(r.code)))
                        }
                        Flowing::Item(valid) => {
                            let frame = valid.into_inner();
                            match frame.op {
                                Op::Import(req) => {
                                    let request_hash = request_hash(&req);
                                    ops.push(WriteOp::Import {
                                        request: req,
                                        request_hash,
                                    });
                                    entries.push(Entry::Awaiting(frame.meta));
                                }
                                Op::Chunk(req) => {
                                    ops.push(WriteOp::Chunk {
                                        request: req,
                                        decoded: None,
                                    });
                                    entries.push(Entry::Awaiting(frame.meta));
                                }
                                Op::Report(report) => entries
                                    .push(Entry::Ready(frame.meta, Outcome::Reported(report))),
                            }
                        }
                    }
                }
                decode_uploads(&mut ops, options.max_inflated_bytes);
                let submitted_at = Instant::now();
                let pending = if ops.is_empty() {
                    None
                } else {
                    let batch = WriteBatch {
                        run_id,
                        options,
                        ops,
                    };
                    Some(ledger.submit(batch).await?)
                };
                Ok::<_, PipelineError>(InFlight {
                    number,
                    entries,
                    pending,
                    submitted_at,
                })
            }
        })
        .map(|submitted| async move { submitted?.resolve().await })
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

/// Decodes (and hashes) each chunk upload of `ops` whose parts all appear in the batch, as the
/// writer would when the upload completes, and attaches it to the part expected to complete
/// it: the first at which every index of the upload's total has been seen, each index taken
/// from its latest part so far (a repeated part replaces itself). A part rejected by the writer
/// changes what it holds, and the writer then ignores the attachment and decodes itself.
/// Uploads that fail to decode are left to the writer, which reports the code.
pub fn decode_uploads(ops: &mut [WriteOp], max_inflated_bytes: u64) {
    // (source, uploadId) -> (total of its first part, index -> position of the latest part).
    let mut uploads: HashMap<(String, String), (i64, BTreeMap<i64, usize>)> = HashMap::new();
    let mut completions = Vec::new();
    for (position, op) in ops.iter().enumerate() {
        let WriteOp::Chunk { request: req, .. } = op else {
            continue;
        };
        let (index, total) = crate::import::chunk_bounds(req);
        let key = (
            req.source.trim().to_owned(),
            req.upload_id.trim().to_owned(),
        );
        let (first_total, parts) = uploads
            .entry(key)
            .or_insert_with(|| (total, BTreeMap::new()));
        if *first_total != total || index >= total {
            continue;
        }
        parts.insert(index, position);
        if parts.len() as i64 == total {
            completions.push((position, parts.values().copied().collect::<Vec<_>>()));
            parts.clear();
        }
    }
    for (position, parts) in completions {
        let request = |p: usize| match &ops[p] {
            WriteOp::Chunk { request, .. } => Some(request),
            WriteOp::Import { .. } => None,
        };
        let Some(encoding) = parts
            .first()
            .and_then(|&p| request(p))
            .map(|r| r.encoding.trim())
        else {
            continue;
        };
        let payloads = parts
            .iter()
            .filter_map(|&p| request(p))
            .map(|r| r.data.trim());
        let Ok(item) = decode_chunked_item(payloads, encoding, max_inflated_bytes) else {
            continue;
        };
        let Some(hash) = request(position).map(|req| upload_hash(req, &item)) else {
            continue;
        };
        if let WriteOp::Chunk { decoded, .. } = &mut ops[position] {
            *decoded = Some(Box::new(DecodedUpload { parts, item, hash }));
        }
    }
}
