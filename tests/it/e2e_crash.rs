//! Worker crash and resume through the whole path (TARGETS R2, worker side): `aix worker
//! --stdio` (backfill) piped into `nex import replay`, `kill -9` of the worker once some
//! frames have committed, then a new worker started with `run.start.cursors` = the cursors
//! committed in the ledger. The final canonical dump equals a clean single-run import: no
//! duplicate rows, nothing missing.

use std::time::{Duration, Instant};

use nex::protocol::RunMode;

use crate::e2e_support::{Tree, assert_clean, backfill, canonical, first_difference, open, worker};

fn imported_sessions(ledger: &std::path::Path) -> i64 {
    if !ledger.exists() {
        return 0;
    }
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    let _ = conn.busy_timeout(Duration::from_secs(2));
    conn.query_row("SELECT count(*) FROM session_imports", [], |r| r.get(0))
        .unwrap_or(0)
}

#[test]
fn killed_worker_resumes_from_committed_cursors() {
    // Fixtures plus a generated corpus large enough that the kill lands mid-run: the worker
    // must still be writing (blocked on the pipe) when a few sessions have committed; with 40
    // sessions a fast worker had written everything before the third commit.
    let tree = Tree::with_fixtures();
    tree.add_generated(7, 200);

    let reference = tree.ledger("clean.db");
    let clean = backfill(&tree, &reference);
    assert_clean(&clean);
    let total = imported_sessions(&reference);
    eprintln!("e2e_crash: clean import {:.1} s", clean.secs);
    assert!(total > 40);

    // Run 1: killed once a few sessions are in.
    let ledger = tree.ledger("crash.db");
    let mut first = worker(&tree, &ledger, RunMode::Backfill, Vec::new());
    let t = Instant::now();
    while imported_sessions(&ledger) < 3 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill_worker().unwrap();
    let first = first.finish_any().unwrap();
    assert_eq!(first.aix_status, 128 + 9, "the worker was killed");
    assert_eq!(first.nex_status, 0, "nex consumed the cut stream");
    // The kill may tear the frame being written: at most that one line is rejected.
    assert_eq!(first.report.failed, 0);
    let torn: u64 = first.report.rejected.values().sum();
    assert!(
        torn <= 1
            && first
                .report
                .rejected
                .keys()
                .all(|k| k == "frame_json_invalid"),
        "rejects: {:?}",
        first.report.rejected
    );
    let after_crash = imported_sessions(&ledger);
    eprintln!(
        "e2e_crash: killed after {:.1} s with {after_crash} of {total} sessions in",
        first.secs
    );
    assert!(after_crash >= 3, "some frames committed before the kill");
    assert!(
        after_crash < total,
        "the kill landed before the end ({after_crash} of {total})"
    );

    // Run 2: resumes from the cursors committed with those frames.
    let cursors = nex::ledger::load_cursors(&open(&ledger), "aix").unwrap();
    assert!(!cursors.is_empty());
    let second = worker(&tree, &ledger, RunMode::Backfill, cursors)
        .finish()
        .unwrap();
    assert_clean(&second);
    eprintln!("e2e_crash: resumed run {:.1} s", second.secs);
    assert!(
        second.report.imported + second.report.upserted + second.report.skipped > 0,
        "the resumed run imported the rest"
    );

    let got = canonical(&open(&ledger));
    let want = canonical(&open(&reference));
    assert!(
        got == want,
        "resumed ledger != clean import: {}",
        first_difference(&got, &want)
    );
}
