//! What `nex` refuses and how it says so, through the built binary in a temp `NEX_HOME`:
//! strict `config.toml` (unknown keys, out-of-range timings), errors that name the file they
//! are about with the OS reason, file modes of what it creates, and the ledger symlink rule.

use std::process::Output;

use crate::control_support::NexHome as Home;

const AIX: &str = env!("CARGO_BIN_EXE_aix");

fn worker() -> String {
    format!("{AIX} worker --stdio")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Before: the typo was ignored, so the rollback switch did nothing and the backfill ran;
/// `start_timeout_ms = 0` was accepted and failed every backfill later.
#[test]
fn a_config_typo_or_a_timing_out_of_range_stops_nex_with_the_key_named() {
    let home = Home::new(false);
    let config = home.path().join("config.toml");
    std::fs::write(&config, "[import]\nenable = false\n").unwrap();
    let out = home.run(&worker(), &["import", "backfill", "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("unknown key `import.enable` (did you mean `import.enabled`?)")
            && err.contains(&config.display().to_string())
            && err.contains("[config_invalid]"),
        "{err}"
    );
    assert!(!home.ledger().exists(), "nothing was imported");

    std::fs::write(&config, "[import]\nstart_timeout_ms = 0\n").unwrap();
    let out = home.run(&worker(), &["daemon"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("import.start_timeout_ms = 0 is out of range: allowed 100 to"),
        "{}",
        stderr(&out)
    );
}

/// Before: `control socket I/O on <home>/run/nex.sock [socket_failed]`, about a file that
/// does not exist, without the reason.
#[test]
fn a_nex_home_that_is_a_file_is_named_with_the_os_reason() {
    let home = Home::new(false);
    let file = home.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    for args in [&["import", "status"][..], &["import", "backfill", "--wait"]] {
        let out = home
            .nex(&worker())
            .env("NEX_HOME", &file)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            stderr(&out).trim(),
            format!(
                "nex: NEX_HOME {} is not usable: Not a directory (os error 20) [nex_home_invalid]",
                file.display()
            )
        );
    }
}

/// Before: `runtime database error (job_list) [store_failed]` from `status`, and
/// `sqlite: file is not a database [ledger_write_failed]` from a backfill: no file named.
#[test]
fn a_corrupt_nexus_db_is_named_in_the_error() {
    let home = Home::new(false);
    let nexus = home.path().join("nexus.db");
    std::fs::write(
        &nexus,
        "this is not a database, just text long enough to be read",
    )
    .unwrap();
    let want = format!(
        "nex: cannot use database {}: file is not a database [ledger_open_failed]",
        nexus.display()
    );
    for args in [&["import", "status"][..], &["import", "backfill", "--wait"]] {
        let out = home.run(&worker(), args);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr(&out).trim(), want);
    }
}

/// Before: `file system error on <home>/run [io_failed]`, without the reason.
#[test]
fn io_failed_carries_the_os_reason() {
    let home = Home::new(false);
    std::fs::write(
        home.path().join("run"),
        "a file where the run directory goes",
    )
    .unwrap();
    let out = home.run(&worker(), &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}: File exists (os error 17) [io_failed]",
            home.path().join("run").display()
        )),
        "{err}"
    );
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Before: `worker-<run>.pid` was written with the default mode (0644 under the usual umask).
#[test]
fn worker_pid_files_are_private() {
    let home = Home::new(true);
    let mut daemon = home.daemon(&worker());
    // The tail's worker runs until stopped: its pid file exists once the run has a pid.
    home.status_until(std::time::Duration::from_secs(20), |s| {
        s["daemon"]["tail"]["run"]["pid"].is_u64()
    });
    let run_dir = home.path().join("run");
    let pids: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pid"))
        .collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_eq!(mode(&pids[0]), 0o600, "{}", pids[0].display());
    crate::control_support::sigterm(&daemon);
    let status = crate::control_support::wait_exit(&mut daemon, std::time::Duration::from_secs(15));
    assert!(status.success());
}

/// Before: a NEX_HOME of mode 0777 was used without a word.
#[test]
fn a_nex_home_open_to_others_is_warned_about_and_one_nex_creates_is_0700() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new(false);
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = home.run(&worker(), &["import", "backfill", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("NEX_HOME is open to other users") && err.contains("0777"),
        "{err}"
    );
    // Left as the user set it: NEX_HOME may be a directory nex did not create.
    assert_eq!(mode(home.path()), 0o777);

    let fresh = home.path().join("fresh/nex");
    let out = home
        .nex(&worker())
        .env("NEX_HOME", &fresh)
        .args(["import", "backfill", "--wait"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("open to other users"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("agents.db")), 0o600);
}

/// Before: a symlinked `agents.db` was followed (and its target given mode 0600 on creation).
#[test]
fn a_symlinked_ledger_is_refused_unless_allowed() {
    let home = Home::new(false);
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("other.db");
    std::os::unix::fs::symlink(&target, home.ledger()).unwrap();
    let out = home.run(&worker(), &["import", "backfill", "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "nex: the ledger {} is a symbolic link; not following it (pass --allow-symlinked-ledger to use it) [ledger_symlinked]",
            home.ledger().display()
        )
    );
    assert!(!target.exists());
    let requests = home.path().join("requests.jsonl");
    std::fs::write(&requests, "").unwrap();
    let ledger = home.ledger().display().to_string();
    let out = home.run(
        "unused",
        &[
            "import",
            "apply",
            "--ledger",
            &ledger,
            requests.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("[ledger_symlinked]"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists());

    // The operator's say-so.
    let out = home.run(
        &worker(),
        &["import", "backfill", "--wait", "--allow-symlinked-ledger"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(target.exists());
}
