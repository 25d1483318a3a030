//! `nex replica status [--json]` and `nex replica sync [--json]`: the shared PostgreSQL replica
//! of the ledger (configured by `[replica]` in config.toml or `NEX_REPLICA_URL`). The URL's
//! credentials are never printed: only its host.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::control_ctx::{ControlArgs, errln, fail, outln, print_json, runtime, table, when};
use crate::control::ControlSettings;
use crate::replica::{ReplicaError, Replicator, StateFile, reports};

#[derive(Debug, Clone, Subcommand)]
pub enum ReplicaCommand {
    /// Where the replica is (host only), this ledger's machine name, the lag, the last error.
    Status(ReplicaArgs),
    /// Catch the replica up with every change committed so far, then exit (no daemon needed;
    /// safe while a daemon replicates too).
    Sync(ReplicaArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReplicaArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn status(args: ReplicaArgs) -> ExitCode {
    let settings = match args.control.settings(false) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let state = StateFile::in_dir(&settings.paths.run_dir);
    let st = rt.block_on(crate::replica::status::status(
        settings.replica.as_ref(),
        &settings.paths.ledger,
        &state,
    ));
    if args.json {
        print_json(&st);
        return ExitCode::SUCCESS;
    }
    if !st.enabled {
        outln!("replica: not configured ([replica] url in config.toml, or NEX_REPLICA_URL)");
        return ExitCode::SUCCESS;
    }
    let or_unknown = |v: Option<i64>| v.map_or("unknown".to_owned(), |v| v.to_string());
    outln!("replica:   {}", st.url_host.unwrap_or_default());
    outln!("machine:   {}", st.machine.unwrap_or_default());
    outln!(
        "lag:       {} changes, {} ms",
        or_unknown(st.lag_changes),
        or_unknown(st.lag_ms)
    );
    outln!("last ok:   {}", when(st.last_ok_at));
    if let Some(e) = st.last_error {
        outln!("error:     {} [{}]", e.message, e.code);
    }
    ExitCode::SUCCESS
}

pub fn sync(args: ReplicaArgs) -> ExitCode {
    let settings = match args.control.settings(false) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(sync_once(&settings)) {
        Ok(report) => {
            if args.json {
                print_json(&report);
            } else {
                outln!(
                    "replica current: {} changes in {} batches ({} rows), watermark {}",
                    report.changes,
                    report.batches,
                    report.rows,
                    report.watermark
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("nex: {e} [{}]", e.code());
            ExitCode::FAILURE
        }
    }
}

async fn sync_once(settings: &ControlSettings) -> Result<crate::replica::SyncReport, ReplicaError> {
    let replica = settings
        .replica
        .clone()
        .ok_or(ReplicaError::NotConfigured)?;
    // The ledger as every nex command opens it: created and migrated (its change log) if
    // needed, then closed; the replicator reads it through its own read-only connection.
    let ledger = settings.paths.ledger.clone();
    let allow = settings.allow_symlinked_ledger;
    tokio::task::spawn_blocking(move || {
        crate::ledger::open_agents_allowing_symlink(&ledger, allow).map(drop)
    })
    .await
    .map_err(|_| ReplicaError::Read("the ledger thread failed".into()))?
    .map_err(|e| ReplicaError::Read(e.to_string()))?;
    Replicator::new(
        replica,
        settings.paths.ledger.clone(),
        StateFile::in_dir(&settings.paths.run_dir),
    )
    .sync()
    .await
}

/// `nex usage --replica [--by …] [filters] [--json]`: `nex usage`'s report over every machine.
pub fn usage(args: &super::usage::UsageArgs) -> ExitCode {
    let settings = match args.ledger.control.settings(false) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let prices = match super::usage::prices(args) {
        Ok(p) => p,
        Err(e) => return e.report(),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        let replica = settings
            .replica
            .clone()
            .ok_or(ReplicaError::NotConfigured)?;
        let client = crate::replica::pg::connect(&replica.url).await?;
        let filters = super::usage::filters(args)?;
        reports::usage(&client, &replica.url, &filters, args.by, &prices).await
    });
    match result {
        Ok(report) => {
            if args.json {
                print_json(&report);
            } else {
                super::usage::print_rows(&report, args.by);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("nex: {e} [{}]", e.code());
            ExitCode::FAILURE
        }
    }
}

/// `nex sessions list --replica --by …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionsBy {
    Machine,
}

/// `nex sessions list --replica [--by machine] [--provider P] [--limit N] [--json]`.
pub fn sessions_list(args: &super::sessions::ListArgs) -> ExitCode {
    let settings = match args.ledger.control.settings(false) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let Some(replica) = settings.replica.clone() else {
        let e = ReplicaError::NotConfigured;
        errln!("nex: {e} [{}]", e.code());
        return ExitCode::FAILURE;
    };
    let result = rt.block_on(async {
        let client = crate::replica::pg::connect(&replica.url).await?;
        if args.by == Some(SessionsBy::Machine) {
            let rows = reports::sessions_by_machine(&client, &replica.url).await?;
            if args.json {
                print_json(&rows);
            } else {
                let body: Vec<Vec<String>> = rows
                    .iter()
                    .map(|m| {
                        vec![
                            m.machine.clone(),
                            m.sessions.to_string(),
                            m.turns.to_string(),
                            when(m.updated_at),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    table(&["MACHINE", "SESSIONS", "TURNS", "UPDATED"], &body)
                );
            }
            return Ok(());
        }
        let rows =
            reports::sessions(&client, &replica.url, args.provider.as_deref(), args.limit).await?;
        if args.json {
            print_json(&rows);
        } else if rows.is_empty() {
            outln!("no sessions in the replica");
        } else {
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|s| {
                    vec![
                        s.machine.clone(),
                        s.label.clone(),
                        s.provider.clone().unwrap_or_default(),
                        s.turns.to_string(),
                        super::sessions::session_kind(
                            s.is_subagent,
                            s.parent_session_label.is_some(),
                        )
                        .to_owned(),
                        when(Some(s.updated_at)),
                    ]
                })
                .collect();
            outln!(
                "{}",
                table(
                    &["MACHINE", "LABEL", "PROVIDER", "TURNS", "KIND", "UPDATED"],
                    &body
                )
            );
        }
        Ok::<(), ReplicaError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("nex: {e} [{}]", e.code());
            ExitCode::FAILURE
        }
    }
}
