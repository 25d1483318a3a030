//! `nex daemon` with the real `aix worker --stdio` on fixture trees (TARGETS R2 through the
//! control plane): backfill jobs and their one-active rule, kill -9 of a job's and of the
//! tail's worker, and cancelling a running job. Determinism comes from holding the agents
//! ledger's write lock (nothing commits, the worker's output backs up) or from a gated worker
//! command, never from timing.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nex_bench::procs::ReplayReport;
use rusqlite::Connection;
use serde_json::Value;

use crate::control_support::{NexHome, alive, kill9, sigterm, wait_exit};
use crate::e2e_support::{Tree, assert_clean, backfill, canonical_readonly, first_difference};

const AIX: &str = env!("CARGO_BIN_EXE_aix");
const WAIT: Duration = Duration::from_secs(25);

/// `aix worker --stdio` reading exactly the tree's roots.
fn aix_cmd(tree: &Tree) -> String {
    format!("{AIX} worker --stdio {}", tree.roots().join(" "))
}

/// A home whose environment points the sources at the tree's empty dir: the worker command's
/// `--claude-dir` / `--codex-dir` are the only roots.
fn home_for(tree: &Tree, tail: bool, overrides: &[(&str, u64)]) -> NexHome {
    let mut home = NexHome::with_config(tail, overrides);
    home.claude = tree.path().join("empty");
    home.codex = tree.path().join("empty");
    home
}

