//! Claude Code: main sessions, the three subagent layouts, a resumed copy.

use super::*;

const S1: &str = "aaaaaaaa-0000-4000-8000-000000000001";

#[test]
fn claude_main_session_maps_every_rule() {
    let file = source(
        Provider::ClaudeCode,
        "claude-code/main/aaaaaaaa-0000-4000-8000-000000000001.jsonl",
        FileRole::Main,
    );
    let (items, p) = parse_all(&file);
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item.source_provider, "claude-code");
    assert_eq!(item.source_session_id, S1);
    assert_eq!(item.source_session_fingerprint, p.fingerprint());
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        serde_json::json!({
            "createdAtMs": cc(0, 0), "updatedAtMs": cc(3, 4), "model": "claude-opus-4-6",
            "provider": "anthropic", "workspacePath": "/work/demo",
            "metadata": {"version": "2.1.40", "gitBranch": "main", "slug": "quiet-amber-fox",
                         "title": "Read and test the demo"}
        })
    );
    // Streaming split msg_A (4 lines, output 5,5,5,42) counts once with 42; parallel tool
    // calls; rewind: u3 branches from u1 like u2; u4's parent is an unknown record in u3.
    assert_eq!(
        turns(item),
        vec![
            (
                s("u1"),
                None,
                cc(0, 1),
                Some(cc(0, 9)),
                o("claude-opus-4-6"),
                [Some(13), Some(54), Some(220), Some(20), None, Some(307)],
                o("a2"),
                vec![s("u1")]
            ),
            (
                s("u2"),
                o("u1"),
                cc(1, 0),
                Some(cc(1, 31)),
                o("claude-sonnet-4-5"),
                [Some(10), Some(38), Some(500), Some(10), None, Some(558)],
                o("a4"),
                vec![s("u2")]
            ),
            (
                s("u3"),
                o("u1"),
                cc(2, 0),
                Some(cc(3, 0)),
                o("claude-opus-4-6"),
                [Some(7), Some(9), Some(0), Some(0), None, Some(16)],
                o("a5"),
                vec![s("u3")]
            ),
            (
                s("u4"),
                o("u3"),
                cc(3, 3),
                Some(cc(3, 4)),
                o("claude-opus-4-6"),
                [Some(5), Some(6), Some(0), Some(0), None, Some(11)],
                o("a6"),
                vec![s("u4")]
            ),
        ]
    );
    assert_eq!(
        messages(item),
        vec![
            (
                s("u1"),
                s("u1"),
                s("user"),
                o("Read a.rs and b.rs."),
                None,
                2
            ),
            (
                s("a1a"),
                s("u1"),
                s("assistant"),
                None,
                o("Both files at once."),
                3
            ),
            (
                s("a1b"),
                s("u1"),
                s("assistant"),
                o("Reading both files."),
                None,
                4
            ),
            (s("a1c"), s("u1"), s("assistant"), None, None, 5),
            (s("a1d"), s("u1"), s("assistant"), None, None, 6),
            // A result's text is stored once, in its call's `result_json`.
            (s("r2"), s("u1"), s("tool"), None, None, 8),
            (s("r1"), s("u1"), s("tool"), None, None, 9),
            (
                s("a2"),
                s("u1"),
                s("assistant"),
                o("a.rs is unreadable; b.rs defines b()."),
                None,
                10
            ),
            (
                s("u2"),
                s("u2"),
                s("user"),
                o("Spawn a helper to list the tests."),
                None,
                13
            ),
            (s("a3"), s("u2"), s("assistant"), None, None, 14),
            (s("r3"), s("u2"), s("tool"), None, None, 16),
            (
                s("a4"),
                s("u2"),
                s("assistant"),
                o("There are 3 tests."),
                None,
                17
            ),
            (
                s("u3"),
                s("u3"),
                s("user"),
                o("Actually, fix the permissions of a.rs instead."),
                None,
                19
            ),
            (
                s("a5"),
                s("u3"),
                s("assistant"),
                o("Fixed with chmod."),
                None,
                20
            ),
            (
                s("cb1"),
                s("u3"),
                s("system"),
                o("Conversation compacted"),
                None,
                21
            ),
            (
                s("cs1"),
                s("u3"),
                s("system"),
                o(
                    "This session is being continued from a previous conversation. Summary: a.rs fixed."
                ),
                None,
                22
            ),
            (
                s("u4"),
                s("u4"),
                s("user"),
                o("Continue with the tests."),
                None,
                25
            ),
            (
                s("a6"),
                s("u4"),
                s("assistant"),
                o("Running them."),
                None,
                26
            ),
        ]
    );
    assert_eq!(
        item.messages[1].metadata_json,
        Some(serde_json::json!({"messageId": "msg_A", "requestId": "req_A", "isSidechain": false}))
    );
    assert_eq!(item.messages[1].created_at_ms, cc(0, 2));
    assert_eq!(
        tools(item),
        vec![
            (
                s("toolu_read1"),
                s("u1"),
                o("a1c"),
                s("Read"),
                s("failed"),
                Some(cc(0, 8)),
                None
            ),
            (
                s("toolu_read2"),
                s("u1"),
                o("a1d"),
                s("Read"),
                s("completed"),
                Some(cc(0, 7)),
                None
            ),
            (
                s("toolu_task"),
                s("u2"),
                o("a3"),
                s("Task"),
                s("completed"),
                Some(cc(1, 30)),
                Some(format!("{S1}/agent-c0ffee1"))
            ),
            (
                s("toolu_bash1"),
                s("u4"),
                o("a6"),
                s("Bash"),
                s("pending"),
                None,
                None
            ),
        ]
    );
    let read2 = &item.tool_calls[1];
    assert_eq!(
        read2.params_json.clone().map(serde_json::Value::from),
        Some(serde_json::json!({"file_path": "/work/demo/b.rs"}))
    );
    assert_eq!(
        read2.result_json.clone().map(serde_json::Value::from),
        Some(serde_json::json!({"content": "fn b() {}",
            "toolUseResult": {"type": "text", "file": {"filePath": "/work/demo/b.rs", "numLines": 1}}}))
    );
    assert_eq!((read2.started_at_ms, read2.sequence), (cc(0, 5), 6));
    // Each call names the message that carried its result (the text is in the call only).
    let carriers: Vec<_> = item
        .tool_calls
        .iter()
        .map(|c| c.result_source_message_id.as_deref())
        .collect();
    assert_eq!(carriers, [Some("r1"), Some("r2"), Some("r3"), None]);
    assert_eq!(
        item.tool_calls[2].result_json.as_ref().unwrap().to_value()["content"],
        serde_json::json!([{"type": "text", "text": "Found 3 tests."}, {"type": "text", "text": "agentId: c0ffee1"}])
    );
    assert_eq!(p.stats().lines, 28);
    assert_eq!(p.stats().malformed_lines, 1);
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("file-history-snapshot"), 1),
            (s("future-record"), 1),
            (s("last-prompt"), 1),
            (s("progress"), 3),
            (s("queue-operation"), 1),
            (s("system/turn_duration"), 1),
        ]
    );
    let links = p.spawn_links();
    // By agent id, and the same call by its prompt (with what its `tool_use` line says).
    assert_eq!(links.len(), 2);
    let by_prompt: Vec<_> = links
        .iter()
        .filter(|(k, _)| k.starts_with(nex::aix::sources::PROMPT_LINK_PREFIX))
        .map(|(_, l)| {
            (
                l.tool_use_id.as_str(),
                l.description.as_deref(),
                l.status.as_deref(),
            )
        })
        .collect();
    assert_eq!(by_prompt, [("toolu_task", Some("List tests"), None)]);
    assert_eq!(
        links["c0ffee1"],
        nex::aix::sources::SpawnLink {
            tool_use_id: s("toolu_task"),
            description: o("List tests"),
            status: o("completed"),
        }
    );
    // The open turn is u4: a restart re-parses from its first line.
    let bytes = std::fs::read(&file.path).unwrap();
    let u4_line = bytes
        .split(|b| *b == b'\n')
        .take(25)
        .map(|l| l.len() as u64 + 1)
        .sum::<u64>();
    assert_eq!(p.open_turn_offset(), u4_line);
}

