//! One session as a document (`nex sessions export`, MCP `get_session`): its turns in order,
//! each with its messages and tool calls (parameters and results, long ones cut with a
//! marker), and every subagent inline under the tool call that spawned it, recursively.
//! Subagents whose spawning call is not among the session's rows are listed after the turns,
//! so nothing the ledger holds is left out.
//!
//! Rendered as JSON ([`ExportSession`] serialised) or Markdown ([`to_markdown`]). With a
//! [`Redactor`], every text field (content, thinking, parameters, results, errors, titles,
//! paths) is masked before it is cut.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::redact::Redactor;
use super::sessions::{cut_title, raw_session_title};
use super::{NOT_ROOT_TURN, QueryError, SessionFacts, session_fact};

/// Default cut of a tool call's parameters, result or error, in characters.
pub const DEFAULT_MAX_TOOL_CHARS: usize = 4_000;

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Parameters, results and errors longer than this many characters are cut, with a
    /// marker saying how much was left out.
    pub max_tool_chars: usize,
    pub redactor: Option<Redactor>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            max_tool_chars: DEFAULT_MAX_TOOL_CHARS,
            redactor: None,
        }
    }
}

/// An exported session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSession {
    pub label: String,
    pub provider: Option<String>,
    pub source_session_id: Option<String>,
    pub project: Option<String>,
    pub title: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub parent_session_label: Option<String>,
    pub spawn_tool_call_id: Option<String>,
    pub turns: Vec<ExportTurn>,
    /// Subagents whose spawning tool call is not among this session's rows.
    pub other_subagents: Vec<ExportSession>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportTurn {
    pub id: String,
    pub parent_turn_id: Option<String>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub messages: Vec<ExportMessage>,
    pub tool_calls: Vec<ExportToolCall>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportMessage {
    pub id: String,
    pub role: String,
    pub created_at: i64,
    pub content: Option<String>,
    pub thinking: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportToolCall {
    pub id: String,
    pub tool_name: String,
    pub status: String,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    /// The parameters' JSON text, cut.
    pub params: String,
    /// The result's text, cut.
    pub result: Option<String>,
    pub error: Option<String>,
    /// Sessions this call spawned, exported whole.
    pub subagents: Vec<ExportSession>,
}

/// `label` (a resolved label) as a document; `None` when the ledger has no such session.
///
/// Errors: `ledger_read_failed`, `ledger_busy`.
pub fn export_session(
    conn: &Connection,
    label: &str,
    options: &ExportOptions,
) -> Result<Option<ExportSession>, QueryError> {
    let mut visited = HashSet::new();
    export_one(conn, label, options, &mut visited)
}

fn export_one(
    conn: &Connection,
    label: &str,
    options: &ExportOptions,
    visited: &mut HashSet<String>,
) -> Result<Option<ExportSession>, QueryError> {
    let Some(facts) = session_fact(conn, label)? else {
        return Ok(None);
    };
    visited.insert(label.to_owned());
    let text = |s: Option<String>| s.map(|s| redact(options, &s));
    let mut turns = turns_of(conn, label)?;
    let mut messages = messages_of(conn, label)?;
    let mut calls = tool_calls_of(conn, label, options)?;
    for t in &mut turns {
        for mut m in messages.remove(&t.id).unwrap_or_default() {
            m.content = text(m.content);
            m.thinking = text(m.thinking);
            t.messages.push(m);
        }
        t.tool_calls = calls.remove(&t.id).unwrap_or_default();
    }
    // Subagents: under their spawning call when it is here, else after the turns.
    let mut by_call: HashMap<String, (usize, usize)> = HashMap::new();
    for (ti, t) in turns.iter().enumerate() {
        for (ci, c) in t.tool_calls.iter().enumerate() {
            by_call.insert(c.id.clone(), (ti, ci));
        }
    }
    let mut other_subagents = Vec::new();
    for (child, spawn) in super::sessions::spawned_sessions(conn, label)? {
        if visited.contains(&child) {
            continue;
        }
        let Some(doc) = export_one(conn, &child, options, visited)? else {
            continue;
        };
        match spawn.as_deref().and_then(|id| by_call.get(id)) {
            Some(&(ti, ci)) => turns[ti].tool_calls[ci].subagents.push(doc),
            None => other_subagents.push(doc),
        }
    }
    let SessionFacts {
        label,
        provider,
        project,
        parent_session_label,
        spawn_tool_call_id,
        source_session_id,
        created_at,
        updated_at,
    } = facts;
    Ok(Some(ExportSession {
        title: text(raw_session_title(conn, &label)?).map(|t| cut_title(&t)),
        project: text(project),
        label,
        provider,
        source_session_id,
        created_at,
        updated_at,
        parent_session_label,
        spawn_tool_call_id,
        turns,
        other_subagents,
    }))
}

fn redact(options: &ExportOptions, s: &str) -> String {
    match &options.redactor {
        Some(r) => r.redact(s),
        None => s.to_owned(),
    }
}

/// `text` cut to `max` characters with a marker naming how many were left out.
pub fn cut(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    let _ = write!(out, " […cut: {} more characters]", n - max);
    out
}

fn turns_of(conn: &Connection, label: &str) -> Result<Vec<ExportTurn>, QueryError> {
    let err = QueryError::ledger;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT t.id, t.parent_turn_id, t.started_at, t.completed_at, t.model,
                t.input_tokens, t.output_tokens, t.cached_input_tokens, t.cache_write_tokens,
                t.reasoning_tokens, t.total_tokens
             FROM turns t WHERE t.session_label = ?1 AND {NOT_ROOT_TURN}
             ORDER BY t.started_at, t.id"
        ))
        .map_err(err("export_turns"))?;
    stmt.query_map(params![label], |r| {
        Ok(ExportTurn {
            id: r.get(0)?,
            parent_turn_id: r.get(1)?,
            started_at: r.get(2)?,
            completed_at: r.get(3)?,
            model: r.get(4)?,
            input_tokens: r.get(5)?,
            output_tokens: r.get(6)?,
            cache_read_tokens: r.get(7)?,
            cache_write_tokens: r.get(8)?,
            reasoning_tokens: r.get(9)?,
            total_tokens: r.get(10)?,
            messages: Vec::new(),
            tool_calls: Vec::new(),
        })
    })
    .and_then(|rows| rows.collect())
    .map_err(err("export_turns"))
}

