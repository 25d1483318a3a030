//! Chunk assembler: turns frames into the ops the sink applies.
//!
//! Design (decided here, see ARCHITECTURE.md "The pipeline" 3): an `import.chunk` frame becomes
//! a staging op that the ledger writer applies with the import service's own `import::chunk`
//! inside the batch transaction. That call checks the part against the parts already staged in
//! the ledger (`chunk_*_mismatch`), stages it, and when the upload is complete reassembles it
//! with the streaming, bounded decoder (`chunk_payload_too_large` at `max_inflated_bytes`) and
//! imports the item, all in the same transaction. So:
//! - staging is crash-safe: a part is staged exactly when its batch commits;
//! - the assembler is "seeded" with the parts staged before a crash by construction: the ledger
//!   is the only state, so an upload begun in one run completes in the next;
//! - no chunk rule is re-implemented and no in-memory copy can disagree with the ledger (a
//!   frame rolled back to its savepoint leaves no trace anywhere);
//! - memory holds no upload: payloads go to the ledger part by part.
//!
//! What runs here, before the ledger, is the part of the chunk checks that needs no ledger
//! (`import::check_chunk_request`: source, mode, key, upload id, index range), so a malformed
//! part is rejected without a round trip to the writer, with the service's own codes. The
//! assembler also tracks the uploads this run has not seen whole, for the log line at the end
//! of input; an upload is forgotten once all its parts went by, so memory follows the uploads
//! in progress, not the run's length.

use std::collections::BTreeMap;

use crate::import::check_chunk_request;
use crate::pipeline::{Emit, PipelineError, RejectCode, Stage};
use crate::protocol::WorkerFrame;

use super::{Frame, FrameOp, Op, Report};

#[derive(Default)]
pub struct ChunkAssembler {
    /// Upload id -> (distinct part indexes seen this run, announced total), for uploads whose
    /// parts have not all gone by.
    uploads: BTreeMap<String, (std::collections::BTreeSet<i64>, i64)>,
    /// Uploads whose parts all went by in this run.
    whole_in_run: u64,
}

impl ChunkAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Uploads of this run whose parts did not all arrive in this run (they stay staged in the
    /// ledger, complete if earlier runs staged the rest, or wait for the next run).
    pub fn uploads_open(&self) -> usize {
        self.uploads.len()
    }
}

impl Stage<Frame, FrameOp> for ChunkAssembler {
    fn name(&self) -> &'static str {
        "assemble"
    }

    fn process(&mut self, frame: Frame, out: &mut Emit<FrameOp>) -> Result<(), PipelineError> {
        let Frame { body, meta } = frame;
        let op = match body {
            WorkerFrame::ImportBatch(req) => Op::Import(req),
            WorkerFrame::ImportChunk(req) => {
                if let Err(e) = check_chunk_request(&req) {
                    out.reject(RejectCode::service(e.written_code()), meta);
                    return Ok(());
                }
                let upload_id = req.upload_id.trim();
                let (seen, total) = self.uploads.entry(upload_id.to_owned()).or_default();
                seen.insert(req.chunk_index.max(0));
                *total = req.chunk_total.max(1);
                if seen.len() as i64 >= *total {
                    self.uploads.remove(upload_id);
                    self.whole_in_run += 1;
                }
                Op::Chunk(req)
            }
            WorkerFrame::RunProgress(p) => Op::Report(Report::Progress(p)),
            WorkerFrame::RunComplete(p) => Op::Report(Report::Complete(p)),
            WorkerFrame::RunError(e) => Op::Report(Report::Error(e)),
            WorkerFrame::HealthStatus(h) => Op::Report(Report::Health(h)),
        };
        out.push(FrameOp { op, meta });
        Ok(())
    }

    fn finish(&mut self, _out: &mut Emit<FrameOp>) -> Result<(), PipelineError> {
        if !self.uploads.is_empty() || self.whole_in_run > 0 {
            tracing::debug!(
                uploads = self.whole_in_run + self.uploads.len() as u64,
                open_in_run = self.uploads_open(),
                "chunk uploads touched by the run"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::FrameMeta;
    use crate::protocol::{ChunkRequest, RunProgress};

    fn chunk(index: i64, total: i64, upload: &str) -> Frame {
        Frame {
            body: WorkerFrame::ImportChunk(ChunkRequest {
                source: "aix".into(),
                mode: "backfill".into(),
                idempotency_key: "k".into(),
                upload_id: upload.into(),
                chunk_index: index,
                chunk_total: total,
                encoding: "gzip+base64".into(),
                data: "AAAA".into(),
                ..Default::default()
            }),
            meta: FrameMeta::new(1),
        }
    }

    #[test]
    fn chunks_become_staging_ops_and_bad_metadata_is_rejected_with_service_codes() {
        let mut a = ChunkAssembler::new();
        let mut out = Emit::new();
        a.process(chunk(0, 2, "u1"), &mut out).unwrap();
        a.process(chunk(2, 2, "u1"), &mut out).unwrap();
        a.process(chunk(0, 1, " "), &mut out).unwrap();
        let progress = Frame {
            body: WorkerFrame::RunProgress(RunProgress::default()),
            meta: FrameMeta::new(1),
        };
        a.process(progress, &mut out).unwrap();
        let codes: Vec<_> = out.rejects().iter().map(|r| r.code.to_string()).collect();
        assert_eq!(
            codes,
            ["chunk_index_out_of_range", "chunk_upload_id_required"]
        );
        assert!(matches!(out.items()[0].op, Op::Chunk(_)));
        assert!(matches!(out.items()[1].op, Op::Report(Report::Progress(_))));
        assert_eq!(a.uploads_open(), 1);
        a.process(chunk(1, 2, "u1"), &mut out).unwrap();
        assert_eq!(a.uploads_open(), 0);
    }
}
