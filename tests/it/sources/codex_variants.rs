//! Codex: one fixture per real-world variant (SOURCES.md "Real-world variants" > Codex), exact
//! items each: old pre-envelope rollouts, per-request contexts without turn ids, duplicate token
//! events and a resume, `/review` in the parent and the review's own rollout, a 0.118+ spawned
//! subagent that replays its parent, every kind of tool call.

use super::*;

fn codex(rel: &str) -> (Vec<ImportSessionItem>, Box<dyn SessionParser>) {
    parse_all(&source(
        Provider::Codex,
        &format!("codex/{rel}"),
        FileRole::Main,
    ))
}

/// Milliseconds of an RFC 3339 UTC timestamp, for readable expectations.
pub(super) fn at(ts: &str) -> i64 {
    let t = ts.trim_end_matches('Z');
    let (date, time) = t.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, ms) = time.split_once('.').unwrap_or((time, "0"));
    let h: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + h[0]) * 60 + h[1]) * 60_000 + h[2] * 1000 + ms.parse::<i64>().unwrap()
}

/// The ledger's token columns of a turn; `input` is uncached (Codex's input minus `cached`).
fn tokens(input: i64, output: i64, cached: i64, reasoning: i64, total: i64) -> [Option<i64>; 6] {
    [
        Some(input),
        Some(output),
        Some(cached),
        None,
        Some(reasoning),
        Some(total),
    ]
}

const NO_TOKENS: [Option<i64>; 6] = [None; 6];

/// The 2025 format: bare header, bare items, `record_type` lines; injected user items are not
/// prompts; the workspace comes from `<environment_context>`; no token usage.
#[test]
fn codex_old_pre_envelope_rollout() {
    let (items, p) =
        codex("old/rollout-2025-08-30T11-00-00-0198f000-0000-4000-8000-000000000010.jsonl");
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let ts = at("2025-08-30T11:00:00.000Z");
    assert_eq!(
        item.source_session_id,
        "0198f000-0000-4000-8000-000000000010"
    );
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        serde_json::json!({
            "createdAtMs": ts, "updatedAtMs": ts, "provider": "openai",
            "workspacePath": "/work/old", "metadata": {"gitBranch": "main"}
        })
    );
    assert_eq!(
        turns(item),
        vec![
            (
                s("L7"),
                None,
                ts,
                Some(ts),
                None,
                NO_TOKENS,
                o("L12"),
                vec![s("L7")]
            ),
            (
                s("L14"),
                o("L7"),
                ts,
                Some(ts),
                None,
                NO_TOKENS,
                None,
                vec![s("L14")]
            ),
        ]
    );
    assert_eq!(
        messages(item),
        vec![
            (
                s("L7"),
                s("L7"),
                s("user"),
                o("List the files here."),
                None,
                6
            ),
            (s("L8"), s("L7"), s("assistant"), None, o("Run ls."), 7),
            (
                s("L12"),
                s("L7"),
                s("assistant"),
                o("Two files: a.txt and b.txt."),
                None,
                11
            ),
            (
                s("L14"),
                s("L14"),
                s("user"),
                o("And their sizes?"),
                None,
                13
            ),
        ]
    );
    assert_eq!(
        tools(item),
        vec![
            (
                s("call_old1"),
                s("L7"),
                None,
                s("shell"),
                s("completed"),
                Some(ts),
                None
            ),
            (
                s("call_old2"),
                s("L14"),
                None,
                s("shell"),
                s("pending"),
                None,
                None
            ),
        ]
    );
    assert_eq!(
        item.tool_calls[0]
            .params_json
            .clone()
            .map(serde_json::Value::from),
        Some(serde_json::json!({"command": ["ls"]}))
    );
    assert_eq!((p.stats().lines, p.stats().malformed_lines), (16, 0));
    assert_eq!(
        skipped(p.as_ref()),
        vec![(s("record_type"), 6), (s("response_item/message:user"), 2)]
    );
}

/// An old rollout with only its header, state lines and injected context makes no session.
#[test]
fn codex_old_rollout_without_prompt_or_reply_makes_no_session() {
    let (items, p) =
        codex("old-empty/rollout-2025-08-30T12-00-00-0198f000-0000-4000-8000-000000000011.jsonl");
    assert!(items.is_empty());
    assert_eq!(p.stats().lines, 4);
}

