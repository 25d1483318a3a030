//! The runtime database (`nexus.db`) behind one thread: rusqlite is blocking, so the async
//! control plane sends closures to a dedicated thread that owns the only connection, and awaits
//! their results. One writer per SQLite file (ARCHITECTURE.md).

use std::path::Path;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::error::ControlError;

type StoreJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// A cloneable handle to the store thread. The thread ends when the last handle is dropped,
/// after finishing the calls already queued.
#[derive(Clone)]
pub struct NexusStore {
    /// Unbounded so that the supervisor can queue writes without waiting; calls are applied in
    /// the order they were queued. Writes are small and rate-limited by their producers.
    tx: mpsc::UnboundedSender<StoreJob>,
}

impl std::fmt::Debug for NexusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexusStore").finish_non_exhaustive()
    }
}

impl NexusStore {
    /// Moves `conn` to a new thread.
    ///
    /// Errors: `io_failed` when the thread cannot be spawned.
    pub fn spawn(mut conn: Connection) -> Result<NexusStore, ControlError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<StoreJob>();
        std::thread::Builder::new()
            .name("nexus-store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut conn);
                }
            })
            .map_err(ControlError::io(Path::new("nexus-store thread")))?;
        Ok(NexusStore { tx })
    }

    /// Runs `f` on the store thread.
    ///
    /// Errors: `f`'s own, or `store_closed` when the thread is gone. Cancellation: dropping the
    /// future does not undo a call already started; `f` runs to completion.
    pub async fn call<R, F>(&self, f: F) -> Result<R, ControlError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, ControlError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: StoreJob = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.tx.send(job).map_err(|_| ControlError::StoreClosed)?;
        rx.await.map_err(|_| ControlError::StoreClosed)?
    }

    /// Queues `f` without waiting for it; its error is logged with `what`. Ordered with every
    /// other call on this store.
    pub fn submit<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&mut Connection) -> Result<(), ControlError> + Send + 'static,
    {
        let job: StoreJob = Box::new(move |conn| {
            if let Err(e) = f(conn) {
                tracing::warn!(what, error_code = %e.code(), error = %e, "runtime store write failed");
            }
        });
        if self.tx.send(job).is_err() {
            tracing::warn!(
                what,
                error_code = "store_closed",
                "runtime store write dropped"
            );
        }
    }
}

/// Milliseconds since the Unix epoch, the time unit of every table.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