#[test]
fn claude_inline_sidechain_becomes_its_own_subagent_item() {
    let sid = "bbbbbbbb-0000-4000-8000-000000000002";
    let file = source(
        Provider::ClaudeCode,
        &format!("claude-code/inline/{sid}.jsonl"),
        FileRole::Main,
    );
    let (items, p) = parse_all(&file);
    assert_eq!(items.len(), 2);
    let (main, child) = (&items[0], &items[1]);
    assert_eq!(main.source_session_id, sid);
    assert_eq!(
        messages(main)
            .iter()
            .map(|m| m.0.clone())
            .collect::<Vec<_>>(),
        vec![s("m1"), s("ma1"), s("m-r1"), s("ma2")]
    );
    assert_eq!(
        turns(main),
        vec![(
            s("m1"),
            None,
            1_763_592_600_000,
            Some(1_763_592_607_000),
            o("claude-sonnet-4-5"),
            [Some(7), Some(27), Some(500), Some(500), None, Some(1034)],
            o("ma2"),
            vec![s("m1")]
        )]
    );
    assert_eq!(
        tools(main),
        vec![(
            s("toolu_inl"),
            s("m1"),
            o("ma1"),
            s("Task"),
            s("completed"),
            Some(1_763_592_606_000),
            Some(format!("{sid}/agent-e1c84ba5"))
        )]
    );
    assert_eq!(main.source_session_fingerprint, p.fingerprint());

    assert_eq!(child.source_session_id, format!("{sid}/agent-e1c84ba5"));
    assert_eq!(
        serde_json::to_value(&child.session).unwrap(),
        serde_json::json!({
            "createdAtMs": 1_763_592_602_000_i64, "updatedAtMs": 1_763_592_605_000_i64,
            "model": "claude-haiku-4-5", "provider": "anthropic", "workspacePath": "/work/demo",
            "isSubagent": true, "parentSourceSessionId": sid, "spawnToolCallId": "toolu_inl",
            "taskDescription": "Research X", "taskStatus": "completed",
            "metadata": {"version": "2.0.40"}
        })
    );
    // `s-a1` has no agentId: it belongs to its parent's agent.
    assert_eq!(
        messages(child),
        vec![
            (
                s("s-u1"),
                s("s-u1"),
                s("user"),
                o("Research X in depth"),
                None,
                2
            ),
            (s("s-a1"), s("s-u1"), s("assistant"), None, None, 3),
            (s("s-r1"), s("s-u1"), s("tool"), None, None, 4),
            (
                s("s-a2"),
                s("s-u1"),
                s("assistant"),
                o("X lives in src/x.rs."),
                None,
                5
            ),
        ]
    );
    assert_eq!(
        turns(child),
        vec![(
            s("s-u1"),
            None,
            1_763_592_602_000,
            Some(1_763_592_605_000),
            o("claude-haiku-4-5"),
            [Some(4), Some(24), Some(300), Some(300), None, Some(628)],
            o("s-a2"),
            vec![s("s-u1")]
        )]
    );
    assert_eq!(
        tools(child),
        vec![(
            s("toolu_sgrep"),
            s("s-u1"),
            o("s-a1"),
            s("Grep"),
            s("completed"),
            Some(1_763_592_604_000),
            None
        )]
    );
    // The inline item's fingerprint chains its own four lines only.
    let bytes = std::fs::read(&file.path).unwrap();
    let own: Vec<&[u8]> = bytes.split(|b| *b == b'\n').skip(2).take(4).collect();
    assert_eq!(child.source_session_fingerprint, chain(&own));
    assert_eq!(p.spawn_links()["e1c84ba5"].tool_use_id, "toolu_inl");
}

