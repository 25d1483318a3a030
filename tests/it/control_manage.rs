//! Managing the daemon and a first run, through the built binaries: `nex daemon stop`, `nex
//! service install|uninstall|status`, `nex import tail` after a stop, what `status` says about
//! a stopping worker, and the read commands before any import (issue 15, items 4 and 5).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::control_support::{NexHome as Home, wait_exit};

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

#[test]
fn daemon_stop_stops_it_gracefully_and_returns_once_it_has_exited() {
    let home = Home::new(true);
    let mut daemon = home.daemon(&fake_cmd("tail"));
    home.status_until(Duration::from_secs(10), |s| {
        s["daemon"]["tail"]["run"]["phase"] == "running"
    });
    // Before any commit the status says `-`, never an empty value.
    let (status, _) = text(&home.run("unused", &["import", "status"]));
    assert!(status.contains("last commit -"), "{status}");
    assert!(!status.contains("last commit ,"), "{status}");

    let out = home.run("unused", &["daemon", "stop", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let stopped: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(stopped["stopped"], true);
    assert_eq!(stopped["pid"], daemon.id());
    // `daemon stop` returned after the exit: the process is already gone (reaped at once).
    let exit = wait_exit(&mut daemon, Duration::from_millis(500));
    assert!(exit.success(), "{exit:?}");
    assert!(!home.path().join("run/nex.sock").exists());
    assert!(home.daemon_log_tail(5).contains("daemon stopped"));

    // Nothing to stop: a clear message and the failure code (README: exit 1, code in brackets).
    let out = home.run("unused", &["daemon", "stop"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("[daemon_not_running]"), "{stderr}");

    // The text form.
    let mut daemon = home.daemon(&fake_cmd("tail"));
    let out = home.run("unused", &["daemon", "stop"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("daemon stopped"), "{stdout}");
    assert!(wait_exit(&mut daemon, Duration::from_millis(500)).success());
}

/// Regression: `nex import stop; nex import stop; nex import tail` printed `tail stopped`,
/// exited 0 and left the tail stopped, because `tail` ignored a request made while the stopped
/// worker was still draining. A worker that ignores `run.stop` keeps that window open.
#[test]
fn tail_right_after_a_double_stop_leaves_the_tail_running() {
    let home = Home::with_config(true, &[("stop_grace_ms", 200)]);
    let mut daemon = home.daemon(&fake_cmd("deaf"));
    let st = home.status_until(Duration::from_secs(10), |s| {
        s["daemon"]["tail"]["run"]["phase"] == "running"
    });
    let old = st["daemon"]["tail"]["run"]["pid"].as_u64().unwrap();
    let stop = home.json(&["import", "stop", "--json"]);
    assert_eq!(stop["tail"]["state"], "stopped");
    // The draining worker is shown as stopping, never as healthy.
    assert_eq!(stop["tail"]["run"]["phase"], "stopping");
    let (status, _) = text(&home.run("unused", &["import", "status"]));
    let tail_line = status.lines().find(|l| l.starts_with("tail:")).unwrap();
    assert!(tail_line.contains("stopping"), "{status}");
    assert!(!tail_line.contains("healthy"), "{status}");
    home.json(&["import", "stop", "--json"]);

    let out = home.run("unused", &["import", "tail", "--json"]);
    assert!(out.status.success());
    let tail: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tail["state"], "running");
    // Once the old worker is gone (killed after its grace), a new one runs.
    home.status_until(Duration::from_secs(20), |s| {
        let run = &s["daemon"]["tail"]["run"];
        s["daemon"]["tail"]["state"] == "running"
            && run["phase"] == "running"
            && run["pid"].as_u64().is_some_and(|p| p != old)
    });
    let out = home.run("unused", &["daemon", "stop"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(wait_exit(&mut daemon, Duration::from_secs(1)).success());
}

#[test]
fn read_commands_before_any_import_say_no_sessions_yet_and_create_nothing() {
    let home = Home::new(false);
    let ledger = home.ledger();
    for args in [
        &["sessions", "list"][..],
        &["sessions", "show", "import:codex:x:y"],
        &["import", "status"],
        &["import", "jobs"],
    ] {
        let out = home.run("unused", args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(
            stdout.contains("no sessions yet: run `nex import backfill`"),
            "{args:?}: {stdout}"
        );
        assert!(!stderr.contains("io_failed"), "{args:?}: {stderr}");
    }
    assert_eq!(
        home.json(&["sessions", "list", "--json"]),
        Value::Array(vec![])
    );
    assert_eq!(home.json(&["sessions", "show", "x", "--json"]), Value::Null);
    assert_eq!(
        home.json(&["import", "jobs", "--json"]),
        Value::Array(vec![])
    );
    assert!(!ledger.exists(), "a read command created the ledger");
    assert!(!home.path().join("nexus.db").exists());

    // An existing but empty ledger (a daemon started, nothing imported yet) answers the same.
    let mut daemon = home.daemon("true");
    let out = home.run("unused", &["daemon", "stop"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(wait_exit(&mut daemon, Duration::from_secs(1)).success());
    assert!(ledger.exists());
    let (stdout, _) = text(&home.run("unused", &["sessions", "list"]));
    assert!(stdout.contains("no sessions yet"), "{stdout}");
}

/// `nex service` in a temp HOME: the generated unit and plist, install/status/uninstall.
fn service(home: &Home, args: &[&str]) -> Output {
    let out = home
        .nex("unused")
        .env("NEX_HOME", home.path().join("nex home%"))
        .arg("service")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out).1);
    out
}

#[test]
fn service_install_writes_a_systemd_user_unit_that_runs_this_nex() {
    let home = Home::new(false);
    let nex = Path::new(env!("CARGO_BIN_EXE_nex")).canonicalize().unwrap();
    let (printed, _) = text(&service(
        &home,
        &["install", "--print", "--manager", "systemd"],
    ));
    let unit = home.path().join(".config/systemd/user/nex.service");
    assert!(!unit.exists(), "--print wrote the file");
    assert!(
        printed.contains(&format!("ExecStart=\"{}\" daemon\n", nex.display())),
        "{printed}"
    );
    assert!(printed.contains("Restart=on-failure\n"));
    assert!(printed.contains("WantedBy=default.target\n"));
    // NEX_HOME passes through, its `%` escaped from systemd's specifiers.
    let nex_home = home.path().join("nex home%%");
    assert!(
        printed.contains(&format!(
            "Environment=\"NEX_HOME={}\"\n",
            nex_home.display()
        )),
        "{printed}"
    );

    let out = service(&home, &["install", "--manager", "systemd", "--json"]);
    let installed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(installed["installed"], true);
    assert_eq!(installed["path"], unit.display().to_string());
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), printed);
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", text(&verify).1);
    }
    let (status, _) = text(&service(&home, &["status", "--manager", "systemd"]));
    assert!(
        status.starts_with(&format!("installed: {}", unit.display())),
        "{status}"
    );

    service(&home, &["uninstall", "--manager", "systemd"]);
    assert!(!unit.exists());
    let out = service(&home, &["status", "--manager", "systemd", "--json"]);
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["installed"], false);
    let (again, _) = text(&service(&home, &["uninstall", "--manager", "systemd"]));
    assert!(again.starts_with("not installed"), "{again}");
}

#[test]
fn service_install_writes_a_launchd_agent_that_runs_this_nex() {
    let home = Home::new(false);
    let nex = Path::new(env!("CARGO_BIN_EXE_nex")).canonicalize().unwrap();
    service(&home, &["install", "--manager", "launchd"]);
    let plist = home
        .path()
        .join("Library/LaunchAgents/dev.nex.daemon.plist");
    let text = std::fs::read_to_string(&plist).unwrap();
    assert!(text.contains("<string>dev.nex.daemon</string>"), "{text}");
    assert!(
        text.contains(&format!(
            "<array>\n    <string>{}</string>\n    <string>daemon</string>\n  </array>",
            nex.display()
        )),
        "{text}"
    );
    assert!(text.contains("<key>RunAtLoad</key>\n  <true/>"));
    // Restarted when it fails, not when it was stopped.
    assert!(text.contains("<key>SuccessfulExit</key>\n    <false/>"));
    let nex_home = home.path().join("nex home%");
    assert!(
        text.contains(&format!(
            "<key>NEX_HOME</key>\n    <string>{}</string>",
            nex_home.display()
        )),
        "{text}"
    );
    if Command::new("plutil").arg("-help").output().is_ok() {
        let lint = Command::new("plutil")
            .arg("-lint")
            .arg(&plist)
            .output()
            .unwrap();
        assert!(lint.status.success());
    }
    service(&home, &["uninstall", "--manager", "launchd"]);
    assert!(!plist.exists());
}
