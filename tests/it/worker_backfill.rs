//! Backfill: frames of a run, cursor skip of unchanged files, `--full`, crash-resume from the
//! cursors of the first frames only, lineage fill, unreadable and malformed input.

use std::path::PathBuf;

use nex::aix::cursor::{FileCursor, cursor_map};
use nex::aix::sources::Provider;
use nex::aix::{
    EmitLimits, FrameSink, ParserFactory, RunSpec, StopSignal, WorkerOptions, WorkerStatus,
    run_mode,
};
use nex::protocol::{Cursor, Envelope, RunMode, WorkerFrame};

use crate::worker_fake::{Capture, append, batch_items, cursors, fake_factory, reply, turn};

struct Corpus {
    _dir: tempfile::TempDir,
    claude: PathBuf,
    codex: PathBuf,
}

fn corpus(files: usize) -> Corpus {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("projects");
    let codex = dir.path().join("sessions");
    let proj = claude.join("-p");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::create_dir_all(codex.join("2025/02/03")).unwrap();
    for i in 0..files {
        let path = if i % 3 == 2 {
            codex.join(format!("2025/02/03/rollout-{i}.jsonl"))
        } else {
            proj.join(format!("s{i}.jsonl"))
        };
        let sid = format!("sess-{i}");
        let mut text = turn(&sid, "t1", "hello");
        text += &reply("hi");
        text += "{\"skip\":\"progress\"}\n";
        text += &turn(&sid, "t2", "again");
        text += &reply("ok");
        std::fs::write(&path, text).unwrap();
    }
    Corpus {
        _dir: dir,
        claude,
        codex,
    }
}

fn options(c: &Corpus) -> WorkerOptions {
    WorkerOptions {
        claude_dirs: vec![c.claude.clone()],
        codex_dirs: vec![c.codex.clone()],
        limits: EmitLimits {
            batch_items: 2,
            ..EmitLimits::default()
        },
        parse_threads: 2,
        ..Default::default()
    }
}

pub fn backfill(
    options: &WorkerOptions,
    cursors: &[Cursor],
    factory: &ParserFactory,
) -> Vec<Envelope<WorkerFrame>> {
    let cap = Capture::default();
    let sink = FrameSink::new(Box::new(cap.clone()), "run".into());
    let spec = RunSpec {
        mode: RunMode::Backfill,
        persona_id: None,
        cursors: cursor_map(cursors),
        store_cursors: nex::aix::stores::store_cursor_map(cursors),
        options: options.clone(),
    };
    let counters = run_mode(
        &spec,
        factory,
        &sink,
        &StopSignal::default(),
        &WorkerStatus::default(),
    )
    .unwrap();
    sink.complete(&counters.progress(true)).unwrap();
    cap.frames()
}

fn progress_of(frames: &[Envelope<WorkerFrame>]) -> (Option<u64>, Option<u64>, u64) {
    match &frames.last().unwrap().body {
        WorkerFrame::RunComplete(p) => (p.total, p.emitted, p.skipped),
        other => panic!("last frame is {}", other.kind()),
    }
}

#[test]
fn first_backfill_emits_every_session_whole_with_cursors() {
    let c = corpus(7);
    let (factory, log) = fake_factory();
    let frames = backfill(&options(&c), &[], &factory);
    let WorkerFrame::RunProgress(first) = &frames[0].body else {
        panic!("first frame is not run.progress")
    };
    assert_eq!(first.total, Some(7));
    let items = batch_items(&frames);
    assert_eq!(items.len(), 7);
    for item in &items {
        assert_eq!(item.turns.len(), 2, "whole session");
        assert_eq!(item.messages.len(), 4);
    }
    let providers: Vec<&str> = items.iter().map(|i| i.source_provider.as_str()).collect();
    assert_eq!(providers.iter().filter(|p| **p == "codex").count(), 2);
    let cs = cursors(&frames);
    assert_eq!(cs.len(), 7);
    for cur in &cs {
        let fc = FileCursor::from_value(&cur.value).expect("cursor decodes");
        let path = cur.key.split_once(':').unwrap().1;
        let len = std::fs::metadata(path).unwrap().len();
        assert_eq!(fc.offset, len, "consumed to the end");
        assert_eq!(fc.size, len);
        assert!(fc.open_turn_offset > 0 && fc.open_turn_offset < fc.offset);
        assert!(cur.key.starts_with("claude-code:/") || cur.key.starts_with("codex:/"));
    }
    assert_eq!(progress_of(&frames), (Some(7), Some(7), 0));
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq.unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1) && seqs[0] == 1);
    assert!(log.total() > 0);
}

