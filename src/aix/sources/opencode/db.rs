//! The SQLite store (`opencode.db`, `opencode-*.db`): which tables and columns this database
//! has, the change token of every session, and one session's rows.
//!
//! Column names drifted across OpenCode versions (`time_created` / `created_at`, `session_id`
//! / `sessionID`, session fields as columns or in a `data` JSON): every table is probed with
//! `PRAGMA table_info` and the first known spelling of each column is used. A table without
//! one of its key columns is skipped and counted (`table:<name>_unusable`); a missing optional
//! column reads as absent.

use std::collections::HashMap;
use std::path::PathBuf;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::record::SessionData;
use super::{Head, MessageRow, Origin, PartRow, Rows};
use crate::aix::sources::ParseStats;
use crate::aix::sources::common::{count_skip, hex32};
use crate::aix::sources::store::{ReadOnlyDb, open_readonly};

/// One database of the data directory, opened read-only, with its probed schema.
pub(super) struct Db {
    pub path: PathBuf,
    pub ro: ReadOnlyDb,
    schema: Schema,
}

#[derive(Debug, Default)]
struct Schema {
    session: Option<SessionCols>,
    message: Option<MessageCols>,
    part: Option<PartCols>,
}

/// Quoted column names of `session` (`None`: the column does not exist).
#[derive(Debug)]
struct SessionCols {
    table: String,
    id: String,
    parent: Option<String>,
    project: Option<String>,
    title: Option<String>,
    directory: Option<String>,
    version: Option<String>,
    slug: Option<String>,
    created: Option<String>,
    updated: Option<String>,
    archived: Option<String>,
    data: Option<String>,
}

#[derive(Debug)]
struct MessageCols {
    table: String,
    id: String,
    session: String,
    created: Option<String>,
    updated: Option<String>,
    data: String,
}

#[derive(Debug)]
struct PartCols {
    table: String,
    id: String,
    message: String,
    session: Option<String>,
    updated: Option<String>,
    data: String,
}

const CREATED: &[&str] = &["time_created", "created_at", "created", "createdat"];
const UPDATED: &[&str] = &["time_updated", "updated_at", "updated", "updatedat"];
const SESSION_ID: &[&str] = &["session_id", "sessionid"];

/// `"name"` with inner quotes doubled.
fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `col` quoted, or SQL `NULL` when absent.
fn or_null(col: &Option<String>) -> &str {
    col.as_deref().unwrap_or("NULL")
}

impl Db {
    /// Opens `path` read-only and probes its schema; tables without their key columns are
    /// counted in `stats` and skipped.
    ///
    /// Errors: the file cannot be opened as a database or its schema cannot be read.
    pub fn open(path: PathBuf, stats: &mut ParseStats) -> std::io::Result<Self> {
        let ro = open_readonly(&path)?;
        let schema = Schema::probe(&ro.conn, stats).map_err(std::io::Error::other)?;
        Ok(Self { path, ro, schema })
    }

    fn conn(&self) -> &Connection {
        &self.ro.conn
    }

