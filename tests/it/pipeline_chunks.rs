//! Chunked uploads across runs: a stream cut mid-upload (and mid-line) leaves its parts staged
//! in the ledger; a second run with the remaining parts completes the upload.

use std::io::Cursor as Bytes;

use nex::pipeline::{PipelineConfig, StreamEnd, run_pipeline};
use tokio_util::sync::CancellationToken;

use crate::pipeline_support::*;

const RUN2: &str = "9d0c2a77-0000-4000-8000-000000000002";

#[tokio::test]
async fn upload_cut_mid_stream_completes_in_the_next_run() {
    let (_dir, path) = temp_ledger();
    let big = item("claude-code", "big-1", "fp-big");
    let parts = chunk_requests(&big, "up-big", "k-big", 3, vec![cursor("c:big", 3000)]);
    assert_eq!(parts.len(), 3);

    // Run 1: parts 0 and 1, then the worker dies in the middle of writing part 2's line.
    let mut s = Stream::new(RUN);
    s.chunk(parts[0].clone())
        .chunk(parts[1].clone())
        .chunk(parts[2].clone());
    let mut bytes = s.bytes();
    let cut = bytes.len() - 40;
    bytes.truncate(cut);
    let (head, tail) = bytes.split_at(bytes.len() / 2);
    let input = tokio_test::io::Builder::new().read(head).read(tail).build();
    let writer1 = writer(&path);
    let report = run_pipeline(
        input,
        PipelineConfig::default(),
        &writer1.handle(),
        None,
        CancellationToken::new(),
    )
    .await
    .into_result()
    .unwrap();
    writer1.shutdown().await;
    let c = &report.counters;
    assert_eq!(
        (c.chunks_staged, c.uploads_completed, c.imported),
        (2, 0, 0)
    );
    assert_eq!(
        c.rejected_with("frame_json_invalid"),
        1,
        "the truncated last line"
    );
    assert_eq!(report.end, StreamEnd::InputEnded);
    let conn = read_only(&path);
    assert_eq!(count(&conn, "session_import_chunk_parts"), 2);
    assert_eq!(count(&conn, "session_imports"), 0);
    assert_eq!(count(&conn, "session_import_cursors"), 0);
    drop(conn);

    // Run 2 (a new process, a new run id): the worker re-sends from its cursor: part 2 only.
    let mut s = Stream::new(RUN2);
    s.chunk(parts[2].clone()).complete();
    let writer2 = writer(&path);
    let report = run_pipeline(
        Bytes::new(s.bytes()),
        PipelineConfig::default(),
        &writer2.handle(),
        None,
        CancellationToken::new(),
    )
    .await
    .into_result()
    .unwrap();
    writer2.shutdown().await;
    let c = &report.counters;
    assert_eq!(
        (
            c.chunks_staged,
            c.uploads_completed,
            c.imported,
            c.cursors_stored
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(c.rejected_total(), 0);
    let conn = read_only(&path);
    let (label, run): (String, String) = conn
        .query_row(
            "SELECT session_label, last_run_id FROM session_imports WHERE source_session_id = 'big-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(label.starts_with("import:claude-code:big-1:"));
    assert_eq!(run, RUN2);
    assert_eq!(count(&conn, "messages"), 2);
    assert_eq!(count(&conn, "session_import_cursors"), 1);
}

#[tokio::test]
async fn parts_in_one_batch_complete_in_that_batch() {
    let (_dir, path) = temp_ledger();
    let item = item("codex", "sess-x", "fp");
    let mut s = Stream::new(RUN);
    for part in chunk_requests(&item, "up-x", "k-x", 4, vec![]) {
        s.chunk(part);
    }
    // Re-sent last part after completion: answered from the stored import, not re-imported.
    let last = chunk_requests(&item, "up-x", "k-x", 4, vec![])
        .pop()
        .unwrap();
    s.chunk(last);
    let writer = writer(&path);
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
    let c = &report.counters;
    assert_eq!(c.batches, 1);
    assert_eq!(c.rejected_total(), 0);
    assert_eq!(count(&read_only(&path), "session_imports"), 1);
    assert_eq!(c.chunks_staged, 5);
}
