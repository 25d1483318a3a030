//! Full-text search over the ledger (`nex search`, the MCP tool `search_sessions`), on the
//! FTS5 indexes of migrations `0005_search.sql` and `0007_search_bounded.sql`.
//!
//! # What is searchable
//!
//! A message's text and thinking, whole. A tool call's name, whole; its parameters, result
//! and error: a text of at most 1,536 characters whole, a longer one its first 1,024 and last
//! 512 characters (the middle of a long output is stored and exported, not searchable), with
//! JSON's `\n`, `\r`, `\t` read as spaces (the view `tool_calls_search` defines it).
//!
//! # What a hit is
//!
//! - A message whose text or thinking matches: its role, id and `created_at`.
//! - A tool call whose name, parameters, result or error matches: role `tool`, `message_id` the
//!   message that made the call (NULL when the source did not say), `at` the call's
//!   `started_at`. `--role tool` selects these and role-`tool` messages (where some providers
//!   keep tool results).
//!
//! # Order
//!
//! By relevance (FTS5 bm25, written out as `score = -bm25`, higher is better; scores of the two
//! indexes are computed separately and compared as they are), then newest first, then by id
//! (the order is total, so pages never overlap).
//!
//! # Bounded ranking of very frequent queries
//!
//! Ranking computes bm25 for every match, and a word in most messages has tens of thousands.
//! So the matches of each index are ranked in windows of at most [`SearchFilter::rank_cap`],
//! most recently imported first (descending rowid, the order FTS5 reads its doclists in
//! anyway): a query with at most `rank_cap` matches in an index ranks them all, exactly as
//! above. One with more ranks the newest window, and the next ones only while the windows so
//! far hold fewer than `offset + limit` hits that pass the filters; the hits are then the best
//! of the windows ranked, not of every match, and [`SearchResults::capped`] says so, with how
//! many matches were ranked of how many ([`Capped`]). `rank_cap` `None` ranks every match.
//!
//! # Query syntax
//!
//! FTS5's: words (all must match), `"a phrase"`, `prefix*`, `AND` / `OR` / `NOT`, `( )`,
//! `NEAR(a b, 5)`, and column filters: `content:` and `thinking:` reach messages only,
//! `tool_name:`, `params_json:`, `result_json:` and `error:` tool calls only. A query that does
//! not parse is `search_query_invalid`, with SQLite's reason.

mod rows;

use rusqlite::{Connection, ErrorCode, params};
use serde::Serialize;

use self::rows::{rows_of, snippet};
use super::QueryError;

/// The marks around each matched phrase in a snippet (Markdown bold: readable as text, rendered
/// by agents' clients).
pub const MATCH_OPEN: &str = "**";
pub const MATCH_CLOSE: &str = "**";
/// Tokens of context in a snippet.
const SNIPPET_TOKENS: u32 = 16;

/// Which role a search is limited to (`--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RoleFilter {
    User,
    Assistant,
    /// Tool calls and role-`tool` messages.
    Tool,
}

impl RoleFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleFilter::User => "user",
            RoleFilter::Assistant => "assistant",
            RoleFilter::Tool => "tool",
        }
    }

    /// `user`, `assistant` or `tool`.
    ///
    /// Errors: `bad_request` for anything else.
    pub fn parse(text: &str) -> Result<RoleFilter, QueryError> {
        match text {
            "user" => Ok(RoleFilter::User),
            "assistant" => Ok(RoleFilter::Assistant),
            "tool" => Ok(RoleFilter::Tool),
            other => Err(QueryError::BadArgument(format!(
                "unknown role {other:?} (one of user, assistant, tool)"
            ))),
        }
    }
}

/// One search: the query and its filters.
#[derive(Debug, Clone)]
pub struct SearchFilter {
    /// FTS5 query text.
    pub query: String,
    pub provider: Option<String>,
    /// A project directory as [`super::project_filter`] gives it: the project or under it.
    pub project: Option<String>,
    /// Hits at or after (epoch ms).
    pub since_ms: Option<i64>,
    /// Hits before (epoch ms, exclusive).
    pub until_ms: Option<i64>,
    pub role: Option<RoleFilter>,
    pub limit: u32,
    /// Hits to skip (the MCP tool's cursor).
    pub offset: u32,
    /// The most matches of one index ranked at once (see the module doc), `None`: all of
    /// them. [`DEFAULT_RANK_CAP`] by default.
    pub rank_cap: Option<u32>,
}

