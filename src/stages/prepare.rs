//! Per-frame preparation in front of the sink's batching: the pure work of each frame is done
//! as the frame flows, so that a batch goes to the ledger writer as soon as it is cut and the
//! writer thread (the pipeline's bottleneck) only does ledger work.
//!
//! - Each import request is hashed (`import::request_hash`) and the JSON text of its tool
//!   calls' parameters and results is serialised and moved out of the items
//!   (`import::ItemJson::take`): a large item is held once, as text, not also as parsed values.
//! - Each chunk part gets a run-unique part id. The parts of an upload are tracked (their
//!   payloads shared with the frames, at most [`MAX_HELD_BYTES`] in all); when a part completes an upload, the
//!   item is decoded and hashed here and attached to that part ([`DecodedUpload`]). The writer
//!   uses it only if the parts it holds when the upload completes are exactly these (by part
//!   id), else it decodes itself; a payload that fails to decode is left to the writer, which
//!   reports its code. An upload spanning batches completes from parts staged in the ledger:
//!   the writer then uses the decoded item if the staged payloads have its digest
//!   ([`DecodedUpload::digest`]). Nothing here decides an outcome.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::import::{
    DecodedUpload, ItemJson, chunk_bounds, decode_chunked_item, request_hash, upload_digest,
    upload_hash,
};
use crate::pipeline::writer::WriteOp;
use crate::pipeline::{Flowing, FrameMeta};
use crate::protocol::{ChunkRequest, ImportRequest};

use super::{Op, Outcome, ValidOp};

/// Payload bytes held for uploads in progress, in all; an upload that would pass it is no
/// longer tracked (the writer decodes it). The payloads are shared with the frames (no copy),
/// but a part held here outlives its batch until its upload completes.
pub const MAX_HELD_BYTES: usize = 64 << 20;

/// A frame ready for a batch: its outcome is known, or it awaits the commit of its write.
pub enum Prepared {
    Ready(FrameMeta, Outcome),
    Write(FrameMeta, WriteOp),
}

impl Prepared {
    /// The frame's size on the wire: what the sink's byte bound counts.
    pub fn frame_bytes(&self) -> usize {
        match self {
            Prepared::Ready(meta, _) | Prepared::Write(meta, _) => meta.bytes,
        }
    }

    /// A chunk part that is not its upload's last (the rest of the upload should follow it).
    pub fn opens_upload(&self) -> bool {
        matches!(self, Prepared::Write(_, WriteOp::Chunk { request, .. })
            if request.chunk_index.max(0) + 1 < request.chunk_total.max(1))
    }
}

/// The preparation state of one run.
pub struct Preparer {
    max_inflated_bytes: u64,
    next_part: u64,
    uploads: HashMap<(String, String), Tracked>,
    held_bytes: usize,
}

struct Tracked {
    total: i64,
    /// Index -> (part id, payload, encoding), the latest part of each index.
    parts: BTreeMap<i64, (u64, Arc<str>, String)>,
    bytes: usize,
}

impl Preparer {
    pub fn new(max_inflated_bytes: u64) -> Self {
        Self {
            max_inflated_bytes,
            next_part: 0,
            uploads: HashMap::new(),
            held_bytes: 0,
        }
    }

    /// [`admit`](Self::admit) then [`Job::finish`], on this thread.
    pub fn prepare(&mut self, flowing: Flowing<ValidOp>) -> Prepared {
        self.admit(flowing).finish()
    }

    /// The part of a frame's preparation that depends on the frames before it (part ids, the
    /// uploads in progress): call it in input order. The rest of the work, [`Job::finish`],
    /// depends on the frame alone, so several frames' jobs can run at once, on any thread.
    pub fn admit(&mut self, flowing: Flowing<ValidOp>) -> Job {
        let valid = match flowing {
            Flowing::Reject(r) => {
                return Job(Work::Ready(Prepared::Ready(
                    r.meta,
                    Outcome::Rejected(r.code),
                )));
            }
            Flowing::Item(valid) => valid,
        };
        let frame = valid.into_inner();
        let work = match frame.op {
            Op::Import(request) => Work::Import(frame.meta, request),
            Op::Chunk(request) => {
                let part = self.next_part;
                self.next_part += 1;
                let completed = self.track(&request, part);
                Work::Chunk {
                    meta: frame.meta,
                    request,
                    part,
                    completed,
                    max_inflated_bytes: self.max_inflated_bytes,
                }
            }
            Op::Report(report) => {
                Work::Ready(Prepared::Ready(frame.meta, Outcome::Reported(report)))
            }
        };
        Job(work)
    }

