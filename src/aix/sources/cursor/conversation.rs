//! The conversation order of a session's bubbles.
//!
//! - A composer with `fullConversationHeadersOnly` lists its bubbles in order; a composer with an
//!   inline `conversation` holds them in order. Those are the *listed* bubbles.
//! - Bubbles stored under the session's keys but not listed (a spawn's tool bubble that some
//!   versions track apart, a bubble written before its header) are *unlisted*: one with a time
//!   goes right after the last listed bubble not later than it (ties by time, then row id);
//!   one without a time (versions before late 2025 write none) goes right after the last
//!   listed bubble stored before it (a lower row id: Cursor inserts a turn's bubbles as they
//!   happen), after the timed ones placed there. Real composers drop a turn's tool-call bubbles
//!   from their headers and keep the keys: those calls are placed in their turn, not lost.
//! - A session with no listed order at all (no headers, no inline conversation: subagent
//!   sessions, headerless composers) is ordered by time, then row id; bubbles without a time
//!   come after the timed ones, by row id.

use std::collections::HashSet;

use super::build::Entry;
use super::db::Row;
use super::record::{Bubble, parse_object};
use crate::aix::sources::ParseStats;
use crate::aix::sources::common::count_skip;

/// A bubble read from its own key.
pub(super) struct Keyed<'a> {
    pub id: String,
    pub rowid: i64,
    pub bubble: Bubble<'a>,
}

/// The bubble rows of a session, parsed.
#[derive(Default)]
pub(super) struct Parsed<'a> {
    pub keyed: Vec<Keyed<'a>>,
    /// Ids of the rows whose value is NULL (deleted bubbles), already counted.
    pub deleted: HashSet<String>,
}

/// Parses the bubble rows of a session: a NULL value is a deleted bubble (`deleted_row`), a
/// malformed value is counted in `malformed_lines`, a value that is not text (a number) or is
/// JSON but not an object is skipped and counted (`bubble_not_text`, `bubble_not_object`).
pub(super) fn parse_rows<'a>(rows: &'a [Row], prefix: &str, stats: &mut ParseStats) -> Parsed<'a> {
    let mut out = Parsed {
        keyed: Vec::with_capacity(rows.len()),
        deleted: HashSet::new(),
    };
    for r in rows {
        stats.lines += 1;
        let id = || r.key.strip_prefix(prefix).unwrap_or(&r.key).to_owned();
        if r.deleted {
            count_skip(stats, "deleted_row");
            out.deleted.insert(id());
            continue;
        }
        let Some(value) = r.value.as_deref() else {
            count_skip(stats, "bubble_not_text");
            continue;
        };
        match parse_object::<Bubble<'_>>(value) {
            Ok(Some(bubble)) => out.keyed.push(Keyed {
                id: id(),
                rowid: r.rowid,
                bubble,
            }),
            Ok(None) => count_skip(stats, "bubble_not_object"),
            Err(_) => stats.malformed_lines += 1,
        }
    }
    out
}

