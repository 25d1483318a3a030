//! Token and cost reports (`nex usage`, MCP `get_usage`).
//!
//! # What is counted
//!
//! A report sums the ledger's turns (never a session's synthetic root turn). The token columns
//! mean the same for every provider: `input_tokens` is uncached input, `cached_input_tokens`
//! cache reads, `cache_write_tokens` cache writes, `reasoning_tokens` as the tool reports
//! them, `total_tokens` the tool's own total. A turn without a total counts input + output +
//! cache reads + cache writes (+ reasoning where the tool reports it apart from output,
//! [`super::reasoning_apart`]).
//!
//! # Subagents
//!
//! Every turn belongs to exactly one session, so every token is summed once. A subagent's
//! turns are reported under the session that spawned it (its root, [`super::root_of`]): by
//! session, by project and by provider the root's key applies, and `sessions` counts root
//! sessions. [`session_tree`] shows one root with each subagent under the tool call that
//! spawned it, with its own and its subtree's usage.
//!
//! # Cost
//!
//! Each (session, model) group is priced with [`PriceTable::price`]. A row whose tokens
//! include any model without a price has no cost (`None`, never 0), and that model is listed
//! in [`UsageReport::unpriced_models`]. Turns with no model are `(unknown model)`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::prices::{PriceTable, TokenCounts};
use super::time::Zone;
use super::{Filters, NOT_ROOT_TURN, QueryError, SessionFacts, reasoning_apart, root_of};

mod tree;
pub use tree::{SessionTreeReport, SessionUsageNode, SpawnCall, session_tree};

/// The model name reported for turns that name none.
pub const UNKNOWN_MODEL: &str = "(unknown model)";
/// The key of sessions without a project or provider.
pub const NONE_KEY: &str = "(none)";

/// How `nex usage` groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// Local calendar day of the turn's start (`YYYY-MM-DD`).
    #[default]
    Day,
    /// Local week of the turn's start, named by its Monday (`YYYY-MM-DD`).
    Week,
    /// Local month of the turn's start (`YYYY-MM`).
    Month,
    /// The root session's workspace directory.
    Project,
    /// The turn's model, as the ledger names it.
    Model,
    /// The root session's provider (`claude-code`, `codex`, …).
    Provider,
    /// The root session's label (subagents roll up into it).
    Session,
    /// The machine the turns were replicated from (`nex usage --replica` only).
    Machine,
}

impl GroupBy {
    /// SQL of the turn's time bucket (over `turns t`), for the time groupings: days of the
    /// local zone (SQLite's `localtime` reads `TZ`), or of UTC.
    fn bucket_sql(self, zone: Zone) -> String {
        let local = if zone == Zone::Utc {
            ""
        } else {
            ", 'localtime'"
        };
        match self {
            GroupBy::Day => format!("date(t.started_at / 1000, 'unixepoch'{local})"),
            // `weekday 0` moves to the coming Sunday (or stays on one): 6 days before is the
            // week's Monday.
            GroupBy::Week => {
                format!("date(t.started_at / 1000, 'unixepoch'{local}, 'weekday 0', '-6 days')")
            }
            GroupBy::Month => {
                format!("strftime('%Y-%m', t.started_at / 1000, 'unixepoch'{local})")
            }
            _ => "NULL".into(),
        }
    }

    pub(crate) fn is_time(self) -> bool {
        matches!(self, GroupBy::Day | GroupBy::Week | GroupBy::Month)
    }
}

/// Token and cost sums of some turns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Sessions the turns belong to, subagents counted in their root session.
    pub sessions: u64,
    pub turns: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub total_tokens: i64,
    /// USD; `None` when a model of these turns has no price.
    pub cost_usd: Option<f64>,
    /// Turns whose tool recorded no token count at all (Cursor chats, 2025 Codex rollouts):
    /// their tokens are unknown, not zero. When it equals `turns`, the token sums and the
    /// cost of the row are unknown (`nex usage` shows `-`).
    pub turns_without_tokens: u64,
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    pub key: String,
    #[serde(flatten)]
    pub usage: Usage,
}

