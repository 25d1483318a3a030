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
