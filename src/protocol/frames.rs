//! Stdio JSONL v1 frames (PROTOCOL.md): the envelope, the typed frames of each direction, and
//! their encoding and decoding.
//!
//! Decoding never echoes payload content in an error: messages name the frame type and the
//! position of the problem only, because frames carry users' conversations.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::codes::Code;
use super::requests::{ChunkRequest, Cursor, ImportRequest};

/// A decoded frame with its envelope fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<T> {
    pub run_id: String,
    /// Per-run counter of worker frames, from 1; absent on control frames.
    pub seq: Option<u64>,
    pub body: T,
}

/// Frames a worker writes to stdout.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerFrame {
    /// One import request; its `run_id` is the envelope's.
    ImportBatch(ImportRequest),
    /// One part of one large item; its `run_id` is the envelope's.
    ImportChunk(ChunkRequest),
    RunProgress(RunProgress),
    /// Terminal: the worker emitted everything for the run.
    RunComplete(RunProgress),
    /// Terminal: the worker failed.
    RunError(RunError),
    HealthStatus(HealthStatus),
}

/// Frames NEX writes to a worker's stdin.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlFrame {
    RunStart(RunStart),
    RunStop(RunStop),
    HealthProbe,
}

pub const RUN_START: &str = "run.start";
pub const RUN_STOP: &str = "run.stop";
pub const HEALTH_PROBE: &str = "health.probe";
pub const IMPORT_BATCH: &str = "import.batch";
pub const IMPORT_CHUNK: &str = "import.chunk";
pub const RUN_PROGRESS: &str = "run.progress";
pub const RUN_COMPLETE: &str = "run.complete";
pub const RUN_ERROR: &str = "run.error";
pub const HEALTH_STATUS: &str = "health.status";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    Backfill,
    Tail,
}

impl RunMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunMode::Backfill => "backfill",
            RunMode::Tail => "tail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStart {
    pub mode: RunMode,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "persona_id")]
    pub persona_id: Option<String>,
    /// **Extension**: every cursor NEX has committed for the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cursors: Vec<Cursor>,
    /// **Extension**: worker settings (source roots, `full`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counters of `run.progress` and `run.complete`. Advisory: NEX's own counters come from its
/// commits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunProgress {
    #[serde(default)]
    pub imported: u64,
    #[serde(default)]
    pub upserted: u64,
    #[serde(default)]
    pub skipped: u64,
    #[serde(default)]
    pub failed: u64,
    /// **Extension**: sessions the run will emit (backfill, after discovery). `aix` counts
    /// session files (a file with inline sidechains holds more than one session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// **Extension**: sessions emitted so far (session files, for `aix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emitted: Option<u64>,
    /// **Extension**: source files the run checked and found unchanged since their cursor
    /// (backfill), so far. Files checked = `total` + this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged_files: Option<u64>,
    /// **Extension**: source lines of this run imported after repair (invalid UTF-8 replaced
    /// by U+FFFD, raw control characters in strings escaped), so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lossy_lines: Option<u64>,
    /// **Extension**: source files (or stores) of this run that could not be read, so far.
    /// They get no cursor, so the next run reads them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_files: Option<u64>,
    /// **Extension**: the first [`MAX_FILE_ERRORS`] of those failures, with their reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_errors: Vec<FileError>,
    /// **Extension**: the polled stores (Cursor databases, OpenCode data directories) of this
    /// run, so far: their sessions are also counted in `total`, `emitted` and
    /// `unchangedFiles`, one each, and this says how many of those units were store sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stores: Option<StoreFigures>,
}

/// What a run found in polled stores (Cursor databases, OpenCode data directories), where one
/// file (or folder) holds many sessions: so that "files" can count files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFigures {
    /// Store polls (a backfill polls each store, one database or data directory, once).
    #[serde(default)]
    pub stores: u64,
    /// Of those, stores in which no session had changed.
    #[serde(default)]
    pub stores_unchanged: u64,
    /// Sessions read from them (counted in `total` and `emitted` too).
    #[serde(default)]
    pub sessions: u64,
    /// Sessions in them unchanged since their cursor (counted in `unchangedFiles` too).
    #[serde(default)]
    pub sessions_unchanged: u64,
}

impl StoreFigures {
    pub fn is_empty(&self) -> bool {
        *self == StoreFigures::default()
    }
}

/// How many file failures a run (and a job) lists by name; the rest are only counted.
pub const MAX_FILE_ERRORS: usize = 20;

/// A source file a worker could not read: what the operator needs to fix it. Never content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileError {
    /// The file (or store) as the worker names it.
    pub path: String,
    /// `file_vanished` (removed between discovery and reading) or `file_unreadable`.
    pub code: String,
    /// The OS reason (e.g. `Permission denied (os error 13)`).
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    pub connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// A line that is not a usable frame. `message` never contains payload content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    pub code: Code,
    pub message: String,
    /// The envelope's run id and seq, when the envelope itself was readable.
    pub run_id: Option<String>,
    pub seq: Option<u64>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "runId", alias = "run_id", default)]
    run_id: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct OutEnvelope<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(rename = "runId")]
    run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    payload: &'a P,
}

