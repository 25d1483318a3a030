//! `nex search QUERY [--provider P] [--project DIR] [--since DATE] [--until DATE]
//! [--role user|assistant|tool] [--limit N] [--json]`: full-text search over every session's
//! messages and tool calls ([`crate::query::search`]), through a read-only connection.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::control_ctx::{ControlArgs, errln, outln, print_json};
use super::sessions::NO_SESSIONS_YET;
use crate::query::search::{RoleFilter, SearchFilter, SearchResults};
use crate::query::{self, QueryError, time};

/// Where a read-only command finds the ledger.
#[derive(Debug, Clone, Default, Args)]
pub struct ReadLedgerArgs {
    /// NEX home (default: $NEX_HOME, else ~/.nex).
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Agents ledger (default: $NEX_LEDGER, else config `ledger`, else $NEX_HOME/agents.db).
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
}

impl ReadLedgerArgs {
    /// The ledger's path, as every command resolves it.
    ///
    /// Errors: the configuration's (`config_invalid`, `nex_home_unresolved`, …).
    pub fn path(&self) -> Result<PathBuf, crate::control::ControlError> {
        if let Some(p) = &self.ledger {
            return Ok(p.clone());
        }
        let control = ControlArgs {
            home: self.home.clone(),
            ..ControlArgs::default()
        };
        Ok(control.settings(false)?.paths.ledger)
    }

    /// The user's `config.toml` (for its `[prices]`), under the same NEX home.
    ///
    /// Errors: `nex_home_unresolved`.
    pub fn config_file(&self) -> Result<PathBuf, crate::control::ControlError> {
        let control = ControlArgs {
            home: self.home.clone(),
            ..ControlArgs::default()
        };
        Ok(control.paths()?.config_file)
    }
}

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub ledger: ReadLedgerArgs,
    /// FTS5 query: words, "a phrase", prefix*, AND/OR/NOT, column:word.
    #[arg(allow_hyphen_values = true)]
    pub query: String,
    /// Only sessions of this provider (`claude-code`, `codex`, …).
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// Only sessions in this directory or under it.
    #[arg(long, value_name = "DIR")]
    pub project: Option<String>,
    /// Hits at or after: YYYY-MM-DD (from its midnight, local time; UTC under --utc), an
    /// RFC 3339 time, or 12h / 7d / 2w ago.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Hits before the end of this day (the day is included), or before a time as --since
    /// takes it.
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Only messages of this role (`tool`: tool calls and tool messages).
    #[arg(long, value_enum)]
    pub role: Option<RoleFilter>,
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Rank at most this many matches of a query (the most recently imported), so that a
    /// very frequent word answers fast; the output says when it did. 0 ranks every match.
    /// Default: $NEX_SEARCH_RANK_CAP, else 2000.
    #[arg(long, value_name = "N")]
    pub rank_cap: Option<u32>,
    /// One JSON line per hit (with `"capped": {"ranked": N, "matches": M}` on each line when
    /// only the most recently imported N of M matches were ranked; `"at_least": true` added
    /// when M is a lower bound).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SearchArgs) -> ExitCode {
    match search(&args) {
        Ok(results) => {
            print_hits(&results, args.json);
            ExitCode::SUCCESS
        }
        Err(SearchFailure::Query(QueryError::LedgerNotFound(_))) => {
            if !args.json {
                outln!("{NO_SESSIONS_YET}");
            }
            ExitCode::SUCCESS
        }
        Err(SearchFailure::Query(e)) => {
            errln!("nex: {e} [{}]", e.code());
            ExitCode::FAILURE
        }
        Err(SearchFailure::Control(e)) => super::control_ctx::fail(&e),
    }
}

enum SearchFailure {
    Query(QueryError),
    Control(crate::control::ControlError),
}

impl From<QueryError> for SearchFailure {
    fn from(e: QueryError) -> Self {
        SearchFailure::Query(e)
    }
}

/// The filter of a command line: dates parsed, the project made absolute.
///
/// Errors: `date_invalid` for a date that does not parse; `bad_request` for an invalid
/// `NEX_SEARCH_RANK_CAP`.
pub fn filter_of(args: &SearchArgs) -> Result<SearchFilter, QueryError> {
    let (since_ms, until_ms) = time::window(
        args.since.as_deref(),
        args.until.as_deref(),
        super::fmt::zone(),
    )?;
    Ok(SearchFilter {
        query: args.query.clone(),
        provider: args.provider.clone(),
        project: args.project.as_deref().map(query::project_filter),
        since_ms,
        until_ms,
        role: args.role,
        limit: args.limit,
        offset: 0,
        rank_cap: match args.rank_cap {
            Some(0) => None,
            Some(n) => Some(n),
            None => query::search::rank_cap_from_env()?,
        },
    })
}

fn search(args: &SearchArgs) -> Result<SearchResults, SearchFailure> {
    let filter = filter_of(args)?;
    let path = args.ledger.path().map_err(SearchFailure::Control)?;
    let conn = query::open_existing(&path)?;
    Ok(query::search::search(&conn, &path, &filter)?)
}

/// The JSON line of a hit: the hit's fields, and `capped` after them when the search ranked
/// only part of the matches (so a consumer of the exact contract reads the same fields).
#[derive(serde::Serialize)]
struct HitLine<'a> {
    #[serde(flatten)]
    hit: &'a crate::query::search::SearchHit,
    #[serde(skip_serializing_if = "Option::is_none")]
    capped: Option<crate::query::search::Capped>,
}

fn print_hits(results: &SearchResults, json: bool) {
    let hits = &results.hits;
    if json {
        for hit in hits {
            print_json(&HitLine {
                hit,
                capped: results.capped,
            });
        }
        return;
    }
    if hits.is_empty() {
        outln!("no matches");
        return;
    }
    for hit in hits {
        // `at` is the JSON's RFC 3339 UTC time; people read local time with its offset.
        let at_ms = hit
            .at
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond());
        outln!(
            "{}  {}  {}  {}  {}",
            super::fmt::time(at_ms),
            hit.provider.as_deref().unwrap_or("-"),
            hit.role,
            hit.label.as_deref().unwrap_or("-"),
            hit.project.as_deref().unwrap_or("-"),
        );
        outln!("    {}", hit.snippet.replace(['\n', '\r'], " "));
    }
    if let Some(c) = results.capped {
        outln!(
            "ranked the {} most recently imported of {}{} matches; narrow with --since, --until, \
             --project, --provider or a rarer word, or rank every match with --rank-cap 0",
            c.ranked,
            if c.at_least { "at least " } else { "" },
            c.matches
        );
    }
}
