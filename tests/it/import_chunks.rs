//! sessions.import.chunk: baseline scenarios 4, 5 (chunk half) and 6, every chunk error code,
//! index clamping, TTL pruning, tombstones and the bounded streaming decode.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::{Compression, write::GzEncoder};
use nex::import::{self, ImportOptions};
use nex::protocol::{ChunkStatus, ItemStatus};
use serde_json::{Value, json};

use super::import_support::*;

fn chunk_item() -> Value {
    json!({ "sourceProvider": "anthropic", "sourceSessionId": "chunk-session-1",
            "sourceSessionFingerprint": "chunk-fp-1", "session": {}, "turns": [], "messages": [] })
}

fn parts_of(item: &Value, n: usize) -> Vec<String> {
    split(&gzip_base64(item.to_string().as_bytes()), n)
}

fn part(key: &str, upload: &str, index: i64, total: i64, data: &str) -> Value {
    chunk_req(
        key,
        upload,
        index,
        total,
        data,
        "anthropic",
        "chunk-session-1",
        "chunk-fp-1",
    )
}

#[test]
fn scenario_4_two_parts_then_a_mismatching_resend() {
    let mut conn = ledger();
    let parts = parts_of(&chunk_item(), 2);
    let staged = run_chunk(&mut conn, part("chunk-key", "up-1", 0, 2, &parts[0])).unwrap();
    assert_eq!(staged.status, ChunkStatus::Staged);
    assert_eq!((staged.received, staged.total), (1, 2));
    assert!(staged.import.is_none());
    assert!(uuid::Uuid::parse_str(&staged.run_id).is_ok());
    assert_eq!(count(&conn, "sessions"), 0, "nothing imported while staged");

    let mut last = part("chunk-key", "up-1", 1, 2, &parts[1]);
    last["runId"] = json!("run-chunk");
    let done = run_chunk(&mut conn, last).unwrap();
    assert_eq!(done.status, ChunkStatus::Completed);
    assert_eq!((done.received, done.total), (2, 2));
    let imported = done.import.clone().unwrap();
    assert_eq!(imported.imported, 1);
    assert_eq!(imported.run_id, "run-chunk");
    assert_eq!(done.run_id, imported.run_id);
    assert_eq!(done.upload_id, "up-1");
    let root: String = one(&conn, "SELECT id FROM turns");
    assert_eq!(root, "imp_turn_2483880b3ade84b2a1b147af");

    let mut raw = part("chunk-key", "up-1", 0, 2, &parts[0]);
    raw["encoding"] = json!("raw");
    assert_eq!(code(run_chunk(&mut conn, raw)), "chunk_encoding_mismatch");

    // (improvement) payloads are cleared, metadata rows stay as tombstones.
    let payload_bytes: i64 = one(
        &conn,
        "SELECT SUM(LENGTH(payload)) FROM session_import_chunk_parts",
    );
    assert_eq!(payload_bytes, 0);
    assert_eq!(count(&conn, "session_import_chunk_parts"), 2);
    // An identical re-send answers completed with the stored import.
    let again = run_chunk(&mut conn, part("chunk-key", "up-1", 0, 2, &parts[0])).unwrap();
    assert_eq!(again.status, ChunkStatus::Completed);
    let stored = again.import.unwrap();
    assert!(
        stored.replayed,
        "a re-sent part is answered from the stored response"
    );
    assert_eq!(
        nex::protocol::ImportResponse {
            replayed: false,
            ..stored
        },
        imported
    );
    assert_eq!(count(&conn, "sessions"), 1);
}

#[test]
fn scenario_5_chunked_upload_of_an_imported_session_is_skipped() {
    let mut conn = ledger();
    let mut req = import_req("idem-1", "backfill", vec![chunk_item()]);
    req["runId"] = json!("run-1");
    assert_eq!(run_import(&mut conn, req.clone()).unwrap().run_id, "run-1");
    assert_eq!(run_import(&mut conn, req).unwrap().run_id, "run-1");
    let parts = parts_of(&chunk_item(), 2);
    let staged = run_chunk(&mut conn, part("chunk-idem", "up-5", 0, 2, &parts[0])).unwrap();
    assert_eq!(
        (staged.status, staged.received, staged.total),
        (ChunkStatus::Staged, 1, 2)
    );
    let done = run_chunk(&mut conn, part("chunk-idem", "up-5", 1, 2, &parts[1])).unwrap();
    assert_eq!(
        (done.status, done.received, done.total),
        (ChunkStatus::Completed, 2, 2)
    );
    let imp = done.import.unwrap();
    assert_eq!(imp.failed, 0);
    assert_eq!(imp.results[0].status, ItemStatus::Skipped);
}

