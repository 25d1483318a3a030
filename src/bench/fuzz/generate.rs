//! The stream generator of the fuzz harness: scenarios of one or more lines, each line's
//! expected outcome recorded (in the shared [`Checker`]) before the line is written.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use super::{BAD_SEQ_BASE, Checker, Expect, FuzzResult, FuzzSpec, RUN, lock};
use crate::bench::rng::Rng;
use crate::protocol::{
    ChunkRequest, HealthStatus, ImportRequest, ImportSessionItem, RunProgress, WorkerFrame,
};

/// The generator: emits one scenario (one or more lines) at a time.
pub(super) struct Gen {
    rng: Rng,
    checker: Arc<Mutex<Checker>>,
    /// Last seq of a frame the decoder accepts.
    seq: u64,
    /// Last seq offset of a frame the decoder rejects.
    bad_seq: u64,
    /// Unique id counter (sessions, keys, uploads).
    n: u64,
    /// The last valid batch, for an idempotency mismatch.
    last_batch: Option<ImportRequest>,
    template: ImportSessionItem,
    bomb: Arc<str>,
    max_frame_bytes: usize,
    pub(super) result: FuzzResult,
    pub(super) expected_rejects: BTreeMap<&'static str, u64>,
}

/// A small session: one turn, two messages, one tool call.
fn template_item() -> ImportSessionItem {
    // A fixed, well-formed value: it always decodes.
    serde_json::from_value(json!({
        "sourceProvider": "anthropic",
        "sourceSessionId": "template",
        "sourceSessionFingerprint": "fp",
        "importedAtMs": 1_764_000_000_000i64,
        "session": {"createdAtMs": 1_764_000_000_000i64, "updatedAtMs": 1_764_000_100_000i64,
                    "model": "m-1", "workspacePath": "/w"},
        "turns": [{"sourceTurnId": "t1", "startedAtMs": 1_764_000_000_000i64,
                   "completedAtMs": 1_764_000_050_000i64, "inputTokens": 10, "outputTokens": 20,
                   "queryMessageSourceIds": ["m1"], "responseMessageSourceId": "m2"}],
        "messages": [
            {"sourceMessageId": "m1", "sourceTurnId": "t1", "role": "user", "content": "hello",
             "sequence": 0, "createdAtMs": 1_764_000_000_000i64},
            {"sourceMessageId": "m2", "sourceTurnId": "t1", "role": "assistant", "content": "hi",
             "sequence": 1, "createdAtMs": 1_764_000_040_000i64}
        ],
        "toolCalls": [{"sourceToolCallId": "c1", "sourceTurnId": "t1", "sourceMessageId": "m2",
                       "toolName": "read_file", "paramsJson": {"path": "/w/a"},
                       "resultJson": {"ok": true}, "status": "completed",
                       "startedAtMs": 1_764_000_041_000i64, "completedAtMs": 1_764_000_042_000i64,
                       "sequence": 0}]
    }))
    .expect("the template item decodes")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    // Writing to a Vec cannot fail.
    gz.write_all(bytes).expect("in-memory gzip");
    gz.finish().expect("in-memory gzip")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A gzip bomb: an item JSON whose one string inflates to 16 MiB (about 1000:1, the ratio of a
/// 10 GB bomb), built by streaming zeros through the encoder so the inflated data is never
/// held. The pipeline must stop inflating it at `max_inflated_bytes`.
fn bomb() -> String {
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
    pub(super) fn new(spec: &FuzzSpec, checker: Arc<Mutex<Checker>>) -> Self {
        Self {
            rng: Rng::new(spec.seed),
            checker,
            seq: 0,
            bad_seq: 0,
            n: 0,
            last_batch: None,
            template: template_item(),
            bomb: bomb().into(),
            max_frame_bytes: spec.max_frame_bytes,
            result: FuzzResult::default(),
            expected_rejects: BTreeMap::new(),
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.range(0, 100) < percent
    }

    fn next_n(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    fn item(&self, session: String) -> ImportSessionItem {
        let mut item = self.template.clone();
        item.source_session_fingerprint = format!("fp-{session}");
        item.source_session_id = session;
        item
    }

    /// Seq for a frame the decoder accepts.
    fn good_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Seq for a frame the decoder rejects.
    fn bad_seq(&mut self) -> u64 {
        self.bad_seq += 1;
        BAD_SEQ_BASE + self.bad_seq
    }

    /// Records the expectation, then returns the line (newline added) to write.
    fn line(&mut self, seq: Option<u64>, expect: Expect, text: String, out: &mut Vec<u8>) {
        self.result.frames += 1;
        match expect {
            Expect::Rejected(code) => *self.expected_rejects.entry(code).or_default() += 1,
            _ => self.result.valid_frames += 1,
        }
        {
            let mut c = lock(&self.checker);
            match seq {
                Some(seq) => {
                    c.by_seq.insert(seq, expect);
                }
                None => match expect {
                    Expect::Rejected(code) => *c.no_seq_expected.entry(code).or_default() += 1,
                    // Every generated valid frame carries a seq.
                    _ => c.mismatch("generator: a valid frame without seq".into()),
                },
            }
        }
        out.extend_from_slice(text.as_bytes());
        // CRLF is accepted as a line end.
        if self.chance(3) {
            out.push(b'\r');
        }
        out.push(b'\n');
    }

    fn frame(&mut self, frame: WorkerFrame, expect: Expect, out: &mut Vec<u8>) {
        let seq = match expect {
            Expect::Rejected(code) if code.starts_with("frame_") => self.bad_seq(),
            _ => self.good_seq(),
        };
        let text = frame.encode(RUN, seq);
        self.line(Some(seq), expect, text, out);
    }

    fn batch_request(&mut self, items: Vec<ImportSessionItem>) -> ImportRequest {
        let n = self.next_n();
        ImportRequest {
            source: "aix".into(),
            mode: "backfill".into(),
            idempotency_key: format!("fz:b:{n}"),
            items,
            ..Default::default()
        }
    }

    fn valid_batch(&mut self, out: &mut Vec<u8>) {
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

    fn chunk_parts(&mut self, item: &ImportSessionItem, parts: usize) -> Vec<ChunkRequest> {
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
                data,
                source_provider: item.source_provider.clone(),
                source_session_id: item.source_session_id.clone(),
                source_session_fingerprint: item.source_session_fingerprint.clone(),
                ..Default::default()
            })
            .collect()
    }

    /// A valid upload in 2-4 parts, shuffled, maybe with a duplicate part and a part whose
    /// metadata does not match the staged ones.
    fn valid_upload(&mut self, out: &mut Vec<u8>) {
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

    /// A part of a staged upload whose metadata differs from the staged parts'.
    fn chunk_mismatch(&mut self, part: &ChunkRequest, out: &mut Vec<u8>) {
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
    fn single_part(&mut self, item: &ImportSessionItem, data: String) -> ChunkRequest {
        let mut part = self.chunk_parts(item, 1).remove(0);
        part.data = data;
        part
    }

    /// An upload whose assembly fails: bad base64, corrupt gzip, a bomb, bad JSON, an unknown
    /// encoding, an item of another session; or a part the assembler refuses.
    fn bad_upload(&mut self, out: &mut Vec<u8>) {
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
    fn bad_request(&mut self, out: &mut Vec<u8>) {
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
    fn bad_frame(&mut self, out: &mut Vec<u8>) {
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
    fn bad_line(&mut self, out: &mut Vec<u8>) {
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

    fn empty_line(&mut self, out: &mut Vec<u8>) {
        let blank: &[u8] = match self.rng.range(0, 3) {
            0 => b"\n",
            1 => b"   \t \n",
            _ => b"\r\n",
        };
        self.result.frames += 1;
        self.result.empty_lines += 1;
        out.extend_from_slice(blank);
    }

    /// One scenario (one or more lines) appended to `out`.
    pub(super) fn scenario(&mut self, out: &mut Vec<u8>) {
        match self.rng.range(0, 100) {
            0..30 => self.valid_batch(out),
            30..35 => {
                let p = RunProgress {
                    total: Some(self.rng.range(0, 1 << 20)),
                    emitted: Some(self.seq),
                    ..Default::default()
                };
                self.frame(WorkerFrame::RunProgress(p), Expect::Reported, out);
            }
            35..38 => {
                let h = HealthStatus {
                    connected: true,
                    last_event_at: None,
                    details: None,
                };
                self.frame(WorkerFrame::HealthStatus(h), Expect::Reported, out);
            }
            38..45 => self.valid_upload(out),
            45..58 => self.bad_upload(out),
            58..64 => self.bad_request(out),
            64..80 => self.bad_frame(out),
            80..97 => self.bad_line(out),
            _ => self.empty_line(out),
        }
    }

    pub(super) fn complete(&mut self, out: &mut Vec<u8>) {
        let done = RunProgress {
            total: Some(self.seq),
            emitted: Some(self.seq),
            ..Default::default()
        };
        self.frame(WorkerFrame::RunComplete(done), Expect::Reported, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let spec = FuzzSpec {
            frames: 300,
            ..FuzzSpec::default()
        };
        let stream = |seed| {
            let mut g = Gen::new(&FuzzSpec { seed, ..spec }, Arc::default());
            let mut buf = Vec::new();
            while g.result.frames < spec.frames {
                g.scenario(&mut buf);
            }
            (buf, g.result.frames, g.expected_rejects.len())
        };
        let a = stream(5);
        assert_eq!(a, stream(5));
        assert_ne!(a.0, stream(6).0);
        assert!(a.2 >= 20, "many reject codes in 300 frames: {}", a.2);
    }
}