/// `nex usage --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageReport {
    pub rows: Vec<UsageRow>,
    /// Models with tokens in the report and no price, sorted.
    pub unpriced_models: Vec<String>,
    /// The sum of the rows; `sessions` is the number of distinct root sessions (a sum of the
    /// rows' counts would count a session once per day it ran). Not part of the JSON contract.
    #[serde(skip)]
    pub total: Usage,
}

/// Sums of one (session, model[, bucket]) group of turns, as SQL returns them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub(crate) turns: u64,
    pub(crate) input: i64,
    pub(crate) output: i64,
    pub(crate) cache_read: i64,
    pub(crate) cache_write: i64,
    pub(crate) reasoning: i64,
    /// Sum of the tools' totals where present.
    pub(crate) total: i64,
    /// Input + output + cache reads + cache writes of the turns without a total.
    pub(crate) parts_untotalled: i64,
    /// Reasoning of the turns without a total.
    pub(crate) reasoning_untotalled: i64,
    /// Turns without any token count.
    pub(crate) without_tokens: u64,
}

/// Columns of a group (after the grouping columns), in SQL that SQLite and PostgreSQL read
/// alike (the replica's report sums with the same text; PostgreSQL's `SUM` of a `bigint` is a
/// `numeric`, hence the casts).
pub(crate) const GROUP_SUMS: &str = "COUNT(*),
        CAST(COALESCE(SUM(t.input_tokens), 0) AS BIGINT),
        CAST(COALESCE(SUM(t.output_tokens), 0) AS BIGINT),
        CAST(COALESCE(SUM(t.cached_input_tokens), 0) AS BIGINT),
        CAST(COALESCE(SUM(t.cache_write_tokens), 0) AS BIGINT),
        CAST(COALESCE(SUM(t.reasoning_tokens), 0) AS BIGINT),
        CAST(COALESCE(SUM(t.total_tokens), 0) AS BIGINT),
        CAST(COALESCE(SUM(CASE WHEN t.total_tokens IS NULL THEN
            COALESCE(t.input_tokens, 0) + COALESCE(t.output_tokens, 0)
            + COALESCE(t.cached_input_tokens, 0) + COALESCE(t.cache_write_tokens, 0) END), 0)
            AS BIGINT),
        CAST(COALESCE(SUM(CASE WHEN t.total_tokens IS NULL THEN t.reasoning_tokens END), 0)
            AS BIGINT),
        CAST(COALESCE(SUM(CASE WHEN t.total_tokens IS NULL AND t.input_tokens IS NULL
            AND t.output_tokens IS NULL AND t.cached_input_tokens IS NULL
            AND t.cache_write_tokens IS NULL AND t.reasoning_tokens IS NULL THEN 1 ELSE 0 END), 0)
            AS BIGINT)";

/// One group of turns as a report receives it, from the ledger or from the replica.
#[derive(Debug, Clone, Default)]
pub(crate) struct TurnGroup {
    /// The session's key in the report's [`SessionFacts`] (a label; `machine/label` in the
    /// replica).
    pub(crate) session: String,
    /// The machine of a replica's turns (`None` in the ledger).
    pub(crate) machine: Option<String>,
    pub(crate) model: Option<String>,
    /// The time bucket, for the time groupings.
    pub(crate) bucket: Option<String>,
    pub(crate) sums: Group,
}

fn group_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Group> {
    Ok(Group {
        turns: r.get::<_, i64>(first)? as u64,
        input: r.get(first + 1)?,
        output: r.get(first + 2)?,
        cache_read: r.get(first + 3)?,
        cache_write: r.get(first + 4)?,
        reasoning: r.get(first + 5)?,
        total: r.get(first + 6)?,
        parts_untotalled: r.get(first + 7)?,
        reasoning_untotalled: r.get(first + 8)?,
        without_tokens: r.get::<_, i64>(first + 9)? as u64,
    })
}

