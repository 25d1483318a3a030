//! `nex sessions export`: a whole session as JSON or Markdown, to stdout or a private file.

use std::path::Path;
use std::process::ExitCode;

use super::{ExportArgs, ExportFormat, Failure, NO_SESSIONS_YET, is_first_run, open};
use crate::cli::control_ctx::outln;
use crate::control::ControlError;
use crate::query::QueryError;
use crate::query::sessions::resolve_label;

pub fn export(args: ExportArgs) -> ExitCode {
    match export_session(&args) {
        Ok(None) => {
            outln!("{NO_SESSIONS_YET}");
            ExitCode::SUCCESS
        }
        Ok(Some(())) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Writes the export; `None` on a first run (nothing to export).
fn export_session(args: &ExportArgs) -> Result<Option<()>, Failure> {
    use crate::query::export::{ExportOptions, export_session, to_markdown};
    let conn = open(&args.ledger)?;
    if is_first_run(conn.as_ref())? {
        return Ok(None);
    }
    let Some(conn) = conn else {
        return Ok(None);
    };
    let label = resolve_label(&conn, &args.label)?;
    let options = ExportOptions {
        max_tool_chars: args.max_tool_chars,
        redactor: args.redact.then(|| {
            let home = std::env::var("HOME").ok();
            crate::query::redact::Redactor::new(home.as_deref())
        }),
    };
    let Some(doc) = export_session(&conn, &label, &options)? else {
        return Err(QueryError::SessionNotFound(args.label.clone()).into());
    };
    let mut text = match args.format {
        // Plain data: serialisation cannot fail.
        ExportFormat::Json => serde_json::to_string_pretty(&doc).expect("export serialises"),
        ExportFormat::Md => to_markdown(&doc),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match &args.output {
        Some(path) => write_private(path, text.as_bytes()).map_err(ControlError::io(path))?,
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed stdout (`| head`) is not an error.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
    }
    Ok(Some(()))
}

/// Writes `bytes` to `path`, created (or truncated) with mode 0600: an export holds a
/// conversation.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
