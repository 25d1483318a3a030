//! The stream generator of the fuzz harness: scenarios of one or more lines, each line's
//! expected outcome recorded (in the shared [`Checker`]) before the line is written.
//!
//! Layout: `valid` (frames and uploads the pipeline accepts), `bad` (inputs it must refuse:
//! broken uploads, refused requests, bad frames and lines).

mod bad;
mod valid;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use super::{BAD_SEQ_BASE, Checker, Expect, FuzzResult, FuzzSpec, RUN, lock};
use crate::rng::Rng;
use nex::protocol::{HealthStatus, ImportRequest, ImportSessionItem, RunProgress, WorkerFrame};

use bad::bomb;

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