/// 0.4x: a `turn_context` without turn id per model request is not a turn; every token event is
/// written twice (counted once), `info: null` carries no usage, the total restarts after a
/// resume; web search, MCP, local shell and custom tool calls.
#[test]
fn codex_per_request_contexts_duplicate_tokens_and_resume() {
    let (items, p) =
        codex("per-request/rollout-2025-09-26T14-00-00-01998000-0000-7000-8000-000000000020.jsonl");
    let item = &items[0];
    let t = |s: &str| at(&format!("2025-09-26T14:0{s}Z"));
    assert_eq!(item.session.model.as_deref(), Some("gpt-5"));
    assert_eq!(item.session.workspace_path.as_deref(), Some("/work/pr"));
    assert_eq!(
        turns(item),
        vec![
            (
                s("L4"),
                None,
                t("0:01.000"),
                Some(t("0:06.000")),
                o("gpt-5-codex"),
                tokens(5500, 170, 9000, 40, 14670),
                o("L18"),
                vec![s("L4")]
            ),
            (
                s("L23"),
                o("L4"),
                t("1:00.000"),
                Some(t("1:05.000")),
                o("gpt-5-codex"),
                tokens(1500, 50, 5000, 10, 6550),
                o("L31"),
                vec![s("L23")]
            ),
            (
                s("L33"),
                o("L23"),
                t("9:01.000"),
                Some(t("9:03.000")),
                o("gpt-5"),
                tokens(3000, 30, 0, 0, 3030),
                o("L37"),
                vec![s("L33")]
            ),
        ]
    );
    let prompts: Vec<_> = messages(item)
        .into_iter()
        .filter(|m| m.2 == "user")
        .map(|m| (m.0, m.3))
        .collect();
    assert_eq!(
        prompts,
        vec![
            (s("L4"), o("Fix the failing test.")),
            (s("L23"), o("Now search the docs for the API.")),
            (s("L33"), o("Thanks. Commit it.")),
        ]
    );
    assert_eq!(
        tools(item),
        vec![
            (
                // `cargo test` exited 101: the command failed.
                s("call_pr1"),
                s("L4"),
                None,
                s("shell"),
                s("failed"),
                Some(t("0:04.000")),
                None
            ),
            (
                s("call_pr2"),
                s("L4"),
                None,
                s("apply_patch"),
                s("completed"),
                Some(t("0:05.500")),
                None
            ),
            (
                s("L25"),
                s("L23"),
                None,
                s("web_search"),
                s("completed"),
                Some(t("1:01.000")),
                None
            ),
            (
                s("call_pr3"),
                s("L23"),
                None,
                s("docs__search"),
                s("completed"),
                Some(t("1:03.000")),
                None
            ),
            (
                s("call_pr4"),
                s("L23"),
                None,
                s("local_shell"),
                s("completed"),
                Some(t("1:04.000")),
                None
            ),
        ]
    );
    assert_eq!(
        item.tool_calls[2]
            .params_json
            .clone()
            .map(serde_json::Value::from),
        Some(serde_json::json!({"type": "search", "query": "crate api docs"}))
    );
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("response_item/message:user"), 3),
            (s("session_meta"), 1),
            (s("visible_pair_duplicate"), 1)
        ]
    );
}

const REVIEW_PARENT: &str = "019c7400-0000-7000-8000-000000000050";
const REVIEW_CHILD: &str = "019c74ac-b57f-7000-8000-000000000051";
const REVIEW_TURN: &str = "019c74ac-b586-7000-8000-000000000052";

