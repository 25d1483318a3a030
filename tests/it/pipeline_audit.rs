//! Inserted stages: the audit tap records the run's start in `nexus.db.import_runs` and an
//! unsupervised run records its end there; an arbitrary outcome tap is inserted through the
//! builder's insertion point without touching any other stage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nex::ledger;
use nex::ledger::runs::AuditConfig;
use nex::pipeline::{Emit, PipelineConfig, PipelineError, Stage, run_lines};
use nex::stages::source::lines_source;
use nex::stages::{FrameOutcome, Outcome};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::pipeline_support::*;

/// Counts the sessions newly imported, as seen after the commit.
struct ImportedCounter(Arc<AtomicU64>);

impl Stage<FrameOutcome, FrameOutcome> for ImportedCounter {
    fn name(&self) -> &'static str {
        "imported_counter"
    }

    fn process(
        &mut self,
        o: FrameOutcome,
        out: &mut Emit<FrameOutcome>,
    ) -> Result<(), PipelineError> {
        if let Outcome::Imported { response, .. } = &o.result {
            self.0.fetch_add(response.imported, Ordering::Relaxed);
        }
        out.push(o);
        Ok(())
    }
}

fn lines(s: &Stream) -> Vec<String> {
    s.lines
        .iter()
        .map(|l| String::from_utf8(l.clone()).unwrap())
        .collect()
}

#[tokio::test]
async fn audit_row_and_inserted_tap() {
    let (dir, path) = temp_ledger();
    let nexus = dir.path().join("nexus.db");
    {
        // The daemon recorded the spawn (pid) before the pipeline ran.
        let conn = ledger::open_nexus(&nexus).unwrap();
        conn.execute(
            "INSERT INTO import_runs (run_id, source, mode, worker_pid, started_at) VALUES (?1, 'aix', 'backfill', 4242, 1)",
            [RUN],
        )
        .unwrap();
    }
    let writer = writer(&path);
    let mut s = Stream::new(RUN);
    s.batch(request(
        "k1",
        vec![item("anthropic", "s1", "fp"), item("anthropic", "s2", "fp")],
        vec![],
    ))
    .raw("garbage")
    .complete();
    let audit = AuditConfig {
        nexus_path: nexus.clone(),
        job_id: None,
        source: "aix".into(),
        mode: "backfill".into(),
        worker_pid: None,
    };
    let config = PipelineConfig {
        audit: Some(audit.clone()),
        ..PipelineConfig::default()
    };
    let seen = Arc::new(AtomicU64::new(0));
    let cancel = CancellationToken::new();
    let report = run_lines(
        lines_source(futures::stream::iter(lines(&s)), cancel.clone()),
        config.clone(),
        &writer.handle(),
        None,
        cancel,
        vec![Box::new(ImportedCounter(seen.clone()))],
    )
    .await
    .into_result()
    .unwrap();
    assert_eq!(
        seen.load(Ordering::Relaxed),
        2,
        "the inserted tap saw the committed outcomes"
    );
    let names: Vec<_> = report.stages.iter().map(|s| s.stage).collect();
    assert_eq!(
        names,
        [
            "source",
            "decode",
            "assemble",
            "validate",
            "sink",
            "metrics",
            "imported_counter",
            "audit"
        ]
    );
    let tap = &report.stages[6];
    assert_eq!(
        (tap.items_in, tap.items_out),
        (3, 3),
        "instrumented like any stage"
    );

    let conn = ledger::open_nexus(&nexus).unwrap();
    let (pid, outcome, code, stats, ended): (Option<i64>, String, Option<String>, String, Option<i64>) = conn
        .query_row(
            "SELECT worker_pid, outcome, error_code, stats_json, ended_at FROM import_runs WHERE run_id = ?1",
            [RUN],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(pid, Some(4242), "the daemon's columns are kept");
    assert_eq!(outcome, "completed");
    assert_eq!(code, None);
    assert!(ended.is_some());
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["imported"], 2);
    assert_eq!(stats["rejected"]["frame_json_invalid"], 1);

    // A run cancelled before reading anything is recorded too.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let report = run_lines(
        lines_source(futures::stream::iter(lines(&s)), cancel.clone()),
        config,
        &writer.handle(),
        None,
        cancel,
        Vec::new(),
    )
    .await
    .into_result()
    .unwrap();
    assert_eq!(report.counters.frames, 0);
    let cancelled: (String, String) = conn
        .query_row(
            "SELECT outcome, error_code FROM import_runs WHERE run_id != ?1",
            [RUN],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        cancelled,
        ("cancelled".to_owned(), "run_cancelled".to_owned())
    );
    writer.shutdown().await;
}

