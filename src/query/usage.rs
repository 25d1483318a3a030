//! Token usage grouped by day, week, month, project, model, provider or session, as the MCP
//! tool `get_usage` reports it.
//!
//! The minimal version of the `search` branch: sums of the turns' token columns, subagents
//! rolled into the session that spawned them when grouping by session. It knows no prices:
//! every `cost_usd` is unknown (NULL, never 0) and every model is listed in
//! `unpriced_models`. The `usage` branch owns `nex usage` (prices, the lineage tree); when
//! both are merged, `get_usage` calls its report under this name.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::{QueryError, project_matches, session_facts};

/// What the rows are grouped by (`--by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    #[default]
    Day,
    Week,
    Month,
    Project,
    Model,
    Provider,
    /// The root session: a subagent's turns count in the session that spawned it.
    Session,
}

#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub by: GroupBy,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub provider: Option<String>,
    pub project: Option<String>,
}

/// `{"rows":[...],"unpriced_models":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    pub rows: Vec<UsageRow>,
    pub unpriced_models: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    pub key: Option<String>,
    pub sessions: u64,
    pub turns: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub total_tokens: i64,
    /// NULL: unknown (no price table in this version).
    pub cost_usd: Option<f64>,
}

/// The report, rows ordered by key.
///
/// Errors: `ledger_read_failed`.
pub fn report(conn: &Connection, filter: &UsageFilter) -> Result<UsageReport, QueryError> {
    let facts = session_facts();
    let key = match filter.by {
        GroupBy::Day => "date(t.started_at / 1000, 'unixepoch')",
        GroupBy::Week => "date(t.started_at / 1000, 'unixepoch', 'weekday 0', '-6 days')",
        GroupBy::Month => "strftime('%Y-%m', t.started_at / 1000, 'unixepoch')",
        GroupBy::Project => facts.project,
        GroupBy::Model => "t.model",
        GroupBy::Provider => facts.provider,
        GroupBy::Session => "r.root",
    };
    let sql = format!(
        "WITH RECURSIVE root(label, root) AS (
            SELECT label, label FROM sessions
             WHERE parent_session_label IS NULL
                OR parent_session_label NOT IN (SELECT label FROM sessions)
            UNION ALL
            SELECT c.label, root.root FROM sessions c JOIN root ON c.parent_session_label = root.label
         )
         SELECT {key} AS k, COUNT(DISTINCT r.root), COUNT(*),
            COALESCE(SUM(t.input_tokens), 0), COALESCE(SUM(t.output_tokens), 0),
            COALESCE(SUM(t.cached_input_tokens), 0), COALESCE(SUM(t.cache_write_tokens), 0),
            COALESCE(SUM(t.reasoning_tokens), 0), COALESCE(SUM(t.total_tokens), 0)
         FROM turns t
         JOIN sessions s ON s.label = t.session_label
         JOIN root r ON r.label = s.label
         WHERE (?1 IS NULL OR t.started_at >= ?1) AND (?2 IS NULL OR t.started_at < ?2)
           AND (?3 IS NULL OR {provider} = ?3) AND {project_ok}
         GROUP BY k ORDER BY k",
        provider = facts.provider,
        project_ok = project_matches(facts.project, "?4"),
    );
    let args = params![
        filter.since_ms,
        filter.until_ms,
        filter.provider,
        filter.project
    ];
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(args, |r| {
            Ok(UsageRow {
                key: r.get(0)?,
                sessions: r.get::<_, i64>(1)?.max(0) as u64,
                turns: r.get::<_, i64>(2)?.max(0) as u64,
                input_tokens: r.get(3)?,
                output_tokens: r.get(4)?,
                cache_read_tokens: r.get(5)?,
                cache_write_tokens: r.get(6)?,
                reasoning_tokens: r.get(7)?,
                total_tokens: r.get(8)?,
                cost_usd: None,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT t.model FROM turns t JOIN sessions s ON s.label = t.session_label
         WHERE t.model IS NOT NULL
           AND (?1 IS NULL OR t.started_at >= ?1) AND (?2 IS NULL OR t.started_at < ?2)
           AND (?3 IS NULL OR {provider} = ?3) AND {project_ok}
         ORDER BY t.model",
        provider = facts.provider,
        project_ok = project_matches(facts.project, "?4"),
    ))?;
    let unpriced_models = stmt
        .query_map(args, |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(UsageReport {
        rows,
        unpriced_models,
    })
}