/// `/review` in the parent: its prompt written twice in a row is one prompt, its own counter
/// is interleaved (not counted here: the review's rollout counts it, so its tokens are counted
/// once), and the parent's total re-emitted afterwards adds nothing.
#[test]
fn codex_review_in_the_parent() {
    let (items, p) = codex(&format!(
        "review/rollout-2026-02-19T15-00-00-{REVIEW_PARENT}.jsonl"
    ));
    let item = &items[0];
    let t = |s: &str| at(&format!("2026-02-19T06:{s}Z"));
    let (t1, t2) = (
        "019c7401-0000-7000-8000-000000000053",
        "019c74af-0000-7000-8000-000000000054",
    );
    assert!(!item.session.is_subagent);
    assert_eq!(
        turns(item),
        vec![
            (
                s(t1),
                None,
                t("00:01.000"),
                Some(t("00:05.100")),
                o("gpt-5.3-codex"),
                tokens(12000, 500, 9000, 100, 21500),
                o("L16"),
                vec![s("L7")]
            ),
            (
                s(REVIEW_TURN),
                o(t1),
                t("53:21.010"),
                Some(t("53:51.400")),
                o("gpt-5.3-codex"),
                // The review's own counter is its rollout's: none here.
                [None, None, None, None, None, None],
                o("L28"),
                vec![s("L22")]
            ),
            (
                s(t2),
                o(REVIEW_TURN),
                t("56:16.100"),
                Some(t("56:19.100")),
                o("gpt-5.3-codex"),
                tokens(3000, 200, 6000, 20, 9200),
                o("L42"),
                vec![s("L36")]
            ),
        ]
    );
    assert_eq!(
        messages(item)
            .into_iter()
            .map(|m| (m.0, m.2, m.3))
            .collect::<Vec<_>>(),
        vec![
            (s("L7"), s("user"), o("Write the parser.")),
            (
                s("L16"),
                s("assistant"),
                o("Parser written in src/parser.rs.")
            ),
            (s("L22"), s("user"), o("src/parser.rs")),
            (s("L28"), s("assistant"), o("Review: no issues found.")),
            (s("L36"), s("user"), o("Apply the review.")),
            (s("L42"), s("assistant"), o("Applied.")),
        ]
    );
    assert_eq!(
        tools(item)
            .into_iter()
            .map(|c| (c.0, c.1, c.3, c.4))
            .collect::<Vec<_>>(),
        vec![
            (s("call_rv1"), s(t1), s("exec_command"), s("completed")),
            (s("call_rv2"), s(t2), s("apply_patch"), s("completed")),
        ]
    );
    assert_eq!(p.stats().skipped_records.get("repeated_prompt"), Some(&1));
}

/// The review's own rollout (`source.subagent: "review"`) is a subagent session; its turn
/// carries the Codex turn id the parent's review turn has.
#[test]
fn codex_review_subagent_rollout() {
    let (items, _) = codex(&format!(
        "review/rollout-2026-02-19T15-53-21-{REVIEW_CHILD}.jsonl"
    ));
    let item = &items[0];
    let t = |s: &str| at(&format!("2026-02-19T06:{s}Z"));
    assert_eq!(item.source_session_id, REVIEW_CHILD);
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        serde_json::json!({
            "createdAtMs": t("53:21.005"), "updatedAtMs": t("53:51.100"),
            "model": "gpt-5.3-codex", "provider": "openai", "workspacePath": "/work/rv",
            "isSubagent": true,
            "metadata": {"cliVersion": "0.104.0", "gitBranch": "main", "modelProvider": "openai",
                         "originator": "codex_cli_rs", "subagent": "review"}
        })
    );
    assert_eq!(
        turns(item),
        vec![(
            s(REVIEW_TURN),
            None,
            t("53:21.010"),
            Some(t("53:51.100")),
            o("gpt-5.3-codex"),
            tokens(8000, 400, 4000, 50, 12400),
            o("L15"),
            vec![s("L7")]
        )]
    );
    assert_eq!(
        tools(item),
        vec![(
            s("call_rc1"),
            s(REVIEW_TURN),
            None,
            s("exec_command"),
            s("completed"),
            Some(t("53:23.100")),
            None
        )]
    );
}