impl Default for SearchFilter {
    fn default() -> Self {
        Self {
            query: String::new(),
            provider: None,
            project: None,
            since_ms: None,
            until_ms: None,
            role: None,
            limit: 0,
            offset: 0,
            rank_cap: Some(DEFAULT_RANK_CAP),
        }
    }
}

/// Matches of one index ranked at once by default: bm25 costs 3-4 µs a row (the standard corpus
/// of `nex-bench search`), so about 10 ms for this many; fewer matches are ranked exactly.
pub const DEFAULT_RANK_CAP: u32 = 2_000;

/// The environment variable that sets the rank cap of `nex search` and `nex mcp` (`0`: rank
/// every match).
pub const RANK_CAP_ENV: &str = "NEX_SEARCH_RANK_CAP";

/// The rank cap `NEX_SEARCH_RANK_CAP` sets, else [`DEFAULT_RANK_CAP`]; `0` is `None`.
///
/// Errors: `bad_request` for a value that is not a whole number.
pub fn rank_cap_from_env() -> Result<Option<u32>, QueryError> {
    match std::env::var(RANK_CAP_ENV) {
        Err(_) => Ok(Some(DEFAULT_RANK_CAP)),
        Ok(text) => parse_rank_cap(&text),
    }
}

/// A rank cap as text (`0`: none).
///
/// Errors: `bad_request` for anything but a whole number.
pub fn parse_rank_cap(text: &str) -> Result<Option<u32>, QueryError> {
    match text.trim().parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(QueryError::BadArgument(format!(
            "invalid rank cap {text:?} (a whole number; 0 ranks every match)"
        ))),
    }
}

/// What a search found: its hits and, when it ranked only part of the matches, how much.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// `None`: every match was ranked, the hits are exact.
    pub capped: Option<Capped>,
}

/// A search that ranked the most recently imported `ranked` of its `matches` matches (both
/// indexes together) and no others.
///
/// The matches past the ranked ones are counted up to [`MATCH_COUNT_BUDGET`] times the rank
/// cap per index (counting is a pass over the index, and a phrase's pass checks the positions
/// of every row holding its words); past that budget `matches` is how many were counted, and
/// `at_least` says there are more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capped {
    pub ranked: u64,
    pub matches: u64,
    /// `matches` is a lower bound: counting stopped at the budget (absent from JSON when
    /// `matches` is exact).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub at_least: bool,
}

/// Matches counted past the ranked ones, per index, at most this many times the rank cap
/// (see [`Capped`]).
pub const MATCH_COUNT_BUDGET: u64 = 4;

/// One hit, as `nex search --json` prints it (fields in this order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The session's label; NULL only for a turn no session claims.
    pub label: Option<String>,
    /// The tool's own session id.
    pub session_id: Option<String>,
    pub provider: Option<String>,
    pub project: Option<String>,
    pub turn_id: String,
    pub message_id: Option<String>,
    pub role: String,
    /// RFC 3339, UTC.
    pub at: String,
    /// Text around the match, each matched phrase between [`MATCH_OPEN`] and [`MATCH_CLOSE`].
    pub snippet: String,
    /// `-bm25`: higher is more relevant.
    pub score: f64,
}

/// Which index a hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Message,
    ToolCall,
}

impl Kind {
    fn index(self) -> &'static str {
        match self {
            Kind::Message => "messages_fts",
            Kind::ToolCall => "tool_calls_fts",
        }
    }
}

/// A ranked hit before its snippet is cut.
struct Ranked {
    kind: Kind,
    rowid: i64,
    id: String,
    at_ms: i64,
    hit: SearchHit,
}

