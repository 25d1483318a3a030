//! The replicated tables: their codes in `change_log.tbl` (migration 0006), their keys, and
//! their columns as the ledger has them now (`PRAGMA table_info`), mapped to PostgreSQL types.
//!
//! Columns are read from the ledger at run time, so a column another migration adds is
//! replicated without a change here (the replica's table gains it, see `schema`). A new
//! *table* needs a code here (`ledger::change_log`), its update and delete triggers in a ledger
//! migration, and its writer logging each insert (`ledger::change_log::log_insert`).

use rusqlite::Connection;

use crate::ledger::change_log;

use super::error::ReplicaError;

/// One replicated table.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    /// `change_log.tbl`.
    pub code: i64,
    pub name: &'static str,
    /// Its primary key, in the order of `change_log.row_key`'s parts.
    pub key: &'static [&'static str],
}

/// Every replicated table. The import's own tables (requests, chunk parts, cursors) are the
/// importer's working state, not the record, and FTS indexes are derived: neither is here.
pub const TABLES: &[Table] = &[
    Table {
        code: change_log::TURNS,
        name: "turns",
        key: &["id"],
    },
    Table {
        code: change_log::THREADS,
        name: "threads",
        key: &["turn_id"],
    },
    Table {
        code: change_log::SESSIONS,
        name: "sessions",
        key: &["label"],
    },
    Table {
        code: change_log::MESSAGES,
        name: "messages",
        key: &["id"],
    },
    Table {
        code: change_log::TOOL_CALLS,
        name: "tool_calls",
        key: &["id"],
    },
    Table {
        code: change_log::SESSION_HISTORY,
        name: "session_history",
        key: &["id"],
    },
    Table {
        code: change_log::SESSION_IMPORTS,
        name: "session_imports",
        key: &["source", "source_provider", "source_session_id"],
    },
];

pub use crate::ledger::change_log::KEY_SEPARATOR;

pub fn by_code(code: i64) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.code == code)
}

/// The PostgreSQL type a ledger column is stored as (SQLite affinity rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    BigInt,
    Text,
    Double,
    Bytea,
}

impl PgType {
    /// SQLite's affinity rules (datatype3 §3.1) on the declared type.
    pub fn from_declared(declared: &str) -> PgType {
        let d = declared.to_ascii_uppercase();
        if d.contains("INT") {
            PgType::BigInt
        } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
            PgType::Text
        } else if d.is_empty() || d.contains("BLOB") {
            PgType::Bytea
        } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
            PgType::Double
        } else {
            // NUMERIC affinity: kept as its text, exactly.
            PgType::Text
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            PgType::BigInt => "bigint",
            PgType::Text => "text",
            PgType::Double => "double precision",
            PgType::Bytea => "bytea",
        }
    }
}

/// One column of a replicated table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub pg: PgType,
}

/// A table with the columns the ledger has now, key columns first.
#[derive(Debug, Clone)]
pub struct TableShape {
    pub table: &'static Table,
    pub columns: Vec<Column>,
}

impl TableShape {
    pub fn key_columns(&self) -> &[Column] {
        &self.columns[..self.table.key.len()]
    }

    pub fn value_columns(&self) -> &[Column] {
        &self.columns[self.table.key.len()..]
    }
}

/// The shapes of every replicated table in `conn`.
///
/// Errors: `replica_read_failed` when a table or one of its key columns is missing (a ledger
/// older than migration 0006 never gets here: opening it migrates it).
pub fn shapes(conn: &Connection) -> Result<Vec<TableShape>, ReplicaError> {
    TABLES.iter().map(|t| shape(conn, t)).collect()
}

fn shape(conn: &Connection, table: &'static Table) -> Result<TableShape, ReplicaError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info(\"{}\")", table.name))?;
    let all: Vec<Column> = stmt
        .query_map([], |r| {
            Ok(Column {
                name: r.get::<_, String>(1)?,
                pg: PgType::from_declared(&r.get::<_, String>(2)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut columns = Vec::with_capacity(all.len());
    for key in table.key {
        let col = all.iter().find(|c| c.name == *key).ok_or_else(|| {
            ReplicaError::Read(format!("the ledger's {} has no column {key}", table.name))
        })?;
        columns.push(col.clone());
    }
    columns.extend(
        all.into_iter()
            .filter(|c| !table.key.contains(&c.name.as_str())),
    );
    Ok(TableShape { table, columns })
}

/// `"name"`, quoted for SQL (both engines).
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ledger_table_with_a_trigger_has_a_shape_with_its_key_first() {
        let conn = crate::ledger::open_agents_in_memory().unwrap();
        let shapes = shapes(&conn).unwrap();
        assert_eq!(shapes.len(), TABLES.len());
        let imports = shapes.iter().find(|s| s.table.code == 7).unwrap();
        let keys: Vec<&str> = imports
            .key_columns()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(keys, ["source", "source_provider", "source_session_id"]);
        let history = shapes.iter().find(|s| s.table.code == 6).unwrap();
        assert_eq!(history.key_columns()[0].pg, PgType::BigInt);
        // Every replicated table has its update and delete triggers, and nothing else is
        // logged by a trigger; inserts are logged by the writer (`ledger::change_log`).
        let triggers: Vec<(String, String)> = conn
            .prepare("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'change_log_%'")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for t in TABLES {
            let mut names: Vec<&str> = triggers
                .iter()
                .filter(|(table, _)| table == t.name)
                .map(|(_, name)| name.as_str())
                .collect();
            names.sort_unstable();
            let update = format!("change_log_{}_update", t.name);
            let delete = format!("change_log_{}_delete", t.name);
            assert_eq!(names, [delete.as_str(), update.as_str()], "{}", t.name);
        }
        assert_eq!(triggers.len(), 2 * TABLES.len());
        let on_insert: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%INSERT ON%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            on_insert, 0,
            "a trigger on INSERT puts every insert under a statement journal"
        );
    }

    #[test]
    fn declared_types_follow_sqlite_affinity() {
        assert_eq!(PgType::from_declared("INTEGER"), PgType::BigInt);
        assert_eq!(PgType::from_declared("text"), PgType::Text);
        assert_eq!(PgType::from_declared("VARCHAR(10)"), PgType::Text);
        assert_eq!(PgType::from_declared("REAL"), PgType::Double);
        assert_eq!(PgType::from_declared(""), PgType::Bytea);
        assert_eq!(PgType::from_declared("NUMERIC"), PgType::Text);
    }
}
