//! Property tests: the request hash ignores key order and alias spelling; an item split into
//! chunks arriving in any order (with duplicates) imports to the rows of a direct import;
//! random chunk data never panics and gets a decode code.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nex::import;
use nex::protocol::{ChunkStatus, ImportRequest};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use super::import_support::*;

/// A JSON document whose object keys are written in a chosen order and spelling.
#[derive(Debug, Clone)]
enum Doc {
    /// (camelCase key, snake_case key, value)
    Obj(Vec<(String, String, Doc)>),
    Arr(Vec<Doc>),
    Leaf(Value),
}

fn camel_to_snake(camel: &str) -> String {
    let mut out = String::new();
    for ch in camel.chars() {
        if ch.is_ascii_uppercase() {
            out.push('_');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn obj(fields: Vec<(&str, Doc)>) -> Doc {
    Doc::Obj(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), camel_to_snake(k), v))
            .collect(),
    )
}

fn leaf(v: Value) -> Doc {
    Doc::Leaf(v)
}

fn arr(items: Vec<Doc>) -> Doc {
    Doc::Arr(items)
}

/// Keys the protocol accepts in snake_case too (single-word keys and the item's arrays other
/// than toolCalls have one spelling).
fn aliasable(camel: &str) -> bool {
    camel.chars().any(|c| c.is_ascii_uppercase()) && camel != "turns" && camel != "messages"
}

