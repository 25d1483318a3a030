//! TARGETS R5 "incremental = full" at the service level: a session imported as a sequence of
//! partial items (header + the turns touched by new lines, later fingerprints) ends in exactly
//! the rows of the same session imported once as a full item.

use serde_json::{Value, json};

use super::import_support::*;

const T0: i64 = 1_760_000_000_000;

/// Turn `k` (1-based): a user prompt, an assistant answer, a tool call on even turns; each
/// turn's parent is the previous turn.
fn turn(k: i64) -> (Value, Vec<Value>, Vec<Value>) {
    let start = T0 + k * 10_000;
    let mut t = json!({
        "sourceTurnId": format!("turn-{k}"), "startedAtMs": start, "completedAtMs": start + 5_000,
        "inputTokens": 100 * k, "outputTokens": 10 * k, "totalTokens": 110 * k,
        "queryMessageSourceIds": [format!("u-{k}")], "responseMessageSourceId": format!("a-{k}"),
        "model": "claude-opus", "metadata": { "k": k }
    });
    if k > 1 {
        t["parentSourceTurnId"] = json!(format!("turn-{}", k - 1));
    }
    let messages = vec![
        json!({ "sourceMessageId": format!("u-{k}"), "sourceTurnId": format!("turn-{k}"), "role": "user",
                "content": format!("question {k}"), "sequence": 2 * k, "createdAtMs": start }),
        json!({ "sourceMessageId": format!("a-{k}"), "sourceTurnId": format!("turn-{k}"), "role": "assistant",
                "content": format!("answer {k}"), "sequence": 2 * k + 1, "createdAtMs": start + 4_000,
                "metadataJson": { "stop": "end_turn" } }),
    ];
    let tools = if k % 2 == 0 {
        vec![
            json!({ "sourceToolCallId": format!("tool-{k}"), "sourceTurnId": format!("turn-{k}"),
                     "sourceMessageId": format!("a-{k}"), "toolName": "Bash",
                     "paramsJson": { "command": format!("ls {k}") }, "resultJson": "ok",
                     "startedAtMs": start + 1_000, "completedAtMs": start + 2_000, "sequence": k }),
        ]
    } else {
        vec![]
    };
    (t, messages, tools)
}

/// An item holding `turns`, as a tail worker would send after reading up to the last of them.
fn item_with(turns: &[i64], fingerprint: &str) -> Value {
    let mut t = vec![];
    let mut m = vec![];
    let mut c = vec![];
    for &k in turns {
        let (turn, messages, tools) = turn(k);
        t.push(turn);
        m.extend(messages);
        c.extend(tools);
    }
    let last = *turns.iter().max().unwrap();
    json!({
        "sourceProvider": "claude-code", "sourceSessionId": "tail-session",
        "sourceSessionFingerprint": fingerprint, "importedAtMs": T0 + last * 10_000 + 6_000,
        "session": { "createdAtMs": T0, "updatedAtMs": T0 + last * 10_000 + 5_000,
                     "model": "claude-opus", "provider": "anthropic", "workspacePath": "/w",
                     "taskDescription": "refactor" },
        "turns": t, "messages": m, "toolCalls": c
    })
}

fn import_sequence(batches: &[&[i64]]) -> String {
    let mut conn = ledger();
    for (i, turns) in batches.iter().enumerate() {
        let fp = format!("fp-{i}");
        let resp = run_import(
            &mut conn,
            import_req(&format!("key-{i}"), "tail", vec![item_with(turns, &fp)]),
        )
        .unwrap();
        assert_eq!(resp.failed, 0, "{resp:?}");
    }
    canonical_dump(&conn)
}

#[test]
fn partial_items_converge_on_the_full_import() {
    let full = import_sequence(&[&[1, 2, 3, 4]]);
    assert!(
        full.contains("has_children=1"),
        "the fixture has parent links"
    );
    let split = import_sequence(&[&[1], &[2, 3], &[4]]);
    assert_eq!(split, full);
    let overlapping = import_sequence(&[&[1, 2], &[2, 3], &[3, 4]]);
    assert_eq!(overlapping, full);
    let one_by_one = import_sequence(&[&[1], &[2], &[3], &[4]]);
    assert_eq!(one_by_one, full);
}

#[test]
fn a_parent_that_exists_nowhere_stays_null() {
    let mut conn = ledger();
    run_import(
        &mut conn,
        import_req("k", "tail", vec![item_with(&[3], "fp")]),
    )
    .unwrap();
    let parent: Option<String> = one(&conn, "SELECT parent_turn_id FROM turns");
    assert_eq!(parent, None);
    // Once turn 2 arrives, re-sending turn 3 links it.
    run_import(
        &mut conn,
        import_req("k2", "tail", vec![item_with(&[2], "fp2")]),
    )
    .unwrap();
    run_import(
        &mut conn,
        import_req("k3", "tail", vec![item_with(&[3], "fp3")]),
    )
    .unwrap();
    let linked: i64 = one(
        &conn,
        "SELECT COUNT(*) FROM turns WHERE parent_turn_id IS NOT NULL",
    );
    assert_eq!(linked, 1);
    let has_children: i64 = one(
        &conn,
        "SELECT has_children FROM turns WHERE source_event_id = 'turn-2'",
    );
    assert_eq!(has_children, 1);
}

