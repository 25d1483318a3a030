//! Idempotency keys (also the upload ids of chunked items), from the content of the items.

use sha2::{Digest, Sha256};

use crate::protocol::RunMode;

/// What identifies an item's content in its idempotency key.
pub(super) struct KeyPart {
    pub(super) provider: String,
    pub(super) session_id: String,
    pub(super) fingerprint: String,
    pub(super) part: String,
}

/// `aix:<mode>:<hex sha256 over (provider, sessionId, fingerprint, part) of the items>`.
pub(super) fn idempotency_key(mode: RunMode, parts: &[KeyPart]) -> String {
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
