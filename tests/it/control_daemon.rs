//! The built binaries: `nex daemon` and the `nex import` commands as processes, with the fake
//! worker or the real `aix worker --stdio`, in a temp `NEX_HOME`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::control_support::{NexHome as Home, alive, kill9, pid_files, sigterm, wait_exit};

const AIX: &str = env!("CARGO_BIN_EXE_aix");

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/control")
}

fn fake_cmd(args: &str) -> String {
    format!("sh {} {args}", fixtures().join("fake_worker.sh").display())
}

#[test]
fn status_json_reflects_a_tail_restart_within_one_probe_interval() {
    let home = Home::new(true);
    let mut daemon = home.daemon(&fake_cmd("tail"));
    let st = home.status_until(Duration::from_secs(10), |s| {
        s["daemon"]["tail"]["run"]["phase"] == "running"
            && s["daemon"]["tail"]["run"]["pid"].is_u64()
    });
    assert_eq!(st["daemon"]["mode"], "daemon");
    let pid = st["daemon"]["tail"]["run"]["pid"].as_u64().unwrap() as u32;
    kill9(pid);
    let killed = Instant::now();
    let st = home.status_until(Duration::from_secs(5), |s| {
        let tail = &s["daemon"]["tail"];
        tail["restarts"] == 1
            && tail["run"]["pid"]
                .as_u64()
                .is_some_and(|p| p != u64::from(pid))
    });
    // Backoff 50 ms; one probe interval is 300 ms (plus process start-up slack on a busy box).
    assert!(
        killed.elapsed() < Duration::from_millis(300 + 1200),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(st["daemon"]["tail"]["last_error"], "worker_exited");
    assert_eq!(st["daemon"]["tail"]["state"], "running");

    sigterm(&daemon);
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).success());
    assert!(!home.path().join("run/nex.sock").exists());
}

#[test]
fn sigterm_mid_backfill_exits_0_and_the_next_start_completes_the_job() {
    let home = Home::new(false);
    let mut daemon = home.daemon(&fake_cmd("backfill 100000 0.01"));
    let enq = home.json(&["import", "backfill", "--json"]);
    assert_eq!(enq["created"], true);
    let id = enq["job"]["id"].as_str().unwrap().to_owned();
    let st = home.status_until(Duration::from_secs(10), |s| {
        s["daemon"]["jobs"][0]["run"]["counters"]["requests"]
            .as_u64()
            .is_some_and(|n| n >= 3)
    });
    let worker = st["daemon"]["jobs"][0]["run"]["pid"].as_u64().unwrap() as u32;
    let asked = Instant::now();
    sigterm(&daemon);
    let status = wait_exit(&mut daemon, Duration::from_secs(10));
    assert!(status.success(), "daemon exit {status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "within shutdown_grace"
    );
    assert!(!alive(worker));
    let jobs = home.json(&["import", "jobs", "--json"]);
    assert_eq!(jobs[0]["id"], id.as_str());
    assert_eq!(jobs[0]["status"], "failed");
    assert_eq!(jobs[0]["error_code"], "daemon_shutdown");
    assert!(jobs[0]["stats"]["requests"].as_u64().unwrap() >= 3);

    // The next start (now with the real worker) retries and completes it.
    let aix = format!("{AIX} worker --stdio");
    let mut daemon = home.daemon(&aix);
    let jobs = home.jobs_until(Duration::from_secs(20), |jobs| {
        jobs[0]["status"] == "completed"
    });
    assert_eq!(jobs[0]["stats"]["retry_of"], id.as_str());
    assert_eq!(jobs[0]["stats"]["total"], 1);
    assert_eq!(jobs[0]["stats"]["emitted"], 1);
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).success());
}

