//! The reports over every machine of the replica: the session list (`nex sessions list
//! --replica`) and token usage (the rows of `nex usage`, for `nex usage --replica`), each with
//! a grouping by machine. Read-only queries on the replica; message text is never read.
//!
//! Token semantics follow the ledger's reports: the synthetic root turn of a session without
//! turns is not counted; a turn without the tool's own total counts input + output + cache
//! reads + cache writes (+ reasoning for the providers that report it apart from output);
//! subagents roll up into the session that spawned them (same machine). Days are UTC (the
//! replica serves many machines and time zones).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use tokio_postgres::Client;

use super::error::ReplicaError;
use super::pg::classify;
use super::settings::ReplicaUrl;

/// One row of `nex sessions list --replica --json`: the local list's row plus its machine.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplicaSession {
    pub machine: String,
    pub label: String,
    pub provider: Option<String>,
    pub source_session_id: Option<String>,
    pub persona_id: String,
    pub is_subagent: bool,
    pub parent_session_label: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub status: String,
    /// Turns on the session's thread (head turn to root), as the local list counts them.
    pub turns: u64,
}

/// One row of `nex sessions list --replica --by machine`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MachineSessions {
    pub machine: String,
    pub sessions: u64,
    /// Every turn of the machine's sessions (the synthetic root turns aside).
    pub turns: u64,
    /// The latest `updated_at` of its sessions (epoch ms).
    pub updated_at: Option<i64>,
    /// Changes replicated so far (the machine's watermark).
    pub watermark: i64,
}

/// The replica's sessions, most recently updated first.
///
/// Errors: `replica_unreachable`, `replica_read_failed` (e.g. no replica schema yet).
pub async fn sessions(
    client: &Client,
    url: &ReplicaUrl,
    provider: Option<&str>,
    limit: u32,
) -> Result<Vec<ReplicaSession>, ReplicaError> {
    let rows = client
        .query(
            "SELECT s.machine, s.label, si.source_provider, si.source_session_id, s.persona_id,
                    s.is_subagent, s.parent_session_label, s.created_at, s.updated_at, s.status,
                    (WITH RECURSIVE chain(id, depth) AS (
                         SELECT s.thread_id, 0 WHERE s.thread_id IS NOT NULL
                         UNION ALL
                         SELECT t.parent_turn_id, chain.depth + 1
                         FROM nex.turns t JOIN chain ON t.machine = s.machine AND t.id = chain.id
                         WHERE t.parent_turn_id IS NOT NULL AND chain.depth < 1000000)
                     SELECT count(*) FROM chain)
             FROM nex.sessions s
             LEFT JOIN nex.session_imports si
               ON si.machine = s.machine AND si.session_label = s.label
             WHERE ($1::text IS NULL OR si.source_provider = $1)
             ORDER BY s.updated_at DESC, s.machine, s.label
             LIMIT $2",
            &[&provider, &i64::from(limit)],
        )
        .await
        .map_err(|e| classify(url, e, ReplicaError::Read))?;
    Ok(rows
        .iter()
        .map(|r| ReplicaSession {
            machine: r.get(0),
            label: r.get(1),
            provider: r.get(2),
            source_session_id: r.get(3),
            persona_id: r.get(4),
            is_subagent: r.get::<_, Option<i64>>(5).unwrap_or(0) != 0,
            parent_session_label: r.get(6),
            created_at: r.get(7),
            updated_at: r.get(8),
            status: r.get(9),
            turns: r.get::<_, i64>(10).max(0) as u64,
        })
        .collect())
}

/// Sessions and turns per machine, machines by name.
///
/// Errors: as [`sessions`].
pub async fn sessions_by_machine(
    client: &Client,
    url: &ReplicaUrl,
) -> Result<Vec<MachineSessions>, ReplicaError> {
    let rows = client
        .query(
            "SELECT w.machine,
                    (SELECT count(*) FROM nex.sessions s WHERE s.machine = w.machine),
                    (SELECT count(*) FROM nex.turns t WHERE t.machine = w.machine
                        AND (t.source_event_id IS NULL OR t.source_event_id <> '__root__')),
                    (SELECT max(updated_at) FROM nex.sessions s WHERE s.machine = w.machine),
                    w.seq
             FROM nex.replica_watermarks w ORDER BY w.machine",
            &[],
        )
        .await
        .map_err(|e| classify(url, e, ReplicaError::Read))?;
    Ok(rows
        .iter()
        .map(|r| MachineSessions {
            machine: r.get(0),
            sessions: r.get::<_, i64>(1).max(0) as u64,
            turns: r.get::<_, i64>(2).max(0) as u64,
            updated_at: r.get(3),
            watermark: r.get(4),
        })
        .collect())
}

/// How usage rows are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UsageBy {
    /// The machine the turns were replicated from.
    #[default]
    Machine,
    /// UTC day of the turn's start (`YYYY-MM-DD`).
    Day,
    /// The turn's model.
    Model,
    /// The root session's provider.
    Provider,
    /// The root session, as `machine/label` (subagents roll up into it).
    Session,
}

