//! Incremental = full: random cuts, restarts from the open turn, late tool results.

use super::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Feeding a file in random cuts at line boundaries, taking items after each cut and
    /// upserting them, gives the rows, fingerprint and stats of one full parse.
    #[test]
    fn incremental_equals_full(cuts in prop::collection::vec(any::<bool>(), 1..40)) {
        for (file, bytes) in fixture_variants() {
            let (full, full_fp, full_stats) = full_ledger(&file, &bytes);
            let mut p = parser_for(&file);
            let mut ledger = Ledger::new();
            let mut start = 0usize;
            let ends = line_ends(&bytes);
            for (n, end) in ends.iter().enumerate() {
                if cuts[n % cuts.len()] || n + 1 == ends.len() {
                    p.push_lines(&bytes[start..*end], start as u64, true);
                    upsert(&mut ledger, p.take_items());
                    start = *end;
                }
            }
            prop_assert_eq!(&ledger, &full, "{}", file.path.display());
            prop_assert_eq!(p.fingerprint(), full_fp.clone());
            prop_assert_eq!(p.stats(), &full_stats);
            let fps: Vec<_> = ledger.values().map(|r| r.fingerprint.clone()).collect();
            prop_assert_eq!(fps, full.values().map(|r| r.fingerprint.clone()).collect::<Vec<_>>());
        }
    }
}

/// A worker that committed items for the first `k` lines dies; a new one rebuilds state from
/// `[0, open_turn_offset)` without emitting, then emits the rest: the rows equal a full parse.
#[test]
fn restart_from_open_turn_offset_equals_full() {
    for (file, bytes) in fixture_variants() {
        let (full, full_fp, _) = full_ledger(&file, &bytes);
        let ends = line_ends(&bytes);
        for k in 0..=ends.len() {
            let cut = if k == 0 { 0 } else { ends[k - 1] };
            let mut first = parser_for(&file);
            first.push_lines(&bytes[..cut], 0, true);
            let mut ledger = Ledger::new();
            upsert(&mut ledger, first.take_items());
            let off = first.open_turn_offset() as usize;
            assert!(off <= cut, "{} k={k}", file.path.display());
            let mut second = parser_for(&file);
            second.push_lines(&bytes[..off], 0, false);
            assert!(
                second.take_items().is_empty(),
                "emit=false lines are not emitted"
            );
            second.push_lines(&bytes[off..], off as u64, true);
            upsert(&mut ledger, second.take_items());
            assert_eq!(ledger, full, "{} k={k}", file.path.display());
            assert_eq!(second.fingerprint(), full_fp);
        }
    }
}

#[test]
fn items_are_deterministic_and_take_drains() {
    for file in all_fixtures() {
        let (a, mut p) = parse_all(&file);
        let (b, _) = parse_all(&file);
        assert_eq!(a, b, "{}", file.path.display());
        assert!(!a.is_empty(), "{}", file.path.display());
        assert!(
            p.take_items().is_empty(),
            "a second take with no new line is empty"
        );
    }
}

/// An append to a closed turn's pending tool call re-emits that call, not the old turn.
#[test]
fn late_tool_result_updates_a_closed_turns_call() {
    let sid = "aaaaaaaa-0000-4000-8000-000000000001";
    let file = source(
        Provider::ClaudeCode,
        &format!("claude-code/main/{sid}.jsonl"),
        FileRole::Main,
    );
    let bytes = std::fs::read(&file.path).unwrap();
    let mut p = parser_for(&file);
    p.push_lines(&bytes, 0, true);
    p.take_items();
    let human = format!(
        r#"{{"type":"user","uuid":"u5","parentUuid":"a6","sessionId":"{sid}","timestamp":"2026-03-10T09:04:00.000Z","message":{{"role":"user","content":"Next."}}}}"#
    );
    let result = format!(
        r#"{{"type":"user","uuid":"r9","parentUuid":"a6","sessionId":"{sid}","timestamp":"2026-03-10T09:04:01.000Z","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_bash1","content":"ok"}}]}}}}"#
    );
    let mut off = bytes.len() as u64;
    p.push_lines(format!("{human}\n").as_bytes(), off, true);
    off += human.len() as u64 + 1;
    let first = p.take_items();
    // u4 got no new line since the last take: only the new open turn u5 is sent.
    assert_eq!(
        turns(&first[0])
            .iter()
            .map(|t| t.0.clone())
            .collect::<Vec<_>>(),
        vec![s("u5")]
    );
    p.push_lines(format!("{result}\n").as_bytes(), off, true);
    let second = p.take_items();
    assert_eq!(
        turns(&second[0])
            .iter()
            .map(|t| t.0.clone())
            .collect::<Vec<_>>(),
        vec![s("u5")]
    );
    assert_eq!(
        tools(&second[0]),
        vec![(
            s("toolu_bash1"),
            s("u4"),
            o("a6"),
            s("Bash"),
            s("completed"),
            Some(cc(4, 1)),
            None
        )]
    );
}

#[test]
fn fingerprint_is_the_documented_chain() {
    let file = source(
        Provider::Codex,
        "codex/sub/rollout-2026-03-01T10-05-00-0199bbbb-0000-7000-8000-000000000002.jsonl",
        FileRole::Main,
    );
    let bytes = std::fs::read(&file.path).unwrap();
    let lines: Vec<&[u8]> = bytes
        .strip_suffix(b"\n")
        .unwrap()
        .split(|b| *b == b'\n')
        .collect();
    let (items, p) = parse_all(&file);
    assert_eq!(p.fingerprint(), chain(&lines));
    assert_eq!(items[0].source_session_fingerprint, chain(&lines));
    assert_eq!(
        parser_for(&file).fingerprint(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
