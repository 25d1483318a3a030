//! The ledger is a function of the final database, whatever the polls saw on the way (issue 11,
//! TARGETS R5), for the polled stores: OpenCode's `opencode.db` (and channel-suffixed
//! `opencode-<channel>.db`) and Cursor's `state.vscdb`.
//!
//! A source database (a fixture built by the tests, or a real one: `NEX_REAL_SAMPLES_DIR`,
//! and `NEX_CORPUS_DIR` with `NEX_CUTS_DEPTH=corpus|full`; `opencode/<name>/`,
//! `cursor/<name>/User/`) is replayed into a fresh copy commit by commit, as the agent writes it:
//! - OpenCode: each session, message and part row inserted at its creation time, in time order;
//!   an assistant message first without its completion (no `time.completed`, `finish`, tokens
//!   or cost), a text or reasoning part first with half its text, a tool part first `running`
//!   without output, a session first with its creation time as update time and a placeholder
//!   title; each row brought to its final value at its update time.
//! - Cursor: each composer created with no bubbles, then bubble by bubble (an assistant bubble
//!   first with half its text) with the composer's header list growing, each write an
//!   `INSERT OR REPLACE` as Cursor does it; the final composer value last. Workspace databases
//!   and the other keys are there from the start.
//!
//! The writes go in random-sized batches, one transaction each, by one writer connection kept
//! open (a live WAL, as the agent holds it). After each batch the real aix side polls: the
//! tail's [`StoreRun`]s kept in memory across batches (a change notification names the
//! database), or a restarted run (a backfill resuming from the cursors the ledger committed).
//! The frames go through the real import pipeline into a real ledger, whose canonical dump
//! ([`dump`]) must equal one backfill of the final database into a fresh ledger; a `--full`
//! backfill over the cut ledger must converge to it too.
//!
//! - OpenCode's legacy JSON trees (`storage/`, and the 0.x `project/<name>/storage/`): each
//!   session, message and part file written at its creation time (first partial, as above),
//!   then final; the trees before the databases.
//! - For a real store, one import of the replay holds every session `aix scan` finds in the
//!   source directory: no database or tree of it is left out of the replay.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nex::aix::backfill::RunCounters;
use nex::aix::mapping::{MappingVersions, current_store_cursors};
use nex::aix::stores::{StoreRun, open_stores, store_cursor_map};
use nex::aix::{EmitLimits, Emitter, FrameSink, RunSpec, StopSignal, WorkerOptions, WorkerStatus};
use nex::protocol::RunMode;
use nex_bench::rng::Rng;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use crate::e2e_cuts::{Frames, Ledger, differences, dump};

// ---- the replay ---------------------------------------------------------------------------

/// One write of the agent: a statement on one of the group's databases, at a time.
#[derive(Clone, Debug)]
struct Op {
    /// Milliseconds; the writes go in `(at, seq)` order.
    at: i64,
    seq: usize,
    db: usize,
    sql: String,
    params: Vec<Sql>,
    /// A file written whole instead (a legacy OpenCode JSON file): path under the tree, bytes.
    file: Option<(PathBuf, Vec<u8>)>,
}

/// A database of a group: where it goes under the tree, its schema statements and the rows
/// present from the start.
struct TargetDb {
    rel: PathBuf,
    /// `CREATE` statements, in the source's order.
    schema: Vec<String>,
    /// Written in the first transaction: (statement, parameters).
    initial: Vec<(String, Vec<Sql>)>,
}

/// A store replayed: its databases, side files copied whole at the start, and the writes.
struct Plan {
    name: String,
    provider: &'static str,
    dbs: Vec<TargetDb>,
    /// (destination under the tree, source path): copied before anything else.
    copies: Vec<(PathBuf, PathBuf)>,
    ops: Vec<Op>,
}

