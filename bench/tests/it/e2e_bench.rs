//! `nex-bench` worker scenarios, smoke size, through the built binary: the file corpus is
//! deterministic and parses completely, `backfill` imports every session and `rebackfill`
//! re-imports none, `tail-latency` sees every append committed, `idle` measures `nex daemon` and
//! its tail worker (nothing re-imported, no restart) and leaves neither running,
//! `tail-long-turn` sends deltas. No timing is asserted. (`peer` needs the network to install
//! its peer: not tested here.)

use std::path::Path;
use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    for bin in ["aix", "nex"] {
        crate::sibling_bin(bin);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_nex-bench"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nex-bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::String(text))
}

fn tree_bytes(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            tree_bytes(&p, out);
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
}

#[test]
fn files_backfill_and_rebackfill_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        bench(&[
            "files",
            "--out",
            out.to_str().unwrap(),
            "--sessions",
            "10",
            "--large-every",
            "0",
            "--seed",
            "3",
            "--codex-sessions",
            "2",
        ]);
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    tree_bytes(&a, &mut ta);
    tree_bytes(&b, &mut tb);
    assert_eq!(ta.len(), tb.len());
    assert!(
        ta.iter().zip(&tb).all(|(x, y)| x.1 == y.1),
        "same seed, same bytes"
    );
    // 10 sessions, 2 of them spawning a subagent (file + meta), 2 Codex rollouts.
    assert_eq!(ta.len(), 10 + 2 * 2 + 2);

    let r = bench(&[
        "backfill",
        "--corpus",
        a.to_str().unwrap(),
        "--runs",
        "1",
        "--json",
    ]);
    assert_eq!(r["sessions"], 14, "{r}");
    assert!(r["ratio"]["median"].as_f64().unwrap() > 0.0);
    assert!(r["aixPeakRssMib"].as_f64().unwrap() > 0.0);
    assert_eq!(
        r["rebackfillImported"], 0,
        "unchanged files re-imported: {r}"
    );
}

/// `stores`: the generated Cursor and OpenCode databases are read whole, a rebackfill re-sends
/// nothing, live appends are committed. No timing is asserted.
#[test]
fn stores_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench(&[
        "stores",
        "--sessions",
        "4",
        "--bubbles",
        "6",
        "--runs",
        "1",
        "--appends",
        "8",
        "--rate",
        "20",
        "--dir",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    for store in ["cursor", "opencode"] {
        assert_eq!(r[store]["sessions"], 4, "{r}");
        assert_eq!(r[store]["messages"], 24, "{r}");
        assert!(r[store]["bytes"].as_u64().unwrap() > 0, "{r}");
    }
    assert_eq!(r["sessions"], 8, "{r}");
    assert_eq!(r["messages"], 48, "{r}");
    assert!(r["ratio"]["median"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["aixPeakRssMib"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(
        r["rebackfillSessions"], 0,
        "unchanged sessions sent again: {r}"
    );
    let t = &r["tail"];
    assert_eq!(t["all"]["appends"], 8, "{r}");
    // Every append visible, the warm-up ones included (one per store). This guards the tail's
    // poll on a change notification even when the stamp did not move (`force` of
    // `StoreRun::poll`): a stamp (size and mtime of the `-wal`) read after the writer wrote its
    // WAL frames but before the commit was visible made the poll see the old rows and record
    // the new stamp, so a store's last commit stayed unseen until the store was written again
    // (`lastTimedOut`; seen under CPU load without that poll).
    assert_eq!(t["warmupAppends"], 2, "{r}");
    for store in ["cursor", "opencode"] {
        let l = &t[store];
        assert_eq!(l["committed"], l["appends"], "{store}: {r}");
        assert_eq!(l["timedOut"], 0, "{store}: {r}");
    }
    // The stores stay in --dir; the ledgers do not.
    assert!(dir.path().join("cursor/state.vscdb").is_file());
    assert!(dir.path().join("opencode/opencode.db").is_file());
    assert!(!dir.path().join("backfill.db").exists());
}

#[test]
fn tail_latency_smoke() {
    let r = bench(&[
        "tail-latency",
        "--files",
        "3",
        "--appends",
        "12",
        "--rate",
        "20",
        "--json",
    ]);
    assert_eq!(r["committed"], 12, "{r}");
    assert_eq!(r["timedOut"], 0, "{r}");
}

/// Issue 12 at tiny sizes: every size is measured, and an appended tool call puts as many bytes
/// on the pipe whether the open turn holds 3 calls or 40 (deltas, not the whole turn: the
/// turn of 40 is about 200 KB, one call about 5 KB). Bytes, not times, are asserted.
#[test]
fn tail_long_turn_smoke() {
    let r = bench(&[
        "tail-long-turn",
        "--calls",
        "3,40",
        "--appends",
        "3",
        "--runs",
        "1",
        "--settle-ms",
        "50",
        "--json",
    ]);
    let sizes = r["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 2, "{r}");
    for s in sizes {
        assert_eq!(s["appends"], 3, "{r}");
        assert!(s["p50Ms"]["median"].as_f64().unwrap() > 0.0, "{r}");
        assert!(s["ledgerBytes"]["median"].as_f64().unwrap() > 0.0, "{r}");
        assert!(s["pipeBytes"]["median"].as_f64().unwrap() > 1_000.0, "{r}");
    }
    let ratio = r["pipeBytesRatio"].as_f64().unwrap();
    assert!(ratio < 1.5, "pipe bytes grow with the open turn: {r}");
}

#[test]
fn idle_smoke_measures_the_daemon_and_its_worker_and_stops_them() {
    let r = bench(&[
        "idle",
        "--files",
        "20",
        "--seconds",
        "2",
        "--warmup",
        "1",
        "--json",
    ]);
    assert_eq!(r["files"], 20, "{r}");
    assert_eq!(r["backfillImported"], 20, "{r}");
    // The tail ran with every cursor committed: nothing re-imported, no restart.
    assert_eq!(r["tailState"], "running", "{r}");
    assert_eq!(r["tailRestarts"], 0, "{r}");
    assert_eq!(r["tailImported"], 0, "{r}");
    assert!(r["workerPidBefore"].is_u64(), "{r}");
    assert_eq!(r["workerPidBefore"], r["workerPidAfter"], "{r}");
    assert!(r["cpuSecs"].as_f64().is_some_and(|c| c >= 0.0), "{r}");
    assert!(r["windowSecs"].as_f64().unwrap() >= 2.0, "{r}");
    let procs = r["processes"].as_array().unwrap();
    let comms: Vec<&str> = procs.iter().map(|p| p["comm"].as_str().unwrap()).collect();
    assert_eq!(comms, ["nex", "aix"], "the daemon and its tail worker: {r}");
    assert_eq!(procs[1]["pid"], r["workerPidAfter"], "{r}");
    assert!(procs.iter().all(|p| p["rssMib"].as_f64().unwrap() > 0.0));
    // Both were stopped when the scenario ended.
    assert_eq!(r["daemonStoppedCleanly"], true, "{r}");
    for p in procs {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", p["pid"])).unwrap_or_default();
        assert!(
            !stat.contains("(nex)") && !stat.contains("(aix)"),
            "still running: {stat}"
        );
    }
}
