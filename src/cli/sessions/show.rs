//! `nex sessions show`: one session's identity, counts, lineage and thread of turns.

use std::process::ExitCode;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{
    Failure, NO_SESSIONS_YET, SessionSummary, ShowArgs, THREAD, duration, is_first_run, open,
    summary_with_overview,
};
use crate::cli::control_ctx::{outln, print_json, table, when};
use crate::cli::fmt::{count, or_dash};
use crate::control::ControlError;
use crate::query::QueryError;
use crate::query::sessions::resolve_label;

/// `sessions show --json`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub summary: SessionSummary,
    pub thread_id: Option<String>,
    pub origin: Option<String>,
    pub routing_key: Option<String>,
    pub parent_turn_id: Option<String>,
    pub spawn_tool_call_id: Option<String>,
    pub source_session_fingerprint: Option<String>,
    pub imported_at: Option<i64>,
    pub last_run_id: Option<String>,
    pub messages: u64,
    pub tool_calls: u64,
    /// Labels of the sessions this one spawned.
    pub children: Vec<String>,
    /// The thread, root first.
    pub turn_list: Vec<TurnSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TurnSummary {
    pub id: String,
    pub parent_turn_id: Option<String>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub messages: u64,
    pub tool_calls: u64,
}

pub fn show(args: ShowArgs) -> ExitCode {
    match show_session(&args) {
        Ok(Shown::FirstRun) => {
            if args.json {
                print_json(&serde_json::Value::Null);
            } else {
                outln!("{NO_SESSIONS_YET}");
            }
            ExitCode::SUCCESS
        }
        Ok(Shown::Session(d)) => {
            if args.json {
                print_json(&d);
            } else {
                print_detail(&d);
            }
            ExitCode::SUCCESS
        }
        Err(e) => e.report(),
    }
}

/// What `sessions show` found.
enum Shown {
    Session(Box<SessionDetail>),
    /// The ledger holds no session yet.
    FirstRun,
}

fn show_session(args: &ShowArgs) -> Result<Shown, Failure> {
    let conn = open(&args.ledger)?;
    if is_first_run(conn.as_ref())? {
        return Ok(Shown::FirstRun);
    }
    let Some(conn) = conn else {
        return Ok(Shown::FirstRun);
    };
    let label = resolve_label(&conn, &args.label)?;
    match session_detail(&conn, &label)? {
        Some(d) => Ok(Shown::Session(Box::new(d))),
        // Deleted between resolution and reading.
        None => Err(QueryError::SessionNotFound(args.label.clone()).into()),
    }
}

