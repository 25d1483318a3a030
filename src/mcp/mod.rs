//! `nex mcp`: a Model Context Protocol server over stdio (the official SDK, `rmcp`) that lets an
//! agent look up the ledger: four read-only tools, each one call of a [`crate::query`] function,
//! so they answer what the CLI prints.
//!
//! - `search_sessions`: [`query::search::search`] (`nex search`).
//! - `list_sessions`: [`query::sessions::list`] (`nex sessions list`).
//! - `get_session`: [`query::sessions::get`] (`nex sessions show`), turns paged.
//! - `get_usage`: [`query::usage::report`] (`nex usage`).
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

use std::path::PathBuf;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{
    ErrorData as McpError, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::query::search::{RoleFilter, SearchFilter};
use crate::query::sessions::SessionFilter;
use crate::query::usage::{GroupBy, UsageFilter};
use crate::query::{self, QueryError, time};

/// About how much JSON one tool result may hold.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;
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
    /// Hits at or after: YYYY-MM-DD, an RFC 3339 time, or 12h / 7d / 2w ago.
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
    /// Sessions updated at or after: YYYY-MM-DD, an RFC 3339 time, or 12h / 7d / 2w ago.
    pub since: Option<String>,
    /// Most sessions to return (default 20, at most 200).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `get_session` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GetArgs {
    /// The session's label (`import:<provider>:<session>:<hash>`), as search and list give it.
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
    /// Turns started at or after this date.
    pub since: Option<String>,
    /// Turns started before this date (a date: up to the end of that day).
    pub until: Option<String>,
    /// Only sessions of this provider.
    pub provider: Option<String>,
    /// Only sessions in this directory or under it.
    pub project: Option<String>,
    /// Most rows to return (default 20, at most 200).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The server: where the ledger is, and the tools.
#[derive(Debug, Clone)]
pub struct NexMcp {
    ledger: PathBuf,
    /// About how much JSON one result may hold ([`MAX_RESULT_BYTES`] unless told).
    max_bytes: usize,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl NexMcp {
    pub fn new(ledger: PathBuf, max_bytes: usize) -> Self {
        Self {
            ledger,
            max_bytes,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Full-text search over every imported AI coding session (Claude Code, Codex, Cursor, OpenCode, Gemini CLI): message text, thinking, tool names, parameters and results. Ranked by relevance (bm25), newest first on ties. Each hit: label, session_id, provider, project, turn_id, message_id, role, at (RFC 3339), snippet (matches in **bold**), score.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_sessions(
        &self,
        Parameters(args): Parameters<SearchArgs>,
    ) -> Result<CallToolResult, McpError> {
        let (offset, limit) = (cursor_offset(args.cursor.as_deref())?, limit_of(args.limit));
        let now = time::now_ms();
        let filter = SearchFilter {
            role: args
                .role
                .as_deref()
                .map(RoleFilter::parse)
                .transpose()
                .map_err(mcp_error)?,
            since_ms: bound(args.since.as_deref(), now)?.map(|b| b.start_ms),
            until_ms: bound(args.until.as_deref(), now)?.map(|b| b.end_ms),
            query: args.query,
            provider: args.provider,
            project: args.project.as_deref().map(query::project_filter),
            // One more than asked: whether a next page exists.
            limit: limit + 1,
            offset,
        };
        let hits = self
            .read(move |conn, path| query::search::search(conn, path, &filter))
            .await?;
        Ok(self.page("hits", hits, offset, limit, json!({})))
    }

    #[tool(
        description = "Imported sessions, most recently updated first: label, session_id, provider, project, title (first prompt), model, turns, total_tokens, duration_ms, is_subagent, parent_session_label, created_at, updated_at (epoch ms).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_sessions(
        &self,
        Parameters(args): Parameters<ListArgs>,
    ) -> Result<CallToolResult, McpError> {
        let (offset, limit) = (cursor_offset(args.cursor.as_deref())?, limit_of(args.limit));
        let filter = SessionFilter {
            since_ms: bound(args.since.as_deref(), time::now_ms())?.map(|b| b.start_ms),
            provider: args.provider,
            project: args.project.as_deref().map(query::project_filter),
            limit: limit + 1,
            offset,
        };
        let rows = self
            .read(move |conn, _| query::sessions::list(conn, &filter))
            .await?;
        Ok(self.page("sessions", rows, offset, limit, json!({})))
    }

    #[tool(
        description = "One session by label: provider, project, title, model, tokens, lineage (parent_session_label, spawn_tool_call_id, children) and its turns oldest first (paged: pass next_cursor as cursor).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_session(
        &self,
        Parameters(args): Parameters<GetArgs>,
    ) -> Result<CallToolResult, McpError> {
        let (offset, limit) = (cursor_offset(args.cursor.as_deref())?, limit_of(args.limit));
        let label = args.label;
        let mut view = self
            .read(move |conn, _| query::sessions::get(conn, &label))
            .await?;
        let turns: Vec<_> = std::mem::take(&mut view.turn_list)
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize + 1)
            .collect();
        let session = serde_json::to_value(&view).map_err(internal)?;
        Ok(self.page("turn_list", turns, offset, limit, session))
    }

    #[tool(
        description = "Token usage grouped by day, week, month, project, model, provider or session: sessions, turns, input, output, cache read, cache write, reasoning and total tokens, cost_usd (null when unknown), and the models without a price.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_usage(
        &self,
        Parameters(args): Parameters<UsageArgs>,
    ) -> Result<CallToolResult, McpError> {
        let (offset, limit) = (cursor_offset(args.cursor.as_deref())?, limit_of(args.limit));
        let now = time::now_ms();
        let by = match args.by.as_deref() {
            None => GroupBy::default(),
            Some(text) => <GroupBy as clap::ValueEnum>::from_str(text, true).map_err(|_| {
                mcp_error(QueryError::BadArgument(format!(
                    "unknown grouping {text:?} (one of day, week, month, project, model, provider, session)"
                )))
            })?,
        };
        let filter = UsageFilter {
            by,
            since_ms: bound(args.since.as_deref(), now)?.map(|b| b.start_ms),
            until_ms: bound(args.until.as_deref(), now)?.map(|b| b.end_ms),
            provider: args.provider,
            project: args.project.as_deref().map(query::project_filter),
        };
        let report = self
            .read(move |conn, _| query::usage::report(conn, &filter))
            .await?;
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
            let conn = query::open_read_only(&path)?;
            f(&conn, &path)
        })
        .await
        .map_err(internal)?
        .map_err(mcp_error)
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

