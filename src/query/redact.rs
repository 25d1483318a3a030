//! Masks what looks like a secret, and the user's home directory, in exported text
//! (`nex sessions export --redact`).
//!
//! Masked, each replaced by `[REDACTED:<kind>]`: PEM private keys (a cut one too: to the end
//! of the text), Anthropic (`sk-ant-…`) and OpenAI-style (`sk-…`) API keys, GitHub tokens
//! (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), AWS access key ids (`AKIA…`,
//! `ASIA…`), Slack tokens (`xoxb-`, `xoxp-`, …), Google API keys (`AIza…`), JSON Web Tokens,
//! `Bearer` tokens, the password of a URL (`scheme://user:password@host`), and the value of
//! `password=`, `secret:`, `api_key=`, `token=` style assignments. The home directory
//! becomes `~` wherever it starts a path.
//!
//! It errs on the side of masking; it cannot know every secret format, so a redacted export
//! is safer to share, not proven safe.

use std::sync::OnceLock;

use regex::{Captures, Regex};

/// Patterns, in order (a PEM block before the keys it may contain).
const PATTERNS: &[(&str, &str)] = &[
    (
        "private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
    ),
    ("anthropic_key", r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    ("api_key", r"\bsk-[A-Za-z0-9_\-]{16,}"),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
    ),
    ("aws_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("google_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ),
];

fn compiled() -> &'static [(&'static str, Regex)] {
    static SET: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    SET.get_or_init(|| {
        PATTERNS
            .iter()
            // Constant patterns, each exercised by the tests: they compile.
            .map(|(kind, p)| (*kind, Regex::new(p).expect("redaction pattern compiles")))
            .collect()
    })
}

/// `Bearer <token>`: the token is masked, the word kept.
fn bearer() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}").expect("bearer pattern compiles")
    })
}

/// `scheme://user:password@`: the password is masked.
fn url_password() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/:@]+):[^\s/@]+@")
            .expect("url password pattern compiles")
    })
}

/// `password = value`, `"api_key": "value"`, `TOKEN=value`: the value is masked.
fn assignment() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?i)\b((?:[a-z0-9_]*_)?(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?key|auth[_\-]?token|token)["']?\s*[:=]\s*["']?)([^\s"',;&]{6,})"#,
        )
        .expect("assignment pattern compiles")
    })
}

/// Masks secrets and the home directory.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// The home directory, matched where it starts a path (`None`: not masked).
    home: Option<Regex>,
}

impl Redactor {
    /// A redactor that replaces `home` (e.g. `$HOME`) by `~`; a home of `/` or empty is not
    /// masked (it would mask every path).
    pub fn new(home: Option<&str>) -> Redactor {
        let home = home
            .map(|h| h.trim_end_matches('/'))
            .filter(|h| h.len() > 1)
            .and_then(|h| Regex::new(&format!(r"{}(/|\b|\z)", regex::escape(h))).ok());
        Redactor { home }
    }

    /// `text` with every match masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (kind, re) in compiled() {
            if re.is_match(&out) {
                out = re
                    .replace_all(&out, format!("[REDACTED:{kind}]").as_str())
                    .into_owned();
            }
        }
        out = url_password()
            .replace_all(&out, "$1:[REDACTED:password]@")
            .into_owned();
        out = bearer()
            .replace_all(&out, "$1 [REDACTED:token]")
            .into_owned();
        out = assignment()
            .replace_all(&out, |c: &Captures<'_>| {
                if c[2].starts_with("[REDACTED") {
                    c[0].to_owned()
                } else {
                    format!("{}[REDACTED:secret]", &c[1])
                }
            })
            .into_owned();
        if let Some(home) = &self.home {
            out = home.replace_all(&out, "~$1").into_owned();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_secret_is_masked_and_text_around_it_kept() {
        let r = Redactor::new(Some("/home/alice"));
        let cases = [
            ("key sk-ant-api03-AbCdEf0123456789xyz end", "anthropic_key"),
            ("OPENAI sk-proj-AbCdEf0123456789AbCd end", "api_key"),
            ("gh ghp_0123456789abcdefABCDEF0123 end", "github_token"),
            (
                "gh github_pat_11ABCDEFG0123456789_abcdef end",
                "github_token",
            ),
            ("aws AKIAIOSFODNN7EXAMPLE end", "aws_key"),
            ("slack xoxb-1234567890-abcdefghij end", "slack_token"),
            (
                "google AIzaSyA0123456789abcdefghijklmnopqrstuv end",
                "google_key",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
                "jwt",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY----- end",
                "private_key",
            ),
            (
                "cut -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz",
                "private_key",
            ),
        ];
        for (text, kind) in cases {
            let out = r.redact(text);
            assert!(
                out.contains(&format!("[REDACTED:{kind}]")),
                "{text} -> {out}"
            );
            assert!(out.ends_with("end") || kind == "private_key", "{out}");
        }
        assert_eq!(
            r.redact("curl -H 'Authorization: Bearer abc.def-ghi_123456'"),
            "curl -H 'Authorization: Bearer [REDACTED:token]'"
        );
        assert_eq!(
            r.redact("postgres://admin:hunter2pass@db:5432/x"),
            "postgres://admin:[REDACTED:password]@db:5432/x"
        );
        assert_eq!(
            r.redact(r#"{"password": "correct-horse", "user": "bob"}"#),
            r#"{"password": "[REDACTED:secret]", "user": "bob"}"#
        );
        assert_eq!(
            r.redact("DB_PASSWORD=s3cr3tvalue ok"),
            "DB_PASSWORD=[REDACTED:secret] ok"
        );
    }

    #[test]
    fn home_becomes_tilde_only_where_it_starts_a_path() {
        let r = Redactor::new(Some("/home/alice/"));
        assert_eq!(
            r.redact("cd /home/alice/src && ls /home/alice"),
            "cd ~/src && ls ~"
        );
        assert_eq!(r.redact("/home/alicex/y"), "/home/alicex/y");
        assert_eq!(Redactor::new(Some("/")).redact("/usr/bin"), "/usr/bin");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let r = Redactor::new(None);
        let text = "the token count is 1234; skip the task-runner; ask-me later";
        assert_eq!(r.redact(text), text);
    }
}