/// Encodes one frame as a JSON line without its trailing newline.
pub fn encode_frame<P: Serialize>(
    kind: &str,
    run_id: &str,
    seq: Option<u64>,
    payload: &P,
) -> String {
    let envelope = OutEnvelope {
        kind,
        run_id,
        seq,
        payload,
    };
    // Serialising plain data structs with string keys cannot fail.
    serde_json::to_string(&envelope).expect("frame serialises")
}

impl WorkerFrame {
    pub fn kind(&self) -> &'static str {
        match self {
            WorkerFrame::ImportBatch(_) => IMPORT_BATCH,
            WorkerFrame::ImportChunk(_) => IMPORT_CHUNK,
            WorkerFrame::RunProgress(_) => RUN_PROGRESS,
            WorkerFrame::RunComplete(_) => RUN_COMPLETE,
            WorkerFrame::RunError(_) => RUN_ERROR,
            WorkerFrame::HealthStatus(_) => HEALTH_STATUS,
        }
    }

    /// Encodes the frame as one JSON line (no newline). Import payloads drop their `runId`,
    /// which travels in the envelope.
    pub fn encode(&self, run_id: &str, seq: u64) -> String {
        let seq = Some(seq);
        match self {
            WorkerFrame::ImportBatch(r) => {
                let mut r = r.clone();
                r.run_id = None;
                encode_frame(IMPORT_BATCH, run_id, seq, &r)
            }
            WorkerFrame::ImportChunk(r) => {
                let mut r = r.clone();
                r.run_id = None;
                encode_frame(IMPORT_CHUNK, run_id, seq, &r)
            }
            WorkerFrame::RunProgress(p) => encode_frame(RUN_PROGRESS, run_id, seq, p),
            WorkerFrame::RunComplete(p) => encode_frame(RUN_COMPLETE, run_id, seq, p),
            WorkerFrame::RunError(e) => encode_frame(RUN_ERROR, run_id, seq, e),
            WorkerFrame::HealthStatus(h) => encode_frame(HEALTH_STATUS, run_id, seq, h),
        }
    }
}

impl ControlFrame {
    pub fn encode(&self, run_id: &str) -> String {
        match self {
            ControlFrame::RunStart(s) => encode_frame(RUN_START, run_id, None, s),
            ControlFrame::RunStop(s) => encode_frame(RUN_STOP, run_id, None, s),
            ControlFrame::HealthProbe => {
                encode_frame(HEALTH_PROBE, run_id, None, &serde_json::Map::new())
            }
        }
    }
}

/// Decodes one line written by a worker.
///
/// Errors: unparsable JSON -> `frame_json_invalid`; an envelope or payload of the wrong shape ->
/// `frame_schema_invalid`; a type this version does not know -> `frame_type_unknown`.
pub fn decode_worker_frame(line: &str) -> Result<Envelope<WorkerFrame>, FrameError> {
    let (raw, run_id) = decode_envelope(line)?;
    let ctx = Ctx {
        kind: &raw.kind,
        run_id: &run_id,
        seq: raw.seq,
    };
    let body = match raw.kind.as_str() {
        IMPORT_BATCH => {
            let mut r: ImportRequest = ctx.payload(raw.payload)?;
            r.run_id = Some(run_id.clone());
            WorkerFrame::ImportBatch(r)
        }
        IMPORT_CHUNK => {
            let mut r: ChunkRequest = ctx.payload(raw.payload)?;
            r.run_id = Some(run_id.clone());
            WorkerFrame::ImportChunk(r)
        }
        RUN_PROGRESS => WorkerFrame::RunProgress(ctx.payload(raw.payload)?),
        RUN_COMPLETE => WorkerFrame::RunComplete(ctx.payload(raw.payload)?),
        RUN_ERROR => WorkerFrame::RunError(ctx.payload(raw.payload)?),
        HEALTH_STATUS => WorkerFrame::HealthStatus(ctx.payload(raw.payload)?),
        _ => return Err(ctx.error(Code::FrameTypeUnknown, "unknown frame type".into())),
    };
    Ok(Envelope {
        run_id,
        seq: raw.seq,
        body,
    })
}

