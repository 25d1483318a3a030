//! The allocator settings of `nex` and `aix` (`nex::memory`): a started `nex` runs with glibc's
//! `MALLOC_*` variables set, under its own process id, and the workers it starts inherit them;
//! a user's own setting is left as it is, and nothing is added to it.

use std::process::Stdio;
use std::time::Duration;

use crate::control_support::{NexHome as Home, sigterm, wait_exit};

fn fake_tail() -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/control/fake_worker.sh");
    format!("sh {} tail", script.display())
}

/// The `MALLOC_*` variables of a running process, from `/proc`.
fn malloc_vars(pid: u32) -> Vec<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .filter(|v| v.starts_with("MALLOC_"))
        .collect();
    vars.sort();
    vars
}

/// The pid of the daemon's tail worker, once it runs.
fn tail_worker(home: &Home) -> u32 {
    let st = home.status_until(Duration::from_secs(20), |s| {
        s["daemon"]["tail"]["run"]["phase"] == "running"
            && s["daemon"]["tail"]["run"]["pid"].is_u64()
    });
    st["daemon"]["tail"]["run"]["pid"].as_u64().unwrap() as u32
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn nex_and_its_workers_run_with_the_allocator_settings() {
    if std::env::vars().any(|(k, _)| k.starts_with("MALLOC_")) {
        eprintln!("skipped: this test's own environment sets MALLOC_* variables");
        return;
    }
    let home = Home::new(true);
    let mut daemon = home.daemon(&fake_tail());
    let worker = tail_worker(&home);
    let expected: Vec<String> = {
        let mut v: Vec<String> = nex::memory::settings()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        v.sort();
        v
    };
    // The re-executed daemon is the process that was spawned: same pid.
    assert_eq!(malloc_vars(daemon.id()), expected);
    assert_eq!(malloc_vars(worker), expected);
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).success());
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn a_users_own_malloc_setting_is_kept_and_nothing_is_added() {
    let home = Home::new(true);
    let log = std::fs::File::create(home.path().join("daemon.log")).unwrap();
    let mut daemon = home
        .nex(&fake_tail())
        .arg("daemon")
        .env("MALLOC_ARENA_MAX", "4")
        .env_remove("MALLOC_MMAP_THRESHOLD_")
        .env_remove("MALLOC_TRIM_THRESHOLD_")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let worker = tail_worker(&home);
    assert_eq!(malloc_vars(daemon.id()), ["MALLOC_ARENA_MAX=4"]);
    assert_eq!(malloc_vars(worker), ["MALLOC_ARENA_MAX=4"]);
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon, Duration::from_secs(10)).success());
}