/// 0.118+: the child's `session_meta`, the parent's, the parent's history replayed (its token
/// totals included), then the child's own first turn (`task_started` with a turn id not older
/// than the child's id).
#[test]
fn codex_spawned_subagent_skips_the_parents_replay() {
    let child = "019d0005-0000-7000-8000-000000000040";
    let (items, p) = codex(&format!(
        "spawned/rollout-2026-04-01T10-05-00-{child}.jsonl"
    ));
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let t = |s: &str| at(&format!("2026-04-01T10:{s}Z"));
    assert_eq!(item.source_session_id, child);
    assert_eq!(
        serde_json::to_value(&item.session).unwrap(),
        serde_json::json!({
            "createdAtMs": t("05:00.000"), "updatedAtMs": t("05:03.100"),
            "model": "gpt-5.4-mini", "provider": "openai", "workspacePath": "/work/rv",
            "isSubagent": true, "parentSourceSessionId": "019d0000-0000-7000-8000-000000000030",
            "metadata": {"agentNickname": "Noether", "agentRole": "explorer",
                         "cliVersion": "0.118.0", "gitBranch": "main", "modelProvider": "openai",
                         "originator": "codex_cli_rs"}
        })
    );
    assert_eq!(
        turns(item),
        vec![(
            s("019d0005-0001-7000-8000-000000000041"),
            None,
            t("05:00.100"),
            Some(t("05:03.100")),
            o("gpt-5.4-mini"),
            tokens(0, 100, 7000, 0, 7100),
            o("L21"),
            vec![s("L14")]
        )]
    );
    assert_eq!(
        messages(item)
            .into_iter()
            .map(|m| (m.0, m.2, m.3))
            .collect::<Vec<_>>(),
        vec![
            (s("L14"), s("user"), o("List the modules.")),
            (s("L21"), s("assistant"), o("Two modules: lib and main.")),
        ]
    );
    assert_eq!(
        tools(item).into_iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![s("call_ch1")]
    );
    assert_eq!(p.stats().skipped_records.get("replayed"), Some(&10));
}

/// The independent count of `codex_real` agrees with the parser on every Codex fixture too (it
/// is checked here on files whose figures the tests above state by hand).
#[test]
fn codex_fixtures_match_the_independent_count() {
    for file in all_fixtures()
        .into_iter()
        .chain(no_session_fixtures())
        .filter(|f| f.provider == Provider::Codex)
    {
        let bytes = std::fs::read(&file.path).unwrap();
        assert_eq!(
            codex_real::expected(&bytes),
            codex_real::parsed(&file, &bytes),
            "{}",
            file.path.display()
        );
    }
}

/// With the run's review index (`aix::codex_reviews`) the review's rollout names the session
/// that started it (the parent's `task_started` after `entered_review_mode` carries the review's
/// first turn id), whichever file is read first; the parent file alone does not change, and the
/// parent learnt from the other file moves the review item's fingerprint.
#[test]
fn codex_review_rollout_links_to_the_session_that_started_it() {
    let parent = source(
        Provider::Codex,
        &format!("codex/review/rollout-2026-02-19T15-00-00-{REVIEW_PARENT}.jsonl"),
        FileRole::Main,
    );
    let child = source(
        Provider::Codex,
        &format!("codex/review/rollout-2026-02-19T15-53-21-{REVIEW_CHILD}.jsonl"),
        FileRole::Main,
    );
    let (alone, _) = parse_all(&child);
    for child_first in [true, false] {
        let index = std::sync::Arc::new(nex::aix::codex_reviews::ReviewIndex::default());
        let parse = |f: &SourceFile| {
            let mut p = nex::aix::sources::parser_with_indexes(f, None, Some(index.clone()));
            p.push_lines(&std::fs::read(&f.path).unwrap(), 0, true);
            (p.take_items(), p.copies_digest())
        };
        let order = if child_first {
            [&child, &parent]
        } else {
            [&parent, &child]
        };
        let mut got = std::collections::HashMap::new();
        for f in order {
            got.insert(f.path.clone(), parse(f));
        }
        let (child_items, digest) = &got[&child.path];
        let review = &child_items[0].session;
        assert!(review.is_subagent);
        assert_eq!(
            review.parent_source_session_id.as_deref(),
            Some(REVIEW_PARENT)
        );
        assert_eq!(
            digest.as_deref(),
            Some(REVIEW_PARENT),
            "the cursor records it"
        );
        assert_ne!(
            child_items[0].source_session_fingerprint,
            alone[0].source_session_fingerprint
        );
        assert_eq!(turns(&child_items[0]), turns(&alone[0]));
        let (parent_items, parent_digest) = &got[&parent.path];
        assert_eq!(parent_items[0].session.parent_source_session_id, None);
        assert_eq!(*parent_digest, None);
    }
}

