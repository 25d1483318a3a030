//! Tail: appends (also cut mid-line) become partial items with cursors at line boundaries;
//! rewrites, shrinks and rotations re-import whole; new files and new roots are picked up;
//! a tail started on cursors resumes from the open turn. Waits are event-driven with generous
//! timeouts; nothing asserts timing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use nex::aix::cursor::{FileCursor, cursor_map};
use nex::aix::{
    FrameSink, RunCounters, RunSpec, StopSignal, WorkerError, WorkerOptions, WorkerStatus, run_mode,
};
use nex::protocol::{Cursor, Envelope, ImportSessionItem, RunMode, WorkerFrame};

use crate::worker_fake::{
    Capture, ParseLog, append, batch_items, cursors, fake_factory, reply, turn,
};

struct Running {
    cap: Capture,
    stop: Arc<StopSignal>,
    handle: JoinHandle<Result<RunCounters, WorkerError>>,
    log: Arc<ParseLog>,
    /// The tail's own figures (files watched, files pending a read): what it has seen.
    status: Arc<WorkerStatus>,
}

fn start(options: WorkerOptions, start_cursors: Vec<Cursor>) -> Running {
    let (factory, log) = fake_factory();
    let cap = Capture::default();
    let stop = Arc::new(StopSignal::default());
    let (c, s) = (cap.clone(), stop.clone());
    let status = Arc::new(WorkerStatus::default());
    let st = status.clone();
    let handle = std::thread::spawn(move || {
        let sink = FrameSink::new(Box::new(c), "tail-run".into());
        let spec = RunSpec {
            mode: RunMode::Tail,
            persona_id: None,
            cursors: cursor_map(&start_cursors),
            store_cursors: nex::aix::stores::store_cursor_map(&start_cursors),
            options,
        };
        run_mode(&spec, &factory, &sink, &s, &st)
    });
    Running {
        cap,
        stop,
        handle,
        log,
        status,
    }
}

impl Running {
    fn finish(self) -> Vec<Envelope<WorkerFrame>> {
        self.stop.stop();
        self.handle.join().unwrap().unwrap();
        self.cap.frames()
    }

    /// Waits until the tail watches `files` files and has no read pending: it has seen every
    /// change so far and acted on it.
    fn settled(&self, files: u64) {
        wait_until("tail not settled", || {
            self.status.watched_files.load(Ordering::Relaxed) == files
                && self.status.pending_files.load(Ordering::Relaxed) == 0
        });
    }

    /// Waits until the tail has seen a file change at or after `since_ms` (epoch ms) and has
    /// no read pending.
    fn change_handled(&self, since_ms: i64) {
        wait_until("the change was not handled", || {
            self.status.last_event_ms.load(Ordering::Relaxed) >= since_ms
                && self.status.pending_files.load(Ordering::Relaxed) == 0
        });
    }

    /// Waits until at least `n` items were emitted; returns them all.
    fn items(&self, n: usize) -> Vec<ImportSessionItem> {
        batch_items(
            &self
                .cap
                .wait_for(&format!("{n} items"), |f| batch_items(f).len() >= n),
        )
    }
}

fn tail_options(claude: &Path) -> WorkerOptions {
    WorkerOptions {
        claude_dirs: vec![claude.to_path_buf()],
        codex_dirs: vec![],
        ..Default::default()
    }
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("projects");
    let proj = claude.join("-p");
    std::fs::create_dir_all(&proj).unwrap();
    let path = proj.join("s.jsonl");
    std::fs::write(
        &path,
        format!("{}{}", turn("s", "t1", "hello"), reply("hi")),
    )
    .unwrap();
    (dir, claude, path)
}

fn turn_ids(item: &ImportSessionItem) -> Vec<&str> {
    item.turns
        .iter()
        .map(|t| t.source_turn_id.as_str())
        .collect()
}

/// Every cursor ends at a line boundary of the file's content at that time: the byte before
/// `offset` is a newline in the final file too (files here only grow).
fn assert_line_boundaries(frames: &[Envelope<WorkerFrame>], path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    for c in cursors(frames) {
        let fc = FileCursor::from_value(&c.value).unwrap();
        assert!(fc.offset > 0);
        assert_eq!(
            bytes[fc.offset as usize - 1],
            b'\n',
            "offset {} not at a line end",
            fc.offset
        );
    }
}