#[test]
fn claude_resumed_copy_keeps_its_own_session_and_names_the_origin() {
    let sid = "eeeeeeee-0000-4000-8000-000000000005";
    let (items, _) = parse_all(&source(
        Provider::ClaudeCode,
        &format!("claude-code/resumed/{sid}.jsonl"),
        FileRole::Main,
    ));
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item.source_session_id, sid);
    assert_eq!(
        item.session.metadata,
        Some(serde_json::json!({"version": "2.1.40", "gitBranch": "main",
                                "resumedFromSessionId": "99999999-0000-4000-8000-000000000009"}))
    );
    assert_eq!(
        turns(item)
            .iter()
            .map(|t| (t.0.clone(), t.1.clone()))
            .collect::<Vec<_>>(),
        vec![(s("old-u1"), None), (s("new-u1"), o("old-u1"))]
    );
    assert_eq!(
        messages(item)
            .iter()
            .map(|m| m.0.clone())
            .collect::<Vec<_>>(),
        vec![s("old-u1"), s("old-a1"), s("new-u1"), s("new-a1")]
    );
}

/// A 2.x session begun by a slash command opens with the command's `isMeta` caveat, written
/// after the command (its timestamp is later): the caveat, the command and its output are one
/// turn, the command's, started at the command; cut anywhere, the tail sends the same turns.
#[test]
fn claude_caveat_before_the_first_command_is_that_command_turn() {
    let lines = [
        r#"{"type":"user","uuid":"k1","parentUuid":null,"sessionId":"s","isMeta":true,"timestamp":"2026-01-01T00:00:05.300Z","message":{"role":"user","content":"<local-command-caveat>Caveat: generated by a local command.</local-command-caveat>"}}"#,
        r#"{"type":"user","uuid":"k2","parentUuid":"k1","sessionId":"s","timestamp":"2026-01-01T00:00:05.000Z","message":{"role":"user","content":"<command-name>/clear</command-name>"}}"#,
        r#"{"type":"user","uuid":"k3","parentUuid":"k2","sessionId":"s","timestamp":"2026-01-01T00:00:05.400Z","message":{"role":"user","content":"<local-command-stdout></local-command-stdout>"}}"#,
        r#"{"type":"user","uuid":"k4","parentUuid":"k3","sessionId":"s","timestamp":"2026-01-01T00:01:00Z","message":{"role":"user","content":"Add a test."}}"#,
        r#"{"type":"assistant","uuid":"k5","parentUuid":"k4","sessionId":"s","timestamp":"2026-01-01T00:01:02Z","message":{"id":"m1","model":"claude-opus-4-6","role":"assistant","content":[{"type":"text","text":"Done."}],"usage":{"input_tokens":3,"output_tokens":2}}}"#,
    ];
    let bytes = lines.join("\n") + "\n";
    let file = source(Provider::ClaudeCode, "s.jsonl", FileRole::Main);
    let whole = {
        let mut p = parser_for(&file);
        p.push_lines(bytes.as_bytes(), 0, true);
        p.take_items()
    };
    let item = &whole[0];
    let t0 = 1_767_225_600_000;
    let shape: Vec<_> = item
        .turns
        .iter()
        .map(|t| {
            let q = t.query_message_source_ids.clone();
            (
                t.source_turn_id.clone(),
                t.parent_source_turn_id.clone(),
                t.started_at_ms,
                q,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (s("k1"), None, t0 + 5_000, vec![s("k2")]),
            (s("k4"), o("k1"), t0 + 60_000, vec![s("k4")]),
        ]
    );
    let of_turn: Vec<_> = messages(item).into_iter().map(|m| (m.0, m.1)).collect();
    let row = |m: &str, t: &str| (s(m), s(t));
    assert_eq!(
        of_turn,
        vec![
            row("k1", "k1"),
            row("k2", "k1"),
            row("k3", "k1"),
            row("k4", "k4"),
            row("k5", "k4")
        ]
    );
    // Cut after each line: the last item of every turn is the whole import's turn.
    let ends = line_ends(bytes.as_bytes());
    for (line, &cut) in ends.iter().enumerate() {
        let mut p = parser_for(&file);
        p.push_lines(&bytes.as_bytes()[..cut], 0, true);
        let mut last = std::collections::BTreeMap::new();
        for it in p.take_items() {
            for t in it.turns {
                last.insert(t.source_turn_id.clone(), t);
            }
        }
        p.push_lines(&bytes.as_bytes()[cut..], cut as u64, true);
        for it in p.take_items() {
            for t in it.turns {
                last.insert(t.source_turn_id.clone(), t);
            }
        }
        let tail: Vec<_> = last.into_values().collect();
        assert_eq!(tail, item.turns, "cut after line {}", line + 1);
    }
}

/// Fields that changed type (a new agent version) read as absent; the line still counts.
#[test]
fn claude_fields_of_unexpected_types_are_ignored_not_fatal() {
    let lines = [
        r#"{"type":"user","uuid":"x1","sessionId":"s","timestamp":123,"isMeta":"no","isSidechain":null,"message":{"role":"user","content":"hi","id":7}}"#,
        r#"{"type":"assistant","uuid":"x2","parentUuid":["x1"],"sessionId":"s","timestamp":"2026-01-01T00:00:01Z","message":{"id":"m","model":{"n":1},"content":[1,"t",{"type":"text","text":"ok"},{"type":"tool_use","id":"tu","name":null,"input":"raw"}],"usage":{"input_tokens":-5,"output_tokens":1.5,"cache_read_input_tokens":"9"}}}"#,
        r#"{"type":"user","uuid":"x3","sessionId":"s","message":{"content":[{"type":"tool_result","tool_use_id":"tu","content":{"odd":true},"is_error":"yes"}]},"toolUseResult":[1]}"#,
        r#"{"type":"progress","uuid":"x4","data":"not an object","parentToolUseID":5}"#,
        r#"{"type":["weird"],"uuid":"x5"}"#,
    ];
    let bytes = lines.join("\n") + "\n";
    let file = source(Provider::ClaudeCode, "s.jsonl", FileRole::Main);
    let mut p = parser_for(&file);
    p.push_lines(bytes.as_bytes(), 0, true);
    let items = p.take_items();
    assert_eq!(p.stats().malformed_lines, 0);
    assert_eq!(
        skipped(p.as_ref()),
        vec![(s("progress"), 1), (s("unknown"), 1)]
    );
    let item = &items[0];
    assert_eq!(
        messages(item),
        vec![
            (s("x1"), s("x1"), s("user"), o("hi"), None, 0),
            (s("x2"), s("x1"), s("assistant"), o("ok"), None, 1),
            (s("x3"), s("x1"), s("tool"), None, None, 2),
        ]
    );
    assert_eq!(
        turns(item)[0].5,
        [Some(0), Some(0), Some(0), Some(0), None, Some(0)]
    );
    assert_eq!(
        tools(item),
        vec![(
            s("tu"),
            s("x1"),
            o("x2"),
            s("unknown"),
            s("completed"),
            None,
            None
        )]
    );
    assert_eq!(
        item.tool_calls[0]
            .params_json
            .clone()
            .map(serde_json::Value::from),
        Some(serde_json::json!("raw"))
    );
    assert_eq!(item.session.created_at_ms, Some(1_767_225_601_000));
}

const S6: &str = "ffffffff-0000-4000-8000-000000000006";

/// SOURCES.md "Real-world variants" (Claude Code): what opens a turn, which usage counts, and
/// the model of turns that have no reply of their own.
#[test]
fn claude_real_world_prompt_usage_and_model_rules() {
    let file = source(
        Provider::ClaudeCode,
        &format!("claude-code/prompts/{S6}.jsonl"),
        FileRole::Main,
    );
    let (items, _) = parse_all(&file);
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item.session.model.as_deref(), Some("claude-sonnet-4-5"));
    // Not prompts: the caveat (it opens the leading turn, whose prompt is the slash command
    // after it, timed before it), local command output, shell mode, the interrupt markers, the transcript-only
    // record, the compaction summary and boundary, the task notice. Prompts: the slash command,
    // the typed texts and the image-only message.
    // Models: m0 came before any model and takes the item's first (opus); g1 has only a
    // `<synthetic>` reply and keeps the model in effect before it (opus, not the session's
    // last); its response is that local line. Usage: msg_1's last line (no requestId) counts once: 5+30+100+10; msg_2's two
    // requestIds are one response: its last line counts (4+12+200); `<synthetic>` counts none.
    let opus = o("claude-opus-4-6");
    let none = [None; 6];
    assert_eq!(
        turns(item),
        vec![
            (
                s("m0"),
                None,
                cc(60, 0),
                Some(cc(60, 4)),
                opus.clone(),
                none,
                None,
                vec![s("c1")]
            ),
            (
                s("u1"),
                o("m0"),
                cc(61, 0),
                Some(cc(61, 7)),
                opus.clone(),
                [Some(5), Some(30), Some(100), Some(10), None, Some(145)],
                o("a3"),
                vec![s("u1")]
            ),
            (
                s("g1"),
                o("u1"),
                cc(62, 0),
                Some(cc(62, 5)),
                opus.clone(),
                none,
                o("s1"),
                vec![s("g1")]
            ),
            (
                s("u2"),
                o("g1"),
                cc(63, 0),
                Some(cc(63, 3)),
                o("claude-sonnet-4-5"),
                [Some(4), Some(12), Some(200), Some(0), None, Some(216)],
                o("a5"),
                vec![s("u2")]
            ),
        ]
    );
    let roles: Vec<(String, String, String)> = messages(item)
        .into_iter()
        .map(|m| (m.0, m.1, m.2))
        .collect();
    let row = |id: &str, turn: &str, role: &str| (s(id), s(turn), s(role));
    assert_eq!(
        roles,
        vec![
            row("m0", "m0", "user"),
            row("c1", "m0", "user"),
            row("c2", "m0", "user"),
            row("b1", "m0", "user"),
            row("b2", "m0", "user"),
            row("u1", "u1", "user"),
            row("a1", "u1", "assistant"),
            row("a2", "u1", "assistant"),
            row("r1", "u1", "tool"),
            row("i1", "u1", "user"),
            row("a3", "u1", "assistant"),
            row("g1", "g1", "user"),
            row("s1", "g1", "assistant"),
            row("v1", "g1", "user"),
            row("sb1", "g1", "system"),
            row("cs1", "g1", "system"),
            row("tn1", "g1", "user"),
            row("u2", "u2", "user"),
            row("a4", "u2", "assistant"),
            row("a5", "u2", "assistant"),
            row("i2", "u2", "user"),
        ]
    );
    assert_eq!(
        tools(item),
        vec![
            (
                s("toolu_1"),
                s("u1"),
                o("a2"),
                s("Bash"),
                s("failed"),
                Some(cc(61, 5)),
                None
            ),
            (
                s("toolu_2"),
                s("u2"),
                o("a4"),
                s("Bash"),
                s("pending"),
                None,
                None
            ),
        ]
    );
}