#[test]
fn in_process_backfill_with_the_real_worker_then_sessions_list() {
    let home = Home::new(false);
    let aix = format!("{AIX} worker --stdio");
    let out = home.run(&aix, &["import", "backfill", "--wait", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["status"], "completed");
    assert_eq!(job["stats"]["attempts"], 1);
    assert_eq!(job["stats"]["total"], 1);
    assert_eq!(job["stats"]["emitted"], 1);
    // The fixture holds one Claude Code session of one exchange.
    assert_eq!(job["stats"]["imported"], 1);
    assert_eq!(job["stats"]["failed"], 0);
    let sessions = home.json(&["sessions", "list", "--json"]);
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    assert_eq!(sessions[0]["provider"], "claude-code");
    assert_eq!(
        sessions[0]["source_session_id"],
        "7f3c2a10-0000-4000-8000-00000000c0de"
    );
    assert_eq!(sessions[0]["persona_id"], "main");
    let label = sessions[0]["label"].as_str().unwrap().to_owned();
    let show = home.json(&["sessions", "show", &label, "--json"]);
    assert_eq!(show["messages"], 2);
    assert_eq!(show["last_run_id"], job["stats"]["run_id"]);
    assert!(show["turns"].as_u64().unwrap() >= 1);
    let none = home.run(&aix, &["sessions", "list", "--provider", "codex", "--json"]);
    assert_eq!(String::from_utf8_lossy(&none.stdout).trim(), "[]");
    // A second backfill finds nothing new (the cursors were committed with the rows).
    let out = home.run(&aix, &["import", "backfill", "--wait", "--json"]);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["status"], "completed");
    assert_eq!(again["stats"]["imported"], 0);
    assert_eq!(again["stats"]["upserted"], 0);
    // The runs are in the audit trail; no daemon: status says so.
    let st = home.json(&["import", "status", "--json"]);
    assert!(st["daemon"].is_null());
    assert_eq!(st["recent_jobs"].as_array().unwrap().len(), 2);
    // Without a daemon, stop and restart have nothing to talk to.
    let out = home.run(&aix, &["import", "restart"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[daemon_not_running]"));
}

#[test]
fn no_import_daemon_stays_up_without_orchestration() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new(true);
    // NEX_HOME may be any directory of the user's: nex leaves its mode alone.
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut daemon = {
        let child = home
            .nex(&fake_cmd("tail"))
            .args(["daemon", "--no-import"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        home.status_until(Duration::from_secs(10), |s| !s["daemon"].is_null());
        child
    };
    let st = home.status().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(home.path()), 0o755);
    assert_eq!(mode(&home.path().join("run")), 0o700);
    assert_eq!(mode(&home.path().join("run/nex.sock")), 0o600);
    assert_eq!(mode(&home.path().join("nexus.db")), 0o600);
    assert_eq!(mode(&home.path().join("agents.db")), 0o600);
    assert_eq!(st["daemon"]["import_enabled"], false);
    assert_eq!(st["daemon"]["tail"]["state"], "disabled");
    let out = home.run("unused", &["import", "backfill"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[import_disabled]"));
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).success());
}

#[test]
fn kill9_of_the_daemon_orphans_are_killed_at_next_start_and_the_job_retried() {
    let home = Home::new(true);
    let marks = tempfile::tempdir().unwrap();
    let mut daemon = home.daemon(&fake_cmd(&format!("stubborn {}", marks.path().display())));
    let enq = home.json(&["import", "backfill", "--json"]);
    let id = enq["job"]["id"].as_str().unwrap().to_owned();
    let st = home.status_until(Duration::from_secs(10), |s| {
        s["daemon"]["tail"]["run"]["phase"] == "running"
            && s["daemon"]["jobs"][0]["run"]["phase"] == "running"
    });
    let tail_pid = st["daemon"]["tail"]["run"]["pid"].as_u64().unwrap() as u32;
    let job_pid = st["daemon"]["jobs"][0]["run"]["pid"].as_u64().unwrap() as u32;
    kill9(daemon.id());
    let _ = daemon.wait();
    // The workers outlive the daemon that spawned them: each one has seen its stdin end (the
    // daemon is gone) and went on, which it marks with a file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(marks.path()).unwrap().count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the workers did not see the daemon go"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(alive(tail_pid) && alive(job_pid));

    let aix = format!("{AIX} worker --stdio");
    let mut daemon = home.daemon(&aix);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(tail_pid) || alive(job_pid) {
        assert!(Instant::now() < deadline, "orphans survived the next start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let jobs = home.jobs_until(Duration::from_secs(20), |jobs| {
        jobs[0]["status"] == "completed"
    });
    assert_eq!(jobs[1]["id"], id.as_str());
    assert_eq!(jobs[1]["status"], "failed");
    assert_eq!(jobs[1]["error_code"], "daemon_restarted");
    assert_eq!(jobs[0]["stats"]["retry_of"], id.as_str());
    // Only the new daemon's workers have pid files.
    let st = home.status().unwrap();
    let live: Vec<u64> = [&st["daemon"]["tail"]["run"]["pid"]]
        .iter()
        .filter_map(|p| p.as_u64())
        .collect();
    let pid_files = pid_files(&home.path().join("run"));
    assert_eq!(pid_files, live.len());
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).success());
}

