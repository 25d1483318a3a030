//! `nex daemon [--no-import]`: the daemon in the foreground (systemd/launchd friendly). Serves
//! the control socket, runs the tail and backfill jobs, and on SIGINT/SIGTERM (or `nex daemon
//! stop`, the socket's `shutdown`) stops every worker, drains and commits what they sent, marks
//! runs and jobs, and exits 0 within `shutdown_grace`. The next start resumes interrupted jobs.
//!
//! `nex daemon stop [--json]`: asks the running daemon to stop and waits until it has exited.

use std::process::ExitCode;

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use super::control_ctx::{ControlArgs, fail, outln, print_json, runtime, shutdown_signal};
use crate::control::api::Stopping;
use crate::control::lock::RuntimeLock;
use crate::control::{ControlClient, ControlError, ControlServer, Host, HostMode, Request};

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DaemonArgs {
    #[command(subcommand)]
    pub action: Option<DaemonAction>,
    #[command(flatten)]
    pub control: ControlArgs,
    /// Rollback switch: keep the daemon up without any import orchestration (same as
    /// `import.enabled = false` in config.toml). `nex import apply|replay` stay usable.
    #[arg(long)]
    pub no_import: bool,
    #[command(flatten)]
    pub worker: super::control_ctx::WorkerArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DaemonAction {
    /// Stop the running daemon gracefully (as SIGTERM does) and wait until it has exited.
    Stop(StopArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Print `{"stopped":true,"pid":N}` once the daemon has exited.
    #[arg(long)]
    pub json: bool,
}

/// `{"stopped":true,"pid":N}` of `nex daemon stop --json`.
#[derive(Debug, serde::Serialize)]
struct StopOutput {
    stopped: bool,
    pid: u32,
}

/// Longest wait for the daemon to exit: its own `shutdown_grace` bound plus slack.
const STOP_WAIT_SLACK: Duration = Duration::from_secs(5);

pub fn run(args: DaemonArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    if let Some(DaemonAction::Stop(stop_args)) = args.action {
        return match rt.block_on(stop(stop_args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn serve(args: DaemonArgs) -> Result<(), ControlError> {
    let settings = args
        .control
        .with_worker(&args.worker)
        .settings(args.no_import)?;
    let socket = settings.paths.socket.clone();
    // The socket first: a second daemon fails before touching anything.
    let server = ControlServer::bind(&socket).await?;
    let host = match Host::start(settings, HostMode::Daemon).await {
        Ok(host) => host,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            return Err(e);
        }
    };
    tracing::info!(
        pid = std::process::id(),
        socket = %socket.display(),
        ledger = %host.settings.paths.ledger.display(),
        import_enabled = host.settings.import_enabled,
        "daemon started"
    );
    let replication = start_replication(&host);
    let server = server.with_shutdown(host.shutdown.clone());
    let stop_serving = CancellationToken::new();
    let serving = tokio::spawn(server.serve(
        host.handle.clone(),
        Some(host.bus.clone()),
        stop_serving.clone(),
    ));
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutdown requested"),
        _ = host.shutdown.cancelled() => {}
    }
    stop_serving.cancel();
    let _ = serving.await;
    if let Some((task, stop)) = replication {
        stop.cancel();
        let _ = task.await;
    }
    host.stop().await;
    tracing::info!("daemon stopped");
    Ok(())
}

/// The replicator of `[replica]`: its own task, its own connections, never in the import's way
/// (see `replica::replicator`). Without a replica, the task that keeps the change log empty.
fn start_replication(host: &Host) -> Option<(tokio::task::JoinHandle<()>, CancellationToken)> {
    let paths = &host.settings.paths;
    let Some(replica) = host.settings.replica.clone() else {
        let stop = CancellationToken::new();
        let pruner = crate::replica::replicator::prune_unreplicated(
            paths.ledger.clone(),
            crate::replica::replicator::PRUNE_UNREPLICATED_EVERY,
            stop.clone(),
        );
        return Some((tokio::spawn(pruner), stop));
    };
    let replicator = crate::replica::Replicator::new(
        replica,
        paths.ledger.clone(),
        crate::replica::StateFile::in_dir(&paths.run_dir),
    );
    let stop = CancellationToken::new();
    Some((tokio::spawn(replicator.run(stop.clone())), stop))
}

/// Sends `shutdown` and waits until the daemon has released the runtime lock (its last act
/// before exiting) and closed its socket.
///
/// Errors: `daemon_not_running` when no daemon listens; `shutdown_timeout` when it is still
/// up after its `shutdown_grace` plus 5 s.
async fn stop(args: StopArgs) -> Result<(), ControlError> {
    let settings = args.control.settings(false)?;
    let paths = settings.paths.clone();
    let mut client = ControlClient::connect(&paths.socket)
        .await?
        .ok_or_else(|| ControlError::DaemonNotRunning(paths.socket.clone()))?;
    let stopping: Stopping = client.request(&Request::Shutdown).await?.into_result()?;
    drop(client);
    let deadline = Instant::now() + settings.timings.shutdown_grace + STOP_WAIT_SLACK;
    loop {
        // The daemon holds `run/nex.lock` until its stores are closed; taking it here (and
        // dropping it at once) proves the daemon is done.
        let released = RuntimeLock::try_acquire(&paths.run_dir)?.is_some();
        if released && ControlClient::connect(&paths.socket).await?.is_none() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(ControlError::ShutdownTimeout(stopping.pid));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if args.json {
        print_json(&StopOutput {
            stopped: true,
            pid: stopping.pid,
        });
    } else {
        outln!("daemon stopped (pid {})", stopping.pid);
    }
    Ok(())
}
