//! `nex import apply [--ledger PATH] [--persona ID] [FILE|-]`: applies service-level requests
//! from JSON Lines, one request per line, each in its own transaction, and prints one JSON line
//! per request: the response, or `{"ok":false,"error":{"code","message"}}`.
//!
//! A line with `uploadId` (or `upload_id`) is a chunk request, any other object an import
//! request. Every input line gets exactly one response line, so responses match inputs by
//! position: a blank line gets `request_empty`. Processing continues after a failed line; the
//! command then exits 1 (`requests_failed`), as it does when the input or output cannot be
//! read or written, or the ledger cannot be opened.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use clap::Args;
use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::import::{self, ImportError, ImportOptions};
use crate::ledger::{self, LedgerError};
use crate::protocol::{ChunkRequest, Code, ImportRequest};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Agents ledger (default: $NEX_LEDGER, else $NEX_HOME/agents.db, else ~/.nex/agents.db);
    /// created on first use.
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Open the ledger even when it is a symbolic link (refused otherwise).
    #[arg(long)]
    pub allow_symlinked_ledger: bool,
    /// Persona for every request (overrides the requests' personaId; default: theirs, else
    /// `main`).
    #[arg(long, value_name = "ID")]
    pub persona: Option<String>,
    /// JSON Lines input; `-` or absent reads stdin.
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
}

/// Why `apply` stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot open the ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("cannot read {path}: {source}")]
    Input {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
    /// Every line was answered; some answers are errors.
    #[error("{failed} of {total} request lines failed (see their response lines)")]
    LinesFailed { failed: u64, total: u64 },
}

impl ApplyError {
    pub fn code(&self) -> Code {
        match self {
            ApplyError::Ledger(e) => e.code(),
            ApplyError::Input { .. } => Code::InputReadFailed,
            ApplyError::Output(_) => Code::OutputWriteFailed,
            ApplyError::LinesFailed { .. } => Code::RequestsFailed,
        }
    }
}

/// Opens the ledger and input, then applies every line (see the module doc).
pub fn run(args: &ApplyArgs) -> Result<(), ApplyError> {
    let path = args
        .ledger
        .clone()
        .unwrap_or_else(ledger::default_ledger_path);
    let mut conn = ledger::open_agents_allowing_symlink(&path, args.allow_symlinked_ledger)?;
    let opts = ImportOptions {
        persona_id: args.persona.clone().filter(|p| !p.trim().is_empty()),
        ..ImportOptions::default()
    };
    let (name, input): (String, Box<dyn BufRead>) = match &args.input {
        Some(file) if file.as_os_str() != "-" => {
            let name = file.display().to_string();
            let handle = File::open(file).map_err(|source| ApplyError::Input {
                path: name.clone(),
                source,
            })?;
            (name, Box::new(BufReader::new(handle)))
        }
        _ => ("stdin".to_owned(), Box::new(io::stdin().lock())),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    apply_lines(&mut conn, &opts, input, &mut out, &name)
}

/// Applies each line of `input` and writes one response line per input line to `out`.
///
/// Errors: the input or output failed; `requests_failed` when every line was answered and
/// some answers are errors.
pub fn apply_lines(
    conn: &mut Connection,
    opts: &ImportOptions,
    input: impl BufRead,
    out: &mut impl Write,
    input_name: &str,
) -> Result<(), ApplyError> {
    let (mut failed, mut total) = (0u64, 0u64);
    for (index, line) in input.lines().enumerate() {
        let line = line.map_err(|source| ApplyError::Input {
            path: input_name.to_owned(),
            source,
        })?;
        let number = index + 1;
        total += 1;
        let reply = if line.trim().is_empty() {
            Err(LineError::new("request_empty", "line is empty"))
        } else {
            apply_line(conn, opts, &line, number)
        };
        if let Err(failure) = &reply {
            failed += 1;
            tracing::warn!(line = number, error_code = %failure.code, "request failed");
        }
        let json = match reply {
            Ok(value) => value,
            Err(failure) => serde_json::json!({ "ok": false, "error": failure }),
        };
        serde_json::to_writer(&mut *out, &json).map_err(|e| ApplyError::Output(e.into()))?;
        out.write_all(b"\n").map_err(ApplyError::Output)?;
        out.flush().map_err(ApplyError::Output)?;
    }
    if failed > 0 {
        return Err(ApplyError::LinesFailed { failed, total });
    }
    Ok(())
}

/// A failed line as printed.
#[derive(Debug, Serialize)]
struct LineError {
    code: String,
    message: String,
}

impl LineError {
    fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<ImportError> for LineError {
    fn from(err: ImportError) -> Self {
        LineError::new(err.written_code(), err.to_string())
    }
}

/// One request (input line `number`) in its own IMMEDIATE transaction (committed on success,
/// rolled back on error).
///
/// Shape errors are `request_schema_invalid` with the input line and the column where the
/// request stops matching; a request without `source` is one (a wrong `source` is the
/// service's `source_unsupported`). Messages carry positions, never content.
fn apply_line(
    conn: &mut Connection,
    opts: &ImportOptions,
    line: &str,
    number: usize,
) -> Result<Value, LineError> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        LineError::new(
            "request_json_invalid",
            format!(
                "line is not valid JSON (line {number}, column {})",
                e.column()
            ),
        )
    })?;
    let schema = |what: &str| LineError::new("request_schema_invalid", what.to_owned());
    let Some(object) = value.as_object() else {
        return Err(schema(&format!("line {number} is not a JSON object")));
    };
    if !object.contains_key("source") {
        return Err(schema(&format!(
            "request has no `source` (line {number}, column 1)"
        )));
    }
    let is_chunk = object.contains_key("uploadId") || object.contains_key("upload_id");
    // Decoded from the text, not from `value`, so that the error knows its column.
    let schema_err = |e: serde_json::Error| {
        schema(&format!(
            "request does not match the schema (line {number}, column {})",
            e.column()
        ))
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| LineError::from(ImportError::from(e)))?;
    let reply = if is_chunk {
        let req: ChunkRequest = serde_json::from_str(line).map_err(schema_err)?;
        import::chunk(&tx, &req, opts).map(|r| serde_json::to_value(r).unwrap_or_default())
    } else {
        let req: ImportRequest = serde_json::from_str(line).map_err(schema_err)?;
        import::import(&tx, &req, opts).map(|r| serde_json::to_value(r).unwrap_or_default())
    };
    match reply {
        Ok(value) => {
            crate::ledger::search_index::flush(&tx)
                .map_err(|e| LineError::from(ImportError::from(e)))?;
            tx.commit()
                .map_err(|e| LineError::from(ImportError::from(e)))?;
            Ok(value)
        }
        Err(err) => Err(err.into()),
    }
}
