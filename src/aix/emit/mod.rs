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
//!
//! Layout: `sink` (the numbered frame stream), `keys` (idempotency keys and upload ids),
//! `chunk` (gzip+base64 part encoding of large items, held or streamed in two passes).

mod chunk;
mod keys;
mod sink;

use std::io;

use crate::protocol::frames::IMPORT_BATCH;
use crate::protocol::{Cursor, ImportSessionItem, RunMode, SOURCE_AIX};

use chunk::{Encoded, MAX_HELD_GZIP, encode_item};
use keys::{KeyPart, idempotency_key};
use sink::json_str;
pub use sink::{FrameSink, now_ms};

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
}

fn upsert_cursor(cursors: &mut Vec<Cursor>, cursor: Cursor) {
    match cursors.iter_mut().find(|c| c.key == cursor.key) {
        Some(slot) => *slot = cursor,
        None => cursors.push(cursor),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use base64::Engine;

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
