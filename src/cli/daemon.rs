//! `nex daemon [--no-import]`: the daemon in the foreground (systemd/launchd friendly). Serves
//! the control socket, runs the tail and backfill jobs, and on SIGINT/SIGTERM stops every
//! worker, drains and commits what they sent, marks runs and jobs, and exits 0 within
//! `shutdown_grace`. The next start resumes interrupted jobs.

use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::control_ctx::{ControlArgs, fail, runtime, shutdown_signal};
use crate::control::{ControlError, ControlServer, Host, HostMode};

#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Rollback switch: keep the daemon up without any import orchestration (same as
    /// `import.enabled = false` in config.toml). `nex import apply|replay` stay usable.
    #[arg(long)]
    pub no_import: bool,
}

pub fn run(args: DaemonArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn serve(args: DaemonArgs) -> Result<(), ControlError> {
    let settings = args.control.settings(args.no_import)?;
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
    host.stop().await;
    tracing::info!("daemon stopped");
    Ok(())
}
