//! [`FrameSink`]: the numbered, ordered frame stream of one run, shared under one lock.

use std::io::{self, Write};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::protocol::frames::{
    HEALTH_STATUS, IMPORT_BATCH, IMPORT_CHUNK, RUN_COMPLETE, RUN_ERROR, RUN_PROGRESS,
};
use crate::protocol::{HealthStatus, RunError, RunProgress, encode_frame};

/// The ordered frame stream of one run.
pub struct FrameSink {
    inner: Mutex<SinkInner>,
}

struct SinkInner {
    out: Box<dyn Write + Send>,
    run_id: String,
    seq: u64,
    /// Epoch ms of the last import frame written.
    last_import_at: Option<i64>,
    /// Set after a failed write: the stream is broken and every later write fails fast.
    broken: bool,
}

impl FrameSink {
    pub fn new(out: Box<dyn Write + Send>, run_id: String) -> Self {
        Self {
            inner: Mutex::new(SinkInner {
                out,
                run_id,
                seq: 0,
                last_import_at: None,
                broken: false,
            }),
        }
    }

    /// Writes one frame and flushes it; returns its `seq`.
    ///
    /// Errors: the output is closed or failed (also every call after a failure).
    pub fn send<P: Serialize>(&self, kind: &str, payload: &P) -> io::Result<u64> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.broken {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "frame output closed",
            ));
        }
        inner.seq += 1;
        let seq = inner.seq;
        let mut line = encode_frame(kind, &inner.run_id, Some(seq), payload);
        line.push('\n');
        let result = inner
            .out
            .write_all(line.as_bytes())
            .and_then(|()| inner.out.flush());
        if result.is_err() {
            inner.broken = true;
        }
        if kind == IMPORT_BATCH || kind == IMPORT_CHUNK {
            inner.last_import_at = Some(now_ms());
        }
        result.map(|()| seq)
    }

    /// Writes one frame whose payload is already JSON, given as pieces to concatenate (so a
    /// batch of pre-serialised items is never copied into one string); returns its `seq`.
    ///
    /// Errors: as [`FrameSink::send`].
    pub fn send_raw(&self, kind: &str, payload: &[&str]) -> io::Result<u64> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.broken {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "frame output closed",
            ));
        }
        inner.seq += 1;
        let seq = inner.seq;
        let head = format!(
            "{{\"type\":{},\"runId\":{},\"seq\":{seq},\"payload\":",
            json_str(kind),
            json_str(&inner.run_id)
        );
        let out = &mut inner.out;
        let mut result = out.write_all(head.as_bytes());
        for piece in payload {
            result = result.and_then(|()| out.write_all(piece.as_bytes()));
        }
        let result = result
            .and_then(|()| out.write_all(b"}\n"))
            .and_then(|()| out.flush());
        if result.is_err() {
            inner.broken = true;
        }
        if kind == IMPORT_BATCH || kind == IMPORT_CHUNK {
            inner.last_import_at = Some(now_ms());
        }
        result.map(|()| seq)
    }

    pub fn last_import_at(&self) -> Option<i64> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_import_at
    }

    pub fn run_id(&self) -> String {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .run_id
            .clone()
    }

    pub fn progress(&self, p: &RunProgress) -> io::Result<u64> {
        self.send(RUN_PROGRESS, p)
    }

    pub fn complete(&self, p: &RunProgress) -> io::Result<u64> {
        self.send(RUN_COMPLETE, p)
    }

    pub fn error(&self, e: &RunError) -> io::Result<u64> {
        self.send(RUN_ERROR, e)
    }

    pub fn health(&self, h: &HealthStatus) -> io::Result<u64> {
        self.send(HEALTH_STATUS, h)
    }
}

/// A string as a JSON string literal.
pub(super) fn json_str(s: &str) -> String {
    // Serialising a string cannot fail.
    serde_json::to_string(s).expect("string serialises")
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
