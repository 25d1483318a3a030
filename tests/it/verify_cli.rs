//! `nex import verify` through the built binaries: a fresh backfill matches; a source file
//! deleted after the import is listed as only in the ledger (exit 0); a tampered ledger row is a
//! mismatch with both figures (exit 1); usage and ledger errors. On the shared samples (CI:
//! `NEX_SAMPLES_DIR`), `aix scan --sessions`, `nex import verify` and the ledger's own counts
//! agree. The conformance test runs each real corpus (`NEX_SAMPLES_DIR`,
//! `NEX_REAL_SAMPLES_DIR`, `NEX_CORPUS_DIR`; skipped when unset) through `aix emit --mode
//! backfill | nex import replay` and then `nex import verify`, listing every mismatch.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nex::aix::figures::SessionFigures;
use nex_bench::procs::Pair;
use serde_json::Value;

use crate::e2e_conformance::sample_tree;
use crate::e2e_support::{Tree, assert_clean, backfill, bins, files_under, open, samples_dir};

/// `nex import verify --ledger L <roots> <extra>` in an empty NEX_HOME and HOME, with the built
/// `aix` as the worker.
fn verify(home: &Path, ledger: &Path, roots: &[String], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nex"))
        .args(["import", "verify", "--ledger"])
        .arg(ledger)
        .arg("--worker-cmd")
        .arg(env!("CARGO_BIN_EXE_aix"))
        .args(roots)
        .args(extra)
        .env("NEX_HOME", home.join("nex-home"))
        .env("HOME", home)
        .env_remove("NEX_LEDGER")
        .env_remove("NEX_WORKER_CMD")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CODEX_HOME")
        .output()
        .unwrap()
}

fn verify_json(home: &Path, ledger: &Path, roots: &[String]) -> (i32, Value) {
    let out = verify(home, ledger, roots, &["--json"]);
    let code = out.status.code().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let report: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

fn provider<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report}"))
}