/// Messages the session's item wrote (the synthetic root's too: a session without turns
/// keeps its messages there), by turn, in sequence.
fn messages_of(
    conn: &Connection,
    label: &str,
) -> Result<HashMap<String, Vec<ExportMessage>>, QueryError> {
    let err = QueryError::ledger;
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.turn_id, m.id, m.role, m.created_at, m.content, m.thinking
             FROM messages m
             WHERE m.session_label = ?1 ORDER BY m.turn_id, m.sequence, m.created_at, m.id",
        )
        .map_err(err("export_messages"))?;
    let rows = stmt
        .query_map(params![label], |r| {
            Ok((
                r.get::<_, String>(0)?,
                ExportMessage {
                    id: r.get(1)?,
                    role: r.get(2)?,
                    created_at: r.get(3)?,
                    content: r.get(4)?,
                    thinking: r.get(5)?,
                },
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(err("export_messages"))?;
    let mut out: HashMap<String, Vec<ExportMessage>> = HashMap::new();
    for (turn, m) in rows {
        out.entry(turn).or_default().push(m);
    }
    Ok(out)
}

fn tool_calls_of(
    conn: &Connection,
    label: &str,
    options: &ExportOptions,
) -> Result<HashMap<String, Vec<ExportToolCall>>, QueryError> {
    let err = QueryError::ledger;
    let mut stmt = conn
        .prepare_cached(
            "SELECT c.turn_id, c.id, c.tool_name, c.status, c.started_at, c.completed_at,
                nex_text(c.params_json), nex_text(c.result_json), c.error
             FROM tool_calls c
             WHERE c.session_label = ?1 ORDER BY c.turn_id, c.sequence, c.started_at, c.id",
        )
        .map_err(err("export_tool_calls"))?;
    let max = options.max_tool_chars;
    // Redacted whole, then cut: a secret straddling the cut is still seen whole.
    let text = |s: &str| cut(&redact(options, s), max);
    let rows = stmt
        .query_map(params![label], |r| {
            let params: String = r.get(6)?;
            let result: Option<String> = r.get(7)?;
            let error: Option<String> = r.get(8)?;
            Ok((
                r.get::<_, String>(0)?,
                ExportToolCall {
                    id: r.get(1)?,
                    tool_name: r.get(2)?,
                    status: r.get(3)?,
                    started_at: r.get(4)?,
                    completed_at: r.get(5)?,
                    params: text(&params),
                    result: result.as_deref().map(text),
                    error: error.as_deref().map(text),
                    subagents: Vec::new(),
                },
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(err("export_tool_calls"))?;
    let mut out: HashMap<String, Vec<ExportToolCall>> = HashMap::new();
    for (turn, c) in rows {
        out.entry(turn).or_default().push(c);
    }
    Ok(out)
}

/// The session as Markdown: a header, then each turn with its messages and tool calls; a
/// subagent is rendered in full as a quote (`> `) under the call that spawned it, so nesting
/// shows as quote depth.
pub fn to_markdown(s: &ExportSession) -> String {
    let mut out = String::new();
    session_markdown(&mut out, s);
    out
}

fn session_markdown(out: &mut String, s: &ExportSession) {
    let title = s.title.as_deref().unwrap_or("(untitled)");
    let _ = writeln!(out, "# {}\n", one_line(title));
    let _ = writeln!(out, "- label: `{}`", s.label);
    let field = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let _ = writeln!(out, "- provider: {}", field(&s.provider));
    let _ = writeln!(out, "- session id: {}", field(&s.source_session_id));
    let _ = writeln!(out, "- project: {}", field(&s.project));
    let _ = writeln!(
        out,
        "- created: {}, updated: {}",
        at(s.created_at),
        at(s.updated_at)
    );
    if let Some(parent) = &s.parent_session_label {
        let _ = writeln!(
            out,
            "- spawned by: `{}` (tool call `{}`)",
            parent,
            field(&s.spawn_tool_call_id)
        );
    }
    out.push('\n');
    for (i, t) in s.turns.iter().enumerate() {
        let _ = write!(out, "## Turn {} · {}", i + 1, at(t.started_at));
        if let Some(m) = &t.model {
            let _ = write!(out, " · {m}");
        }
        let _ = writeln!(
            out,
            " · tokens in {} / out {} / cache read {} / cache write {}\n",
            t.input_tokens.unwrap_or(0),
            t.output_tokens.unwrap_or(0),
            t.cache_read_tokens.unwrap_or(0),
            t.cache_write_tokens.unwrap_or(0)
        );
        for m in &t.messages {
            let _ = writeln!(out, "### {} · {}\n", m.role, at(m.created_at));
            if let Some(th) = &m.thinking {
                let _ = writeln!(out, "*thinking:*\n\n{}\n", fenced(th, "text"));
            }
            if let Some(c) = &m.content {
                let _ = writeln!(out, "{}\n", c.trim_end());
            }
        }
        for c in &t.tool_calls {
            tool_call_markdown(out, c);
        }
    }
    if !s.other_subagents.is_empty() {
        let _ = writeln!(out, "## Other subagents\n");
        for sub in &s.other_subagents {
            quoted(out, sub);
        }
    }
}

fn tool_call_markdown(out: &mut String, c: &ExportToolCall) {
    let _ = writeln!(
        out,
        "#### Tool call `{}` · {} · `{}`\n",
        c.tool_name, c.status, c.id
    );
    let _ = writeln!(out, "{}\n", fenced(&c.params, "json"));
    if let Some(r) = &c.result {
        let _ = writeln!(out, "Result:\n\n{}\n", fenced(r, "text"));
    }
    if let Some(e) = &c.error {
        let _ = writeln!(out, "Error:\n\n{}\n", fenced(e, "text"));
    }
    for sub in &c.subagents {
        quoted(out, sub);
    }
}

/// `sub` rendered whole, every line quoted once more.
fn quoted(out: &mut String, sub: &ExportSession) {
    let mut inner = String::new();
    session_markdown(&mut inner, sub);
    for line in inner.trim_end().lines() {
        if line.is_empty() {
            out.push_str(">\n");
        } else {
            let _ = writeln!(out, "> {line}");
        }
    }
    out.push('\n');
}

/// `text` in a code fence longer than any run of backticks inside it.
fn fenced(text: &str, lang: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for ch in text.chars() {
        run = if ch == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}{lang}\n{}\n{fence}", text.trim_end_matches('\n'))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn at(ms: i64) -> String {
    crate::cli::control_ctx::when(Some(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_with_a_marker_naming_what_was_left_out() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcdef", 3), "abc […cut: 3 more characters]");
        assert_eq!(cut("ééééé", 2), "éé […cut: 3 more characters]");
    }

    #[test]
    fn fences_outgrow_backticks_inside() {
        assert_eq!(fenced("a", "json"), "```json\na\n```");
        assert_eq!(fenced("x ```` y", ""), "`````\nx ```` y\n`````");
    }
}
