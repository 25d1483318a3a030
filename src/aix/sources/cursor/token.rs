//! The change token of a Cursor session (`StoreCursor.token`): what its rows looked like when
//! it was read, from keys, row ids and value lengths only.
//!
//! Serialised as compact JSON `{"c":[rowid,len],"b":[count,maxRowid],"t":createdAt,
//! "k":[[childId,[rowid,len],[count,maxRowid],fp],…]}`:
//! - `c`: the composer row's stamp; `b`: the bubble keys under `bubbleId:<id>:`;
//! - `k`: every subagent session the session owns (transitively), with its own composer row
//!   (`composerData:task-<id>`, rare) and bubble keys; the ids are what lets a later poll look
//!   at the children's rows without reading the parent; `fp` is the first 16 hex digits of the
//!   child item's fingerprint when it was sent (empty: no item), so that a parent read again
//!   does not re-send a child the ledger already holds as is;
//! - `t`: the composer's `createdAt`, which decides which of two sessions owns a subagent both
//!   name (a duplicated chat copies its spawn bubbles);
//! - `w`: the workspace folder the session was read with (see `folders`), absent when none.
//!
//! Two tokens are the same when `c`, `b`, `w` and the rows of `k` are equal; `t` and the child
//! fingerprints are carried, not compared.

use serde::{Deserialize, Serialize};

use super::db::Stamp;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ChangeToken {
    pub c: Stamp,
    pub b: (u64, i64),
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub k: Vec<Sub>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<String>,
}

/// One owned subagent: id, composer stamp, bubble keys, fingerprint prefix of its sent item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Sub(pub String, pub Stamp, pub (u64, i64), pub String);

/// How much of a child's fingerprint its parent's token keeps.
pub(super) const SUB_FP_LEN: usize = 16;

impl Sub {
    fn same_rows(&self, other: &Sub) -> bool {
        (&self.0, self.1, self.2) == (&other.0, other.1, other.2)
    }

    /// The fingerprint prefix recorded for a child whose item has `fingerprint`.
    pub fn fp(fingerprint: &str) -> String {
        fingerprint.chars().take(SUB_FP_LEN).collect()
    }
}

impl ChangeToken {
    /// `None` for a token of another layout (the session is read again).
    pub fn parse(token: &str) -> Option<Self> {
        serde_json::from_str(token).ok()
    }

    pub fn encode(&self) -> String {
        // Serialising plain numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether both tokens describe the same rows.
    pub fn same_rows(&self, other: &ChangeToken) -> bool {
        self.c == other.c
            && self.b == other.b
            && self.w == other.w
            && self.k.len() == other.k.len()
            && self.k.iter().zip(&other.k).all(|(a, b)| a.same_rows(b))
    }

    /// The fingerprint prefix this token recorded for child `id`, if it sent an item for it.
    pub fn child_fp(&self, id: &str) -> Option<&str> {
        self.k
            .iter()
            .find(|s| s.0 == id)
            .map(|s| s.3.as_str())
            .filter(|f| !f.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_with_ids_kept_exact() {
        let t = ChangeToken {
            c: (7, 120),
            b: (3, 40),
            t: Some(1_700_000_000_000),
            k: vec![Sub(
                "task-call_a\nfc_b".into(),
                (0, 0),
                (2, 41),
                "0123".into(),
            )],
            w: Some("/home/a/p".into()),
        };
        let s = t.encode();
        assert_eq!(ChangeToken::parse(&s), Some(t.clone()));
        assert_eq!(t.child_fp("task-call_a\nfc_b"), Some("0123"));
        let mut other = t.clone();
        other.t = None;
        other.k[0].3 = String::new();
        assert!(t.same_rows(&other));
        other.w = None;
        assert!(!t.same_rows(&other));
        other.w = t.w.clone();
        assert_eq!(other.child_fp("task-call_a\nfc_b"), None);
        other.b = (4, 42);
        assert!(!t.same_rows(&other));
        assert_eq!(ChangeToken::parse("legacy:ab"), None);
    }
}