    /// Every session of this database with its change token (the session row's values, and
    /// count / max rowid / max and sum of `time_updated` / summed byte length of its message
    /// and part rows), read in one transaction. `db` is this database's index in the store.
    ///
    /// Cost: one pass over the rows of `message` and `part` through their session indexes (no
    /// index covers `time_updated`), every poll: measured at about 150 ms for a 228 MB
    /// database of 200k parts (release build), linear in the row count.
    ///
    /// Errors: a query failed (one bad row is skipped and counted, never an error).
    pub fn sessions(&self, db: usize, stats: &mut ParseStats) -> rusqlite::Result<Vec<Head>> {
        let Some(s) = &self.schema.session else {
            return Ok(Vec::new());
        };
        let tx = self.conn().unchecked_transaction()?;
        let messages = self.message_aggregates()?;
        let parts = self.part_aggregates()?;
        let sql = format!(
            "SELECT {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {} FROM {}",
            s.id,
            or_null(&s.parent),
            or_null(&s.project),
            or_null(&s.title),
            or_null(&s.directory),
            or_null(&s.version),
            or_null(&s.slug),
            or_null(&s.created),
            or_null(&s.updated),
            or_null(&s.archived),
            or_null(&s.data),
            s.table
        );
        let mut stmt = tx.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut heads = Vec::new();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        while let Some(row) = rows.next()? {
            stats.lines += 1;
            let Some(id) = text(row.get_ref(0)?) else {
                stats.malformed_lines += 1;
                continue;
            };
            let data: SessionData = match row.get_ref(10)? {
                ValueRef::Null => SessionData::default(),
                v => match serde_json::from_slice(bytes(v)) {
                    Ok(d) => d,
                    Err(_) => {
                        stats.malformed_lines += 1;
                        SessionData::default()
                    }
                },
            };
            let times = data.time.0.as_ref();
            let mut head = Head {
                parent: text(row.get_ref(1)?).or(data.parent_id),
                project_id: text(row.get_ref(2)?).or(data.project_id),
                title: text(row.get_ref(3)?).or(data.title),
                directory: text(row.get_ref(4)?).or(data.directory),
                version: text(row.get_ref(5)?).or(data.version),
                slug: text(row.get_ref(6)?).or(data.slug),
                created: int(row.get_ref(7)?).or(times.and_then(|t| t.created)),
                updated: int(row.get_ref(8)?).or(times.and_then(|t| t.updated)),
                archived: int(row.get_ref(9)?).or(times.and_then(|t| t.archived)),
                origin: Origin::Db(db),
                own: String::new(),
                id,
            };
            let mut h = Sha256::new();
            for part in [
                name.as_str(),
                &head.values(),
                messages.get(&head.id).map_or("", String::as_str),
                parts.get(&head.id).map_or("", String::as_str),
            ] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
            head.own = hex32(&h.finalize());
            heads.push(head);
        }
        Ok(heads)
    }

    /// Per session id: `count|max rowid|max updated|sum updated|sum bytes` of its messages.
    fn message_aggregates(&self) -> rusqlite::Result<HashMap<String, String>> {
        let Some(m) = &self.schema.message else {
            return Ok(HashMap::new());
        };
        let upd = m.updated.as_deref().unwrap_or("0");
        aggregates(self.conn(), |rowid| {
            format!(
                "SELECT {sid}, count(*), {rowid}, max({upd}), sum({upd}), \
                 sum(octet_length({data})) FROM {t} GROUP BY {sid}",
                sid = m.session,
                rowid = if rowid { "max(rowid)" } else { "0" },
                data = m.data,
                t = m.table,
            )
        })
    }

    /// As [`Self::message_aggregates`], for parts (through their message when the part table
    /// has no session column).
    fn part_aggregates(&self) -> rusqlite::Result<HashMap<String, String>> {
        let Some(p) = &self.schema.part else {
            return Ok(HashMap::new());
        };
        let upd = p
            .updated
            .as_deref()
            .map_or("0".to_owned(), |u| format!("p.{u}"));
        let (from, sid) = match (&p.session, &self.schema.message) {
            (Some(s), _) => (format!("{} p", p.table), format!("p.{s}")),
            (None, Some(m)) => (
                format!(
                    "{} p JOIN {} m ON p.{} = m.{}",
                    p.table, m.table, p.message, m.id
                ),
                format!("m.{}", m.session),
            ),
            (None, None) => return Ok(HashMap::new()),
        };
        aggregates(self.conn(), |rowid| {
            format!(
                "SELECT {sid}, count(*), {rowid}, max({upd}), sum({upd}), \
                 sum(octet_length(p.{data})) FROM {from} GROUP BY {sid}",
                rowid = if rowid { "max(p.rowid)" } else { "0" },
                data = p.data,
            )
        })
    }

