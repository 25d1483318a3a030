//! Codex: turns with and without native ids, replayed prefixes, tools, token deltas.

use super::*;

#[test]
fn codex_session_turns_messages_tools_and_tokens() {
    let file = source(
        Provider::Codex,
        &format!("codex/main/rollout-2026-03-01T10-00-00-{CX_A}.jsonl"),
        FileRole::Main,
    );
    let (items, p) = parse_all(&file);
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item.source_provider, "codex");
    assert_eq!(item.source_session_id, CX_A);
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        serde_json::json!({
            "createdAtMs": cx(0, 0), "updatedAtMs": cx(1, 8), "model": "gpt-5.1-codex",
            "provider": "openai", "workspacePath": "/work/cx",
            "metadata": {"cliVersion": "0.150.0", "originator": "codex_cli_rs",
                         "modelProvider": "openai", "gitBranch": "main"}
        })
    );
    // A turn opens at its prompt, named by the Codex turn id announced before it. t-1: one API
    // call, its (total, last) pair written twice (counted once); t-2: `last_token_usage`.
    // Input tokens are Codex's minus the cache reads (1000 - 200, 500 - 100).
    assert_eq!(
        turns(item),
        vec![
            (
                s("t-1"),
                None,
                cx(0, 2),
                Some(cx(0, 12)),
                o("gpt-5-codex"),
                [Some(800), Some(50), Some(200), None, Some(10), Some(1050)],
                o("L17"),
                vec![s("L7")]
            ),
            (
                s("t-2"),
                o("t-1"),
                cx(1, 1),
                Some(cx(1, 8)),
                o("gpt-5.1-codex"),
                [Some(400), Some(30), Some(100), None, Some(0), Some(530)],
                o("L33"),
                vec![s("L25")]
            ),
        ]
    );
    assert_eq!(
        messages(item),
        vec![
            (
                s("L7"),
                s("t-1"),
                s("user"),
                o("Add a test for parse()."),
                None,
                6
            ),
            (
                s("L9"),
                s("t-1"),
                s("assistant"),
                None,
                o("Look at parse() first."),
                8
            ),
            (
                s("L17"),
                s("t-1"),
                s("assistant"),
                o("Added test_parse."),
                None,
                16
            ),
            (
                s("L25"),
                s("t-2"),
                s("user"),
                o("Run it, and ask a helper to check the docs."),
                None,
                24
            ),
            (
                s("L33"),
                s("t-2"),
                s("assistant"),
                o("Tests pass; a helper is checking the docs."),
                None,
                32
            ),
        ]
    );
    assert_eq!(
        tools(item),
        vec![
            (
                s("c-1"),
                s("t-1"),
                None,
                s("exec_command"),
                s("completed"),
                Some(cx(0, 7)),
                None
            ),
            (
                s("c-2"),
                s("t-1"),
                None,
                s("read_file"),
                s("completed"),
                Some(cx(0, 6)),
                None
            ),
            (
                s("c-3"),
                s("t-1"),
                None,
                s("apply_patch"),
                s("completed"),
                Some(cx(0, 10)),
                None
            ),
            (
                s("c-4"),
                s("t-2"),
                None,
                s("local_shell"),
                s("completed"),
                Some(cx(1, 4)),
                None
            ),
            (
                s("c-5"),
                s("t-2"),
                None,
                s("spawn_agent"),
                s("completed"),
                Some(cx(1, 6)),
                o(CX_B)
            ),
            (
                s("c-6"),
                s("t-2"),
                None,
                s("exec_command"),
                s("pending"),
                None,
                None
            ),
        ]
    );
    let params: Vec<_> = item
        .tool_calls
        .iter()
        .map(|c| c.params_json.clone().map(serde_json::Value::from))
        .collect();
    assert_eq!(params[0], Some(serde_json::json!({"cmd": "rg parse"})));
    assert_eq!(params[1], Some(serde_json::json!({"path": "src/lib.rs"})));
    assert_eq!(
        params[2],
        Some(serde_json::json!(
            "*** Begin Patch\n*** Add File: tests/parse.rs\n+#[test] fn p() {}\n*** End Patch"
        ))
    );
    assert_eq!(
        params[3],
        Some(serde_json::json!({"type": "exec", "command": ["cargo", "test"]}))
    );
    assert_eq!(
        item.tool_calls[0]
            .result_json
            .clone()
            .map(serde_json::Value::from),
        Some(serde_json::json!("src/lib.rs:1"))
    );
    assert_eq!(
        item.tool_calls[3]
            .result_json
            .clone()
            .map(serde_json::Value::from),
        Some(serde_json::json!({"output": "1 passed", "metadata": {"exit_code": 0}}))
    );
    assert_eq!((p.stats().lines, p.stats().malformed_lines), (33, 1));
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("response_item/message:developer"), 1),
            (s("response_item/message:user"), 2),
            (s("visible_pair_duplicate"), 1),
            (s("world_state"), 1),
        ]
    );
}