/// A running sum, priced group by group.
#[derive(Debug, Default)]
struct Acc {
    sessions: HashSet<String>,
    usage: Usage,
    cost: f64,
    /// A group with tokens had no price.
    unpriced: bool,
}

impl Acc {
    fn add(
        &mut self,
        root: &str,
        provider: Option<&str>,
        model: &str,
        g: &Group,
        prices: &PriceTable,
        unpriced: &mut BTreeSet<String>,
    ) {
        self.sessions.insert(root.to_owned());
        let apart = reasoning_apart(provider);
        let u = &mut self.usage;
        u.turns += g.turns;
        u.turns_without_tokens += g.without_tokens;
        u.input_tokens += g.input;
        u.output_tokens += g.output;
        u.cache_read_tokens += g.cache_read;
        u.cache_write_tokens += g.cache_write;
        u.reasoning_tokens += g.reasoning;
        u.total_tokens +=
            g.total + g.parts_untotalled + if apart { g.reasoning_untotalled } else { 0 };
        let counts = TokenCounts {
            input: g.input,
            output: g.output,
            cache_read: g.cache_read,
            cache_write: g.cache_write,
            reasoning_apart: if apart { g.reasoning } else { 0 },
        };
        if !counts.any() {
            return;
        }
        match prices.price(model) {
            Some(p) => self.cost += p.cost(&counts),
            None => {
                self.unpriced = true;
                unpriced.insert(model.to_owned());
            }
        }
    }

    fn finish(self) -> Usage {
        Usage {
            sessions: self.sessions.len() as u64,
            cost_usd: (!self.unpriced).then_some(self.cost),
            ..self.usage
        }
    }
}

/// The usage report of the turns `filters` covers, one row per key of `by`.
///
/// Rows of the time groupings are in time order; the others by total tokens, largest first
/// (then by key).
///
/// Errors: `bad_request` for `by` machine (a replica's grouping); `ledger_read_failed`,
/// `ledger_busy`.
pub fn usage_report(
    conn: &Connection,
    facts: &HashMap<String, SessionFacts>,
    filters: &Filters,
    by: GroupBy,
    prices: &PriceTable,
) -> Result<UsageReport, QueryError> {
    if by == GroupBy::Machine {
        return Err(QueryError::BadArgument(
            "`--by machine` groups a replica's turns: use it with `--replica`".into(),
        ));
    }
    // `+` keeps SQLite off `idx_turns_session` here: one pass over the table beats a lookup
    // per turn through the index when every turn is read (measured: ~30 % faster at 21,000
    // turns). The rows are grouped here, not by SQL's GROUP BY: its sorter took two thirds of
    // the query's CPU time (and spilled to a temporary file) at 21,000 turns, while a
    // session's turns come together in the table, so one running group takes most rows.
    let sql = format!(
        "SELECT t.session_label, t.model, {bucket}, t.input_tokens, t.output_tokens,
                t.cached_input_tokens, t.cache_write_tokens, t.reasoning_tokens, t.total_tokens
         FROM turns t
         WHERE +t.session_label IS NOT NULL AND {NOT_ROOT_TURN}
           AND (?1 IS NULL OR t.started_at >= ?1) AND (?2 IS NULL OR t.started_at < ?2)",
        bucket = by.bucket_sql(filters.zone)
    );
    let err = QueryError::ledger;
    let mut stmt = conn.prepare(&sql).map_err(err("usage"))?;
    let mut rows = stmt
        .query(params![filters.since_ms, filters.until_ms])
        .map_err(err("usage"))?;
    let mut groups: HashMap<GroupKey, Group> = HashMap::new();
    let mut current: Option<(GroupKey, Group)> = None;
    while let Some(r) = rows.next().map_err(err("usage"))? {
        let text =
            |i: usize| -> rusqlite::Result<Option<&str>> { Ok(r.get_ref(i)?.as_str_or_null()?) };
        let (session, model, bucket) = (
            text(0).map_err(err("usage"))?.unwrap_or_default(),
            text(1).map_err(err("usage"))?,
            text(2).map_err(err("usage"))?,
        );
        let same = current.as_ref().is_some_and(|(k, _)| {
            k.0 == session && k.1.as_deref() == model && k.2.as_deref() == bucket
        });
        if !same {
            if let Some((k, g)) = current.take() {
                groups.entry(k).or_default().merge(&g);
            }
            let key = (
                session.to_owned(),
                model.map(str::to_owned),
                bucket.map(str::to_owned),
            );
            current = Some((key, Group::default()));
        }
        let tokens = |i: usize| r.get::<_, Option<i64>>(i);
        let turn = [3, 4, 5, 6, 7, 8]
            .map(tokens)
            .into_iter()
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(err("usage"))?;
        if let Some((_, g)) = current.as_mut() {
            g.add_turn(&turn);
        }
    }
    if let Some((k, g)) = current.take() {
        groups.entry(k).or_default().merge(&g);
    }
    // In key order, as SQL's GROUP BY gave them: the cost is summed in a fixed order.
    let mut groups: Vec<(GroupKey, Group)> = groups.into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut report = ReportBuilder::new(facts, filters, by, prices);
    for ((session, model, bucket), sums) in groups {
        report.add(TurnGroup {
            session,
            machine: None,
            model,
            bucket,
            sums,
        });
    }
    Ok(report.finish())
}