/// A turn opened before the item's first model is re-sent once that model is known, so a tail
/// that imported it early ends with the rows of one full import.
#[test]
fn claude_turn_without_a_model_yet_is_resent_when_the_first_model_arrives() {
    let file = source(
        Provider::ClaudeCode,
        &format!("claude-code/prompts/{S6}.jsonl"),
        FileRole::Main,
    );
    let bytes = std::fs::read(&file.path).unwrap();
    let ends = line_ends(&bytes);
    let mut p = parser_for(&file);
    // Up to the first prompt (line 6): no model anywhere yet.
    p.push_lines(&bytes[..ends[5]], 0, true);
    let early = p.take_items();
    assert!(early[0].turns.iter().all(|t| t.model.is_none()));
    assert_eq!(early[0].session.model, None);
    // The first assistant line names the model: the closed leading turns come back with it.
    p.push_lines(&bytes[ends[5]..ends[6]], ends[5] as u64, true);
    let later = p.take_items();
    let models: Vec<(String, Option<String>)> = later[0]
        .turns
        .iter()
        .map(|t| (t.source_turn_id.clone(), t.model.clone()))
        .collect();
    let opus = o("claude-opus-4-6");
    assert_eq!(
        models,
        vec![(s("m0"), opus.clone()), (s("u1"), opus.clone())]
    );
    // Sent once: a later line re-sends only the open turn.
    p.push_lines(&bytes[ends[6]..ends[7]], ends[6] as u64, true);
    let next = p.take_items();
    assert_eq!(
        next[0]
            .turns
            .iter()
            .map(|t| t.source_turn_id.clone())
            .collect::<Vec<_>>(),
        vec![s("u1")]
    );
}

