//! The staging of chunk parts in memory and in the ledger give the same outcomes and rows.

use rusqlite::Transaction;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::*;
use crate::import::upload_digest;
use crate::protocol::{Cursor, ENCODING_GZIP_BASE64, Message, SessionInfo, Turn};

/// Session `n` of `turns` turns, each a prompt and a reply of 1 KiB of hex: gzip leaves
/// about half of it, so a few turns make an upload of several 2 KiB parts.
fn session(n: u64, turns: u64) -> ImportSessionItem {
    let text = |t: u64, role: &str| -> String {
        (0..16)
            .map(|k| format!("{:x}", Sha256::digest(format!("{n}/{t}/{role}/{k}"))))
            .collect()
    };
    let mut item = ImportSessionItem {
        source_provider: "claude-code".into(),
        source_session_id: format!("session-{n}"),
        source_session_fingerprint: format!("sha256:{n:064x}"),
        imported_at_ms: 1_760_000_000_000,
        session: SessionInfo {
            created_at_ms: Some(1_760_000_000_000),
            ..Default::default()
        },
        ..Default::default()
    };
    for t in 0..turns {
        let at = 1_760_000_000_000 + t as i64 * 1_000;
        for (i, role) in ["user", "assistant"].into_iter().enumerate() {
            item.messages.push(Message {
                source_message_id: format!("msg-{t}-{role}"),
                source_turn_id: Some(format!("turn-{t}")),
                role: role.into(),
                content: Some(text(t, role)),
                sequence: (2 * t) as i64 + i as i64,
                created_at_ms: at,
                ..Default::default()
            });
        }
        item.turns.push(Turn {
            source_turn_id: format!("turn-{t}"),
            started_at_ms: at,
            query_message_source_ids: vec![format!("msg-{t}-user")],
            response_message_source_id: Some(format!("msg-{t}-assistant")),
            ..Default::default()
        });
    }
    item
}

/// The chunk requests of `item` as the worker sends them: gzip+base64 cut every
/// `chunk_bytes`, the cursor on the last part.
fn chunk_upload(
    item: &ImportSessionItem,
    key: &str,
    chunk_bytes: usize,
    cursor: Cursor,
) -> Vec<ChunkRequest> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&serde_json::to_vec(item).unwrap()).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    let parts: Vec<&[u8]> = encoded.as_bytes().chunks(chunk_bytes).collect();
    let total = parts.len() as i64;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, data)| ChunkRequest {
            source: "aix".into(),
            mode: "backfill".into(),
            idempotency_key: key.into(),
            upload_id: format!("upload:{key}"),
            chunk_index: i as i64,
            chunk_total: total,
            encoding: ENCODING_GZIP_BASE64.into(),
            // base64 is ASCII.
            data: String::from_utf8(data.to_vec()).unwrap().into(),
            source_provider: item.source_provider.clone(),
            source_session_id: item.source_session_id.clone(),
            source_session_fingerprint: item.source_session_fingerprint.clone(),
            cursors: if i as i64 == total - 1 {
                vec![cursor.clone()]
            } else {
                Vec::new()
            },
            ..Default::default()
        })
        .collect()
}

fn opts() -> ImportOptions {
    ImportOptions {
        clock: || 1_700_000_000_000,
        ..ImportOptions::default()
    }
}

fn parts(index: usize, key: &str) -> Vec<ChunkRequest> {
    let item = session(index as u64, 4);
    let cursor = Cursor {
        key: format!("file:{key}"),
        value: serde_json::json!(1),
    };
    chunk_upload(&item, key, 2048, cursor)
        .into_iter()
        .map(|mut p| {
            p.run_id = Some("run".into());
            p
        })
        .collect()
}

/// Applies `ops` in one transaction, each in a savepoint as the ledger writer does, through
/// the ledger path or with in-memory staging; returns each op's outcome and the rows.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    Ledger,
    Memory,
    /// In memory, with the uploads decoded ahead as the sink does.
    Decoded,
    /// In memory, with a decoded upload whose parts do not match (must be ignored).
    Stale,
}

