//! Damaged sources through the built binaries (`nex import backfill --wait` with the real
//! `aix` worker under a temp HOME): a line with invalid UTF-8 or raw control bytes is imported
//! with the damage repaired and counted (`lossy_lines`), never dropped; a session file that
//! cannot be read is a failure the job counts and names with the OS reason, and the next run
//! reads it again.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::e2e_support::open;

const SESSION: &str = "dddddddd-0000-4000-8000-00000000000d";

/// A HOME with a Claude Code projects root and a Gemini CLI root, and a `NEX_HOME` beside it.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let home = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(home.claude_project()).unwrap();
        std::fs::create_dir_all(home.gemini_chats()).unwrap();
        home
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn claude_project(&self) -> PathBuf {
        self.home().join(".claude/projects/-work-demo")
    }

    fn gemini_chats(&self) -> PathBuf {
        self.home().join(".gemini/tmp/proj1/chats")
    }

    fn nex(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nex"));
        c.env("HOME", self.home())
            .env("NEX_HOME", self.dir.path().join("nex"))
            .env(
                "NEX_WORKER_CMD",
                format!("{} worker --stdio", env!("CARGO_BIN_EXE_aix")),
            )
            .env("RUST_LOG", "warn");
        for var in [
            "NEX_LEDGER",
            "CLAUDE_CONFIG_DIR",
            "CODEX_HOME",
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "OPENCODE_DATA_DIR",
            "GEMINI_DIR",
        ] {
            c.env_remove(var);
        }
        c
    }

    /// `nex import backfill --wait --json`: the final job record.
    fn backfill(&self) -> Value {
        let out = self
            .nex()
            .args(["import", "backfill", "--wait", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn ledger(&self) -> PathBuf {
        self.dir.path().join("nex/agents.db")
    }

    fn contents(&self) -> Vec<String> {
        let conn = open(&self.ledger());
        let mut st = conn
            .prepare("SELECT content FROM messages WHERE content IS NOT NULL ORDER BY content")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

fn claude_line(uuid: &str, parent: Option<&str>, kind: &str, text: &str, at: u32) -> Vec<u8> {
    let message = if kind == "user" {
        json!({"role": "user", "content": text})
    } else {
        json!({"model": "claude-opus-4-6", "id": format!("msg_{uuid}"), "type": "message",
               "role": "assistant", "content": [{"type": "text", "text": text}],
               "usage": {"input_tokens": 3, "output_tokens": 4}})
    };
    let mut line = json!({"parentUuid": parent, "isSidechain": false, "cwd": "/work/demo",
        "sessionId": SESSION, "type": kind, "message": message, "uuid": uuid,
        "timestamp": format!("2026-01-01T10:00:{at:02}.000Z")})
    .to_string()
    .into_bytes();
    line.push(b'\n');
    line
}

/// `line` with its first occurrence of `marker` replaced by raw `bytes`.
fn damage(line: Vec<u8>, marker: &str, bytes: &[u8]) -> Vec<u8> {
    let at = line
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .unwrap();
    [&line[..at], bytes, &line[at + marker.len()..]].concat()
}

fn stats(job: &Value) -> &Value {
    &job["stats"]
}

/// Before: the damaged lines were skipped as malformed; the job said completed, 0 failed, and
/// both prompts were gone from the ledger.
#[test]
fn lines_with_invalid_utf8_or_control_bytes_are_imported_repaired_and_counted() {
    let home = Home::new();
    let file = [
        claude_line("u1", None, "user", "first prompt", 1),
        claude_line("a1", Some("u1"), "assistant", "first answer", 2),
        damage(
            claude_line("u2", Some("a1"), "user", "caf@@ prompt", 3),
            "@@",
            b"\xe9",
        ),
        claude_line("a2", Some("u2"), "assistant", "second answer", 4),
        damage(
            claude_line("u3", Some("a2"), "user", "bell@@ prompt", 5),
            "@@",
            b"\x07\x01",
        ),
    ]
    .concat();
    std::fs::write(home.claude_project().join(format!("{SESSION}.jsonl")), file).unwrap();
    let gemini = [
        json!({"sessionId": "g-1", "projectHash": "proj1", "startTime": "2026-01-01T10:00:00Z",
               "lastUpdated": "2026-01-01T10:00:00Z", "kind": "main"})
        .to_string()
        .into_bytes(),
        damage(
            json!({"id": "gu1", "timestamp": "2026-01-01T10:00:00Z", "type": "user",
                   "content": "gemini @@ prompt"})
            .to_string()
            .into_bytes(),
            "@@",
            b"\xff\xfe",
        ),
    ]
    .join(&b'\n');
    std::fs::write(
        home.gemini_chats()
            .join("session-2026-01-01T10-00-g1.jsonl"),
        [gemini, b"\n".to_vec()].concat(),
    )
    .unwrap();

    let job = home.backfill();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(stats(&job)["lossy_lines"], 3, "{job}");
    assert_eq!(stats(&job)["failed"], 0, "{job}");
    assert!(stats(&job).get("failed_files").is_none(), "{job}");
    let contents = home.contents();
    for want in [
        "caf\u{fffd} prompt",
        "bell\u{7}\u{1} prompt",
        "gemini \u{fffd}\u{fffd} prompt",
    ] {
        assert!(
            contents.iter().any(|c| c == want),
            "{want:?} in {contents:?}"
        );
    }

    // The summary table says so too.
    let out = home.nex().args(["import", "jobs"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3 lines imported with damaged bytes replaced"),
        "{text}"
    );
}

/// A session file whose reads fail: `/proc/self/mem` read at offset 0 fails with EIO for any
/// user, root included (a mode of 000 does not stop root).
#[cfg(target_os = "linux")]
fn unreadable_file(path: &Path) {
    std::os::unix::fs::symlink("/proc/self/mem", path).unwrap();
}

/// Before: the file was skipped with a warning in the worker's log only; the job said
/// completed with `failed: 0`.
#[cfg(target_os = "linux")]
#[test]
fn an_unreadable_session_file_is_a_failure_the_job_names_and_the_next_run_retries() {
    let home = Home::new();
    let good = home.claude_project().join(format!("{SESSION}.jsonl"));
    std::fs::write(
        &good,
        [
            claude_line("u1", None, "user", "readable prompt", 1),
            claude_line("a1", Some("u1"), "assistant", "answer", 2),
        ]
        .concat(),
    )
    .unwrap();
    let other = "eeeeeeee-0000-4000-8000-00000000000e";
    let bad = home.claude_project().join(format!("{other}.jsonl"));
    unreadable_file(&bad);

    let job = home.backfill();
    assert_eq!(job["status"], "completed", "{job}");
    let s = stats(&job);
    assert_eq!(s["failed_files"], 1, "{job}");
    let errors = s["file_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{job}");
    assert_eq!(errors[0]["path"], bad.display().to_string());
    assert_eq!(errors[0]["code"], "file_unreadable");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("os error 5"),
        "the OS reason: {job}"
    );
    assert_eq!(home.contents(), ["answer", "readable prompt"]);

    // `nex import jobs` counts it in FAILED and names the file with the reason.
    let out = home.nex().args(["import", "jobs"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "file_unreadable {}: Input/output error",
            bad.display()
        )),
        "{text}"
    );
    // FAILED is the column before ERROR, which is `-` for a completed job.
    let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[row.len() - 2..], ["1", "-"], "{text}");

    // The file got no cursor: once readable, the next run imports it.
    std::fs::remove_file(&bad).unwrap();
    std::fs::write(
        &bad,
        damage(
            claude_line("x1", None, "user", "late prompt", 1),
            SESSION,
            other.as_bytes(),
        ),
    )
    .unwrap();
    let job = home.backfill();
    assert!(stats(&job).get("failed_files").is_none(), "{job}");
    assert!(home.contents().contains(&"late prompt".to_owned()));
}
