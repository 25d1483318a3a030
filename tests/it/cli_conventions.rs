//! The command line as a user meets it (issue 15), through the built `nex` and `aix`: counts
//! that say what a run did, one set of source flags on both tools, help that shows only what a
//! command uses, errors in words with their code once, times with their offset.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::control_support::{NexHome as Home, wait_exit};

const AIX: &str = env!("CARGO_BIN_EXE_aix");

fn aix_worker() -> String {
    format!("{AIX} worker --stdio")
}

fn fake_cmd(args: &str) -> String {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/control/fake_worker.sh");
    format!("sh {} {args}", script.display())
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ledger_sessions(home: &Home) -> u64 {
    let conn = rusqlite::Connection::open(home.ledger()).unwrap();
    conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// The control fixture's Claude Code home (`~/.claude` form: it holds `projects/`).
fn claude_home() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/control/claude")
}

/// Regression: `--full` on unchanged data reported `IMPORTED n` every time, jobs over the same
/// sessions summed to three times the ledger (a replayed request's stored answer counted
/// again), and a re-run with nothing changed printed a row of zeros.
#[test]
fn counts_say_what_each_run_did_and_a_rerun_says_nothing_new() {
    let home = Home::new(false);
    let first: Value = {
        let out = home.run(&aix_worker(), &["import", "backfill", "--wait", "--json"]);
        assert!(out.status.success(), "{}", text(&out).1);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let sessions = ledger_sessions(&home);
    assert!(sessions >= 1);
    assert_eq!(first["stats"]["imported"], sessions);
    // Plural-aware words (regression: `1 turns`), `-` for what is not known.
    let list = home.json(&["sessions", "list", "--json"]);
    let label = list[0]["label"].as_str().unwrap();
    let turns = list[0]["turns"].as_u64().unwrap();
    let (shown, _) = text(&home.run("unused", &["sessions", "show", label]));
    let want = if turns == 1 { "  1 turn, " } else { " turns, " };
    assert!(shown.contains(want), "{shown}");
    assert!(!shown.contains("  1 turns"), "{shown}");

    // Nothing changed: said in words, with the number of files checked.
    let out = home.run(&aix_worker(), &["import", "backfill", "--wait"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("nothing new: 1 file checked"), "{stdout}");
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("FILES"));
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["FILES", "UNCHANGED"], "{stdout}");
    assert_eq!(row, ["1", "1"], "{stdout}");

    // --full reads everything again and writes nothing: never IMPORTED again; its summary
    // says the files were read again (regression: `0 unchanged since the last import`, as if
    // every file had changed).
    let out = home.run(&aix_worker(), &["import", "backfill", "--wait", "--full"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("nothing new: 1 file checked, 1 read again; "),
        "{stdout}"
    );
    assert!(!stdout.contains("0 unchanged"), "{stdout}");
    for _ in 0..2 {
        let out = home.run(
            &aix_worker(),
            &["import", "backfill", "--wait", "--full", "--json"],
        );
        assert!(out.status.success(), "{}", text(&out).1);
        let job: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(job["stats"]["imported"], 0, "{job}");
        assert_eq!(job["stats"]["upserted"], 0, "{job}");
        let again = job["stats"]["skipped"].as_u64().unwrap_or(0)
            + job["stats"]["replayed"].as_u64().unwrap_or(0);
        assert_eq!(again, sessions, "{job}");
    }
    // The jobs' totals are the ledger's.
    let jobs = home.json(&["import", "jobs", "--json"]);
    let imported: u64 = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["stats"]["imported"].as_u64().unwrap())
        .sum();
    assert_eq!(imported, ledger_sessions(&home));
}

/// Regression: `nex --claude-config-dir` took `~/.claude` and `aix --claude-dir`
/// `~/.claude/projects`; a folder that did not exist, or the other tool's form, imported 0
/// and exited 0.
#[test]
fn source_flags_take_either_form_on_both_tools_and_refuse_a_wrong_path() {
    let home = Home::new(false);
    let projects = claude_home().join("projects");
    let missing = home.path().join("no-such-dir");
    let empty = home.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    // `aix`: the home form and the projects form find the same session.
    for form in [claude_home(), projects.clone()] {
        let out = std::process::Command::new(AIX)
            .args(["scan", "--claude-dir"])
            .arg(&form)
            .arg("--codex-dir")
            .arg(&empty)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("sessions           1"), "{stdout}");
    }
    for (flag, path, code) in [
        ("--claude-dir", missing.as_path(), "[source_not_found]"),
        // A Claude Code home given as a Codex location.
        (
            "--codex-dir",
            claude_home().as_path(),
            "[source_not_recognised]",
        ),
    ] {
        let out = std::process::Command::new(AIX)
            .args(["scan", flag])
            .arg(path)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(stderr.contains(code), "{stderr}");

        let out = home.run(
            &aix_worker(),
            &["import", "backfill", "--wait", flag, path.to_str().unwrap()],
        );
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert_eq!(stderr.matches(code).count(), 1, "{stderr}");
    }
    assert!(!home.ledger().exists(), "a refused run writes nothing");

    // `nex` takes the same flag in the home form, repeatable, and imports from it.
    let mut home2 = Home::new(false);
    home2.claude = home2.path().join("none");
    let out = home2.run(
        &aix_worker(),
        &[
            "import",
            "backfill",
            "--wait",
            "--json",
            "--claude-dir",
            claude_home().to_str().unwrap(),
            "--claude-dir",
            projects.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["stats"]["imported"], 1, "{job}");
}

/// Regression: with a daemon running the source flags were ignored with one line on stderr,
/// and the job imported 0 and exited 0.
#[test]
fn a_daemon_refuses_source_flags_instead_of_ignoring_them() {
    let home = Home::new(false);
    let mut daemon = home.daemon(&fake_cmd("tail"));
    let out = home.run(
        "unused",
        &[
            "import",
            "backfill",
            "--claude-dir",
            claude_home().to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("nex daemon stop"), "{stderr}");
    assert!(stderr.ends_with("[daemon_has_own_settings]\n"), "{stderr}");
    assert!(
        home.json(&["import", "jobs", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Its log: plain lines for users (not a terminal: no colours), no Rust module paths.
    assert!(home.run("unused", &["daemon", "stop"]).status.success());
    assert!(wait_exit(&mut daemon, Duration::from_secs(2)).success());
    let log = home.daemon_log_tail(50);
    assert!(log.contains("daemon started"), "{log}");
    assert!(!log.contains("nex::"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}

/// Regression: stopping a finished job said `daemon error job_transition_illegal: illegal job
/// transition completed -> cancelled [job_transition_illegal]`.
#[test]
fn cancelling_a_finished_job_says_so_in_words_with_the_code_once() {
    let home = Home::new(false);
    let mut daemon = home.daemon(&fake_cmd("backfill 1 0"));
    let out = home.run("unused", &["import", "backfill", "--wait", "--json"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = job["id"].as_str().unwrap();
    let out = home.run("unused", &["import", "stop", &id[..4]]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr.trim_end(),
        format!(
            "nex: cannot cancel job {}: it already completed [job_transition_illegal]",
            &id[..8]
        )
    );
    assert!(home.run("unused", &["daemon", "stop"]).status.success());
    assert!(wait_exit(&mut daemon, Duration::from_secs(2)).success());
}

/// Regression: a missing `worker_cmd` was retried 4 times and ended with a table of blank
/// cells.
#[test]
fn a_missing_worker_program_is_one_clear_error_without_retries() {
    let home = Home::new(false);
    let missing = home.path().join("no-such-aix");
    let out = home.run(missing.to_str().unwrap(), &["import", "backfill", "--wait"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("(1 attempt)"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "error: cannot start the worker program {}",
            missing.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("[worker_program_missing]"), "{stdout}");
    let jobs = home.json(&["import", "jobs", "--json"]);
    assert_eq!(jobs[0]["stats"]["attempts"], 1, "{jobs}");
    assert_eq!(jobs[0]["error_code"], "worker_program_missing");
}

/// Regression: times were UTC without a marker and ignored `TZ`.
#[test]
fn times_are_local_with_their_offset_and_utc_on_request() {
    let home = Home::new(false);
    let out = home.run(&aix_worker(), &["import", "backfill", "--wait"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let jobs = |tz: &str, utc: bool| {
        let mut cmd = home.nex("unused");
        cmd.env("TZ", tz).args(["import", "jobs"]);
        if utc {
            cmd.arg("--utc");
        }
        text(&cmd.output().unwrap()).0
    };
    if Path::new("/usr/share/zoneinfo/Asia/Kolkata").exists() {
        assert!(jobs("Asia/Kolkata", false).contains(" +05:30"));
    }
    let utc = jobs("Asia/Kolkata", true);
    assert!(utc.contains(" +00:00"), "{utc}");
    assert!(!utc.contains("+05:30"), "{utc}");
}

/// Regression: every subcommand listed the eight worker and source-folder options, `--json`
/// was undescribed, and `--provider claude` silently returned nothing.
#[test]
fn help_shows_only_what_a_command_uses_and_provider_names_are_checked() {
    let home = Home::new(false);
    let help = |args: &[&str]| text(&home.run("unused", args)).0;
    for cmd in [
        &["sessions", "show", "--help"][..],
        &["sessions", "list", "--help"],
        &["import", "status", "--help"],
        &["import", "stop", "--help"],
    ] {
        let h = help(cmd);
        assert!(!h.contains("--worker-cmd"), "{cmd:?}: {h}");
        assert!(!h.contains("--claude-dir"), "{cmd:?}: {h}");
        // Every option is described: no option line ends with its name alone.
        for line in h.lines().filter(|l| l.trim_start().starts_with("--")) {
            assert!(line.trim().contains("  "), "{cmd:?}: undescribed {line}");
        }
    }
    let backfill = help(&["import", "backfill", "--help"]);
    for flag in ["--worker-cmd", "--claude-dir", "--codex-dir", "--cursor-db"] {
        assert!(backfill.contains(flag), "{backfill}");
    }
    let out = home.run("unused", &["sessions", "list", "--provider", "claude"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("claude-code"), "{stderr}");
    assert!(stderr.contains("gemini-cli"), "{stderr}");
}

/// `nex doctor`: per provider where it looked, what the sources and the ledger hold, and
/// whether a daemon runs; `--json` as docs/control.md describes it.
#[test]
fn doctor_says_where_it_looked_and_what_sources_and_ledger_hold() {
    let home = Home::new(false);
    let doctor = |home: &Home| home.json(&["doctor", "--json"]);
    let before = doctor(&home);
    let claude = before["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "claude-code")
        .unwrap()
        .clone();
    assert_eq!(claude["sessions"], 1, "{before}");
    assert_eq!(claude["files"], 1, "{before}");
    assert_eq!(claude["ledger_sessions"], 0, "{before}");
    assert_eq!(
        claude["locations"][0]["path"],
        claude_home().join("projects").display().to_string()
    );
    assert_eq!(claude["locations"][0]["exists"], true);
    assert_eq!(before["ledger"]["exists"], false);
    assert_eq!(before["daemon"]["running"], false);
    assert!(!home.ledger().exists(), "doctor creates nothing");

    let out = home.run(&aix_worker(), &["import", "backfill", "--wait"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let mut daemon = home.daemon(&fake_cmd("tail"));
    let after = doctor(&home);
    assert_eq!(after["ledger"]["sessions"], 1, "{after}");
    assert_eq!(after["providers"][0]["ledger_sessions"], 1, "{after}");
    assert_eq!(after["daemon"]["running"], true, "{after}");
    assert_eq!(after["daemon"]["pid"], daemon.id());
    let (report, _) = text(&home.run("unused", &["doctor"]));
    assert!(report.contains("claude-code: looked in "), "{report}");
    assert!(report.contains("(found)"), "{report}");
    assert!(report.contains("daemon: running"), "{report}");
    assert!(home.run("unused", &["daemon", "stop"]).status.success());
    assert!(wait_exit(&mut daemon, Duration::from_secs(2)).success());
}

/// Regression: an empty machine got a table of zeros without saying where it looked.
#[test]
fn a_backfill_that_finds_nothing_lists_where_it_looked() {
    let mut home = Home::new(false);
    home.claude = home.path().join("no-claude");
    home.codex = home.path().join("no-codex");
    let out = home.run(&aix_worker(), &["import", "backfill", "--wait"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("found no session files or databases to import"),
        "{stdout}"
    );
    let claude = format!(
        "  claude-code: {} (missing)",
        home.claude.join("projects").display()
    );
    assert!(stdout.contains(&claude), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "  codex: {} (missing)",
            home.codex.join("sessions").display()
        )),
        "{stdout}"
    );
    // Regression: Cursor, OpenCode and Gemini CLI said "no default location exists" instead
    // of naming the default locations tried (here under the test's HOME, XDG unset).
    let h = home.path();
    for (provider, tried) in [
        (
            "cursor",
            vec![
                h.join(".config/Cursor/User"),
                h.join("Library/Application Support/Cursor/User"),
            ],
        ),
        ("opencode", vec![h.join(".local/share/opencode")]),
        ("gemini-cli", vec![h.join(".gemini/tmp")]),
    ] {
        let shown: Vec<String> = tried
            .iter()
            .map(|p| format!("{} (missing)", p.display()))
            .collect();
        let line = format!("  {provider}: {}", shown.join(", "));
        assert!(stdout.contains(&line), "{line}\n{stdout}");
        let report = home.json(&["doctor", "--json"]);
        let entry = report["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["provider"] == provider)
            .unwrap()
            .clone();
        let want: Vec<Value> = tried
            .iter()
            .map(|p| serde_json::json!({"path": p, "exists": false}))
            .collect();
        assert_eq!(entry["locations"], Value::Array(want), "{report}");
    }
    assert!(!stdout.contains("no default location"), "{stdout}");
}

/// Regression: `nex doctor` said what records it skipped but not which files gave no session
/// and the format version seen in them (a newer agent's files looked like an empty machine).
#[test]
fn doctor_names_the_format_version_of_files_that_gave_no_session() {
    let home = Home::new(false);
    let claude = home.path().join("claude-projects");
    let project = claude.join("-home-u-later");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::copy(
        claude_home().join("projects/-home-u-demo/7f3c2a10-0000-4000-8000-00000000c0de.jsonl"),
        project.join("7f3c2a10-0000-4000-8000-00000000c0de.jsonl"),
    )
    .unwrap();
    // A future format: every record of a type this version does not read.
    std::fs::write(
        project.join("9a000000-0000-4000-8000-000000000001.jsonl"),
        concat!(
            r#"{"type":"exchange","version":"9.1.0","sessionId":"9a000000-0000-4000-8000-000000000001","timestamp":"2026-01-01T00:00:00Z"}"#,
            "\n",
            r#"{"type":"exchange","version":"9.1.0","sessionId":"9a000000-0000-4000-8000-000000000001","timestamp":"2026-01-01T00:00:01Z"}"#,
            "\n"
        ),
    )
    .unwrap();
    let codex = home.path().join("codex-sessions/2026/01/01");
    std::fs::create_dir_all(&codex).unwrap();
    std::fs::write(
        codex.join("rollout-2026-01-01T00-00-00-0b000000-0000-4000-8000-000000000002.jsonl"),
        concat!(
            r#"{"timestamp":"2026-01-01T00:00:00Z","type":"session_meta","payload":{"id":"0b000000-0000-4000-8000-000000000002","cli_version":"9.2.0"}}"#,
            "\n",
            r#"{"timestamp":"2026-01-01T00:00:01Z","type":"conversation_step","payload":{"text":"a"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let args = [
        "doctor",
        "--claude-dir",
        claude.to_str().unwrap(),
        "--codex-dir",
        codex
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_str()
            .unwrap(),
    ];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let report = home.json(&json_args);
    let provider = |name: &str| {
        report["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["provider"] == name)
            .unwrap()
            .clone()
    };
    let cc = provider("claude-code");
    assert_eq!(cc["files"], 2, "{report}");
    assert_eq!(cc["sessions"], 1, "{report}");
    assert_eq!(cc["skipped_files"], 1, "{report}");
    assert_eq!(
        cc["skipped_file_formats"],
        serde_json::json!({"version 9.1.0": 1}),
        "{report}"
    );
    let codex_report = provider("codex");
    assert_eq!(codex_report["skipped_files"], 1, "{report}");
    assert_eq!(
        codex_report["skipped_file_formats"],
        serde_json::json!({"cli_version 9.2.0": 1}),
        "{report}"
    );
    let (human, stderr) = text(&home.run("unused", &args));
    assert!(
        human.contains("1 file gave no session") && human.contains("version 9.1.0 (1)"),
        "{human}{stderr}"
    );
    assert!(human.contains("cli_version 9.2.0 (1)"), "{human}");
}

/// Regression: `nex sessions list` left KIND blank for main sessions (and said `sub` for
/// subagents); a fork was shown as a main session and `sessions show` said it was "spawned".
#[test]
fn sessions_list_names_every_kind_main_subagent_and_fork() {
    let mut home = Home::new(false);
    home.claude = home.path().join("none");
    home.codex = home.path().join("none");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = home.run(
        &aix_worker(),
        &[
            "import",
            "backfill",
            "--wait",
            "--claude-dir",
            fixtures.join("claude-code").to_str().unwrap(),
            "--codex-dir",
            fixtures.join("codex").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let rows = home.json(&["sessions", "list", "--json", "--limit", "1000"]);
    let rows = rows.as_array().unwrap();
    for row in rows {
        let want = match (
            row["is_subagent"].as_bool().unwrap(),
            row["parent_session_label"].is_string(),
        ) {
            (true, _) => "subagent",
            (false, true) => "fork",
            (false, false) => "main",
        };
        assert_eq!(row["kind"], want, "{row}");
    }
    for kind in ["main", "subagent", "fork"] {
        assert!(
            rows.iter().any(|r| r["kind"] == kind),
            "no {kind} in the fixtures"
        );
    }
    let (table, _) = text(&home.run("unused", &["sessions", "list", "--limit", "1000"]));
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let at = header.find("KIND").unwrap();
    let kinds: Vec<&str> = lines
        .map(|l| l[at..].split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(kinds.len(), rows.len(), "{table}");
    let want: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, want, "{table}");
    let fork = rows.iter().find(|r| r["kind"] == "fork").unwrap();
    let (shown, _) = text(&home.run(
        "unused",
        &["sessions", "show", fork["label"].as_str().unwrap()],
    ));
    assert!(
        shown.contains(&format!(
            "forked from {}",
            fork["parent_session_label"].as_str().unwrap()
        )),
        "{shown}"
    );
}

/// Regression: a session whose tool records no token counts (a 2025 Codex rollout, a Cursor
/// chat) showed `0` tokens in `sessions list` and `0 ... $0.00` in `nex usage`: unknown shown
/// as zero, and a cost that was not known.
#[test]
fn unknown_tokens_show_as_a_dash_not_zero() {
    let home = Home::new(false);
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex/old");
    let out = home.run(
        &aix_worker(),
        &[
            "import",
            "backfill",
            "--wait",
            "--codex-dir",
            old.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let rows = home.json(&["sessions", "list", "--json"]);
    let by = |p: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["provider"] == p)
            .unwrap()
            .clone()
    };
    assert_eq!(by("codex")["tokens_known"], false, "{rows}");
    assert_eq!(by("claude-code")["tokens_known"], true, "{rows}");
    assert_eq!(by("claude-code")["total_tokens"], 18, "{rows}");
    let (table, _) = text(&home.run("unused", &["sessions", "list"]));
    let header = table.lines().next().unwrap();
    let at = header.find("TOKENS").unwrap();
    let tokens = |p: &str| {
        let line = table
            .lines()
            .find(|l| l.contains(&format!(" {p} ")))
            .unwrap();
        line[at..].split_whitespace().next().unwrap().to_owned()
    };
    assert_eq!(tokens("codex"), "-", "{table}");
    assert_eq!(tokens("claude-code"), "18", "{table}");
    // Its duration too: one recorded time is not a session of 0 seconds.
    let at = header.find("DURATION").unwrap();
    let line = table.lines().find(|l| l.contains(" codex ")).unwrap();
    assert_eq!(line[at..].split_whitespace().next(), Some("-"), "{table}");

    let usage = home.json(&["usage", "--by", "provider", "--json"]);
    let codex = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "codex")
        .unwrap()
        .clone();
    assert!(codex["turns"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(codex["turns_without_tokens"], codex["turns"], "{usage}");
    let (shown, _) = text(&home.run("unused", &["usage", "--by", "provider"]));
    let line = shown.lines().find(|l| l.starts_with("codex ")).unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cells[3..], ["-"; 7], "{shown}");
    assert!(!line.contains("$0.00"), "{shown}");
}