/// Runs `filter` over the ledger; at most `filter.limit` hits after `filter.offset`, in the
/// order of the module doc, ranked among every match or, past the rank cap, among the most
/// recently imported (then `capped` says how many of how many).
///
/// Errors: `search_query_invalid` (empty, or FTS5 cannot parse it), `ledger_schema_older` (the
/// ledger predates migration 0007: no index, or the unbounded one), `ledger_read_failed`.
pub fn search(
    conn: &Connection,
    ledger: &std::path::Path,
    filter: &SearchFilter,
) -> Result<SearchResults, QueryError> {
    if filter.query.trim().is_empty() {
        return Err(QueryError::SearchQueryInvalid("the query is empty".into()));
    }
    if !super::has_table(conn, "tool_calls_search")? {
        return Err(QueryError::LedgerSchemaOlder(ledger.to_path_buf()));
    }
    let want = u64::from(filter.offset) + u64::from(filter.limit);
    let kinds: &[Kind] = match filter.role {
        Some(RoleFilter::User | RoleFilter::Assistant) => &[Kind::Message],
        _ => &[Kind::Message, Kind::ToolCall],
    };
    let mut ranked = Vec::new();
    let mut unknown_column = None;
    let (mut ranked_count, mut match_count, mut capped) = (0, 0, false);
    let mut at_least = false;
    for &kind in kinds {
        match ranked_hits(conn, kind, filter, want) {
            Ok(hits) => {
                ranked_count += hits.ranked;
                match_count += hits.ranked;
                if let Some(below) = hits.unranked_from {
                    capped = true;
                    let budget = u64::from(filter.rank_cap.unwrap_or(u32::MAX).max(1))
                        .saturating_mul(MATCH_COUNT_BUDGET);
                    let (more, whole) = matches_below(conn, kind, &filter.query, below, budget)?;
                    match_count += more;
                    at_least |= !whole;
                }
                ranked.push(hits.kept);
            }
            // A column filter names one index's columns only: the other index has no hit.
            Err(QueryError::SearchQueryInvalid(why)) if why.contains("no such column") => {
                unknown_column = Some(why);
            }
            Err(e) => return Err(e),
        }
    }
    if ranked.is_empty() {
        let why = unknown_column.unwrap_or_else(|| "no index to search".into());
        return Err(QueryError::SearchQueryInvalid(why));
    }
    let mut ranked: Vec<Ranked> = ranked.into_iter().flatten().collect();
    ranked.sort_by(|a, b| {
        b.hit
            .score
            .total_cmp(&a.hit.score)
            .then(b.at_ms.cmp(&a.at_ms))
            .then(a.kind.cmp(&b.kind))
            .then_with(|| a.id.cmp(&b.id))
    });
    let hits = ranked
        .into_iter()
        .skip(filter.offset as usize)
        .take(filter.limit as usize)
        .map(|r| {
            let snippet = snippet(conn, r.kind, &filter.query, r.rowid)?;
            Ok(SearchHit { snippet, ..r.hit })
        })
        .collect::<Result<_, QueryError>>()?;
    let capped = capped.then_some(Capped {
        ranked: ranked_count,
        matches: match_count,
        at_least,
    });
    Ok(SearchResults { hits, capped })
}

/// The hits of one index [`ranked_hits`] kept, and how far it ranked.
struct IndexHits {
    kept: Vec<Ranked>,
    /// Matches ranked.
    ranked: u64,
    /// The rowid of the newest match left unranked (`None`: every match was ranked).
    unranked_from: Option<i64>,
}

/// The best `want` hits of one index under the filters, and every hit tied with the last of
/// them (the caller's sort breaks ties by time and id, so the top N is the full ranking's),
/// among its matches ranked in windows of `filter.rank_cap` (see the module doc): the newest
/// window, then the next ones while fewer than `want` hits passed the filters.
///
/// # Cost
///
/// Ranking reads the index only: every ranked hit's bm25 comes from one statement stepping
/// through FTS5's doclists and its `docsize` table newest first, and the rank cap bounds how
/// many rows it steps through for a frequent word (bm25's per-phrase statistics are one pass
/// over the index whatever the cap: FTS5 computes them before the first row). The rows (and their joins and filters) are read for the best hits only,
/// in score order, a chunk at a time ([`best_of`]). Reading a row is the costly part: a hit's
/// time sits after its text in the table, so reading it walks the text's overflow pages;
/// joining every hit (as one SQL statement over the index did) read a gigabyte for a frequent
/// word.
fn ranked_hits(
    conn: &Connection,
    kind: Kind,
    filter: &SearchFilter,
    want: u64,
) -> Result<IndexHits, QueryError> {
    let want = usize::try_from(want).unwrap_or(usize::MAX);
    let window = filter.rank_cap.map(|c| c.max(1) as usize);
    let mut out = IndexHits {
        kept: Vec::new(),
        ranked: 0,
        unranked_from: None,
    };
    // One statement for every window: FTS5 reads its doclists newest first under `ORDER BY
    // rowid DESC` and computes bm25 for the rows stepped to only, so a window is the next
    // `window` rows of it. bm25's statistics (each phrase's rows over the whole index: a
    // phrase's positions checked in every row holding its words) are computed once per
    // statement, not once per window.
    let index = kind.index();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT rowid, -bm25({index}) FROM {index}
             WHERE {index} MATCH ?1 ORDER BY rowid DESC"
        ))
        .map_err(query_error)?;
    let mut rows = stmt.query([&filter.query]).map_err(query_error)?;
    let mut next = || -> Result<Option<Scored>, QueryError> {
        match rows.next().map_err(query_error)? {
            Some(r) => Ok(Some(Scored {
                rowid: r.get(0).map_err(query_error)?,
                score: r.get(1).map_err(query_error)?,
            })),
            None => Ok(None),
        }
    };
    // The first match (stepping parses the query: a malformed one is an error whatever the
    // limit).
    let mut pending = next()?;
    if want == 0 {
        return Ok(out);
    }
    // Each window's hits that passed are either all of them (fewer than `want`: the window
    // was read whole) or its best `want` and their ties; the best `want` of the windows so far
    // are among them.
    while out.kept.len() < want {
        let Some(first) = pending.take() else { break };
        let mut found = vec![first];
        while window.is_none_or(|w| found.len() < w) {
            match next()? {
                Some(h) => found.push(h),
                None => break,
            }
        }
        // One more says whether any is left.
        pending = next()?;
        out.ranked += found.len() as u64;
        out.kept.extend(best_of(conn, kind, filter, found, want)?);
    }
    out.unranked_from = pending.map(|h| h.rowid);
    out.kept.sort_by(|a, b| b.hit.score.total_cmp(&a.hit.score));
    if out.kept.len() > want {
        let floor = out.kept[want - 1].hit.score;
        out.kept.retain(|r| r.hit.score >= floor);
    }
    Ok(out)
}

