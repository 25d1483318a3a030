//! Helpers shared by the `import_*` test modules: ledgers, fixed clocks, request runners,
//! chunk encoding and canonical table dumps.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::{Compression, write::GzEncoder};
use nex::import::{self, ImportError, ImportOptions};
use nex::ledger;
use nex::protocol::{ChunkRequest, ChunkResponse, ImportRequest, ImportResponse};
use rusqlite::{Connection, types::ValueRef};
use serde_json::{Value, json};

pub const NOW: i64 = 1_750_000_000_000;

fn fixed_now() -> i64 {
    NOW
}

pub fn opts() -> ImportOptions {
    ImportOptions {
        clock: fixed_now,
        ..ImportOptions::default()
    }
}

pub fn ledger() -> Connection {
    ledger::open_agents_in_memory().expect("in-memory ledger")
}

pub fn full_item() -> Value {
    serde_json::from_str(include_str!("../fixtures/import/full_session_item.json")).unwrap()
}

/// Deterministic message id of `src` in an `aix`/`anthropic` session.
pub fn msg_id(session: &str, src: &str) -> String {
    import::scoped_id(import::IdKind::Message, "aix", "anthropic", session, src)
}

/// A minimal item: header only.
pub fn item(provider: &str, session: &str, fp: &str) -> Value {
    json!({ "sourceProvider": provider, "sourceSessionId": session,
            "sourceSessionFingerprint": fp, "session": {}, "turns": [], "messages": [] })
}

pub fn import_req(key: &str, mode: &str, items: Vec<Value>) -> Value {
    json!({ "source": "aix", "mode": mode, "idempotencyKey": key, "items": items })
}

/// Parses `req`, runs it in its own transaction, commits on success.
pub fn run_import(conn: &mut Connection, req: Value) -> Result<ImportResponse, ImportError> {
    run_import_with(conn, req, &opts())
}

pub fn run_import_with(
    conn: &mut Connection,
    req: Value,
    opts: &ImportOptions,
) -> Result<ImportResponse, ImportError> {
    let req: ImportRequest = serde_json::from_value(req).expect("request shape");
    let tx = conn.transaction().unwrap();
    let resp = import::import(&tx, &req, opts)?;
    flush_search(&tx);
    tx.commit().unwrap();
    Ok(resp)
}

/// The agents migrations before the first whose name holds `name` (`"0009_"`): a ledger of the
/// schema that migration starts from.
pub fn migrations_before(name: &str) -> Vec<nex::ledger::migrate::Migration> {
    nex::ledger::migrate::AGENTS
        .iter()
        .copied()
        .take_while(|m| !m.name.contains(name))
        .collect()
}

/// Puts every tool-call body back as TEXT, as the schemas before migration 0009 stored them
/// (this build's writer compresses the long ones): a ledger of an older schema written in a
/// test holds what that schema's writer wrote. Its search triggers re-index the rows.
pub fn store_bodies_as_text(conn: &Connection) {
    conn.execute(
        "UPDATE tool_calls SET params_json = nex_text(params_json), result_json = nex_text(result_json)
         WHERE typeof(params_json) = 'blob' OR typeof(result_json) = 'blob'",
        [],
    )
    .unwrap();
}

/// As every writer: the new rows are indexed last, before COMMIT (a no-op on a ledger of a
/// schema before `0008_search_batched`).
pub fn flush_search(tx: &Connection) {
    ledger::search_index::flush(tx).unwrap();
}

pub fn run_chunk(conn: &mut Connection, req: Value) -> Result<ChunkResponse, ImportError> {
    run_chunk_with(conn, req, &opts())
}

pub fn run_chunk_with(
    conn: &mut Connection,
    req: Value,
    opts: &ImportOptions,
) -> Result<ChunkResponse, ImportError> {
    let req: ChunkRequest = serde_json::from_value(req).expect("chunk shape");
    let tx = conn.transaction().unwrap();
    let resp = import::chunk(&tx, &req, opts)?;
    flush_search(&tx);
    tx.commit().unwrap();
    Ok(resp)
}

pub fn code<T: std::fmt::Debug>(result: Result<T, ImportError>) -> String {
    result
        .expect_err("expected an error")
        .written_code()
        .into_owned()
}

pub fn gzip_base64(bytes: &[u8]) -> String {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    STANDARD.encode(gz.finish().unwrap())
}

/// Splits `data` into `n` non-empty parts (n ≤ data.len()).
pub fn split(data: &str, n: usize) -> Vec<String> {
    let size = data.len().div_ceil(n);
    data.as_bytes()
        .chunks(size)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect()
}

/// One chunk request of an upload.
#[allow(clippy::too_many_arguments)]
pub fn chunk_req(
    key: &str,
    upload: &str,
    index: i64,
    total: i64,
    data: &str,
    provider: &str,
    session: &str,
    fingerprint: &str,
) -> Value {
    json!({
        "source": "aix", "mode": "backfill", "idempotencyKey": key, "uploadId": upload,
        "chunkIndex": index, "chunkTotal": total, "encoding": "gzip+base64", "data": data,
        "sourceProvider": provider, "sourceSessionId": session,
        "sourceSessionFingerprint": fingerprint,
    })
}

pub fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

pub fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Rows of the ledger's import tables as text, ordered by key, without import timestamps and
/// run ids (what R1/R5 compare).
pub fn canonical_dump(conn: &Connection) -> String {
    let tables: [(&str, &str, &[&str]); 6] = [
        ("sessions", "label", &[]),
        ("turns", "id", &[]),
        ("threads", "turn_id", &[]),
        ("messages", "id", &[]),
        ("tool_calls", "id", &[]),
        (
            "session_imports",
            "source, source_provider, source_session_id",
            &[
                "imported_at",
                "updated_at",
                "last_run_id",
                "source_session_fingerprint",
            ],
        ),
    ];
    let mut out = String::new();
    for (table, order, excluded) in tables {
        out.push_str(&dump_table(conn, table, order, excluded));
    }
    out
}

pub fn dump_table(conn: &Connection, table: &str, order: &str, excluded: &[&str]) -> String {
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
        .unwrap();
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([]).unwrap();
    let mut out = String::new();
    while let Some(row) = rows.next().unwrap() {
        out.push_str(table);
        for (i, name) in names.iter().enumerate() {
            if excluded.contains(&name.as_str()) {
                continue;
            }
            let cell = match row.get_ref(i).unwrap() {
                ValueRef::Null => "NULL".to_owned(),
                ValueRef::Integer(n) => n.to_string(),
                ValueRef::Real(f) => f.to_string(),
                ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => format!("blob{b:?}"),
            };
            out.push_str(&format!(" {name}={cell}"));
        }
        out.push('\n');
    }
    out
}