#[test]
fn scenario_6_mismatch_codes() {
    let mut conn = ledger();
    assert_eq!(
        code(run_import(
            &mut conn,
            json!({"source":"foo","mode":"backfill","idempotencyKey":"k","items":[chunk_item()]})
        )),
        "source_unsupported"
    );
    run_import(&mut conn, import_req("k6", "backfill", vec![chunk_item()])).unwrap();
    assert_eq!(
        code(run_import(
            &mut conn,
            import_req("k6", "tail", vec![chunk_item()])
        )),
        "idempotency_key_mode_mismatch"
    );

    let parts = parts_of(&chunk_item(), 2);
    run_chunk(&mut conn, part("ck", "up-6", 0, 2, &parts[0])).unwrap();
    let mut total3 = part("ck", "up-6", 1, 3, &parts[1]);
    assert_eq!(
        code(run_chunk(&mut conn, total3.clone())),
        "chunk_total_mismatch"
    );
    total3["chunkTotal"] = json!(2);
    let mut tail = total3.clone();
    tail["mode"] = json!("tail");
    assert_eq!(code(run_chunk(&mut conn, tail)), "chunk_mode_mismatch");
    let mut utf8 = total3.clone();
    utf8["encoding"] = json!("utf-8");
    assert_eq!(code(run_chunk(&mut conn, utf8)), "chunk_encoding_mismatch");

    let mut single = part("ck-new", "up-6b", 0, 1, &parts[0]);
    single["encoding"] = json!("utf-8");
    assert_eq!(
        code(run_chunk(&mut conn, single)),
        "chunk_encoding_unsupported:utf-8"
    );
    assert_eq!(
        code(run_chunk(&mut conn, part("ck", "up-6", 2, 2, &parts[1]))),
        "chunk_index_out_of_range"
    );

    let mut openai = chunk_item();
    openai["sourceProvider"] = json!("openai");
    let parts = parts_of(&openai, 2);
    run_chunk(&mut conn, part("ck-oa", "up-6c", 0, 2, &parts[0])).unwrap();
    assert_eq!(
        code(run_chunk(
            &mut conn,
            part("ck-oa", "up-6c", 1, 2, &parts[1])
        )),
        "chunk_item_source_provider_mismatch"
    );
}

