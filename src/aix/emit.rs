//! The emitter: items and cursors in, one ordered stream of worker frames out (PROTOCOL.md,
//! SOURCES.md "Items, fingerprints, keys").
//!
//! - [`FrameSink`] owns stdout: it numbers frames (`seq` from 1, strictly increasing) and writes
//!   each as one line. It is shared (the control thread answers health probes through it), so
//!   numbering and writing happen under one lock and the stream stays ordered.
//! - [`Emitter`] packs items into `import.batch` frames (up to `batch_items` / `batch_bytes`) and
//!   sends an item over `chunk_threshold` as `import.chunk` parts. A cursor rides on the frame
//!   whose commit makes it true: the batch holding its file's last item, or the part that
//!   completes its upload.
//!
//! Backpressure: a write blocks while the reader (NEX) is behind; the emitter holds at most one
//! batch, so a slow ledger stalls parsing instead of growing memory.

use std::io::{self, Write};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::protocol::frames::{
    HEALTH_STATUS, IMPORT_BATCH, IMPORT_CHUNK, RUN_COMPLETE, RUN_ERROR, RUN_PROGRESS,
};
use crate::protocol::{
    ChunkRequest, Cursor, ENCODING_GZIP_BASE64, HealthStatus, ImportSessionItem, RunError, RunMode,
    RunProgress, SOURCE_AIX, encode_frame,
};

/// Packing limits (SOURCES.md defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmitLimits {
    pub batch_items: usize,
    pub batch_bytes: usize,
    pub chunk_threshold: usize,
    /// Characters of base64 per `import.chunk` part.
    pub chunk_bytes: usize,
}

impl Default for EmitLimits {
    fn default() -> Self {
        Self {
            batch_items: 64,
            batch_bytes: 4 << 20,
            chunk_threshold: 4 << 20,
            chunk_bytes: 1 << 20,
        }
    }
}

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
fn json_str(s: &str) -> String {
    // Serialising a string cannot fail.
    serde_json::to_string(s).expect("string serialises")
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What identifies an item's content in its idempotency key.
struct KeyPart {
    provider: String,
    session_id: String,
    fingerprint: String,
    part: String,
}

/// `aix:<mode>:<hex sha256 over (provider, sessionId, fingerprint, part) of the items>`.
fn idempotency_key(mode: RunMode, parts: &[KeyPart]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        for field in [&p.provider, &p.session_id, &p.fingerprint, &p.part] {
            h.update(field.as_bytes());
            h.update([0x1f]);
        }
        h.update([0x1e]);
    }
    format!("aix:{}:{:x}", mode.as_str(), h.finalize())
}

/// Packs items into frames on a [`FrameSink`].
pub struct Emitter<'s> {
    sink: &'s FrameSink,
    mode: RunMode,
    persona_id: Option<String>,
    limits: EmitLimits,
    /// JSON of each pending item, serialised once.
    items: Vec<String>,
    keys: Vec<KeyPart>,
    bytes: usize,
    /// Cursors waiting for the next frame that commits items; one per key, latest wins.
    cursors: Vec<Cursor>,
    /// Items emitted so far (sessions or partial sessions).
    pub emitted_items: u64,
    /// Gzip bytes of one item held before sending ([`MAX_HELD_GZIP`]).
    gzip_cap: usize,
}

impl<'s> Emitter<'s> {
    pub fn new(
        sink: &'s FrameSink,
        mode: RunMode,
        persona_id: Option<String>,
        limits: EmitLimits,
    ) -> Self {
        Self {
            sink,
            mode,
            persona_id,
            limits,
            items: Vec::new(),
            keys: Vec::new(),
            bytes: 0,
            cursors: Vec::new(),
            emitted_items: 0,
            gzip_cap: MAX_HELD_GZIP,
        }
    }

