//! The run loop over in-memory pipes (with the fake parser) and the built `aix` binary:
//! handshake, health probes, stop, stdin EOF, resume from `run.start.cursors`, protocol errors.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

use std::sync::Arc;

use nex::aix::{RootOverrides, StopSignal, WorkerError, run_worker};
use nex::protocol::{
    ControlFrame, Cursor, Envelope, RunMode, RunStart, RunStop, WorkerFrame, decode_worker_frame,
};

use crate::worker_fake::{Capture, batch_items, cursors, fake_factory, reply, turn};

struct Session {
    input: Option<std::io::PipeWriter>,
    cap: Capture,
    handle: JoinHandle<Result<(), WorkerError>>,
}

fn start_frame(mode: RunMode, claude: &std::path::Path, cursors: Vec<Cursor>) -> String {
    ControlFrame::RunStart(RunStart {
        mode,
        source: "aix".into(),
        persona_id: None,
        cursors,
        options: Some(serde_json::json!({
            "claudeDirs": [claude],
            "codexDirs": [claude.join("no-codex")],
        })),
    })
    .encode("run-7")
}

fn launch(first: &str) -> Session {
    let (reader, mut writer) = std::io::pipe().unwrap();
    writeln!(writer, "{first}").unwrap();
    let cap = Capture::default();
    let out = cap.clone();
    let (factory, _) = fake_factory();
    let handle = std::thread::spawn(move || {
        run_worker(
            BufReader::new(reader),
            Box::new(out),
            &RootOverrides::default(),
            factory,
            Arc::new(StopSignal::default()),
        )
    });
    Session {
        input: Some(writer),
        cap,
        handle,
    }
}

impl Session {
    fn send(&mut self, frame: &ControlFrame) {
        let w = self.input.as_mut().unwrap();
        writeln!(w, "{}", frame.encode("run-7")).unwrap();
    }

    fn end(self) -> (Result<(), WorkerError>, Vec<Envelope<WorkerFrame>>) {
        drop(self.input);
        let r = self.handle.join().unwrap();
        (r, self.cap.frames())
    }
}

fn corpus() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("projects");
    std::fs::create_dir_all(claude.join("-p")).unwrap();
    for i in 0..3 {
        std::fs::write(
            claude.join(format!("-p/s{i}.jsonl")),
            format!("{}{}", turn(&format!("s{i}"), "t1", "a"), reply("b")),
        )
        .unwrap();
    }
    (dir, claude)
}

fn assert_well_formed(frames: &[Envelope<WorkerFrame>]) {
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.run_id, "run-7");
        assert_eq!(f.seq, Some(i as u64 + 1), "seq from 1, strictly increasing");
    }
    let terminal = frames.iter().position(|f| {
        matches!(
            f.body,
            WorkerFrame::RunComplete(_) | WorkerFrame::RunError(_)
        )
    });
    assert_eq!(terminal, Some(frames.len() - 1), "one terminal frame, last");
}

#[test]
fn backfill_completes_by_itself_and_resumes_from_start_cursors() {
    let (_dir, claude) = corpus();
    let s = launch(&start_frame(RunMode::Backfill, &claude, vec![]));
    let frames = s.cap.wait_for("run.complete", |f| {
        f.iter()
            .any(|f| matches!(f.body, WorkerFrame::RunComplete(_)))
    });
    // The first frame answers run.start at once; then the backfill's progress.
    assert!(matches!(frames[0].body, WorkerFrame::HealthStatus(_)));
    assert!(matches!(frames[1].body, WorkerFrame::RunProgress(_)));
    assert_eq!(batch_items(&frames).len(), 3);
    let (r, frames) = s.end();
    r.unwrap();
    assert_well_formed(&frames);

    let s = launch(&start_frame(RunMode::Backfill, &claude, cursors(&frames)));
    let (r, again) = {
        s.cap.wait_for("run.complete", |f| {
            f.iter()
                .any(|f| matches!(f.body, WorkerFrame::RunComplete(_)))
        });
        s.end()
    };
    r.unwrap();
    assert!(batch_items(&again).is_empty());
    let WorkerFrame::RunComplete(p) = &again.last().unwrap().body else {
        panic!()
    };
    assert_eq!((p.skipped, p.total, p.emitted), (3, Some(0), Some(0)));
}

