//! One session's spawn tree (`nex usage --session LABEL`): each subagent under the tool call
//! that spawned it, with its own usage and its subtree's, priced as the reports are.

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::Connection;
use serde::Serialize;

use super::{Acc, GROUP_SUMS, UNKNOWN_MODEL, Usage, group_at};
use crate::query::prices::PriceTable;
use crate::query::{NOT_ROOT_TURN, QueryError, SessionFacts};

fn add_usage(into: &mut Usage, u: &Usage) {
    into.sessions += u.sessions;
    into.turns += u.turns;
    into.turns_without_tokens += u.turns_without_tokens;
    into.input_tokens += u.input_tokens;
    into.output_tokens += u.output_tokens;
    into.cache_read_tokens += u.cache_read_tokens;
    into.cache_write_tokens += u.cache_write_tokens;
    into.reasoning_tokens += u.reasoning_tokens;
    into.total_tokens += u.total_tokens;
    into.cost_usd = match (into.cost_usd, u.cost_usd) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
}

/// The tool call of a parent session that spawned a subagent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpawnCall {
    pub tool_call_id: String,
    /// `None` when the call is not in the ledger (its parent's rows were not imported).
    pub tool_name: Option<String>,
    pub turn_id: Option<String>,
    pub started_at: Option<i64>,
}

/// One session of a spawn tree with its own usage and its subtree's (itself and every
/// subagent below it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionUsageNode {
    pub label: String,
    pub provider: Option<String>,
    /// The parent's tool call that spawned this session (`None` for the root).
    pub spawned_by: Option<SpawnCall>,
    pub own: Usage,
    pub subtree: Usage,
    /// Subagents, in the order of the tool calls that spawned them.
    pub children: Vec<SessionUsageNode>,
}

/// `nex usage --session LABEL --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionTreeReport {
    pub tree: SessionUsageNode,
    pub unpriced_models: Vec<String>,
}

/// The spawn tree under `label` (a resolved label), each session with its own and its
/// subtree's usage. Every session appears once even if the ledger's parent links loop.
///
/// Errors: `ledger_read_failed`, `ledger_busy`.
pub fn session_tree(
    conn: &Connection,
    facts: &HashMap<String, SessionFacts>,
    label: &str,
    prices: &PriceTable,
) -> Result<SessionTreeReport, QueryError> {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for f in facts.values() {
        if let Some(parent) = f.parent_session_label.as_deref() {
            children.entry(parent).or_default().push(f.label.as_str());
        }
    }
    let mut unpriced = BTreeSet::new();
    let mut visited = HashSet::new();
    let tree = node(
        conn,
        facts,
        &children,
        label,
        prices,
        &mut unpriced,
        &mut visited,
    )?;
    Ok(SessionTreeReport {
        tree,
        unpriced_models: unpriced.into_iter().collect(),
    })
}

fn node(
    conn: &Connection,
    facts: &HashMap<String, SessionFacts>,
    children: &HashMap<&str, Vec<&str>>,
    label: &str,
    prices: &PriceTable,
    unpriced: &mut BTreeSet<String>,
    visited: &mut HashSet<String>,
) -> Result<SessionUsageNode, QueryError> {
    visited.insert(label.to_owned());
    let own = own_usage(conn, facts, label, prices, unpriced)?;
    let mut kids = Vec::new();
    for child in children.get(label).into_iter().flatten() {
        if visited.contains(*child) {
            continue;
        }
        kids.push(node(
            conn, facts, children, child, prices, unpriced, visited,
        )?);
    }
    kids.sort_by(|a, b| {
        let at = |n: &SessionUsageNode| n.spawned_by.as_ref().and_then(|s| s.started_at);
        at(a).cmp(&at(b)).then_with(|| a.label.cmp(&b.label))
    });
    let mut subtree = own.clone();
    for k in &kids {
        add_usage(&mut subtree, &k.subtree);
    }
    let f = facts.get(label);
    let spawned_by = match f.and_then(|f| f.spawn_tool_call_id.as_deref()) {
        Some(id) => Some(spawn_call(conn, id)?),
        None => None,
    };
    Ok(SessionUsageNode {
        label: label.to_owned(),
        provider: f.and_then(|f| f.provider.clone()),
        spawned_by,
        own,
        subtree,
        children: kids,
    })
}

/// The usage of `label`'s own turns.
fn own_usage(
    conn: &Connection,
    facts: &HashMap<String, SessionFacts>,
    label: &str,
    prices: &PriceTable,
    unpriced: &mut BTreeSet<String>,
) -> Result<Usage, QueryError> {
    let err = QueryError::ledger;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT t.model, {GROUP_SUMS} FROM turns t
             WHERE t.session_label = ?1 AND {NOT_ROOT_TURN} GROUP BY 1"
        ))
        .map_err(err("usage_session"))?;
    let groups = stmt
        .query_map([label], |r| {
            Ok((r.get::<_, Option<String>>(0)?, group_at(r, 1)?))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(err("usage_session"))?;
    let provider = facts.get(label).and_then(|f| f.provider.as_deref());
    let mut acc = Acc::default();
    acc.sessions.insert(label.to_owned());
    for (model, g) in &groups {
        let model = model
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(UNKNOWN_MODEL);
        acc.add(label, provider, model, g, prices, unpriced);
    }
    Ok(acc.finish())
}

fn spawn_call(conn: &Connection, id: &str) -> Result<SpawnCall, QueryError> {
    use rusqlite::OptionalExtension;
    let found: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT tool_name, turn_id, started_at FROM tool_calls WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(QueryError::ledger("usage_session"))?;
    Ok(match found {
        Some((name, turn, at)) => SpawnCall {
            tool_call_id: id.to_owned(),
            tool_name: Some(name),
            turn_id: Some(turn),
            started_at: Some(at),
        },
        None => SpawnCall {
            tool_call_id: id.to_owned(),
            tool_name: None,
            turn_id: None,
            started_at: None,
        },
    })
}