fn apply(ops: &[ChunkRequest], path: Path) -> (Vec<String>, Vec<String>) {
    use crate::pipeline::writer::WriteOp;
    use crate::pipeline::{Flowing, FrameMeta};
    use crate::stages::prepare::{Prepared, Preparer};
    use crate::stages::{FrameOp, Op, ValidOp};
    // Part ids are numbered from 0 in order: part id == position.
    let mut preparer = Preparer::new(opts().max_inflated_bytes);
    let write_ops: Vec<WriteOp> = ops
        .iter()
        .filter_map(|r| {
            let valid = ValidOp(FrameOp {
                op: Op::Chunk(r.clone()),
                meta: FrameMeta::new(1),
            });
            match preparer.prepare(Flowing::Item(valid)) {
                Prepared::Write(_, op) => Some(op),
                Prepared::Ready(..) => None,
            }
        })
        .collect();
    assert_eq!(write_ops.len(), ops.len());
    let stale = DecodedUpload {
        parts: vec![u64::MAX],
        item: session(9, 1),
        hash: "stale".into(),
        json: ItemJson::default(),
        digest: [0; 32],
    };
    let decoded: Vec<Option<&DecodedUpload>> = write_ops
        .iter()
        .map(|op| match (op, path) {
            (WriteOp::Chunk { decoded, .. }, Path::Decoded) => decoded.as_deref(),
            (_, Path::Stale) => Some(&stale),
            _ => None,
        })
        .collect();
    assert!(path != Path::Decoded || decoded.iter().flatten().count() == 1);
    let mut conn = crate::ledger::open_agents_in_memory().unwrap();
    let tx = Transaction::new(&mut conn, rusqlite::TransactionBehavior::Immediate).unwrap();
    let mut staging = ChunkStaging::new();
    let mut outcomes = Vec::new();
    for (i, req) in ops.iter().enumerate() {
        let completes = ops[i..]
            .iter()
            .filter(|o| o.upload_id == req.upload_id && o.chunk_total == req.chunk_total)
            .map(|o| o.chunk_index)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as i64
            == req.chunk_total;
        tx.execute_batch("SAVEPOINT f").unwrap();
        let result = if path != Path::Ledger {
            chunk_in_transaction(
                &tx,
                req,
                &opts(),
                &mut staging,
                BatchPart {
                    part: i as u64,
                    completes_here: completes,
                    decoded: decoded[i],
                },
            )
        } else {
            super::super::chunk(&tx, req, &opts())
        };
        match result {
            Ok(r) => {
                tx.execute_batch("RELEASE f").unwrap();
                outcomes.push(format!(
                    "{:?} {}/{} {:?}",
                    r.status,
                    r.received,
                    r.total,
                    r.import.map(|i| (i.imported, i.results))
                ));
            }
            Err(e) => {
                tx.execute_batch("ROLLBACK TO f; RELEASE f").unwrap();
                outcomes.push(e.written_code().into_owned());
            }
        }
    }
    staging.spill(&tx).unwrap();
    let rows = tx
        .prepare("SELECT * FROM session_import_chunk_parts ORDER BY upload_id, chunk_index")
        .unwrap()
        .query_map([], |r| {
            (0..15)
                .map(|c| {
                    r.get::<_, rusqlite::types::Value>(c)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.join("|"))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let mut rows = rows;
    for table in ["sessions", "messages", "session_import_cursors"] {
        let n: i64 = tx
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        rows.push(format!("{table} {n}"));
    }
    tx.commit().unwrap();
    (outcomes, rows)
}

#[test]
fn memory_staging_gives_the_ledger_paths_outcomes_and_rows() {
    let a = parts(1, "a");
    let b = parts(2, "b");
    let mut c = parts(3, "c");
    assert!(a.len() >= 3 && b.len() >= 2 && c.len() >= 2);
    // Upload c completes with a corrupt payload: rejected, its other parts stay staged.
    let last = c.len() - 1;
    c[last].data = "!!!!".into();
    let mut wrong_mode = a[1].clone();
    wrong_mode.mode = "tail".into();
    let mut ops = vec![a[0].clone(), wrong_mode, a[1].clone(), a[1].clone()];
    ops.extend(a[2..].iter().cloned());
    // A re-sent part after completion is answered from the stored response.
    ops.push(a[0].clone());
    // Upload b is cut by the end of the batch.
    ops.extend(b[..b.len() - 1].iter().cloned());
    ops.extend(c.iter().cloned());
    let ledger = apply(&ops, Path::Ledger);
    assert_eq!(apply(&ops, Path::Memory), ledger);
    assert_eq!(apply(&ops, Path::Decoded), ledger);
    assert_eq!(apply(&ops, Path::Stale), ledger);
    assert!(ledger.0.iter().any(|o| o == "chunk_mode_mismatch"));
    assert!(ledger.0.iter().any(|o| o == "chunk_payload_decode_failed"));
    assert!(
        ledger
            .0
            .iter()
            .filter(|o| o.starts_with("Completed"))
            .count()
            >= 2
    );
}

/// Runs upload `a` across two transactions, as the writer does when a batch cuts it: every
/// part but the last is staged in the ledger by the first, the last completes it from the
/// staged rows with `decoded` attached. Returns the outcome and the imported contents.
fn across_transactions(decoded: Option<&DecodedUpload>) -> (String, String) {
    let ops = parts(1, "a");
    let last = ops.len() - 1;
    let mut conn = crate::ledger::open_agents_in_memory().unwrap();
    let mut outcome = String::new();
    for batch in [&ops[..last], &ops[last..]] {
        let tx = Transaction::new(&mut conn, rusqlite::TransactionBehavior::Immediate).unwrap();
        let mut staging = ChunkStaging::new();
        for req in batch {
            let part = BatchPart {
                part: req.chunk_index as u64,
                completes_here: false,
                decoded: (req.chunk_index as usize == last)
                    .then_some(decoded)
                    .flatten(),
            };
            let r = chunk_in_transaction(&tx, req, &opts(), &mut staging, part).unwrap();
            outcome = format!("{:?} {}/{}", r.status, r.received, r.total);
        }
        staging.spill(&tx).unwrap();
        tx.commit().unwrap();
    }
    let contents: String = conn
        .query_row(
            "SELECT group_concat(content, '|') FROM (SELECT content FROM messages ORDER BY id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (outcome, contents)
}

#[test]
fn an_upload_completed_from_staged_rows_reuses_its_decode_only_when_the_payloads_match() {
    use crate::pipeline::writer::WriteOp;
    use crate::pipeline::{Flowing, FrameMeta};
    use crate::stages::prepare::{Prepared, Preparer};
    use crate::stages::{FrameOp, Op, ValidOp};
    let mut preparer = Preparer::new(opts().max_inflated_bytes);
    let mut decoded = None;
    for req in parts(1, "a") {
        let valid = ValidOp(FrameOp {
            op: Op::Chunk(req),
            meta: FrameMeta::new(1),
        });
        if let Prepared::Write(_, WriteOp::Chunk { decoded: d, .. }) =
            preparer.prepare(Flowing::Item(valid))
        {
            decoded = d.or(decoded);
        }
    }
    let decoded = *decoded.expect("the last part completes the upload");
    let decoding = across_transactions(None);
    assert!(decoding.0.starts_with("Completed"), "{decoding:?}");
    assert_eq!(across_transactions(Some(&decoded)), decoding);
    // The decode is used when the digest matches (a marked item shows it)...
    let mut marked = decoded.clone();
    if let Some(m) = marked.item.messages.first_mut() {
        m.content = Some("marked".into());
    }
    let reused = across_transactions(Some(&marked));
    assert!(reused.1.contains("marked"), "{reused:?}");
    // ... and ignored when the staged payloads are not the ones it was decoded from.
    marked.digest = upload_digest(["other"], "gzip+base64");
    assert_eq!(across_transactions(Some(&marked)), decoding);
}