#[test]
fn tail_answers_probes_and_stops_on_run_stop() {
    let (_dir, claude) = corpus();
    let mut s = launch(&start_frame(RunMode::Tail, &claude, vec![]));
    s.cap.wait_for("3 items", |f| batch_items(f).len() >= 3);
    s.send(&ControlFrame::HealthProbe);
    // One unsolicited at start, one answering the probe.
    let frames = s.cap.wait_for("health.status", |f| {
        f.iter()
            .filter(|f| matches!(f.body, WorkerFrame::HealthStatus(_)))
            .count()
            >= 2
    });
    let health = frames
        .iter()
        .rev()
        .find_map(|f| match &f.body {
            WorkerFrame::HealthStatus(h) => Some(h.clone()),
            _ => None,
        })
        .unwrap();
    assert!(health.connected);
    assert!(health.last_event_at.is_some_and(|t| t > 0));
    let details = health.details.unwrap();
    assert_eq!(details["watchedFiles"], 3);
    assert!(details["pendingFiles"].is_u64());
    assert!(details["lagMs"].as_i64().is_some_and(|l| l >= 0));
    s.send(&ControlFrame::RunStop(RunStop {
        reason: Some("operator".into()),
    }));
    let frames = s.cap.wait_for("run.complete", |f| {
        f.iter()
            .any(|f| matches!(f.body, WorkerFrame::RunComplete(_)))
    });
    assert!(matches!(
        frames.last().unwrap().body,
        WorkerFrame::RunComplete(_)
    ));
    let (r, frames) = s.end();
    r.unwrap();
    assert_well_formed(&frames);
}

#[test]
fn stdin_eof_is_a_stop() {
    let (_dir, claude) = corpus();
    let s = launch(&start_frame(RunMode::Tail, &claude, vec![]));
    s.cap.wait_for("3 items", |f| batch_items(f).len() >= 3);
    let (r, frames) = s.end();
    r.unwrap();
    assert_well_formed(&frames);
    assert!(matches!(
        frames.last().unwrap().body,
        WorkerFrame::RunComplete(_)
    ));
}

#[test]
fn garbage_is_skipped_but_a_frame_before_run_start_is_a_violation() {
    let (_dir, claude) = corpus();
    // Junk lines before run.start are rejected and skipped.
    let first = format!(
        "not json\n\n{}",
        start_frame(RunMode::Backfill, &claude, vec![])
    );
    let s = launch(&first);
    s.cap.wait_for("run.complete", |f| {
        f.iter()
            .any(|f| matches!(f.body, WorkerFrame::RunComplete(_)))
    });
    s.end().0.unwrap();

    let s = launch(&ControlFrame::HealthProbe.encode("run-7"));
    let (r, frames) = s.end();
    assert_eq!(r.unwrap_err().code(), "worker_protocol_violation");
    let WorkerFrame::RunError(e) = &frames[0].body else {
        panic!()
    };
    assert_eq!(e.code, "worker_protocol_violation");
    assert_eq!(e.retryable, Some(false));

    let s = launch("");
    assert!(
        s.end().0.is_ok(),
        "input closed before run.start: nothing to do"
    );
}

