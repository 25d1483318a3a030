//! TLS to the replica, with libpq's meanings of the URL's `sslmode` and `sslrootcert`, which
//! the driver (tokio-postgres: `disable`, `prefer`, `require` only) does not know:
//!
//! - `sslmode=require`: encrypted; the server's certificate is not checked (as libpq), unless
//!   `sslrootcert` names a file, which makes it `verify-ca`.
//! - `sslmode=verify-ca`: encrypted, and the certificate's chain must end at a trusted root:
//!   the `sslrootcert` file's certificates (PEM), else the system's.
//! - `sslmode=verify-full`: `verify-ca`, and the certificate must name the host connected to.
//!
//! [`lift`] takes both keys out of the URL (either form) before the driver parses it: the
//! driver sees `sslmode=require` and [`TlsPolicy`] keeps the rest.

use std::path::{Path, PathBuf};

/// What is checked of the server's certificate on a TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// The chain must end at a trusted root.
    pub verify_chain: bool,
    /// The certificate must name the host.
    pub verify_host: bool,
    /// `sslrootcert`: the only trusted roots (else the system's).
    pub root_cert: Option<PathBuf>,
}

impl TlsPolicy {
    /// The connector for this policy.
    ///
    /// Errors: a message (the root file cannot be read or holds no certificate; the TLS
    /// library refuses); the path is shown, never the URL.
    pub fn connector(&self) -> Result<native_tls::TlsConnector, String> {
        let mut builder = native_tls::TlsConnector::builder();
        builder
            .danger_accept_invalid_certs(!self.verify_chain)
            .danger_accept_invalid_hostnames(!self.verify_host);
        if let Some(path) = &self.root_cert {
            builder.disable_built_in_roots(true);
            builder.add_root_certificate(read_root(path)?);
        }
        builder.build().map_err(|e| e.to_string())
    }
}

fn read_root(path: &Path) -> Result<native_tls::Certificate, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
    native_tls::Certificate::from_pem(&pem).map_err(|e| {
        format!(
            "sslrootcert {} is not a PEM certificate: {e}",
            path.display()
        )
    })
}

/// `url` without `sslrootcert` and with `sslmode=verify-ca|verify-full` as `require`, and the
/// policy they asked for (`None`: the URL names neither; the driver's `sslmode` rules alone).
/// A key=value string that does not tokenize is returned as is (the driver reports it).
pub fn lift(url: &str) -> (String, Option<TlsPolicy>) {
    let (rest, pairs, join): (String, Vec<(String, String)>, &str) =
        if let Some((base, query)) = url.split_once('?').filter(|_| url.contains("://")) {
            let pairs = query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), percent_decoded(v))
                })
                .collect();
            (base.to_owned(), pairs, "&")
        } else if url.contains("://") {
            return (url.to_owned(), None);
        } else {
            match key_values(url) {
                Some(pairs) => (String::new(), pairs, " "),
                None => return (url.to_owned(), None),
            }
        };
    let mut mode: Option<String> = None;
    let mut root: Option<PathBuf> = None;
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "sslrootcert" => root = Some(PathBuf::from(v)),
            "sslmode" => mode = Some(v),
            _ => kept.push((k, v)),
        }
    }
    if root.is_none() && !matches!(mode.as_deref(), Some("verify-ca" | "verify-full")) {
        return (url.to_owned(), None);
    }
    let policy = match (mode.as_deref(), &root) {
        (Some("verify-full"), _) => Some(TlsPolicy {
            verify_chain: true,
            verify_host: true,
            root_cert: root.clone(),
        }),
        (Some("verify-ca"), _) | (Some("require"), Some(_)) => Some(TlsPolicy {
            verify_chain: true,
            verify_host: false,
            root_cert: root.clone(),
        }),
        _ => None,
    };
    match (&policy, mode) {
        (Some(_), _) => kept.push(("sslmode".into(), "require".into())),
        (None, Some(m)) => kept.push(("sslmode".into(), m)),
        (None, None) => {}
    }
    let rebuilt = if join == "&" {
        let query: Vec<String> = kept
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoded(v)))
            .collect();
        if query.is_empty() {
            rest
        } else {
            format!("{rest}?{}", query.join("&"))
        }
    } else {
        let pairs: Vec<String> = kept
            .iter()
            .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
            .collect();
        pairs.join(" ")
    };
    (rebuilt, policy)
}

/// libpq's `key = value` pairs (values bare or single-quoted, `\` escaping).
fn key_values(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.push(chars.next()?);
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_and_the_root_file_are_lifted_out_of_either_form() {
        let (rest, policy) =
            lift("host=db user=u password='p w\\'x' sslmode=verify-full sslrootcert='/a b/ca.pem'");
        assert_eq!(
            policy,
            Some(TlsPolicy {
                verify_chain: true,
                verify_host: true,
                root_cert: Some("/a b/ca.pem".into()),
            })
        );
        assert_eq!(
            key_values(&rest).unwrap(),
            [
                ("host".into(), "db".into()),
                ("user".into(), "u".into()),
                ("password".into(), "p w'x".into()),
                ("sslmode".into(), "require".into()),
            ]
        );
        let (rest, policy) =
            lift("postgres://u:p@db:5433/x?sslrootcert=%2Fetc%2Fca.pem&sslmode=verify-ca");
        assert_eq!(rest, "postgres://u:p@db:5433/x?sslmode=require");
        assert_eq!(
            policy,
            Some(TlsPolicy {
                verify_chain: true,
                verify_host: false,
                root_cert: Some("/etc/ca.pem".into()),
            })
        );
        // `require` alone checks nothing (libpq); with a root file it is `verify-ca`.
        let (rest, policy) = lift("postgres://u@db/x?sslmode=require&application_name=a%20b");
        assert_eq!(
            rest,
            "postgres://u@db/x?sslmode=require&application_name=a%20b"
        );
        assert_eq!(policy, None);
        let (_, policy) = lift("host=db sslmode=require sslrootcert=/ca.pem");
        assert!(policy.is_some_and(|p| p.verify_chain && !p.verify_host));
        assert_eq!(lift("postgres://u@db/x").0, "postgres://u@db/x");
        assert_eq!(lift("host='unterminated").0, "host='unterminated");
    }
}
