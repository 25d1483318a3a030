//! Incremental = full through the whole path (TARGETS R5): every fixture session (and, with
//! `NEX_SAMPLES_DIR`, every sample file whose session no other file shares) is written in random
//! cuts, also mid-line, while `aix worker --stdio` in tail mode feeds `nex import replay -`
//! (the built binaries); the canonical ledger dump then equals the dump after one backfill of
//! the final files into a fresh ledger.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nex::protocol::RunMode;
use nex_bench::rng::Rng;

use crate::e2e_support::{
    Tree, assert_clean, backfill, canonical, files_under, first_difference, fixture_files, open,
    samples_dir, worker,
};

/// Sample files as (destination, source), one file per session id: two files of one session
/// (excerpts) would make the tail's result depend on which finishes last.
fn sample_files(samples: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let mut claude = Vec::new();
    files_under(&samples.join("claude-code"), &mut claude);
    let mut by_session: BTreeMap<String, usize> = BTreeMap::new();
    for p in &claude {
        if p.extension().is_some_and(|e| e == "jsonl")
            && let Ok(text) = std::fs::read_to_string(p)
            && let Some(sid) = text.lines().find_map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()?
                    .get("sessionId")?
                    .as_str()
                    .map(str::to_owned)
            })
        {
            // Subagent files share their parent's sessionId by design; key them by file name.
            let key = if p.to_string_lossy().contains("/subagents/") {
                format!("{sid}/{}", p.file_name().unwrap().to_string_lossy())
            } else {
                sid
            };
            *by_session.entry(key).or_default() += 1;
        }
    }
    let shared: Vec<String> = by_session
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.clone())
        .collect();
    for p in claude {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let in_shared = !p.to_string_lossy().contains("/subagents/")
            && shared
                .iter()
                .any(|s| text.contains(&format!("\"sessionId\":\"{s}\"")));
        if in_shared {
            continue;
        }
        let rel = p.strip_prefix(samples.join("claude-code")).unwrap();
        out.push((Path::new("claude").join(rel), p.clone()));
    }
    let mut codex = Vec::new();
    files_under(&samples.join("codex"), &mut codex);
    for p in codex {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("rollout-") {
            out.push((Path::new("codex/sessions").join(name), p));
        }
    }
    out
}

/// Cuts `len` bytes into 1..=6 pieces at random offsets (mid-line cuts included).
fn cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    let n = rng.range(1, 7) as usize;
    let mut at: Vec<usize> = (1..n)
        .map(|_| rng.range(1, len.max(2) as u64) as usize)
        .collect();
    at.push(len);
    at.sort_unstable();
    at.dedup();
    at
}

