//! `nex import verify [--provider P] [--json]`: the seed's Phase 2 burn-in check ("validate
//! row-level parity and lineage integrity") as a command.
//!
//! The source side is what the worker sees: `<worker program> scan --sessions` (the `aix`
//! binary) run with the source locations nex hands its workers (`CLAUDE_CONFIG_DIR`,
//! `CODEX_HOME` in the environment, the configured Cursor, OpenCode and Gemini locations as
//! flags), or with the repeatable `--claude-dir` ... `--gemini-dir` given here, which replace a
//! provider's location. It prints one line of figures per session (`aix::figures`). The ledger
//! side is read through a read-only connection (a running daemon is not disturbed): per session
//! of `session_imports`, its turns, messages and tool calls (by their `session_label`), the
//! token sums and the lineage columns of `sessions`.
//!
//! Every differing figure of a session is a mismatch; a session the source holds and the ledger
//! does not is a mismatch of field `session`. Sessions only in the ledger are listed apart: their
//! source is gone (agents delete old histories) and the ledger is what kept them. Exit 0 when
//! nothing differs, 1 on a mismatch (and on an error, with its code).

use crate::protocol::Code;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use self::ledger::{LedgerFigures, open_ledger};
use super::control_ctx::{ControlArgs, SourceArgs, WorkerArgs, errln, outln, print_json, table};
use crate::aix::figures::SessionFigures;
use crate::aix::sources::Provider;
use crate::import::{IdKind, scoped_id};

mod ledger;

/// The import source every worker item carries.
const SOURCE: &str = "aix";

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// NEX home (default: $NEX_HOME, else ~/.nex): config, default ledger.
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Agents ledger (default: $NEX_LEDGER, else config `ledger`, else $NEX_HOME/agents.db).
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Worker command whose program runs `scan --sessions` (default: as for imports).
    #[arg(long, value_name = "CMD")]
    pub worker_cmd: Option<String>,
    /// Where to look: the locations an import takes, with the same defaults.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Only this provider: claude-code, codex, cursor, opencode or gemini-cli.
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// Print one JSON object: `{"providers":[{"provider","sessions","matched","mismatched":[…],
    /// "only_in_ledger":[…]}]}`.
    #[arg(long)]
    pub json: bool,
}

/// The result of a verification. Field names are a stable contract (only ever added to).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub providers: Vec<ProviderReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderReport {
    pub provider: String,
    /// Sessions the source holds.
    pub sessions: u64,
    /// Of those, sessions whose every figure equals the ledger's.
    pub matched: u64,
    /// One entry per differing figure.
    pub mismatched: Vec<Mismatch>,
    /// Sessions in the ledger whose source is gone.
    pub only_in_ledger: Vec<LedgerOnly>,
    /// Sessions of the provider in the ledger.
    pub ledger_sessions: u64,
    /// Lineage columns of the provider's sessions that name nothing the ledger holds: a parent
    /// session the source no longer has either (an agent deleted it, or only ever kept a
    /// snapshot of it), or a spawning tool call missing from its parent. Listed, not counted
    /// as mismatches: the ledger holds what the sources hold.
    pub dangling_lineage: Vec<DanglingLineage>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DanglingLineage {
    pub label: String,
    pub source_session_id: String,
    /// `parent_session_label` or `spawn_tool_call_id`.
    pub field: String,
    /// The label or id that names nothing.
    pub names: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    pub label: String,
    pub source_session_id: String,
    /// `session` (missing from the ledger), `turns`, `messages`, `tool_calls`, `spawn_links`,
    /// `input_tokens`, `output_tokens`, `cached_input_tokens`, `cache_write_tokens`,
    /// `reasoning_tokens`, `total_tokens`, `is_subagent`, `parent_session_label`,
    /// `spawn_tool_call_id`.
    pub field: String,
    pub source: Value,
    pub ledger: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerOnly {
    pub label: String,
    pub source_session_id: String,
}

impl VerifyReport {
    pub fn mismatches(&self) -> usize {
        self.providers.iter().map(|p| p.mismatched.len()).sum()
    }
}

/// Why a verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    #[error("unknown provider {0} (one of claude-code, codex, cursor, opencode, gemini-cli)")]
    UnknownProvider(String),
    #[error("no ledger at {0}")]
    LedgerNotFound(PathBuf),
    #[error(
        "the ledger at {0} predates schema 3 (messages.session_label); run an import first to migrate it"
    )]
    LedgerSchemaOlder(PathBuf),
    #[error("cannot read the ledger ({0})")]
    Ledger(#[from] rusqlite::Error),
    #[error("cannot run {program} scan --sessions: {source}")]
    ScanSpawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} scan --sessions failed ({status})")]
    ScanFailed { program: PathBuf, status: String },
    #[error("{program} scan --sessions printed a line that is not session figures (line {line})")]
    ScanOutput { program: PathBuf, line: usize },
}

