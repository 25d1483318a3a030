//! Source parsers: exact items for every mapping rule, incremental = full, bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nex::aix::sources::{
    FileRole, Provider, SessionParser, SourceFile, SubagentMeta, fill_spawn_link, parser_for,
};
use nex::protocol::ImportSessionItem;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn source(provider: Provider, rel: &str, role: FileRole) -> SourceFile {
    SourceFile {
        provider,
        path: fixture(rel),
        role,
    }
}

fn parse_all(file: &SourceFile) -> (Vec<ImportSessionItem>, Box<dyn SessionParser>) {
    let bytes = std::fs::read(&file.path).expect("fixture readable");
    let mut p = parser_for(file);
    p.push_lines(&bytes, 0, true);
    let items = p.take_items();
    (items, p)
}

type TurnRow = (
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    [Option<i64>; 6],
    Option<String>,
    Vec<String>,
);
type MsgRow = (String, String, String, Option<String>, Option<String>, i64);
type ToolRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    Option<i64>,
    Option<String>,
);

fn turns(item: &ImportSessionItem) -> Vec<TurnRow> {
    item.turns
        .iter()
        .map(|t| {
            (
                t.source_turn_id.clone(),
                t.parent_source_turn_id.clone(),
                t.started_at_ms,
                t.completed_at_ms,
                t.model.clone(),
                [
                    t.input_tokens,
                    t.output_tokens,
                    t.cached_input_tokens,
                    t.cache_write_tokens,
                    t.reasoning_tokens,
                    t.total_tokens,
                ],
                t.response_message_source_id.clone(),
                t.query_message_source_ids.clone(),
            )
        })
        .collect()
}

fn messages(item: &ImportSessionItem) -> Vec<MsgRow> {
    item.messages
        .iter()
        .map(|m| {
            (
                m.source_message_id.clone(),
                m.source_turn_id.clone().unwrap_or_default(),
                m.role.clone(),
                m.content.clone(),
                m.thinking.clone(),
                m.sequence,
            )
        })
        .collect()
}

fn tools(item: &ImportSessionItem) -> Vec<ToolRow> {
    item.tool_calls
        .iter()
        .map(|c| {
            (
                c.source_tool_call_id.clone(),
                c.source_turn_id.clone().unwrap_or_default(),
                c.source_message_id.clone(),
                c.tool_name.clone(),
                c.status.clone().unwrap_or_default(),
                c.completed_at_ms,
                c.spawned_source_session_id.clone(),
            )
        })
        .collect()
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn o(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Milliseconds of `2026-03-10T09:mm:ss.000Z` and friends, spelled as offsets from a base.
const CC_BASE: i64 = 1_773_133_200_000; // 2026-03-10T09:00:00Z

fn cc(min: i64, sec: i64) -> i64 {
    CC_BASE + (min * 60 + sec) * 1000
}

fn skipped(p: &dyn SessionParser) -> Vec<(String, u64)> {
    p.stats()
        .skipped_records
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

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
            (s("r2"), s("u1"), s("tool"), o("fn b() {}"), None, 8),
            (s("r1"), s("u1"), s("tool"), o("permission denied"), None, 9),
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
            (
                s("r3"),
                s("u2"),
                s("tool"),
                o("Found 3 tests.\nagentId: c0ffee1"),
                None,
                16
            ),
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
        read2.params_json,
        Some(serde_json::json!({"file_path": "/work/demo/b.rs"}))
    );
    assert_eq!(
        read2.result_json,
        Some(serde_json::json!({"content": "fn b() {}",
            "toolUseResult": {"type": "text", "file": {"filePath": "/work/demo/b.rs", "numLines": 1}}}))
    );
    assert_eq!((read2.started_at_ms, read2.sequence), (cc(0, 5), 6));
    assert_eq!(p.stats().lines, 27);
    assert_eq!(p.stats().malformed_lines, 1);
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("file-history-snapshot"), 1),
            (s("future-record"), 1),
            (s("progress"), 3),
            (s("queue-operation"), 1),
            (s("system/turn_duration"), 1),
        ]
    );
    let links = p.spawn_links();
    assert_eq!(links.len(), 1);
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
            (s("s-r1"), s("s-u1"), s("tool"), o("src/x.rs"), None, 4),
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