/// (session, model, time bucket) of a group of turns.
type GroupKey = (String, Option<String>, Option<String>);

impl Group {
    /// Adds one turn's counts: input, output, cache read, cache write, reasoning, total (as
    /// [`GROUP_SUMS`] sums them).
    fn add_turn(&mut self, t: &[Option<i64>]) {
        let [input, output, cache_read, cache_write, reasoning, total] =
            [t[0], t[1], t[2], t[3], t[4], t[5]];
        self.turns += 1;
        self.input += input.unwrap_or(0);
        self.output += output.unwrap_or(0);
        self.cache_read += cache_read.unwrap_or(0);
        self.cache_write += cache_write.unwrap_or(0);
        self.reasoning += reasoning.unwrap_or(0);
        self.total += total.unwrap_or(0);
        if total.is_none() {
            self.parts_untotalled += input.unwrap_or(0)
                + output.unwrap_or(0)
                + cache_read.unwrap_or(0)
                + cache_write.unwrap_or(0);
            self.reasoning_untotalled += reasoning.unwrap_or(0);
        }
        if t.iter().all(Option::is_none) {
            self.without_tokens += 1;
        }
    }

    fn merge(&mut self, g: &Group) {
        self.turns += g.turns;
        self.input += g.input;
        self.output += g.output;
        self.cache_read += g.cache_read;
        self.cache_write += g.cache_write;
        self.reasoning += g.reasoning;
        self.total += g.total;
        self.parts_untotalled += g.parts_untotalled;
        self.reasoning_untotalled += g.reasoning_untotalled;
        self.without_tokens += g.without_tokens;
    }
}

/// The time bucket of `by` (`None` for the other groupings) of an instant, in `zone` as
/// SQLite computes it for [`usage_report`]; `conn` is any connection (no table is read).
///
/// Errors: `ledger_read_failed` (SQLite failing to evaluate a date).
pub(crate) fn bucket_of(
    conn: &Connection,
    by: GroupBy,
    zone: Zone,
    started_at_ms: Option<i64>,
) -> Result<Option<String>, QueryError> {
    if !by.is_time() {
        return Ok(None);
    }
    conn.prepare_cached(&format!(
        "SELECT {} FROM (SELECT ?1 AS started_at) t",
        by.bucket_sql(zone)
    ))
    .and_then(|mut stmt| stmt.query_row([started_at_ms], |r| r.get(0)))
    .map_err(QueryError::ledger("usage_bucket"))
}