/// A private, read-only view of a source database: the file and its `-wal` copied first, so
/// that nothing is ever written beside the real one.
fn open_source(path: &Path, scratch: &Path) -> Connection {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dest = scratch.join(format!(
        "src-{n}-{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::copy(path, &dest).unwrap();
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if wal.is_file() {
        std::fs::copy(&wal, format!("{}-wal", dest.display())).unwrap();
    }
    Connection::open_with_flags(&dest, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap()
}

fn schema_of(src: &Connection) -> Vec<String> {
    let mut stmt = src
        .prepare(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
             ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid",
        )
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn tables_of(src: &Connection) -> Vec<String> {
    let mut stmt = src
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every row of `table`: (column names, rows), in rowid order.
fn rows_of(src: &Connection, table: &str) -> (Vec<String>, Vec<Vec<Sql>>) {
    let mut stmt = src
        .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY rowid"))
        .unwrap();
    let cols: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let n = cols.len();
    let rows = stmt
        .query_map([], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (cols, rows)
}

fn insert_sql(table: &str, cols: &[String], verb: &str) -> String {
    format!(
        "{verb} INTO \"{table}\" ({}) VALUES ({})",
        cols.iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", "),
        (1..=cols.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `UPDATE` of every column of the row whose `key` column equals the last parameter.
fn update_sql(table: &str, cols: &[String], key: &str) -> String {
    format!(
        "UPDATE \"{table}\" SET {} WHERE \"{key}\" = ?{}",
        cols.iter()
            .enumerate()
            .map(|(i, c)| format!("\"{c}\" = ?{}", i + 1))
            .collect::<Vec<_>>()
            .join(", "),
        cols.len() + 1
    )
}

fn as_json(v: &Sql) -> Option<Value> {
    match v {
        Sql::Text(s) => serde_json::from_str(s).ok(),
        Sql::Blob(b) => serde_json::from_slice(b).ok(),
        _ => None,
    }
}

fn as_int(v: Option<&Sql>) -> Option<i64> {
    match v? {
        Sql::Integer(i) => Some(*i),
        Sql::Real(f) => Some(*f as i64),
        _ => None,
    }
}

/// The first half of `s` (on a character boundary).
fn half(s: &str) -> String {
    s.chars().take(s.chars().count() / 2).collect()
}

/// OpenCode's first write of a message or part (`data` as JSON), or `None` when it is written
/// once, final.
fn opencode_partial(table: &str, data: &Value) -> Option<Value> {
    let mut d = data.clone();
    let o = d.as_object_mut()?;
    match table {
        "message" if o.get("role")? == "assistant" => {
            if let Some(t) = o.get_mut("time").and_then(Value::as_object_mut) {
                t.remove("completed");
            }
            o.remove("finish");
            o.insert("cost".into(), json!(0));
            o.insert(
                "tokens".into(),
                json!({"input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}}),
            );
        }
        "part" => match o.get("type")?.as_str()? {
            "text" | "reasoning" => {
                let text = o.get("text")?.as_str()?;
                o.insert("text".into(), json!(half(text)));
                if let Some(t) = o.get_mut("time").and_then(Value::as_object_mut) {
                    t.remove("end");
                }
            }
            "tool" => {
                let state = o.get("state")?.clone();
                let mut running = json!({"status": "running"});
                if let Some(input) = state.get("input") {
                    running["input"] = input.clone();
                }
                if let Some(start) = state.pointer("/time/start") {
                    running["time"] = json!({"start": start});
                }
                o.insert("state".into(), running);
            }
            _ => return None,
        },
        _ => return None,
    }
    (d != *data).then_some(d)
}

/// The databases of an OpenCode data directory: `opencode.db` and the channel-suffixed
/// `opencode-<channel>.db` files beside it, sorted by name.
fn opencode_dbs(data_dir: &Path) -> Vec<PathBuf> {
    let mut dbs: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            p.is_file()
                && name.ends_with(".db")
                && (name == "opencode.db" || name.starts_with("opencode-"))
        })
        .collect();
    dbs.sort();
    dbs
}

/// The legacy JSON trees of an OpenCode data directory: `storage/` (1.x) and each
/// `project/<name>/storage/` (0.x, before the global tree).
fn opencode_trees(data_dir: &Path) -> Vec<PathBuf> {
    let mut trees = vec![data_dir.join("storage")];
    let mut projects: Vec<PathBuf> = std::fs::read_dir(data_dir.join("project"))
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path().join("storage")))
        .collect();
    projects.sort();
    trees.extend(projects);
    trees.retain(|t| t.is_dir());
    trees
}

/// What a legacy tree file is, from its path under the tree (`opencode/.../storage/<sub>`):
/// its table (`session`, `message`, `part`, or the folder name of any other file) and the name
/// of the folder holding it (a message's session, a part's message). The 1.x tree has
/// `session/<project>/<id>.json`, `message/<session>/<id>.json`, `part/<message>/<id>.json`; the
/// 0.x tree `session/info/<id>.json`, `session/message/<session>/<id>.json`,
/// `session/part/<session>/<message>/<id>.json`.
fn legacy_kind(rel: &Path) -> (String, String) {
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let start = parts
        .iter()
        .position(|c| c == "storage")
        .map_or(0, |i| i + 1);
    let sub = &parts[start.min(parts.len())..];
    let table = match (
        sub.first().map(String::as_str),
        sub.get(1).map(String::as_str),
    ) {
        (Some("session"), Some("info")) if sub.len() == 3 => "session".to_owned(),
        (Some("session"), Some(k @ ("message" | "part"))) if sub.len() > 3 => k.to_owned(),
        (Some(k), _) => k.to_owned(),
        (None, _) => String::new(),
    };
    let parent = if sub.len() >= 2 {
        sub[sub.len() - 2].clone()
    } else {
        String::new()
    };
    (table, parent)
}

/// The replay of one OpenCode data directory: its legacy JSON trees, then its databases.
fn opencode_plan(name: &str, data_dir: &Path, scratch: &Path) -> Plan {
    let mut ops = Vec::new();
    for tree in opencode_trees(data_dir) {
        let rel = Path::new("opencode").join(tree.strip_prefix(data_dir).unwrap());
        ops.extend(legacy_storage_ops(&tree, &rel));
    }
    let mut dbs = Vec::new();
    let paths = opencode_dbs(data_dir);
    if !paths.is_empty() {
        // A session a database holds too is left out of the trees: OpenCode copied it into
        // the database when it moved to SQLite, and the database copy is the one read. (The
        // fixture's stale JSON copy holds a message the database lacks: imported from the tree
        // first, the ledger keeps it, as it keeps anything a source later drops.)
        let mut ids: Vec<String> = Vec::new();
        for db in &paths {
            let src = open_source(db, scratch);
            let mut stmt = src.prepare("SELECT id FROM session").unwrap();
            ids.extend(
                stmt.query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap),
            );
        }
        let mut gone: Vec<String> = Vec::new();
        for op in &ops {
            let Some((rel, _)) = &op.file else { continue };
            let (table, parent) = legacy_kind(rel);
            if table == "message" && ids.contains(&parent) {
                gone.push(rel.file_stem().unwrap().to_string_lossy().into_owned());
            }
        }
        ops.retain(|op| {
            let Some((rel, _)) = &op.file else {
                return true;
            };
            let (table, parent) = legacy_kind(rel);
            let stem = rel.file_stem().unwrap().to_string_lossy().into_owned();
            match table.as_str() {
                "session" => !ids.contains(&stem),
                "message" => !ids.contains(&parent),
                "part" => !gone.contains(&parent),
                _ => true,
            }
        });
        for (i, db) in paths.iter().enumerate() {
            let rel = Path::new("opencode").join(db.file_name().unwrap());
            dbs.push(opencode_db(db, i, rel, scratch, &mut ops));
        }
    }
    Plan {
        name: name.to_owned(),
        provider: "opencode",
        dbs,
        copies: Vec::new(),
        ops,
    }
}

/// The legacy `storage/` tree (`session/<project>/<id>.json`, `message/<session>/<id>.json`,
/// `part/<message>/<id>.json`, each file rewritten whole): each session, message and part
/// file written at its creation time, first as [`opencode_partial`] says, then final at its
/// completion; any other file at the start.
fn legacy_storage_ops(storage: &Path, base: &Path) -> Vec<Op> {
    let mut files = Vec::new();
    crate::e2e_support::files_under(storage, &mut files);
    files.sort();
    let mut ops = Vec::new();
    // A message's creation time, for its parts that carry none.
    let mut message_times: HashMap<String, i64> = HashMap::new();
    let parsed: Vec<(PathBuf, Vec<u8>, Option<Value>)> = files
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            let v = serde_json::from_slice::<Value>(&bytes).ok();
            let rel = base.join(f.strip_prefix(storage).unwrap());
            (rel, bytes, v)
        })
        .collect();
    let kind = |rel: &Path| legacy_kind(rel).0;
    let ms = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64);
    for (rel, _, v) in &parsed {
        if let (Some(v), "message") = (v, kind(rel).as_str())
            && let (Some(id), Some(t)) =
                (v.get("id").and_then(Value::as_str), ms(v, "/time/created"))
        {
            message_times.insert(id.to_owned(), t);
        }
    }
    for (rel, bytes, v) in parsed {
        let push = |ops: &mut Vec<Op>, at: i64, bytes: Vec<u8>| {
            let seq = ops.len();
            ops.push(Op {
                at,
                seq,
                db: 0,
                sql: String::new(),
                params: Vec::new(),
                file: Some((rel.clone(), bytes)),
            });
        };
        let k = kind(&rel);
        let Some(v) = v.filter(|_| ["session", "message", "part"].contains(&k.as_str())) else {
            push(&mut ops, 0, bytes);
            continue;
        };
        let created = match k.as_str() {
            "part" => ms(&v, "/time/start")
                .or_else(|| ms(&v, "/state/time/start"))
                .or_else(|| message_times.get(v.get("messageID")?.as_str()?).copied()),
            _ => ms(&v, "/time/created"),
        }
        .unwrap_or(0);
        let done = [
            "/time/updated",
            "/time/completed",
            "/time/end",
            "/state/time/end",
        ]
        .iter()
        .filter_map(|p| ms(&v, p))
        .max()
        .unwrap_or(created)
        .max(created);
        let first = match k.as_str() {
            "session" => {
                let mut f = v.clone();
                f["title"] = json!(format!("New session - {created}"));
                if f.pointer("/time/updated").is_some() {
                    f["time"]["updated"] = json!(created);
                }
                Some(f)
            }
            table => opencode_partial(table, &v),
        };
        let pretty = |v: &Value| serde_json::to_vec_pretty(v).unwrap();
        if let Some(f) = first.filter(|f| *f != v) {
            push(&mut ops, created, pretty(&f));
            push(&mut ops, done, bytes);
        } else {
            push(&mut ops, created, bytes);
        }
    }
    ops
}

/// The replay of an OpenCode database (database `db` of the plan, at `rel` under the tree), its
/// writes appended to `ops`.
fn opencode_db(
    path: &Path,
    db: usize,
    rel: PathBuf,
    scratch: &Path,
    ops: &mut Vec<Op>,
) -> TargetDb {
    let src = open_source(path, scratch);
    let mut initial = Vec::new();
    let mut seq = ops.len();
    let mut push = |ops: &mut Vec<Op>, at: i64, sql: String, params: Vec<Sql>| {
        seq += 1;
        ops.push(Op {
            at,
            seq,
            db,
            sql,
            params,
            file: None,
        });
    };
    for table in tables_of(&src) {
        let (cols, rows) = rows_of(&src, &table);
        let col = |n: &str| cols.iter().position(|c| c == n);
        let replayed = ["session", "message", "part"].contains(&table.as_str())
            && col("id").is_some()
            && col("time_created").is_some();
        if !replayed {
            for row in rows {
                initial.push((insert_sql(&table, &cols, "INSERT"), row));
            }
            continue;
        }
        let (created, updated) = (col("time_created").unwrap(), col("time_updated"));
        let insert = insert_sql(&table, &cols, "INSERT");
        let update = update_sql(&table, &cols, "id");
        for row in rows {
            let t0 = as_int(row.get(created)).unwrap_or(0);
            let t1 = updated
                .and_then(|u| as_int(row.get(u)))
                .unwrap_or(t0)
                .max(t0);
            let mut first = row.clone();
            if let Some(u) = updated {
                first[u] = Sql::Integer(t0);
            }
            if table == "session" {
                if let Some(title) = col("title") {
                    first[title] = Sql::Text(format!("New session - {t0}"));
                }
            } else if let Some(d) = col("data")
                && let Some(p) = as_json(&row[d]).and_then(|v| opencode_partial(&table, &v))
            {
                first[d] = Sql::Text(p.to_string());
            }
            let changed = first != row;
            push(ops, t0, insert.clone(), first);
            if changed {
                let mut params = row.clone();
                params.push(row[col("id").unwrap()].clone());
                push(ops, t1, update.clone(), params);
            }
        }
    }
    TargetDb {
        rel,
        schema: schema_of(&src),
        initial,
    }
}

/// Milliseconds of a Cursor time: a number, or an ISO 8601 UTC string.
fn cursor_ms(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let s = v.as_str()?;
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let ms = if s.as_bytes().get(19) == Some(&b'.') {
        num(20, 23).unwrap_or(0)
    } else {
        0
    };
    // Days from the civil date (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

/// The replay of one Cursor `User` directory: the global database's composers and bubbles
/// written as Cursor writes them; workspace databases copied whole.
fn cursor_plan(name: &str, user: &Path, scratch: &Path) -> Plan {
    let mut copies = Vec::new();
    let ws = user.join("workspaceStorage");
    let mut files = Vec::new();
    crate::e2e_support::files_under(&ws, &mut files);
    let mut workspaces = Vec::new();
    for f in files {
        let n = f.file_name().unwrap().to_string_lossy();
        let rel = Path::new("cursor/User").join(f.strip_prefix(user).unwrap());
        if n == "workspace.json" {
            copies.push((rel, f.clone()));
        } else if n == "state.vscdb" {
            workspaces.push((rel, f.clone()));
        }
    }
    let global = user.join("globalStorage/state.vscdb");
    let mut dbs = Vec::new();
    let mut ops = Vec::new();
    if global.is_file() {
        let src = open_source(&global, scratch);
        let mut initial = Vec::new();
        let mut composers: Vec<(String, Sql)> = Vec::new();
        let mut bubbles: HashMap<String, Vec<(String, Sql)>> = HashMap::new();
        for table in tables_of(&src) {
            let (cols, rows) = rows_of(&src, &table);
            if table != "cursorDiskKV" || cols != ["key", "value"] {
                for row in rows {
                    initial.push((insert_sql(&table, &cols, "INSERT OR REPLACE"), row));
                }
                continue;
            }
            for row in rows {
                let Sql::Text(key) = &row[0] else {
                    initial.push((insert_sql(&table, &cols, "INSERT OR REPLACE"), row));
                    continue;
                };
                if let Some(id) = key.strip_prefix("composerData:") {
                    composers.push((id.to_owned(), row[1].clone()));
                } else if let Some((cid, bid)) = key
                    .strip_prefix("bubbleId:")
                    .and_then(|r| r.rsplit_once(':'))
                {
                    bubbles
                        .entry(cid.to_owned())
                        .or_default()
                        .push((bid.to_owned(), row[1].clone()));
                } else {
                    initial.push((insert_sql(&table, &cols, "INSERT OR REPLACE"), row));
                }
            }
        }
        let put = "INSERT OR REPLACE INTO cursorDiskKV (key, value) VALUES (?1, ?2)";
        let mut seq = 0usize;
        let mut push = |ops: &mut Vec<Op>, at: i64, key: String, value: Sql| {
            seq += 1;
            ops.push(Op {
                at,
                seq,
                db: 0,
                sql: put.to_owned(),
                params: vec![Sql::Text(key), value],
                file: None,
            });
        };
        for (cid, value) in &composers {
            let own = bubbles.remove(cid).unwrap_or_default();
            let Some(composer) = as_json(value).filter(Value::is_object) else {
                for (bid, v) in own {
                    push(&mut ops, 0, format!("bubbleId:{cid}:{bid}"), v);
                }
                push(&mut ops, 0, format!("composerData:{cid}"), value.clone());
                continue;
            };
            let created = cursor_ms(composer.get("createdAt")).unwrap_or(0);
            // The list that grows: the headers, or an older composer's inline conversation.
            let list_key = ["fullConversationHeadersOnly", "conversation"]
                .into_iter()
                .find(|k| composer.get(*k).is_some_and(Value::is_array));
            let list: Vec<Value> = list_key
                .map(|k| composer[k].as_array().unwrap().clone())
                .unwrap_or_default();
            // The composer after `n` bubbles, at `at` (its update time then, when it has one).
            let with = |n: usize, at: i64| {
                let mut c = composer.clone();
                if let Some(k) = list_key {
                    c[k] = Value::Array(list[..n].to_vec());
                }
                if c.get("lastUpdatedAt").is_some_and(Value::is_i64) {
                    c["lastUpdatedAt"] = json!(at);
                }
                Sql::Text(c.to_string())
            };
            let mut at = created;
            push(&mut ops, at, format!("composerData:{cid}"), with(0, at));
            let by_id: HashMap<&str, &Sql> = own.iter().map(|(b, v)| (b.as_str(), v)).collect();
            let listed: Vec<&str> = list
                .iter()
                .filter_map(|h| h.get("bubbleId")?.as_str())
                .collect();
            // Bubbles the headers do not list: written at their own time (the reader places
            // them by it).
            for (bid, v) in &own {
                if !listed.contains(&bid.as_str()) {
                    let t = cursor_ms(as_json(v).as_ref().and_then(|b| b.get("createdAt")));
                    push(
                        &mut ops,
                        t.unwrap_or(at).max(at),
                        format!("bubbleId:{cid}:{bid}"),
                        v.clone(),
                    );
                }
            }
            for (k, h) in list.iter().enumerate() {
                let bid = h.get("bubbleId").and_then(Value::as_str);
                let bubble = bid.and_then(|b| by_id.get(b).copied());
                let body = bubble.and_then(as_json).or_else(|| Some(h.clone()));
                at =
                    at.max(cursor_ms(body.as_ref().and_then(|b| b.get("createdAt"))).unwrap_or(at));
                let key = bid.map(|b| format!("bubbleId:{cid}:{b}"));
                let partial = body.as_ref().and_then(|b| {
                    let text = b.get("text")?.as_str()?;
                    (b.get("type")? == 2 && !text.is_empty()).then(|| {
                        let mut p = b.clone();
                        p["text"] = json!(half(text));
                        Sql::Text(p.to_string())
                    })
                });
                if let (Some(key), Some(bubble)) = (&key, bubble) {
                    push(
                        &mut ops,
                        at,
                        key.clone(),
                        partial.clone().unwrap_or_else(|| bubble.clone()),
                    );
                }
                push(&mut ops, at, format!("composerData:{cid}"), with(k + 1, at));
                if let (Some(key), Some(bubble), Some(_)) = (&key, bubble, &partial) {
                    push(&mut ops, at + 1, key.clone(), bubble.clone());
                }
            }
            let last = cursor_ms(composer.get("lastUpdatedAt"))
                .unwrap_or(at)
                .max(at);
            push(&mut ops, last, format!("composerData:{cid}"), value.clone());
        }
        // Bubbles of no composer: there from the start.
        for (cid, own) in bubbles {
            for (bid, v) in own {
                initial.push((
                    put.to_owned(),
                    vec![Sql::Text(format!("bubbleId:{cid}:{bid}")), v],
                ));
            }
        }
        dbs.push(TargetDb {
            rel: PathBuf::from("cursor/User/globalStorage/state.vscdb"),
            schema: schema_of(&src),
            initial,
        });
    }
    for (rel, path) in workspaces {
        let src = open_source(&path, scratch);
        let db = dbs.len();
        let mut initial = Vec::new();
        for table in tables_of(&src) {
            let (cols, rows) = rows_of(&src, &table);
            for row in rows {
                let states = match (&row[0], table.as_str()) {
                    (Sql::Text(key), "ItemTable") if cols == ["key", "value"] => {
                        legacy_states(key, &row[1])
                    }
                    _ => Vec::new(),
                };
                if states.is_empty() {
                    initial.push((insert_sql(&table, &cols, "INSERT OR REPLACE"), row));
                    continue;
                }
                let sql = insert_sql(&table, &cols, "INSERT OR REPLACE");
                for state in states.into_iter().chain([row[1].clone()]) {
                    let seq = ops.len();
                    ops.push(Op {
                        at: 0,
                        seq,
                        db,
                        sql: sql.clone(),
                        params: vec![row[0].clone(), state],
                        file: None,
                    });
                }
            }
        }
        dbs.push(TargetDb {
            rel,
            schema: schema_of(&src),
            initial,
        });
    }
    Plan {
        name: name.to_owned(),
        provider: "cursor",
        dbs,
        copies,
        ops,
    }
}

/// The states a legacy workspace value went through before `value` (Cursor rewrites it whole
/// at each change): the chat tabs (`workbench.panel.aichat.view.aichat.chatdata`, `tabs[].bubbles`)
/// or inline composers (`composer.composerData`, `allComposers[].conversation`) appearing one
/// after the other and growing bubble by bubble, an AI bubble first with half its text. Empty
/// for any other key (written once, at the start).
fn legacy_states(key: &str, value: &Sql) -> Vec<Sql> {
    let (outer, inner) = match key {
        "workbench.panel.aichat.view.aichat.chatdata" => ("tabs", "bubbles"),
        "composer.composerData" => ("allComposers", "conversation"),
        _ => return Vec::new(),
    };
    let Some(fin) = as_json(value) else {
        return Vec::new();
    };
    let Some(entries) = fin.get(outer).and_then(Value::as_array) else {
        return Vec::new();
    };
    let encode = |v: &Value| match value {
        Sql::Blob(_) => Sql::Blob(v.to_string().into_bytes()),
        _ => Sql::Text(v.to_string()),
    };
    let mut states = Vec::new();
    let mut done: Vec<Value> = Vec::new();
    let with = |done: &[Value], current: Option<Value>| {
        let mut v = fin.clone();
        v[outer] = Value::Array(done.iter().cloned().chain(current).collect());
        encode(&v)
    };
    states.push(with(&done, None));
    for entry in entries {
        let bubbles = entry.get(inner).and_then(Value::as_array).cloned();
        for (j, b) in bubbles.iter().flatten().enumerate() {
            let mut e = entry.clone();
            let mut grown: Vec<Value> = bubbles.as_ref().unwrap()[..j].to_vec();
            let ai = matches!(b.get("type"), Some(t) if t == "ai" || t == 2);
            let text_key = ["text", "rawText"].into_iter().find(|k| {
                b.get(*k)
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.is_empty())
            });
            if let (true, Some(k)) = (ai, text_key) {
                let mut partial = b.clone();
                partial[k] = json!(half(b[k].as_str().unwrap()));
                grown.push(partial);
                e[inner] = Value::Array(grown.clone());
                states.push(with(&done, Some(e.clone())));
                grown.pop();
            }
            grown.push(b.clone());
            e[inner] = Value::Array(grown);
            states.push(with(&done, Some(e)));
        }
        done.push(entry.clone());
    }
    // The caller writes `value` itself last (its bytes as stored).
    states
}

// ---- the run --------------------------------------------------------------------------------

/// A temp tree holding the replayed databases, their writer connections (open for the whole
/// replay, as the agent holds them) and the ledgers.
struct StoreTree {
    dir: tempfile::TempDir,
    writers: Vec<Connection>,
}

impl StoreTree {
    fn new(plan: &Plan) -> Self {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        std::fs::create_dir_all(dir.path().join("opencode")).unwrap();
        std::fs::create_dir_all(dir.path().join("cursor/User/globalStorage")).unwrap();
        for (rel, from) in &plan.copies {
            let dest = dir.path().join(rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(from, &dest).unwrap();
        }
        let mut writers = Vec::new();
        for db in &plan.dbs {
            let path = dir.path().join(&db.rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let conn = Connection::open(path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA foreign_keys=OFF;",
            )
            .unwrap();
            let tx = conn.unchecked_transaction().unwrap();
            for sql in &db.schema {
                tx.execute_batch(sql).unwrap();
            }
            for (sql, params) in &db.initial {
                tx.execute(sql, rusqlite::params_from_iter(params)).unwrap();
            }
            tx.commit().unwrap();
            writers.push(conn);
        }
        Self { dir, writers }
    }

    /// Commits `ops`: one transaction per database.
    fn write(&self, ops: &[Op]) {
        let txs: Vec<_> = self
            .writers
            .iter()
            .map(|c| c.unchecked_transaction().unwrap())
            .collect();
        for op in ops {
            if let Some((rel, bytes)) = &op.file {
                let dest = self.dir.path().join(rel);
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                std::fs::write(dest, bytes).unwrap();
                continue;
            }
            txs[op.db]
                .execute(&op.sql, rusqlite::params_from_iter(&op.params))
                .unwrap();
        }
        for tx in txs {
            tx.commit().unwrap();
        }
    }

    fn options(&self, plan: &Plan, full: bool) -> WorkerOptions {
        let p = self.dir.path();
        let mut o = WorkerOptions {
            full,
            parse_threads: 1,
            limits: EmitLimits::default(),
            ..WorkerOptions::default()
        };
        match plan.provider {
            "opencode" => o.opencode_dirs = vec![p.join("opencode")],
            _ => o.cursor_dbs = vec![p.join("cursor/User")],
        }
        o
    }

    fn store_cursors(ledger: &Ledger) -> HashMap<String, nex::aix::sources::StoreCursor> {
        let all = nex::ledger::load_cursors(&ledger.read(), "aix").unwrap();
        current_store_cursors(&store_cursor_map(&all), &MappingVersions::default())
    }

    /// One backfill run (resuming from the ledger's store cursors unless `full`).
    fn backfill(&self, plan: &Plan, ledger: &Ledger, full: bool, what: &str) {
        let frames = Frames::default();
        let sink = FrameSink::new(Box::new(frames.clone()), uuid::Uuid::new_v4().to_string());
        let spec = RunSpec {
            mode: RunMode::Backfill,
            persona_id: None,
            cursors: HashMap::new(),
            store_cursors: if full {
                HashMap::new()
            } else {
                Self::store_cursors(ledger)
            },
            options: self.options(plan, full),
        };
        nex::aix::run_mode(
            &spec,
            &nex::aix::default_parser_factory(),
            &sink,
            &StopSignal::default(),
            &WorkerStatus::default(),
        )
        .unwrap();
        ledger.apply(frames.take(), what);
    }

    fn dump(&self, ledger: &Ledger) -> String {
        dump(&ledger.read()).replace(&self.dir.path().display().to_string(), "<tree>")
    }
}

/// One batch of writes and how it is read.
struct Batch {
    ops: std::ops::Range<usize>,
    restart: bool,
    /// Read by the tail on a change notification (forced poll), else at a reconcile only (a
    /// poll when the store's stamp moved: the stamp must see every database commit).
    notified: bool,
}

/// The writes in random-sized batches (1 to about a tenth of them, at least 3), each read by the
/// tail (3 in 4) or a restarted run; a tail read is notified 3 times in 4, and always when the
/// batch rewrote a legacy JSON file (a stamp of the tree's directories does not see a file
/// rewritten in place: the tail has the notification for that, `aix::stores`).
fn batches(ops: &[Op], rng: &mut Rng) -> Vec<Batch> {
    let n = ops.len();
    let max = (n / 10).max(3) as u64;
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let len = rng.range(1, max + 1) as usize;
        let end = (i + len).min(n);
        out.push(Batch {
            ops: i..end,
            restart: rng.range(0, 4) == 0,
            notified: rng.range(0, 4) != 0 || ops[i..end].iter().any(|o| o.file.is_some()),
        });
        i = end;
    }
    out
}

/// Replays `plan` in `batches`, reading after each; returns the cut ledger's dump (after a
/// `--full` backfill over it when `full`) and the reference dump of the final database.
fn run_case(
    plan: &Plan,
    ops: &[Op],
    batches: &[Batch],
    what: &str,
    full: bool,
) -> (String, String) {
    let started = nex::import::system_now_ms();
    let tree = StoreTree::new(plan);
    let ledger = Ledger::new(tree.dir.path().join("cut.db"));
    let mut i = 0;
    // The last tail run's stores, polled once more at the end (a reconcile, no notification).
    let mut last_tail: Option<Vec<StoreRun>> = None;
    while i < batches.len() {
        last_tail = None;
        if batches[i].restart {
            tree.write(&ops[batches[i].ops.clone()]);
            tree.backfill(plan, &ledger, false, &format!("{what} batch {i}"));
            i += 1;
            continue;
        }
        // A run of tail batches: one tail run, its stores' cursors in memory.
        let frames = Frames::default();
        let sink = FrameSink::new(Box::new(frames.clone()), uuid::Uuid::new_v4().to_string());
        let mut emitter = Emitter::new(&sink, RunMode::Tail, None, EmitLimits::default());
        let cursors = StoreTree::store_cursors(&ledger);
        let options = tree.options(plan, false);
        let mut stores: Vec<StoreRun> = open_stores(&options)
            .into_iter()
            .map(|s| StoreRun::new(s, &cursors))
            .collect();
        while i < batches.len() && !batches[i].restart {
            tree.write(&ops[batches[i].ops.clone()]);
            let mut counters = RunCounters::default();
            for s in &mut stores {
                s.poll(
                    false,
                    batches[i].notified,
                    &MappingVersions::default(),
                    &mut emitter,
                    &mut counters,
                )
                .map_err(|e| e.0)
                .unwrap();
            }
            emitter.flush().unwrap();
            ledger.apply(frames.take(), &format!("{what} batch {i}"));
            i += 1;
        }
        last_tail = Some(stores);
    }
    // The end: the running tail reconciles (its stores as they are, no notification); with no
    // batch at all, a tail starts on the database as it is.
    let frames = Frames::default();
    let sink = FrameSink::new(Box::new(frames.clone()), uuid::Uuid::new_v4().to_string());
    let mut emitter = Emitter::new(&sink, RunMode::Tail, None, EmitLimits::default());
    let mut stores = match last_tail {
        Some(stores) => stores,
        None if batches.is_empty() => open_stores(&tree.options(plan, false))
            .into_iter()
            .map(|s| StoreRun::new(s, &HashMap::new()))
            .collect(),
        None => Vec::new(),
    };
    for s in &mut stores {
        s.poll(
            false,
            false,
            &MappingVersions::default(),
            &mut emitter,
            &mut RunCounters::default(),
        )
        .map_err(|e| e.0)
        .unwrap();
    }
    emitter.flush().unwrap();
    ledger.apply(frames.take(), &format!("{what} last poll"));
    if full {
        tree.backfill(plan, &ledger, true, &format!("{what} --full"));
    }
    let got = tree.dump(&ledger);
    let reference = Ledger::new(tree.dir.path().join("ref.db"));
    tree.backfill(plan, &reference, false, &format!("{what} reference"));
    let expected = tree.dump(&reference);
    let window = started..=nex::import::system_now_ms();
    (
        without_import_times(&got, &window),
        without_import_times(&expected, &window),
    )
}

/// `dump` with every millisecond time inside `window` (the test's own run) written
/// `<import time>`: a session or turn whose source holds no time at all (a legacy Cursor
/// composer without `createdAt`) takes the import's time (IMPORT_SEMANTICS.md, item rule 5),
/// which is when it was first imported, not a function of the source. Source times are never
/// in the window (fixtures are dated 2026-01, real files earlier).
fn without_import_times(dump: &str, window: &std::ops::RangeInclusive<i64>) -> String {
    let mut out = String::with_capacity(dump.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        match digits.parse::<i64>() {
            Ok(ms) if digits.len() == 13 && window.contains(&ms) => out.push_str("<import time>"),
            _ => out.push_str(digits),
        }
        digits.clear();
    };
    for c in dump.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// `cases` random replays of `plan`; returns the failures.
fn run_plan(plan: &Plan, seed: u64, cases: usize, must_import: bool) -> Vec<String> {
    let mut ops = plan.ops.clone();
    // The legacy JSON tree predates the database (OpenCode 1.2 moved to SQLite): its files
    // come first. A session in both is read from the database once it is there.
    ops.sort_by_key(|o| (o.file.is_none(), o.at, o.seq));
    let mut rng = Rng::new(seed);
    let mut failures = Vec::new();
    let mut polls = 0;
    for case in 0..cases {
        let b = batches(&ops, &mut rng);
        polls += b.len();
        let what = format!("{} case {case} (seed {seed:#x})", plan.name);
        let (got, expected) = run_case(plan, &ops, &b, &what, case == 0);
        assert!(
            !must_import || expected.contains("\nturns "),
            "{what}: the final database imports turns"
        );
        if got != expected {
            let f = format!("{what}: {}", differences(&got, &expected));
            // `NEX_CUTS_DUMP_DIR`: both dumps of a failure, to diff by hand.
            if let Some(dir) = std::env::var_os("NEX_CUTS_DUMP_DIR") {
                let stem = Path::new(&dir).join(what.replace(['/', ' ', ':'], "_"));
                std::fs::write(stem.with_extension("got"), &got).unwrap();
                std::fs::write(stem.with_extension("expected"), &expected).unwrap();
            }
            eprintln!("e2e_store_cuts: FAILED {f}");
            failures.push(f);
        }
    }
    eprintln!(
        "e2e_store_cuts: {}: {} writes, {polls} polls, {} failures",
        plan.name,
        ops.len(),
        failures.len()
    );
    failures
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} replays differ from one import of the final database:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A replay that brings every row to its final value equals the source row for row: the
/// harness writes what the agent wrote, only in more steps.
fn assert_replay_is_complete(plan: &Plan, source: &Path) {
    let tree = StoreTree::new(plan);
    tree.write(&plan.ops);
    let scratch = tempfile::tempdir().unwrap();
    let src = open_source(source, scratch.path());
    let got = &tree.writers[0];
    for table in tables_of(&src) {
        let (_, mut a) = rows_of(&src, &table);
        let (_, mut b) = rows_of(got, &table);
        let key = |r: &Vec<Sql>| format!("{r:?}");
        a.sort_by_key(key);
        b.sort_by_key(key);
        assert!(
            a == b,
            "{}: table {table} differs after the replay",
            plan.name
        );
    }
}

/// One import of the replayed store holds every session that `aix scan` finds in the source
/// directory itself (`scan`: the flag naming it): no database or tree of the source is left out
/// of the replay.
fn assert_replay_holds_every_session(plan: &Plan, scan: &[String]) {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aix"))
        .args(["scan", "--sessions"])
        .args(scan)
        .env("HOME", home.path())
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CODEX_HOME")
        .env_remove("OPENCODE_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: aix scan failed", plan.name);
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["provider"] == plan.provider)
        .filter_map(|v| Some(v["sessionId"].as_str()?.to_owned()))
        .collect();
    let tree = StoreTree::new(plan);
    tree.write(&plan.ops);
    let ledger = Ledger::new(tree.dir.path().join("all.db"));
    tree.backfill(plan, &ledger, false, "whole");
    let dump = tree.dump(&ledger);
    for id in &ids {
        assert!(
            dump.contains(&format!("source_session_id=\"{id}\"")),
            "{}: the replay lacks session {id} of the source",
            plan.name
        );
    }
}

// ---- the stores -----------------------------------------------------------------------------

/// The real stores under `root` (`opencode/<name>/` with an `opencode.db`, a channel-suffixed
/// `opencode-<channel>.db` or a legacy JSON tree; `cursor/<name>/User/`).
fn real_plans(var: &str, scratch: &Path) -> Vec<(Plan, PathBuf, Vec<String>)> {
    let Some(root) = std::env::var_os(var).map(PathBuf::from) else {
        eprintln!("e2e_store_cuts: {var} unset; skipped");
        return Vec::new();
    };
    let only = std::env::var("NEX_CUTS_ONLY").ok();
    let mut out = Vec::new();
    let entries = |sub: &str| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(sub))
            .into_iter()
            .flatten()
            .filter_map(|e| Some(e.ok()?.path()))
            .collect();
        v.sort();
        v
    };
    for dir in entries("opencode") {
        let name = format!(
            "{var}:opencode/{}",
            dir.file_name().unwrap().to_string_lossy()
        );
        let source = opencode_dbs(&dir).into_iter().next();
        let has = source.is_some() || !opencode_trees(&dir).is_empty();
        if has && only.as_ref().is_none_or(|o| name.contains(o)) {
            let source = source.unwrap_or_else(|| dir.join("opencode.db"));
            let scan = vec!["--opencode-dir".to_owned(), dir.display().to_string()];
            out.push((opencode_plan(&name, &dir, scratch), source, scan));
        }
    }
    for dir in entries("cursor") {
        let name = format!(
            "{var}:cursor/{}",
            dir.file_name().unwrap().to_string_lossy()
        );
        let user = dir.join("User");
        let global = user.join("globalStorage/state.vscdb");
        if user.is_dir() && only.as_ref().is_none_or(|o| name.contains(o)) {
            let scan = vec!["--cursor-db".to_owned(), user.display().to_string()];
            out.push((cursor_plan(&name, &user, scratch), global, scan));
        }
    }
    out
}

#[test]
fn every_replay_of_the_fixture_stores_equals_one_import() {
    let scratch = tempfile::tempdir().unwrap();
    let oc = scratch.path().join("oc");
    std::fs::create_dir_all(&oc).unwrap();
    drop(crate::sources::opencode::fixture::main_dir(&oc));
    let user = scratch.path().join("cursor/User");
    let global = user.join("globalStorage");
    std::fs::create_dir_all(&global).unwrap();
    let (db, conn) = crate::sources::cursor_fixture::create(&global, true);
    crate::sources::cursor_fixture::populate(&conn);
    drop(conn);
    // A 2024 workspace: legacy chat tabs and an inline composer in its `ItemTable`.
    let ws = user.join("workspaceStorage/ws-legacy");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("workspace.json"),
        r#"{"folder": "file:///work/legacy"}"#,
    )
    .unwrap();
    let (_, conn) = crate::sources::cursor_fixture::create(&ws, false);
    let put = crate::sources::cursor_fixture::put_item;
    put(
        &conn,
        "workbench.panel.aichat.view.aichat.chatdata",
        &crate::sources::cursor_fixture::legacy_tabs(true),
    );
    put(
        &conn,
        "composer.composerData",
        &json!({"allComposers": [{"composerId": "c-inline-2024", "name": "Docs",
            "createdAt": 1_767_225_620_000_i64, "lastUpdatedAt": 1_767_225_690_000_i64,
            "conversation": [
                {"bubbleId": "i1", "type": 1, "text": "Add a README"},
                {"bubbleId": "i2", "type": 2, "text": "Added README.md.",
                 "tokenCount": {"inputTokens": 0, "outputTokens": 0}},
                {"bubbleId": "i3", "type": 1, "text": "And a license"},
                {"bubbleId": "i4", "type": 2, "text": "Added LICENSE.",
                 "tokenCount": {"inputTokens": 900, "outputTokens": 30}}]}]}),
    );
    drop(conn);
    let plans = [
        (
            opencode_plan("opencode fixture", &oc, scratch.path()),
            oc.join("opencode.db"),
        ),
        (cursor_plan("cursor fixture", &user, scratch.path()), db),
    ];
    // Every kind of session is in the final database: the OpenCode parent and subagent, the
    // Cursor composer, legacy tab and inline composer.
    for (plan, wanted) in [
        (&plans[0].0, &["ses_a", "ses_c", "ses_j", "ses_k"][..]),
        (&plans[1].0, &["c-alpha", "tab-1", "c-inline-2024"][..]),
    ] {
        let tree = StoreTree::new(plan);
        tree.write(&plan.ops);
        let ledger = Ledger::new(tree.dir.path().join("ref.db"));
        tree.backfill(plan, &ledger, false, "whole");
        let dump = tree.dump(&ledger);
        for id in wanted {
            assert!(
                dump.contains(&format!("source_session_id=\"{id}\"")),
                "{}: no session {id}:\n{dump}",
                plan.name
            );
        }
    }
    // The comparison sees a commit the polls missed: a ledger that read everything but the
    // last write differs from one import of the final database.
    for (plan, _) in &plans {
        let mut ops = plan.ops.clone();
        ops.sort_by_key(|o| (o.file.is_none(), o.at, o.seq));
        let all = |n: usize| {
            [Batch {
                ops: 0..n,
                restart: true,
                notified: true,
            }]
        };
        let n = ops.len();
        let (short, _) = run_case(plan, &ops[..n - 1], &all(n - 1), "short", false);
        let (_, whole) = run_case(plan, &ops, &all(n), "whole", false);
        assert_ne!(
            short, whole,
            "{}: the last write changes the ledger",
            plan.name
        );
    }
    let mut failures = Vec::new();
    for (n, (plan, source)) in plans.iter().enumerate() {
        assert!(
            plan.ops.len() >= 10,
            "{}: {} writes",
            plan.name,
            plan.ops.len()
        );
        assert_replay_is_complete(plan, source);
        failures.extend(run_plan(plan, 0x570E + n as u64, 6, true));
    }
    report(failures);
}

/// Every real store: `NEX_REAL_SAMPLES_DIR`, and `NEX_CORPUS_DIR` with `NEX_CUTS_DEPTH=corpus`
/// (two replays each) or `full` (eight).
#[test]
fn every_replay_of_the_real_stores_equals_one_import() {
    let scratch = tempfile::tempdir().unwrap();
    let depth = std::env::var("NEX_CUTS_DEPTH").unwrap_or_default();
    let mut plans = real_plans("NEX_REAL_SAMPLES_DIR", scratch.path());
    if depth == "corpus" || depth == "full" {
        plans.extend(real_plans("NEX_CORPUS_DIR", scratch.path()));
    }
    let cases = if depth == "full" { 8 } else { 2 };
    let mut failures = Vec::new();
    for (n, (plan, source, scan)) in plans.iter().enumerate() {
        if source.is_file() {
            assert_replay_is_complete(plan, source);
        }
        assert_replay_holds_every_session(plan, scan);
        failures.extend(run_plan(plan, 0x005E_ED57 + n as u64, cases, false));
    }
    report(failures);
}
