//! `nex mcp`: a Model Context Protocol server over stdio (the official SDK, `rmcp`) that lets an
//! agent look up the ledger: four read-only tools, each one call of a [`crate::query`] function,
//! so they answer what the CLI prints.
//!
//! - `search_sessions`: [`query::search::search`] (`nex search`).
//! - `list_sessions`: [`query::sessions::list_labels`] then [`query::sessions::session_state`]
//!   and [`query::sessions::session_overview`] of each (`nex sessions list`'s fields).
//! - `get_session`: [`query::sessions::resolve_label`] then [`query::export::export_session`]
//!   (`nex sessions export --format json`), turns paged, the header bounded
//!   ([`bound_header`]).
//! - `get_usage`: [`query::usage::usage_report`] (`nex usage`), priced with the price table
//!   and the `[prices]` of `config.toml`, as `nex usage` prices it; with `replica`,
//!   [`crate::replica::reports::usage`] (`nex usage --replica`): every machine's turns in the
//!   shared PostgreSQL of `[replica]`, and the grouping `by: "machine"`.
//!
//! # Bounds
//!
//! A result holds at most `limit` items and about [`MAX_RESULT_BYTES`] of JSON (always at
//! least one item); when more are left it carries `next_cursor`, which the next call passes as
//! `cursor` (an opaque string). A cursor is a position in the same ordering: rows committed
//! between two calls may shift a page.
//!
//! # The ledger
//!
//! Each call opens the ledger read-only on a blocking thread and closes it after: a WAL reader,
//! which never blocks the importer and never holds a snapshot between calls. The server starts
//! without a ledger (a tool then answers `ledger_not_found`).
//!
//! # Errors
//!
//! A bad argument (an FTS5 query that does not parse, an unknown role, a date, a cursor) is a
//! JSON-RPC `invalid_params` error; a ledger that cannot be read is `internal_error`. Both
//! carry `{"code": <nex error code>}` in `data`. The server never exits on a call's error.

use std::collections::HashMap;
use std::path::PathBuf;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{
    ErrorData as McpError, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::query::export::{ExportOptions, cut, export_session};
use crate::query::prices::PriceTable;
use crate::query::search::{RoleFilter, SearchFilter};
use crate::query::sessions::{
    ListFilter, list_labels, resolve_label, session_kind, session_overview, session_state,
};
use crate::query::usage::{GroupBy, UsageReport, usage_report};
use crate::query::{self, Filters, QueryError, SessionFacts, time};
use crate::replica::{ReplicaError, ReplicaSettings};

/// About how much JSON one tool result may hold.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;
/// The share of a result `get_session`'s header (the session without its turns) may take:
/// [`bound_header`] cuts it to `max_bytes / HEADER_SHARE`.
const HEADER_SHARE: usize = 2;
/// Characters a string of a cut header keeps (export's marker says how many were left out).
const HEADER_FIELD_CHARS: usize = 200;
/// `limit` when the caller gives none, and the most it may ask.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 200;

/// `search_sessions` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// FTS5 query: words (all must match), "a phrase", prefix*, AND / OR / NOT, and column
    /// filters content: thinking: tool_name: params_json: result_json: error:.
    pub query: String,
    /// Only sessions of this provider: claude-code, codex, cursor, opencode, gemini-cli.
    pub provider: Option<String>,
    /// Only sessions whose project (workspace) is this absolute directory or under it.
    pub project: Option<String>,
    /// Hits at or after: YYYY-MM-DD (from its midnight in the server's local time zone), an
    /// RFC 3339 time, or 12h / 7d / 2w ago.
    pub since: Option<String>,
    /// Hits before (a date: up to the end of that day).
    pub until: Option<String>,
    /// user, assistant, or tool (tool calls and tool messages).
    pub role: Option<String>,
    /// Most hits to return (default 20, at most 200).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `list_sessions` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListArgs {
    /// Only sessions of this provider.
    pub provider: Option<String>,
    /// Only sessions in this directory or under it.
    pub project: Option<String>,
    /// Sessions updated at or after: YYYY-MM-DD (from its midnight in the server's local time
    /// zone), an RFC 3339 time, or 12h / 7d / 2w ago.
    pub since: Option<String>,
    /// Most sessions to return (default 20, at most 200).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `get_session` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GetArgs {
    /// The session's label (`import:<provider>:<session>:<hash>`), as search and list give it,
    /// a unique prefix of it, or the tool's own session id.
    pub label: String,
    /// Most turns to return (default 20, at most 200).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page of turns.
    pub cursor: Option<String>,
}