    pub fn sink(&self) -> &'s FrameSink {
        self.sink
    }

    /// Queues the items read from one file and the cursor that becomes true with them. `part`
    /// is what, besides the fingerprint, determines the items' content (the emit offset and any
    /// lineage filled in): equal keys always carry equal payloads. A cursor with no items rides
    /// on the next frame that commits items.
    ///
    /// Errors: the frame output failed.
    pub fn push_file(
        &mut self,
        items: Vec<ImportSessionItem>,
        part: &str,
        cursor: Option<Cursor>,
    ) -> io::Result<()> {
        let mut cursor = cursor;
        let count = items.len();
        for (i, mut item) in items.into_iter().enumerate() {
            // The payload must be a function of the key: a wall-clock stamp would make a
            // replay of the same key a payload mismatch.
            item.imported_at_ms = 0;
            let key = KeyPart {
                provider: item.source_provider.clone(),
                session_id: item.source_session_id.clone(),
                fingerprint: item.source_session_fingerprint.clone(),
                part: part.to_owned(),
            };
            // An odd part size cuts the whole encoding (never streamed), so the gzip is held.
            let gzip_cap = if self.limits.chunk_bytes.max(4).is_multiple_of(4) {
                self.gzip_cap
            } else {
                usize::MAX
            };
            let encoded = encode_item(&item, self.limits.chunk_threshold, gzip_cap)?;
            let last = i + 1 == count;
            let json = match encoded {
                Encoded::Json(json) => json,
                Encoded::Gzip(_) | Encoded::Large(_) => {
                    self.flush()?;
                    let cursors = if last {
                        let mut c = std::mem::take(&mut self.cursors);
                        if let Some(cur) = cursor.take() {
                            upsert_cursor(&mut c, cur);
                        }
                        c
                    } else {
                        Vec::new()
                    };
                    match encoded {
                        Encoded::Gzip(gz) => {
                            drop(item);
                            self.send_chunked(key, gz, cursors)?;
                        }
                        Encoded::Large(gz_len) => {
                            self.send_streamed(key, &item, gz_len, cursors)?;
                        }
                        Encoded::Json(_) => {}
                    }
                    continue;
                }
            };
            drop(item);
            if self.items.len() >= self.limits.batch_items
                || (!self.items.is_empty() && self.bytes + json.len() > self.limits.batch_bytes)
            {
                self.flush()?;
            }
            self.bytes += json.len();
            self.items.push(json);
            self.keys.push(key);
            if last && let Some(cur) = cursor.take() {
                upsert_cursor(&mut self.cursors, cur);
            }
        }
        if let Some(cur) = cursor {
            upsert_cursor(&mut self.cursors, cur);
        }
        Ok(())
    }

    /// Sends the pending batch, if it has items. Cursors without items stay pending.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        let mut head = format!(
            "{{\"source\":{},\"mode\":{},",
            json_str(SOURCE_AIX),
            json_str(self.mode.as_str())
        );
        if let Some(p) = &self.persona_id {
            head.push_str(&format!("\"personaId\":{},", json_str(p)));
        }
        head.push_str(&format!(
            "\"idempotencyKey\":{},\"items\":[",
            json_str(&idempotency_key(self.mode, &self.keys))
        ));
        let tail = if self.cursors.is_empty() {
            "]}".to_owned()
        } else {
            // Cursors are plain JSON values; serialising cannot fail.
            format!(
                "],\"cursors\":{}}}",
                serde_json::to_string(&self.cursors).expect("cursors serialise")
            )
        };
        let mut pieces: Vec<&str> = Vec::with_capacity(self.items.len() * 2 + 2);
        pieces.push(&head);
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                pieces.push(",");
            }
            pieces.push(item);
        }
        pieces.push(&tail);
        self.sink.send_raw(IMPORT_BATCH, &pieces)?;
        self.emitted_items += self.items.len() as u64;
        self.items.clear();
        self.keys.clear();
        self.cursors.clear();
        self.bytes = 0;
        Ok(())
    }

    /// Cursors still waiting for a frame (dropped at the end of a run: their files are read
    /// again next time, which is safe).
    pub fn pending_cursors(&self) -> usize {
        self.cursors.len()
    }

    /// Sends the gzip of one item as `import.chunk` parts of `chunk_bytes` base64 characters.
    /// With a part size that is a multiple of 4, each part is the base64 of its own slice of
    /// `gz` (equal to the slice of the whole encoding), so the encoding is never held whole.
    fn send_chunked(&mut self, key: KeyPart, gz: Vec<u8>, cursors: Vec<Cursor>) -> io::Result<()> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let step = self.limits.chunk_bytes.max(4);
        // The whole encoding only for an odd part size (a part would split a 4-char group).
        let whole = (!step.is_multiple_of(4)).then(|| b64.encode(&gz));
        let encoded_len = gz.len().div_ceil(3) * 4;
        let id = idempotency_key(self.mode, std::slice::from_ref(&key));
        let total = encoded_len.div_ceil(step).max(1);
        let mut cursors = Some(cursors);
        for index in 0..total {
            let data = match &whole {
                // base64 is ASCII: any byte index is a char boundary.
                Some(all) => all[index * step..((index + 1) * step).min(all.len())].to_owned(),
                None => {
                    let raw = step / 4 * 3;
                    let start = (index * raw).min(gz.len());
                    b64.encode(&gz[start..(start + raw).min(gz.len())])
                }
            };
            let part = ChunkRequest {
                source: SOURCE_AIX.to_owned(),
                run_id: None,
                mode: self.mode.as_str().to_owned(),
                persona_id: self.persona_id.clone(),
                idempotency_key: id.clone(),
                upload_id: id.clone(),
                chunk_index: index as i64,
                chunk_total: total as i64,
                encoding: ENCODING_GZIP_BASE64.to_owned(),
                data,
                source_provider: key.provider.clone(),
                source_session_id: key.session_id.clone(),
                source_session_fingerprint: key.fingerprint.clone(),
                cursors: if index + 1 == total {
                    cursors.take().unwrap_or_default()
                } else {
                    Vec::new()
                },
            };
            self.sink.send(IMPORT_CHUNK, &part)?;
        }
        self.emitted_items += 1;
        Ok(())
    }
}