#[test]
fn codex_subagent_skips_the_replayed_prefix() {
    let (items, p) = parse_all(&source(
        Provider::Codex,
        &format!("codex/sub/rollout-2026-03-01T10-05-00-{CX_B}.jsonl"),
        FileRole::Main,
    ));
    let item = &items[0];
    assert_eq!(item.source_session_id, CX_B);
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        serde_json::json!({
            "createdAtMs": cx(5, 0), "updatedAtMs": cx(5, 3), "model": "gpt-5-codex-mini",
            "provider": "openai", "workspacePath": "/work/cx", "isSubagent": true,
            "parentSourceSessionId": CX_A, "spawnToolCallId": "c-5",
            "metadata": {"cliVersion": "0.150.0", "originator": "codex_cli_rs", "agentRole": "explorer"}
        })
    );
    // The replayed prefix adds nothing; the turn opens at the prompt (the context does not).
    assert_eq!(
        turns(item),
        vec![(
            s("L6"),
            None,
            cx(5, 1),
            Some(cx(5, 3)),
            o("gpt-5-codex-mini"),
            [Some(200), Some(15), Some(0), None, Some(0), Some(215)],
            o("L7"),
            vec![s("L6")]
        )]
    );
    assert_eq!(
        messages(item),
        vec![
            (
                s("L6"),
                s("L6"),
                s("user"),
                o("Check the docs mention parse()."),
                None,
                5
            ),
            (
                s("L7"),
                s("L6"),
                s("assistant"),
                o("The docs mention parse() once."),
                None,
                6
            ),
        ]
    );
    assert!(item.tool_calls.is_empty());
    assert_eq!(
        skipped(p.as_ref()),
        vec![(s("replayed"), 3), (s("visible_pair_duplicate"), 1)]
    );
}

#[test]
fn codex_fork_without_turn_ids_and_compaction() {
    let cid = "0199cccc-0000-7000-8000-000000000003";
    let (items, p) = parse_all(&source(
        Provider::Codex,
        &format!("codex/fork/rollout-2026-03-02T11-00-00-{cid}.jsonl"),
        FileRole::Main,
    ));
    let item = &items[0];
    let base = 1_772_449_200_000; // 2026-03-02T11:00:00Z
    assert!(!item.session.is_subagent);
    assert_eq!(item.session.parent_source_session_id.as_deref(), Some(CX_A));
    assert_eq!(
        item.session.metadata,
        Some(
            serde_json::json!({"cliVersion": "0.46.0", "originator": "codex_cli_rs", "forkedFromId": CX_A})
        )
    );
    // Prompts open the turns (L6, L11), whichever side of them the contexts (without turn ids)
    // are written; the context re-written after compaction stays in L11; the total went down
    // (a fresh start): `last_token_usage` counts.
    assert_eq!(
        turns(item),
        vec![
            (
                s("L6"),
                None,
                base + 1000,
                Some(base + 3000),
                o("gpt-5-codex"),
                [Some(0), Some(40), Some(400), None, Some(10), Some(440)],
                o("L8"),
                vec![s("L6")]
            ),
            (
                s("L11"),
                o("L6"),
                base + 4000,
                Some(base + 6000),
                o("gpt-5-codex"),
                [Some(800), Some(30), Some(100), None, Some(0), Some(930)],
                o("L14"),
                vec![s("L11")]
            ),
        ]
    );
    assert_eq!(
        messages(item),
        vec![
            (
                s("L6"),
                s("L6"),
                s("user"),
                o("Try another approach."),
                None,
                5
            ),
            (
                s("L8"),
                s("L6"),
                s("assistant"),
                o("Using a table-driven test."),
                None,
                7
            ),
            (
                s("L11"),
                s("L11"),
                s("user"),
                o("Shorter, please."),
                None,
                10
            ),
            (
                s("L12"),
                s("L11"),
                s("system"),
                o("Summary: table-driven parse test."),
                None,
                11
            ),
            (
                s("L14"),
                s("L11"),
                s("assistant"),
                o("Done in three lines."),
                None,
                13
            ),
        ]
    );
    assert_eq!(
        skipped(p.as_ref()),
        vec![(s("replayed"), 2), (s("response_item/message:user"), 2)]
    );
}

