//! The reports over every machine of the replica: the session list (`nex sessions list
//! --replica`) and token usage (the rows of `nex usage`, for `nex usage --replica`), each with
//! a grouping by machine. Read-only queries on the replica; message text is never read.
//!
//! Usage is `nex usage`'s own report over the replica's turns (one accumulator,
//! `query::usage::ReportBuilder`): the same token semantics, subagent rollup (within a
//! machine) and prices; days in the caller's local time.

use std::collections::HashMap;

use rusqlite::Connection;
use serde::Serialize;
use tokio_postgres::Client;

use super::error::ReplicaError;
use super::pg::classify;
use super::settings::ReplicaUrl;
use crate::query::prices::PriceTable;
use crate::query::usage::{
    GROUP_SUMS, Group, GroupBy, ReportBuilder, TurnGroup, UsageReport, bucket_of,
};
use crate::query::{
    Filters, NOT_ROOT_TURN, SESSION_PROJECT_SQL, SESSION_PROVIDER_SQL, SessionFacts,
};

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

/// Token usage over every machine: `nex usage`'s report ([`crate::query::usage`]: the same
/// groupings, filters, subagent rollup and prices, built by the same
/// [`ReportBuilder`]) over the replica's turns, plus the grouping by machine. A session is
/// keyed `machine/label` (its subagents roll up within its machine); time buckets are in the
/// local time of the caller, as `nex usage` computes them.
///
/// Errors: `date_invalid` (a bad `since`/`until`); as [`sessions`].
pub async fn usage(
    client: &Client,
    url: &ReplicaUrl,
    filters: &Filters,
    by: GroupBy,
    prices: &PriceTable,
) -> Result<UsageReport, ReplicaError> {
    let fail = |e| classify(url, e, ReplicaError::Read);
    // The calendar: SQLite's local time, exactly as the ledger's report reads it.
    let mut facts: HashMap<String, SessionFacts> = HashMap::new();
    for r in client
        .query(
            &format!(
                "SELECT s.machine, s.label, {SESSION_PROVIDER_SQL}, {SESSION_PROJECT_SQL},
                        s.parent_session_label
                 FROM nex.sessions s"
            ),
            &[],
        )
        .await
        .map_err(fail)?
    {
        let machine: String = r.get(0);
        let label = session_key(&machine, r.get(1));
        let parent: Option<String> = r.get(4);
        facts.insert(
            label.clone(),
            SessionFacts {
                label,
                provider: r.get(2),
                project: r.get(3),
                parent_session_label: parent.map(|p| session_key(&machine, &p)),
                ..SessionFacts::default()
            },
        );
    }
    // A time grouping reads 15-minute slots: every zone's offset is a multiple of 15 minutes,
    // so a slot lies within one local day, and its bucket is its start's.
    let slot = if by.is_time() {
        "t.started_at / 900000"
    } else {
        "CAST(NULL AS BIGINT)"
    };
    let groups = client
        .query(
            &format!(
                "SELECT t.machine, t.session_label, t.model, {slot}, {GROUP_SUMS}
                 FROM nex.turns t
                 WHERE t.session_label IS NOT NULL AND {NOT_ROOT_TURN}
                   AND ($1::bigint IS NULL OR t.started_at >= $1)
                   AND ($2::bigint IS NULL OR t.started_at < $2)
                 GROUP BY 1, 2, 3, 4"
            ),
            &[&filters.since_ms, &filters.until_ms],
        )
        .await
        .map_err(fail)?;
    let calendar = calendar()?;
    let mut report = ReportBuilder::new(&facts, filters, by, prices);
    for g in &groups {
        let machine: String = g.get(0);
        let slot: Option<i64> = g.get(3);
        report.add(TurnGroup {
            session: session_key(&machine, g.get(1)),
            machine: Some(machine),
            model: g.get(2),
            bucket: bucket_of(&calendar, by, filters.zone, slot.map(|s| s * 900_000))?,
            sums: Group {
                turns: g.get::<_, i64>(4).max(0) as u64,
                input: g.get(5),
                output: g.get(6),
                cache_read: g.get(7),
                cache_write: g.get(8),
                reasoning: g.get(9),
                total: g.get(10),
                parts_untotalled: g.get(11),
                reasoning_untotalled: g.get(12),
                without_tokens: g.get::<_, i64>(13).max(0) as u64,
            },
        });
    }
    Ok(report.finish())
}

/// A replica's session in a report: `machine/label` (a machine name holds no `/`).
fn session_key(machine: &str, label: &str) -> String {
    format!("{machine}/{label}")
}

/// A connection for SQLite's date functions only (no file).
fn calendar() -> Result<Connection, ReplicaError> {
    Ok(Connection::open_in_memory()?)
}