    /// The message and part rows of session `id`, read in one transaction. Parts whose message
    /// is not among the session's are kept as orphans (they still count for links and the
    /// fingerprint).
    ///
    /// Errors: a query failed.
    pub fn rows(&self, id: &str, stats: &mut ParseStats) -> rusqlite::Result<Rows> {
        let mut out = Rows::default();
        let Some(m) = &self.schema.message else {
            return Ok(out);
        };
        let tx = self.conn().unchecked_transaction()?;
        let sql = format!(
            "SELECT {}, {}, {} FROM {} WHERE {} = ?1",
            m.id,
            or_null(&m.created),
            m.data,
            m.table,
            m.session
        );
        let mut stmt = tx.prepare(&sql)?;
        let mut rows = stmt.query(params![id])?;
        let mut by_id = HashMap::new();
        while let Some(row) = rows.next()? {
            let Some(mid) = text(row.get_ref(0)?) else {
                stats.malformed_lines += 1;
                continue;
            };
            by_id.insert(mid.clone(), out.messages.len());
            out.messages.push(MessageRow {
                id: mid,
                created: int(row.get_ref(1)?),
                data: bytes(row.get_ref(2)?).to_vec(),
                parts: Vec::new(),
            });
        }
        for (message, part) in self.parts(&tx, id, false, stats)? {
            match by_id.get(&message) {
                Some(&i) => out.messages[i].parts.push(part),
                None => out.orphans.push(part),
            }
        }
        Ok(out)
    }