/// 0.15x rollouts write no `user_message`: a prompt is an `item_completed` event of a
/// `UserMessage` item (after its `response_item` model-input copy), a reply the completed
/// `AgentMessage` item (before the model's copy, its pair), and `world_state` and
/// `thread_settings_applied` records carry nothing the mapping reads.
#[test]
fn codex_prompts_written_as_completed_user_message_items() {
    let (items, p) =
        codex("items/rollout-2026-09-02T09-59-58-01a06421-0000-7000-8000-000000000152.jsonl");
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let (t1, t2) = (
        "01a06421-0001-7000-8000-000000000001",
        "01a06421-0002-7000-8000-000000000002",
    );
    let t = |s: &str| at(&format!("2026-09-02T10:{s}Z"));
    assert_eq!(
        turns(item),
        vec![
            (
                s(t1),
                None,
                t("00:00.700"),
                Some(t("00:10.300")),
                o("gpt-5.5-codex"),
                tokens(2000, 40, 3000, 8, 5040),
                o("L11"),
                vec![s("L8")]
            ),
            (
                s(t2),
                o(t1),
                t("01:00.300"),
                Some(t("01:05.200")),
                o("gpt-5.5-codex"),
                // 200 of its input were cache writes (`cache_write_input_tokens`, 0.15x).
                [
                    Some(300),
                    Some(10),
                    Some(1500),
                    Some(200),
                    Some(0),
                    Some(2010)
                ],
                o("L19"),
                vec![s("L18")]
            ),
        ]
    );
    let roles: Vec<(String, String, Option<String>)> = messages(item)
        .into_iter()
        .map(|m| (m.0, m.2, m.3))
        .collect();
    assert_eq!(
        roles,
        vec![
            (s("L8"), s("user"), o("Run the unit tests.")),
            (s("L11"), s("assistant"), o("Two tests fail.")),
            (s("L18"), s("user"), o("Fix them.")),
            (s("L19"), s("assistant"), o("Fixed.")),
        ]
    );
    // `exec_command` exited 101.
    let calls: Vec<_> = item
        .tool_calls
        .iter()
        .map(|c| (c.source_tool_call_id.as_str(), c.status.as_deref()))
        .collect();
    assert_eq!(calls, [("call_i1", Some("failed"))]);
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("event_msg/thread_settings_applied"), 1),
            (s("response_item/message:developer"), 1),
            (s("response_item/message:user"), 3),
            (s("visible_pair_duplicate"), 1),
            (s("world_state"), 1),
        ]
    );
}

/// A build writing a prompt both ways, `user_message` then `item_completed` on the very next
/// record (or the other way round), has one prompt: the second is counted as repeated.
#[test]
fn codex_a_prompt_written_as_both_events_is_one_prompt() {
    let meta = r#"{"timestamp":"2026-09-02T10:00:00.000Z","type":"session_meta","payload":{"id":"01a06421-0000-7000-8000-0000000001b0","cwd":"/w","cli_version":"0.140.0"}}"#;
    let said = r#"{"timestamp":"2026-09-02T10:00:01.000Z","type":"event_msg","payload":{"type":"user_message","message":"Go."}}"#;
    let item = r#"{"timestamp":"2026-09-02T10:00:01.001Z","type":"event_msg","payload":{"type":"item_completed","item":{"type":"UserMessage","content":[{"type":"text","text":"Go."}]}}}"#;
    let reply = r#"{"timestamp":"2026-09-02T10:00:02.000Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Done."}]}}"#;
    for order in [[said, item], [item, said]] {
        let bytes = [meta, order[0], order[1], reply].join("\n") + "\n";
        let file = source(Provider::Codex, "rollout.jsonl", FileRole::Main);
        let mut p = parser_for(&file);
        p.push_lines(bytes.as_bytes(), 0, true);
        let items = p.take_items();
        let prompts: Vec<_> = items[0]
            .turns
            .iter()
            .map(|t| t.query_message_source_ids.clone())
            .collect();
        assert_eq!(prompts, vec![vec![s("L2")]]);
        assert_eq!(skipped(p.as_ref()), vec![(s("repeated_prompt"), 1)]);
    }
}