impl Emitter<'_> {
    /// Sends an item whose gzip was too large to hold ([`MAX_HELD_GZIP`]): it is serialised
    /// and compressed again, exactly as the first time (same writes into the same encoder, so
    /// the same bytes), and each part is sent as soon as its slice of the gzip is complete.
    /// Requires a part size that is a multiple of 4.
    ///
    /// Errors: the frame output failed, or the second encoding differs in length.
    fn send_streamed(
        &mut self,
        key: KeyPart,
        item: &ImportSessionItem,
        gz_len: usize,
        cursors: Vec<Cursor>,
    ) -> io::Result<()> {
        let step = self.limits.chunk_bytes.max(4);
        let raw_per_part = step / 4 * 3;
        let id = idempotency_key(self.mode, std::slice::from_ref(&key));
        let total = gz_len.div_ceil(raw_per_part).max(1);
        let template = ChunkRequest {
            source: SOURCE_AIX.to_owned(),
            run_id: None,
            mode: self.mode.as_str().to_owned(),
            persona_id: self.persona_id.clone(),
            idempotency_key: id.clone(),
            upload_id: id,
            chunk_index: 0,
            chunk_total: total as i64,
            encoding: ENCODING_GZIP_BASE64.to_owned(),
            data: String::new(),
            source_provider: key.provider,
            source_session_id: key.session_id,
            source_session_fingerprint: key.fingerprint,
            cursors: Vec::new(),
        };
        let parts = PartWriter {
            sink: self.sink,
            template,
            raw: Vec::with_capacity(raw_per_part),
            raw_per_part,
            next: 0,
            total,
            cursors: Some(cursors),
        };
        let mut w = SpillWriter {
            threshold: self.limits.chunk_threshold,
            buf: Vec::new(),
            gz: None,
            sink: Some(parts),
        };
        serde_json::to_writer(&mut w, item).map_err(io::Error::other)?;
        let Some(gz) = w.gz else {
            return Err(io::Error::other(
                "large item re-encoded under the threshold",
            ));
        };
        let gz = gz.into_inner().map_err(|e| e.into_error())?;
        gz.finish()?.finish()?;
        self.emitted_items += 1;
        Ok(())
    }
}

/// Receives the gzip of an item and sends it as `import.chunk` parts of `raw_per_part` bytes
/// (base64-encoded), each as soon as it is full; the last one, on `finish`, with the cursors.
struct PartWriter<'s> {
    sink: &'s FrameSink,
    template: ChunkRequest,
    raw: Vec<u8>,
    raw_per_part: usize,
    next: usize,
    total: usize,
    cursors: Option<Vec<Cursor>>,
}