fn run_case(files: &[(PathBuf, PathBuf)], seed: u64) {
    let tree = Tree::new();
    let mut rng = Rng::new(seed);
    // (destination, bytes, cut offsets, bytes written so far); metadata files whole at once.
    let mut pending = Vec::new();
    for (rel, src) in files {
        let dest = tree.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let bytes = std::fs::read(src).unwrap();
        if dest.extension().is_some_and(|e| e == "jsonl") {
            std::fs::write(&dest, b"").unwrap();
            let c = cuts(&mut rng, bytes.len());
            pending.push((dest, bytes, c, 0usize));
        } else {
            std::fs::write(&dest, &bytes).unwrap();
        }
    }
    let ledger = tree.ledger("tail.db");
    let mut pair = worker(&tree, &ledger, RunMode::Tail, Vec::new());
    // Appends in a random interleaving across files, spaced so the tail sees each cut.
    while !pending.is_empty() {
        let i = rng.range(0, pending.len() as u64) as usize;
        let (dest, bytes, c, done) = &mut pending[i];
        let upto = c.remove(0);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&*dest)
            .unwrap();
        f.write_all(&bytes[*done..upto]).unwrap();
        f.flush().unwrap();
        *done = upto;
        if c.is_empty() {
            pending.swap_remove(i);
        }
        std::thread::sleep(Duration::from_millis(rng.range(5, 60)));
    }

    let reference_ledger = tree.ledger("full.db");
    let full = backfill(&tree, &reference_ledger);
    assert_clean(&full);
    let expected = canonical(&open(&reference_ledger));

    // The tail has converged when its ledger equals the reference. It is waited for while it
    // makes progress (a loaded machine is slow, not wrong); 15 s without a change is a stall.
    let mut last_change = Instant::now();
    let mut got = String::new();
    while last_change.elapsed() < Duration::from_secs(15) {
        if ledger.exists() {
            let now = canonical(&open(&ledger));
            if now != got {
                got = now;
                last_change = Instant::now();
            }
            if got == expected {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    pair.stop();
    let tail = pair.finish().unwrap();
    assert_clean(&tail);
    let after_stop = canonical(&open(&ledger));
    assert_eq!(got, after_stop, "the tail wrote after it had converged");
    assert!(
        got == expected,
        "tail ledger != backfill ledger (seed {seed}): {}",
        first_difference(&got, &expected)
    );
    assert!(expected.lines().count() > 10);
}

/// Every fixture, the resumed Claude Code chain among them (files that copy each other's lines,
/// whose owner is decided across files: `aix::claude_copies`). `NEX_E2E_SEED=<hex>` replaces
/// the seed (to try other interleavings).
#[test]
fn tail_in_random_cuts_equals_one_backfill_fixtures() {
    let files = fixture_files();
    assert!(files.len() >= 8);
    assert_eq!(
        files
            .iter()
            .filter(|(rel, _)| rel.to_string_lossy().contains("/resumed-chain/"))
            .count(),
        3
    );
    run_case(&files, seed_from_env(0xE2E1));
}

/// `NEX_E2E_SEED` (hex, `0x` optional), else `default`.
fn seed_from_env(default: u64) -> u64 {
    std::env::var("NEX_E2E_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or(default)
}

#[test]
fn tail_in_random_cuts_equals_one_backfill_samples() {
    let Some(samples) = samples_dir() else {
        eprintln!("e2e_incremental: NEX_SAMPLES_DIR unset or empty; samples skipped");
        return;
    };
    let files = sample_files(&samples);
    assert!(!files.is_empty());
    run_case(&files, 0xE2E2);
}

/// Item rule 15 through the built binaries: `aix worker --stdio` tailing a Claude Code project
/// sees a resumed file holding copies only first (their owner not written yet) and imports it
/// as its own session; then the owner appears, and the file, read again whole, gives nothing:
/// the tail retracts its session, and the tail's ledger equals one backfill of the final files.
#[test]
fn tail_retracts_a_file_left_with_copies_only_when_their_owner_appears() {
    let chain =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code/resumed-chain");
    let owner = "aaaaaaaa-1111-4000-8000-00000000000a.jsonl";
    let resumed = "cccccccc-3333-4000-8000-00000000000c.jsonl";
    let text = std::fs::read_to_string(chain.join(resumed)).unwrap();
    let copies: String = text.split_inclusive('\n').take(7).collect();
    let tree = Tree::new();
    let proj = tree.path().join("claude/resumed-chain");
    std::fs::create_dir_all(&proj).unwrap();
    let ledger = tree.ledger("tail.db");
    // Written before the worker starts: `--claude-dir` must hold a session file when `aix`
    // checks it (a folder holding only an empty project folder not named `-…` is not a Claude
    // Code projects folder).
    std::fs::write(proj.join(resumed), copies).unwrap();
    let mut pair = worker(&tree, &ledger, RunMode::Tail, Vec::new());
    // Read-only, as another process may be creating or writing the ledger: empty while it is
    // missing or not migrated yet (opening it read-write would race nex's own migration).
    let sessions = |ledger: &Path| -> Vec<String> {
        let read = || -> rusqlite::Result<Vec<String>> {
            let conn = rusqlite::Connection::open_with_flags(
                ledger,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            conn.busy_timeout(Duration::from_secs(2))?;
            let mut stmt = conn.prepare("SELECT origin_session_id FROM sessions ORDER BY 1")?;
            stmt.query_map([], |r| r.get(0))?.collect()
        };
        read().unwrap_or_default()
    };
    let start = Instant::now();
    while sessions(&ledger) != ["cccccccc-3333-4000-8000-00000000000c"] {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the tail never imported the copies-only file"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::copy(chain.join(owner), proj.join(owner)).unwrap();

    let reference_ledger = tree.ledger("full.db");
    assert_clean(&backfill(&tree, &reference_ledger));
    let expected = canonical(&open(&reference_ledger));
    assert_eq!(
        sessions(&reference_ledger),
        ["aaaaaaaa-1111-4000-8000-00000000000a"]
    );
    let start = Instant::now();
    let mut got = String::new();
    while got != expected && start.elapsed() < Duration::from_secs(60) {
        got = canonical(&open(&ledger));
        std::thread::sleep(Duration::from_millis(100));
    }
    pair.stop();
    assert_clean(&pair.finish().unwrap());
    assert!(got == expected, "{}", first_difference(&got, &expected));
}
