//! `nex usage`: tokens and cost from the ledger ([`crate::query::usage`]), as a table or
//! JSON; `--session LABEL` shows one session's spawn tree.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::control_ctx::{outln, print_json, table};
use super::sessions::{Failure, LedgerArgs, NO_SESSIONS_YET, is_first_run, open, project_arg};
use crate::control::config::ConfigFile;
use crate::query::prices::PriceTable;
use crate::query::sessions::resolve_label;
use crate::query::usage::{
    GroupBy, SessionTreeReport, SessionUsageNode, Usage, UsageReport, session_tree, usage_report,
};
use crate::query::{Filters, QueryError, session_facts};

#[derive(Debug, Clone, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Rows by: day, week (named by its Monday) or month of a turn's start in local time;
    /// project, provider or session of the session (a subagent's: the session that spawned
    /// it); or the turn's model.
    #[arg(long, value_enum, default_value_t = GroupBy::Day)]
    pub by: GroupBy,
    /// Count turns that started at or after: YYYY-MM-DD (from its midnight, local time; UTC
    /// under --utc), an RFC 3339 time, or 12h / 7d / 2w ago.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Count turns that started before the end of this day (the day is included), or before
    /// a time as --since takes it.
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Only sessions of this provider (`claude-code`, `codex`, `gemini-cli`, `opencode`,
    /// `cursor`).
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// Only sessions whose project (workspace) is this directory or under it.
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// One session's tree instead of a report: each subagent under the tool call that
    /// spawned it, with its own and its subtree's tokens and cost. A label, a unique prefix
    /// of one, or the tool's session id.
    #[arg(long, value_name = "LABEL", conflicts_with_all = ["by", "since", "until", "provider", "project"])]
    pub session: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// The usage of every machine in the shared replica (`[replica]` in config.toml); `--by
    /// machine` gives one row per machine.
    #[arg(long, conflicts_with = "session")]
    pub replica: bool,
}

pub fn run(args: UsageArgs) -> ExitCode {
    if args.replica {
        return super::replica::usage(&args);
    }
    match report(&args) {
        Ok(Report::FirstRun) => {
            if args.json {
                if args.session.is_some() {
                    print_json(&serde_json::Value::Null);
                } else {
                    print_json(&UsageReport::default());
                }
            } else {
                outln!("{NO_SESSIONS_YET}");
            }
            ExitCode::SUCCESS
        }
        Ok(Report::Rows(r)) => {
            if args.json {
                print_json(&r);
            } else {
                print_rows(&r, args.by);
            }
            ExitCode::SUCCESS
        }
        Ok(Report::Tree(t)) => {
            if args.json {
                print_json(&t);
            } else {
                print_tree(&t);
            }
            ExitCode::SUCCESS
        }
        Err(e) => e.report(),
    }
}

enum Report {
    FirstRun,
    Rows(UsageReport),
    Tree(Box<SessionTreeReport>),
}

/// The price table: `prices.toml` with `config.toml`'s `[prices]`.
pub(super) fn prices(args: &UsageArgs) -> Result<PriceTable, Failure> {
    let config = ConfigFile::read(&args.ledger.control.paths()?.config_file)?;
    Ok(PriceTable::with_overrides(&config.prices))
}

/// The provider, project and day filters of the arguments (days in the zone of `--utc`).
///
/// Errors: `date_invalid`.
pub(super) fn filters(args: &UsageArgs) -> Result<Filters, QueryError> {
    let zone = super::fmt::zone();
    let (since_ms, until_ms) =
        crate::query::time::window(args.since.as_deref(), args.until.as_deref(), zone)?;
    Ok(Filters {
        provider: args.provider.clone(),
        project: project_arg(args.project.as_deref()),
        since_ms,
        until_ms,
        zone,
    })
}

