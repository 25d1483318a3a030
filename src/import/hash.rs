//! The request hash (IMPORT_SEMANTICS.md import algorithm 3): SHA-256 over the canonical JSON
//! of `{source, mode, personaId, items}`, so that equal content hashes equally whatever key
//! order or alias spelling the sender used.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::protocol::{ImportRequest, ImportSessionItem};

#[derive(Serialize)]
struct Hashed<'a> {
    source: &'a str,
    mode: &'a str,
    #[serde(rename = "personaId")]
    persona_id: Option<&'a str>,
    items: &'a [ImportSessionItem],
}

/// Lower-case hex SHA-256 of the canonical request JSON. `runId`, the idempotency key and
/// cursors are not hashed; a blank `personaId` hashes as `null`.
pub fn request_hash(req: &ImportRequest) -> String {
    hash_parts(
        &req.source,
        &req.mode,
        req.persona_id.as_deref(),
        &req.items,
    )
}

/// [`request_hash`] from its parts (the chunk path hashes its synthetic request this way).
pub fn hash_parts(
    source: &str,
    mode: &str,
    persona_id: Option<&str>,
    items: &[ImportSessionItem],
) -> String {
    let persona_id = persona_id.map(str::trim).filter(|p| !p.is_empty());
    let hashed = Hashed {
        source: source.trim(),
        mode: mode.trim(),
        persona_id,
        items,
    };
    let mut hasher = HashWriter(Sha256::new());
    // Serialising plain data into a `Value` cannot fail (no non-string map keys).
    let value = serde_json::to_value(&hashed).unwrap_or(Value::Null);
    write_canonical(&value, &mut hasher);
    format!("{:x}", hasher.0.finalize())
}

/// Writes `value` as compact JSON with object keys sorted by byte order at every depth
/// (independent of serde_json's map ordering feature).
fn write_canonical(value: &Value, out: &mut HashWriter) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.put(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                write_scalar(&Value::String(key.clone()), out);
                out.put(b":");
                write_canonical(&map[key], out);
            }
            out.put(b"}");
        }
        Value::Array(items) => {
            out.put(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                write_canonical(item, out);
            }
            out.put(b"]");
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut HashWriter) {
    // Writing into a hasher never fails.
    let _ = serde_json::to_writer(&mut *out, value);
}

struct HashWriter(Sha256);

impl HashWriter {
    fn put(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> ImportRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn key_order_and_aliases_do_not_matter() {
        let a = req(
            r#"{"source":"aix","mode":"backfill","idempotencyKey":"k","items":[
            {"sourceProvider":"p","sourceSessionId":"s","sourceSessionFingerprint":"f",
             "session":{"metadata":{"b":1,"a":2}},"turns":[],"messages":[]}]}"#,
        );
        let b = req(
            r#"{"items":[{"messages":[],"turns":[],"session":{"metadata":{"a":2,"b":1}},
             "source_session_fingerprint":"f","source_session_id":"s","source_provider":"p"}],
             "idempotency_key":"other","mode":"backfill","source":"aix","runId":"r"}"#,
        );
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_eq!(request_hash(&a).len(), 64);
    }

    #[test]
    fn persona_and_content_change_the_hash() {
        let a = req(r#"{"source":"aix","mode":"backfill","idempotencyKey":"k","items":[]}"#);
        let b = req(
            r#"{"source":"aix","mode":"backfill","personaId":"x","idempotencyKey":"k","items":[]}"#,
        );
        let c = req(
            r#"{"source":"aix","mode":"backfill","personaId":"  ","idempotencyKey":"k","items":[]}"#,
        );
        assert_ne!(request_hash(&a), request_hash(&b));
        assert_eq!(request_hash(&a), request_hash(&c));
    }
}
