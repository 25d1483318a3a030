//! Decoder: line -> typed worker frame of this run (`protocol::decode_worker_frame`, which
//! folds the snake_case aliases).
//!
//! Rejects: `frame_json_invalid`, `frame_schema_invalid`, `frame_type_unknown` (skipped with a
//! warning), `frame_run_id_mismatch` (a frame of another run: the run's id is the known id it
//! was started with, else the first decoded frame's `runId`; a frame without `runId` never
//! matches). A gap or repeat of `seq` is noted on the frame (`frame_seq_gap`,
//! `frame_seq_repeat`), logged and counted downstream, never rejected.
//!
//! A terminal frame (`run.complete`, `run.error`) stops the reading of new input: it and
//! everything before it still flow to the sink (PROTOCOL.md "Terminal handling").

use crate::pipeline::{Emit, PipelineError, SeqNote, Stage};
use crate::protocol::{Code, WorkerFrame, decode_worker_frame};

use super::{Frame, Line, RunIdCell};

pub struct Decoder {
    run_id: RunIdCell,
    /// Highest seq accepted so far.
    last_seq: Option<u64>,
}

impl Decoder {
    /// `known_run_id`: the id the run was started with (the daemon's `run.start`); `None` adopts
    /// the first frame's.
    pub fn new(known_run_id: Option<String>) -> Self {
        Self::with_cell(RunIdCell::new(known_run_id))
    }

    /// Shares the run id with other stages through `cell`.
    pub fn with_cell(cell: RunIdCell) -> Self {
        Self {
            run_id: cell,
            last_seq: None,
        }
    }

    pub fn run_id(&self) -> RunIdCell {
        self.run_id.clone()
    }

    fn note_seq(&mut self, seq: Option<u64>) -> Option<SeqNote> {
        let seq = seq?;
        let note = match self.last_seq {
            None if seq > 1 => Some(SeqNote::Gap),
            Some(last) if seq <= last => Some(SeqNote::Repeat),
            Some(last) if seq > last.saturating_add(1) => Some(SeqNote::Gap),
            _ => None,
        };
        if let Some(note) = note {
            tracing::warn!(error_code = %note.code(), seq, last_seq = self.last_seq, "frame seq anomaly");
        }
        self.last_seq = Some(self.last_seq.map_or(seq, |last| last.max(seq)));
        note
    }
}

impl Stage<Line, Frame> for Decoder {
    fn name(&self) -> &'static str {
        "decode"
    }

    fn process(&mut self, line: Line, out: &mut Emit<Frame>) -> Result<(), PipelineError> {
        let mut meta = line.meta;
        let envelope = match decode_worker_frame(&line.text) {
            Ok(envelope) => envelope,
            Err(e) => {
                meta.seq = e.seq;
                if e.code == Code::FrameTypeUnknown {
                    tracing::warn!(error_code = %e.code, seq = e.seq, "unknown frame type skipped");
                }
                out.reject(e.code, meta);
                return Ok(());
            }
        };
        meta.seq = envelope.seq;
        meta.kind = Some(envelope.body.kind());
        if envelope.run_id.is_empty() || self.run_id.get_or_set(&envelope.run_id) != envelope.run_id
        {
            out.reject(Code::FrameRunIdMismatch, meta);
            return Ok(());
        }
        meta.seq_note = self.note_seq(envelope.seq);
        let terminal = matches!(
            envelope.body,
            WorkerFrame::RunComplete(_) | WorkerFrame::RunError(_)
        );
        out.push(Frame {
            body: envelope.body,
            meta,
        });
        if terminal {
            out.stop_input();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::FrameMeta;

    fn line(text: &str) -> Line {
        Line {
            text: text.to_owned(),
            meta: FrameMeta::new(text.len() + 1),
        }
    }

    fn progress(run: &str, seq: u64) -> String {
        format!(r#"{{"type":"run.progress","runId":"{run}","seq":{seq},"payload":{{}}}}"#)
    }

    fn feed(d: &mut Decoder, lines: &[String]) -> Emit<Frame> {
        let mut out = Emit::new();
        for l in lines {
            d.process(line(l), &mut out).unwrap();
        }
        out
    }

    #[test]
    fn first_frame_sets_the_run_id() {
        let mut d = Decoder::new(None);
        let out = feed(
            &mut d,
            &[progress("r1", 1), progress("r2", 2), progress("r1", 3)],
        );
        assert_eq!(out.items().len(), 2);
        assert_eq!(out.rejects().len(), 1);
        assert_eq!(out.rejects()[0].code, Code::FrameRunIdMismatch);
        assert_eq!(out.rejects()[0].meta.seq, Some(2));
        assert_eq!(d.run_id().get(), Some("r1"));
    }

    #[test]
    fn a_known_run_id_wins_over_the_first_frame() {
        let mut d = Decoder::new(Some("known".into()));
        let out = feed(&mut d, &[progress("other", 1), progress("known", 2)]);
        assert_eq!(out.items().len(), 1);
        assert_eq!(out.rejects()[0].code, Code::FrameRunIdMismatch);
        let missing = r#"{"type":"run.progress","seq":3,"payload":{}}"#.to_owned();
        let out = feed(&mut d, &[missing]);
        assert_eq!(out.rejects()[0].code, Code::FrameRunIdMismatch);
    }

    #[test]
    fn bad_lines_get_their_codes() {
        let mut d = Decoder::new(None);
        let lines = [
            "{oops".to_owned(),
            r#"{"runId":"r","seq":1}"#.to_owned(),
            r#"{"type":"x.y","runId":"r","seq":1,"payload":{}}"#.to_owned(),
        ];
        let out = feed(&mut d, &lines);
        let codes: Vec<_> = out.rejects().iter().map(|r| r.code.to_string()).collect();
        assert_eq!(
            codes,
            [
                "frame_json_invalid",
                "frame_schema_invalid",
                "frame_type_unknown"
            ]
        );
        assert!(out.items().is_empty());
    }

    #[test]
    fn seq_gaps_and_repeats_are_noted_not_rejected() {
        let mut d = Decoder::new(None);
        let out = feed(
            &mut d,
            &[
                progress("r", 1),
                progress("r", 2),
                progress("r", 5),
                progress("r", 5),
                progress("r", 3),
                progress("r", 6),
            ],
        );
        let notes: Vec<_> = out.items().iter().map(|f| f.meta.seq_note).collect();
        assert_eq!(
            notes,
            [
                None,
                None,
                Some(SeqNote::Gap),
                Some(SeqNote::Repeat),
                Some(SeqNote::Repeat),
                None
            ]
        );
        assert!(out.rejects().is_empty());
    }

    #[test]
    fn terminal_frame_stops_input() {
        let mut d = Decoder::new(None);
        let mut out = Emit::new();
        d.process(line(&progress("r", 1)), &mut out).unwrap();
        assert!(!out.stop_requested());
        let complete = r#"{"type":"run.complete","runId":"r","seq":2,"payload":{}}"#;
        d.process(line(complete), &mut out).unwrap();
        assert!(out.stop_requested());
        assert_eq!(out.items().len(), 2);
    }
}
