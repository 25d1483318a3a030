//! Codex mapping 6, exact items of each fixture (our text in the structure of real rollouts):
//! a reply citing memories is one message, spawning calls name the session they spawned
//! (0.104's `agent_id` output, multi-agent v2's `sub_agent_activity`), messages between agents
//! (a child's task is its prompt, a report joins the parent's turn), a guardian is a subagent,
//! and a `tool_search_output` is its call's result.

use serde_json::{Value, json};

use super::codex_variants::at;
use super::*;

fn codex(rel: &str) -> (Vec<ImportSessionItem>, Box<dyn SessionParser>) {
    parse_all(&source(
        Provider::Codex,
        &format!("codex/{rel}"),
        FileRole::Main,
    ))
}

fn the_item(rel: &str) -> ImportSessionItem {
    let (mut items, _) = codex(rel);
    assert_eq!(items.len(), 1, "{rel}");
    items.remove(0)
}

fn value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

const MEMORY: &str = "019e2000-0000-7000-8000-000000000060";
const SPAWN_PARENT: &str = "019c8000-0000-7000-8000-000000000070";
const SPAWN_CHILD: &str = "019c8001-0000-7000-8000-000000000071";
const V2_PARENT: &str = "019f4000-0000-7000-8000-000000000080";
const V2_CHILD: &str = "019f4001-0000-7000-8000-000000000081";
const GUARDIAN: &str = "019dd700-0000-7000-8000-000000000090";

/// The fixtures of this module, for the lists the cut tests iterate over.
pub(super) fn agent_fixtures() -> Vec<SourceFile> {
    [
        format!("memory/rollout-2026-05-13T16-00-00-{MEMORY}.jsonl"),
        format!("spawn-agent-id/rollout-2026-02-22T13-20-00-{SPAWN_PARENT}.jsonl"),
        format!("spawn-agent-id/rollout-2026-02-22T13-20-01-{SPAWN_CHILD}.jsonl"),
        format!("multi-agent/rollout-2026-07-11T10-22-00-{V2_PARENT}.jsonl"),
        format!("multi-agent/rollout-2026-07-11T10-22-02-{V2_CHILD}.jsonl"),
        format!("guardian/rollout-2026-04-29T14-41-00-{GUARDIAN}.jsonl"),
    ]
    .iter()
    .map(|rel| source(Provider::Codex, &format!("codex/{rel}"), FileRole::Main))
    .collect()
}

/// 0.126+: the `agent_message` event has the reply and `memory_citation`; the model's copy
/// right after it is the same text with an `<oai-mem-citation>` block appended. One message:
/// the event's clean text, the entries in its metadata.
#[test]
fn codex_a_reply_citing_memories_is_one_message() {
    let item = the_item(&format!(
        "memory/rollout-2026-05-13T16-00-00-{MEMORY}.jsonl"
    ));
    let turn = "019e2000-0001-7000-8000-000000000062";
    let t = |s: &str| at(&format!("2026-05-13T16:00:{s}Z"));
    assert_eq!(
        value(&item.messages),
        json!([
            {"sourceMessageId": "L5", "sourceTurnId": turn, "role": "user",
             "content": "Which port does the dev server use?", "sequence": 4,
             "createdAtMs": t("00.100")},
            {"sourceMessageId": "L6", "sourceTurnId": turn, "role": "assistant",
             "content": "Checking my notes.", "sequence": 5, "createdAtMs": t("02.000")},
            {"sourceMessageId": "L8", "sourceTurnId": turn, "role": "assistant",
             "content": "Port 8080, as your notes say.\n\n", "sequence": 7,
             "createdAtMs": t("03.000"),
             "metadataJson": {"memoryCitation": {
                 "entries": [{"path": "MEMORY.md", "lineStart": 3, "lineEnd": 4,
                              "note": "dev server port"}],
                 "rolloutIds": ["019e1000-0000-7000-8000-000000000061"]}}}
        ])
    );
    assert_eq!(
        turns(&item),
        vec![(
            s(turn),
            None,
            t("00.100"),
            Some(t("03.200")),
            o("gpt-5.5"),
            [Some(4000), Some(50), Some(1000), None, Some(10), Some(5050)],
            o("L8"),
            vec![s("L5")]
        )]
    );
}