#[test]
fn appends_become_partial_items_and_partial_lines_wait() {
    let (_dir, claude, path) = setup();
    let run = start(tail_options(&claude), vec![]);
    let items = run.items(1);
    assert_eq!(
        turn_ids(&items[0]),
        vec!["t1"],
        "initial import of the whole file"
    );

    append(&path, &reply("more"));
    let items = run.items(2);
    assert_eq!(turn_ids(&items[1]), vec!["t1"], "the open turn, complete");
    assert_eq!(items[1].messages.len(), 3);

    // A line cut in two writes: nothing of it is emitted until its newline arrives.
    let before = nex::aix::emit::now_ms();
    append(&path, "{\"s\":\"s\",\"t\":\"t2\",\"m\":\"cut-");
    // The first half seen and read before the second is written.
    run.change_handled(before);
    append(&path, "then-done\"}\n");
    let items = run.items(3);
    let last = items.last().unwrap();
    assert_eq!(turn_ids(last), vec!["t2"]);
    assert_eq!(last.messages[0].content.as_deref(), Some("cut-then-done"));
    assert!(
        items.iter().all(|i| i
            .messages
            .iter()
            .all(|m| m.content.as_deref() != Some("cut-"))),
        "a partial line was parsed"
    );
    let frames = run.finish();
    assert_line_boundaries(&frames, &path);
    let WorkerFrame::ImportBatch(b) = &frames[0].body else {
        panic!()
    };
    assert_eq!(b.mode, "tail");
    let last_cursor = FileCursor::from_value(&cursors(&frames).last().unwrap().value).unwrap();
    assert_eq!(last_cursor.offset, std::fs::metadata(&path).unwrap().len());
    assert_eq!(
        last_cursor.open_turn_offset,
        last_cursor.offset - b"{\"s\":\"s\",\"t\":\"t2\",\"m\":\"cut-then-done\"}\n".len() as u64
    );
}

#[test]
fn shrunk_or_rewritten_file_is_reimported_whole() {
    let (_dir, claude, path) = setup();
    let run = start(tail_options(&claude), vec![]);
    run.items(1);
    // Claude Code rewrites a file on compact: shorter, different first line.
    std::fs::write(
        &path,
        format!("{}{}", turn("s", "n1", "x"), turn("s", "n2", "y")),
    )
    .unwrap();
    let items = run.items(2);
    assert_eq!(turn_ids(&items[1]), vec!["n1", "n2"]);
    let frames = run.finish();
    let last = FileCursor::from_value(&cursors(&frames).last().unwrap().value).unwrap();
    assert_eq!(last.offset, std::fs::metadata(&path).unwrap().len());
}