impl VerifyError {
    pub fn code(&self) -> Code {
        match self {
            VerifyError::Control(e) => e.code(),
            VerifyError::UnknownProvider(_) => Code::ProviderUnknown,
            VerifyError::LedgerNotFound(_) => Code::LedgerNotFound,
            VerifyError::LedgerSchemaOlder(_) => Code::LedgerSchemaOlder,
            VerifyError::Ledger(_) => Code::LedgerReadFailed,
            VerifyError::ScanSpawn { .. } => Code::VerifyScanSpawnFailed,
            VerifyError::ScanFailed { .. } => Code::VerifyScanFailed,
            VerifyError::ScanOutput { .. } => Code::VerifyScanOutputInvalid,
        }
    }
}

pub fn run(args: VerifyArgs) -> ExitCode {
    match verify(&args) {
        Ok(report) => {
            if args.json {
                print_json(&report);
            } else {
                outln!("{}", render(&report));
            }
            if report.mismatches() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e @ VerifyError::UnknownProvider(_)) => {
            errln!("nex: {e} [{}]", e.code());
            ExitCode::from(2)
        }
        Err(e) => {
            errln!("nex: {e} [{}]", e.code());
            ExitCode::FAILURE
        }
    }
}

/// Runs the source scan and reads the ledger; compares.
///
/// Errors: see [`VerifyError`].
pub fn verify(args: &VerifyArgs) -> Result<VerifyReport, VerifyError> {
    let providers: Vec<Provider> = match &args.provider {
        Some(name) => vec![
            Provider::ALL
                .into_iter()
                .find(|p| p.as_str() == name.trim())
                .ok_or_else(|| VerifyError::UnknownProvider(name.clone()))?,
        ],
        None => Provider::ALL.to_vec(),
    };
    let control = ControlArgs {
        home: args.home.clone(),
        worker: WorkerArgs {
            worker_cmd: args.worker_cmd.clone(),
            sources: args.sources.clone(),
            ..Default::default()
        },
        ..ControlArgs::default()
    };
    let settings = control.settings(false)?;
    let ledger_path = args.ledger.clone().unwrap_or(settings.paths.ledger.clone());
    let conn = open_ledger(&ledger_path)?;
    let source = scan_sources(&settings)?;
    let ledger = LedgerFigures::read(&conn)?;
    Ok(compare(&providers, &source, &ledger))
}

/// `<worker program> scan --sessions` with the locations an import's worker would get.
fn scan_sources(
    settings: &crate::control::config::ControlSettings,
) -> Result<Vec<SessionFigures>, VerifyError> {
    let program = settings.worker.program.clone();
    let mut cmd = Command::new(&program);
    cmd.args(["scan", "--sessions"]);
    let sources = &settings.sources;
    let given = &sources.given;
    let mut flag = |name: &str, paths: &[PathBuf], configured: Option<&String>| {
        if paths.is_empty() {
            if let Some(c) = configured {
                cmd.arg(name).arg(c);
            }
        } else {
            for g in paths {
                cmd.arg(name).arg(g);
            }
        }
    };
    flag("--claude-dir", &given.claude_dirs, None);
    flag("--codex-dir", &given.codex_dirs, None);
    flag("--cursor-db", &given.cursor_dbs, sources.cursor_db.as_ref());
    flag(
        "--opencode-dir",
        &given.opencode_dirs,
        sources.opencode_dir.as_ref(),
    );
    flag(
        "--gemini-dir",
        &given.gemini_dirs,
        sources.gemini_dir.as_ref(),
    );
    if let Some(dir) = &sources.claude_config_dir {
        cmd.env("CLAUDE_CONFIG_DIR", dir);
    }
    if let Some(dir) = &sources.codex_home {
        cmd.env("CODEX_HOME", dir);
    }
    if std::env::var_os("AIX_LOG").is_none() {
        cmd.env("AIX_LOG", "warn");
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| VerifyError::ScanSpawn {
            program: program.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(VerifyError::ScanFailed {
            program,
            status: out.status.to_string(),
        });
    }
    let mut figures = Vec::new();
    for (i, line) in out.stdout.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let f: SessionFigures =
            serde_json::from_slice(line).map_err(|_| VerifyError::ScanOutput {
                program: program.clone(),
                line: i + 1,
            })?;
        figures.push(f);
    }
    Ok(figures)
}

/// The report of `providers`: each source session's figures against its ledger row.
fn compare(
    providers: &[Provider],
    source: &[SessionFigures],
    ledger: &LedgerFigures,
) -> VerifyReport {
    let mut reports = Vec::new();
    for provider in providers {
        let name = provider.as_str();
        let mut report = ProviderReport {
            provider: name.to_owned(),
            sessions: 0,
            matched: 0,
            mismatched: Vec::new(),
            only_in_ledger: Vec::new(),
            ledger_sessions: 0,
            dangling_lineage: ledger.dangling.get(name).cloned().unwrap_or_default(),
        };
        let mut seen = std::collections::HashSet::new();
        for f in source.iter().filter(|f| f.provider == name) {
            report.sessions += 1;
            seen.insert(f.session_id.as_str());
            let before = report.mismatched.len();
            compare_session(f, ledger, &mut report.mismatched);
            if report.mismatched.len() == before {
                report.matched += 1;
            }
        }
        for ((p, id), s) in &ledger.sessions {
            if p != name {
                continue;
            }
            report.ledger_sessions += 1;
            if !seen.contains(id.as_str()) {
                report.only_in_ledger.push(LedgerOnly {
                    label: s.label.clone(),
                    source_session_id: id.clone(),
                });
            }
        }
        reports.push(report);
    }
    VerifyReport { providers: reports }
}

