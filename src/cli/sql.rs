//! `nex sql "SELECT …" [--json]`: a read-only SQL query over the ledger with nex's functions,
//! above all `nex_text(x)`, the text of a tool call's `params_json` or `result_json` stored
//! compressed (`ledger::text`), which a plain `sqlite3` cannot read.

use std::process::ExitCode;

use clap::Args;
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

use super::control_ctx::{errln, outln, print_json};
use super::search::ReadLedgerArgs;
use crate::query::{self, QueryError};

#[derive(Debug, Clone, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub ledger: ReadLedgerArgs,
    /// One SQL statement, run read-only (writes fail with `ledger_read_failed`).
    #[arg(allow_hyphen_values = true)]
    pub sql: String,
    /// One JSON object per row (column -> value; a BLOB as its hex); else tab-separated values
    /// under a header line, tabs and line breaks in values escaped as `\t`, `\n`, `\r`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SqlArgs) -> ExitCode {
    let path = match args.ledger.path() {
        Ok(path) => path,
        Err(e) => return super::control_ctx::fail(&e),
    };
    match query::open_existing(&path).and_then(|conn| print_rows(&conn, &args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("nex: {e} [{}]", e.code());
            ExitCode::FAILURE
        }
    }
}

/// Errors: `bad_request` for SQL that does not compile, `ledger_read_failed` for one that
/// fails while running (a write on this read-only connection among them).
fn print_rows(conn: &rusqlite::Connection, args: &SqlArgs) -> Result<(), QueryError> {
    conn.pragma_update(None, "query_only", true)?;
    let mut stmt = conn
        .prepare(&args.sql)
        .map_err(|e| QueryError::BadArgument(format!("the SQL does not compile: {e}")))?;
    let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    if !args.json {
        outln!("{}", names.join("\t"));
    }
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let values = (0..names.len())
            .map(|i| row.get_ref(i).map(json_of))
            .collect::<rusqlite::Result<Vec<Value>>>()?;
        if args.json {
            let object: Map<String, Value> = names.iter().cloned().zip(values).collect();
            print_json(&object);
        } else {
            let cells: Vec<String> = values.iter().map(cell).collect();
            outln!("{}", cells.join("\t"));
        }
    }
    Ok(())
}

fn json_of(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(r) => Value::from(r),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s
            .replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r"),
        other => other.to_string(),
    }
}