/// A file holding only a `summary` line, or nothing importable, creates no session.
#[test]
fn claude_summary_only_and_empty_files_create_no_session() {
    for name in [
        "99999999-0000-4000-8000-000000000009",
        "99999999-0000-4000-8000-00000000000a",
    ] {
        let file = source(
            Provider::ClaudeCode,
            &format!("claude-code/empty/{name}.jsonl"),
            FileRole::Main,
        );
        let bytes = std::fs::read(&file.path).unwrap();
        let mut p = parser_for(&file);
        for (n, end) in line_ends(&bytes).iter().enumerate() {
            let start = if n == 0 { 0 } else { line_ends(&bytes)[n - 1] };
            p.push_lines(&bytes[start..*end], start as u64, true);
            assert!(p.take_items().is_empty(), "{name} after line {}", n + 1);
        }
        assert_eq!(p.stats().malformed_lines, 0);
    }
}

/// A 1.0.x resumed file: a summary, then a copy of the earlier conversation (its first prompt
/// keeps the old `sessionId`, the copied replies were rewritten with the new one) that repeats
/// `message.id` lines, then the new prompt. One session (the file's), the origin named, and each
/// response's usage counted once: msg_C1 with its last line's usage, though it appears again in
/// the next turn.
#[test]
fn claude_resumed_1_0_copy_counts_each_response_once() {
    let sid = "eeeeeeee-0000-4000-8000-00000000000e";
    let (items, _) = parse_all(&source(
        Provider::ClaudeCode,
        &format!("claude-code/resumed-1.0/{sid}.jsonl"),
        FileRole::Main,
    ));
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item.source_session_id, sid);
    assert_eq!(
        item.session.metadata,
        Some(serde_json::json!({"version": "1.0.89", "gitBranch": "main",
                                "title": "Disk and memory checks",
                                "resumedFromSessionId": "dddddddd-1111-4000-8000-00000000000d"}))
    );
    let base = 1_777_705_200_000; // 2026-05-02T07:00:00Z
    let opus = o("claude-opus-4-1-20250805");
    assert_eq!(
        turns(item),
        vec![
            (
                s("c-u1"),
                None,
                base + 3_600_000,
                Some(base + 7_200_000),
                opus.clone(),
                [Some(3), Some(20), Some(10), Some(0), None, Some(33)],
                o("c-a2"),
                vec![s("c-u1")]
            ),
            (
                s("n-u1"),
                o("c-u1"),
                base + 7_205_000,
                Some(base + 7_207_000),
                opus,
                [Some(5), Some(9), Some(40), Some(2), None, Some(56)],
                o("n-a1"),
                vec![s("n-u1")]
            ),
        ]
    );
}

