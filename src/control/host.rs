//! A control plane ready to run: the runtime lock, `nexus.db` behind its store thread, the one
//! ledger writer of `agents.db`, the real pipeline and cursor source, and the supervisor. The
//! daemon and the in-process CLI commands (`backfill`/`tail` without a daemon) both start one,
//! so they behave the same.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::config::ControlSettings;
use super::error::ControlError;
use super::ledger_pipeline::{LedgerCursors, LedgerPipeline};
use super::lock::RuntimeLock;
use super::run::RunDeps;
use super::server::create_private_dir;
use super::store::NexusStore;
use super::supervisor::{ControlHandle, HostMode, Supervisor};
use crate::pipeline::Bus;
use crate::pipeline::writer::WriterConfig;
use crate::pipeline::{LedgerWriter, PipelineConfig};

/// A started control plane. Stop it with [`Host::stop`] (or by cancelling
/// [`Host::shutdown`] and then calling `stop`).
pub struct Host {
    pub handle: ControlHandle,
    /// Cancelling it starts the graceful shutdown of every run.
    pub shutdown: CancellationToken,
    pub bus: Bus,
    pub settings: Arc<ControlSettings>,
    task: tokio::task::JoinHandle<()>,
    writer: LedgerWriter,
    _lock: RuntimeLock,
}

impl Host {
    /// Takes the runtime lock and starts everything.
    ///
    /// Errors: `control_busy` when another process holds the lock; the ledger's codes when a
    /// database cannot be opened.
    pub async fn start(settings: ControlSettings, mode: HostMode) -> Result<Host, ControlError> {
        let paths = settings.paths.clone();
        create_private_dir(&paths.home)?;
        // Held by another daemon (whose socket a daemon binds first) or by an in-process
        // `backfill`/`tail`.
        let lock = RuntimeLock::try_acquire(&paths.run_dir)?
            .ok_or_else(|| ControlError::Busy(paths.home.clone()))?;
        let (nexus, agents) = {
            let (n, a) = (paths.nexus.clone(), paths.ledger.clone());
            let allow_symlink = settings.allow_symlinked_ledger;
            tokio::task::spawn_blocking(move || {
                Ok::<_, ControlError>((
                    crate::ledger::open_nexus(&n)?,
                    crate::ledger::open_agents_allowing_symlink(&a, allow_symlink)?,
                ))
            })
            .await
            .map_err(|_| ControlError::StoreClosed)??
        };
        let store = NexusStore::spawn(nexus)?;
        let writer = LedgerWriter::spawn(agents, WriterConfig::default())
            .map_err(ControlError::io(&paths.ledger))?;
        // One bus: the runs' pipelines publish their frame events on it, the supervisor the
        // runs' lifecycle and the jobs'.
        let bus = crate::pipeline::events::bus(crate::pipeline::events::DEFAULT_BUS_CAPACITY);
        let pipeline =
            LedgerPipeline::new(writer.handle(), PipelineConfig::default()).with_bus(bus.clone());
        let cursors = LedgerCursors {
            path: paths.ledger.clone(),
        };
        let settings = Arc::new(settings);
        let deps = RunDeps {
            settings: settings.clone(),
            pipeline: Arc::new(pipeline),
            cursors: Arc::new(cursors),
        };
        let shutdown = CancellationToken::new();
        let (handle, task) =
            Supervisor::start(deps, store, bus.clone(), mode, shutdown.clone()).await?;
        Ok(Host {
            handle,
            shutdown,
            bus,
            settings,
            task,
            writer,
            _lock: lock,
        })
    }

    /// Graceful stop: every run stopped and drained (within `shutdown_grace`), jobs and runs
    /// marked, the ledger writer joined after its last batch.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if self.task.await.is_err() {
            tracing::error!(error_code = "internal_panic", "supervisor task panicked");
        }
        drop(self.handle);
        self.writer.shutdown().await;
    }
}