#[test]
fn codex_edge_orders_adopt_steer_and_late_output() {
    let did = "0199dddd-0000-7000-8000-000000000004";
    let (items, p) = parse_all(&source(
        Provider::Codex,
        &format!("codex/edge/rollout-2026-03-03T12-00-00-{did}.jsonl"),
        FileRole::Main,
    ));
    let item = &items[0];
    let base = 1_772_539_200_000; // 2026-03-03T12:00:00Z
    assert_eq!(item.source_session_id, did);
    assert_eq!(
        item.session.metadata,
        Some(
            serde_json::json!({"cliVersion": "0.120.0", "originator": "codex_exec",
                                "title": "Count files"})
        )
    );
    assert_eq!(item.session.updated_at_ms, Some(base + 604_000));
    // The prompt came before task_started: its turn (L2) keeps its name and runs under e-1; the
    // steering prompt opens a turn of its own (L6, with the web search); the resumed part's
    // task_started (e-2) names the next prompt's turn.
    assert_eq!(
        turns(item),
        vec![
            (
                s("L2"),
                None,
                base + 1000,
                Some(base + 2000),
                o("gpt-5-codex"),
                [None, None, None, None, None, None],
                None,
                vec![s("L2")]
            ),
            (
                s("L6"),
                o("L2"),
                base + 3000,
                Some(base + 602_000),
                o("gpt-5-codex"),
                [None, None, None, None, None, None],
                o("L9"),
                vec![s("L6")]
            ),
            (
                s("e-2"),
                o("L6"),
                base + 603_000,
                Some(base + 603_000),
                o("gpt-5-codex"),
                [None, None, None, None, None, None],
                None,
                vec![s("L13")]
            ),
        ]
    );
    assert_eq!(
        messages(item),
        vec![
            (s("L2"), s("L2"), s("user"), o("Count the files."), None, 1),
            (s("L6"), s("L6"), s("user"), o("Only .rs files."), None, 5),
            (
                s("L9"),
                s("L6"),
                s("assistant"),
                o("Working on it."),
                None,
                8
            ),
            (s("L13"), s("e-2"), s("user"), o("Resume."), None, 12),
        ]
    );
    // Arguments that are not JSON stay a string; the output of a later turn fails the call; a
    // web search has no call id (named by its line) and is done when written.
    assert_eq!(
        tools(item),
        vec![
            (
                s("k-1"),
                s("L2"),
                None,
                s("exec_command"),
                s("failed"),
                Some(base + 602_000),
                None
            ),
            (
                s("L8"),
                s("L6"),
                None,
                s("web_search"),
                s("completed"),
                Some(base + 5000),
                None
            ),
        ]
    );
    assert_eq!(
        item.tool_calls[0]
            .params_json
            .clone()
            .map(serde_json::Value::from),
        Some(serde_json::json!("not json {"))
    );
    assert_eq!(skipped(p.as_ref()), vec![(s("session_meta"), 1)]);
}

/// Fields that changed type read as absent; the line still counts; pairs match across
/// surrounding whitespace.
#[test]
fn codex_fields_of_unexpected_types_are_ignored_not_fatal() {
    let lines = [
        r#"{"timestamp":"2026-01-01T00:00:00Z","type":"session_meta","payload":{"id":"s","cwd":7,"source":["x"],"git":"main","base_instructions":{"text":"long"}}}"#,
        r#"{"timestamp":"2026-01-01T00:00:01Z","type":"turn_context","payload":{"turn_id":null,"model":{"name":"m"}}}"#,
        r#"{"timestamp":"2026-01-01T00:00:02Z","type":"event_msg","payload":{"type":"user_message","message":"go","images":{}}}"#,
        r#"{"timestamp":"2026-01-01T00:00:03Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":"9","output_tokens":-1,"total_tokens":4}}}}"#,
        r#"{"timestamp":"2026-01-01T00:00:04Z","type":"response_item","payload":{"type":"message","role":"assistant","content":"done \n"}}"#,
        r#"{"timestamp":"2026-01-01T00:00:04Z","type":"event_msg","payload":{"type":"agent_message","message":"done"}}"#,
        r#"{"timestamp":"2026-01-01T00:00:05Z","type":"response_item","payload":{"type":"reasoning","summary":"not a list","content":[{"type":"reasoning_text","text":"why"}],"encrypted_content":"AAAA"}}"#,
        r#"{"timestamp":5,"type":"response_item","payload":"not an object"}"#,
    ];
    let bytes = lines.join("\n") + "\n";
    let file = source(Provider::Codex, "rollout-s.jsonl", FileRole::Main);
    let mut p = parser_for(&file);
    p.push_lines(bytes.as_bytes(), 0, true);
    let items = p.take_items();
    assert_eq!(p.stats().malformed_lines, 0);
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("response_item/unknown"), 1),
            (s("visible_pair_duplicate"), 1)
        ]
    );
    let item = &items[0];
    assert_eq!(item.session.workspace_path, None);
    assert_eq!(item.session.metadata, None);
    assert_eq!(
        messages(item),
        vec![
            (s("L3"), s("L3"), s("user"), o("go"), None, 2),
            (s("L5"), s("L3"), s("assistant"), o("done \n"), None, 4),
            (s("L7"), s("L3"), s("assistant"), None, o("why"), 6),
        ]
    );
    assert_eq!(
        turns(item)[0].5,
        [Some(0), Some(0), Some(0), None, Some(0), Some(4)]
    );
}