/// 0.104: `spawn_agent` `{agent_type, message}` answered by `{agent_id}`, the child's session
/// id, with no collab event; the child's file names only its parent.
#[test]
fn codex_a_spawn_agent_output_names_the_session_it_spawned() {
    let parent = the_item(&format!(
        "spawn-agent-id/rollout-2026-02-22T13-20-00-{SPAWN_PARENT}.jsonl"
    ));
    let t = |s: &str| at(&format!("2026-02-22T13:20:{s}Z"));
    assert_eq!(
        value(&parent.tool_calls),
        json!([{
            "sourceToolCallId": "call_w1", "sourceTurnId": "019c8000-0001-7000-8000-000000000072",
            "toolName": "spawn_agent",
            "paramsJson": {"agent_type": "worker", "message": "Review the popup."},
            "resultJson": format!("{{\"agent_id\": \"{SPAWN_CHILD}\"}}"),
            "status": "completed", "spawnedSourceSessionId": SPAWN_CHILD,
            "startedAtMs": t("01.000"), "completedAtMs": t("01.500"), "sequence": 5
        }])
    );
    let child = the_item(&format!(
        "spawn-agent-id/rollout-2026-02-22T13-20-01-{SPAWN_CHILD}.jsonl"
    ));
    assert_eq!(
        value(&child.session),
        json!({
            "createdAtMs": t("01.200"), "updatedAtMs": t("03.200"), "model": "gpt-5.3-codex",
            "provider": "openai", "workspacePath": "/work/ext", "isSubagent": true,
            "parentSourceSessionId": SPAWN_PARENT,
            "metadata": {"cliVersion": "0.104.0", "gitBranch": "main",
                         "modelProvider": "openai", "originator": "codex_cli_rs"}
        })
    );
}

/// Multi-agent v2 (0.144): `spawn_agent` `{fork_turns, message, task_name}` is answered by
/// `{task_name}` only; the `sub_agent_activity` (`started`) written between call and output
/// names the thread. A child's report (`agent_message` to `/root`, after
/// `inter_agent_communication_metadata`) joins the open turn as a `user` message naming its
/// sender.
#[test]
fn codex_multi_agent_parent_links_its_spawn_and_keeps_the_report() {
    let item = the_item(&format!(
        "multi-agent/rollout-2026-07-11T10-22-00-{V2_PARENT}.jsonl"
    ));
    let turn = "019f4000-0001-7000-8000-000000000082";
    let t = |s: &str| at(&format!("2026-07-11T02:22:{s}Z"));
    assert_eq!(
        value(&item.tool_calls[0]),
        json!({
            "sourceToolCallId": "call_v2a", "sourceTurnId": turn, "toolName": "spawn_agent",
            "paramsJson": {"fork_turns": "all", "message": "Find every timer.",
                           "task_name": "timer_audit"},
            "resultJson": "{\"task_name\": \"/root/timer_audit\"}",
            "status": "completed", "spawnedSourceSessionId": V2_CHILD,
            "startedAtMs": t("02.000"), "completedAtMs": t("02.600"), "sequence": 9
        })
    );
    assert_eq!(item.tool_calls.len(), 2);
    assert_eq!(
        value(&item.messages),
        json!([
            {"sourceMessageId": "L6", "sourceTurnId": turn, "role": "user",
             "content": "Audit the timers with a helper.", "sequence": 5,
             "createdAtMs": t("00.100")},
            {"sourceMessageId": "L7", "sourceTurnId": turn, "role": "assistant",
             "content": "Starting a helper.", "sequence": 6, "createdAtMs": t("01.000")},
            {"sourceMessageId": "L17", "sourceTurnId": turn, "role": "user",
             "content": "Message Type: FINAL_ANSWER\nTask name: /root\nSender: /root/timer_audit\nPayload:\nThree timers, all cleared.",
             "sequence": 16, "createdAtMs": t("30.000"),
             "metadataJson": {"author": "/root/timer_audit", "recipient": "/root"}},
            {"sourceMessageId": "L18", "sourceTurnId": turn, "role": "assistant",
             "content": "The helper found three timers.", "sequence": 17,
             "createdAtMs": t("31.000")}
        ])
    );
    assert_eq!(
        turns(&item),
        vec![(
            s(turn),
            None,
            t("00.100"),
            Some(t("31.200")),
            o("gpt-5.5"),
            [
                Some(17000),
                Some(190),
                Some(16000),
                None,
                Some(20),
                Some(33190)
            ],
            o("L18"),
            vec![s("L6")]
        )]
    );
}