/// One row: the same shape as `nex usage --json`'s rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageRow {
    pub key: String,
    /// Root sessions (per machine) with turns in the row.
    pub sessions: u64,
    pub turns: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub total_tokens: i64,
    /// USD; `None` until the report is priced (the price table belongs to `nex usage`).
    pub cost_usd: Option<f64>,
}

/// `{"rows":[…]}`, rows by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageReport {
    pub rows: Vec<UsageRow>,
}

/// Token usage over every machine, keyed by `by`.
///
/// Errors: as [`sessions`].
pub async fn usage(
    client: &Client,
    url: &ReplicaUrl,
    by: UsageBy,
) -> Result<UsageReport, ReplicaError> {
    let fail = |e| classify(url, e, ReplicaError::Read);
    // (machine, label) -> (parent label, provider)
    let mut sessions: HashMap<(String, String), (Option<String>, Option<String>)> = HashMap::new();
    for r in client
        .query(
            "SELECT s.machine, s.label, s.parent_session_label, si.source_provider
             FROM nex.sessions s LEFT JOIN nex.session_imports si
               ON si.machine = s.machine AND si.session_label = s.label",
            &[],
        )
        .await
        .map_err(fail)?
    {
        sessions.insert((r.get(0), r.get(1)), (r.get(2), r.get(3)));
    }
    let root_of = |machine: &str, label: &str| -> String {
        let mut current = label.to_owned();
        for _ in 0..64 {
            match sessions.get(&(machine.to_owned(), current.clone())) {
                Some((Some(parent), _))
                    if sessions.contains_key(&(machine.to_owned(), parent.clone())) =>
                {
                    current = parent.clone();
                }
                _ => break,
            }
        }
        current
    };
    let groups = client
        .query(
            "SELECT t.machine, coalesce(t.session_label, ''), coalesce(t.model, '(unknown model)'),
                    to_char(to_timestamp(t.started_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                    count(*),
                    coalesce(sum(t.input_tokens), 0)::bigint, coalesce(sum(t.output_tokens), 0)::bigint,
                    coalesce(sum(t.cached_input_tokens), 0)::bigint,
                    coalesce(sum(t.cache_write_tokens), 0)::bigint,
                    coalesce(sum(t.reasoning_tokens), 0)::bigint, coalesce(sum(t.total_tokens), 0)::bigint,
                    coalesce(sum(CASE WHEN t.total_tokens IS NULL THEN
                        coalesce(t.input_tokens, 0) + coalesce(t.output_tokens, 0)
                        + coalesce(t.cached_input_tokens, 0) + coalesce(t.cache_write_tokens, 0) END), 0)::bigint,
                    coalesce(sum(CASE WHEN t.total_tokens IS NULL THEN t.reasoning_tokens END), 0)::bigint
             FROM nex.turns t
             WHERE (t.source_event_id IS NULL OR t.source_event_id <> '__root__')
             GROUP BY 1, 2, 3, 4",
            &[],
        )
        .await
        .map_err(fail)?;
    let mut rows: BTreeMap<String, (UsageRow, BTreeSet<(String, String)>)> = BTreeMap::new();
    for g in &groups {
        let machine: String = g.get(0);
        let label: String = g.get(1);
        let model: String = g.get(2);
        let day: String = g.get(3);
        let root = root_of(&machine, &label);
        let own_provider = sessions
            .get(&(machine.clone(), label.clone()))
            .and_then(|(_, p)| p.clone());
        let root_provider = sessions
            .get(&(machine.clone(), root.clone()))
            .and_then(|(_, p)| p.clone());
        let key = match by {
            UsageBy::Machine => machine.clone(),
            UsageBy::Day => day,
            UsageBy::Model => model,
            UsageBy::Provider => root_provider.unwrap_or_else(|| "(none)".to_owned()),
            UsageBy::Session => format!("{machine}/{root}"),
        };
        let (row, roots) = rows.entry(key.clone()).or_insert_with(|| {
            (
                UsageRow {
                    key,
                    ..UsageRow::default()
                },
                BTreeSet::new(),
            )
        });
        roots.insert((machine, root));
        row.turns += g.get::<_, i64>(4).max(0) as u64;
        row.input_tokens += g.get::<_, i64>(5);
        row.output_tokens += g.get::<_, i64>(6);
        row.cache_read_tokens += g.get::<_, i64>(7);
        row.cache_write_tokens += g.get::<_, i64>(8);
        row.reasoning_tokens += g.get::<_, i64>(9);
        row.total_tokens += g.get::<_, i64>(10) + g.get::<_, i64>(11);
        if crate::query::reasoning_apart(own_provider.as_deref()) {
            row.total_tokens += g.get::<_, i64>(12);
        }
    }
    Ok(UsageReport {
        rows: rows
            .into_values()
            .map(|(mut row, roots)| {
                row.sessions = roots.len() as u64;
                row
            })
            .collect(),
    })
}