    /// Records the part; when it completes its upload, returns the upload's parts in order.
    fn track(&mut self, req: &ChunkRequest, part: u64) -> Option<Completed> {
        let (index, total) = chunk_bounds(req);
        let key = (
            req.source.trim().to_owned(),
            req.upload_id.trim().to_owned(),
        );
        let data = &req.data;
        let tracked = self.uploads.entry(key.clone()).or_insert_with(|| Tracked {
            total,
            parts: BTreeMap::new(),
            bytes: 0,
        });
        if tracked.total != total || index >= total {
            // The writer will refuse this part: the upload's tracked parts stay as they are.
            return None;
        }
        let replaced = tracked.parts.get(&index).map_or(0, |(_, d, _)| d.len());
        if self.held_bytes - replaced + data.len() > MAX_HELD_BYTES {
            self.held_bytes -= tracked.bytes;
            self.uploads.remove(&key);
            return None;
        }
        tracked.parts.insert(
            index,
            (part, Arc::clone(data), req.encoding.trim().to_owned()),
        );
        tracked.bytes = tracked.bytes - replaced + data.len();
        self.held_bytes = self.held_bytes - replaced + data.len();
        if (tracked.parts.len() as i64) < total {
            return None;
        }
        let tracked = self.uploads.remove(&key)?;
        self.held_bytes -= tracked.bytes;
        Some(Completed(tracked.parts))
    }

    /// Payload bytes held for uploads in progress.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }
}

/// A frame admitted by [`Preparer::admit`], with the work left to do on it alone.
pub struct Job(Work);

enum Work {
    Ready(Prepared),
    Import(FrameMeta, ImportRequest),
    Chunk {
        meta: FrameMeta,
        request: ChunkRequest,
        part: u64,
        completed: Option<Completed>,
        max_inflated_bytes: u64,
    },
}

/// The parts of an upload that this frame completed: index -> (part id, payload, encoding).
struct Completed(BTreeMap<i64, (u64, Arc<str>, String)>);

impl Job {
    /// Bytes of work left: the frame's size, or the payload of the upload it completes.
    pub fn bytes(&self) -> usize {
        match &self.0 {
            Work::Ready(_) => 0,
            Work::Import(meta, _) => meta.bytes,
            Work::Chunk {
                meta, completed, ..
            } => completed.as_ref().map_or(meta.bytes, |c| {
                c.0.values().map(|(_, d, _)| d.len()).sum::<usize>()
            }),
        }
    }

    /// The frame's pure work: an import request's hash and the JSON text of its tool calls
    /// (moved out of the items), or the decode of the upload a chunk part completes.
    pub fn finish(self) -> Prepared {
        match self.0 {
            Work::Ready(prepared) => prepared,
            Work::Import(mut meta, mut request) => {
                let request_hash = request_hash(&request);
                // After the hash: the tool JSON leaves the items, which are not held twice.
                let item_json = request.items.iter_mut().map(ItemJson::take).collect();
                // The newest source event this frame carries, for the run's lag once committed.
                meta.newest_event_at_ms = request
                    .items
                    .iter()
                    .filter_map(|i| i.session.updated_at_ms)
                    .max();
                Prepared::Write(
                    meta,
                    WriteOp::Import {
                        request,
                        request_hash,
                        item_json,
                    },
                )
            }
            Work::Chunk {
                meta,
                request,
                part,
                completed,
                max_inflated_bytes,
            } => {
                let decoded = completed.and_then(|c| c.decode(&request, max_inflated_bytes));
                Prepared::Write(
                    meta,
                    WriteOp::Chunk {
                        request,
                        part,
                        decoded,
                    },
                )
            }
        }
    }
}

impl Completed {
    /// Decodes the upload; `None` when it fails (the writer then decodes it and reports the
    /// code).
    fn decode(self, last: &ChunkRequest, max_inflated_bytes: u64) -> Option<Box<DecodedUpload>> {
        let parts = self.0;
        let encoding = parts.values().next().map(|(_, _, e)| e.clone())?;
        let payloads = || parts.values().map(|(_, d, _)| d.trim());
        let mut item = decode_chunked_item(payloads(), &encoding, max_inflated_bytes).ok()?;
        let digest = upload_digest(payloads(), &encoding);
        let hash = upload_hash(last, &item);
        let json = ItemJson::take(&mut item);
        Some(Box::new(DecodedUpload {
            parts: parts.values().map(|(id, _, _)| *id).collect(),
            item,
            hash,
            json,
            digest,
        }))
    }
}
