//! Deterministic session labels and row ids (IMPORT_SEMANTICS.md item algorithm 2 and 4): the
//! same source entity always maps to the same ledger row, on any machine, in any order.

use sha2::{Digest, Sha256};

/// The unit separator between hashed parts.
const SEP: &[u8] = b"\x1f";

/// Kind of a scoped row id; part of both the hash and the id's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Turn,
    Message,
    Tool,
}

impl IdKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            IdKind::Turn => "turn",
            IdKind::Message => "message",
            IdKind::Tool => "tool",
        }
    }
}

/// Entity id of the synthetic root turn of a session without turns.
pub const ROOT_TURN_ENTITY: &str = "__root__";

fn hex_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(SEP);
        }
        hasher.update(part.trim().as_bytes());
    }
    format!("{:x}", hasher.finalize())
}

/// `imp_<kind>_<first 24 hex of SHA-256(kind ␟ source ␟ provider ␟ session ␟ entity)>`;
/// every part is trimmed.
pub fn scoped_id(
    kind: IdKind,
    source: &str,
    provider: &str,
    session_id: &str,
    entity_id: &str,
) -> String {
    let digest = hex_digest(&[kind.as_str(), source, provider, session_id, entity_id]);
    format!("imp_{}_{}", kind.as_str(), &digest[..24])
}

/// `import:<provider-seg>:<session-seg>:<hash10>` (see the module doc's rule reference).
pub fn session_label(source: &str, provider: &str, session_id: &str) -> String {
    let digest = hex_digest(&[source, provider, session_id]);
    let provider_seg = sanitize(provider, "provider");
    let mut session_seg = sanitize(session_id, "session");
    // Segments are ASCII after sanitizing, so byte truncation is a char boundary. A trailing
    // `-` left by the cut is kept (baseline).
    session_seg.truncate(32);
    format!("import:{provider_seg}:{session_seg}:{}", &digest[..10])
}

/// Lower-cases, replaces every run of characters outside `[a-z0-9_-]` with one `-`, trims `-`
/// from both ends; `fallback` when nothing is left.
fn sanitize(value: &str, fallback: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_run = false;
    for ch in value.trim().chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-' {
            out.push(ch);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        fallback.to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_vectors() {
        assert_eq!(
            session_label("aix", "anthropic", "session-full-1"),
            "import:anthropic:session-full-1:13ce4b76dc"
        );
        assert_eq!(
            session_label("aix", "Claude Code", "Task-call_VF\nfc_05 / x"),
            "import:claude-code:task-call_vf-fc_05-x:1107c675f0"
        );
        assert_eq!(
            session_label("aix", "cursor", "cursor-session-hinted"),
            "import:cursor:cursor-session-hinted:14c3b5583a"
        );
    }

    #[test]
    fn id_vectors() {
        assert_eq!(
            scoped_id(
                IdKind::Turn,
                "aix",
                "anthropic",
                "session-full-1",
                "turn-src-1"
            ),
            "imp_turn_213848d08221fd338a4716e5"
        );
        assert_eq!(
            scoped_id(
                IdKind::Tool,
                "aix",
                "anthropic",
                "session-full-1",
                "tool-src-1"
            ),
            "imp_tool_3cf0b1ef90d7676feabee392"
        );
        assert_eq!(
            scoped_id(
                IdKind::Turn,
                "aix",
                "anthropic",
                "chunk-session-1",
                ROOT_TURN_ENTITY
            ),
            "imp_turn_2483880b3ade84b2a1b147af"
        );
    }

    #[test]
    fn sanitize_fallbacks_and_cut() {
        assert_eq!(sanitize("  ", "provider"), "provider");
        assert_eq!(sanitize("Ünïcode!!", "session"), "n-code");
        let long = "a".repeat(31) + "-bbbb";
        let label = session_label("aix", "p", &long);
        assert!(
            label.starts_with(&format!("import:p:{}-:", "a".repeat(31))),
            "{label}"
        );
    }
}