// ---- lines several files hold (resumed 1.0.x chains) -------------------------------------

const CHAIN_A: &str = "aaaaaaaa-1111-4000-8000-00000000000a";
const CHAIN_B: &str = "bbbbbbbb-2222-4000-8000-00000000000b";
const CHAIN_C: &str = "cccccccc-3333-4000-8000-00000000000c";

/// The items of the `resumed-chain` files parsed in `order`, through one copy index (as a run
/// makes them), by session id; with the stats' `copy` count of each.
fn chain_items(order: &[&str]) -> BTreeMap<String, (ImportSessionItem, u64)> {
    let index = std::sync::Arc::new(nex::aix::claude_copies::CopyIndex::default());
    let mut out = BTreeMap::new();
    for sid in order {
        let file = source(
            Provider::ClaudeCode,
            &format!("claude-code/resumed-chain/{sid}.jsonl"),
            FileRole::Main,
        );
        let mut p = nex::aix::sources::parser_with_copies(&file, Some(index.clone()));
        p.push_lines(&std::fs::read(&file.path).unwrap(), 0, true);
        let items = p.take_items();
        assert_eq!(items.len(), 1, "{sid}");
        let copies = p.stats().skipped_records.get("copy").copied().unwrap_or(0);
        out.insert(sid.to_string(), (items[0].clone(), copies));
    }
    out
}