/// Serves the tools on stdin/stdout until the client closes them.
///
/// Errors: the transport's (stdin or stdout failed) or the handshake's.
pub async fn serve_stdio(
    ledger: PathBuf,
    max_bytes: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let service = NexMcp::new(ledger, max_bytes)
        .serve(rmcp::transport::stdio())
        .await?;
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

fn bound(text: Option<&str>, now: i64) -> Result<Option<time::TimeBound>, McpError> {
    text.map(|t| time::parse_bound(t, now))
        .transpose()
        .map_err(mcp_error)
}

/// A query's error as the JSON-RPC error the client gets, with the nex code in `data`.
fn mcp_error(e: QueryError) -> McpError {
    let data = Some(json!({ "code": e.code().as_str() }));
    match e {
        QueryError::SearchQueryInvalid(_)
        | QueryError::BadArgument(_)
        | QueryError::SessionNotFound(_) => McpError::invalid_params(e.to_string(), data),
        QueryError::LedgerNotFound(_)
        | QueryError::LedgerSchemaOlder(_)
        | QueryError::Ledger(_) => {
            tracing::warn!(error_code = %e.code(), "mcp tool failed");
            McpError::internal_error(e.to_string(), data)
        }
    }
}

fn internal(e: impl std::fmt::Display) -> McpError {
    McpError::internal_error(
        e.to_string(),
        Some(json!({ "code": "internal_runtime_failed" })),
    )
}
