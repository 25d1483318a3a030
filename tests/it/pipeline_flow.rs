//! Flow guarantees of a running pipeline: nothing is reported or visible before its commit,
//! backpressure stops the source, cancellation drains and commits, a read error ends the run
//! after committing what came before it, a busy ledger delays without losing anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use nex::ledger;
use nex::pipeline::writer::{LedgerWriter, WriterConfig};
use nex::pipeline::{BatchPolicy, ImportEvent, PipelineConfig, StreamEnd, run_lines, run_pipeline};
use nex::stages::sink::PREPARE_AHEAD;
use nex::stages::source::lines_source;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::pipeline_support::*;

fn batches(run: &str, n: usize) -> Stream {
    let mut s = Stream::new(run);
    for i in 0..n {
        s.batch(request(
            &format!("k{i}"),
            vec![item("anthropic", &format!("s{i}"), "fp")],
            vec![cursor(&format!("c{i}"), i as u64)],
        ));
    }
    s
}

async fn wait_held(gate: &CommitGate) -> nex::pipeline::writer::BatchInfo {
    let held = gate.held.clone();
    tokio::task::spawn_blocking(move || held.lock().unwrap().recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("a batch reached the commit")
}

/// Returns once every task of the runtime is parked (the pipeline has done all it can while
/// the ledger writer is held at the gate). The tests that use it run on paused time, whose
/// clock moves only when the runtime has nothing to run: this sleep ends exactly then (after
/// the timers the pipeline set within it have fired), not after a guess at "long enough".
async fn quiescent() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_reported_or_visible_before_commit() {
    let (_dir, path) = temp_ledger();
    let (gate, config) = CommitGate::new();
    let writer = writer_with(&path, config);
    let bus = nex::pipeline::events::bus(64);
    let mut events = bus.subscribe();
    let handle = writer.handle();
    let input = std::io::Cursor::new(batches(RUN, 3).bytes());
    let run = tokio::spawn(async move {
        run_pipeline(
            input,
            PipelineConfig::default(),
            &handle,
            Some(bus),
            CancellationToken::new(),
        )
        .await
    });

    let held = wait_held(&gate).await;
    assert_eq!(held.ops, 3);
    assert_eq!(held.run_id.as_deref(), Some(RUN));
    // Everything a wrong pipeline could report early, it has reported once it is parked.
    quiescent().await;
    let conn = read_only(&path);
    assert_eq!(
        count(&conn, "session_imports"),
        0,
        "no import visible before commit"
    );
    assert_eq!(
        count(&conn, "session_import_cursors"),
        0,
        "no cursor visible before commit"
    );
    assert_eq!(count(&conn, "session_import_requests"), 0);
    let mut early = Vec::new();
    while let Ok(e) = events.try_recv() {
        early.push(e);
    }
    assert_eq!(
        early,
        [ImportEvent::RunStarted {
            run_id: None,
            mode: None,
            job_id: None,
            pid: None
        }],
        "only the start is published"
    );
    assert!(!run.is_finished());

    gate.release_one();
    let report = run.await.unwrap().into_result().unwrap();
    assert_eq!(
        (report.counters.imported, report.counters.cursors_stored),
        (3, 3)
    );
    assert_eq!(count(&conn, "session_imports"), 3);
    assert_eq!(count(&conn, "session_import_cursors"), 3);
    let mut progress = None;
    while let Ok(e) = events.try_recv() {
        if let ImportEvent::RunProgress { counters, .. } = e {
            progress = Some(counters.imported);
        }
    }
    assert!(
        progress.is_some_and(|n| n > 0),
        "progress published after the commit"
    );
    gate.open();
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_ledger_that_does_not_commit_stops_the_source() {
    const MAX_OPS: usize = 8;
    const IN_FLIGHT: usize = 2;
    const FRAMES: usize = 200;
    let (_dir, path) = temp_ledger();
    let (gate, config) = CommitGate::new();
    let writer = writer_with(&path, config);
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let lines = batches(RUN, FRAMES)
        .lines
        .into_iter()
        .map(|l| String::from_utf8(l).unwrap())
        .collect::<Vec<_>>();
    let cancel = CancellationToken::new();
    let source = lines_source(
        futures::stream::iter(lines).inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }),
        cancel.clone(),
    );
    let config = PipelineConfig {
        batch: BatchPolicy::new(MAX_OPS, Duration::from_millis(25)),
        in_flight_batches: IN_FLIGHT,
        ..PipelineConfig::default()
    };
    let handle = writer.handle();
    let run =
        tokio::spawn(
            async move { run_lines(source, config, &handle, None, cancel, Vec::new()).await },
        );

    let held = wait_held(&gate).await;
    // Parked: the source has read all it will until a commit returns.
    quiescent().await;
    let read = pulled.load(Ordering::SeqCst);
    // The documented bound: `in_flight × max_ops` frames in batches and `PREPARE_AHEAD` being
    // prepared past the validator, nothing more.
    assert!(
        read <= IN_FLIGHT * MAX_OPS + PREPARE_AHEAD,
        "read {read} frames with the ledger stalled"
    );
    assert!(read >= held.ops, "at least the held batch was read");
    // Parked again after a second of the pipeline's own timers (busy rechecks, batch waits).
    quiescent().await;
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        read,
        "the source stays stopped"
    );

    gate.open();
    let report = run.await.unwrap().into_result().unwrap();
    assert_eq!(report.counters.imported, FRAMES as u64);
    assert_eq!(pulled.load(Ordering::SeqCst), FRAMES);
    writer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancellation_commits_everything_read_and_reads_nothing_more() {
    let (_dir, path) = temp_ledger();
    let (gate, config) = CommitGate::new();
    let writer = writer_with(&path, config);
    let (mut tx, rx) = tokio::io::duplex(1 << 20);
    tx.write_all(&batches(RUN, 6).bytes()).await.unwrap();
    let cancel = CancellationToken::new();
    let config = PipelineConfig {
        batch: BatchPolicy::new(4, Duration::from_millis(25)),
        ..PipelineConfig::default()
    };
    let handle = writer.handle();
    let token = cancel.clone();
    let run = tokio::spawn(async move { run_pipeline(rx, config, &handle, None, token).await });

    assert_eq!(wait_held(&gate).await.ops, 4);
    // Parked: the six frames written so far are read.
    quiescent().await;
    cancel.cancel();
    // Written after the cancellation (the worker keeps going): never read.
    let late = {
        let mut s = batches(RUN, 9);
        s.lines.drain(..6);
        s.bytes()
    };
    tx.write_all(&late).await.unwrap();
    gate.open();
    let report = run.await.unwrap().into_result().unwrap();
    writer.shutdown().await;

    assert_eq!(report.end, StreamEnd::Cancelled);
    let read = report.stages[0].items_out;
    assert_eq!(
        read, 6,
        "everything written before the cancellation was read"
    );
    assert_eq!(report.counters.imported, read);
    assert_eq!(count(&read_only(&path), "session_imports"), 6);
    drop(tx);
}

