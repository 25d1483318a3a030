//! The PostgreSQL side: connecting (TLS when asked), and the replica's schema, created and
//! migrated by `nex` itself.
//!
//! # Schema
//! Everything lives in the schema `nex`. Each replicated table mirrors the ledger's, plus a
//! `machine` column leading its primary key; its columns follow the ledger's at run time (a
//! column a newer ledger has is added, none is ever dropped: a machine running an older `nex`
//! leaves it NULL). Constraints other than the key are not mirrored: each ledger enforces its
//! own, and the replica must accept rows in any order. `nex.replica_watermarks` holds each
//! machine's last replicated change.
//!
//! # Migrations
//! Forward-only and versioned (`nex.schema_version`), applied in one transaction under a
//! transaction-level advisory lock, so many machines starting at once apply each step once.

use tokio_postgres::{Client, NoTls};

use super::error::ReplicaError;
use super::settings::ReplicaUrl;
use super::tables::{TableShape, quoted};

/// Key of the advisory lock that serialises schema changes (any fixed number; "nexrepl1").
const SCHEMA_LOCK: i64 = 0x6e65_7872_6570_6c31;

/// Versioned steps after the mirrored tables exist; `schema_version` = how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: watermarks, and the indexes of the usage and session reports.
    "CREATE TABLE IF NOT EXISTS nex.replica_watermarks (
         machine    text PRIMARY KEY,
         seq        bigint NOT NULL,
         -- The ledger_identity of the ledger that replicates as this machine.
         ledger_id  text,
         updated_at timestamptz NOT NULL DEFAULT now()
     );
     CREATE INDEX IF NOT EXISTS turns_machine_session ON nex.turns (machine, session_label);
     CREATE INDEX IF NOT EXISTS turns_started ON nex.turns (started_at);
     CREATE INDEX IF NOT EXISTS sessions_updated ON nex.sessions (updated_at DESC);
     CREATE INDEX IF NOT EXISTS messages_machine_turn ON nex.messages (machine, turn_id);
     CREATE INDEX IF NOT EXISTS tool_calls_machine_turn ON nex.tool_calls (machine, turn_id);
     CREATE INDEX IF NOT EXISTS session_imports_machine_label
         ON nex.session_imports (machine, session_label);",
    // 2: the session columns of ledger migration 0003 (created by the mirror step before this).
    "CREATE INDEX IF NOT EXISTS messages_machine_session ON nex.messages (machine, session_label);
     CREATE INDEX IF NOT EXISTS tool_calls_machine_session
         ON nex.tool_calls (machine, session_label);
     CREATE INDEX IF NOT EXISTS sessions_provider ON nex.sessions (provider);",
];

/// Connects; the connection's driver task runs on the current runtime until the client drops.
///
/// Errors: `replica_unreachable` (the message names the host, never the credentials).
pub async fn connect(url: &ReplicaUrl) -> Result<Client, ReplicaError> {
    let unreachable = |e: &dyn std::fmt::Display| ReplicaError::Unreachable {
        host: url.host(),
        detail: url.redact(&error_text(e)),
    };
    if url.wants_tls() {
        let tls = url.tls_policy().connector().map_err(|e| unreachable(&e))?;
        let tls = postgres_native_tls::MakeTlsConnector::new(tls);
        let (client, conn) = url
            .config()
            .connect(tls)
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(conn);
        Ok(client)
    } else {
        let (client, conn) = url
            .config()
            .connect(NoTls)
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(conn);
        Ok(client)
    }
}

/// A driver error with its causes (tokio-postgres puts the server's words in the source).
pub fn error_text(e: &dyn std::fmt::Display) -> String {
    e.to_string()
}

/// A `tokio_postgres::Error` with its source chain, redacted.
pub fn describe(url: &ReplicaUrl, e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    url.redact(&text)
}

/// Creates or migrates the replica's schema for tables of `shapes`; returns its version.
///
/// Errors: `replica_schema_failed`; `replica_unreachable` when the connection is gone.
pub async fn ensure_schema(
    client: &mut Client,
    url: &ReplicaUrl,
    shapes: &[TableShape],
) -> Result<usize, ReplicaError> {
    let fail = |e: tokio_postgres::Error| classify(url, e, ReplicaError::Schema);
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(fail)?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS nex;
         CREATE TABLE IF NOT EXISTS nex.schema_version (version integer NOT NULL);",
    )
    .await
    .map_err(fail)?;
    for shape in shapes {
        mirror_table(&tx, shape).await.map_err(fail)?;
    }
    let current: Option<i32> = tx
        .query_opt("SELECT version FROM nex.schema_version", &[])
        .await
        .map_err(fail)?
        .map(|r| r.get(0));
    let current = current.unwrap_or(0).max(0) as usize;
    for step in MIGRATIONS.iter().skip(current) {
        tx.batch_execute(step).await.map_err(fail)?;
    }
    let version = current.max(MIGRATIONS.len());
    if current < MIGRATIONS.len() {
        tx.execute("DELETE FROM nex.schema_version", &[])
            .await
            .map_err(fail)?;
        tx.execute(
            "INSERT INTO nex.schema_version (version) VALUES ($1)",
            &[&(version as i32)],
        )
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    Ok(version)
}

/// `CREATE TABLE IF NOT EXISTS` with the shape's columns, then every column it lacks.
async fn mirror_table(
    tx: &tokio_postgres::Transaction<'_>,
    shape: &TableShape,
) -> Result<(), tokio_postgres::Error> {
    let name = format!("nex.{}", quoted(shape.table.name));
    let mut cols = vec!["machine text NOT NULL".to_owned()];
    cols.extend(
        shape
            .columns
            .iter()
            .map(|c| format!("{} {}", quoted(&c.name), c.pg.sql())),
    );
    let key: Vec<String> = std::iter::once("machine".to_owned())
        .chain(shape.key_columns().iter().map(|c| quoted(&c.name)))
        .collect();
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {name} ({}, PRIMARY KEY ({}))",
        cols.join(", "),
        key.join(", ")
    ))
    .await?;
    let existing: Vec<String> = tx
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'nex' AND table_name = $1",
            &[&shape.table.name],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for c in shape.value_columns() {
        if !existing.contains(&c.name) {
            tx.batch_execute(&format!(
                "ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {} {}",
                quoted(&c.name),
                c.pg.sql()
            ))
            .await?;
        }
    }
    Ok(())
}

/// A closed connection is `replica_unreachable` (the replicator reconnects); anything else is
/// the operation's own error.
pub fn classify(
    url: &ReplicaUrl,
    e: tokio_postgres::Error,
    kind: fn(String) -> ReplicaError,
) -> ReplicaError {
    let detail = describe(url, &e);
    // No SQLSTATE: I/O or protocol; class 08: connection exception; class 57: operator
    // intervention (the server shut down, the backend was terminated).
    let lost = e.is_closed()
        || e.code()
            .is_none_or(|c| c.code().starts_with("08") || c.code().starts_with("57"));
    if lost {
        ReplicaError::Unreachable {
            host: url.host(),
            detail,
        }
    } else {
        kind(detail)
    }
}
