//! Upgrades (mapping versions, `aix::mapping`): a ledger written by an older mapping (version 1,
//! a parser that made a turn of every message) is corrected by the next plain backfill and by
//! the next tail start of a worker with the newer mapping: every file is read again although
//! unchanged, the extra turns disappear, and the ledger equals a clean import with the new
//! mapping. The frames go through the built `nex import replay`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use nex::aix::cursor::cursor_map;
use nex::aix::mapping::{self, MappingVersions};
use nex::aix::sources::{ParseStats, Provider, SessionParser, SourceFile};
use nex::aix::{
    FrameSink, ParserFactory, RunSpec, StopSignal, WorkerOptions, WorkerStatus, run_mode,
};
use nex::protocol::{Cursor, Envelope, ImportSessionItem, RunMode, WorkerFrame};

use crate::e2e_support::{canonical, first_difference, open};
use crate::worker_backfill::backfill;
use crate::worker_fake::{Capture, batch_items, fake_factory, reply, turn};

/// The "old mapping": the fake parser's items with a turn of every message (as the old Codex
/// mapping made a turn of every `turn_context`).
struct TurnPerMessage(Box<dyn SessionParser>);

impl SessionParser for TurnPerMessage {
    fn push_lines(&mut self, bytes: &[u8], offset: u64, emit: bool) {
        self.0.push_lines(bytes, offset, emit);
    }
    fn take_items(&mut self) -> Vec<ImportSessionItem> {
        let mut items = self.0.take_items();
        for item in &mut items {
            let template = item.turns.first().cloned().unwrap_or_default();
            item.turns = item
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| nex::protocol::Turn {
                    source_turn_id: m.source_message_id.clone(),
                    parent_source_turn_id: (i > 0)
                        .then(|| item.messages[i - 1].source_message_id.clone()),
                    started_at_ms: m.created_at_ms,
                    ..template.clone()
                })
                .collect();
            for m in &mut item.messages {
                m.source_turn_id = Some(m.source_message_id.clone());
            }
        }
        items
    }
    fn open_turn_offset(&self) -> u64 {
        self.0.open_turn_offset()
    }
    fn fingerprint(&self) -> String {
        self.0.fingerprint()
    }
    fn stats(&self) -> &ParseStats {
        self.0.stats()
    }
}

fn old_factory() -> ParserFactory {
    let (inner, _) = fake_factory();
    Arc::new(move |f: &SourceFile| Box::new(TurnPerMessage(inner(f))) as Box<dyn SessionParser>)
}

struct Corpus {
    dir: tempfile::TempDir,
    claude: PathBuf,
}

fn corpus() -> Corpus {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("projects");
    let proj = claude.join("-p");
    std::fs::create_dir_all(&proj).unwrap();
    for i in 0..3 {
        let sid = format!("sess-{i}");
        let text = turn(&sid, "t1", "hello")
            + &reply("hi")
            + &reply("more")
            + &turn(&sid, "t2", "again")
            + &reply("ok");
        std::fs::write(proj.join(format!("{sid}.jsonl")), text).unwrap();
    }
    Corpus { dir, claude }
}

fn options(c: &Corpus, mappings: MappingVersions) -> WorkerOptions {
    WorkerOptions {
        claude_dirs: vec![c.claude.clone()],
        mappings,
        parse_threads: 1,
        ..Default::default()
    }
}

fn old_versions() -> MappingVersions {
    MappingVersions::CURRENT.with(Provider::ClaudeCode, 1)
}

/// `nex import replay --ledger L -` of `frames`: its JSON report (every item committed).
pub(crate) fn replay_report(frames: &[Envelope<WorkerFrame>], ledger: &Path) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nex"))
        .args(["import", "replay", "--ledger"])
        .arg(ledger)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for f in frames {
        let line = f.body.encode(&f.run_id, f.seq.unwrap_or(0)) + "\n";
        stdin.write_all(line.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "replay failed");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    report
}

/// [`replay_report`] of `frames`; the ledger's cursors afterwards.
fn replay(frames: &[Envelope<WorkerFrame>], ledger: &Path) -> Vec<Cursor> {
    replay_report(frames, ledger);
    nex::ledger::load_cursors(&open(ledger), "aix").unwrap()
}