#[test]
fn every_other_chunk_code() {
    let mut conn = ledger();
    let parts = parts_of(&chunk_item(), 2);
    // Request checks.
    let mut no_upload = part("k", " ", 0, 2, &parts[0]);
    assert_eq!(
        code(run_chunk(&mut conn, no_upload.clone())),
        "chunk_upload_id_required"
    );
    no_upload["mode"] = json!("x");
    assert_eq!(
        code(run_chunk(&mut conn, no_upload.clone())),
        "mode_unsupported"
    );
    no_upload["source"] = json!("nope");
    assert_eq!(code(run_chunk(&mut conn, no_upload)), "source_unsupported");
    let mut no_key = part("", "u", 0, 2, &parts[0]);
    assert_eq!(
        code(run_chunk(&mut conn, no_key.clone())),
        "idempotency_key_required"
    );
    no_key["idempotencyKey"] = json!("k");
    no_key["chunkIndex"] = json!(5);
    assert_eq!(
        code(run_chunk(&mut conn, no_key)),
        "chunk_index_out_of_range"
    );

    // Checks against the upload's first part, in order.
    run_chunk(&mut conn, part("k", "u", 0, 2, &parts[0])).unwrap();
    let base = part("k", "u", 1, 2, &parts[1]);
    let with = |field: &str, value: &str| {
        let mut v = base.clone();
        v[field] = json!(value);
        v
    };
    let cases = [
        (
            with("idempotencyKey", "other"),
            "chunk_idempotency_key_mismatch",
        ),
        (
            with("sourceProvider", "openai"),
            "chunk_source_provider_mismatch",
        ),
        (
            with("sourceSessionId", "other"),
            "chunk_source_session_id_mismatch",
        ),
        (
            with("sourceSessionFingerprint", "other"),
            "chunk_source_session_fingerprint_mismatch",
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(code(run_chunk(&mut conn, req)), expected);
    }
    // A failed part is not staged (the request wrote nothing).
    let staged: i64 = one(
        &conn,
        "SELECT COUNT(*) FROM session_import_chunk_parts WHERE upload_id = 'u'",
    );
    assert_eq!(staged, 1);

    // Item checks after decode.
    let mut item = chunk_item();
    item["sourceSessionId"] = json!("elsewhere");
    let data = gzip_base64(item.to_string().as_bytes());
    assert_eq!(
        code(run_chunk(&mut conn, part("k2", "u2", 0, 1, &data))),
        "chunk_item_source_session_id_mismatch"
    );
    let mut item = chunk_item();
    item["sourceSessionFingerprint"] = json!("older");
    let data = gzip_base64(item.to_string().as_bytes());
    assert_eq!(
        code(run_chunk(&mut conn, part("k3", "u3", 0, 1, &data))),
        "chunk_item_source_session_fingerprint_mismatch"
    );

    // Decode failures.
    assert_eq!(
        code(run_chunk(
            &mut conn,
            part("k4", "u4", 0, 1, "%%%not base64")
        )),
        "chunk_payload_decode_failed"
    );
    let not_gzip = STANDARD.encode(b"plain text, no gzip header");
    assert_eq!(
        code(run_chunk(&mut conn, part("k5", "u5", 0, 1, &not_gzip))),
        "chunk_payload_decode_failed"
    );
    let not_json = gzip_base64(b"{\"sourceProvider\": ");
    assert_eq!(
        code(run_chunk(&mut conn, part("k6", "u6", 0, 1, &not_json))),
        "chunk_payload_json_invalid"
    );
    let wrong_shape = gzip_base64(b"[\"an array\"]");
    assert_eq!(
        code(run_chunk(&mut conn, part("k7", "u7", 0, 1, &wrong_shape))),
        "chunk_payload_json_invalid"
    );
}

#[test]
fn index_gap_and_empty_upload() {
    let mut conn = ledger();
    let parts = parts_of(&chunk_item(), 2);
    // A stray part at index 5 (staged by an older writer) makes the count reach the total.
    conn.execute(
        "INSERT INTO session_import_chunk_parts (source, upload_id, chunk_index, chunk_total, mode, run_id,
            persona_id, idempotency_key, source_provider, source_session_id, source_session_fingerprint,
            encoding, payload, created_at)
         VALUES ('aix', 'gap', 5, 2, 'backfill', 'r', 'main', 'kg', 'anthropic', 'chunk-session-1',
            'chunk-fp-1', 'gzip+base64', 'x', ?1)",
        [NOW],
    )
    .unwrap();
    assert_eq!(
        code(run_chunk(&mut conn, part("kg", "gap", 0, 2, &parts[0]))),
        "chunk_index_gap"
    );
    let tx = conn.transaction().unwrap();
    assert_eq!(
        code(import::assemble_upload(
            &tx,
            "aix",
            "never-staged",
            1,
            1 << 20
        )),
        "chunk_upload_empty"
    );
}

#[test]
fn indexes_are_clamped_and_parts_arrive_in_any_order() {
    let mut conn = ledger();
    let data = gzip_base64(chunk_item().to_string().as_bytes());
    let done = run_chunk(&mut conn, part("clamp", "u-clamp", -1, 0, &data)).unwrap();
    assert_eq!(
        (done.status, done.received, done.total),
        (ChunkStatus::Completed, 1, 1)
    );

    let mut item = chunk_item();
    item["sourceSessionId"] = json!("s-order");
    let parts = parts_of(&item, 3);
    let p = |i: usize| {
        chunk_req(
            "order",
            "u-order",
            i as i64,
            3,
            &parts[i],
            "anthropic",
            "s-order",
            "chunk-fp-1",
        )
    };
    assert_eq!(run_chunk(&mut conn, p(2)).unwrap().received, 1);
    assert_eq!(
        run_chunk(&mut conn, p(2)).unwrap().received,
        1,
        "a repeated part replaces itself"
    );
    assert_eq!(run_chunk(&mut conn, p(0)).unwrap().received, 2);
    let done = run_chunk(&mut conn, p(1)).unwrap();
    assert_eq!(done.import.unwrap().imported, 1);
}

fn eight_days_later() -> i64 {
    NOW + 8 * 24 * 60 * 60 * 1000
}

