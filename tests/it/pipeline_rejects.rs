//! A recorded stream mixing valid frames with one bad frame per reject code the pipeline can
//! produce: exactly the expected rejects, commits, cursors and events.

use std::collections::BTreeMap;
use std::io::Cursor as Bytes;

use nex::import::ImportOptions;
use nex::pipeline::{ImportEvent, PipelineConfig, RejectCode, StreamEnd, run_pipeline};
use nex::protocol::{ChunkRequest, ImportRequest, WorkerFrame};
use tokio_util::sync::CancellationToken;

use crate::pipeline_support::*;

fn with<T: Clone>(base: &T, f: impl FnOnce(&mut T)) -> T {
    let mut x = base.clone();
    f(&mut x);
    x
}

fn single_part(
    upload: &str,
    data: String,
    provider: &str,
    session: &str,
    fp: &str,
) -> ChunkRequest {
    ChunkRequest {
        source: "aix".into(),
        mode: "backfill".into(),
        idempotency_key: format!("key-{upload}"),
        upload_id: upload.into(),
        chunk_index: 0,
        chunk_total: 1,
        encoding: "gzip+base64".into(),
        data: data.into(),
        source_provider: provider.into(),
        source_session_id: session.into(),
        source_session_fingerprint: fp.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_reject_code_once_and_every_valid_frame_committed() {
    let (_dir, path) = temp_ledger();
    let writer = writer(&path);
    let mut s = Stream::new(RUN);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut expect = |code: &str| *expected.entry(code.to_owned()).or_insert(0) += 1;

    let good = request(
        "k1",
        vec![item("anthropic", "s1", "fp1")],
        vec![cursor("c:a", 10)],
    );
    s.batch(good.clone());
    // Transport and decode rejects.
    s.raw(vec![b'x'; 20_000]);
    expect("frame_too_large");
    s.raw(&b"\xff\xfe{}"[..]);
    expect("frame_invalid_utf8");
    s.raw("{not json");
    expect("frame_json_invalid");
    s.raw(format!(
        r#"{{"type":"import.batch","runId":"{RUN}","payload":{{"items":"nope"}}}}"#
    ));
    expect("frame_schema_invalid");
    s.raw(format!(
        r#"{{"type":"session.compact","runId":"{RUN}","payload":{{}}}}"#
    ));
    expect("frame_type_unknown");
    s.raw(
        WorkerFrame::ImportBatch(request(
            "k-other",
            vec![item("anthropic", "so", "f")],
            vec![],
        ))
        .encode("another-run", 1),
    );
    expect("frame_run_id_mismatch");
    // Request-level checks (validator).
    s.batch(with(&good, |r: &mut ImportRequest| r.source = "foo".into()));
    expect("source_unsupported");
    s.batch(with(&good, |r: &mut ImportRequest| {
        r.mode = "sideways".into()
    }));
    expect("mode_unsupported");
    s.batch(with(&good, |r: &mut ImportRequest| {
        r.idempotency_key = " ".into()
    }));
    expect("idempotency_key_required");
    s.batch(with(&good, |r: &mut ImportRequest| r.items.clear()));
    expect("items_required");
    // Idempotency (service, in the writer's transaction); the cursor must not be stored.
    s.batch(request(
        "k1",
        vec![item("anthropic", "s1", "fp2")],
        vec![cursor("c:never", 99)],
    ));
    expect("idempotency_key_payload_mismatch");
    s.batch(with(&good, |r: &mut ImportRequest| {
        r.mode = "tail".into();
        r.cursors = vec![cursor("c:never", 98)];
    }));
    expect("idempotency_key_mode_mismatch");
    // Chunk metadata (assembler).
    let s2 = item("anthropic", "s2", "fp1");
    let u1 = chunk_requests(&s2, "u1", "k-u1", 2, vec![cursor("c:u1", 7)]);
    s.chunk(with(&u1[0], |c: &mut ChunkRequest| c.upload_id = "".into()));
    expect("chunk_upload_id_required");
    s.chunk(with(&u1[0], |c: &mut ChunkRequest| c.chunk_index = 2));
    expect("chunk_index_out_of_range");
    // Against the staged upload (service, in the transaction).
    s.chunk(u1[0].clone());
    type Change = fn(&mut ChunkRequest);
    let mismatches: [(&str, Change); 7] = [
        ("chunk_total_mismatch", |c| c.chunk_total = 3),
        ("chunk_mode_mismatch", |c| c.mode = "tail".into()),
        ("chunk_encoding_mismatch", |c| c.encoding = "raw".into()),
        ("chunk_idempotency_key_mismatch", |c| {
            c.idempotency_key = "k-x".into()
        }),
        ("chunk_source_provider_mismatch", |c| {
            c.source_provider = "openai".into()
        }),
        ("chunk_source_session_id_mismatch", |c| {
            c.source_session_id = "zz".into()
        }),
        ("chunk_source_session_fingerprint_mismatch", |c| {
            c.source_session_fingerprint = "fz".into()
        }),
    ];
    for (code, change) in mismatches {
        s.chunk(with(&u1[1], change));
        expect(code);
    }
    s.chunk(u1[1].clone());
    // Assembly and decoding of single-part uploads.
    s.chunk(with(
        &single_part("u2", "AAAA".into(), "anthropic", "x2", "f"),
        |c| c.encoding = "utf-8".into(),
    ));
    expect("chunk_encoding_unsupported:utf-8");
    s.chunk(single_part(
        "u3",
        "!!!not base64!!!".into(),
        "anthropic",
        "x3",
        "f",
    ));
    expect("chunk_payload_decode_failed");
    s.chunk(single_part(
        "u4",
        gzip_base64_parts(b"not json at all", 1).remove(0),
        "anthropic",
        "x4",
        "f",
    ));
    expect("chunk_payload_json_invalid");
    let mut bomb = br#"{"sourceProvider":""#.to_vec();
    bomb.extend(std::iter::repeat_n(b'x', 1 << 20));
    bomb.extend_from_slice(br#""}"#);
    s.chunk(single_part(
        "u5",
        gzip_base64_parts(&bomb, 1).remove(0),
        "anthropic",
        "x5",
        "f",
    ));
    expect("chunk_payload_too_large");
    let other = encode_parts(&item("anthropic", "x6", "f6"), 1).remove(0);
    s.chunk(single_part("u6", other.clone(), "openai", "x6", "f6"));
    expect("chunk_item_source_provider_mismatch");
    s.chunk(single_part("u7", other.clone(), "anthropic", "x7", "f6"));
    expect("chunk_item_source_session_id_mismatch");
    s.chunk(single_part("u8", other, "anthropic", "x6", "f7"));
    expect("chunk_item_source_session_fingerprint_mismatch");
    // Report frames, a seq gap and a seq repeat (counted, not rejected).
    s.progress(5, 2);
    let gap_at = s.seq() + 4;
    s.set_seq(gap_at).health();
    s.set_seq(gap_at).health();
    s.set_seq(gap_at + 1);
    // Item-level failure: one good item, one without provider.
    let mut no_provider = item("anthropic", "s4", "fp1");
    no_provider.source_provider.clear();
    s.batch(request(
        "k3",
        vec![item("anthropic", "s3", "fp1"), no_provider],
        vec![cursor("c:k3", 3)],
    ));
    s.complete();
    let frames_before_end = s.lines.len() as u64;
    // After the terminal frame: never read.
    s.batch(request(
        "k4",
        vec![item("anthropic", "s9", "fp1")],
        vec![cursor("c:late", 1)],
    ));

    let config = PipelineConfig {
        max_frame_bytes: 16 * 1024,
        import: ImportOptions {
            max_inflated_bytes: 64 * 1024,
            ..ImportOptions::default()
        },
        telemetry: true,
        ..PipelineConfig::default()
    };
    let bus = nex::pipeline::events::bus(1024);
    let mut events = bus.subscribe();
    let report = run_pipeline(
        Bytes::new(s.bytes()),
        config,
        &writer.handle(),
        Some(bus),
        CancellationToken::new(),
    )
    .await
    .into_result()
    .expect("the stream is consumed");
    writer.shutdown().await;

    let c = &report.counters;
    assert_eq!(c.rejected, expected, "rejects by code");
    assert_eq!((c.imported, c.upserted, c.skipped, c.failed), (3, 0, 0, 1));
    assert_eq!(
        (c.chunks_staged, c.uploads_completed, c.cursors_stored),
        (2, 1, 3)
    );
    assert_eq!((c.seq_gaps, c.seq_repeats), (1, 1));
    assert_eq!(c.frames, frames_before_end);
    assert_eq!((c.total, c.emitted), (Some(5), Some(2)));
    assert_eq!(report.run_id.as_deref(), Some(RUN));
    assert_eq!(report.end, StreamEnd::Complete);
    let telemetry = report.telemetry.expect("telemetry inserted");
    assert_eq!(
        telemetry.frames_by_kind.values().sum::<u64>(),
        frames_before_end
    );

    let conn = read_only(&path);
    let sessions: Vec<String> = conn
        .prepare("SELECT source_session_id FROM session_imports ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(sessions, ["s1", "s2", "s3"]);
    let cursors: Vec<(String, String)> = conn
        .prepare("SELECT cursor_key, cursor_json FROM session_import_cursors ORDER BY 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        cursors,
        [
            ("c:a".to_owned(), r#"{"offset":10}"#.to_owned()),
            ("c:k3".to_owned(), r#"{"offset":3}"#.to_owned()),
            ("c:u1".to_owned(), r#"{"offset":7}"#.to_owned()),
        ]
    );
    assert_eq!(
        count(&conn, "session_import_requests"),
        3,
        "k1, k-u1 and k3 are stored"
    );

    let mut rejected_events = 0;
    let mut terminal = None;
    let mut completed = false;
    let mut health = 0;
    while let Ok(event) = events.try_recv() {
        match event {
            ImportEvent::WorkerHealth { connected, .. } => {
                assert!(connected);
                health += 1;
            }
            ImportEvent::FrameRejected {
                error_code: code,
                run_id,
                ..
            } => {
                assert!(expected.contains_key(&code), "unexpected event code {code}");
                assert_eq!(run_id.as_deref(), Some(RUN));
                rejected_events += 1;
            }
            ImportEvent::RunTerminal { terminal: t, .. } => terminal = Some(t),
            ImportEvent::RunCompleted { .. } => completed = true,
            _ => {}
        }
    }
    assert_eq!(rejected_events, expected.values().sum::<u64>());
    assert_eq!(terminal, Some(StreamEnd::Complete));
    assert_eq!(health, 2);
    assert!(completed);
}

#[tokio::test]
async fn run_error_is_terminal_and_recorded() {
    let (_dir, path) = temp_ledger();
    let writer = writer(&path);
    let mut s = Stream::new(RUN);
    s.batch(request("k1", vec![item("anthropic", "s1", "fp1")], vec![]));
    s.error("source_unreadable");
    s.batch(request("k2", vec![item("anthropic", "s2", "fp1")], vec![]));
    let report = run_pipeline(
        Bytes::new(s.bytes()),
        PipelineConfig::default(),
        &writer.handle(),
        None,
        CancellationToken::new(),
    )
    .await
    .into_result()
    .unwrap();
    writer.shutdown().await;
    assert_eq!(report.counters.imported, 1);
    assert_eq!(report.counters.frames, 2);
    assert!(
        matches!(
            &report.end,
            StreamEnd::WorkerError { code, retryable: Some(true), .. }
                if *code == RejectCode::service("source_unreadable")
        ),
        "{:?}",
        report.end
    );
}