/// Merges the listed bubbles (in order; `None` when the session has no listed order) with the
/// keyed ones as the module docs say. Listed ids are deduplicated (first wins, counted
/// `duplicate_bubble`); a keyed bubble whose id is listed is that listed bubble's body; a
/// listed bubble without a body is counted `missing_bubble`, unless its row is one of
/// `deleted` (counted when it was read).
pub(super) fn order<'a>(
    listed: Option<Vec<Listed<'a>>>,
    parsed: Parsed<'a>,
    stats: &mut ParseStats,
) -> Vec<Entry<'a>> {
    let Parsed { keyed, deleted } = parsed;
    let Some(listed) = listed else {
        let mut keyed = keyed;
        keyed.sort_by_key(|k| (k.bubble.created_at.is_none(), k.bubble.created_at, k.rowid));
        return keyed
            .into_iter()
            .map(|k| Entry {
                id: k.id,
                bubble: k.bubble,
            })
            .collect();
    };
    let mut by_id: std::collections::HashMap<String, Keyed<'a>> =
        keyed.into_iter().map(|k| (k.id.clone(), k)).collect();
    let mut seen = HashSet::new();
    let mut out: Vec<Entry<'a>> = Vec::with_capacity(listed.len() + by_id.len());
    // Row id of each listed bubble stored under its own key, by position in `out`.
    let mut listed_rows: Vec<(i64, usize)> = Vec::new();
    for l in listed {
        if !seen.insert(l.id.clone()) {
            count_skip(stats, "duplicate_bubble");
            continue;
        }
        let keyed = by_id.remove(&l.id);
        if let Some(k) = &keyed {
            listed_rows.push((k.rowid, out.len()));
        }
        match l.bubble.or(keyed.map(|k| k.bubble)) {
            Some(bubble) => out.push(Entry { id: l.id, bubble }),
            None if deleted.contains(&l.id) => {}
            None => count_skip(stats, "missing_bubble"),
        }
    }
    let mut unlisted: Vec<(i64, i64, Entry<'a>)> = Vec::new();
    let mut untimed: Vec<(i64, Entry<'a>)> = Vec::new();
    for (_, k) in by_id {
        let entry = Entry {
            id: k.id,
            bubble: k.bubble,
        };
        match entry.bubble.created_at {
            Some(t) => unlisted.push((t, k.rowid, entry)),
            None => untimed.push((k.rowid, entry)),
        }
    }
    if unlisted.is_empty() && untimed.is_empty() {
        return out;
    }
    unlisted.sort_by_key(|(t, rowid, _)| (*t, *rowid));
    // Slot of each unlisted bubble: 1 + the last listed index whose time is not later (0 when
    // none). That index never decreases as the time grows: sweep the listed times in order.
    let mut timed: Vec<(i64, usize)> = out
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.bubble.created_at.map(|t| (t, i)))
        .collect();
    timed.sort_unstable();
    let mut slots: Vec<Vec<Entry<'a>>> = (0..=out.len()).map(|_| Vec::new()).collect();
    let (mut next, mut last) = (0usize, None::<usize>);
    for (t, _, e) in unlisted {
        while let Some(&(lt, li)) = timed.get(next)
            && lt <= t
        {
            last = Some(last.map_or(li, |l| l.max(li)));
            next += 1;
        }
        let slot = last.map_or(0, |l| l + 1);
        if let Some(s) = slots.get_mut(slot) {
            s.push(e);
        }
    }
    // The same sweep by row id for the bubbles without a time.
    untimed.sort_by_key(|(rowid, _)| *rowid);
    listed_rows.sort_unstable();
    let (mut next, mut last) = (0usize, None::<usize>);
    for (rowid, e) in untimed {
        while let Some(&(lr, li)) = listed_rows.get(next)
            && lr < rowid
        {
            last = Some(last.map_or(li, |l| l.max(li)));
            next += 1;
        }
        let slot = last.map_or(0, |l| l + 1);
        if let Some(s) = slots.get_mut(slot) {
            s.push(e);
        }
    }
    let mut merged = Vec::with_capacity(out.len() + slots.iter().map(Vec::len).sum::<usize>());
    let mut slots = slots.into_iter();
    for e in out {
        merged.extend(slots.next().unwrap_or_default());
        merged.push(e);
    }
    for rest in slots {
        merged.extend(rest);
    }
    merged
}