#[test]
fn rotated_file_is_reimported_whole() {
    let (dir, claude, path) = setup();
    let run = start(tail_options(&claude), vec![]);
    run.items(1);
    // Replaced by rename: new inode, same first line, longer.
    let tmp = dir.path().join("tmp.jsonl");
    std::fs::write(
        &tmp,
        format!(
            "{}{}{}",
            turn("s", "t1", "hello"),
            reply("hi"),
            turn("s", "t2", "z")
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let items = run.items(2);
    assert_eq!(
        turn_ids(&items[1]),
        vec!["t1", "t2"],
        "whole file, not an append"
    );
    run.finish();
}

#[test]
fn new_files_are_picked_up() {
    let (_dir, claude, _path) = setup();
    let run = start(tail_options(&claude), vec![]);
    run.items(1);
    let proj = claude.join("-q");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(proj.join("fresh.jsonl"), turn("fresh", "f1", "new")).unwrap();
    let items = run.items(2);
    assert_eq!(items[1].source_session_id, "fresh");
    run.finish();
}

#[test]
fn reconcile_finds_a_root_created_after_start() {
    // A root present at start (session `s`), and one created after: the first item, read by
    // the start-up scan, marks that the scan is over before the second root exists.
    let (dir, present, _path) = setup();
    let claude = dir.path().join("later/projects");
    let options = WorkerOptions {
        reconcile_interval: Duration::from_millis(300),
        claude_dirs: vec![present, claude.clone()],
        ..tail_options(&claude)
    };
    let run = start(options, vec![]);
    assert_eq!(run.items(1)[0].source_session_id, "s");
    std::fs::create_dir_all(claude.join("-p")).unwrap();
    std::fs::write(claude.join("-p/later.jsonl"), turn("later", "t1", "a")).unwrap();
    let items = run.items(2);
    assert_eq!(items[1].source_session_id, "later");
    // Now watched: an append arrives by notification or the next reconcile.
    append(&claude.join("-p/later.jsonl"), &reply("b"));
    let items = run.items(3);
    assert_eq!(items[2].source_session_id, "later");
    assert_eq!(items[2].messages.len(), 2);
    run.finish();
}

#[test]
fn tail_on_cursors_resumes_from_the_open_turn() {
    let (_dir, claude, path) = setup();
    append(&path, &turn("s", "t2", "second"));
    // A first tail imports the file and is stopped; NEX committed its cursor.
    let run = start(tail_options(&claude), vec![]);
    run.items(1);
    let committed = cursors(&run.finish());
    append(&path, &reply("after restart"));
    let run = start(tail_options(&claude), committed);
    let items = run.items(1);
    assert_eq!(turn_ids(&items[0]), vec!["t2"]);
    assert_eq!(items[0].messages.len(), 2, "the open turn complete");
    let log = run.log.clone();
    let frames = run.finish();
    assert_eq!(batch_items(&frames).len(), 1);
    // State rebuilt by one scan: every byte pushed exactly once.
    assert_eq!(log.bytes(&path), std::fs::metadata(&path).unwrap().len());
}

#[test]
fn unchanged_files_with_cursors_are_not_read_at_start() {
    let (_dir, claude, path) = setup();
    let run = start(tail_options(&claude), vec![]);
    run.items(1);
    let committed = cursors(&run.finish());
    let run = start(tail_options(&claude), committed);
    // Started, found the file, and judged it unchanged (a read would be pending or done).
    run.settled(1);
    let log = run.log.clone();
    let frames = run.finish();
    assert!(batch_items(&frames).is_empty());
    assert_eq!(log.bytes(&path), 0);
    assert!(frames.is_empty(), "a tail emits import frames only");
}

#[test]
fn files_read_at_start_keep_no_state_until_written() {
    let (_dir, claude, path) = setup();
    let run = start(tail_options(&claude), vec![]);
    run.items(1);
    let len0 = std::fs::metadata(&path).unwrap().len();
    assert_eq!(run.log.bytes(&path), len0);
    // First append: the state was dropped after the start-up read, so it is rebuilt by one
    // scan of the file (every byte once more).
    append(&path, &reply("one"));
    run.items(2);
    let len1 = std::fs::metadata(&path).unwrap().len();
    assert_eq!(run.log.bytes(&path), len0 + len1);
    // The file is now live: the next append costs only its own bytes.
    let line = reply("two");
    append(&path, &line);
    run.items(3);
    assert_eq!(run.log.bytes(&path), len0 + len1 + line.len() as u64);
    run.finish();
}

#[test]
fn child_seen_before_its_parent_is_resent_with_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("projects");
    let proj = claude.join("-p");
    std::fs::create_dir_all(proj.join("P/subagents")).unwrap();
    let run = start(tail_options(&claude), vec![]);
    std::fs::write(
        proj.join("P/subagents/agent-a7.jsonl"),
        turn("P", "c1", "sub"),
    )
    .unwrap();
    let items = run.items(1);
    assert_eq!(items[0].session.spawn_tool_call_id, None);
    std::fs::write(
        proj.join("P.jsonl"),
        format!(
            "{}{{\"m\":\"spawning\",\"spawn\":\"a7\"}}\n",
            turn("P", "t1", "go")
        ),
    )
    .unwrap();
    let frames = run.cap.wait_for("child re-sent", |f| {
        batch_items(f)
            .iter()
            .any(|i| i.session.is_subagent && i.session.spawn_tool_call_id.is_some())
    });
    let resent = batch_items(&frames)
        .into_iter()
        .rfind(|i| i.session.is_subagent)
        .unwrap();
    assert_eq!(resent.source_session_id, "P/agent-a7");
    assert_eq!(
        resent.session.spawn_tool_call_id.as_deref(),
        Some("tool-a7")
    );
    run.finish();
}

#[test]
fn removed_and_recreated_file_is_imported_whole() {
    let (_dir, claude, path) = setup();
    let run = start(tail_options(&claude), vec![]);
    run.items(1);
    std::fs::remove_file(&path).unwrap();
    // The removal seen on its own (a later create may reuse the inode): the file is dropped.
    run.settled(0);
    std::fs::write(&path, format!("{}{}", turn("s", "r1", "again"), reply("x"))).unwrap();
    let items = run.items(2);
    assert_eq!(turn_ids(&items[1]), vec!["r1"]);
    assert_eq!(items[1].messages.len(), 2);
    let frames = run.finish();
    let last = FileCursor::from_value(&cursors(&frames).last().unwrap().value).unwrap();
    assert_eq!(last.offset, std::fs::metadata(&path).unwrap().len());
}

/// Before: an unreadable file was logged by the worker and otherwise forgotten; the tail never
/// said so. Now the tail's `run.progress` counts and names it, once while it keeps failing.
#[cfg(target_os = "linux")]
#[test]
fn an_unreadable_file_is_reported_in_run_progress_while_tailing() {
    let (_dir, claude, path) = setup();
    // `/proc/self/mem` read at offset 0 fails with EIO, for root too.
    let bad = path.with_file_name("bad.jsonl");
    std::os::unix::fs::symlink("/proc/self/mem", &bad).unwrap();
    let run = start(tail_options(&claude), vec![]);
    let frames = run.cap.wait_for("a progress frame naming the file", |f| {
        f.iter()
            .any(|e| matches!(&e.body, WorkerFrame::RunProgress(p) if p.failed_files == Some(1)))
    });
    let p = frames
        .iter()
        .find_map(|e| match &e.body {
            WorkerFrame::RunProgress(p) if p.failed_files == Some(1) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(p.file_errors.len(), 1);
    assert_eq!(p.file_errors[0].path, bad.display().to_string());
    assert_eq!(p.file_errors[0].code, "file_unreadable");
    assert!(p.file_errors[0].message.contains("os error 5"), "{p:?}");
    // The readable file is tailed as usual.
    run.items(1);
    append(&path, &reply("more"));
    run.items(2);
    let frames = run.finish();
    let counts: Vec<Option<u64>> = frames
        .iter()
        .filter_map(|e| match &e.body {
            WorkerFrame::RunProgress(p) => Some(p.failed_files),
            _ => None,
        })
        .collect();
    assert_eq!(counts, [Some(1)], "reported once, when it failed");
}

/// Polls `done` (every 5 ms, up to 20 s) until it holds; fails with `what` otherwise.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A project folder linked in from elsewhere is tailed: an append to its file (written through
/// the folder's real path) and a new file in it become items.
#[cfg(unix)]
#[test]
fn a_linked_project_folder_is_tailed() {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("projects");
    let real = dir.path().join("elsewhere/-p");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&claude).unwrap();
    std::os::unix::fs::symlink(&real, claude.join("-p")).unwrap();
    let path = real.join("s.jsonl");
    std::fs::write(
        &path,
        format!("{}{}", turn("s", "t1", "hello"), reply("hi")),
    )
    .unwrap();
    let run = start(tail_options(&claude), vec![]);
    let items = run.items(1);
    assert_eq!(items[0].source_session_id, "s");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, turn("s", "t2", "again").as_bytes()).unwrap();
    drop(f);
    let items = run.items(2);
    // The open turn, closed by the new one, and the new one.
    assert_eq!(turn_ids(&items[1]), ["t1", "t2"]);
    std::fs::write(real.join("fresh.jsonl"), turn("fresh", "f1", "new")).unwrap();
    let items = run.items(3);
    assert_eq!(items[2].source_session_id, "fresh");
    run.finish();
}

/// A Codex rollout that is compressed while the tail watches it (`X.jsonl.zst` written, the
/// plain `X.jsonl` removed) is a file the tail reads: whole and inflated, its items carry
/// what the compressed bytes hold.
#[test]
fn a_rollout_compressed_while_tailed_is_read_inflated() {
    use ruzstd::encoding::{CompressionLevel, compress_to_vec};
    let dir = tempfile::tempdir().unwrap();
    let codex = dir.path().join("sessions");
    let day = codex.join("2026/10/05");
    std::fs::create_dir_all(&day).unwrap();
    let plain = day.join("rollout-2026-10-05T09-00-00-a.jsonl");
    let first = format!("{}{}", turn("s", "t1", "hello"), reply("hi"));
    std::fs::write(&plain, &first).unwrap();
    let options = WorkerOptions {
        codex_dirs: vec![codex.clone()],
        ..Default::default()
    };
    let run = start(options, vec![]);
    assert_eq!(turn_ids(&run.items(1)[0]), ["t1"]);
    let whole = format!("{first}{}", turn("s", "t2", "later"));
    std::fs::write(
        plain.with_extension("jsonl.zst"),
        compress_to_vec(whole.as_bytes(), CompressionLevel::Fastest),
    )
    .unwrap();
    std::fs::remove_file(&plain).unwrap();
    let items = run.items(2);
    assert_eq!(items[1].source_session_id, "s");
    assert_eq!(turn_ids(&items[1]), ["t1", "t2"]);
    run.finish();
}
