//! The request hash (IMPORT_SEMANTICS.md import algorithm 3): SHA-256 over the canonical JSON
//! of `{source, mode, personaId, items}`, so that equal content hashes equally whatever key
//! order or alias spelling the sender used.

use sha2::{Digest, Sha256};

use super::canonical::Canonical;

use crate::protocol::{ImportRequest, ImportSessionItem};

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
    // The canonical object `{"items":[..],"mode":..,"personaId":..,"source":..}` (keys in
    // sorted order), streamed into the hasher one item at a time so that memory follows the
    // largest message or turn, not the request.
    let mut hasher = Sha256::new();
    let mut encoder = Canonical::new();
    hasher.update(b"{\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            hasher.update(b",");
        }
        // Plain data always serialises (string keys only, no enum variants with data).
        let _ = encoder.hash_struct(&mut hasher, item);
    }
    hasher.update(b"],\"mode\":");
    hasher.update(json_string(mode.trim()));
    hasher.update(b",\"personaId\":");
    match persona_id {
        Some(persona) => hasher.update(json_string(persona)),
        None => hasher.update(b"null"),
    }
    hasher.update(b",\"source\":");
    hasher.update(json_string(source.trim()));
    hasher.update(b"}");
    format!("{:x}", hasher.finalize())
}

fn json_string(s: &str) -> Vec<u8> {
    // A `&str` always serialises.
    serde_json::to_vec(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ToolJson;

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

    /// The streamed form equals the SHA-256 of the whole request's sorted-key JSON.
    #[test]
    fn streamed_hash_equals_the_canonical_document() {
        let a = req(
            r#"{"source":" aix ","mode":"tail","personaId":"pé","idempotencyKey":"k","items":[
            {"sourceProvider":"p","sourceSessionId":"s","sourceSessionFingerprint":"f","session":{}},
            {"sourceProvider":"q","sourceSessionId":"t","sourceSessionFingerprint":"g","session":{"metadata":{"b":1,"a":2}}}]}"#,
        );
        let doc = serde_json::json!({"source": "aix", "mode": "tail", "personaId": "pé", "items": a.items});
        let canonical = crate::import::canonical::to_canonical_vec(&doc).unwrap();
        assert_eq!(
            request_hash(&a),
            format!("{:x}", Sha256::digest(&canonical))
        );
    }

    /// Tool JSON kept as the text that came (`protocol::ToolJson::Text`) hashes as the same
    /// JSON parsed: the stored hashes of earlier imports stay valid.
    #[test]
    fn tool_json_text_hashes_as_its_value() {
        let body = |params: &str, result: &str| {
            format!(
                r#"{{"source":"aix","mode":"backfill","idempotencyKey":"k","items":[
                {{"sourceProvider":"p","sourceSessionId":"s","sourceSessionFingerprint":"f",
                 "session":{{}},"turns":[],"messages":[],"toolCalls":[{{"sourceToolCallId":"c",
                 "toolName":"Bash","startedAtMs":1,"sequence":0,
                 "paramsJson":{params},"resultJson":{result}}}]}}]}}"#
            )
        };
        let text = req(&body(
            r#"{"command":"ls \"a\"","n":[1,-2,2.5]}"#,
            r#""line\nline\u0001""#,
        ));
        let call = &text.items[0].tool_calls[0];
        assert!(matches!(call.params_json, Some(ToolJson::Text(_))));
        assert!(matches!(call.result_json, Some(ToolJson::Text(_))));
        let mut parsed = text.clone();
        for call in &mut parsed.items[0].tool_calls {
            call.params_json = call.params_json.take().map(|j| ToolJson::Value(j.into()));
            call.result_json = call.result_json.take().map(|j| ToolJson::Value(j.into()));
        }
        let reordered = req(&body(
            r#"{ "n": [1, -2, 2.50], "command": "ls \u0022a\u0022" }"#,
            r#""line\u000aline\u0001""#,
        ));
        assert!(matches!(
            reordered.items[0].tool_calls[0].params_json,
            Some(ToolJson::Value(_))
        ));
        assert_eq!(request_hash(&text), request_hash(&parsed));
        assert_eq!(request_hash(&text), request_hash(&reordered));
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