/// The documented chain: `fp_0 = H("")`, `fp_n = H(fp_{n-1} || line_n)`.
fn chain(lines: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut state: [u8; 32] = Sha256::digest(b"").into();
    for l in lines {
        let mut h = Sha256::new();
        h.update(state);
        h.update(l);
        state = h.finalize().into();
    }
    format!(
        "{:x}",
        sha2::digest::generic_array::GenericArray::from(state)
    )
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

#[test]
fn claude_flat_subagent_file_gets_lineage_from_the_parent_links() {
    let parent_sid = "cccccccc-0000-4000-8000-000000000003";
    let (parent_items, parent) = parse_all(&source(
        Provider::ClaudeCode,
        &format!("claude-code/flat/{parent_sid}.jsonl"),
        FileRole::Main,
    ));
    assert_eq!(
        tools(&parent_items[0]),
        vec![(
            s("toolu_flat"),
            s("fm1"),
            o("fma1"),
            s("Task"),
            s("completed"),
            Some(1_759_305_620_000),
            Some(format!("{parent_sid}/agent-f1a7001"))
        )]
    );
    let role = FileRole::Subagent {
        agent_id: s("f1a7001"),
        parent_session_id: None,
        meta: None,
    };
    let (mut items, child) = parse_all(&source(
        Provider::ClaudeCode,
        "claude-code/flat/agent-f1a7001.jsonl",
        role,
    ));
    assert_eq!(items.len(), 1);
    let item = &mut items[0];
    assert_eq!(
        item.source_session_id,
        format!("{parent_sid}/agent-f1a7001")
    );
    assert!(item.session.is_subagent);
    assert_eq!(
        item.session.parent_source_session_id.as_deref(),
        Some(parent_sid)
    );
    assert_eq!(item.session.spawn_tool_call_id, None);
    assert!(child.spawn_links().is_empty());
    // The runtime fills what the child's own file does not say.
    let links = parent.spawn_links();
    fill_spawn_link(&mut item.session, &links["f1a7001"]);
    assert_eq!(
        item.session.spawn_tool_call_id.as_deref(),
        Some("toolu_flat")
    );
    assert_eq!(
        item.session.task_description.as_deref(),
        Some("Summarise changelog")
    );
    assert_eq!(item.session.task_status.as_deref(), Some("completed"));
    assert_eq!(
        messages(item),
        vec![
            (
                s("fc1"),
                s("fc1"),
                s("user"),
                o("Read CHANGELOG.md and summarise it."),
                None,
                0
            ),
            (
                s("fca1"),
                s("fc1"),
                s("assistant"),
                o("Three releases, all bug fixes."),
                None,
                1
            ),
        ]
    );
    assert_eq!(item.session.model.as_deref(), Some("claude-haiku-4-5"));
}

#[test]
fn claude_subagents_dir_with_meta_and_agent_progress() {
    let sid = "dddddddd-0000-4000-8000-000000000004";
    let (parent_items, parent) = parse_all(&source(
        Provider::ClaudeCode,
        &format!("claude-code/nested/{sid}.jsonl"),
        FileRole::Main,
    ));
    // No result yet: the spawn is known from `agent_progress` alone.
    assert_eq!(
        tools(&parent_items[0]),
        vec![(
            s("toolu_nest"),
            s("nm1"),
            o("nma1"),
            s("Agent"),
            s("pending"),
            None,
            Some(format!("{sid}/agent-a5b6c7d"))
        )]
    );
    assert_eq!(
        parent.spawn_links()["a5b6c7d"],
        nex::aix::sources::SpawnLink {
            tool_use_id: s("toolu_nest"),
            description: o("Typo hunt"),
            status: None,
        }
    );
    let meta_bytes = std::fs::read(fixture(&format!(
        "claude-code/nested/{sid}/subagents/agent-a5b6c7d.meta.json"
    )))
    .unwrap();
    let meta = SubagentMeta::from_json(&meta_bytes).expect("meta parses");
    assert_eq!(
        meta,
        SubagentMeta {
            tool_use_id: o("toolu_nest"),
            description: o("Typo hunt")
        }
    );
    let role = FileRole::Subagent {
        agent_id: s("a5b6c7d"),
        parent_session_id: o(sid),
        meta: Some(meta),
    };
    let (items, _) = parse_all(&source(
        Provider::ClaudeCode,
        &format!("claude-code/nested/{sid}/subagents/agent-a5b6c7d.jsonl"),
        role,
    ));
    let item = &items[0];
    assert_eq!(item.source_session_id, format!("{sid}/agent-a5b6c7d"));
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        serde_json::json!({
            "createdAtMs": 1_775_131_202_000_i64, "updatedAtMs": 1_775_131_206_000_i64,
            "model": "claude-haiku-4-5", "provider": "anthropic", "workspacePath": "/work/demo",
            "isSubagent": true, "parentSourceSessionId": sid, "spawnToolCallId": "toolu_nest",
            "taskDescription": "Typo hunt", "metadata": {"version": "2.1.40", "gitBranch": "main"}
        })
    );
    // msg_NC1 spans two lines (output 3 then 21): counted once, with 21.
    assert_eq!(
        turns(item),
        vec![(
            s("nc1"),
            None,
            1_775_131_202_000,
            Some(1_775_131_206_000),
            o("claude-haiku-4-5"),
            [Some(5), Some(30), Some(50), Some(0), None, Some(85)],
            o("nca3"),
            vec![s("nc1")]
        )]
    );
    assert_eq!(
        item.messages[1].metadata_json,
        Some(
            serde_json::json!({"messageId": "msg_NC1", "requestId": "req_NC1",
                                "isSidechain": true, "agentId": "a5b6c7d"})
        )
    );
    assert_eq!(SubagentMeta::from_json(b"[1]"), None);
    assert_eq!(
        SubagentMeta::from_json(b"{\"toolUseId\": \" \"}"),
        Some(SubagentMeta::default())
    );
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

const CX_A: &str = "0199aaaa-0000-7000-8000-000000000001";
const CX_B: &str = "0199bbbb-0000-7000-8000-000000000002";
const CX_BASE: i64 = 1_772_359_200_000; // 2026-03-01T10:00:00Z

fn cx(min: i64, sec: i64) -> i64 {
    CX_BASE + (min * 60 + sec) * 1000
}

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
    // t-1: one token total, then the same total re-emitted (adds nothing); t-2: the delta.
    assert_eq!(
        turns(item),
        vec![
            (
                s("t-1"),
                None,
                cx(0, 1),
                Some(cx(0, 12)),
                o("gpt-5-codex"),
                [Some(1000), Some(50), Some(200), None, Some(10), Some(1050)],
                o("L17"),
                vec![s("L7")]
            ),
            (
                s("t-2"),
                o("t-1"),
                cx(1, 0),
                Some(cx(1, 8)),
                o("gpt-5.1-codex"),
                [Some(500), Some(30), Some(100), None, Some(0), Some(530)],
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
        .map(|c| c.params_json.clone())
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
        item.tool_calls[0].result_json,
        Some(serde_json::json!("src/lib.rs:1"))
    );
    assert_eq!(
        item.tool_calls[3].result_json,
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
    // Tokens are the delta over the replayed parent total (1580 -> 1795), not the total.
    assert_eq!(
        turns(item),
        vec![(
            s("L5"),
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
                s("L5"),
                s("user"),
                o("Check the docs mention parse()."),
                None,
                5
            ),
            (
                s("L7"),
                s("L5"),
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
    // Prompt before the context (turn L6), context before the prompt (turn L10); the context
    // re-written after compaction stays in L10; the last total went down: a fresh start.
    assert_eq!(
        turns(item),
        vec![
            (
                s("L6"),
                None,
                base + 1000,
                Some(base + 3000),
                o("gpt-5-codex"),
                [Some(400), Some(40), Some(400), None, Some(10), Some(440)],
                o("L8"),
                vec![s("L6")]
            ),
            (
                s("L10"),
                o("L6"),
                base + 4000,
                Some(base + 6000),
                o("gpt-5-codex"),
                [Some(900), Some(30), Some(100), None, Some(0), Some(930)],
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
                s("L10"),
                s("user"),
                o("Shorter, please."),
                None,
                10
            ),
            (
                s("L12"),
                s("L10"),
                s("system"),
                o("Summary: table-driven parse test."),
                None,
                11
            ),
            (
                s("L14"),
                s("L10"),
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
