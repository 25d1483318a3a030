//! What a poll decides before reading: the cursor token of a session, what the poll knows of
//! the links each parent gives its children, and the order sessions are handed out in.

use std::collections::HashMap;

use super::Head;
use super::item::{LinkMap, links_hash};

/// A cursor token: `o1.<own>.<links>.<parent links>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    /// The session's own change token when it was read.
    pub own: String,
    /// Hash of the links this session's task parts give its children.
    pub links: String,
    /// Hash of the parent's links this session was built with (`-`: no parent in the store,
    /// `?`: they could not be read).
    pub parent: String,
}

impl Token {
    const TAG: &'static str = "o1";

    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('.');
        if it.next()? != Self::TAG {
            return None;
        }
        let (own, links, parent) = (it.next()?, it.next()?, it.next()?);
        it.next().is_none().then(|| Self {
            own: own.to_owned(),
            links: links.to_owned(),
            parent: parent.to_owned(),
        })
    }

    pub fn value(&self) -> String {
        format!("{}.{}.{}.{}", Self::TAG, self.own, self.links, self.parent)
    }
}

/// What a poll knows of the links a parent gives its children.
pub(super) enum Known {
    /// Read in this poll.
    Read(LinkMap),
    /// Only the hash, from the cursor of a parent that did not change.
    Hash(String),
}

impl Known {
    pub fn hash(&self) -> String {
        match self {
            Known::Read(map) => links_hash(map),
            Known::Hash(h) => h.clone(),
        }
    }
}

/// Session indexes, oldest first (creation time, then id; unknown times last), each parent
/// present in the store moved before its children.
pub(super) fn parents_first(heads: &[Head]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..heads.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |h: &Head| (h.created.is_none(), h.created, h.id.clone());
        key(&heads[a]).cmp(&key(&heads[b]))
    });
    let index: HashMap<&str, usize> = heads
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.as_str(), i))
        .collect();
    let mut done = vec![false; heads.len()];
    let mut out = Vec::with_capacity(heads.len());
    for &i in &order {
        let mut chain = vec![i];
        let mut cur = i;
        while let Some(&p) = heads[cur].parent.as_deref().and_then(|p| index.get(p)) {
            if done[p] || chain.contains(&p) {
                break;
            }
            chain.push(p);
            cur = p;
        }
        for &c in chain.iter().rev() {
            if !done[c] {
                done[c] = true;
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aix::sources::opencode::Origin;

    fn head(id: &str, parent: Option<&str>, created: Option<i64>) -> Head {
        Head {
            id: id.to_owned(),
            parent: parent.map(str::to_owned),
            created,
            updated: None,
            archived: None,
            title: None,
            directory: None,
            project_id: None,
            version: None,
            slug: None,
            origin: Origin::Db(0),
            own: String::new(),
        }
    }

    /// Oldest first, but a child created (by its clock) before its parent still follows it,
    /// and a parent cycle neither loops nor drops a session.
    #[test]
    fn order_is_oldest_first_with_parents_before_children() {
        let heads = vec![
            head("c", Some("p"), Some(1)),
            head("p", None, Some(5)),
            head("x", None, Some(3)),
            head("loop1", Some("loop2"), Some(7)),
            head("loop2", Some("loop1"), Some(8)),
            head("late", None, None),
        ];
        let ids: Vec<&str> = parents_first(&heads)
            .into_iter()
            .map(|i| heads[i].id.as_str())
            .collect();
        assert_eq!(ids, ["p", "c", "x", "loop2", "loop1", "late"]);
    }

    #[test]
    fn tokens_round_trip_and_reject_other_layouts() {
        let t = Token {
            own: "ab".into(),
            links: "-".into(),
            parent: "?".into(),
        };
        assert_eq!(Token::parse(&t.value()), Some(t));
        assert_eq!(Token::parse("o2.ab.-.-"), None);
        assert_eq!(Token::parse("o1.ab.-"), None);
        assert_eq!(Token::parse("o1.ab.-.-.x"), None);
    }
}