fn compare_session(f: &SessionFigures, ledger: &LedgerFigures, out: &mut Vec<Mismatch>) {
    let label = ledger.label_of(&f.provider, &f.session_id);
    let mut differ = |field: &str, source: Value, held: Value| {
        if source != held {
            out.push(Mismatch {
                label: label.clone(),
                source_session_id: f.session_id.clone(),
                field: field.to_owned(),
                source,
                ledger: held,
            });
        }
    };
    let Some(l) = ledger
        .sessions
        .get(&(f.provider.clone(), f.session_id.clone()))
    else {
        differ("session", Value::from("present"), Value::Null);
        return;
    };
    for (field, s, h) in [
        ("turns", f.turns, l.turns),
        ("messages", f.messages, l.messages),
        ("tool_calls", f.tool_calls, l.tool_calls),
        ("spawn_links", f.spawn_links, l.spawn_links),
    ] {
        differ(field, s.into(), h.into());
    }
    let source_tokens = [
        f.input_tokens,
        f.output_tokens,
        f.cached_input_tokens,
        f.cache_write_tokens,
        f.reasoning_tokens,
        f.total_tokens,
    ];
    for (i, field) in [
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "total_tokens",
    ]
    .into_iter()
    .enumerate()
    {
        differ(field, source_tokens[i].into(), l.tokens[i].into());
    }
    differ("is_subagent", f.is_subagent.into(), l.is_subagent.into());
    let parent = f
        .parent_session_id
        .as_deref()
        .map(|p| ledger.label_of(&f.provider, p));
    differ(
        "parent_session_label",
        parent.into(),
        l.parent_session_label.clone().into(),
    );
    // The spawning call's row lives in the parent session (item rule 9).
    let spawn = f.spawn_tool_call_id.as_deref().map(|spawn| {
        let owner = f.parent_session_id.as_deref().unwrap_or(&f.session_id);
        scoped_id(IdKind::Tool, SOURCE, &f.provider, owner, spawn)
    });
    differ(
        "spawn_tool_call_id",
        spawn.into(),
        l.spawn_tool_call_id.clone().into(),
    );
}

/// The human output: a table per provider, then every mismatch, then the sessions only the
/// ledger holds.
fn render(report: &VerifyReport) -> String {
    let rows: Vec<Vec<String>> = report
        .providers
        .iter()
        .map(|p| {
            let sessions_off: std::collections::HashSet<&str> = p
                .mismatched
                .iter()
                .map(|m| m.source_session_id.as_str())
                .collect();
            vec![
                p.provider.clone(),
                p.sessions.to_string(),
                p.matched.to_string(),
                sessions_off.len().to_string(),
                p.only_in_ledger.len().to_string(),
                p.ledger_sessions.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "PROVIDER",
            "SESSIONS",
            "MATCHED",
            "MISMATCHED",
            "ONLY IN LEDGER",
            "IN LEDGER",
        ],
        &rows,
    );
    let mismatches: Vec<Vec<String>> = report
        .providers
        .iter()
        .flat_map(|p| {
            p.mismatched.iter().map(|m| {
                vec![
                    p.provider.clone(),
                    m.label.clone(),
                    m.field.clone(),
                    m.source.to_string(),
                    m.ledger.to_string(),
                ]
            })
        })
        .collect();
    if mismatches.is_empty() {
        out.push_str("\n\nno mismatch: the ledger holds what the sources hold");
    } else {
        out.push_str(&format!("\n\n{} mismatches:\n", mismatches.len()));
        out.push_str(&table(
            &["PROVIDER", "SESSION", "FIELD", "SOURCE", "LEDGER"],
            &mismatches,
        ));
    }
    let only: Vec<Vec<String>> = report
        .providers
        .iter()
        .flat_map(|p| {
            p.only_in_ledger
                .iter()
                .map(|o| vec![p.provider.clone(), o.label.clone()])
        })
        .collect();
    if !only.is_empty() {
        out.push_str(&format!(
            "\n\n{} sessions only in the ledger (their source is gone; the ledger kept them):\n",
            only.len()
        ));
        out.push_str(&table(&["PROVIDER", "SESSION"], &only));
    }
    let dangling: Vec<Vec<String>> = report
        .providers
        .iter()
        .flat_map(|p| {
            p.dangling_lineage.iter().map(|d| {
                vec![
                    p.provider.clone(),
                    d.label.clone(),
                    d.field.clone(),
                    d.names.clone(),
                ]
            })
        })
        .collect();
    if !dangling.is_empty() {
        out.push_str(&format!(
            "\n\n{} lineage links name nothing the ledger holds:\n",
            dangling.len()
        ));
        out.push_str(&table(
            &["PROVIDER", "SESSION", "FIELD", "NAMES"],
            &dangling,
        ));
    }
    out
}
