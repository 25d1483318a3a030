//! `[replica]` of `config.toml`: the shared PostgreSQL this ledger replicates into.

use std::path::Path;

use serde::Deserialize;

use super::keys::unknown;
use crate::control::error::ControlError;
use crate::replica::ReplicaSettings;

/// `[replica]`: the shared PostgreSQL this ledger replicates into (`nex daemon`,
/// `nex replica sync`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReplicaSection {
    /// A secret (it may hold a password): never logged or printed.
    pub url: Option<String>,
    pub machine: Option<String>,
}

/// Keys of `[replica]`.
const REPLICA_KEYS: &[&str] = &["url", "machine"];

/// The keys of a `[replica]` table.
pub(super) fn check_keys(section: &toml::Table) -> Result<(), String> {
    for key in section.keys() {
        if !REPLICA_KEYS.contains(&key.as_str()) {
            return Err(unknown(key, "replica.", REPLICA_KEYS));
        }
    }
    Ok(())
}

impl ReplicaSection {
    /// The replication settings (`NEX_REPLICA_URL` over `url`); `None`: no replication.
    ///
    /// Errors: `config_invalid` naming `config_file`, with the replica's own code.
    pub(super) fn resolve(
        &self,
        config_file: &Path,
    ) -> Result<Option<ReplicaSettings>, ControlError> {
        ReplicaSettings::resolve(self.url.as_deref(), self.machine.as_deref()).map_err(|e| {
            ControlError::ConfigInvalid {
                path: config_file.to_path_buf(),
                detail: format!("{e} [{}]", e.code()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::read_config;

    #[test]
    fn replica_keys_are_checked() {
        let e = read_config("[replica]\nmachin = \"x\"\n").unwrap_err();
        assert!(e.contains("did you mean `replica.machine`?"), "{e}");
        read_config("[replica]\nurl = \"postgres://h/db\"\nmachine = \"m\"\n").unwrap();
    }
}