#[tokio::test]
async fn read_error_fails_the_run_after_committing_what_came_before() {
    let (_dir, path) = temp_ledger();
    let writer = writer(&path);
    let bus = nex::pipeline::events::bus(64);
    let mut events = bus.subscribe();
    let input = tokio_test::io::Builder::new()
        .read(&batches(RUN, 3).bytes())
        .read_error(std::io::Error::other("pipe broke"))
        .build();
    let err = run_pipeline(
        input,
        PipelineConfig::default(),
        &writer.handle(),
        Some(bus),
        CancellationToken::new(),
    )
    .await
    .into_result()
    .unwrap_err();
    writer.shutdown().await;
    assert_eq!(err.0.as_str(), "worker_exited");
    assert_eq!(count(&read_only(&path), "session_imports"), 3);
    let mut failed = None;
    while let Ok(e) = events.try_recv() {
        if let ImportEvent::RunFailed {
            error_code: code, ..
        } = e
        {
            failed = Some(code);
        }
    }
    assert_eq!(failed.as_deref(), Some("worker_exited"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_ledger_delays_but_loses_nothing() {
    let (_dir, path) = temp_ledger();
    let conn = ledger::open_agents(&path).unwrap();
    // Shorter than the lock below, so the writer sees SQLITE_BUSY and must retry.
    conn.busy_timeout(Duration::from_millis(50)).unwrap();
    let writer = LedgerWriter::spawn(
        conn,
        WriterConfig {
            busy_backoff: Duration::from_millis(20),
            ..WriterConfig::default()
        },
    )
    .unwrap();
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let locker = std::thread::spawn({
        let path = path.clone();
        move || {
            let other = rusqlite::Connection::open(&path).unwrap();
            other.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            // The contention under test: the writer meets the lock for this long.
            std::thread::sleep(Duration::from_millis(600));
            other.execute_batch("COMMIT").unwrap();
        }
    });
    // The pipeline starts once the lock is held, not after a guess at how long that takes.
    locked.recv_timeout(Duration::from_secs(10)).unwrap();
    let started = std::time::Instant::now();
    let report = run_pipeline(
        std::io::Cursor::new(batches(RUN, 5).bytes()),
        PipelineConfig::default(),
        &writer.handle(),
        None,
        CancellationToken::new(),
    )
    .await
    .into_result()
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the lock delayed the commit"
    );
    assert_eq!(report.counters.imported, 5);
    locker.join().unwrap();
    writer.shutdown().await;
    assert_eq!(count(&read_only(&path), "session_imports"), 5);
}

#[tokio::test]
async fn a_panic_in_the_writer_fails_that_batch_only_and_the_writer_lives_on() {
    let (_dir, path) = temp_ledger();
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let config = WriterConfig {
        before_commit: Some(Arc::new(move |_| {
            if first.swap(false, Ordering::SeqCst) {
                panic!("injected writer bug");
            }
        })),
        ..WriterConfig::default()
    };
    let writer = writer_with(&path, config);
    let run = |n| {
        let handle = writer.handle();
        async move {
            run_pipeline(
                std::io::Cursor::new(batches(RUN, n).bytes()),
                PipelineConfig::default(),
                &handle,
                None,
                CancellationToken::new(),
            )
            .await
        }
    };
    let err = run(2).await.into_result().unwrap_err();
    assert_eq!(err.0.as_str(), "internal_panic");
    assert_eq!(
        count(&read_only(&path), "session_imports"),
        0,
        "the batch was rolled back"
    );
    let report = run(3).await.into_result().unwrap();
    assert_eq!(report.counters.imported, 3);
    writer.shutdown().await;
}