/// `get_usage` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct UsageArgs {
    /// Group by day (default), week, month, project, model, provider or session (subagents
    /// counted in the session that spawned them).
    pub by: Option<String>,
    /// Turns started at or after: YYYY-MM-DD (from its midnight in the server's local time
    /// zone), an RFC 3339 time, or 12h / 7d / 2w ago.
    pub since: Option<String>,
    /// Turns started before this date (a date: up to the end of that day).
    pub until: Option<String>,
    /// Only sessions of this provider.
    pub provider: Option<String>,
    /// Only sessions in this directory or under it.
    pub project: Option<String>,
    /// The usage of every machine in the shared replica (`[replica]` in config.toml), as `nex
    /// usage --replica`: sessions keyed `machine/label`, and `by` may be `machine` (one row
    /// per machine). Default false: this machine's ledger.
    pub replica: Option<bool>,
    /// Most rows to return (default 20, at most 200).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One row of `list_sessions`: a `nex sessions list --json` row.
pub use crate::query::sessions::SessionSummary as SessionListRow;

/// The rows of `list_sessions`: the labels [`list_labels`] gives under `filter`, each with its
/// [`session_overview`]. The MCP tool's answer, here so that a test can compute it too.
///
/// Errors: `date_invalid`; `ledger_read_failed`, `ledger_busy`.
pub fn session_list(
    conn: &rusqlite::Connection,
    facts: &HashMap<String, SessionFacts>,
    filter: &ListFilter,
) -> Result<Vec<SessionListRow>, QueryError> {
    let mut rows = Vec::new();
    for label in list_labels(facts, filter) {
        let Some(f) = facts.get(&label) else {
            continue;
        };
        // Gone between the two reads (a concurrent replacement): not listed.
        let Some(state) = session_state(conn, &label)? else {
            continue;
        };
        rows.push(SessionListRow {
            overview: session_overview(conn, &label, f.project.clone())?,
            label,
            provider: f.provider.clone(),
            source_session_id: f.source_session_id.clone(),
            persona_id: state.persona_id,
            is_subagent: state.is_subagent,
            kind: session_kind(state.is_subagent, f.parent_session_label.is_some()),
            parent_session_label: f.parent_session_label.clone(),
            created_at: f.created_at,
            updated_at: f.updated_at,
            status: state.status,
            turns: state.turns,
        });
    }
    Ok(rows)
}

/// The server: where the ledger is, the prices, and the tools.
#[derive(Debug, Clone)]
pub struct NexMcp {
    ledger: PathBuf,
    /// About how much JSON one result may hold ([`MAX_RESULT_BYTES`] unless told).
    max_bytes: usize,
    /// The price table with the user's `config.toml` overrides, as `nex usage` uses it.
    prices: PriceTable,
    /// `search_sessions`' [`SearchFilter::rank_cap`], as `nex search` takes it.
    rank_cap: Option<u32>,
    /// `[replica]` of `config.toml`, for `get_usage` with `replica` (`None`: not configured,
    /// such a call answers `replica_not_configured`).
    replica: Option<ReplicaSettings>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl NexMcp {
    pub fn new(ledger: PathBuf, max_bytes: usize, prices: PriceTable) -> Self {
        Self {
            ledger,
            max_bytes,
            prices,
            rank_cap: Some(query::search::DEFAULT_RANK_CAP),
            replica: None,
            tool_router: Self::tool_router(),
        }
    }

    /// The server with the replica `get_usage` reads under `replica`.
    pub fn with_replica(mut self, replica: Option<ReplicaSettings>) -> Self {
        self.replica = replica;
        self
    }

    /// The server with `search_sessions` ranking at most `cap` matches of an index (`None`:
    /// all).
    pub fn with_rank_cap(mut self, cap: Option<u32>) -> Self {
        self.rank_cap = cap;
        self
    }

    #[tool(
        description = "Full-text search over every imported AI coding session (Claude Code, Codex, Cursor, OpenCode, Gemini CLI): message text, thinking, tool names, parameters and results. Ranked by relevance (bm25), newest first on ties; a query with very many matches ranks the most recently imported ones only, and then `capped` is {ranked, matches} (else null): narrow it with since/until/project/provider. Each hit: label, session_id, provider, project, turn_id, message_id, role, at (RFC 3339), snippet (matches in **bold**), score.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_sessions(
        &self,
        Parameters(args): Parameters<SearchArgs>,
    ) -> Result<CallToolResult, McpError> {
        let (offset, limit) = (cursor_offset(args.cursor.as_deref())?, limit_of(args.limit));
        let (since_ms, until_ms) = window(args.since.as_deref(), args.until.as_deref())?;
        let filter = SearchFilter {
            role: args
                .role
                .as_deref()
                .map(RoleFilter::parse)
                .transpose()
                .map_err(mcp_error)?,
            since_ms,
            until_ms,
            query: args.query,
            provider: args.provider,
            project: args.project.as_deref().map(query::project_filter),
            // One more than asked: whether a next page exists.
            limit: limit + 1,
            offset,
            rank_cap: self.rank_cap,
        };
        let results = self
            .read(move |conn, path| query::search::search(conn, path, &filter))
            .await?;
        let extra = json!({ "capped": results.capped });
        Ok(self.page("hits", results.hits, offset, limit, extra))
    }