    /// The parts of session `id` that may be `task` tool parts (their value mentions `task`):
    /// what a child needs of a parent that was not read.
    ///
    /// Errors: a query failed.
    pub fn task_parts(&self, id: &str, stats: &mut ParseStats) -> rusqlite::Result<Vec<PartRow>> {
        Ok(self
            .parts(self.conn(), id, true, stats)?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// `(message id, part)` of every part of session `id` (only those mentioning `task` when
    /// `tasks_only`).
    fn parts(
        &self,
        conn: &Connection,
        id: &str,
        tasks_only: bool,
        stats: &mut ParseStats,
    ) -> rusqlite::Result<Vec<(String, PartRow)>> {
        let Some(p) = &self.schema.part else {
            return Ok(Vec::new());
        };
        let filter = if tasks_only {
            format!(" AND instr(p.{}, 'task') > 0", p.data)
        } else {
            String::new()
        };
        let sql = match (&p.session, &self.schema.message) {
            (Some(s), _) => format!(
                "SELECT p.{}, p.{}, p.{} FROM {} p WHERE p.{s} = ?1{filter}",
                p.id, p.message, p.data, p.table
            ),
            (None, Some(m)) => format!(
                "SELECT p.{}, p.{}, p.{} FROM {} p JOIN {} m ON p.{} = m.{} \
                 WHERE m.{} = ?1{filter}",
                p.id, p.message, p.data, p.table, m.table, p.message, m.id, m.session
            ),
            (None, None) => return Ok(Vec::new()),
        };
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(params![id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let (Some(pid), Some(mid)) = (text(row.get_ref(0)?), text(row.get_ref(1)?)) else {
                stats.malformed_lines += 1;
                continue;
            };
            let data = bytes(row.get_ref(2)?).to_vec();
            out.push((mid, PartRow { id: pid, data }));
        }
        Ok(out)
    }
}

/// Runs the aggregate query `sql(true)` (with `max(rowid)`), or `sql(false)` when the table
/// has no rowid; rows are `session id, values…` and become `values` joined by `|`.
fn aggregates(
    conn: &Connection,
    sql: impl Fn(bool) -> String,
) -> rusqlite::Result<HashMap<String, String>> {
    let mut stmt = match conn.prepare(&sql(true)) {
        Ok(s) => s,
        Err(_) => conn.prepare(&sql(false))?,
    };
    let width = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(row) = rows.next()? {
        let Some(id) = text(row.get_ref(0)?) else {
            continue;
        };
        let mut token = String::new();
        for i in 1..width {
            token.push_str(&value_token(row.get_ref(i)?));
            token.push('|');
        }
        out.insert(id, token);
    }
    Ok(out)
}

impl Schema {
    fn probe(conn: &Connection, stats: &mut ParseStats) -> rusqlite::Result<Self> {
        let mut schema = Schema::default();
        if let Some((table, cols)) = table(conn, &["session", "sessions"])? {
            let pick = |c: &[&str]| pick(&cols, c);
            match pick(&["id"]) {
                Some(id) => {
                    schema.session = Some(SessionCols {
                        id,
                        parent: pick(&["parent_id", "parentid", "parent_session_id"]),
                        project: pick(&["project_id", "projectid"]),
                        title: pick(&["title"]),
                        directory: pick(&["directory"]),
                        version: pick(&["version"]),
                        slug: pick(&["slug"]),
                        created: pick(CREATED),
                        updated: pick(UPDATED),
                        archived: pick(&["time_archived", "archived_at"]),
                        data: pick(&["data"]),
                        table,
                    })
                }
                None => count_skip(stats, "table:session_unusable"),
            }
        }
        if let Some((table, cols)) = table(conn, &["message", "messages"])? {
            let pick = |c: &[&str]| pick(&cols, c);
            match (pick(&["id"]), pick(SESSION_ID), pick(&["data"])) {
                (Some(id), Some(session), Some(data)) => {
                    schema.message = Some(MessageCols {
                        id,
                        session,
                        created: pick(CREATED),
                        updated: pick(UPDATED),
                        data,
                        table,
                    })
                }
                _ => count_skip(stats, "table:message_unusable"),
            }
        }
        if let Some((table, cols)) = table(conn, &["part", "parts"])? {
            let pick = |c: &[&str]| pick(&cols, c);
            match (
                pick(&["id"]),
                pick(&["message_id", "messageid"]),
                pick(&["data"]),
            ) {
                (Some(id), Some(message), Some(data)) => {
                    schema.part = Some(PartCols {
                        id,
                        message,
                        session: pick(SESSION_ID),
                        updated: pick(UPDATED),
                        data,
                        table,
                    })
                }
                _ => count_skip(stats, "table:part_unusable"),
            }
        }
        Ok(schema)
    }
}

/// The first existing table among `names` (case-insensitive), quoted, with its column names.
fn table(conn: &Connection, names: &[&str]) -> rusqlite::Result<Option<(String, Vec<String>)>> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    let Some(name) = names
        .iter()
        .find_map(|n| tables.iter().find(|t| t.eq_ignore_ascii_case(n)))
    else {
        return Ok(None);
    };
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", q(name)))?;
    let cols = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<Result<_, _>>()?;
    Ok(Some((q(name), cols)))
}

/// The first of `candidates` among `cols` (case-insensitive), quoted.
fn pick(cols: &[String], candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find_map(|c| cols.iter().find(|col| col.eq_ignore_ascii_case(c)))
        .map(|c| q(c))
}

/// A non-blank text value (ids, names, paths); other types read as absent.
fn text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        }
        _ => None,
    }
}

/// A non-negative integer (times in ms); a real is truncated, text and blobs read as absent.
fn int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(n) if n >= 0 => Some(n),
        ValueRef::Real(f) if f >= 0.0 && f < i64::MAX as f64 => Some(f as i64),
        _ => None,
    }
}

/// The bytes of a text or blob value; empty for anything else.
fn bytes(v: ValueRef<'_>) -> &[u8] {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => t,
        _ => &[],
    }
}

/// A value as it goes into a change token.
fn value_token(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "n".to_owned(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => format!("{}", t.len()),
    }
}
