//! The runtime on the real sample sessions (`NEX_SAMPLES_DIR`, skipped when unset) with the
//! binary's parser factory: a tail fed the files in random cuts ends with the same ledger
//! content (last write per message, turn and tool call id) and the same fingerprints as one
//! backfill of the final files, with every cursor at the end of its file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nex::aix::cursor::FileCursor;
use nex::aix::{FrameSink, RunSpec, StopSignal, WorkerOptions, WorkerStatus, run_mode};
use nex::protocol::{Envelope, RunMode, WorkerFrame};

use crate::worker_fake::{Capture, batch_items, cursors};

fn samples() -> Option<PathBuf> {
    std::env::var_os("NEX_SAMPLES_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Sample files as (relative destination, bytes): Claude Code projects under `claude/`, Codex
/// sessions under `codex/sessions/`.
fn sample_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut claude = Vec::new();
    files_under(&root.join("claude-code"), &mut claude);
    for p in claude {
        let rel = p.strip_prefix(root.join("claude-code")).unwrap();
        out.push((Path::new("claude").join(rel), std::fs::read(&p).unwrap()));
    }
    let mut codex = Vec::new();
    files_under(&root.join("codex"), &mut codex);
    for p in codex {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("rollout-") {
            out.push((
                Path::new("codex/sessions").join(name),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    out
}

/// Keeps the first file of each session id: two sample files of one session (excerpts) would
/// make "last write wins" depend on the order files finish, in the tail and in the reference.
fn distinct_sessions(
    files: Vec<(PathBuf, Vec<u8>)>,
    factory: &nex::aix::ParserFactory,
) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut kept = Vec::new();
    for (rel, bytes) in files {
        let p = dir.path().join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &bytes).unwrap();
        let found = nex::aix::discover::discover(&options(dir.path()));
        let Some(d) = found.into_iter().find(|d| d.source.path == p) else {
            continue;
        };
        let mut state = nex::aix::file_state::FileState::new(d.source, None);
        let ids: Vec<String> = state
            .update(factory, true)
            .unwrap()
            .map(|u| u.items.into_iter().map(|i| i.source_session_id).collect())
            .unwrap_or_default();
        if ids.iter().all(|id| !seen.contains(id)) {
            seen.extend(ids);
            kept.push((rel, bytes));
        }
    }
    kept
}

type Ledger = BTreeMap<(String, String), String>;

/// Last write wins per (session, entity id), as deterministic-id upserts do.
/// Rows, and the fingerprint of each file's last cursor by path relative to `root` (the
/// runtime's incremental fingerprint must equal the one of reading the final file once; an
/// item's own fingerprint can lag when the last lines touch no turn, e.g. progress records).
fn ledger(frames: &[Envelope<WorkerFrame>], root: &Path) -> (Ledger, BTreeMap<String, String>) {
    let mut rows = Ledger::new();
    let mut fps = BTreeMap::new();
    for c in cursors(frames) {
        let path = c.key.split_once(':').unwrap().1.to_owned();
        let rel = Path::new(&path)
            .strip_prefix(root)
            .unwrap()
            .display()
            .to_string();
        let fc = FileCursor::from_value(&c.value).unwrap();
        fps.insert(rel, fc.fingerprint);
    }
    for item in batch_items(frames) {
        let s = item.source_session_id.clone();
        for t in &item.turns {
            rows.insert(
                (s.clone(), format!("turn:{}", t.source_turn_id)),
                serde_json::to_string(t).unwrap(),
            );
        }
        for m in &item.messages {
            rows.insert(
                (s.clone(), format!("msg:{}", m.source_message_id)),
                serde_json::to_string(m).unwrap(),
            );
        }
        for c in &item.tool_calls {
            rows.insert(
                (s.clone(), format!("tool:{}", c.source_tool_call_id)),
                serde_json::to_string(c).unwrap(),
            );
        }
    }
    (rows, fps)
}

fn options(root: &Path) -> WorkerOptions {
    WorkerOptions {
        claude_dirs: vec![root.join("claude")],
        codex_dirs: vec![root.join("codex/sessions")],
        ..Default::default()
    }
}

#[test]
fn tail_in_random_cuts_equals_one_backfill() {
    let Some(root) = samples() else {
        eprintln!("NEX_SAMPLES_DIR unset: skipped");
        return;
    };
    let factory = nex::aix::default_parser_factory();
    let files = distinct_sessions(sample_files(&root), &factory);
    assert!(!files.is_empty());

    // Reference: one backfill of the final files.
    let full_dir = tempfile::tempdir().unwrap();
    for (rel, bytes) in &files {
        let p = full_dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let cap = Capture::default();
    let sink = FrameSink::new(Box::new(cap.clone()), "full".into());
    let spec = RunSpec {
        mode: RunMode::Backfill,
        persona_id: None,
        cursors: Default::default(),
        store_cursors: Default::default(),
        options: options(full_dir.path()),
    };
    run_mode(
        &spec,
        &factory,
        &sink,
        &StopSignal::default(),
        &WorkerStatus::default(),
    )
    .unwrap();
    let full = ledger(&cap.frames(), full_dir.path());
    assert!(!full.0.is_empty(), "the samples produce rows");

    // Tail: the same files written in random cuts (some mid-line) while the tail runs.
    let tail_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tail_dir.path().join("claude")).unwrap();
    std::fs::create_dir_all(tail_dir.path().join("codex/sessions")).unwrap();
    let cap = Capture::default();
    let stop = Arc::new(StopSignal::default());
    let handle = {
        let (cap, stop, factory) = (cap.clone(), stop.clone(), factory.clone());
        let options = options(tail_dir.path());
        std::thread::spawn(move || {
            let sink = FrameSink::new(Box::new(cap), "tail".into());
            let spec = RunSpec {
                mode: RunMode::Tail,
                persona_id: None,
                cursors: Default::default(),
                store_cursors: Default::default(),
                options,
            };
            run_mode(&spec, &factory, &sink, &stop, &WorkerStatus::default())
        })
    };
    // No wait for the tail to be watching: bytes written before it starts are found by its
    // first scan and read like any change, so every cut is exercised either way.
    let mut seed = 0x9e37_79b9_u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut offsets = vec![0usize; files.len()];
    while offsets.iter().zip(&files).any(|(o, (_, b))| *o < b.len()) {
        let i = next(files.len());
        let (rel, bytes) = &files[i];
        if offsets[i] >= bytes.len() {
            continue;
        }
        let n = 1 + next(4000);
        let end = (offsets[i] + n).min(bytes.len());
        let p = tail_dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        crate::worker_fake::append_bytes(&p, &bytes[offsets[i]..end]);
        offsets[i] = end;
        if next(4) == 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    // Done when every file's latest cursor reached its end.
    let done = |frames: &[Envelope<WorkerFrame>]| {
        let mut at: BTreeMap<String, u64> = BTreeMap::new();
        for c in cursors(frames) {
            if let Some(fc) = FileCursor::from_value(&c.value) {
                at.insert(c.key.clone(), fc.offset);
            }
        }
        files.iter().all(|(rel, bytes)| {
            let path = tail_dir.path().join(rel);
            let key_suffix = format!(":{}", path.display());
            at.iter()
                .any(|(k, off)| k.ends_with(&key_suffix) && *off == bytes.len() as u64)
                || !bytes.ends_with(b"\n")
                || bytes.is_empty()
                || nex::aix::discover::discover(&options(tail_dir.path()))
                    .iter()
                    .all(|d| d.source.path != path)
        })
    };
    cap.wait_for("every file consumed", done);
    stop.stop();
    handle.join().unwrap().unwrap();
    let tail = ledger(&cap.frames(), tail_dir.path());
    assert_eq!(tail.1, full.1, "fingerprints");
    assert_eq!(tail.0.len(), full.0.len(), "rows");
    for (k, v) in &full.0 {
        assert_eq!(tail.0.get(k), Some(v), "row {k:?}");
    }
}