    #[tool(
        description = "Imported sessions, most recently updated first (as `nex sessions list`): label, provider, source_session_id, persona_id, is_subagent, parent_session_label, created_at, updated_at (epoch ms), status, turns, project, title, model, total_tokens, duration_ms.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_sessions(
        &self,
        Parameters(args): Parameters<ListArgs>,
    ) -> Result<CallToolResult, McpError> {
        let (offset, limit) = (cursor_offset(args.cursor.as_deref())?, limit_of(args.limit));
        let filter = ListFilter {
            filters: Filters {
                since_ms: window(args.since.as_deref(), None)?.0,
                until_ms: None,
                zone: time::Zone::Local,
                provider: args.provider,
                project: args.project.as_deref().map(query::project_filter),
            },
            limit: limit + 1,
            offset,
        };
        let rows = self
            .read(move |conn, _| session_list(conn, &query::session_facts(conn)?, &filter))
            .await?;
        Ok(self.page("sessions", rows, offset, limit, json!({})))
    }

    #[tool(
        description = "One session by label (or a unique label prefix, or the tool's session id), as `nex sessions export --format json`: provider, source_session_id, project, title, lineage (parent_session_label, spawn_tool_call_id), and its turns oldest first with their messages, tool calls (parameters and results cut to 4000 characters) and the subagents they spawned (paged by turns: pass next_cursor as cursor). A session header over half the result's byte cap is cut: other_subagents lose their turns (turns_cut: get_session with their label), long strings are cut with a marker, and other_subagents_cut says how many were left out.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_session(
        &self,
        Parameters(args): Parameters<GetArgs>,
    ) -> Result<CallToolResult, McpError> {
        let (offset, limit) = (cursor_offset(args.cursor.as_deref())?, limit_of(args.limit));
        let input = args.label;
        let mut doc = self
            .read(move |conn, _| {
                let label = resolve_label(conn, &input)?;
                export_session(conn, &label, &ExportOptions::default())?
                    .ok_or(QueryError::SessionNotFound(input))
            })
            .await?;
        let turns: Vec<_> = std::mem::take(&mut doc.turns)
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize + 1)
            .collect();
        let mut session = serde_json::to_value(&doc).map_err(internal)?;
        bound_header(&mut session, self.max_bytes / HEADER_SHARE);
        Ok(self.page("turns", turns, offset, limit, session))
    }

    #[tool(
        description = "Token usage grouped by day, week, month, project, model, provider or session (subagents counted in the session that spawned them), as `nex usage`; with replica: true, over every machine of the shared replica (as `nex usage --replica`), where `by` may also be machine: each row's key and sessions, turns, input, output, cache read, cache write, reasoning and total tokens, cost_usd (null when unknown); the total; and the models without a price.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_usage(
        &self,
        Parameters(args): Parameters<UsageArgs>,
    ) -> Result<CallToolResult, McpError> {
        let (offset, limit) = (cursor_offset(args.cursor.as_deref())?, limit_of(args.limit));
        let (since_ms, until_ms) = window(args.since.as_deref(), args.until.as_deref())?;
        let by = match args.by.as_deref() {
            None => GroupBy::default(),
            Some(text) => <GroupBy as clap::ValueEnum>::from_str(text, true).map_err(|_| {
                mcp_error(QueryError::BadArgument(format!(
                    "unknown grouping {text:?} (one of day, week, month, project, model, provider, session; machine with replica)"
                )))
            })?,
        };
        let filters = Filters {
            since_ms,
            until_ms,
            zone: time::Zone::Local,
            provider: args.provider,
            project: args.project.as_deref().map(query::project_filter),
        };
        let prices = self.prices.clone();
        let report = if args.replica.unwrap_or(false) {
            self.replica_usage(&filters, by).await?
        } else {
            self.read(move |conn, _| {
                usage_report(conn, &query::session_facts(conn)?, &filters, by, &prices)
            })
            .await?
        };
        let rows: Vec<_> = report
            .rows
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize + 1)
            .collect();
        let extra = json!({ "unpriced_models": report.unpriced_models });
        Ok(self.page("rows", rows, offset, limit, extra))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NexMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("nex", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Read-only access to the nex ledger: every imported AI coding session. \
                 search_sessions finds text; list_sessions and get_session show sessions \
                 and their turns; get_usage sums tokens. Results are paged: pass next_cursor \
                 as cursor.",
            )
    }
}

