//! `nex replica status`: where the replica is (host only), which machine this ledger is, how
//! far behind the replica is, and what the last replicator saw.

use std::path::Path;

use serde::Serialize;

use super::apply;
use super::changes::ChangeReader;
use super::error::ReplicaError;
use super::pg;
use super::settings::ReplicaSettings;
use super::state::{ErrorState, StateFile};

/// The status object (`--json`); fields are only ever added.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// `host[:port][/db]` of the URL: never the user or the password.
    pub url_host: Option<String>,
    pub machine: Option<String>,
    pub enabled: bool,
    /// Changes in the ledger after the replica's watermark (null: the replica or the ledger
    /// could not be read).
    pub lag_changes: Option<i64>,
    /// Age of the oldest change not yet in the replica (0 when current).
    pub lag_ms: Option<i64>,
    /// Epoch ms of the last batch committed (or check that found the replica current).
    pub last_ok_at: Option<i64>,
    /// The last error when nothing has succeeded since; this command's own (the replica
    /// unreachable now) first.
    pub last_error: Option<ErrorState>,
}

/// Reads the status. Never fails: what cannot be read is null, and why is `last_error`.
pub async fn status(
    settings: Option<&ReplicaSettings>,
    ledger: &Path,
    state: &StateFile,
) -> ReplicaStatus {
    let stored = state.load();
    let Some(settings) = settings else {
        return ReplicaStatus {
            url_host: None,
            machine: None,
            enabled: false,
            lag_changes: None,
            lag_ms: None,
            last_ok_at: stored.last_ok_at,
            last_error: None,
        };
    };
    let mut out = ReplicaStatus {
        url_host: Some(settings.url.host()),
        machine: Some(settings.machine.clone()),
        enabled: true,
        lag_changes: None,
        lag_ms: None,
        last_ok_at: stored.last_ok_at,
        last_error: stored.current_error().cloned(),
    };
    match lag(settings, ledger).await {
        Ok((changes, ms)) => {
            out.lag_changes = Some(changes);
            out.lag_ms = Some(ms);
        }
        Err(e) => {
            out.last_error = Some(ErrorState {
                code: e.code().as_str().to_owned(),
                message: e.to_string(),
                at: crate::import::system_now_ms(),
            });
        }
    }
    out
}

/// `(changes, ms)` behind.
async fn lag(settings: &ReplicaSettings, ledger: &Path) -> Result<(i64, i64), ReplicaError> {
    let client = pg::connect(&settings.url).await?;
    // A replica nex never wrote to has no watermark table yet: everything is behind.
    let watermark = match apply::watermark(&client, &settings.url, &settings.machine).await {
        Ok(w) => w,
        Err(ReplicaError::Write(_)) => 0,
        Err(e) => return Err(e),
    };
    let ledger = ledger.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let reader = ChangeReader::open(&ledger)?;
        let head = reader.head()?;
        let first = reader.first_after(watermark)?;
        let now = crate::import::system_now_ms();
        Ok((
            (head - watermark).max(0),
            first.map_or(0, |at| (now - at).max(0)),
        ))
    })
    .await
    .map_err(|_| ReplicaError::Read("the ledger reader thread failed".into()))?
}