/// A `tool_search_call` (0.14x) is answered by a `tool_search_output` with the same
/// `call_id`: the tools it found are the call's result.
#[test]
fn codex_a_tool_search_output_is_the_calls_result() {
    let item = the_item(&format!(
        "multi-agent/rollout-2026-07-11T10-22-00-{V2_PARENT}.jsonl"
    ));
    let t = |s: &str| at(&format!("2026-07-11T02:22:{s}Z"));
    assert_eq!(
        value(&item.tool_calls[1]),
        json!({
            "sourceToolCallId": "call_ts1", "sourceTurnId": "019f4000-0001-7000-8000-000000000082",
            "toolName": "tool_search", "paramsJson": {"query": "timer tools", "limit": 5},
            "resultJson": [{"type": "namespace", "name": "timers", "description": "Timer tools.",
                            "tools": [{"type": "function", "name": "list_timers",
                                       "description": "Lists timers.", "strict": false,
                                       "parameters": {"type": "object", "properties": {}}}]}],
            "status": "completed", "startedAtMs": t("03.000"), "completedAtMs": t("03.100"),
            "sequence": 13
        })
    );
}

/// The v2 child: its file replays the parent's history; its own turn starts with the task the
/// parent sent (`agent_message` to its `agent_path`), which is the turn's prompt.
#[test]
fn codex_multi_agent_child_takes_its_task_as_its_prompt() {
    let item = the_item(&format!(
        "multi-agent/rollout-2026-07-11T10-22-02-{V2_CHILD}.jsonl"
    ));
    let turn = "019f4001-0001-7000-8000-000000000083";
    let t = |s: &str| at(&format!("2026-07-11T02:22:{s}Z"));
    assert_eq!(
        value(&item.session),
        json!({
            "createdAtMs": t("02.300"), "updatedAtMs": t("29.200"), "model": "gpt-5.5-mini",
            "provider": "openai", "workspacePath": "/work/game", "isSubagent": true,
            "parentSourceSessionId": V2_PARENT,
            "metadata": {"agentPath": "/root/timer_audit", "cliVersion": "0.144.0-alpha.4",
                         "forkedFromId": V2_PARENT, "gitBranch": "main",
                         "modelProvider": "openai", "originator": "codex_cli_rs"}
        })
    );
    assert_eq!(
        turns(&item),
        vec![(
            s(turn),
            None,
            t("02.500"),
            Some(t("29.200")),
            o("gpt-5.5-mini"),
            [
                Some(4000),
                Some(90),
                Some(13000),
                None,
                Some(10),
                Some(17090)
            ],
            o("L21"),
            vec![s("L17")]
        )]
    );
    assert_eq!(
        value(&item.messages),
        json!([
            {"sourceMessageId": "L17", "sourceTurnId": turn, "role": "user",
             "content": "Message Type: NEW_TASK\nTask name: /root/timer_audit\nSender: /root\nPayload:\n",
             "sequence": 16, "createdAtMs": t("02.500"),
             "metadataJson": {"author": "/root", "recipient": "/root/timer_audit"}},
            {"sourceMessageId": "L21", "sourceTurnId": turn, "role": "assistant",
             "content": "Three timers, all cleared.", "sequence": 20,
             "createdAtMs": t("29.000")}
        ])
    );
}