/// The session items `aix scan --json` finds in the tree.
fn scanned_items(tree: &Tree) -> u64 {
    let out = Command::new(AIX)
        .arg("scan")
        .arg("--json")
        .args(tree.roots())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

/// A clean single-run import of the tree (`aix emit | nex import replay`) into a fresh ledger:
/// its canonical dump and report.
fn clean_import(tree: &Tree, name: &str) -> (String, ReplayReport) {
    let ledger = tree.ledger(name);
    let clean = backfill(tree, &ledger);
    assert_clean(&clean);
    (canonical_readonly(&ledger).unwrap(), clean.report)
}

/// Polls the daemon's ledger until its canonical dump equals `want`; fails when it stops
/// changing for `WAIT` (a stall), however long it keeps changing on a loaded machine.
fn ledger_reaches(ledger: &Path, want: &str, what: &str) {
    let mut last_change = Instant::now();
    let mut last = None;
    loop {
        let got = canonical_readonly(ledger);
        if got.as_deref() == Some(want) {
            return;
        }
        if got != last {
            last = got.clone();
            last_change = Instant::now();
        }
        assert!(
            last_change.elapsed() < WAIT,
            "{what}: ledger != clean import: {}",
            first_difference(got.as_deref().unwrap_or(""), want)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The agents ledger's write lock, held until dropped: the daemon's writer retries (for up to
/// 120 s) and commits nothing meanwhile.
struct LedgerLock(Connection);

impl LedgerLock {
    fn take(home: &NexHome) -> LedgerLock {
        let deadline = Instant::now() + WAIT;
        while !home.ledger().exists() {
            assert!(Instant::now() < deadline, "the daemon created no ledger");
            std::thread::sleep(Duration::from_millis(20));
        }
        let conn = Connection::open(home.ledger()).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        LedgerLock(conn)
    }

    fn release(self) {
        self.0.execute_batch("ROLLBACK").unwrap();
    }
}

/// Bytes process `pid` has written so far (`/proc/<pid>/io`).
fn written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The pid of the running job's worker, once it has one.
fn job_pid(home: &NexHome, id: &str) -> u32 {
    let st = home.status_until(WAIT, |s| {
        s["daemon"]["jobs"][0]["id"] == id && s["daemon"]["jobs"][0]["run"]["pid"].is_u64()
    });
    st["daemon"]["jobs"][0]["run"]["pid"].as_u64().unwrap() as u32
}

fn job(home: &NexHome, id: &str) -> Value {
    let jobs = home.json(&["import", "jobs", "--json"]);
    jobs.as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("job {id} not listed: {jobs}"))
}

fn job_until(home: &NexHome, id: &str, status: &str) -> Value {
    home.jobs_until(WAIT, |jobs| {
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id && j["status"] == status)
    });
    job(home, id)
}

fn stop_daemon(mut daemon: Child) {
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon, WAIT).success());
}

#[test]
fn backfill_job_queued_running_completed_and_a_second_backfill_joins_it() {
    let tree = Tree::with_fixtures();
    let want = scanned_items(&tree);
    assert!(want >= 10, "the fixture tree holds {want} sessions");
    // Long start-up allowance: the worker sits at the gate until the test opens it.
    let home = home_for(&tree, false, &[("start_timeout_ms", 120_000)]);
    let gate = tree.path().join("gate");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/control/gated_worker.sh");
    let worker = format!(
        "sh {} {} {}",
        script.display(),
        gate.display(),
        aix_cmd(&tree)
    );
    let daemon = home.daemon(&worker);

    let first = home.json(&["import", "backfill", "--json"]);
    assert_eq!(first["created"], true);
    // Queued, then taken in charge at once: the answer already says running.
    assert_eq!(first["job"]["status"], "running");
    let id = first["job"]["id"].as_str().unwrap().to_owned();
    let pid = job_pid(&home, &id);
    let running = job(&home, &id);
    assert_eq!(running["status"], "running");
    assert!(running["completed_at"].is_null());

    // While it is active, another backfill is the same job.
    let second = home.json(&["import", "backfill", "--json"]);
    assert_eq!(second["created"], false);
    assert_eq!(second["job"]["id"], id.as_str());
    assert_eq!(
        home.json(&["import", "jobs", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    std::fs::write(&gate, b"").unwrap();
    let done = job_until(&home, &id, "completed");
    let stats = &done["stats"];
    let at = |k: &str| done[k].as_i64().unwrap();
    assert!(at("requested_at") <= at("started_at") && at("started_at") <= at("completed_at"));
    assert_eq!(stats["attempts"], 1, "{done}");
    assert_eq!(stats["imported"], want, "{done}");
    // `total` / `emitted` count the worker's files (a Codex fork file holds two sessions).
    assert!(stats["total"].as_u64().is_some_and(|n| n > 0), "{done}");
    assert_eq!(stats["emitted"], stats["total"], "{done}");
    assert_eq!(stats["failed"], 0, "{done}");
    assert!(!alive(pid), "the worker exits with its job");
    ledger_reaches(
        &home.ledger(),
        &clean_import(&tree, "clean.db").0,
        "backfill job",
    );
    stop_daemon(daemon);
}

#[test]
fn kill9_of_the_real_job_worker_resumes_from_committed_cursors_to_one_clean_import() {
    let tree = Tree::with_fixtures();
    // Enough sessions that the worker is still mid-corpus when its first frames commit.
    tree.add_generated(11, 200);
    let (want, clean) = clean_import(&tree, "clean.db");
    // A stopped worker answers no probe: the test's kill ends it, not the health check.
    let home = home_for(&tree, false, &[("health_timeout_ms", 120_000)]);
    let daemon = home.daemon(&aix_cmd(&tree));

    let enq = home.json(&["import", "backfill", "--json"]);
    let id = enq["job"]["id"].as_str().unwrap().to_owned();
    let pid = job_pid(&home, &id);
    // Frozen once a first batch committed with its cursors, then killed.
    home.status_until(4 * WAIT, |s| {
        s["daemon"]["jobs"][0]["run"]["counters"]["requests"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    });
    signal(pid, "-STOP");
    let before = canonical_readonly(&home.ledger()).unwrap();
    assert_ne!(before, want, "the kill lands before the end");
    kill9(pid);

    let done = job_until(&home, &id, "completed");
    assert_eq!(done["stats"]["attempts"], 2, "{done}");
    assert_eq!(done["stats"]["failed"], 0, "{done}");
    // The retry read only the files past the committed cursors, and no item was imported twice
    // over the two runs.
    let retry_files = done["stats"]["total"].as_u64().unwrap();
    assert!(
        retry_files > 0 && retry_files < clean.cursors_stored,
        "{done} vs {clean:?}"
    );
    assert_eq!(
        done["stats"]["imported"], clean.imported,
        "{done} vs {clean:?}"
    );
    assert!(!alive(pid));
    let got = canonical_readonly(&home.ledger()).unwrap();
    assert!(
        got == want,
        "resumed ledger != clean import: {}",
        first_difference(&got, &want)
    );
    stop_daemon(daemon);
}

#[test]
fn stop_of_a_running_real_job_cancels_it_and_the_worker_is_gone() {
    let tree = Tree::with_fixtures();
    tree.add_generated(5, 20);
    let home = home_for(&tree, false, &[]);
    let daemon = home.daemon(&aix_cmd(&tree));
    // Held ledger: the job cannot finish before the stop.
    let lock = LedgerLock::take(&home);
    let enq = home.json(&["import", "backfill", "--json"]);
    let id = enq["job"]["id"].as_str().unwrap().to_owned();
    let pid = job_pid(&home, &id);
    let deadline = Instant::now() + WAIT;
    while written(pid) == 0 {
        assert!(Instant::now() < deadline, "the worker wrote nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = home.run("unused", &["import", "stop", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lock.release();
    let done = job_until(&home, &id, "cancelled");
    assert_eq!(done["stats"]["attempts"], 1, "{done}");
    let deadline = Instant::now() + WAIT;
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "worker {pid} still exists");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing runs it again.
    let st = home.status().unwrap();
    assert!(
        st["daemon"]["jobs"].as_array().is_none_or(|j| j.is_empty()),
        "{st}"
    );
    stop_daemon(daemon);
}

/// Appends `lines` (one JSON record each) to `file`.
fn append(file: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// A user record continuing the control fixture's demo session.
fn demo_line(n: u32) -> String {
    format!(
        r#"{{"type":"user","uuid":"c0de0000-0000-4000-8000-0000000001{n:02}","parentUuid":"c0de0000-0000-4000-8000-000000000002","sessionId":"7f3c2a10-0000-4000-8000-00000000c0de","timestamp":"2026-03-01T10:{n:02}:00.000Z","cwd":"/home/u/demo","message":{{"role":"user","content":"appended {n}"}}}}"#
    )
}

#[test]
fn kill9_of_the_real_tail_worker_restarts_it_and_later_appends_are_imported() {
    let tree = Tree::with_fixtures();
    let name = "7f3c2a10-0000-4000-8000-00000000c0de.jsonl";
    let demo = tree.claude().join("-home-u-demo");
    std::fs::create_dir_all(&demo).unwrap();
    let session = demo.join(name);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/control/claude/projects/-home-u-demo")
            .join(name),
        &session,
    )
    .unwrap();
    let home = home_for(&tree, true, &[]);
    let daemon = home.daemon(&aix_cmd(&tree));
    // The tail's first pass imports what is there.
    ledger_reaches(
        &home.ledger(),
        &clean_import(&tree, "clean-1.db").0,
        "first pass",
    );
    let st = home.status_until(WAIT, |s| s["daemon"]["tail"]["run"]["pid"].is_u64());
    let pid = st["daemon"]["tail"]["run"]["pid"].as_u64().unwrap();
    let restarts = st["daemon"]["tail"]["restarts"].as_u64().unwrap();

    kill9(pid as u32);
    // One line while no worker may be running, more once the new one is up.
    append(&session, &[demo_line(1)]);
    let st = home.status_until(WAIT, |s| {
        let tail = &s["daemon"]["tail"];
        tail["restarts"].as_u64().is_some_and(|n| n > restarts)
            && tail["run"]["pid"].as_u64().is_some_and(|p| p != pid)
            && tail["run"]["phase"] == "running"
    });
    assert_eq!(st["daemon"]["tail"]["state"], "running");
    assert!(!alive(pid as u32));
    append(&session, &[demo_line(2), demo_line(3)]);

    let want = clean_import(&tree, "clean-2.db").0;
    ledger_reaches(&home.ledger(), &want, "after the restart");
    let st = home.status().unwrap();
    assert!(st["daemon"]["tail"]["restarts"].as_u64().unwrap() >= 1);
    assert_eq!(st["daemon"]["tail"]["last_error"], "worker_exited");
    stop_daemon(daemon);
}
