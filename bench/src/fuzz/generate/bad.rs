//! Generators of inputs the pipeline must refuse, each with its expected reject code.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::{Gen, b64, gzip};
use crate::fuzz::{Expect, RUN, lock};
use nex::protocol::{ChunkRequest, ImportSessionItem, WorkerFrame};

/// A gzip bomb: an item JSON whose one string inflates to 16 MiB (about 1000:1, the ratio of a
/// 10 GB bomb), built by streaming zeros through the encoder so the inflated data is never
/// held. The pipeline must stop inflating it at `max_inflated_bytes`.
pub(super) fn bomb() -> String {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    let block = vec![b'x'; 1 << 20];
    gz.write_all(br#"{"sourceProvider":"anthropic","sourceSessionId":""#)
        .expect("in-memory gzip");
    for _ in 0..16 {
        gz.write_all(&block).expect("in-memory gzip");
    }
    gz.write_all(br#""}"#).expect("in-memory gzip");
    b64(&gz.finish().expect("in-memory gzip"))
}

impl Gen {
    /// A part of a staged upload whose metadata differs from the staged parts'.
    pub(super) fn chunk_mismatch(&mut self, part: &ChunkRequest, out: &mut Vec<u8>) {
        let mut bad = part.clone();
        let code = match self.rng.range(0, 7) {
            0 => {
                bad.chunk_total += 1;
                "chunk_total_mismatch"
            }
            1 => {
                bad.mode = "tail".into();
                "chunk_mode_mismatch"
            }
            2 => {
                bad.idempotency_key.push_str(":other");
                "chunk_idempotency_key_mismatch"
            }
            3 => {
                bad.source_provider = "openai".into();
                "chunk_source_provider_mismatch"
            }
            4 => {
                bad.source_session_id.push_str("-other");
                "chunk_source_session_id_mismatch"
            }
            5 => {
                bad.source_session_fingerprint.push_str("-other");
                "chunk_source_session_fingerprint_mismatch"
            }
            _ => {
                bad.encoding = "raw".into();
                "chunk_encoding_mismatch"
            }
        };
        self.frame(WorkerFrame::ImportChunk(bad), Expect::Rejected(code), out);
    }

    /// A one-part upload of `data` as if it held `item`.
    pub(super) fn single_part(&mut self, item: &ImportSessionItem, data: String) -> ChunkRequest {
        let mut part = self.chunk_parts(item, 1).remove(0);
        part.data = data.into();
        part
    }

    /// An upload whose assembly fails: bad base64, corrupt gzip, a bomb, bad JSON, an unknown
    /// encoding, an item of another session; or a part the assembler refuses.
    pub(super) fn bad_upload(&mut self, out: &mut Vec<u8>) {
        let item = self.item(format!("fz-x{}", self.n + 1));
        let json = serde_json::to_vec(&item).expect("item serialises");
        let (part, code) = match self.rng.range(0, 10) {
            0 => {
                let data = "!!not*base64!!".repeat(self.rng.range(1, 20) as usize);
                (self.single_part(&item, data), "chunk_payload_decode_failed")
            }
            1 => {
                // A gzip header, then a deflate block of the reserved type 3, then noise.
                let mut bytes = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x07];
                bytes.extend((0..self.rng.range(1, 200)).map(|_| self.rng.next_u64() as u8));
                (
                    self.single_part(&item, b64(&bytes)),
                    "chunk_payload_decode_failed",
                )
            }
            2 => {
                let mut gz = gzip(&json);
                let keep = self.rng.range(1, gz.len() as u64 - 8) as usize;
                gz.truncate(keep);
                (
                    self.single_part(&item, b64(&gz)),
                    "chunk_payload_decode_failed",
                )
            }
            3 => {
                // A wrong CRC-32 in the trailer.
                let mut gz = gzip(&json);
                let at = gz.len() - 8;
                gz[at] ^= 0x5a;
                (
                    self.single_part(&item, b64(&gz)),
                    "chunk_payload_decode_failed",
                )
            }
            4 => {
                let bomb = self.bomb.to_string();
                (self.single_part(&item, bomb), "chunk_payload_too_large")
            }
            5 => {
                let data = b64(&gzip(b"{\"sourceProvider\": not json"));
                (self.single_part(&item, data), "chunk_payload_json_invalid")
            }
            6 => {
                let mut part = self.chunk_parts(&item, 1).remove(0);
                part.encoding = "utf-8".into();
                (part, "chunk_encoding_unsupported:utf-8")
            }
            7 => {
                let mut part = self.chunk_parts(&item, 1).remove(0);
                part.source_session_id.push_str("-elsewhere");
                (part, "chunk_item_source_session_id_mismatch")
            }
            8 => {
                let mut part = self.chunk_parts(&item, 2).remove(0);
                part.chunk_index = part.chunk_total + self.rng.range(0, 3) as i64;
                (part, "chunk_index_out_of_range")
            }
            _ => {
                let mut part = self.chunk_parts(&item, 1).remove(0);
                part.upload_id = " ".into();
                (part, "chunk_upload_id_required")
            }
        };
        self.frame(WorkerFrame::ImportChunk(part), Expect::Rejected(code), out);
    }

    /// Request-level refusals (validator, service).
    pub(super) fn bad_request(&mut self, out: &mut Vec<u8>) {
        let n = self.n + 1;
        let mut req = self.batch_request(vec![self.item(format!("fz-r{n}"))]);
        let code = match self.rng.range(0, 5) {
            0 => {
                req.source = "foo".into();
                "source_unsupported"
            }
            1 => {
                req.mode = "sideways".into();
                "mode_unsupported"
            }
            2 => {
                req.idempotency_key = " ".into();
                "idempotency_key_required"
            }
            3 => {
                req.items.clear();
                "items_required"
            }
            _ => match self.last_batch.clone() {
                Some(mut last) => {
                    last.items[0]
                        .source_session_fingerprint
                        .push_str("-changed");
                    req = last;
                    "idempotency_key_payload_mismatch"
                }
                None => {
                    req.items.clear();
                    "items_required"
                }
            },
        };
        self.frame(WorkerFrame::ImportBatch(req), Expect::Rejected(code), out);
    }

    /// A frame the decoder refuses, whose seq it can still read.
    pub(super) fn bad_frame(&mut self, out: &mut Vec<u8>) {
        let seq = self.bad_seq();
        let (text, code) = match self.rng.range(0, 8) {
            0 => (
                format!(
                    r#"{{"type":"session.compact","runId":"{RUN}","seq":{seq},"payload":{{}}}}"#
                ),
                "frame_type_unknown",
            ),
            1 => {
                let n = self.n + 1;
                let req = self.batch_request(vec![self.item(format!("fz-w{n}"))]);
                let run = format!("wrong-run-{}", self.rng.range(0, 1000));
                (
                    WorkerFrame::ImportBatch(req).encode(&run, seq),
                    "frame_run_id_mismatch",
                )
            }
            2 => (
                format!(
                    r#"{{"type":"import.batch","runId":"{RUN}","seq":{seq},"payload":{{"items":"nope"}}}}"#
                ),
                "frame_schema_invalid",
            ),
            3 => (
                format!(
                    r#"{{"type":"import.chunk","runId":"{RUN}","seq":{seq},"payload":[1,2,3]}}"#
                ),
                "frame_schema_invalid",
            ),
            4 => (
                format!(
                    r#"{{"type":"import.chunk","runId":"{RUN}","seq":{seq},"payload":{{"source":"aix","mode":"backfill","idempotencyKey":"k","uploadId":"u","chunkIndex":1e400,"chunkTotal":2,"encoding":"gzip+base64","data":"AAAA"}}}}"#
                ),
                "frame_schema_invalid",
            ),
            5 => (
                format!(
                    r#"{{"type":"import.chunk","runId":"{RUN}","seq":{seq},"payload":{{"source":"aix","mode":"backfill","idempotencyKey":"k","uploadId":"u","chunkIndex":0,"chunkTotal":18446744073709551616,"encoding":"gzip+base64","data":"AAAA"}}}}"#
                ),
                "frame_schema_invalid",
            ),
            6 => (
                format!(
                    r#"{{"type":"run.progress","runId":"{RUN}","seq":{seq},"payload":{{"total":"many"}}}}"#
                ),
                "frame_schema_invalid",
            ),
            _ => (
                format!(
                    r#"{{"type":"health.status","runId":"{RUN}","seq":{seq},"payload":{{"connected":-1e999}}}}"#
                ),
                "frame_schema_invalid",
            ),
        };
        self.line(Some(seq), Expect::Rejected(code), text, out);
    }

    /// A line whose envelope cannot be read: no seq.
    pub(super) fn bad_line(&mut self, out: &mut Vec<u8>) {
        let (text, code): (Vec<u8>, &'static str) = match self.rng.range(0, 6) {
            0 => {
                // Printable noise that is not JSON ('#' starts no JSON value).
                let len = self.rng.range(1, 300);
                let mut t = vec![b'#'];
                t.extend((0..len).map(|_| self.rng.range(0x21, 0x7f) as u8));
                (t, "frame_json_invalid")
            }
            1 => {
                // Bytes that are not UTF-8 (0xff never is), no newline among them.
                let len = self.rng.range(1, 300);
                let mut t = vec![0xff];
                t.extend((0..len).map(|_| self.rng.next_u64() as u8).filter(|b| *b != b'\n'));
                (t, "frame_invalid_utf8")
            }
            2 => {
                let n = self.n + 1;
                let req = self.batch_request(vec![self.item(format!("fz-t{n}"))]);
                let full = WorkerFrame::ImportBatch(req).encode(RUN, 1);
                let cut = self.rng.range(1, full.len() as u64 - 1) as usize;
                (full.as_bytes()[..cut].to_vec(), "frame_json_invalid")
            }
            3 => (
                format!(
                    r#"{{"type":"run.progress","runId":"{RUN}","seq":18446744073709551616,"payload":{{}}}}"#
                )
                .into_bytes(),
                "frame_schema_invalid",
            ),
            4 => (
                format!(r#"{{"type":7,"runId":"{RUN}","payload":{{}}}}"#).into_bytes(),
                "frame_schema_invalid",
            ),
            _ => {
                let len = self.max_frame_bytes + self.rng.range(1, 4096) as usize;
                let mut t = br#"{"type":"import.batch","payload":""#.to_vec();
                t.resize(len, b'a');
                (t, "frame_too_large")
            }
        };
        self.result.frames += 1;
        *self.expected_rejects.entry(code).or_default() += 1;
        *lock(&self.checker).no_seq_expected.entry(code).or_default() += 1;
        out.extend_from_slice(&text);
        out.push(b'\n');
    }

    pub(super) fn empty_line(&mut self, out: &mut Vec<u8>) {
        let blank: &[u8] = match self.rng.range(0, 3) {
            0 => b"\n",
            1 => b"   \t \n",
            _ => b"\r\n",
        };
        self.result.frames += 1;
        self.result.empty_lines += 1;
        out.extend_from_slice(blank);
    }
}