/// A resumed chain (B resumed from A, C from B; each starts with a copy of the conversation
/// so far, same uuids, rewritten session ids and times; B's first copied line and one of C's
/// keep their origin's id and time): each line counts in the earliest file only, whatever order
/// the files are read in. A keeps everything, B and C only their own turn; the resumed files
/// name their origin.
#[test]
fn claude_resumed_chain_counts_each_line_in_one_session_only() {
    let sonnet = o("claude-sonnet-4-20250514");
    let at = |h: i64, m: i64, s: i64| 1_777_802_400_000 + ((h - 10) * 3600 + m * 60 + s) * 1000;
    for order in [
        [CHAIN_A, CHAIN_B, CHAIN_C],
        [CHAIN_C, CHAIN_B, CHAIN_A],
        [CHAIN_B, CHAIN_C, CHAIN_A],
    ] {
        let items = chain_items(&order);
        let (a, a_copies) = &items[CHAIN_A];
        let (b, b_copies) = &items[CHAIN_B];
        let (c, c_copies) = &items[CHAIN_C];
        assert_eq!((*a_copies, *b_copies, *c_copies), (0, 6, 9), "{order:?}");
        assert!(!a.copies_elsewhere && b.copies_elsewhere && c.copies_elsewhere);
        assert_eq!(
            turns(a),
            vec![
                (
                    s("a-u1"),
                    None,
                    at(10, 0, 0),
                    Some(at(10, 0, 8)),
                    sonnet.clone(),
                    [Some(6), Some(42), Some(230), Some(25), None, Some(303)],
                    o("a-a2"),
                    vec![s("a-u1")]
                ),
                (
                    s("a-u3"),
                    o("a-u1"),
                    at(10, 1, 0),
                    Some(at(10, 1, 3)),
                    sonnet.clone(),
                    [Some(3), Some(8), Some(150), Some(0), None, Some(161)],
                    o("a-a3"),
                    vec![s("a-u3")]
                ),
            ],
            "{order:?}"
        );
        assert_eq!(a.messages.len(), 6);
        assert_eq!(a.tool_calls.len(), 1);
        // B: its prompt's parent is a line A owns; msg_B1 counts once, with its last line's
        // usage.
        assert_eq!(
            turns(b),
            vec![(
                s("b-u1"),
                None,
                at(11, 0, 10),
                Some(at(11, 0, 15)),
                sonnet.clone(),
                [Some(5), Some(14), Some(160), Some(9), None, Some(188)],
                o("b-a2"),
                vec![s("b-u1")]
            )],
            "{order:?}"
        );
        assert_eq!(
            messages(b).iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
            ["b-u1", "b-a1", "b-a2"]
        );
        assert!(b.tool_calls.is_empty());
        assert_eq!(
            b.session.metadata.as_ref().unwrap()["resumedFromSessionId"],
            CHAIN_A
        );
        assert_eq!(b.session.created_at_ms, Some(at(11, 0, 10)));
        assert_eq!(
            turns(c),
            vec![(
                s("c-u1"),
                None,
                at(12, 0, 20),
                Some(at(12, 0, 23)),
                sonnet.clone(),
                [Some(6), Some(9), Some(170), Some(3), None, Some(188)],
                o("c-a1"),
                vec![s("c-u1")]
            )],
            "{order:?}"
        );
        assert_eq!(c.messages.len(), 2);
    }
    // Without the index (a parser alone) every line is the file's own, as before version 5.
    let (alone, _) = parse_all(&source(
        Provider::ClaudeCode,
        &format!("claude-code/resumed-chain/{CHAIN_C}.jsonl"),
        FileRole::Main,
    ));
    assert_eq!(alone[0].messages.len(), 11);
    assert!(!alone[0].copies_elsewhere);
}

/// 2.1.x: a prompt typed while the agent worked is handed to it mid-turn as an `attachment`
/// `queued_command` (`commandMode: "prompt"`): a prompt opening its turn, read as the user line
/// it stands for (text, or blocks with an image), marked `queued`. The same kind of line in
/// `task-notification` mode (a background task's notice), the other attachments, the
/// `queue-operation`, `mode` and `last-prompt` records are not prompts.
#[test]
fn claude_a_prompt_queued_while_the_agent_worked_opens_its_turn() {
    const QS: &str = "ffffffff-0000-4000-8000-000000000071";
    const Q0: i64 = 1_780_718_160_000; // 2026-06-06T03:56:00Z
    let q = |sec: i64, ms: i64| Q0 + sec * 1000 + ms;
    let file = source(
        Provider::ClaudeCode,
        &format!("claude-code/queued/{QS}.jsonl"),
        FileRole::Main,
    );
    let (items, p) = parse_all(&file);
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item.source_session_id, QS);
    let opus = o("claude-opus-4-7");
    assert_eq!(
        turns(item),
        vec![
            (
                s("q1"),
                None,
                q(39, 500),
                Some(q(43, 0)),
                opus.clone(),
                [Some(6), Some(40), Some(1000), Some(200), None, Some(1246)],
                None,
                vec![s("q1")]
            ),
            (
                s("qc1"),
                o("q1"),
                q(45, 0),
                Some(q(50, 0)),
                opus.clone(),
                [Some(3), Some(25), Some(1200), Some(50), None, Some(1278)],
                o("a2"),
                vec![s("qc1")]
            ),
            (
                s("qc3"),
                o("qc1"),
                q(70, 0),
                Some(q(72, 0)),
                opus.clone(),
                [Some(2), Some(10), Some(1300), Some(0), None, Some(1312)],
                o("a3"),
                vec![s("qc3")]
            ),
        ]
    );
    assert_eq!(
        messages(item)
            .into_iter()
            .map(|m| (m.0, m.1, m.2, m.3))
            .collect::<Vec<_>>(),
        vec![
            (s("q1"), s("q1"), s("user"), o("Rename the shop module.")),
            (s("a1"), s("q1"), s("assistant"), None),
            (s("r1"), s("q1"), s("tool"), None),
            (
                s("qc1"),
                s("qc1"),
                s("user"),
                o("Keep the old name as an alias.")
            ),
            (
                s("a2"),
                s("qc1"),
                s("assistant"),
                o("Renamed; the old name stays as an alias.")
            ),
            (s("qc3"), s("qc3"), s("user"), o("Also this screen:")),
            (
                s("a3"),
                s("qc3"),
                s("assistant"),
                o("The screen shows the new name.")
            ),
        ]
    );
    let queued: Vec<&str> = item
        .messages
        .iter()
        .filter(|m| {
            m.metadata_json
                .as_ref()
                .is_some_and(|v| v["queued"] == serde_json::json!(true))
        })
        .map(|m| m.source_message_id.as_str())
        .collect();
    assert_eq!(queued, ["qc1", "qc3"]);
    assert_eq!(
        tools(item),
        vec![(
            s("toolu_q1"),
            s("q1"),
            o("a1"),
            s("Bash"),
            s("completed"),
            Some(q(43, 0)),
            None
        )]
    );
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("attachment"), 2),
            (s("last-prompt"), 1),
            (s("mode"), 2),
            (s("queue-operation"), 3)
        ]
    );
}

