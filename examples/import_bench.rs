//! Measures the import service against a raw prepared-insert loop writing the same rows.
//!
//! `cargo run --release --example import_bench -- [SESSIONS] [TURNS]` (defaults 400 x 20).
//! Both runs write a fresh temp-file ledger opened by `ledger::open_agents` (same pragmas) in
//! ONE transaction with one savepoint per session; the raw loop inserts the same
//! sessions/turns/threads/messages/tool_calls rows with precomputed values, the service path
//! does everything (request hash, idempotency, deterministic ids, upserts, mapping, history).
//! `BENCH_REIMPORT=1` also times re-importing everything under new fingerprints (the upsert
//! path). Prints the median of 3 runs of each (wall and CPU time) and the ratios.

use std::time::{Duration, Instant};

use nex::import::{self, ImportOptions};
use nex::ledger;
use nex::protocol::{ImportRequest, ImportSessionItem};
use rusqlite::params;
use serde_json::json;

thread_local! {
    /// CPU time of each timed run, in run order (raw, service, raw, service, ...).
    static CPU: std::cell::RefCell<Vec<Duration>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn items(sessions: usize, turns: usize) -> Vec<ImportSessionItem> {
    let body = "lorem ipsum dolor sit amet ".repeat(40);
    (0..sessions)
        .map(|s| {
            let mut t = Vec::new();
            let mut m = Vec::new();
            let mut c = Vec::new();
            for k in 0..turns {
                let start = 1_700_000_000_000i64 + (k as i64) * 1000;
                t.push(json!({"sourceTurnId": format!("t{k}"), "startedAtMs": start, "completedAtMs": start + 500,
                    "totalTokens": 100, "queryMessageSourceIds": [format!("u{k}")],
                    "responseMessageSourceId": format!("a{k}")}));
                m.push(json!({"sourceMessageId": format!("u{k}"), "sourceTurnId": format!("t{k}"), "role": "user",
                    "content": body, "sequence": 2 * k, "createdAtMs": start}));
                m.push(json!({"sourceMessageId": format!("a{k}"), "sourceTurnId": format!("t{k}"), "role": "assistant",
                    "content": body, "sequence": 2 * k + 1, "createdAtMs": start + 400}));
                c.push(json!({"sourceToolCallId": format!("c{k}"), "sourceTurnId": format!("t{k}"),
                    "sourceMessageId": format!("a{k}"), "toolName": "Read", "paramsJson": {"path": "/x"},
                    "resultJson": body, "startedAtMs": start + 100, "completedAtMs": start + 200, "sequence": k}));
            }
            serde_json::from_value(json!({"sourceProvider": "claude-code", "sourceSessionId": format!("s{s}"),
                "sourceSessionFingerprint": "fp", "session": {"createdAtMs": 1_700_000_000_000i64},
                "turns": t, "messages": m, "toolCalls": c}))
            .unwrap()
        })
        .collect()
}

fn service(items: &[ImportSessionItem]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = ledger::open_agents(&dir.path().join("agents.db")).unwrap();
    if let Ok(store) = std::env::var("BENCH_TEMP_STORE") {
        conn.pragma_update(None, "temp_store", store).unwrap();
    }
    if let Ok(size) = std::env::var("BENCH_CACHE_SIZE") {
        conn.pragma_update(None, "cache_size", size.parse::<i64>().unwrap())
            .unwrap();
    }
    let opts = ImportOptions::default();
    // The requests exist before the clock starts, as they do when decoded from frames.
    let requests: Vec<ImportRequest> = items
        .chunks(64)
        .enumerate()
        .map(|(n, batch)| ImportRequest {
            source: "aix".into(),
            mode: "backfill".into(),
            idempotency_key: format!("bench-{n}"),
            items: batch.to_vec(),
            ..ImportRequest::default()
        })
        .collect();
    let start = Instant::now();
    let cpu = cpu_time();
    let tx = conn.transaction().unwrap();
    for req in &requests {
        let resp = import::import(&tx, req, &opts).unwrap();
        assert_eq!(resp.failed, 0);
    }
    tx.commit().unwrap();
    let wall = start.elapsed();
    CPU.with(|c| c.borrow_mut().push(cpu_time() - cpu));
    if std::env::var("BENCH_REIMPORT").is_ok() {
        // Every session again under a new fingerprint, content unchanged: the upsert path,
        // where rule 12 skips every row write.
        let again: Vec<ImportRequest> = requests
            .iter()
            .map(|req| {
                let mut req = req.clone();
                req.idempotency_key.push_str("-again");
                for item in &mut req.items {
                    item.source_session_fingerprint.push_str("-v2");
                }
                req
            })
            .collect();
        let start = Instant::now();
        let tx = conn.transaction().unwrap();
        for req in &again {
            let resp = import::import(&tx, req, &opts).unwrap();
            assert_eq!(resp.upserted as usize, req.items.len());
        }
        tx.commit().unwrap();
        println!(
            "re-import with unchanged rows: {:?} (first import {wall:?})",
            start.elapsed()
        );
    }
    wall
}

/// The rows the service writes, with their final values computed up front (ids are the same
/// deterministic ids, so both runs insert into the B-trees in the same key order).
struct RawSession {
    label: String,
    head: String,
    turns: Vec<TurnRow>,
    messages: Vec<MessageRow>,
    tools: Vec<ToolRow>,
}

type TurnRow = (
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    String,
    String,
);
type MessageRow = (String, String, String, Option<String>, i64, i64, String);
type ToolRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    i64,
);

