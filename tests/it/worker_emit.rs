//! The emitter: batch packing, chunking (decoded back), idempotency keys, cursor placement.

use std::io::Read;

use base64::Engine;
use nex::aix::emit::{EmitLimits, Emitter, FrameSink};
use nex::protocol::{Cursor, ImportSessionItem, Message, RunMode, WorkerFrame};

use crate::worker_fake::{Capture, cursors};

fn item(session: &str, fp: &str, text_len: usize) -> ImportSessionItem {
    ImportSessionItem {
        source_provider: "claude-code".into(),
        source_session_id: session.into(),
        source_session_fingerprint: fp.into(),
        imported_at_ms: 7,
        messages: vec![Message {
            source_message_id: "m1".into(),
            role: "user".into(),
            // Incompressible-ish text (letters of a xorshift sequence, no repeats a deflater
            // could find) so chunk counts are predictable.
            content: Some(
                (0..text_len)
                    .scan(0x9e37_79b9_7f4a_7c15_u64, |x, _| {
                        *x ^= *x << 13;
                        *x ^= *x >> 7;
                        *x ^= *x << 17;
                        Some(char::from(b'a' + (*x % 26) as u8))
                    })
                    .collect(),
            ),
            sequence: 0,
            created_at_ms: 1,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn cursor(key: &str, n: u64) -> Cursor {
    Cursor {
        key: key.into(),
        value: serde_json::json!({ "n": n }),
    }
}

fn small_limits() -> EmitLimits {
    EmitLimits {
        batch_items: 3,
        batch_bytes: 1 << 20,
        chunk_threshold: 2000,
        chunk_bytes: 500,
    }
}

#[test]
fn batches_pack_by_count_and_carry_their_files_cursors() {
    let cap = Capture::default();
    let sink = FrameSink::new(Box::new(cap.clone()), "run-1".into());
    let mut e = Emitter::new(&sink, RunMode::Backfill, None, small_limits());
    for i in 0..7u64 {
        e.push_file(
            vec![item(&format!("s{i}"), "fp", 10)],
            "0",
            Some(cursor(&format!("k{i}"), i)),
        )
        .unwrap();
    }
    e.flush().unwrap();
    let frames = cap.frames();
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq.unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let sizes: Vec<(usize, Vec<String>)> = frames
        .iter()
        .map(|f| match &f.body {
            WorkerFrame::ImportBatch(b) => (
                b.items.len(),
                b.cursors.iter().map(|c| c.key.clone()).collect(),
            ),
            _ => panic!("not a batch"),
        })
        .collect();
    assert_eq!(sizes[0], (3, vec!["k0".into(), "k1".into(), "k2".into()]));
    assert_eq!(sizes[1].0, 3);
    assert_eq!(sizes[2], (1, vec!["k6".into()]));
    for f in &frames {
        assert_eq!(f.run_id, "run-1");
        let WorkerFrame::ImportBatch(b) = &f.body else {
            unreachable!()
        };
        assert_eq!(b.source, "aix");
        assert_eq!(b.mode, "backfill");
        assert!(b.idempotency_key.starts_with("aix:backfill:"));
        // The emitted payload is a function of the key: no wall-clock stamp.
        assert!(b.items.iter().all(|i| i.imported_at_ms == 0));
    }
}

#[test]
fn batches_pack_by_bytes() {
    let cap = Capture::default();
    let sink = FrameSink::new(Box::new(cap.clone()), "r".into());
    let limits = EmitLimits {
        batch_items: 64,
        batch_bytes: 1000,
        chunk_threshold: 100_000,
        chunk_bytes: 1000,
    };
    let mut e = Emitter::new(&sink, RunMode::Tail, Some("p1".into()), limits);
    for i in 0..4 {
        e.push_file(vec![item(&format!("s{i}"), "fp", 400)], "0", None)
            .unwrap();
    }
    e.flush().unwrap();
    let counts: Vec<usize> = cap
        .frames()
        .iter()
        .map(|f| match &f.body {
            WorkerFrame::ImportBatch(b) => {
                assert_eq!(b.persona_id.as_deref(), Some("p1"));
                b.items.len()
            }
            _ => panic!(),
        })
        .collect();
    assert_eq!(counts, vec![1, 1, 1, 1]);
}

#[test]
fn keys_depend_on_content_identity_only() {
    let key_of = |fp: &str, part: &str, mode: RunMode| {
        let cap = Capture::default();
        let sink = FrameSink::new(Box::new(cap.clone()), "r".into());
        let mut e = Emitter::new(&sink, mode, None, EmitLimits::default());
        e.push_file(vec![item("s", fp, 5)], part, None).unwrap();
        e.flush().unwrap();
        match &cap.frames()[0].body {
            WorkerFrame::ImportBatch(b) => b.idempotency_key.clone(),
            _ => panic!(),
        }
    };
    let k = key_of("fp1", "0", RunMode::Backfill);
    assert_eq!(k, key_of("fp1", "0", RunMode::Backfill));
    assert_ne!(k, key_of("fp2", "0", RunMode::Backfill));
    assert_ne!(k, key_of("fp1", "120", RunMode::Backfill));
    assert!(key_of("fp1", "0", RunMode::Tail).starts_with("aix:tail:"));
    let hex = k.strip_prefix("aix:backfill:").unwrap();
    assert_eq!(hex.len(), 64);
}

#[test]
fn large_item_is_chunked_and_decodes_back() {
    let cap = Capture::default();
    let sink = FrameSink::new(Box::new(cap.clone()), "r".into());
    let mut e = Emitter::new(&sink, RunMode::Backfill, None, small_limits());
    e.push_file(vec![item("small", "f0", 10)], "0", Some(cursor("a", 1)))
        .unwrap();
    let big = item("big", "f1", 20_000);
    e.push_file(vec![big.clone()], "0", Some(cursor("b", 2)))
        .unwrap();
    e.push_file(vec![item("after", "f2", 10)], "0", Some(cursor("c", 3)))
        .unwrap();
    e.flush().unwrap();
    let frames = cap.frames();
    // The pending batch goes first, then every part, then the rest.
    let WorkerFrame::ImportBatch(first) = &frames[0].body else {
        panic!()
    };
    assert_eq!(first.items[0].source_session_id, "small");
    assert_eq!(first.cursors, vec![cursor("a", 1)]);
    let parts: Vec<_> = frames
        .iter()
        .filter_map(|f| match &f.body {
            WorkerFrame::ImportChunk(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert!(parts.len() >= 2, "{} parts", parts.len());
    let total = parts.len() as i64;
    let mut data = String::new();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p.chunk_index, i as i64);
        assert_eq!(p.chunk_total, total);
        assert_eq!(p.encoding, "gzip+base64");
        assert_eq!(p.upload_id, parts[0].upload_id);
        assert_eq!(p.idempotency_key, parts[0].idempotency_key);
        assert_eq!(p.source_session_id, "big");
        assert_eq!(p.source_session_fingerprint, "f1");
        assert!(p.data.len() <= 500);
        // Only the completing part carries the cursor.
        let expect: Vec<Cursor> = if i + 1 == parts.len() {
            vec![cursor("b", 2)]
        } else {
            vec![]
        };
        assert_eq!(p.cursors, expect);
        data.push_str(&p.data);
    }
    let gz = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let mut json = String::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_string(&mut json)
        .unwrap();
    let mut expected = big.clone();
    expected.imported_at_ms = 0;
    assert_eq!(json, serde_json::to_string(&expected).unwrap());
    let WorkerFrame::ImportBatch(last) = &frames.last().unwrap().body else {
        panic!()
    };
    assert_eq!(last.items[0].source_session_id, "after");
    assert_eq!(last.cursors, vec![cursor("c", 3)]);
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq.unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn cursor_without_items_rides_on_the_next_committing_frame() {
    let cap = Capture::default();
    let sink = FrameSink::new(Box::new(cap.clone()), "r".into());
    let mut e = Emitter::new(&sink, RunMode::Tail, None, small_limits());
    e.push_file(Vec::new(), "0", Some(cursor("idle", 1)))
        .unwrap();
    e.flush().unwrap();
    assert!(cap.frames().is_empty(), "no frame without items");
    e.push_file(Vec::new(), "0", Some(cursor("idle", 2)))
        .unwrap();
    e.push_file(vec![item("s", "f", 3)], "0", Some(cursor("k", 1)))
        .unwrap();
    e.flush().unwrap();
    assert_eq!(
        cursors(&cap.frames()),
        vec![cursor("idle", 2), cursor("k", 1)]
    );
    assert_eq!(e.pending_cursors(), 0);
}

#[test]
fn chunking_starts_just_above_the_threshold() {
    let it = item("edge", "fp", 3000);
    let mut expected = it.clone();
    expected.imported_at_ms = 0;
    let len = serde_json::to_string(&expected).unwrap().len();
    let kinds = |threshold: usize| -> Vec<&'static str> {
        let cap = Capture::default();
        let sink = FrameSink::new(Box::new(cap.clone()), "r".into());
        let limits = EmitLimits {
            chunk_threshold: threshold,
            ..EmitLimits::default()
        };
        let mut e = Emitter::new(&sink, RunMode::Backfill, None, limits);
        e.push_file(vec![it.clone()], "0", None).unwrap();
        e.flush().unwrap();
        cap.frames().iter().map(|f| f.body.kind()).collect()
    };
    assert_eq!(kinds(len), vec!["import.batch"]);
    assert_eq!(kinds(len - 1), vec!["import.chunk"]);
}