/// A build writing a reply both ways, `agent_message` then a completed `AgentMessage` item on
/// the very next record (or the other way round), has one reply: the second is counted as
/// repeated, and the model's copy after them is the pair of the first.
#[test]
fn codex_a_reply_written_as_both_events_is_one_reply() {
    let meta = r#"{"timestamp":"2026-09-02T10:00:00.000Z","type":"session_meta","payload":{"id":"01a06421-0000-7000-8000-0000000001b1","cwd":"/w","cli_version":"0.140.0"}}"#;
    let prompt = r#"{"timestamp":"2026-09-02T10:00:01.000Z","type":"event_msg","payload":{"type":"user_message","message":"Go."}}"#;
    let said = r#"{"timestamp":"2026-09-02T10:00:02.000Z","type":"event_msg","payload":{"type":"agent_message","message":"Done."}}"#;
    let item = r#"{"timestamp":"2026-09-02T10:00:02.001Z","type":"event_msg","payload":{"type":"item_completed","item":{"type":"AgentMessage","content":[{"type":"Text","text":"Done."}]}}}"#;
    let copy = r#"{"timestamp":"2026-09-02T10:00:02.002Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Done."}]}}"#;
    for order in [[said, item], [item, said]] {
        let bytes = [meta, prompt, order[0], order[1], copy].join("\n") + "\n";
        let file = source(Provider::Codex, "rollout.jsonl", FileRole::Main);
        let mut p = parser_for(&file);
        p.push_lines(bytes.as_bytes(), 0, true);
        let items = p.take_items();
        let rows: Vec<_> = messages(&items[0])
            .into_iter()
            .map(|m| (m.0, m.2, m.3))
            .collect();
        assert_eq!(
            rows,
            vec![
                (s("L2"), s("user"), o("Go.")),
                (s("L3"), s("assistant"), o("Done.")),
            ]
        );
        assert_eq!(
            skipped(p.as_ref()),
            vec![(s("repeated_reply"), 1), (s("visible_pair_duplicate"), 1)]
        );
    }
}

const PAGED_ROOT: &str = "01a1b000-0000-7000-8000-000000000160";
const PAGED_SUB: &str = "01a1b001-0000-7000-8000-000000000161";

