//! Exclusive ownership of one `NEX_HOME`'s import orchestration: a daemon and an in-process
//! CLI run both hold `run/nex.lock`, so only one of them recovers jobs, reaps orphans and
//! spawns workers at a time. The lock is released when the holder exits, however it exits.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::ControlError;

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct RuntimeLock {
    _file: File,
}

impl RuntimeLock {
    /// Takes the lock without waiting: `Ok(None)` when another process holds it.
    ///
    /// Errors: `io_failed` when the lock file cannot be opened.
    pub fn try_acquire(run_dir: &Path) -> Result<Option<RuntimeLock>, ControlError> {
        super::server::ensure_private_dir(run_dir)?;
        let path = run_dir.join("nex.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(ControlError::io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RuntimeLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(ControlError::Io { path, source: e }),
        }
    }
}