#[test]
fn unchanged_files_are_skipped_without_parsing_unless_full() {
    let c = corpus(5);
    let (factory, log) = fake_factory();
    let frames = backfill(&options(&c), &[], &factory);
    let committed = cursors(&frames);
    log.clear();
    let again = backfill(&options(&c), &committed, &factory);
    assert!(batch_items(&again).is_empty());
    assert_eq!(log.total(), 0, "no parse at all");
    assert_eq!(progress_of(&again), (Some(0), Some(0), 5));

    let full = WorkerOptions {
        full: true,
        ..options(&c)
    };
    let frames_full = backfill(&full, &committed, &factory);
    assert_eq!(batch_items(&frames_full).len(), 5);
    // Same content, same keys as the first run (a cheap replay at NEX).
    let keys = |fs: &[Envelope<WorkerFrame>]| -> Vec<String> {
        fs.iter()
            .filter_map(|f| match &f.body {
                WorkerFrame::ImportBatch(b) => Some(b.idempotency_key.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(keys(&frames), keys(&frames_full));
}

#[test]
fn appended_file_resumes_from_its_open_turn() {
    let c = corpus(3);
    let (factory, log) = fake_factory();
    let committed = cursors(&backfill(&options(&c), &[], &factory));
    let path = c.claude.join("-p/s0.jsonl");
    append(&path, &reply("more"));
    append(&path, &turn("sess-0", "t3", "new"));
    log.clear();
    let frames = backfill(&options(&c), &committed, &factory);
    let items = batch_items(&frames);
    assert_eq!(items.len(), 1);
    let turns: Vec<&str> = items[0]
        .turns
        .iter()
        .map(|t| t.source_turn_id.as_str())
        .collect();
    assert_eq!(
        turns,
        vec!["t2", "t3"],
        "the open turn, complete, and the new one"
    );
    assert_eq!(items[0].messages.len(), 4);
    assert_eq!(log.bytes(&path), std::fs::metadata(&path).unwrap().len());
    assert_eq!(progress_of(&frames), (Some(1), Some(1), 2));
}

#[test]
fn crash_resume_emits_the_rest_and_reparses_nothing_covered() {
    let c = corpus(9);
    let (factory, log) = fake_factory();
    let frames = backfill(&options(&c), &[], &factory);
    let batches: Vec<&Envelope<WorkerFrame>> = frames
        .iter()
        .filter(|f| matches!(f.body, WorkerFrame::ImportBatch(_)))
        .collect();
    assert_eq!(batches.len(), 5, "9 items in batches of 2");
    // NEX committed the first two frames, then everything died.
    let committed: Vec<Cursor> = cursors(
        &batches[..2]
            .iter()
            .map(|f| (*f).clone())
            .collect::<Vec<_>>(),
    );
    assert_eq!(committed.len(), 4);
    let covered: Vec<PathBuf> = committed
        .iter()
        .map(|c| PathBuf::from(c.key.split_once(':').unwrap().1))
        .collect();
    log.clear();
    let resumed = backfill(&options(&c), &committed, &factory);
    let items = batch_items(&resumed);
    assert_eq!(items.len(), 5);
    let first_ids: Vec<String> = batch_items(&frames)
        .iter()
        .skip(4)
        .map(|i| i.source_session_id.clone())
        .collect();
    let resumed_ids: Vec<String> = items.iter().map(|i| i.source_session_id.clone()).collect();
    assert_eq!(first_ids, resumed_ids);
    for p in &covered {
        assert_eq!(log.bytes(p), 0, "{} was re-parsed", p.display());
    }
}

#[test]
fn subagent_gets_spawn_link_from_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects/-p");
    std::fs::create_dir_all(proj.join("P/subagents")).unwrap();
    std::fs::write(
        proj.join("P.jsonl"),
        format!(
            "{}{{\"m\":\"spawning\",\"spawn\":\"a7\"}}\n",
            turn("P", "t1", "go")
        ),
    )
    .unwrap();
    std::fs::write(
        proj.join("P/subagents/agent-a7.jsonl"),
        turn("P", "c1", "sub"),
    )
    .unwrap();
    let opts = WorkerOptions {
        claude_dirs: vec![dir.path().join("projects")],
        codex_dirs: vec![],
        ..Default::default()
    };
    let (factory, _) = fake_factory();
    let items = batch_items(&backfill(&opts, &[], &factory));
    assert_eq!(items.len(), 2);
    let child = items.iter().find(|i| i.session.is_subagent).unwrap();
    assert_eq!(child.source_session_id, "P/agent-a7");
    assert_eq!(child.session.spawn_tool_call_id.as_deref(), Some("tool-a7"));
    assert_eq!(child.session.task_description.as_deref(), Some("task a7"));
    assert_eq!(child.session.task_status.as_deref(), Some("completed"));
}

#[test]
fn partial_last_line_waits_and_malformed_lines_do_not_stop_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects/-p");
    std::fs::create_dir_all(&proj).unwrap();
    let path = proj.join("s.jsonl");
    let complete = format!("{}not json\n{}", turn("s", "t1", "a"), reply("b"));
    std::fs::write(&path, format!("{complete}{{\"m\":\"cut")).unwrap();
    let opts = WorkerOptions {
        claude_dirs: vec![dir.path().join("projects")],
        codex_dirs: vec![],
        ..Default::default()
    };
    let (factory, _) = fake_factory();
    let frames = backfill(&opts, &[], &factory);
    let items = batch_items(&frames);
    assert_eq!(items[0].messages.len(), 2);
    let cur = FileCursor::from_value(&cursors(&frames)[0].value).unwrap();
    assert_eq!(
        cur.offset,
        complete.len() as u64,
        "stops at the line boundary"
    );
    assert!(cur.size > cur.offset);
}

#[test]
fn unusable_cursor_means_whole_reimport() {
    let c = corpus(1);
    let (factory, _) = fake_factory();
    let key = nex::aix::cursor::cursor_key(Provider::ClaudeCode, &c.claude.join("-p/s0.jsonl"));
    let bad = vec![Cursor {
        key,
        value: serde_json::json!({"v": 1, "offset": "x"}),
    }];
    let items = batch_items(&backfill(&options(&c), &bad, &factory));
    assert_eq!(items[0].turns.len(), 2);
}

#[test]
fn lines_longer_than_a_read_block_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects/-p");
    std::fs::create_dir_all(&proj).unwrap();
    let long = "x".repeat(3 << 20);
    let path = proj.join("s.jsonl");
    std::fs::write(
        &path,
        format!("{}{}{}", turn("s", "t1", "a"), reply(&long), reply("tail")),
    )
    .unwrap();
    let opts = WorkerOptions {
        claude_dirs: vec![dir.path().join("projects")],
        codex_dirs: vec![],
        ..Default::default()
    };
    let (factory, _) = fake_factory();
    let frames = backfill(&opts, &[], &factory);
    let msgs: Vec<usize> = batch_items(&frames)
        .iter()
        .flat_map(|i| {
            i.messages
                .iter()
                .map(|m| m.content.as_deref().unwrap_or("").len())
        })
        .collect();
    assert_eq!(msgs, vec![1, 3 << 20, 4]);
}

#[test]
fn stopped_backfill_flushes_and_emits_nothing_new() {
    let c = corpus(4);
    let (factory, log) = fake_factory();
    let cap = Capture::default();
    let sink = FrameSink::new(Box::new(cap.clone()), "run".into());
    let stop = StopSignal::default();
    stop.stop();
    let spec = RunSpec {
        mode: RunMode::Backfill,
        persona_id: None,
        cursors: cursor_map(&[]),
        store_cursors: Default::default(),
        options: options(&c),
    };
    let counters = run_mode(&spec, &factory, &sink, &stop, &WorkerStatus::default()).unwrap();
    assert_eq!(counters.emitted_files, 0);
    assert_eq!(log.total(), 0);
    assert!(batch_items(&cap.frames()).is_empty());
}

#[test]
fn a_parser_panic_fails_one_file_not_the_run() {
    let c = corpus(4);
    append(&c.claude.join("-p/s1.jsonl"), "{\"panic\":1}\n");
    let (factory, _) = fake_factory();
    let frames = backfill(&options(&c), &[], &factory);
    assert_eq!(batch_items(&frames).len(), 3);
    let WorkerFrame::RunComplete(p) = &frames.last().unwrap().body else {
        panic!("no run.complete")
    };
    assert_eq!((p.failed, p.emitted), (1, Some(3)));
    assert!(
        cursors(&frames)
            .iter()
            .all(|c| !c.key.ends_with("s1.jsonl")),
        "no cursor for the failed file"
    );
}

#[test]
fn child_read_before_its_parent_is_resent_with_the_link() {
    child_before_parent("Q.jsonl", 2);
}

/// A child read before its parent, in a file `parent_file` of the project. When the name tells
/// the parent's file (`<session>.jsonl`), the child's read scans it and goes out once, linked;
/// otherwise it goes out unlinked and is re-sent once the parent is read.
fn child_before_parent(parent_file: &str, child_items_expected: usize) {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects/-p");
    std::fs::create_dir_all(&proj).unwrap();
    // A legacy flat child, older than its parent: it is read first.
    let child = proj.join("agent-a7.jsonl");
    std::fs::write(
        &child,
        "{\"s\":\"P\",\"t\":\"c1\",\"m\":\"sub\",\"parent\":\"P\"}\n",
    )
    .unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&child)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::write(
        proj.join(parent_file),
        format!(
            "{}{{\"m\":\"spawning\",\"spawn\":\"a7\"}}\n",
            turn("P", "t1", "go")
        ),
    )
    .unwrap();
    let opts = WorkerOptions {
        claude_dirs: vec![dir.path().join("projects")],
        codex_dirs: vec![],
        ..Default::default()
    };
    let (factory, _) = fake_factory();
    let frames = backfill(&opts, &[], &factory);
    let child_items: Vec<_> = batch_items(&frames)
        .into_iter()
        .filter(|i| i.session.is_subagent)
        .collect();
    assert_eq!(child_items.len(), child_items_expected);
    if child_items_expected == 2 {
        assert_eq!(
            child_items[0].session.spawn_tool_call_id, None,
            "first without the link, then re-sent with it"
        );
    }
    let resent = child_items.last().unwrap();
    assert_eq!(
        resent.session.spawn_tool_call_id.as_deref(),
        Some("tool-a7")
    );
    assert_eq!(resent.session.task_status.as_deref(), Some("completed"));
    assert_eq!(resent.turns.len(), 1, "header and open turn");
}

#[test]
fn child_read_before_its_parent_gets_the_link_from_a_scan_of_the_parent() {
    child_before_parent("P.jsonl", 1);
}
