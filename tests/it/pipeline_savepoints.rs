//! The ledger writer applies a batch without savepoints first, and again with them when a
//! frame is rejected or an item fails (`pipeline::apply`, "Savepoints only when something
//! fails"): what commits is exactly what the per-frame and per-item savepoints gave, here
//! compared with the service called frame by frame.

use std::sync::Arc;

use nex::import::{self, ImportOptions, ItemJson};
use nex::ledger;
use nex::pipeline::writer::{WriteBatch, WriteOp, WriteResult};
use nex::protocol::ImportRequest;

use crate::pipeline_support::*;

fn options() -> ImportOptions {
    ImportOptions {
        clock: || 1_764_000_500_000,
        ..ImportOptions::default()
    }
}

/// A frame as the pipeline hands it to the writer (`stages::prepare`).
fn op(mut request: ImportRequest) -> WriteOp {
    let request_hash = import::request_hash(&request);
    let item_json = request.items.iter_mut().map(ItemJson::take).collect();
    WriteOp::Import {
        request,
        request_hash,
        item_json,
    }
}

fn frame(key: &str, sessions: &[&str], offset: u64) -> ImportRequest {
    let items = sessions
        .iter()
        .map(|s| {
            let mut item = item("anthropic", s, "fp");
            if s.starts_with("bad") {
                // Turns and messages are written first; then the NOT NULL of the tool name
                // fails the item, leaving rows that only a rollback removes.
                item.tool_calls[0].tool_name = " ".into();
            }
            item
        })
        .collect();
    ImportRequest {
        run_id: Some(RUN.into()),
        ..request(
            key,
            items,
            vec![cursor(&format!("c-{key}-{offset}"), offset)],
        )
    }
}

#[tokio::test]
async fn a_failed_item_and_a_rejected_frame_leave_the_rest_of_their_batch_as_savepoints_did() {
    let frames = [
        frame("k1", &["s1", "bad1", "s2"], 1),
        frame("k2", &["s3"], 2),
        // The same key with other content: `idempotency_key_payload_mismatch`.
        frame("k2", &["s4"], 3),
        frame("k4", &["s5", "bad2"], 4),
    ];

    let (_dir, path) = temp_ledger();
    let writer = writer(&path);
    let results = writer
        .handle()
        .apply(WriteBatch {
            run_id: Some(RUN.into()),
            options: Arc::new(options()),
            ops: frames.iter().cloned().map(op).collect(),
        })
        .await
        .unwrap();
    writer.shutdown().await;

    // The reference: each frame through the service, in its own transaction.
    let (_ref_dir, ref_path) = temp_ledger();
    let mut reference = ledger::open_agents(&ref_path).unwrap();
    let mut expected = Vec::new();
    for req in &frames {
        let tx = reference.transaction().unwrap();
        let outcome = import::import(&tx, req, &options());
        ledger::search_index::flush(&tx).unwrap();
        tx.commit().unwrap();
        expected.push(outcome);
    }

    assert_eq!(results.len(), 4);
    for (got, want) in results.iter().zip(&expected) {
        match (got, want) {
            (WriteResult::Import { response, .. }, Ok(want)) => assert_eq!(response, want),
            (WriteResult::Rejected(code), Err(err)) => {
                assert_eq!(code.to_string(), err.written_code())
            }
            other => panic!("outcomes differ: {other:?}"),
        }
    }
    let Ok(first) = &expected[0] else {
        panic!("the first frame is accepted")
    };
    assert_eq!((first.imported, first.failed), (2, 1));
    assert!(
        matches!(&expected[2], Err(e) if e.written_code() == "idempotency_key_payload_mismatch")
    );

    let conn = read_only(&path);
    for table in LEDGER_TABLES {
        assert_eq!(dump(&conn, table), dump(&reference, table), "{table}");
    }
    // s1, s2, s3, s5: nothing of the failed items, nothing of the rejected frame.
    assert_eq!(count(&conn, "sessions"), 4);
    assert_eq!(count(&conn, "turns"), 4);
    assert_eq!(count(&conn, "session_import_cursors"), 3);
    // The index matches its tables (`check` writes: a writable connection).
    drop(conn);
    let conn = ledger::open_agents(&path).unwrap();
    assert!(ledger::search_index::check(&conn).unwrap());
}