/// The best `want` hits of `found` that pass the filters, and their ties; all that pass when
/// fewer do. Rows are read in score order, a chunk at a time, until `want` passed and the
/// next score is below the last of them.
fn best_of(
    conn: &Connection,
    kind: Kind,
    filter: &SearchFilter,
    found: Vec<Scored>,
    want: usize,
) -> Result<Vec<Ranked>, QueryError> {
    let mut heap = std::collections::BinaryHeap::from(found);
    let chunk = want.saturating_mul(2).clamp(64, 4096);
    let mut kept: Vec<Ranked> = Vec::new();
    // The score of the `want`-th kept hit, once there are that many (kept is sorted by score,
    // highest first, as the chunks come in that order).
    let mut floor = None;
    while let Some(next) = heap.peek() {
        if floor.is_some_and(|f| next.score < f) {
            break;
        }
        let mut batch = Vec::with_capacity(chunk);
        while batch.len() < chunk {
            match heap.pop() {
                Some(h) => batch.push(h),
                None => break,
            }
        }
        kept.extend(rows_of(conn, kind, filter, &batch)?);
        if kept.len() >= want {
            floor = Some(kept[want - 1].hit.score);
        }
    }
    if let Some(f) = floor {
        kept.retain(|r| r.hit.score >= f);
    }
    Ok(kept)
}

/// One hit as the index ranks it: higher `score` (`-bm25`) first, then lower rowid (any
/// fixed order would do: ties are broken by time and id afterwards).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    score: f64,
    rowid: i64,
}

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.rowid.cmp(&self.rowid))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// How many rows of one index with rowid at most `below` match `query` (the index alone, no
/// score), counting newest first and at most `budget`: the count, and whether it is all of
/// them (else there are more).
fn matches_below(
    conn: &Connection,
    kind: Kind,
    query: &str,
    below: i64,
    budget: u64,
) -> Result<(u64, bool), QueryError> {
    let index = kind.index();
    // One more than the budget says whether any is left; FTS5 stops at the LIMIT.
    let limit = i64::try_from(budget.saturating_add(1)).unwrap_or(i64::MAX);
    let n = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM (SELECT rowid FROM {index}
             WHERE {index} MATCH ?1 AND rowid <= ?2 ORDER BY rowid DESC LIMIT ?3)"
        ))
        .and_then(|mut stmt| stmt.query_row(params![query, below, limit], |r| r.get::<_, i64>(0)))
        .map_err(query_error)? as u64;
    Ok(if n > budget {
        (budget, false)
    } else {
        (n, true)
    })
}

/// SQLite's plain `SQLITE_ERROR` from these fixed statements is the query's fault (FTS5
/// syntax, an unterminated string, an unknown column); anything else is the ledger's.
fn query_error(e: rusqlite::Error) -> QueryError {
    match &e {
        rusqlite::Error::SqliteFailure(err, Some(msg))
            if err.code == ErrorCode::Unknown && !msg.starts_with("no such table") =>
        {
            QueryError::SearchQueryInvalid(msg.clone())
        }
        _ => QueryError::LedgerRead(e),
    }
}