/// A paginated 0.160 rollout (`history_mode: "paginated"`, an `ordinal` on every record):
/// prompts and replies are completed `UserMessage` and `AgentMessage` items (the reply keeps
/// its `memory_citation`; the model's copy is its pair), a v2 spawn is a completed
/// `SubAgentActivity` item, every other completed item repeats a `response_item` and the new
/// records (`token_usage_record`, `retained_context`, …) are counted, never read twice.
#[test]
fn codex_paginated_rollout() {
    let (items, p) = codex(&format!(
        "paginated/rollout-2026-10-05T09-00-00-{PAGED_ROOT}.jsonl"
    ));
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let (t1, t2) = (
        "01a1b000-0001-7000-8000-000000000001",
        "01a1b000-0002-7000-8000-000000000002",
    );
    let t = |x: &str| at(&format!("2026-10-05T09:{x}Z"));
    assert_eq!(
        turns(item),
        vec![
            (
                s(t1),
                None,
                t("00:00.700"),
                Some(t("00:20.400")),
                o("gpt-6-codex"),
                tokens(2000, 50, 1000, 10, 3050),
                o("L17"),
                vec![s("L8")]
            ),
            (
                s(t2),
                o(t1),
                t("01:00.300"),
                Some(t("01:10.400")),
                o("gpt-6-codex"),
                tokens(1500, 30, 500, 0, 2030),
                o("L41"),
                vec![s("L26")]
            ),
        ]
    );
    let rows: Vec<_> = messages(item)
        .into_iter()
        .map(|m| (m.0, m.2, m.3, m.4))
        .collect();
    assert_eq!(
        rows,
        vec![
            (s("L8"), s("user"), o("Check the parser."), None),
            (
                s("L9"),
                s("assistant"),
                None,
                o("Reading the parser first.")
            ),
            (
                s("L17"),
                s("assistant"),
                o("The parser passes; the tokenizer is being checked."),
                None
            ),
            (
                s("L26"),
                s("user"),
                o("Look up the spec and patch it."),
                None
            ),
            (
                s("L36"),
                s("system"),
                o("Checked the parser, patched the spec reader."),
                None
            ),
            (s("L41"), s("assistant"), o("Patched."), None),
        ]
    );
    assert_eq!(
        item.messages[2].metadata_json,
        Some(serde_json::json!({"memoryCitation": {
            "entries": [{"path": "MEMORY.md", "lineStart": 2, "lineEnd": 2,
                         "note": "parser lives in src/parse"}],
            "rolloutIds": ["01a1a000-0000-7000-8000-000000000150"],
        }}))
    );
    let calls: Vec<_> = tools(item)
        .into_iter()
        .map(|c| (c.0, c.3, c.4, c.6))
        .collect();
    assert_eq!(
        calls,
        vec![
            (s("call_p1"), s("exec_command"), s("completed"), None),
            (s("call_p2"), s("spawn_agent"), s("completed"), o(PAGED_SUB)),
            (s("ws_1"), s("web_search"), s("completed"), None),
            (s("call_p3"), s("docs__lookup"), s("completed"), None),
            (s("call_p4"), s("apply_patch"), s("completed"), None),
        ]
    );
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("event_msg/item_completed:CommandExecution"), 1),
            (s("event_msg/item_completed:ContextCompaction"), 1),
            (s("event_msg/item_completed:FileChange"), 1),
            (s("event_msg/item_completed:McpToolCall"), 1),
            (s("event_msg/item_completed:Reasoning"), 1),
            (s("event_msg/item_completed:WebSearch"), 1),
            (s("event_msg/thread_settings_applied"), 1),
            (s("inter_agent_communication"), 1),
            (s("realtime_item"), 1),
            (s("response_item/message:developer"), 1),
            (s("response_item/message:user"), 3),
            (s("retained_context"), 1),
            (s("security_risk_score"), 1),
            (s("token_usage_record"), 2),
            (s("visible_pair_duplicate"), 2),
            (s("world_state"), 1),
        ]
    );
}

/// A paginated subagent names its first own record (`subagent_history_start_ordinal`): the
/// records before it are its parent's history, written with fresh timestamps (so the
/// timestamp rule would keep them), and are skipped as `replayed`.
#[test]
fn codex_paginated_subagent_skips_the_records_before_its_start_ordinal() {
    let (items, p) = codex(&format!(
        "paginated/rollout-2026-10-05T09-00-10-{PAGED_SUB}.jsonl"
    ));
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert!(item.session.is_subagent);
    assert_eq!(
        item.session.parent_source_session_id.as_deref(),
        Some(PAGED_ROOT)
    );
    let ts = "01a1b001-0001-7000-8000-000000000003";
    assert_eq!(
        turns(item),
        vec![(
            s(ts),
            None,
            at("2026-10-05T09:00:10.330Z"),
            Some(at("2026-10-05T09:00:18.400Z")),
            o("gpt-6-codex-mini"),
            tokens(1000, 40, 3000, 5, 4040),
            o("L12"),
            vec![s("L9")]
        )]
    );
    let rows: Vec<_> = messages(item)
        .into_iter()
        .map(|m| (m.0, m.2, m.3))
        .collect();
    assert_eq!(
        rows,
        vec![
            (s("L9"), s("user"), o("Check the tokenizer.")),
            (s("L12"), s("assistant"), o("Tokenizer checked.")),
        ]
    );
    assert_eq!(
        tools(item).into_iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![s("call_c1")]
    );
    assert_eq!(
        skipped(p.as_ref()),
        vec![
            (s("inter_agent_communication_metadata"), 1),
            (s("replayed"), 4),
            (s("token_usage_record"), 1),
            (s("visible_pair_duplicate"), 1),
        ]
    );
}
