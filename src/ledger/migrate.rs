//! Forward-only schema migrations: numbered `.sql` files embedded at build time, applied in
//! order inside one transaction, tracked by `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::LedgerError;

/// One embedded migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The file name, for error reports.
    pub name: &'static str,
    pub sql: &'static str,
}

/// Migrations of `agents.db`, in order; `user_version` = how many are applied.
pub const AGENTS: &[Migration] = &[
    Migration {
        name: "agents/0001_ledger.sql",
        sql: include_str!("../../migrations/agents/0001_ledger.sql"),
    },
    Migration {
        name: "agents/0002_mapping_versions.sql",
        sql: include_str!("../../migrations/agents/0002_mapping_versions.sql"),
    },
    Migration {
        name: "agents/0003_query_columns.sql",
        sql: include_str!("../../migrations/agents/0003_query_columns.sql"),
    },
    Migration {
        name: "agents/0004_tool_results_once.sql",
        sql: include_str!("../../migrations/agents/0004_tool_results_once.sql"),
    },
    Migration {
        name: "agents/0005_search.sql",
        sql: include_str!("../../migrations/agents/0005_search.sql"),
    },
    Migration {
        name: "agents/0006_change_log.sql",
        sql: include_str!("../../migrations/agents/0006_change_log.sql"),
    },
    Migration {
        name: "agents/0007_search_bounded.sql",
        sql: include_str!("../../migrations/agents/0007_search_bounded.sql"),
    },
    Migration {
        name: "agents/0008_search_batched.sql",
        sql: include_str!("../../migrations/agents/0008_search_batched.sql"),
    },
    Migration {
        name: "agents/0009_tool_bodies_compressed.sql",
        sql: include_str!("../../migrations/agents/0009_tool_bodies_compressed.sql"),
    },
    Migration {
        name: "agents/0010_search_segments.sql",
        sql: include_str!("../../migrations/agents/0010_search_segments.sql"),
    },
    Migration {
        name: "agents/0011_search_automerge.sql",
        sql: include_str!("../../migrations/agents/0011_search_automerge.sql"),
    },
    Migration {
        name: "agents/0012_inserts_logged_by_writer.sql",
        sql: include_str!("../../migrations/agents/0012_inserts_logged_by_writer.sql"),
    },
];

/// Migrations of `nexus.db`, in order.
pub const NEXUS: &[Migration] = &[
    Migration {
        name: "nexus/0001_runtime.sql",
        sql: include_str!("../../migrations/nexus/0001_runtime.sql"),
    },
    Migration {
        name: "nexus/0002_control.sql",
        sql: include_str!("../../migrations/nexus/0002_control.sql"),
    },
];

/// Applies the migrations `conn` has not seen yet; returns the resulting schema version.
///
/// Registers the ledger's SQL functions (`ledger::text`) on `conn` first.
/// Idempotent: with everything applied it only reads `user_version`. Concurrent openers are
/// safe: the version is re-read under an IMMEDIATE transaction (the write lock) before applying.
/// Errors: `ledger_schema_newer` when the file was written by a newer `nex`; any SQL failure
/// rolls the whole step back (the file keeps its previous version).
pub fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<u32, LedgerError> {
    // 0009 compresses with `nex_pack`, and the schema's views and triggers call `nex_text`:
    // a connection that migrates can also write (re-registering is harmless).
    super::text::register(conn)?;
    let known = u32::try_from(migrations.len()).unwrap_or(u32::MAX);
    if user_version(conn)? == known {
        return Ok(known);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = user_version(&tx)?;
    if current > known {
        return Err(LedgerError::SchemaNewer {
            found: current,
            known,
        });
    }
    for (index, migration) in migrations.iter().enumerate().skip(current as usize) {
        tx.execute_batch(migration.sql)
            .map_err(|source| LedgerError::Migration {
                name: migration.name,
                source,
            })?;
        tracing::debug!(
            migration = migration.name,
            version = index + 1,
            "applied migration"
        );
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(known)
}

fn user_version(conn: &Connection) -> Result<u32, LedgerError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}