/// xorshift: a tiny deterministic generator driven by the proptest seed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Renders `doc` with object keys permuted and spelled (camel or snake) as `seed` says.
fn render(doc: &Doc, seed: &mut u64) -> String {
    match doc {
        Doc::Leaf(v) => v.to_string(),
        Doc::Arr(items) => {
            let parts: Vec<String> = items.iter().map(|d| render(d, seed)).collect();
            format!("[{}]", parts.join(","))
        }
        Doc::Obj(fields) => {
            let mut order: Vec<usize> = (0..fields.len()).collect();
            for i in (1..order.len()).rev() {
                let j = (next(seed) % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let mut parts = Vec::new();
            for i in order {
                let (camel, snake, value) = &fields[i];
                let key = if aliasable(camel) && next(seed).is_multiple_of(2) {
                    snake
                } else {
                    camel
                };
                parts.push(format!(
                    "{}:{}",
                    Value::String(key.clone()),
                    render(value, seed)
                ));
            }
            format!("{{{}}}", parts.join(","))
        }
    }
}

fn render_doc(doc: &Doc, seed: u64) -> String {
    let mut s = seed | 1;
    render(doc, &mut s)
}

fn item_doc(provider: &str, session: &str, fp: &str, turns: usize, msgs: usize, meta: i64) -> Doc {
    let turn_docs = (0..turns)
        .map(|i| {
            obj(vec![
                ("sourceTurnId", leaf(json!(format!("t{i}")))),
                ("startedAtMs", leaf(json!(1000 + i))),
                ("totalTokens", leaf(json!(i * 7))),
                ("queryMessageSourceIds", leaf(json!(["m0"]))),
                (
                    "metadata",
                    leaf(json!({"b": meta, "a": [1, {"y": 2, "x": 1}]})),
                ),
            ])
        })
        .collect();
    let msg_docs = (0..msgs)
        .map(|i| {
            obj(vec![
                ("sourceMessageId", leaf(json!(format!("m{i}")))),
                ("sourceTurnId", leaf(json!("t0"))),
                (
                    "role",
                    leaf(json!(if i % 2 == 0 { "user" } else { "assistant" })),
                ),
                ("content", leaf(json!(format!("text {i} ü")))),
                ("sequence", leaf(json!(i))),
                ("createdAtMs", leaf(json!(2000 + i))),
                ("metadataJson", leaf(json!({"z": 1, "k": meta}))),
            ])
        })
        .collect();
    obj(vec![
        ("sourceProvider", leaf(json!(provider))),
        ("sourceSessionId", leaf(json!(session))),
        ("sourceSessionFingerprint", leaf(json!(fp))),
        ("importedAtMs", leaf(json!(5000))),
        (
            "session",
            obj(vec![
                ("createdAtMs", leaf(json!(900))),
                ("workspacePath", leaf(json!("/w"))),
                ("isSubagent", leaf(json!(meta % 2 == 0))),
            ]),
        ),
        ("turns", arr(turn_docs)),
        ("messages", arr(msg_docs)),
    ])
}

fn request_doc(key: &str, item: Doc) -> Doc {
    obj(vec![
        ("source", leaf(json!("aix"))),
        ("mode", leaf(json!("backfill"))),
        ("idempotencyKey", leaf(json!(key))),
        ("items", arr(vec![item])),
    ])
}

fn parse(text: &str) -> ImportRequest {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

proptest! {
    #![proptest_config(Config { cases: 64, ..Config::default() })]

    #[test]
    fn hash_ignores_key_order_and_alias_spelling(
        seed_a in any::<u64>(), seed_b in any::<u64>(),
        turns in 0usize..3, msgs in 0usize..3, meta in -5i64..5, key in "[a-z]{1,8}",
    ) {
        let doc = request_doc(&key, item_doc("p", "s", "f", turns, msgs, meta));
        let a = parse(&render_doc(&doc, seed_a));
        let b = parse(&render_doc(&doc, seed_b));
        prop_assert_eq!(&a.items, &b.items);
        prop_assert_eq!(import::request_hash(&a), import::request_hash(&b));
        let other = request_doc(&key, item_doc("p", "s", "f-other", turns, msgs, meta));
        let c = parse(&render_doc(&other, seed_a));
        prop_assert_ne!(import::request_hash(&a), import::request_hash(&c));
    }
}

const ROLES: [&str; 4] = ["user", "assistant", "system", "other"];

fn random_item(turns: usize, msgs: usize, tools: usize, salt: u8) -> Value {
    let turns: Vec<Value> = (0..turns)
        .map(|i| json!({ "sourceTurnId": format!("t{i}"),
                         "parentSourceTurnId": if i > 0 { json!(format!("t{}", i - 1)) } else { json!(null) },
                         "startedAtMs": 100 * i as i64 + salt as i64, "completedAtMs": 100 * i as i64 + 50,
                         "totalTokens": i as i64 * salt as i64 }))
        .collect();
    let msgs: Vec<Value> = (0..msgs)
        .map(|i| json!({ "sourceMessageId": format!("m{i}"), "sourceTurnId": format!("t{}", i % 3),
                         "role": ROLES[i % 4],
                         "content": "x".repeat(i * salt as usize % 300), "sequence": i, "createdAtMs": 10 + i }))
        .collect();
    let tools: Vec<Value> = (0..tools)
        .map(|i| json!({ "sourceToolCallId": format!("c{i}"), "sourceTurnId": "t0", "sourceMessageId": "m0",
                         "toolName": "Read", "paramsJson": { "n": i, "salt": salt }, "startedAtMs": 20,
                         "sequence": i }))
        .collect();
    json!({ "sourceProvider": "anthropic", "sourceSessionId": format!("prop-{salt}"),
            "sourceSessionFingerprint": "fp", "session": { "createdAtMs": 5, "taskDescription": "t" },
            "turns": turns, "messages": msgs, "toolCalls": tools })
}

proptest! {
    #![proptest_config(Config { cases: 48, ..Config::default() })]

    #[test]
    fn chunked_in_any_order_equals_direct(
        turns in 0usize..4, msgs in 0usize..6, tools in 0usize..3, salt in any::<u8>(),
        parts in 1usize..6, order_seed in any::<u64>(), dups in proptest::collection::vec(0usize..6, 0..3),
    ) {
        let item = random_item(turns, msgs, tools, salt);
        let mut direct = ledger();
        run_import(&mut direct, import_req("direct", "backfill", vec![item.clone()])).unwrap();

        let data = gzip_base64(item.to_string().as_bytes());
        let pieces = split(&data, parts.min(data.len()));
        let total = pieces.len();
        let mut order: Vec<usize> = (0..total).collect();
        let mut s = order_seed | 1;
        for i in (1..total).rev() {
            let j = (next(&mut s) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for (n, d) in dups.iter().enumerate() {
            let at = (n * 7 + d) % (order.len() + 1);
            order.insert(at, d % total);
        }
        let mut chunked = ledger();
        let mut completed = 0;
        for index in order {
            let req = chunk_req("chunked", "up", index as i64, total as i64, &pieces[index],
                                "anthropic", &format!("prop-{salt}"), "fp");
            let resp = run_chunk(&mut chunked, req).unwrap();
            if resp.status == ChunkStatus::Completed {
                completed += 1;
                prop_assert_eq!(resp.import.unwrap().imported, 1);
            }
        }
        prop_assert!(completed >= 1);
        prop_assert_eq!(canonical_dump(&chunked), canonical_dump(&direct));
    }

    #[test]
    fn random_chunk_data_gets_a_decode_code(bytes in proptest::collection::vec(any::<u8>(), 0..512), text in ".{0,200}") {
        let gzipped_random = gzip_base64(&bytes);
        let inputs = [text.clone(), STANDARD.encode(&bytes), gzipped_random];
        for (i, data) in inputs.iter().enumerate() {
            // A gzipped JSON object would be a (mismatching) item, not random data.
            if i == 2 && serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes).is_ok() {
                continue;
            }
            let mut conn = ledger();
            let req = chunk_req("rnd", "up-rnd", 0, 1, data, "anthropic", "s", "f");
            let err = run_chunk(&mut conn, req).unwrap_err();
            let code = err.code();
            prop_assert!(
                code == "chunk_payload_decode_failed" || code == "chunk_payload_json_invalid",
                "input {} gave {}", i, code
            );
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 48, ..Config::default() })]

    /// R5 in general: importing a prefix of a session (fewer turns, messages, tool calls) and
    /// then the whole session (a later fingerprint, the upsert path) gives the rows of
    /// importing the whole session once.
    #[test]
    fn prefix_then_full_equals_full(
        turns in 1usize..5, msgs in 0usize..7, tools in 0usize..3, salt in any::<u8>(),
        cut_t in 0usize..5, cut_m in 0usize..7, cut_c in 0usize..3,
    ) {
        let full = random_item(turns, msgs, tools, salt);
        let mut prefix = random_item(cut_t.min(turns).max(1), cut_m.min(msgs), cut_c.min(tools), salt);
        prefix["sourceSessionFingerprint"] = json!("fp-prefix");
        let mut once = ledger();
        run_import(&mut once, import_req("full", "tail", vec![full.clone()])).unwrap();
        let mut twice = ledger();
        run_import(&mut twice, import_req("prefix", "tail", vec![prefix])).unwrap();
        let resp = run_import(&mut twice, import_req("full", "tail", vec![full])).unwrap();
        prop_assert_eq!(resp.upserted, 1);
        prop_assert_eq!(canonical_dump(&twice), canonical_dump(&once));
    }
}
