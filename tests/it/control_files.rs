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