impl NexMcp {
    /// Runs `f` on a fresh read-only connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, McpError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection, &std::path::Path) -> Result<T, QueryError>
            + Send
            + 'static,
    {
        let path = self.ledger.clone();
        tokio::task::spawn_blocking(move || {
            let conn = query::open_existing(&path)?;
            f(&conn, &path)
        })
        .await
        .map_err(internal)?
        .map_err(mcp_error)
    }

    /// `nex usage --replica`'s report: one connection to the replica for the call (reads
    /// only).
    async fn replica_usage(&self, filters: &Filters, by: GroupBy) -> Result<UsageReport, McpError> {
        let replica = self
            .replica
            .as_ref()
            .ok_or(ReplicaError::NotConfigured)
            .map_err(replica_error)?;
        let client = crate::replica::pg::connect(&replica.url)
            .await
            .map_err(replica_error)?;
        crate::replica::reports::usage(&client, &replica.url, filters, by, &self.prices)
            .await
            .map_err(replica_error)
    }

    /// The page of `items` (fetched with one extra item) under the limit and the byte cap, as
    /// `{<key>: [...], "next_cursor": ...}` merged into `extra`.
    fn page<T: Serialize>(
        &self,
        key: &str,
        items: Vec<T>,
        offset: u32,
        limit: u32,
        extra: serde_json::Value,
    ) -> CallToolResult {
        let mut kept = Vec::new();
        let mut bytes = extra.to_string().len();
        let available = items.len();
        for item in items.into_iter().take(limit as usize) {
            // Plain data: serialisation cannot fail.
            let value = serde_json::to_value(item).expect("query rows serialise");
            let size = value.to_string().len() + 1;
            if !kept.is_empty() && bytes + size > self.max_bytes {
                break;
            }
            bytes += size;
            kept.push(value);
        }
        let next = (kept.len() < available).then(|| (offset as usize + kept.len()).to_string());
        let mut body = match extra {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        body.insert(key.to_owned(), serde_json::Value::Array(kept));
        body.insert("next_cursor".to_owned(), json!(next));
        CallToolResult::structured(serde_json::Value::Object(body))
    }
}

/// Cuts `get_session`'s header (the exported session, its turns taken out) to about `budget`
/// bytes of JSON, in steps, each taken only while the header is still over:
///
/// 1. each of `other_subagents` (subagents whose spawning call is not among the session's
///    rows) keeps its own header and loses its turns and its `other_subagents`, with
///    `"turns_cut": N` saying how many turns (`get_session` with its label gives them);
/// 2. every string longer than [`HEADER_FIELD_CHARS`] characters is cut with export's marker
///    (`[…cut: N more characters]`);
/// 3. `other_subagents` keeps the first ones that fit, and `"other_subagents_cut": N` says how
///    many were left out.
///
/// A header under `budget` is left as the export wrote it.
fn bound_header(header: &mut serde_json::Value, budget: usize) {
    use serde_json::Value;
    let size = |v: &Value| v.to_string().len();
    if size(header) <= budget {
        return;
    }
    if let Some(Value::Array(subagents)) = header.get_mut("other_subagents") {
        for sub in subagents.iter_mut() {
            let turns = sub["turns"].as_array().map_or(0, Vec::len);
            sub["turns"] = json!([]);
            sub["other_subagents"] = json!([]);
            sub["turns_cut"] = json!(turns);
        }
    }
    if size(header) > budget {
        cut_strings(header);
    }
    if size(header) > budget
        && let Some(Value::Array(subagents)) = header.get_mut("other_subagents").map(Value::take)
    {
        let total = subagents.len();
        header["other_subagents"] = json!([]);
        let mut kept = Vec::new();
        let mut room = budget.saturating_sub(size(header) + 32);
        for sub in subagents {
            let need = size(&sub) + 1;
            if need > room {
                break;
            }
            room -= need;
            kept.push(sub);
        }
        header["other_subagents_cut"] = json!(total - kept.len());
        header["other_subagents"] = Value::Array(kept);
    }
}

/// Every string in `value` cut to [`HEADER_FIELD_CHARS`] characters, with export's marker.
fn cut_strings(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.chars().count() > HEADER_FIELD_CHARS => {
            *s = cut(s, HEADER_FIELD_CHARS);
        }
        Value::Array(items) => items.iter_mut().for_each(cut_strings),
        Value::Object(map) => map.values_mut().for_each(cut_strings),
        _ => {}
    }
}