impl PartWriter<'_> {
    fn send_part(&mut self) -> io::Result<()> {
        if self.next >= self.total {
            return Err(io::Error::other("re-encoded gzip longer than the first"));
        }
        let mut part = self.template.clone();
        part.chunk_index = self.next as i64;
        part.data = base64::engine::general_purpose::STANDARD.encode(&self.raw);
        if self.next + 1 == self.total {
            part.cursors = self.cursors.take().unwrap_or_default();
        }
        self.raw.clear();
        self.next += 1;
        self.sink.send(IMPORT_CHUNK, &part).map(|_| ())
    }

    /// Sends the last part; checks that exactly `total` parts were sent.
    fn finish(mut self) -> io::Result<()> {
        if !self.raw.is_empty() || self.next == 0 {
            self.send_part()?;
        }
        if self.next != self.total {
            return Err(io::Error::other("re-encoded gzip shorter than the first"));
        }
        Ok(())
    }
}

impl Write for PartWriter<'_> {
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len();
        while !bytes.is_empty() {
            let room = self.raw_per_part - self.raw.len();
            let take = room.min(bytes.len());
            self.raw.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            // A full part is sent once more bytes follow (the last part waits for `finish`).
            if self.raw.len() == self.raw_per_part && !bytes.is_empty() {
                self.send_part()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An item serialised once: its JSON while that stays within the chunk threshold, else the
/// gzip of its JSON, streamed from the point it crossed the threshold (the JSON of a large item
/// is never held whole); a gzip past its cap is only counted (`Large`: its length), to be
/// encoded again part by part.
enum Encoded {
    Json(String),
    Gzip(Vec<u8>),
    Large(usize),
}

/// Gzip bytes of one item held before it is sent; a larger item is encoded twice instead.
const MAX_HELD_GZIP: usize = 16 << 20;

fn encode_item(item: &ImportSessionItem, threshold: usize, gzip_cap: usize) -> io::Result<Encoded> {
    let mut w = SpillWriter {
        threshold,
        buf: Vec::new(),
        gz: None,
        sink: Some(CappedGzip::Held(Vec::new(), gzip_cap)),
    };
    serde_json::to_writer(&mut w, item).map_err(io::Error::other)?;
    match w.gz {
        Some(gz) => {
            let gz = gz.into_inner().map_err(|e| e.into_error())?;
            Ok(match gz.finish()? {
                CappedGzip::Held(v, _) => Encoded::Gzip(v),
                CappedGzip::Counted(n) => Encoded::Large(n),
            })
        }
        // serde_json writes UTF-8 only.
        None => Ok(Encoded::Json(
            String::from_utf8(w.buf).map_err(io::Error::other)?,
        )),
    }
}

/// The gzip of an item, held up to a cap, then only counted.
enum CappedGzip {
    Held(Vec<u8>, usize),
    Counted(usize),
}

impl Write for CappedGzip {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            CappedGzip::Held(v, cap) if v.len() + bytes.len() > *cap => {
                *self = CappedGzip::Counted(v.len() + bytes.len());
            }
            CappedGzip::Held(v, _) => v.extend_from_slice(bytes),
            CappedGzip::Counted(n) => *n += bytes.len(),
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Buffers up to `threshold` bytes, then moves everything into a level-1 gzip stream written
/// to `sink`. The writes reaching the encoder depend only on the JSON, so two encodings of one
/// item give the same gzip.
struct SpillWriter<W: Write> {
    threshold: usize,
    buf: Vec<u8>,
    gz: Option<io::BufWriter<GzEncoder<W>>>,
    sink: Option<W>,
}

impl<W: Write> Write for SpillWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(gz) = &mut self.gz {
            gz.write_all(bytes)?;
        } else if self.buf.len() + bytes.len() > self.threshold {
            let sink = self
                .sink
                .take()
                .ok_or_else(|| io::Error::other("gzip sink already used"))?;
            let mut gz =
                io::BufWriter::with_capacity(1 << 16, GzEncoder::new(sink, Compression::new(1)));
            gz.write_all(&std::mem::take(&mut self.buf))?;
            gz.write_all(bytes)?;
            self.gz = Some(gz);
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn upsert_cursor(cursors: &mut Vec<Cursor>, cursor: Cursor) {
    match cursors.iter_mut().find(|c| c.key == cursor.key) {
        Some(slot) => *slot = cursor,
        None => cursors.push(cursor),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn item(n: usize) -> ImportSessionItem {
        let mut v = serde_json::json!({
            "sourceProvider": "claude_code", "sourceSessionId": "s", "sourceSessionFingerprint": "f",
            "session": {}, "turns": [], "messages": []
        });
        let msgs: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                serde_json::json!({"sourceMessageId": format!("m{i}"), "role": "user",
                "content": format!("{i} {}", "lorem ipsum ".repeat(i % 17))})
            })
            .collect();
        v["messages"] = serde_json::Value::Array(msgs);
        serde_json::from_value(v).unwrap()
    }

    fn frames(limits: EmitLimits, gzip_cap: usize, item: &ImportSessionItem) -> String {
        let out = Shared::default();
        let sink = FrameSink::new(Box::new(out.clone()), "r".into());
        let mut e = Emitter::new(&sink, RunMode::Backfill, None, limits);
        e.gzip_cap = gzip_cap;
        let cursor: Cursor =
            serde_json::from_value(serde_json::json!({"key": "k", "value": {}})).unwrap();
        e.push_file(vec![item.clone()], "0", Some(cursor)).unwrap();
        e.flush().unwrap();
        assert_eq!(e.emitted_items, 1);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    /// An item whose gzip passes the cap is encoded twice and streamed: the frames are byte
    /// for byte those of the held path.
    #[test]
    fn streamed_large_item_frames_equal_held_ones() {
        let it = item(3000);
        for chunk_bytes in [4, 64, 1000, 4096] {
            let limits = EmitLimits {
                chunk_threshold: 1024,
                chunk_bytes,
                ..EmitLimits::default()
            };
            let held = frames(limits, usize::MAX, &it);
            assert!(held.lines().count() > 1, "{chunk_bytes}");
            for cap in [0, 1, 100, 5000] {
                assert_eq!(frames(limits, cap, &it), held, "{chunk_bytes} {cap}");
            }
        }
    }

    /// The parts are the whole base64 encoding cut every `chunk_bytes` characters, whether
    /// each is encoded from its own slice (part size a multiple of 4) or cut from the whole.
    #[test]
    fn chunk_parts_are_the_whole_encoding_cut_in_order() {
        let b64 = &base64::engine::general_purpose::STANDARD;
        for step in [1, 4, 5, 7, 8, 12, 4096] {
            for len in [0usize, 1, 2, 3, 4, 5, 6, 11, 12, 13, 100, 9001] {
                let gz: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let out = Shared::default();
                let sink = FrameSink::new(Box::new(out.clone()), "r".into());
                let limits = EmitLimits {
                    chunk_bytes: step,
                    ..EmitLimits::default()
                };
                let mut e = Emitter::new(&sink, RunMode::Backfill, None, limits);
                let key = KeyPart {
                    provider: "p".into(),
                    session_id: "s".into(),
                    fingerprint: "f".into(),
                    part: "0".into(),
                };
                e.send_chunked(key, gz.clone(), Vec::new()).unwrap();
                let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
                let parts: Vec<serde_json::Value> = text
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<serde_json::Value>(l).unwrap()["payload"].clone()
                    })
                    .collect();
                let whole = b64.encode(&gz);
                let size = step.max(4);
                assert_eq!(
                    parts.len(),
                    whole.len().div_ceil(size).max(1),
                    "{step} {len}"
                );
                let mut joined = String::new();
                for (i, p) in parts.iter().enumerate() {
                    assert_eq!(p["chunkIndex"], i as i64);
                    assert_eq!(p["chunkTotal"], parts.len() as i64);
                    let d = p["data"].as_str().unwrap();
                    if i + 1 < parts.len() {
                        assert_eq!(d.len(), size, "{step} {len} {i}");
                    }
                    joined.push_str(d);
                }
                assert_eq!(joined, whole, "{step} {len}");
            }
        }
    }
}