fn report(args: &UsageArgs) -> Result<Report, Failure> {
    let prices = prices(args)?;
    let conn = open(&args.ledger)?;
    if is_first_run(conn.as_ref())? {
        return Ok(Report::FirstRun);
    }
    let Some(conn) = conn else {
        return Ok(Report::FirstRun);
    };
    let facts = session_facts(&conn)?;
    if let Some(input) = &args.session {
        let label = resolve_label(&conn, input)?;
        let tree = session_tree(&conn, &facts, &label, &prices)?;
        return Ok(Report::Tree(Box::new(tree)));
    }
    Ok(Report::Rows(usage_report(
        &conn,
        &facts,
        &filters(args)?,
        args.by,
        &prices,
    )?))
}

const HEADER: [&str; 9] = [
    "SESSIONS",
    "TURNS",
    "INPUT",
    "OUTPUT",
    "CACHE READ",
    "CACHE WRITE",
    "REASONING",
    "TOTAL",
    "COST",
];

fn cells(u: &Usage) -> Vec<String> {
    if u.turns > 0 && u.turns_without_tokens == u.turns {
        // No turn of the row has a token count: unknown, not zero (and no cost).
        let mut row = vec![u.sessions.to_string(), u.turns.to_string()];
        row.extend(std::iter::repeat_n("-".to_owned(), HEADER.len() - 2));
        return row;
    }
    vec![
        u.sessions.to_string(),
        u.turns.to_string(),
        u.input_tokens.to_string(),
        u.output_tokens.to_string(),
        u.cache_read_tokens.to_string(),
        u.cache_write_tokens.to_string(),
        u.reasoning_tokens.to_string(),
        u.total_tokens.to_string(),
        cost(u.cost_usd),
    ]
}

/// `$12.34` (`$0.0045` under a cent), or `-` when unknown (never `$0.00` for a price we do
/// not have).
fn cost(c: Option<f64>) -> String {
    match c {
        Some(c) if c > 0.0 && c < 0.01 => format!("${c:.4}"),
        Some(c) => format!("${c:.2}"),
        None => "-".to_owned(),
    }
}

pub(super) fn print_rows(r: &UsageReport, by: GroupBy) {
    if r.rows.is_empty() {
        outln!("no usage");
        return;
    }
    let key = match by {
        GroupBy::Day => "DAY",
        GroupBy::Week => "WEEK OF",
        GroupBy::Month => "MONTH",
        GroupBy::Project => "PROJECT",
        GroupBy::Model => "MODEL",
        GroupBy::Provider => "PROVIDER",
        GroupBy::Session => "SESSION",
        GroupBy::Machine => "MACHINE",
    };
    let mut header = vec![key];
    header.extend(HEADER);
    let mut body: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| {
            let mut line = vec![row.key.clone()];
            line.extend(cells(&row.usage));
            line
        })
        .collect();
    let mut last = vec!["TOTAL".to_owned()];
    last.extend(cells(&r.total));
    body.push(last);
    outln!("{}", table(&header, &body));
    unpriced_note(&r.unpriced_models);
}

fn unpriced_note(models: &[String]) {
    if !models.is_empty() {
        outln!(
            "no price for: {} (their cost shows as -; add [prices.\"<model>\"] to config.toml)",
            models.join(", ")
        );
    }
}

fn print_tree(t: &SessionTreeReport) {
    let mut header = vec!["SESSION / SPAWNED BY"];
    header.extend(HEADER);
    header.extend(["SUBTREE TOTAL", "SUBTREE COST"]);
    let mut body = Vec::new();
    tree_rows(&t.tree, 0, &mut body);
    outln!("{}", table(&header, &body));
    unpriced_note(&t.unpriced_models);
}

fn tree_rows(n: &SessionUsageNode, depth: usize, body: &mut Vec<Vec<String>>) {
    let indent = "  ".repeat(depth);
    let name = match &n.spawned_by {
        Some(s) => format!(
            "{indent}└ {} {} -> {}",
            s.tool_name.as_deref().unwrap_or("?"),
            s.tool_call_id,
            n.label
        ),
        None => format!("{indent}{}", n.label),
    };
    let mut line = vec![name];
    line.extend(cells(&n.own));
    line.push(n.subtree.total_tokens.to_string());
    line.push(cost(n.subtree.cost_usd));
    body.push(line);
    for c in &n.children {
        tree_rows(c, depth + 1, body);
    }
}