/// The control plane's pipeline: frame events on the shared bus (no lifecycle: the supervisor
/// publishes it and records the run's end), the run's start recorded by the audit tap, and
/// commits that carry the newest committed source event for the lag.
#[tokio::test]
async fn supervised_pipeline_publishes_frame_events_records_the_run_and_reports_the_newest_event() {
    use nex::control::ledger_pipeline::LedgerPipeline;
    use nex::control::port::{Backlog, RunInfo, RunPipeline, RunSignal};
    use nex::pipeline::ImportEvent;
    use nex::pipeline::StreamEnd;
    use nex::protocol::RunMode;

    let (dir, path) = temp_ledger();
    let nexus = dir.path().join("nexus.db");
    let writer = writer(&path);
    let bus = nex::pipeline::events::bus(256);
    let mut events = bus.subscribe();
    let pipeline = LedgerPipeline::new(writer.handle(), PipelineConfig::default()).with_bus(bus);
    let mut s = Stream::new(RUN);
    s.batch(request("k1", vec![item("anthropic", "s1", "fp")], vec![]))
        .raw("garbage")
        .complete();
    let info = RunInfo {
        run_id: RUN.to_owned(),
        mode: RunMode::Backfill,
        source: "aix".into(),
        persona_id: "main".into(),
        job_id: None,
        audit: Some(AuditConfig {
            nexus_path: nexus.clone(),
            job_id: None,
            source: "aix".into(),
            mode: "backfill".into(),
            worker_pid: Some(77),
        }),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let report = pipeline.run(
        info,
        Box::pin(std::io::Cursor::new(s.bytes())),
        tx,
        Arc::new(Backlog::default()),
        CancellationToken::new(),
    );
    let report = report.await;
    // The pipeline holds a handle of the writer.
    drop(pipeline);
    writer.shutdown().await;
    assert_eq!(report.end, StreamEnd::Complete, "{report:?}");
    assert_eq!((report.counters.requests, report.counters.imported), (1, 1));
    assert_eq!(report.counters.newest_event_at_ms, Some(1_764_000_100_000));

    let mut newest = None;
    while let Ok(signal) = rx.try_recv() {
        if let RunSignal::Committed {
            newest_event_at, ..
        } = signal
        {
            newest = newest_event_at;
        }
    }
    assert_eq!(
        newest,
        Some(1_764_000_100_000),
        "the item's session.updatedAtMs"
    );

    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(match e {
            ImportEvent::FrameRejected { error_code, .. } => {
                assert_eq!(error_code, "frame_json_invalid");
                "rejected"
            }
            ImportEvent::RunProgress { .. } => "progress",
            ImportEvent::RunTerminal { .. } => "terminal",
            ImportEvent::RunStarted { .. }
            | ImportEvent::RunCompleted { .. }
            | ImportEvent::RunFailed { .. } => "lifecycle",
            _ => "other",
        });
    }
    assert!(
        kinds.contains(&"rejected") && kinds.contains(&"terminal"),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"progress"), "{kinds:?}");
    assert!(
        !kinds.contains(&"lifecycle"),
        "the supervisor publishes it: {kinds:?}"
    );

    let conn = ledger::open_nexus(&nexus).unwrap();
    let runs = nex::ledger::runs::list(&conn, None, 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].worker_pid, Some(77));
    assert_eq!(
        (runs[0].outcome.as_deref(), runs[0].ended_at),
        (None, None),
        "the end is the supervisor's to record, once it classified it"
    );
}