#[test]
fn daemon_tail_with_the_real_worker_imports_appended_turns() {
    let home = Home::new(true);
    let claude = home.path().join("claude");
    let project = claude.join("projects/-home-u-demo");
    std::fs::create_dir_all(&project).unwrap();
    let name = "7f3c2a10-0000-4000-8000-00000000c0de.jsonl";
    let session = project.join(name);
    std::fs::copy(
        fixtures().join("claude/projects/-home-u-demo").join(name),
        &session,
    )
    .unwrap();
    let aix = format!("{AIX} worker --stdio");
    let mut child = home
        .nex(&aix)
        .env("CLAUDE_CONFIG_DIR", &claude)
        .arg("daemon")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let messages = |home: &Home| -> Option<u64> {
        let list = home.json(&["sessions", "list", "--json"]);
        let label = list.get(0)?["label"].as_str()?.to_owned();
        home.json(&["sessions", "show", &label, "--json"])["messages"].as_u64()
    };
    let wait_for = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while home
            .path()
            .join("agents.db")
            .exists()
            .then(|| messages(&home))
            .flatten()
            != Some(n)
        {
            assert!(
                Instant::now() < deadline,
                "ledger never reached {n} messages"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(2);
    let line = r#"{"type":"user","uuid":"c0de0000-0000-4000-8000-000000000003","parentUuid":"c0de0000-0000-4000-8000-000000000002","sessionId":"7f3c2a10-0000-4000-8000-00000000c0de","timestamp":"2026-03-01T10:01:00.000Z","cwd":"/home/u/demo","message":{"role":"user","content":"and the hidden ones?"}}"#;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&session)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
    wait_for(3);
    let st = home.status().unwrap();
    assert_eq!(st["daemon"]["tail"]["state"], "running");
    assert!(
        st["daemon"]["tail"]["run"]["counters"]["requests"]
            .as_u64()
            .unwrap()
            >= 2
    );
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}

#[test]
fn human_output_summaries() {
    let home = Home::new(false);
    let aix = format!("{AIX} worker --stdio");
    let out = home.run(&aix, &["import", "backfill", "--wait"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("completed"), "{text}");
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("FILES"))
        .collect();
    assert_eq!(table.len(), 2, "{text}");
    let cells: Vec<&str> = table[1].split_whitespace().collect();
    // FILES UNCHANGED READ IMPORTED UPSERTED SKIPPED REPLAYED FAILED REJECTED
    assert_eq!(cells, vec!["1", "0", "1", "1", "0", "0", "0", "0", "0"]);
    let out = home.run(&aix, &["import", "status"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("daemon: not running"));
    let out = home.run(&aix, &["import", "jobs"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("JOB"), "{text}");
    assert_eq!(text.lines().count(), 2);
    let out = home.run(&aix, &["sessions", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.contains("claude-code")),
        "{text}"
    );
    let out = home.run(&aix, &["sessions", "show", "import:nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[session_not_found]"));
}

#[test]
fn debug_logs_of_a_daemon_run_never_contain_session_content() {
    // TARGETS.md R8: logs carry codes, counts, ids and paths only.
    let home = Home::new(true);
    let claude = home.path().join("claude");
    let project = claude.join("projects/-home-u-secret");
    std::fs::create_dir_all(&project).unwrap();
    let marker = "MARKER-5f1d-never-log-me";
    let lines = [
        format!(
            r#"{{"type":"user","uuid":"u-1","parentUuid":null,"sessionId":"s-secret","timestamp":"2026-03-01T10:00:00.000Z","cwd":"/home/u/secret","message":{{"role":"user","content":"{marker} user"}}}}"#
        ),
        format!(
            r#"{{"type":"assistant","uuid":"u-2","parentUuid":"u-1","sessionId":"s-secret","timestamp":"2026-03-01T10:00:01.000Z","cwd":"/home/u/secret","message":{{"id":"m-1","role":"assistant","model":"claude-sonnet-4-5","content":[{{"type":"tool_use","id":"t-1","name":"Bash","input":{{"command":"echo {marker}"}}}}],"usage":{{"input_tokens":1,"output_tokens":1}}}}}}"#
        ),
        // Invalid JSON holding the marker: rejected lines must not echo it either.
        format!(r#"{{"type":"user","message":"{marker}"#),
    ];
    std::fs::write(project.join("s-secret.jsonl"), lines.join("\n") + "\n").unwrap();
    let aix = format!("{AIX} worker --stdio");
    let mut child = home
        .nex(&aix)
        .env("CLAUDE_CONFIG_DIR", &claude)
        .env("RUST_LOG", "debug")
        .env("AIX_LOG", "debug")
        .arg("daemon")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the logs as they come: a full pipe would block the daemon.
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        logs
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = home.path().join("agents.db").exists()
            && home
                .json(&["sessions", "list", "--json"])
                .as_array()
                .is_some_and(|a| !a.is_empty());
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "session never imported");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = home.json(&["import", "backfill", "--wait", "--json"]);
    assert_eq!(out["status"], "completed");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let logs = reader.join().unwrap();
    assert!(logs.contains("run started"), "debug logs were captured");
    assert!(!logs.contains(marker), "a log line carries session content");
}

#[test]
fn sigint_to_an_in_process_backfill_marks_the_job_and_the_next_backfill_resumes_it() {
    let home = Home::new(false);
    let mut child = home
        .nex(&fake_cmd("backfill 100000 0.01"))
        .args(["import", "backfill", "--wait", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The job is visible (read-only) from another process while it runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let jobs = home.json(&["import", "jobs", "--json"]);
        if jobs[0]["stats"]["requests"]
            .as_u64()
            .is_some_and(|n| n >= 2)
        {
            break jobs[0]["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "job never progressed: {jobs}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    let jobs = home.json(&["import", "jobs", "--json"]);
    assert_eq!(jobs[0]["id"], id.as_str());
    assert_eq!(jobs[0]["status"], "failed");
    assert_eq!(jobs[0]["error_code"], "daemon_shutdown");
    // The next backfill picks the interrupted job up (as its retry) and waits for it.
    let out = home.run(
        &fake_cmd("backfill 3"),
        &["import", "backfill", "--wait", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["status"], "completed");
    assert_eq!(job["stats"]["retry_of"], id.as_str());
    assert_eq!(
        home.json(&["import", "jobs", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