/// Decodes one line written by NEX to a worker's stdin. Same error codes as
/// [`decode_worker_frame`].
pub fn decode_control_frame(line: &str) -> Result<Envelope<ControlFrame>, FrameError> {
    let (raw, run_id) = decode_envelope(line)?;
    let ctx = Ctx {
        kind: &raw.kind,
        run_id: &run_id,
        seq: raw.seq,
    };
    let body = match raw.kind.as_str() {
        RUN_START => ControlFrame::RunStart(ctx.payload(raw.payload)?),
        RUN_STOP => ControlFrame::RunStop(ctx.payload(raw.payload)?),
        HEALTH_PROBE => ControlFrame::HealthProbe,
        _ => return Err(ctx.error(Code::FrameTypeUnknown, "unknown frame type".into())),
    };
    Ok(Envelope {
        run_id,
        seq: raw.seq,
        body,
    })
}

fn decode_envelope(line: &str) -> Result<(RawEnvelope<'_>, String), FrameError> {
    let raw: RawEnvelope<'_> = serde_json::from_str(line).map_err(|e| {
        let code = json_error_code(&e);
        FrameError {
            code,
            message: format!("frame envelope: {} at column {}", category(&e), e.column()),
            run_id: None,
            seq: None,
        }
    })?;
    let run_id = raw.run_id.clone().unwrap_or_default();
    Ok((raw, run_id))
}

struct Ctx<'a> {
    kind: &'a str,
    run_id: &'a str,
    seq: Option<u64>,
}

impl Ctx<'_> {
    fn error(&self, code: Code, message: String) -> FrameError {
        FrameError {
            code,
            message,
            run_id: Some(self.run_id.to_owned()).filter(|r| !r.is_empty()),
            seq: self.seq,
        }
    }

    /// An absent payload decodes as `{}` so that payload-less frames with all-default fields
    /// are accepted.
    fn payload<T: DeserializeOwned>(&self, payload: Option<&RawValue>) -> Result<T, FrameError> {
        let text = payload.map_or("{}", RawValue::get);
        if !text.trim_start().starts_with('{') {
            return Err(self.error(
                Code::FrameSchemaInvalid,
                format!("{} payload is not an object", self.kind),
            ));
        }
        serde_json::from_str(text).map_err(|e| {
            self.error(
                Code::FrameSchemaInvalid,
                format!(
                    "{} payload: {} at column {}",
                    self.kind,
                    category(&e),
                    e.column()
                ),
            )
        })
    }
}

fn json_error_code(e: &serde_json::Error) -> Code {
    match e.classify() {
        serde_json::error::Category::Data => Code::FrameSchemaInvalid,
        _ => Code::FrameJsonInvalid,
    }
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Data => "wrong shape",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Io => "read error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips_with_run_id_from_envelope() {
        let req = ImportRequest {
            source: "aix".into(),
            mode: "tail".into(),
            idempotency_key: "k".into(),
            ..Default::default()
        };
        let line = WorkerFrame::ImportBatch(req.clone()).encode("run-9", 3);
        let decoded = decode_worker_frame(&line).unwrap();
        assert_eq!(decoded.run_id, "run-9");
        assert_eq!(decoded.seq, Some(3));
        let WorkerFrame::ImportBatch(got) = decoded.body else {
            panic!("not a batch")
        };
        assert_eq!(got.run_id.as_deref(), Some("run-9"));
        assert_eq!(got.idempotency_key, "k");
    }

    #[test]
    fn bad_lines_get_codes_without_content() {
        let e = decode_worker_frame("{not json").unwrap_err();
        assert_eq!(e.code, Code::FrameJsonInvalid);
        let e = decode_worker_frame(r#"{"runId":"r"}"#).unwrap_err();
        assert_eq!(e.code, Code::FrameSchemaInvalid);
        let e = decode_worker_frame(r#"{"type":"x.y","runId":"r","seq":2}"#).unwrap_err();
        assert_eq!(e.code, Code::FrameTypeUnknown);
        assert_eq!(e.seq, Some(2));
        let secret = "SECRET-MARKER";
        let line = format!(
            r#"{{"type":"import.batch","runId":"r","payload":{{"items":[{{"turns":"{secret}"}}]}}}}"#
        );
        let e = decode_worker_frame(&line).unwrap_err();
        assert_eq!(e.code, Code::FrameSchemaInvalid);
        assert!(!e.message.contains(secret));
        let e =
            decode_worker_frame(r#"{"type":"run.error","runId":"r","payload":[1]}"#).unwrap_err();
        assert_eq!(e.code, Code::FrameSchemaInvalid);
    }

    #[test]
    fn control_frames_round_trip() {
        let start = ControlFrame::RunStart(RunStart {
            mode: RunMode::Tail,
            source: "aix".into(),
            persona_id: None,
            cursors: vec![Cursor {
                key: "a".into(),
                value: serde_json::json!({"o": 1}),
            }],
            options: None,
        });
        let line = start.encode("r1");
        assert_eq!(decode_control_frame(&line).unwrap().body, start);
        let probe = decode_control_frame(&ControlFrame::HealthProbe.encode("r1")).unwrap();
        assert_eq!(probe.body, ControlFrame::HealthProbe);
    }
}