#[test]
fn staged_parts_expire_after_the_ttl() {
    let mut conn = ledger();
    let parts = parts_of(&chunk_item(), 2);
    run_chunk(&mut conn, part("ttl", "u-ttl", 0, 2, &parts[0])).unwrap();
    let later = ImportOptions {
        clock: eight_days_later,
        ..opts()
    };
    let resp = run_chunk_with(&mut conn, part("ttl", "u-ttl", 1, 2, &parts[1]), &later).unwrap();
    assert_eq!(
        (resp.status, resp.received),
        (ChunkStatus::Staged, 1),
        "part 0 was pruned"
    );
}

#[test]
fn cursors_are_stored_only_by_the_completing_part() {
    let mut conn = ledger();
    let parts = parts_of(&chunk_item(), 2);
    let mut first = part("cur", "u-cur", 0, 2, &parts[0]);
    first["cursors"] = json!([{ "key": "early", "value": 1 }]);
    run_chunk(&mut conn, first).unwrap();
    assert!(nex::ledger::load_cursors(&conn, "aix").unwrap().is_empty());
    let mut last = part("cur", "u-cur", 1, 2, &parts[1]);
    last["cursors"] = json!([{ "key": "file", "value": { "offset": 42 } }]);
    run_chunk(&mut conn, last).unwrap();
    let cursors = nex::ledger::load_cursors(&conn, "aix").unwrap();
    assert_eq!(cursors.len(), 1);
    assert_eq!(
        (cursors[0].key.as_str(), &cursors[0].value),
        ("file", &json!({"offset": 42}))
    );
}

#[test]
fn chunk_and_import_paths_share_one_key_when_personas_agree() {
    let mut conn = ledger();
    let data = gzip_base64(chunk_item().to_string().as_bytes());
    let done = run_chunk(&mut conn, part("shared", "u-shared", 0, 1, &data)).unwrap();
    // (improvement) the chunk path hashed the request's own (absent) personaId, not "main".
    let replay = run_import(
        &mut conn,
        import_req("shared", "backfill", vec![chunk_item()]),
    )
    .unwrap();
    // The stored answer, marked as a replay.
    assert!(replay.replayed);
    assert_eq!(
        Some(nex::protocol::ImportResponse {
            replayed: false,
            ..replay
        }),
        done.import
    );
}

/// Gzip members concatenate (as Go's reader and `MultiGzDecoder` read them): 100 members of
/// 1 MiB of JSON whitespace inflate to 100 MiB from ~100 KiB of data.
fn bomb(members: usize) -> String {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&vec![b' '; 1 << 20]).unwrap();
    let member = gz.finish().unwrap();
    let mut all = Vec::with_capacity(member.len() * members + 64);
    for _ in 0..members {
        all.extend_from_slice(&member);
    }
    let mut tail = GzEncoder::new(Vec::new(), Compression::fast());
    tail.write_all(chunk_item().to_string().as_bytes()).unwrap();
    all.extend_from_slice(&tail.finish().unwrap());
    STANDARD.encode(all)
}

#[test]
fn gzip_bomb_is_refused_with_payload_too_large() {
    let mut conn = ledger();
    let small = ImportOptions {
        max_inflated_bytes: 1 << 20,
        ..opts()
    };
    let data = bomb(100);
    assert!(
        data.len() < 1 << 20,
        "the bomb is small: {} bytes",
        data.len()
    );
    let parts = split(&data, 2);
    run_chunk_with(&mut conn, part("bomb", "u-bomb", 0, 2, &parts[0]), &small).unwrap();
    let err = run_chunk_with(&mut conn, part("bomb", "u-bomb", 1, 2, &parts[1]), &small);
    assert_eq!(code(err), "chunk_payload_too_large");
    assert_eq!(count(&conn, "sessions"), 0);

    // The same payload within a large enough bound imports (whitespace is valid JSON).
    let roomy = ImportOptions {
        max_inflated_bytes: 4 << 20,
        ..opts()
    };
    let data = bomb(2);
    let done =
        run_chunk_with(&mut conn, part("bomb-ok", "u-bomb-ok", 0, 1, &data), &roomy).unwrap();
    assert_eq!(done.import.unwrap().imported, 1);
}

#[test]
fn single_member_bomb_stops_at_the_limit() {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&vec![b' '; 16 << 20]).unwrap();
    gz.write_all(b"{}").unwrap();
    let data = STANDARD.encode(gz.finish().unwrap());
    let err = import::decode_chunked_item([data.as_str()], "gzip+base64", 1 << 20);
    assert_eq!(code(err), "chunk_payload_too_large");
}