/// Builds a [`UsageReport`] from groups of turns: the one place where rows are keyed, filtered
/// by their root session, summed, priced and ordered, for the ledger ([`usage_report`]) and for
/// the replica (`replica::reports::usage`).
pub(crate) struct ReportBuilder<'a> {
    facts: &'a HashMap<String, SessionFacts>,
    filters: &'a Filters,
    by: GroupBy,
    prices: &'a PriceTable,
    accs: BTreeMap<String, Acc>,
    total: Acc,
    unpriced: BTreeSet<String>,
    /// Roots computed once per session, not once per group: (root, covered by the filters).
    roots: HashMap<String, (String, bool)>,
}

impl<'a> ReportBuilder<'a> {
    pub(crate) fn new(
        facts: &'a HashMap<String, SessionFacts>,
        filters: &'a Filters,
        by: GroupBy,
        prices: &'a PriceTable,
    ) -> ReportBuilder<'a> {
        ReportBuilder {
            facts,
            filters,
            by,
            prices,
            accs: BTreeMap::new(),
            total: Acc::default(),
            unpriced: BTreeSet::new(),
            roots: HashMap::new(),
        }
    }

    /// Adds one group (nothing when its root session is outside the filters; the time window
    /// is the caller's query).
    pub(crate) fn add(&mut self, g: TurnGroup) {
        let facts = self.facts;
        let filters = self.filters;
        let (root, covered) = self
            .roots
            .entry(g.session.clone())
            .or_insert_with(|| {
                let root = root_of(facts, &g.session).to_owned();
                let covered = match facts.get(&root) {
                    Some(f) => filters.covers(f),
                    // A turn of a session the ledger does not list: only unfiltered reports.
                    None => filters.provider.is_none() && filters.project.is_none(),
                };
                (root, covered)
            })
            .clone();
        if !covered {
            return;
        }
        let root_facts = facts.get(&root);
        let model = g
            .model
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| UNKNOWN_MODEL.to_owned());
        let key = match self.by {
            GroupBy::Day | GroupBy::Week | GroupBy::Month => {
                g.bucket.unwrap_or_else(|| NONE_KEY.to_owned())
            }
            GroupBy::Model => model.clone(),
            GroupBy::Project => root_facts
                .and_then(|f| f.project.clone())
                .unwrap_or_else(|| NONE_KEY.to_owned()),
            GroupBy::Provider => root_facts
                .and_then(|f| f.provider.clone())
                .unwrap_or_else(|| NONE_KEY.to_owned()),
            GroupBy::Session => root.clone(),
            GroupBy::Machine => g.machine.unwrap_or_else(|| NONE_KEY.to_owned()),
        };
        // Reasoning is apart or inside the output by the tool that wrote the turn: the
        // turn's own session's provider.
        let provider = facts.get(&g.session).and_then(|f| f.provider.as_deref());
        let (prices, unpriced) = (self.prices, &mut self.unpriced);
        self.accs
            .entry(key)
            .or_default()
            .add(&root, provider, &model, &g.sums, prices, unpriced);
        self.total
            .add(&root, provider, &model, &g.sums, prices, unpriced);
    }

    pub(crate) fn finish(self) -> UsageReport {
        let mut rows: Vec<UsageRow> = self
            .accs
            .into_iter()
            .map(|(key, acc)| UsageRow {
                key,
                usage: acc.finish(),
            })
            .collect();
        if !self.by.is_time() {
            rows.sort_by(|a, b| {
                b.usage
                    .total_tokens
                    .cmp(&a.usage.total_tokens)
                    .then_with(|| a.key.cmp(&b.key))
            });
        }
        UsageReport {
            rows,
            unpriced_models: self.unpriced.into_iter().collect(),
            total: self.total.finish(),
        }
    }
}
