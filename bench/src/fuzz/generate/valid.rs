//! Generators of frames and uploads the pipeline accepts.

use super::{Gen, b64, gzip};
use crate::fuzz::Expect;
use nex::protocol::{ChunkRequest, ImportRequest, ImportSessionItem, WorkerFrame};

impl Gen {
    pub(super) fn batch_request(&mut self, items: Vec<ImportSessionItem>) -> ImportRequest {
        let n = self.next_n();
        ImportRequest {
            source: "aix".into(),
            mode: "backfill".into(),
            idempotency_key: format!("fz:b:{n}"),
            items,
            ..Default::default()
        }
    }

    pub(super) fn valid_batch(&mut self, out: &mut Vec<u8>) {
        let n = self.n + 1;
        let mut items = vec![self.item(format!("fz-b{n}"))];
        let mut expect = Expect::Imported;
        if self.chance(10) {
            let mut failing = self.item(format!("fz-f{n}"));
            let reason = match self.rng.range(0, 3) {
                0 => {
                    failing.source_provider.clear();
                    "source_provider_required"
                }
                1 => {
                    failing.source_session_id = " ".into();
                    "source_session_id_required"
                }
                _ => {
                    failing.source_session_fingerprint.clear();
                    "source_session_fingerprint_required"
                }
            };
            items.push(failing);
            expect = Expect::ItemFailed(reason);
        }
        let req = self.batch_request(items);
        self.result.expected_sessions += 1;
        self.last_batch = Some(req.clone());
        self.frame(WorkerFrame::ImportBatch(req), expect, out);
    }

    pub(super) fn chunk_parts(
        &mut self,
        item: &ImportSessionItem,
        parts: usize,
    ) -> Vec<ChunkRequest> {
        let n = self.next_n();
        // Serialising an item cannot fail.
        let json = serde_json::to_vec(item).expect("item serialises");
        let encoded = b64(&gzip(&json));
        let size = encoded.len().div_ceil(parts.max(1)).max(4);
        let data: Vec<String> = encoded
            .as_bytes()
            .chunks(size)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let total = data.len() as i64;
        data.into_iter()
            .enumerate()
            .map(|(i, data)| ChunkRequest {
                source: "aix".into(),
                mode: "backfill".into(),
                idempotency_key: format!("fz:c:{n}"),
                upload_id: format!("fz-u{n}"),
                chunk_index: i as i64,
                chunk_total: total,
                encoding: "gzip+base64".into(),
                data: data.into(),
                source_provider: item.source_provider.clone(),
                source_session_id: item.source_session_id.clone(),
                source_session_fingerprint: item.source_session_fingerprint.clone(),
                ..Default::default()
            })
            .collect()
    }

    /// A valid upload in 2-4 parts, shuffled, maybe with a duplicate part and a part whose
    /// metadata does not match the staged ones.
    pub(super) fn valid_upload(&mut self, out: &mut Vec<u8>) {
        let item = self.item(format!("fz-c{}", self.n + 1));
        let parts_wanted = self.rng.range(2, 5) as usize;
        let mut parts = self.chunk_parts(&item, parts_wanted);
        if self.chance(5) {
            // A negative index counts as 0 (IMPORT_SEMANTICS.md "Chunk algorithm" 1).
            parts[0].chunk_index = -(self.rng.range(1, 1000) as i64);
        }
        let mut order: Vec<usize> = (0..parts.len()).collect();
        for i in (1..order.len()).rev() {
            let j = self.rng.range(0, i as u64 + 1) as usize;
            order.swap(i, j);
        }
        if self.chance(30) {
            let at = self.rng.range(1, order.len() as u64 + 1) as usize;
            let dup = order[self.rng.range(0, at as u64) as usize];
            order.insert(at, dup);
        }
        let mismatch_before = self
            .chance(40)
            .then(|| self.rng.range(1, order.len() as u64));
        let total = parts.len();
        let mut received = std::collections::BTreeSet::new();
        for (pos, index) in order.into_iter().enumerate() {
            if mismatch_before == Some(pos as u64) && received.len() < total {
                self.chunk_mismatch(&parts[index], out);
            }
            received.insert(index);
            let expect = match received.len() == total {
                true => Expect::Completed,
                false => Expect::Staged,
            };
            self.frame(WorkerFrame::ImportChunk(parts[index].clone()), expect, out);
        }
        self.result.expected_sessions += 1;
    }
}