/// A ledger written by the old mapping, and the clean ledger of the new one.
fn old_and_clean(c: &Corpus) -> (PathBuf, String) {
    let old = c.dir.path().join("old.db");
    let frames = backfill(&options(c, old_versions()), &[], &old_factory());
    assert!(
        batch_items(&frames)
            .iter()
            .all(|i| i.mapping_version.is_none()),
        "version 1 sends no mappingVersion"
    );
    replay(&frames, &old);
    let turns: i64 = open(&old)
        .query_row("SELECT COUNT(*) FROM turns", [], |r| r.get(0))
        .unwrap();
    assert_eq!(turns, 15, "a turn per message");

    let clean = c.dir.path().join("clean.db");
    let (factory, _) = fake_factory();
    replay(
        &backfill(&options(c, MappingVersions::CURRENT), &[], &factory),
        &clean,
    );
    (old, rows(&clean))
}

/// The canonical dump without the sessions' times: the fake items carry none, so they are the
/// import's clock (and a session keeps its first `created_at`).
fn rows(ledger: &Path) -> String {
    canonical(&open(ledger))
        .lines()
        .map(|l| {
            if !l.starts_with("sessions ") {
                return l.to_owned();
            }
            l.split(' ')
                .filter(|f| !f.starts_with("created_at=") && !f.starts_with("updated_at="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_upgraded(items: &[ImportSessionItem], ledger: &Path, clean: &str) {
    assert_eq!(items.len(), 3, "every unchanged file read again");
    assert!(
        items
            .iter()
            .all(|i| i.mapping_version == Some(mapping::CLAUDE_CODE) && i.whole_session)
    );
    let got = rows(ledger);
    assert!(got == clean, "{}", first_difference(&got, clean));
}

#[test]
fn the_next_backfill_replaces_what_the_old_mapping_wrote() {
    let c = corpus();
    let (old, clean) = old_and_clean(&c);
    let (factory, _) = fake_factory();
    let cursors = nex::ledger::load_cursors(&open(&old), "aix").unwrap();
    let frames = backfill(&options(&c, MappingVersions::CURRENT), &cursors, &factory);
    let cursors = replay(&frames, &old);
    assert_upgraded(&batch_items(&frames), &old, &clean);
    // Once upgraded, the files are unchanged again.
    let again = backfill(&options(&c, MappingVersions::CURRENT), &cursors, &factory);
    assert!(batch_items(&again).is_empty());
}

#[test]
fn the_next_tail_start_replaces_what_the_old_mapping_wrote() {
    let c = corpus();
    let (old, clean) = old_and_clean(&c);
    let cursors = nex::ledger::load_cursors(&open(&old), "aix").unwrap();
    let (factory, _) = fake_factory();
    let cap = Capture::default();
    let stop = Arc::new(StopSignal::default());
    let (sink_cap, s) = (cap.clone(), stop.clone());
    let opts = options(&c, MappingVersions::CURRENT);
    let handle = std::thread::spawn(move || {
        let sink = FrameSink::new(Box::new(sink_cap), "tail-run".into());
        let spec = RunSpec {
            mode: RunMode::Tail,
            persona_id: None,
            cursors: cursor_map(&cursors),
            store_cursors: nex::aix::stores::store_cursor_map(&cursors),
            options: opts,
        };
        let counters = run_mode(&spec, &factory, &sink, &s, &WorkerStatus::default())?;
        sink.complete(&counters.progress(false))
            .map_err(nex::aix::WorkerError::Output)
    });
    cap.wait_for("3 items", |f| batch_items(f).len() >= 3);
    stop.stop();
    handle.join().unwrap().unwrap();
    let frames = cap.frames();
    replay(&frames, &old);
    assert_upgraded(&batch_items(&frames), &old, &clean);
}

/// Claude Code mapping 4 imported every line of a resumed file as its own (the copies of the
/// earlier session counted twice); the next backfill under mapping 5 reads the files again and
/// removes the copies' rows from the resumed sessions: the ledger equals a clean import, and
/// a backfill after that finds nothing to do.
#[test]
fn the_next_backfill_removes_the_copies_claude_code_mapping_4_imported() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects").join("-work-garden");
    std::fs::create_dir_all(&proj).unwrap();
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code/resumed-chain");
    for e in std::fs::read_dir(&fixtures).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, proj.join(p.file_name().unwrap())).unwrap();
    }
    let options = |mappings| WorkerOptions {
        claude_dirs: vec![dir.path().join("projects")],
        mappings,
        parse_threads: 1,
        ..Default::default()
    };
    // Mapping 4: no copy index (every parser alone).
    let v4: ParserFactory = Arc::new(|f: &SourceFile| nex::aix::sources::parser_for(f));
    let old = dir.path().join("old.db");
    let messages = |ledger: &Path| -> i64 {
        open(ledger)
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    replay(
        &backfill(
            &options(MappingVersions::CURRENT.with(Provider::ClaudeCode, 4)),
            &[],
            &v4,
        ),
        &old,
    );
    assert_eq!(messages(&old), 6 + 9 + 11, "mapping 4 counts the copies");

    let clean = dir.path().join("clean.db");
    replay(
        &backfill(
            &options(MappingVersions::CURRENT),
            &[],
            &nex::aix::default_parser_factory(),
        ),
        &clean,
    );
    assert_eq!(messages(&clean), 6 + 3 + 2);

    let cursors = nex::ledger::load_cursors(&open(&old), "aix").unwrap();
    let frames = backfill(
        &options(MappingVersions::CURRENT),
        &cursors,
        &nex::aix::default_parser_factory(),
    );
    assert_eq!(batch_items(&frames).len(), 3, "every file read again");
    let cursors = replay(&frames, &old);
    let (got, expected) = (canonical(&open(&old)), canonical(&open(&clean)));
    assert!(got == expected, "{}", first_difference(&got, &expected));
    let again = backfill(
        &options(MappingVersions::CURRENT),
        &cursors,
        &nex::aix::default_parser_factory(),
    );
    assert!(batch_items(&again).is_empty());
}

/// Claude Code mapping 5 left subagent files out of the copy index: a 2.1.x `aside_question`
/// agent kept its copy of the parent's conversation as its own turns (the parent's prompts and
/// tool calls counted twice). The next backfill under mapping 6 reads the files again and
/// removes the copies' rows from the agent's session: the ledger equals a clean import, and a
/// backfill after that finds nothing to do.
#[test]
fn the_next_backfill_removes_the_parent_copies_claude_code_mapping_5_kept_in_a_subagent() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects").join("-work-shelf");
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code/aside-question");
    let mut files = Vec::new();
    crate::e2e_support::files_under(&fixtures, &mut files);
    assert_eq!(files.len(), 2);
    for p in files {
        let dest = proj.join(p.strip_prefix(&fixtures).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&p, dest).unwrap();
    }
    let options = |mappings| WorkerOptions {
        claude_dirs: vec![dir.path().join("projects")],
        mappings,
        parse_threads: 1,
        ..Default::default()
    };
    // Mapping 5: the copy index for main files only.
    let index = Arc::new(nex::aix::claude_copies::CopyIndex::default());
    let v5: ParserFactory = Arc::new(move |f: &SourceFile| {
        let copies = (f.role == nex::aix::sources::FileRole::Main).then(|| index.clone());
        nex::aix::sources::parser_with_copies(f, copies)
    });
    let tool_calls = |ledger: &Path| -> i64 {
        open(ledger)
            .query_row("SELECT COUNT(*) FROM tool_calls", [], |r| r.get(0))
            .unwrap()
    };
    let old = dir.path().join("old.db");
    replay(
        &backfill(
            &options(MappingVersions::CURRENT.with(Provider::ClaudeCode, 5)),
            &[],
            &v5,
        ),
        &old,
    );
    assert_eq!(
        tool_calls(&old),
        2,
        "mapping 5 counts the parent's call twice"
    );

    let clean = dir.path().join("clean.db");
    replay(
        &backfill(
            &options(MappingVersions::CURRENT),
            &[],
            &nex::aix::default_parser_factory(),
        ),
        &clean,
    );
    assert_eq!(tool_calls(&clean), 1);

    let cursors = nex::ledger::load_cursors(&open(&old), "aix").unwrap();
    let frames = backfill(
        &options(MappingVersions::CURRENT),
        &cursors,
        &nex::aix::default_parser_factory(),
    );
    assert_eq!(batch_items(&frames).len(), 2, "both files read again");
    let cursors = replay(&frames, &old);
    let (got, expected) = (canonical(&open(&old)), canonical(&open(&clean)));
    assert!(got == expected, "{}", first_difference(&got, &expected));
    let again = backfill(
        &options(MappingVersions::CURRENT),
        &cursors,
        &nex::aix::default_parser_factory(),
    );
    assert!(batch_items(&again).is_empty());
}
