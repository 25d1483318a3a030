//! The change token of a Cursor session (`StoreCursor.token`): what its rows looked like when
//! it was read, from keys, row ids and value lengths only.
//!
//! Serialised as compact JSON `{"c":[rowid,len],"b":[count,maxRowid],"t":createdAt,
//! "k":[[childId,[rowid,len],[count,maxRowid]],…]}`:
//! - `c`: the composer row's stamp; `b`: the bubble keys under `bubbleId:<id>:`;
//! - `k`: every subagent session the session owns (transitively), with its own composer row
//!   (`composerData:task-<id>`, rare) and bubble keys; the ids are what lets a later poll look
//!   at the children's rows without reading the parent;
//! - `t`: the composer's `createdAt`, which decides which of two sessions owns a subagent both
//!   name (a duplicated chat copies its spawn bubbles).
//!
//! Two tokens are the same when `c`, `b` and `k` are equal; `t` is carried, not compared.

use serde::{Deserialize, Serialize};

use super::db::Stamp;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ChangeToken {
    pub c: Stamp,
    pub b: (u64, i64),
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub k: Vec<(String, Stamp, (u64, i64))>,
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
        self.c == other.c && self.b == other.b && self.k == other.k
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
            k: vec![("task-call_a\nfc_b".into(), (0, 0), (2, 41))],
        };
        let s = t.encode();
        assert_eq!(ChangeToken::parse(&s), Some(t.clone()));
        let mut other = t.clone();
        other.t = None;
        assert!(t.same_rows(&other));
        other.b = (4, 42);
        assert!(!t.same_rows(&other));
        assert_eq!(ChangeToken::parse("legacy:ab"), None);
    }
}
