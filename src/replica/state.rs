//! What the last replicator (the daemon's, or `nex replica sync`) saw: when it last committed
//! or found the replica current, and its last error. Kept in `$NEX_HOME/run/replica.json` so
//! that `nex replica status` can show it without asking the daemon.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ReplicaError;

/// An error as status shows it: code and (redacted) message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorState {
    pub code: String,
    pub message: String,
    /// Epoch ms.
    pub at: i64,
}

/// The contents of `replica.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    /// Epoch ms of the last batch committed, or of the last check that found nothing to send.
    pub last_ok_at: Option<i64>,
    pub last_error: Option<ErrorState>,
}

impl ReplicaState {
    /// The last error, when nothing has succeeded since.
    pub fn current_error(&self) -> Option<&ErrorState> {
        self.last_error
            .as_ref()
            .filter(|e| self.last_ok_at.is_none_or(|ok| e.at > ok))
    }
}

/// `replica.json` in `run_dir`.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn in_dir(run_dir: &Path) -> StateFile {
        StateFile {
            path: run_dir.join("replica.json"),
        }
    }

    /// The stored state; absent or unreadable: the empty state.
    pub fn load(&self) -> ReplicaState {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Replaces the file atomically (a reader sees the old or the new state). Failures are
    /// logged, not returned: status is a convenience, replication goes on without it.
    pub fn store(&self, state: &ReplicaState) {
        let write = || -> std::io::Result<()> {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            // `run/` is private like the rest of NEX_HOME (0700 when nex creates it).
            if let Some(home) = dir.parent() {
                crate::control::server::create_private_dir(home)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            crate::control::server::create_private_dir(dir)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let tmp = tempfile::NamedTempFile::new_in(dir)?;
            serde_json::to_writer(&tmp, state).map_err(std::io::Error::other)?;
            tmp.persist(&self.path).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(error = %e, path = %self.path.display(), "cannot write the replica state");
        }
    }

    /// Records a success at `now_ms`.
    pub fn ok(&self, now_ms: i64) {
        let mut s = self.load();
        s.last_ok_at = Some(now_ms);
        self.store(&s);
    }

    /// Records `error` at `now_ms`.
    pub fn error(&self, error: &ReplicaError, now_ms: i64) {
        let mut s = self.load();
        s.last_error = Some(ErrorState {
            code: error.code().as_str().to_owned(),
            message: error.to_string(),
            at: now_ms,
        });
        self.store(&s);
    }
}