fn mismatches(report: &Value) -> Vec<Value> {
    report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["mismatched"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn verify_matches_a_backfill_lists_gone_sources_and_reports_tampered_rows() {
    let tree = Tree::with_fixtures();
    let ledger = tree.ledger("agents.db");
    assert_clean(&backfill(&tree, &ledger));
    let roots = tree.roots();

    let (code, report) = verify_json(tree.path(), &ledger, &roots);
    assert_eq!(mismatches(&report), Vec::<Value>::new());
    assert_eq!(code, 0);
    let claude = provider(&report, "claude-code");
    let codex = provider(&report, "codex");
    assert!(claude["sessions"].as_u64().unwrap() >= 3, "{report}");
    assert!(codex["sessions"].as_u64().unwrap() >= 1, "{report}");
    for p in [claude, codex] {
        assert_eq!(p["matched"], p["sessions"]);
        assert_eq!(p["ledger_sessions"], p["sessions"]);
        assert_eq!(p["only_in_ledger"], serde_json::json!([]));
    }
    // The fixtures' orphans: a Codex thread spawned by a rollout the fixtures lack names a
    // parent the ledger does not hold; a Claude Code subagent whose parent history is gone
    // names a parent session and a spawning call.
    let codex_dangling = codex["dangling_lineage"].as_array().unwrap();
    assert_eq!(codex_dangling.len(), 1, "{report}");
    assert_eq!(codex_dangling[0]["field"], "parent_session_label");
    assert_eq!(
        codex_dangling[0]["source_session_id"],
        "019d0005-0000-7000-8000-000000000040"
    );
    let orphan = "12121212-0000-4000-8000-00000000000c/agent-a0f1e2d3c4b5a6978";
    let dangling = claude["dangling_lineage"].as_array().unwrap();
    let fields: Vec<&str> = dangling
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["parent_session_label", "spawn_tool_call_id"],
        "{report}"
    );
    assert!(
        dangling.iter().all(|d| d["source_session_id"] == orphan),
        "{report}"
    );
    assert_eq!(report["providers"].as_array().unwrap().len(), 5);

    // The agent deleted a history: the ledger kept it, which is no mismatch.
    let mut rollouts = Vec::new();
    files_under(&tree.codex(), &mut rollouts);
    let gone = &rollouts[0];
    let gone_id: String = {
        let first = std::fs::read_to_string(gone).unwrap();
        let line: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
        line["payload"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    std::fs::remove_file(gone).unwrap();
    let (code, report) = verify_json(tree.path(), &ledger, &roots);
    assert_eq!(code, 0, "{report}");
    let codex = provider(&report, "codex");
    let only = codex["only_in_ledger"].as_array().unwrap();
    assert_eq!(only.len(), 1, "{report}");
    assert!(
        only[0]["label"]
            .as_str()
            .unwrap()
            .starts_with("import:codex:")
    );
    if !gone_id.is_empty() {
        assert_eq!(only[0]["source_session_id"], gone_id.as_str());
    }
    assert_eq!(
        codex["ledger_sessions"].as_u64(),
        codex["sessions"].as_u64().map(|n| n + 1)
    );

    // A tampered row: 7 tokens more on one turn, one message less on another session.
    let conn = open(&ledger);
    let (turn, label, total): (String, String, i64) = conn
        .query_row(
            "SELECT id, session_label, COALESCE(total_tokens, 0) FROM turns
             WHERE session_label LIKE 'import:claude-code:%' ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let session_total: i64 = conn
        .query_row(
            "SELECT SUM(COALESCE(total_tokens, 0)) FROM turns WHERE session_label = ?1",
            [&label],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE turns SET total_tokens = ?2 WHERE id = ?1",
        rusqlite::params![turn, total + 7],
    )
    .unwrap();
    let (msg, msg_label): (String, String) = conn
        .query_row(
            "SELECT m.id, t.session_label FROM messages m JOIN turns t ON t.id = m.turn_id
             WHERE t.session_label != ?1 AND t.session_label LIKE 'import:claude-code:%'
               AND m.id NOT IN
                 (SELECT message_id FROM tool_calls WHERE message_id IS NOT NULL)
             ORDER BY m.id LIMIT 1",
            [&label],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    conn.execute("DELETE FROM messages WHERE id = ?1", [&msg])
        .unwrap();
    drop(conn);

    let (code, report) = verify_json(tree.path(), &ledger, &roots);
    assert_eq!(code, 1, "{report}");
    let found = mismatches(&report);
    assert_eq!(found.len(), 2, "{found:#?}");
    let tokens = found.iter().find(|m| m["field"] == "total_tokens").unwrap();
    assert_eq!(tokens["label"], label.as_str());
    assert_eq!(tokens["source"], session_total);
    assert_eq!(tokens["ledger"], session_total + 7);
    let messages = found.iter().find(|m| m["field"] == "messages").unwrap();
    assert_eq!(messages["label"], msg_label.as_str());
    assert_eq!(
        messages["source"].as_i64().unwrap(),
        messages["ledger"].as_i64().unwrap() + 1
    );
    let total_matched: u64 = report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["matched"].as_u64().unwrap())
        .sum();
    let total_sessions: u64 = report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sessions"].as_u64().unwrap())
        .sum();
    assert_eq!(total_matched + 2, total_sessions);

    // The human output: the table, then the mismatches with both figures.
    let out = verify(tree.path(), &ledger, &roots, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("PROVIDER"), "{text}");
    assert!(text.contains("2 mismatches:"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("total_tokens"))
        .expect("mismatch line");
    assert!(line.contains(&label) && line.contains(&(session_total + 7).to_string()));
    assert!(text.contains("1 sessions only in the ledger"), "{text}");

    // --provider narrows the report (the tampered sessions are Claude Code's); an unknown one
    // is a usage error.
    let out = verify(
        tree.path(),
        &ledger,
        &roots,
        &["--json", "--provider", "codex"],
    );
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["providers"].as_array().unwrap().len(), 1);
    let out = verify(tree.path(), &ledger, &roots, &["--provider", "claude"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[provider_unknown]"));

    // A subagent whose parent label names no session: a mismatch against the source, and a
    // dangling lineage link.
    let conn = open(&ledger);
    let child: String = conn
        .query_row(
            "SELECT label FROM sessions WHERE is_subagent = 1
               AND label LIKE 'import:claude-code:%'
               AND parent_session_label IN (SELECT label FROM sessions)
             ORDER BY label LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE sessions SET parent_session_label = 'import:claude-code:gone' WHERE label = ?1",
        [&child],
    )
    .unwrap();
    drop(conn);
    let (code, report) = verify_json(tree.path(), &ledger, &roots);
    assert_eq!(code, 1, "{report}");
    let claude = provider(&report, "claude-code");
    let dangling = claude["dangling_lineage"].as_array().unwrap();
    assert_eq!(dangling.len(), 3, "{report}");
    let gone = dangling
        .iter()
        .find(|d| d["names"] == "import:claude-code:gone")
        .expect("the tampered parent is listed");
    assert_eq!(gone["label"], child.as_str());
    assert_eq!(gone["field"], "parent_session_label");
    assert!(
        mismatches(&report)
            .iter()
            .any(|m| m["label"] == child.as_str() && m["field"] == "parent_session_label"),
        "{report}"
    );
    let out = verify(tree.path(), &ledger, &roots, &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("4 lineage links name nothing the ledger holds:"),
        "{text}"
    );
    assert!(text.contains("import:claude-code:gone"), "{text}");
}

#[test]
fn verify_without_a_ledger_fails_with_its_code() {
    let tree = Tree::new();
    let out = verify(tree.path(), &tree.ledger("none.db"), &tree.roots(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[ledger_not_found]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

/// `aix scan --sessions <roots>`.
fn scan_figures(roots: &[String]) -> Vec<SessionFigures> {
    let out = Command::new(env!("CARGO_BIN_EXE_aix"))
        .args(["scan", "--sessions"])
        .args(roots)
        .env("AIX_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ledger_count(ledger: &Path, table: &str) -> u64 {
    open(ledger)
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64
}

#[test]
fn on_the_shared_samples_scan_verify_and_the_ledger_agree() {
    let Some(samples) = samples_dir() else {
        eprintln!("verify_cli: NEX_SAMPLES_DIR unset or empty; skipped");
        return;
    };
    let tree = sample_tree(&samples);
    let ledger = tree.ledger("agents.db");
    assert_clean(&backfill(&tree, &ledger));
    let roots = tree.roots();
    let figures = scan_figures(&roots);
    assert!(!figures.is_empty());
    let sum = |f: fn(&SessionFigures) -> u64| figures.iter().map(f).sum::<u64>();
    assert_eq!(sum(|f| f.turns), ledger_count(&ledger, "turns"));
    assert_eq!(sum(|f| f.messages), ledger_count(&ledger, "messages"));
    assert_eq!(sum(|f| f.tool_calls), ledger_count(&ledger, "tool_calls"));
    assert_eq!(
        figures.len() as u64,
        ledger_count(&ledger, "session_imports")
    );
    let (code, report) = verify_json(tree.path(), &ledger, &roots);
    assert_eq!(mismatches(&report), Vec::<Value>::new(), "{report}");
    assert_eq!(code, 0);
    let sessions: u64 = report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["matched"].as_u64().unwrap())
        .sum();
    assert_eq!(sessions, figures.len() as u64);
}

/// The worker's flags for a corpus laid out `claude/projects`, `codex/sessions`, `gemini/tmp`,
/// `opencode/<name>/`, `cursor/<name>/User/...` (each `state.vscdb` under `User/`); every
/// provider the corpus lacks is pinned to an empty directory.
fn corpus_roots(dir: &Path, empty: &Path) -> Vec<String> {
    let mut args = Vec::new();
    let mut push = |flag: &str, path: &Path| {
        args.push(flag.to_owned());
        args.push(path.display().to_string());
    };
    for (flag, rel) in [
        ("--claude-dir", "claude/projects"),
        ("--codex-dir", "codex/sessions"),
        ("--gemini-dir", "gemini/tmp"),
    ] {
        let p = dir.join(rel);
        push(flag, if p.is_dir() { &p } else { empty });
    }
    let subdirs = |rel: &str| -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join(rel))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    };
    let opencode = subdirs("opencode");
    for d in &opencode {
        push("--opencode-dir", d);
    }
    if opencode.is_empty() {
        push("--opencode-dir", empty);
    }
    let mut dbs = Vec::new();
    for d in subdirs("cursor") {
        let mut files = Vec::new();
        files_under(&d.join("User"), &mut files);
        dbs.extend(files.into_iter().filter(|f| f.ends_with("state.vscdb")));
    }
    for db in &dbs {
        push("--cursor-db", db);
    }
    if dbs.is_empty() {
        push("--cursor-db", empty);
    }
    args
}

/// Runs one corpus through `aix emit --mode backfill | nex import replay`, then `nex import
/// verify`; returns every mismatch as a line, and prints what it covered.
fn conformance(name: &str, dir: &Path) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    // The shared samples have their own layout: converted as e2e_conformance does.
    let converted;
    let roots = if dir.join("claude-code").is_dir() {
        converted = sample_tree(dir);
        converted.roots()
    } else {
        corpus_roots(dir, &empty)
    };
    let ledger = work.path().join("agents.db");
    let mut args: Vec<String> = vec!["emit".into(), "--mode".into(), "backfill".into()];
    args.extend(roots.iter().cloned());
    let run = Pair::spawn(&bins(), &args, &ledger, false)
        .unwrap()
        .finish()
        .unwrap();
    assert_clean(&run);
    let (code, report) = verify_json(work.path(), &ledger, &roots);
    let found: Vec<String> = mismatches(&report)
        .iter()
        .map(|m| {
            format!(
                "{} {} ({}) {}: source {} ledger {}",
                name, m["label"], m["source_session_id"], m["field"], m["source"], m["ledger"]
            )
        })
        .collect();
    for p in report["providers"].as_array().unwrap() {
        eprintln!(
            "verify_cli conformance {name}: {} sessions {} matched {} mismatches {} only in ledger {} dangling lineage {}",
            p["provider"].as_str().unwrap(),
            p["sessions"],
            p["matched"],
            p["mismatched"].as_array().unwrap().len(),
            p["only_in_ledger"].as_array().unwrap().len(),
            p["dangling_lineage"].as_array().unwrap().len()
        );
        for d in p["dangling_lineage"].as_array().unwrap() {
            eprintln!("verify_cli conformance {name}: dangling {d}");
        }
    }
    assert_eq!(code == 0, found.is_empty(), "exit code {code} vs {found:?}");
    found
}

#[test]
fn conformance_of_the_real_corpora_through_replay_and_verify() {
    let mut ran = 0;
    let mut all = Vec::new();
    for var in ["NEX_SAMPLES_DIR", "NEX_REAL_SAMPLES_DIR", "NEX_CORPUS_DIR"] {
        let Some(dir) = std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
        else {
            eprintln!("verify_cli conformance: {var} unset; skipped");
            continue;
        };
        ran += 1;
        all.extend(conformance(var, &dir));
    }
    assert!(
        all.is_empty(),
        "{} mismatches over {ran} corpora:\n{}",
        all.len(),
        all.join("\n")
    );
}