/// Serves the tools of `server` on stdin/stdout until the client closes them.
///
/// Errors: the transport's (stdin or stdout failed) or the handshake's.
pub async fn serve_stdio(server: NexMcp) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let service = server.serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}

fn limit_of(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// A cursor is the offset of the next item, as text.
fn cursor_offset(cursor: Option<&str>) -> Result<u32, McpError> {
    match cursor {
        None => Ok(0),
        Some(text) => text.parse().map_err(|_| {
            mcp_error(QueryError::BadArgument(format!(
                "invalid cursor {text:?} (pass next_cursor as it was returned)"
            )))
        }),
    }
}

/// `since` / `until` as the CLI reads them, in the server's local zone (`TZ`).
fn window(
    since: Option<&str>,
    until: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), McpError> {
    time::window(since, until, time::Zone::Local).map_err(mcp_error)
}

/// A query's error as the JSON-RPC error the client gets, with the nex code in `data`.
fn mcp_error(e: QueryError) -> McpError {
    let data = Some(json!({ "code": e.code().as_str() }));
    match e {
        QueryError::SearchQueryInvalid(_)
        | QueryError::BadArgument(_)
        | QueryError::DateInvalid(_)
        | QueryError::SessionAmbiguous { .. }
        | QueryError::SessionNotFound(_) => McpError::invalid_params(e.to_string(), data),
        QueryError::LedgerNotFound(_)
        | QueryError::LedgerSchemaOlder(_)
        | QueryError::LedgerRead(_)
        | QueryError::Ledger { .. } => {
            tracing::warn!(error_code = %e.code(), "mcp tool failed");
            McpError::internal_error(e.to_string(), data)
        }
    }
}

/// A replica's error as the JSON-RPC error the client gets (its messages never hold the
/// URL's credentials: [`crate::replica`] redacts them).
fn replica_error(e: ReplicaError) -> McpError {
    match e {
        ReplicaError::Query(e) => mcp_error(e),
        ReplicaError::NotConfigured => {
            McpError::invalid_params(e.to_string(), Some(json!({ "code": e.code().as_str() })))
        }
        e => {
            tracing::warn!(error_code = %e.code(), "mcp tool failed");
            McpError::internal_error(e.to_string(), Some(json!({ "code": e.code().as_str() })))
        }
    }
}

fn internal(e: impl std::fmt::Display) -> McpError {
    McpError::internal_error(
        e.to_string(),
        Some(json!({ "code": "internal_runtime_failed" })),
    )
}