/// The built `aix worker --stdio` over empty roots under `dir`, sent a tail `run.start` with
/// run id `run_id`: the child, its stdin and its stdout lines.
fn start_tail_worker(
    dir: &std::path::Path,
    run_id: &str,
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    // Source flags name existing folders (a missing one is refused); empty ones hold nothing.
    for d in ["c", "x"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_aix"))
        .env("HOME", no_home())
        .args(["worker", "--stdio", "--claude-dir"])
        .arg(dir.join("c"))
        .arg("--codex-dir")
        .arg(dir.join("x"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let start = ControlFrame::RunStart(RunStart {
        mode: RunMode::Tail,
        source: "aix".into(),
        persona_id: None,
        cursors: vec![],
        options: None,
    });
    writeln!(stdin, "{}", start.encode(run_id)).unwrap();
    (child, stdin, lines)
}

fn read_frame(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Envelope<WorkerFrame> {
    let line = lines.next().expect("a frame").unwrap();
    decode_worker_frame(&line).unwrap()
}

#[test]
fn binary_speaks_the_protocol_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdin, mut lines) = start_tail_worker(dir.path(), "bin-run");
    // Up at once: the first frame comes before any probe (NEX's start_timeout).
    let f = read_frame(&mut lines);
    assert_eq!((f.run_id.as_str(), f.seq), ("bin-run", Some(1)));
    assert!(matches!(f.body, WorkerFrame::HealthStatus(_)));
    writeln!(stdin, "{}", ControlFrame::HealthProbe.encode("bin-run")).unwrap();
    let f = read_frame(&mut lines);
    assert_eq!(f.seq, Some(2));
    let WorkerFrame::HealthStatus(h) = f.body else {
        panic!("expected health.status")
    };
    assert!(h.connected);
    writeln!(
        stdin,
        "{}",
        ControlFrame::RunStop(RunStop::default()).encode("bin-run")
    )
    .unwrap();
    let f = read_frame(&mut lines);
    assert_eq!(f.seq, Some(3));
    assert!(matches!(f.body, WorkerFrame::RunComplete(_)));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn binary_emit_backfill_and_scan() {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("c");
    std::fs::create_dir_all(claude.join("-p")).unwrap();
    std::fs::write(claude.join("-p/s.jsonl"), "{}\n").unwrap();
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aix"))
        .env("HOME", no_home())
        .args(["emit", "--mode", "backfill", "--claude-dir"])
        .arg(&claude)
        .arg("--codex-dir")
        .arg(dir.path().join("x"))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let frames = crate::worker_fake::decode_frames(&out.stdout);
    let run_id = &frames[0].run_id;
    assert!(uuid::Uuid::parse_str(run_id).is_ok(), "fresh UUID run id");
    assert!(matches!(frames[0].body, WorkerFrame::RunProgress(_)));
    assert!(matches!(
        frames.last().unwrap().body,
        WorkerFrame::RunComplete(_)
    ));

    let out = Command::new(env!("CARGO_BIN_EXE_aix"))
        .env("HOME", no_home())
        .args(["scan", "--claude-dir"])
        .arg(&claude)
        .arg("--codex-dir")
        .arg(dir.path().join("x"))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("claude-code:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().eq(["files", "1"])),
        "{text}"
    );
}

#[test]
fn binary_emit_tail_ends_with_run_complete_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("c");
    std::fs::create_dir_all(claude.join("-p")).unwrap();
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_aix"))
        .env("HOME", no_home())
        .args(["emit", "--mode", "tail", "--claude-dir"])
        .arg(&claude)
        .arg("--codex-dir")
        .arg(dir.path().join("x"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the tail is running (it logs "tail started"), then signal it.
    let mut child = child;
    let stderr = child.stderr.take().unwrap();
    let mut err_lines = BufReader::new(stderr).lines();
    loop {
        let line = err_lines.next().expect("tail started log").unwrap();
        if line.contains("tail started") {
            break;
        }
    }
    std::thread::spawn(move || for _ in err_lines {});
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let frames = crate::worker_fake::decode_frames(&out.stdout);
    assert!(matches!(
        frames.last().unwrap().body,
        WorkerFrame::RunComplete(_)
    ));
}

#[test]
fn binary_worker_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, stdin, mut lines) = start_tail_worker(dir.path(), "sig-run");
    // The first frame means the run (and the signal handlers) are up.
    assert!(matches!(
        read_frame(&mut lines).body,
        WorkerFrame::HealthStatus(_)
    ));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(matches!(
        read_frame(&mut lines).body,
        WorkerFrame::RunComplete(_)
    ));
    assert!(child.wait().unwrap().success());
    drop(stdin);
}

/// A HOME with nothing in it: the default locations of the sources a test does not name stay
/// empty (never the machine's own agent data).
fn no_home() -> std::path::PathBuf {
    std::env::temp_dir().join("nex-tests-no-home")
}