fn raw_rows(items: &[ImportSessionItem]) -> Vec<RawSession> {
    use nex::import::{IdKind, scoped_id, session_label};
    items
        .iter()
        .map(|item| {
            let sid = item.source_session_id.as_str();
            let id = |kind, e: &str| scoped_id(kind, "aix", "claude-code", sid, e);
            let turns: Vec<_> = item
                .turns
                .iter()
                .map(|t| {
                    let q = serde_json::to_string(&[id(IdKind::Message, &t.query_message_source_ids[0])]).unwrap();
                    let r = id(IdKind::Message, t.response_message_source_id.as_deref().unwrap());
                    (id(IdKind::Turn, &t.source_turn_id), t.started_at_ms, t.completed_at_ms, t.total_tokens, q, r,
                     t.source_turn_id.clone())
                })
                .collect();
            let messages = item
                .messages
                .iter()
                .map(|m| {
                    (id(IdKind::Message, &m.source_message_id), id(IdKind::Turn, m.source_turn_id.as_deref().unwrap()),
                     m.role.clone(), m.content.clone(), m.sequence, m.created_at_ms,
                     json!({"import_source": "aix", "import_provider": "claude-code", "import_session_id": sid,
                            "source_message_id": m.source_message_id}).to_string())
                })
                .collect();
            let tools = item
                .tool_calls
                .iter()
                .map(|c| {
                    (id(IdKind::Tool, &c.source_tool_call_id), id(IdKind::Turn, c.source_turn_id.as_deref().unwrap()),
                     id(IdKind::Message, c.source_message_id.as_deref().unwrap()), c.tool_name.clone(),
                     c.params_json.as_ref().unwrap().to_string(), c.result_json.as_ref().map(|v| v.to_string()),
                     c.started_at_ms, c.completed_at_ms, c.sequence)
                })
                .collect();
            RawSession {
                label: session_label("aix", "claude-code", sid),
                head: turns.last().map(|t: &TurnRow| t.0.clone()).unwrap(),
                turns,
                messages,
                tools,
            }
        })
        .collect()
}