/// 2.1.81-2.1.87: a prompt typed while the agent worked is logged only by the input queue's
/// `queue-operation` lines: `remove` hands the first queued prompt to the agent mid-turn (a
/// background task's notice stays queued until a `dequeue`, which the `user` line of the notice
/// follows), `popAll` takes queued prompts back to be edited (never sent). The `remove` stands
/// for the prompt's `user` line, `queue-<hash>`, opening its turn. 2.1.97 also writes the
/// `queued_command` attachment after the `remove`: the same prompt, one turn.
#[test]
fn claude_a_prompt_logged_only_by_the_input_queue_opens_its_turn() {
    const QS: &str = "ffffffff-0000-4000-8000-000000000081";
    const T0: i64 = 1_775_697_600_000; // 2026-04-09T01:20:00Z
    let t = |sec: i64, ms: i64| T0 + sec * 1000 + ms;
    let file = source(
        Provider::ClaudeCode,
        &format!("claude-code/queue-ops/{QS}.jsonl"),
        FileRole::Main,
    );
    let (items, p) = parse_all(&file);
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let (alias, crate_only) = (
        s("queue-29de4a24c1a0a64152fad1591b932e7e"),
        s("queue-a136110bb12b3a05ef2feb2660c54d74"),
    );
    let opus = o("claude-opus-4-6");
    assert_eq!(
        turns(item),
        vec![
            (
                s("k1"),
                None,
                t(0, 20),
                Some(t(9, 0)),
                opus.clone(),
                [Some(5), Some(20), Some(100), Some(0), None, Some(125)],
                None,
                vec![s("k1")]
            ),
            (
                alias.clone(),
                o("k1"),
                t(9, 50),
                Some(t(18, 0)),
                opus.clone(),
                [Some(5), Some(23), Some(200), Some(0), None, Some(228)],
                o("k6"),
                vec![alias.clone()]
            ),
            (
                s("k7"),
                Some(alias.clone()),
                t(60, 0),
                Some(t(65, 0)),
                opus.clone(),
                [Some(4), Some(12), Some(100), Some(0), None, Some(116)],
                None,
                vec![s("k7")]
            ),
            (
                crate_only.clone(),
                o("k7"),
                t(65, 100),
                Some(t(68, 0)),
                opus.clone(),
                [Some(3), Some(9), Some(100), Some(0), None, Some(112)],
                o("k11"),
                vec![crate_only.clone()]
            ),
        ]
    );
    assert_eq!(
        messages(item)
            .into_iter()
            .map(|m| (m.0, m.1, m.2))
            .collect::<Vec<_>>(),
        [
            ("k1", "k1", "user"),
            ("k2", "k1", "assistant"),
            ("k3", "k1", "tool"),
            (alias.as_str(), alias.as_str(), "user"),
            ("k4", alias.as_str(), "assistant"),
            ("k5", alias.as_str(), "user"),
            ("k6", alias.as_str(), "assistant"),
            ("k7", "k7", "user"),
            ("k8", "k7", "assistant"),
            ("k9", "k7", "tool"),
            (crate_only.as_str(), crate_only.as_str(), "user"),
            ("k11", crate_only.as_str(), "assistant"),
        ]
        .map(|(a, b, c)| (s(a), s(b), s(c)))
    );
    let queued: Vec<(&str, Option<&str>)> = item
        .messages
        .iter()
        .filter(|m| {
            m.metadata_json
                .as_ref()
                .is_some_and(|v| v["queued"] == serde_json::json!(true))
        })
        .map(|m| (m.source_message_id.as_str(), m.content.as_deref()))
        .collect();
    assert_eq!(
        queued,
        [
            (alias.as_str(), Some("Keep the old name as an alias.")),
            (crate_only.as_str(), Some("Only the shop crate.")),
        ]
    );
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("attachment/queued_command_delivered"), 1),
            (s("queue-operation"), 8)
        ]
    );
}