/// Issue 11: the head (`sessions.thread_id`, the turn with the latest completion-or-start time)
/// was computed over the item's turns only, so a partial item without the latest turn moved the
/// head: here turn 1 completes after turn 2 starts (a prompt queued while a long answer ran), and
/// the tail's second item holds turn 2 alone.
#[test]
fn head_thread_does_not_depend_on_the_split_point() {
    let item = |turns: &[(&str, i64, Option<i64>)], fp: &str| {
        let t: Vec<Value> = turns
            .iter()
            .map(|(id, start, end)| {
                json!({ "sourceTurnId": id, "startedAtMs": T0 + start, "completedAtMs": end.map(|e| T0 + e) })
            })
            .collect();
        json!({ "sourceProvider": "claude-code", "sourceSessionId": "head-session",
                "sourceSessionFingerprint": fp, "session": { "createdAtMs": T0 }, "turns": t })
    };
    let long = ("turn-1", 1_000, Some(60_000));
    let queued = ("turn-2", 5_000, None);
    let mut full = ledger();
    run_import(
        &mut full,
        import_req("f", "backfill", vec![item(&[long, queued], "fp-full")]),
    )
    .unwrap();
    let mut split = ledger();
    run_import(
        &mut split,
        import_req("s1", "tail", vec![item(&[long], "fp-1")]),
    )
    .unwrap();
    run_import(
        &mut split,
        import_req("s2", "tail", vec![item(&[queued], "fp-full")]),
    )
    .unwrap();
    let head = "SELECT t.source_event_id FROM sessions s JOIN turns t ON t.id = s.thread_id";
    assert_eq!(one::<String>(&full, head), "turn-1");
    assert_eq!(one::<String>(&split, head), "turn-1");
    assert_eq!(canonical_dump(&split), canonical_dump(&full));
}

/// Item rule 14 (issue 12): a turn sent as deltas (its row with `toolCallCount`, then only its
/// new messages and tool calls) ends in the rows of the whole turn imported once; the earlier
/// rows are left as they are. An item without `toolCallCount` (an older worker's whole turn)
/// still counts its own tool calls.
#[test]
fn a_turn_sent_as_deltas_with_its_tool_call_count_equals_the_whole_turn() {
    let call = |i: i64| {
        json!({ "sourceToolCallId": format!("tool-{i}"), "sourceTurnId": "turn-1",
                "sourceMessageId": format!("a-{i}"), "toolName": "Bash", "paramsJson": { "i": i },
                "resultJson": "ok", "startedAtMs": T0 + i, "completedAtMs": T0 + i + 1,
                "sequence": i })
    };
    let message = |i: i64| {
        json!({ "sourceMessageId": format!("a-{i}"), "sourceTurnId": "turn-1", "role": "assistant",
                "sequence": i, "createdAtMs": T0 + i })
    };
    let item = |upto: i64, from: i64, count: Option<i64>, fp: &str| {
        let mut turn = json!({ "sourceTurnId": "turn-1", "startedAtMs": T0,
                               "completedAtMs": T0 + upto + 1, "outputTokens": upto,
                               "responseMessageSourceId": format!("a-{upto}") });
        if let Some(n) = count {
            turn["toolCallCount"] = json!(n);
        }
        json!({ "sourceProvider": "claude-code", "sourceSessionId": "delta-session",
                "sourceSessionFingerprint": fp, "importedAtMs": T0 + 100,
                "session": { "createdAtMs": T0, "updatedAtMs": T0 + upto + 1 }, "turns": [turn],
                "messages": (from..=upto).map(message).collect::<Vec<_>>(),
                "toolCalls": (from..=upto).map(call).collect::<Vec<_>>() })
    };
    // Old style: one whole turn of five calls, counted from the item.
    let mut whole = ledger();
    let resp = run_import(
        &mut whole,
        import_req("w", "backfill", vec![item(5, 1, None, "fp-5")]),
    )
    .unwrap();
    assert_eq!(resp.failed, 0, "{resp:?}");
    let count = "SELECT tool_call_count FROM turns";
    assert_eq!(one::<i64>(&whole, count), 5);
    // Deltas: calls 1-3, then 4, then 5, each with the running count.
    let mut deltas = ledger();
    for (k, (upto, from)) in [(3, 1), (4, 4), (5, 5)].into_iter().enumerate() {
        let resp = run_import(
            &mut deltas,
            import_req(
                &format!("d{k}"),
                "tail",
                vec![item(upto, from, Some(upto), &format!("fp-{upto}"))],
            ),
        )
        .unwrap();
        assert_eq!(resp.failed, 0, "{resp:?}");
        assert_eq!(one::<i64>(&deltas, count), upto);
    }
    assert_eq!(canonical_dump(&deltas), canonical_dump(&whole));
    // The whole turn again with its count (a backfill of a newer worker): nothing moves.
    run_import(
        &mut deltas,
        import_req("again", "backfill", vec![item(5, 1, Some(5), "fp-again")]),
    )
    .unwrap();
    let again = canonical_dump(&deltas).replace("fp-again", "fp-5");
    assert_eq!(again, canonical_dump(&whole));
}