/// A bubble of the listed order: its id, and its body when the composer holds it inline.
pub(super) struct Listed<'a> {
    pub id: String,
    pub bubble: Option<Bubble<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(id: &str, rowid: i64, json: &'static str) -> Keyed<'static> {
        Keyed {
            id: id.to_owned(),
            rowid,
            bubble: serde_json::from_str(json).unwrap(),
        }
    }

    fn parsed(keyed: Vec<Keyed<'static>>) -> Parsed<'static> {
        Parsed {
            keyed,
            deleted: HashSet::new(),
        }
    }

    fn listed(id: &str) -> Listed<'static> {
        Listed {
            id: id.to_owned(),
            bubble: None,
        }
    }

    fn ids(entries: &[Entry<'_>]) -> Vec<String> {
        entries.iter().map(|e| e.id.clone()).collect()
    }

    #[test]
    fn unlisted_bubbles_go_after_the_last_listed_one_not_later() {
        let mut stats = ParseStats::default();
        let out = order(
            Some(vec![
                listed("a"),
                listed("b"),
                listed("gone"),
                listed("a"),
                listed("c"),
            ]),
            parsed(vec![
                keyed("c", 3, r#"{"type":2,"createdAt":30}"#),
                keyed("a", 1, r#"{"type":1,"createdAt":10}"#),
                keyed("b", 2, r#"{"type":2}"#),
                keyed("x", 9, r#"{"type":2,"createdAt":20}"#),
                keyed("y", 8, r#"{"type":2,"createdAt":20}"#),
                keyed("z", 7, r#"{"type":2,"createdAt":5}"#),
                keyed("w", 6, r#"{"type":2,"createdAt":99}"#),
                keyed("n", 5, r#"{"type":2}"#),
            ]),
            &mut stats,
        );
        // `n` has no time: after `c`, the last listed bubble stored before it (row 3 < 5).
        assert_eq!(ids(&out), ["z", "a", "y", "x", "b", "c", "w", "n"]);
        let skipped: Vec<(&str, u64)> = stats
            .skipped_records
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(skipped, [("duplicate_bubble", 1), ("missing_bubble", 1),]);
    }

    /// As real composers store them: the headers list the prompt and the final answer, the
    /// turn's tool calls are keys only, written between the two.
    #[test]
    fn untimed_unlisted_bubbles_go_after_the_last_listed_one_stored_before_them() {
        let mut stats = ParseStats::default();
        let out = order(
            Some(vec![listed("u1"), listed("a1"), listed("u2"), listed("a2")]),
            parsed(vec![
                keyed("u1", 10, r#"{"type":1}"#),
                keyed("t1", 11, r#"{"type":2}"#),
                keyed("t2", 12, r#"{"type":2}"#),
                keyed("a1", 13, r#"{"type":2}"#),
                keyed("u2", 14, r#"{"type":1}"#),
                keyed("a2", 16, r#"{"type":2}"#),
                keyed("t3", 15, r#"{"type":2}"#),
                keyed("t0", 2, r#"{"type":2}"#),
            ]),
            &mut stats,
        );
        assert_eq!(ids(&out), ["t0", "u1", "t1", "t2", "a1", "u2", "t3", "a2"]);
        assert!(stats.skipped_records.is_empty());
    }

    /// A listed bubble whose row is NULL (deleted) was counted when read: not also missing.
    #[test]
    fn a_deleted_listed_bubble_is_not_missing() {
        let mut stats = ParseStats::default();
        let out = order(
            Some(vec![listed("a"), listed("gone"), listed("b")]),
            Parsed {
                keyed: vec![
                    keyed("a", 1, r#"{"type":1}"#),
                    keyed("b", 3, r#"{"type":2}"#),
                ],
                deleted: HashSet::from(["gone".to_owned()]),
            },
            &mut stats,
        );
        assert_eq!(ids(&out), ["a", "b"]);
        assert!(stats.skipped_records.is_empty());
    }

    #[test]
    fn without_a_listed_order_bubbles_sort_by_time_then_row() {
        let mut stats = ParseStats::default();
        let out = order(
            None,
            parsed(vec![
                keyed("late", 1, r#"{"type":2,"createdAt":30}"#),
                keyed("untimed2", 5, r#"{"type":2}"#),
                keyed("untimed1", 4, r#"{"type":2}"#),
                keyed("early", 9, r#"{"type":1,"createdAt":10}"#),
            ]),
            &mut stats,
        );
        assert_eq!(ids(&out), ["early", "late", "untimed1", "untimed2"]);
    }
}
