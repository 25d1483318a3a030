//! Hostile stored values: random JSON (fields of every type at the names the mapping reads)
//! and non-JSON text in `message.data` / `part.data` and legacy files never panic; items are
//! deterministic (a second store gives the same fingerprints) and an unchanged store polls as
//! unchanged.

use std::collections::HashMap;

use nex::aix::sources::{OpenCodeStore, poll_all};
use proptest::prelude::*;
use serde_json::Value;

use super::fixture::{SCHEMA, Writer, write_json};

/// Field names the mapping reads, and a few it does not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "role",
            "time",
            "created",
            "completed",
            "start",
            "end",
            "tokens",
            "input",
            "output",
            "reasoning",
            "cache",
            "read",
            "write",
            "type",
            "text",
            "tool",
            "callID",
            "state",
            "status",
            "metadata",
            "sessionId",
            "parentID",
            "modelID",
            "providerID",
            "model",
            "synthetic",
            "error",
            "description",
            "cost",
        ])
        .prop_map(str::to_owned),
        "[a-z]{0,4}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec!["user", "assistant", "tool", "task", "text", "ses_0"])
            .prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An object with `field` set to one of `values`, then random fields (which may replace it).
fn shaped(field: &'static str, values: Vec<&'static str>) -> impl Strategy<Value = String> {
    (
        prop::sample::select(values),
        prop::collection::vec((key(), json()), 0..5),
    )
        .prop_map(move |(v, extra)| {
            let mut obj = serde_json::Map::new();
            obj.insert(field.to_owned(), Value::from(v));
            obj.extend(extra);
            Value::Object(obj).to_string()
        })
}

/// A stored message value: mostly message-shaped, else any JSON or text.
fn message() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => shaped("role", vec!["user", "assistant", "system"]),
        1 => json().prop_map(|v| v.to_string()),
        1 => ".{0,12}",
    ]
}

/// A stored part value: mostly part-shaped, else any JSON or text.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => shaped("type", vec!["text", "reasoning", "tool", "step-finish", "x"]),
        1 => json().prop_map(|v| v.to_string()),
        1 => ".{0,12}",
    ]
}

/// One case: the stores' items for the generated values; `Ok(number of items)`.
fn case(
    messages: &[(usize, String, Vec<String>)],
    legacy: &[String],
    child: bool,
) -> Result<usize, TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let w = Writer::create(&dir.path().join("opencode.db"), SCHEMA);
    w.conn.execute_batch("BEGIN").unwrap();
    for (i, sid) in ["ses_0", "ses_1", "ses_2"].iter().enumerate() {
        let parent = (child && i > 0).then_some("ses_0");
        w.session(sid, parent, None, "t", i as i64, i as i64);
    }
    for (n, (session, data, parts)) in messages.iter().enumerate() {
        let (sid, mid) = (format!("ses_{session}"), format!("msg_{n}"));
        w.message(&sid, &mid, n as i64, &Value::String(data.clone()));
        for (k, p) in parts.iter().enumerate() {
            w.part(
                &sid,
                &mid,
                &format!("prt_{n}_{k}"),
                0,
                &Value::String(p.clone()),
            );
        }
    }
    w.conn.execute_batch("COMMIT").unwrap();
    let storage = dir.path().join("storage");
    for (n, v) in legacy.iter().enumerate() {
        let rel = match n {
            0 => "session/p/ses_9.json",
            1 => "message/ses_9/msg_9.json",
            _ => "part/msg_9/prt_9.json",
        };
        write_json(&storage, rel, &Value::String(v.clone()));
    }
    drop(w);
    let mut store = OpenCodeStore::new(dir.path().to_path_buf());
    let (first, _) = poll_all(&mut store, &HashMap::new(), false).unwrap();
    let mut cursors = HashMap::new();
    for u in &first {
        prop_assert_eq!(u.items.len(), 1);
        prop_assert!(!u.items[0].turns.is_empty(), "no item without a turn");
        cursors.insert(u.session_id.clone(), u.cursor.clone());
    }
    let (again, counts) = poll_all(&mut store, &cursors, false).unwrap();
    prop_assert!(again.is_empty(), "an unchanged store polls as unchanged");
    prop_assert_eq!(counts.unchanged as usize, first.len());
    let mut fresh = OpenCodeStore::new(dir.path().to_path_buf());
    let (full, _) = poll_all(&mut fresh, &HashMap::new(), true).unwrap();
    prop_assert_eq!(&full, &first);
    Ok(first.len())
}

#[test]
fn hostile_values_never_panic_and_poll_deterministically() {
    let strategy = (
        prop::collection::vec(
            (0usize..3, message(), prop::collection::vec(part(), 0..4)),
            0..8,
        ),
        prop::collection::vec(prop_oneof![message(), part()], 0..4),
        any::<bool>(),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let emitted = std::cell::Cell::new(0);
    runner
        .run(&strategy, |(messages, legacy, child)| {
            emitted.set(emitted.get() + case(&messages, &legacy, child)?);
            Ok(())
        })
        .unwrap();
    // The generator reaches the mapping, not only its guards.
    assert!(
        emitted.get() >= 24,
        "only {} items in 48 cases",
        emitted.get()
    );
}