fn session_detail(conn: &Connection, label: &str) -> Result<Option<SessionDetail>, Failure> {
    let Some(summary) = summary_with_overview(conn, label)? else {
        return Ok(None);
    };
    let err = || ControlError::store("sessions_show");
    type Extra = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let (thread_id, origin, routing_key, parent_turn_id, spawn_tool_call_id): Extra = conn
        .query_row(
            "SELECT thread_id, origin, routing_key, parent_turn_id, spawn_tool_call_id
             FROM sessions WHERE label = ?1",
            params![label],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .map_err(err())?;
    let mapping: Option<(String, i64, Option<String>)> = conn
        .query_row(
            "SELECT source_session_fingerprint, imported_at, last_run_id FROM session_imports
             WHERE session_label = ?1 LIMIT 1",
            params![label],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(err())?;
    let mut stmt = conn
        .prepare(&format!(
            "{THREAD} SELECT t.id, t.parent_turn_id, t.started_at, t.completed_at, t.model,
                t.provider, t.input_tokens, t.output_tokens,
                (SELECT COUNT(*) FROM messages m WHERE m.turn_id = t.id),
                (SELECT COUNT(*) FROM tool_calls c WHERE c.turn_id = t.id)
             FROM chain JOIN turns t ON t.id = chain.id ORDER BY chain.depth DESC"
        ))
        .map_err(err())?;
    let turn_list: Vec<TurnSummary> = stmt
        .query_map(params![label], |r| {
            Ok(TurnSummary {
                id: r.get(0)?,
                parent_turn_id: r.get(1)?,
                started_at: r.get(2)?,
                completed_at: r.get(3)?,
                model: r.get(4)?,
                provider: r.get(5)?,
                input_tokens: r.get(6)?,
                output_tokens: r.get(7)?,
                messages: r.get::<_, i64>(8)? as u64,
                tool_calls: r.get::<_, i64>(9)? as u64,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(err())?;
    let mut stmt = conn
        .prepare("SELECT label FROM sessions WHERE parent_session_label = ?1 ORDER BY label")
        .map_err(err())?;
    let children: Vec<String> = stmt
        .query_map(params![label], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(err())?;
    let (fingerprint, imported_at, last_run_id) = match mapping {
        Some((f, i, r)) => (Some(f), Some(i), r),
        None => (None, None, None),
    };
    Ok(Some(SessionDetail {
        messages: turn_list.iter().map(|t| t.messages).sum(),
        tool_calls: turn_list.iter().map(|t| t.tool_calls).sum(),
        summary,
        thread_id,
        origin,
        routing_key,
        parent_turn_id,
        spawn_tool_call_id,
        source_session_fingerprint: fingerprint,
        imported_at,
        last_run_id,
        children,
        turn_list,
    }))
}

fn print_detail(d: &SessionDetail) {
    let s = &d.summary;
    outln!("session {}", s.label);
    let o = &s.overview;
    if let Some(title) = &o.title {
        outln!("  title {title}");
    }
    outln!(
        "  project {}, model {}, {} tokens, {}",
        o.project.as_deref().unwrap_or("-"),
        o.model.as_deref().unwrap_or("-"),
        if o.tokens_known {
            o.total_tokens.to_string()
        } else {
            "-".to_owned()
        },
        match o.duration_ms {
            Some(0) => "duration unknown".to_owned(),
            Some(_) => format!("lasted {}", duration(o.duration_ms)),
            None => "no turns".to_owned(),
        }
    );
    outln!(
        "  provider {} / {}",
        s.provider.as_deref().unwrap_or("-"),
        s.source_session_id.as_deref().unwrap_or("-")
    );
    outln!("  persona {}, status {}", s.persona_id, s.status);
    outln!(
        "  created {}, updated {}, imported {}",
        when(Some(s.created_at)),
        when(Some(s.updated_at)),
        when(d.imported_at)
    );
    outln!(
        "  {}, {}, {}",
        count(s.turns, "turn", "turns"),
        count(d.messages, "message", "messages"),
        count(d.tool_calls, "tool call", "tool calls")
    );
    if let Some(parent) = &s.parent_session_label
        && s.kind == "fork"
    {
        outln!("  forked from {parent}");
    } else if let Some(parent) = &s.parent_session_label {
        outln!(
            "  spawned by {} (turn {}, tool call {})",
            parent,
            d.parent_turn_id.as_deref().unwrap_or("-"),
            d.spawn_tool_call_id.as_deref().unwrap_or("-")
        );
    }
    for child in &d.children {
        outln!("  spawned {child}");
    }
    if !d.turn_list.is_empty() {
        let rows: Vec<Vec<String>> = d
            .turn_list
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    when(Some(t.started_at)),
                    or_dash(t.model.as_deref()),
                    t.messages.to_string(),
                    t.tool_calls.to_string(),
                    // Unknown tokens (Cursor) are `-`, never `0/0`.
                    match (t.input_tokens, t.output_tokens) {
                        (None, None) => "-".to_owned(),
                        (i, o) => format!("{}/{}", or_dash(i), or_dash(o)),
                    },
                ]
            })
            .collect();
        outln!(
            "{}",
            table(
                &["TURN", "STARTED", "MODEL", "MSGS", "TOOLS", "TOKENS IN/OUT"],
                &rows
            )
        );
    }
}
