//! Where the replica is and which machine this ledger is: `[replica] url` / `NEX_REPLICA_URL`
//! and `[replica] machine` (default: the host name).
//!
//! The URL is a secret (it may carry a password): [`ReplicaUrl`] has no `Display`, its `Debug`
//! is redacted, and only [`ReplicaUrl::host`] (host, port, database: never the user or the
//! password) is ever shown.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use super::error::ReplicaError;
use super::tls::TlsPolicy;

/// How long a connection attempt may take before `replica_unreachable`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed replica URL (`postgres://…` or libpq `key=value` form).
#[derive(Clone)]
pub struct ReplicaUrl {
    config: tokio_postgres::Config,
    password: Option<String>,
    /// What a TLS connection checks (`sslmode=verify-*`, `sslrootcert`; see `tls`).
    tls: TlsPolicy,
}

impl std::fmt::Debug for ReplicaUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplicaUrl({})", self.host())
    }
}

impl ReplicaUrl {
    /// Errors: `replica_url_invalid` (the message names what is wrong, never the URL).
    pub fn parse(url: &str) -> Result<ReplicaUrl, ReplicaError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(ReplicaError::UrlInvalid("empty"));
        }
        let (url, tls) = super::tls::lift(url);
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|_| {
            ReplicaError::UrlInvalid(
                "not a postgres:// URL or key=value string (sslmode: disable, prefer, require, verify-ca or verify-full)",
            )
        })?;
        if config.get_hosts().is_empty() {
            return Err(ReplicaError::UrlInvalid("no host"));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .filter(|p| !p.is_empty());
        Ok(ReplicaUrl {
            config,
            password,
            tls: tls.unwrap_or_default(),
        })
    }

    /// `host[:port][/dbname]` (a Unix socket directory for a local server): what status shows.
    pub fn host(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let mut out = host;
        if let Some(port) = self.config.get_ports().first().filter(|p| **p != 5432) {
            out.push_str(&format!(":{port}"));
        }
        if let Some(db) = self.config.get_dbname() {
            out.push('/');
            out.push_str(db);
        }
        out
    }

    /// TLS is used when the URL says `sslmode=require`, `verify-ca` or `verify-full` (what is
    /// checked of the server: [`ReplicaUrl::tls_policy`]); otherwise the connection is plain.
    pub fn wants_tls(&self) -> bool {
        self.config.get_ssl_mode() == SslMode::Require
    }

    pub fn tls_policy(&self) -> &TlsPolicy {
        &self.tls
    }

    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// A message from the driver or the server with the password cut out, should it ever
    /// appear (the server does not echo it; this is the second lock on the door).
    pub fn redact(&self, message: &str) -> String {
        match &self.password {
            Some(p) => message.replace(p.as_str(), "***"),
            None => message.to_owned(),
        }
    }
}

/// The replica of one ledger.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    pub url: ReplicaUrl,
    /// This ledger's name in the replica (its rows' `machine`); unique per ledger.
    pub machine: String,
}

impl ReplicaSettings {
    /// `url` from `NEX_REPLICA_URL` > config; `machine` from config > the host name. `Ok(None)`
    /// when no URL is set anywhere (replication off).
    ///
    /// Errors: `replica_url_invalid`, `replica_machine_invalid` (empty, over 200 bytes, or a
    /// control character).
    pub fn resolve(
        config_url: Option<&str>,
        config_machine: Option<&str>,
    ) -> Result<Option<ReplicaSettings>, ReplicaError> {
        let env = std::env::var("NEX_REPLICA_URL")
            .ok()
            .filter(|v| !v.trim().is_empty());
        let Some(url) = env
            .as_deref()
            .or(config_url.filter(|u| !u.trim().is_empty()))
        else {
            return Ok(None);
        };
        let url = ReplicaUrl::parse(url)?;
        let machine = match config_machine {
            Some(m) => m.trim().to_owned(),
            None => host_name()?,
        };
        check_machine(&machine)?;
        Ok(Some(ReplicaSettings { url, machine }))
    }
}

fn check_machine(machine: &str) -> Result<(), ReplicaError> {
    if machine.is_empty() {
        return Err(ReplicaError::MachineInvalid("empty"));
    }
    if machine.len() > 200 {
        return Err(ReplicaError::MachineInvalid("longer than 200 bytes"));
    }
    if machine.chars().any(char::is_control) {
        return Err(ReplicaError::MachineInvalid("holds a control character"));
    }
    // The replica's reports name a session `machine/label`.
    if machine.contains('/') {
        return Err(ReplicaError::MachineInvalid("holds a `/`"));
    }
    Ok(())
}

/// The default machine name.
fn host_name() -> Result<String, ReplicaError> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .ok_or(ReplicaError::MachineInvalid(
            "the host name is unknown: set [replica] machine",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_never_shown_beyond_its_host() {
        let url = ReplicaUrl::parse("postgres://alice:s3cr3t-pw@db.example.org:6543/team").unwrap();
        assert_eq!(url.host(), "db.example.org:6543/team");
        let debug = format!("{url:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("alice"),
            "{debug}"
        );
        assert_eq!(
            url.redact("auth failed for s3cr3t-pw"),
            "auth failed for ***"
        );
        assert!(!url.wants_tls());
        let tls = ReplicaUrl::parse("postgres://u:p@h/db?sslmode=require").unwrap();
        assert!(tls.wants_tls());
        let sock = ReplicaUrl::parse("postgres://u@%2Ftmp%2Fpg/db").unwrap();
        assert_eq!(sock.host(), "/tmp/pg/db");
    }

    #[test]
    fn bad_urls_and_machines_have_codes_and_never_echo_the_url() {
        for bad in [
            "",
            "http://x:topsecret@h",
            "postgres://u:topsecret@h/db?sslmode=bogus",
        ] {
            let e = ReplicaUrl::parse(bad).unwrap_err();
            assert_eq!(e.code(), "replica_url_invalid");
            assert!(!e.to_string().contains("topsecret"), "{e}");
        }
        assert_eq!(
            check_machine("").unwrap_err().code(),
            "replica_machine_invalid"
        );
        assert!(check_machine("a\nb").is_err());
        assert!(check_machine("a/b").is_err());
        assert!(check_machine("laptop-1").is_ok());
    }
}