fn raw(rows: &[RawSession]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = ledger::open_agents(&dir.path().join("agents.db")).unwrap();
    if let Ok(store) = std::env::var("BENCH_TEMP_STORE") {
        conn.pragma_update(None, "temp_store", store).unwrap();
    }
    if let Ok(size) = std::env::var("BENCH_CACHE_SIZE") {
        conn.pragma_update(None, "cache_size", size.parse::<i64>().unwrap())
            .unwrap();
    }
    let start = Instant::now();
    let cpu = cpu_time();
    let tx = conn.transaction().unwrap();
    for s in rows {
        tx.execute_batch("SAVEPOINT s").unwrap();
        let mut turn = tx.prepare_cached("INSERT INTO turns (id, status, started_at, completed_at, total_tokens, query_message_ids, response_message_id, source_event_id) VALUES (?1, 'completed', ?2, ?3, ?4, ?5, ?6, ?7)").unwrap();
        let mut thread = tx.prepare_cached("INSERT INTO threads (turn_id, total_tokens, persona_id, thread_key) VALUES (?1, ?2, 'main', ?1)").unwrap();
        let mut msg = tx.prepare_cached("INSERT INTO messages (id, turn_id, role, content, source, sequence, created_at, metadata_json) VALUES (?1, ?2, ?3, ?4, 'aix:claude-code', ?5, ?6, ?7)").unwrap();
        let mut tool = tx.prepare_cached("INSERT INTO tool_calls (id, turn_id, message_id, tool_name, params_json, result_json, status, started_at, completed_at, sequence) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'completed', ?7, ?8, ?9)").unwrap();
        for t in &s.turns {
            turn.execute(params![t.0, t.1, t.2, t.3, t.4, t.5, t.6])
                .unwrap();
            thread.execute(params![t.0, t.3]).unwrap();
        }
        for m in &s.messages {
            msg.execute(params![m.0, m.1, m.2, m.3, m.4, m.5, m.6])
                .unwrap();
        }
        for c in &s.tools {
            tool.execute(params![c.0, c.1, c.2, c.3, c.4, c.5, c.6, c.7, c.8])
                .unwrap();
        }
        tx.execute("INSERT INTO sessions (label, thread_id, persona_id, created_at, updated_at) VALUES (?1, ?2, 'main', 1, 1)",
            params![s.label, s.head]).unwrap();
        tx.execute_batch("RELEASE s").unwrap();
    }
    tx.commit().unwrap();
    let wall = start.elapsed();
    CPU.with(|c| c.borrow_mut().push(cpu_time() - cpu));
    wall
}

/// User + system CPU time of this process so far (stable on a loaded machine, unlike wall
/// time).
fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return Duration::ZERO;
    };
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) as u32) * 1000)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

fn median(mut runs: Vec<Duration>) -> (Duration, Duration, Duration) {
    runs.sort();
    (runs[runs.len() / 2], runs[0], runs[runs.len() - 1])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions = args.next().and_then(|a| a.parse().ok()).unwrap_or(400);
    let turns = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let items = items(sessions, turns);
    let rows = raw_rows(&items);
    let mut raw_runs = Vec::new();
    let mut service_runs = Vec::new();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only == "hash" {
        let start = Instant::now();
        for batch in items.chunks(64) {
            std::hint::black_box(import::hash_parts("aix", "backfill", None, batch));
        }
        println!("hash: {:?}", start.elapsed());
        return;
    }
    for _ in 0..3 {
        if only != "service" {
            raw_runs.push(raw(&rows));
        }
        if only != "raw" {
            service_runs.push(service(&items));
        }
    }
    if only == "service" || only == "raw" {
        let runs = if only == "raw" {
            raw_runs
        } else {
            service_runs
        };
        println!("{only}: {:?}", median(runs));
        return;
    }
    let (raw_med, raw_min, raw_max) = median(raw_runs);
    let (svc_med, svc_min, svc_max) = median(service_runs);
    println!(
        "sessions={sessions} turns/session={turns} rows/session={}",
        turns * 5 + 1
    );
    println!("raw prepared inserts: median {raw_med:?} (min {raw_min:?}, max {raw_max:?})");
    println!("import service:       median {svc_med:?} (min {svc_min:?}, max {svc_max:?})");
    println!(
        "ratio service/raw (wall): {:.2}",
        svc_med.as_secs_f64() / raw_med.as_secs_f64()
    );
    let cpu = CPU.with(|c| c.borrow().clone());
    let raw_cpu = median(cpu.iter().step_by(2).copied().collect()).0;
    let svc_cpu = median(cpu.iter().skip(1).step_by(2).copied().collect()).0;
    println!(
        "cpu: raw {raw_cpu:?}, service {svc_cpu:?}, ratio {:.2}",
        svc_cpu.as_secs_f64() / raw_cpu.as_secs_f64()
    );
}