/// Which messages between agents open a turn: one addressed to the session's own agent path
/// by another agent (its parent, a sibling) is a task, a prompt; a report from one of its own
/// subagents (a path below its own) joins the open turn, as does any message in a session
/// that is no spawned agent.
#[test]
fn codex_only_a_task_handed_to_the_session_opens_a_turn() {
    let meta = r#"{"timestamp":"2026-07-11T02:00:00.000Z","type":"session_meta","payload":{"id":"019f4002-0000-7000-8000-0000000000a0","cwd":"/w","cli_version":"0.144.0","source":{"subagent":{"thread_spawn":{"parent_thread_id":"019f4000-0000-7000-8000-000000000080","depth":1,"agent_path":"/root/a"}}}}}"#;
    let said = |n: u32, author: &str, recipient: &str| {
        format!(
            r#"{{"timestamp":"2026-07-11T02:00:0{n}.000Z","type":"response_item","payload":{{"type":"agent_message","author":"{author}","recipient":"{recipient}","content":[{{"type":"input_text","text":"Note {n}."}}]}}}}"#
        )
    };
    let lines = [
        meta.to_owned(),
        said(1, "/root", "/root/a"),
        said(2, "/root/a/b", "/root/a"),
        said(3, "/root/ab", "/root/a"),
        said(4, "/root", "/root/c"),
    ];
    let bytes = lines.join("\n") + "\n";
    let file = source(Provider::Codex, "rollout.jsonl", FileRole::Main);
    let mut p = parser_for(&file);
    p.push_lines(bytes.as_bytes(), 0, true);
    let items = p.take_items();
    let prompts: Vec<_> = items[0]
        .turns
        .iter()
        .map(|t| (t.source_turn_id.clone(), t.query_message_source_ids.clone()))
        .collect();
    assert_eq!(
        prompts,
        vec![(s("L2"), vec![s("L2")]), (s("L4"), vec![s("L4")])]
    );
    let rows: Vec<_> = messages(&items[0])
        .into_iter()
        .map(|m| (m.0, m.1, m.2))
        .collect();
    assert_eq!(
        rows,
        vec![
            (s("L2"), s("L2"), s("user")),
            (s("L3"), s("L2"), s("user")),
            (s("L4"), s("L4"), s("user")),
            (s("L5"), s("L4"), s("user")),
        ]
    );
}

/// 0.126: `source.subagent` `{other: "guardian"}` names no parent; the session is a subagent
/// all the same (its parent unknown), labelled with its kind.
#[test]
fn codex_a_guardian_is_a_subagent_without_a_parent() {
    let item = the_item(&format!(
        "guardian/rollout-2026-04-29T14-41-00-{GUARDIAN}.jsonl"
    ));
    let t = |s: &str| at(&format!("2026-04-29T06:41:{s}Z"));
    assert_eq!(
        value(&item.session),
        json!({
            "createdAtMs": t("00.000"), "updatedAtMs": t("01.200"), "model": "gpt-5.4-mini",
            "provider": "openai", "workspacePath": "/work/gov", "isSubagent": true,
            "metadata": {"cliVersion": "0.126.0-alpha.8", "modelProvider": "openai",
                         "originator": "codex_cli_rs", "subagent": "guardian"}
        })
    );
    assert_eq!(
        turns(&item)
            .into_iter()
            .map(|t| (t.0, t.7))
            .collect::<Vec<_>>(),
        vec![(s("019dd700-0001-7000-8000-000000000091"), vec![s("L4")])]
    );
}
