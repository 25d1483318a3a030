//! Claude Code subagents: flat and `<session>/subagents/` files, lineage, roles from paths.

use super::*;

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
    // The runtime fills what the child's own file does not say; when it learns the link after
    // the child's last line, it asks the child's parser to re-send its header.
    let mut child = child;
    assert!(child.take_items().is_empty());
    child.resend_header();
    let resent = child.take_items();
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].turns.len(), 1, "the open turn rides along");
    assert_eq!(
        resent[0].source_session_fingerprint,
        item.source_session_fingerprint
    );
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
fn claude_roles_from_paths() {
    let role = |p: &str| FileRole::claude_code_for(Path::new(p));
    let sub = |agent: &str, parent: Option<&str>| {
        Some(FileRole::Subagent {
            agent_id: s(agent),
            parent_session_id: parent.map(str::to_owned),
            meta: None,
        })
    };
    assert_eq!(role("/p/-x/5e1.jsonl"), Some(FileRole::Main));
    assert_eq!(role("/p/-x/agent-f1a7001.jsonl"), sub("f1a7001", None));
    assert_eq!(
        role("/p/-x/5e1/subagents/agent-a5b.jsonl"),
        sub("a5b", Some("5e1"))
    );
    assert_eq!(
        role("/p/-x/5e1/subagents/workflows/run7/agent-w1.jsonl"),
        sub("w1", Some("5e1"))
    );
    assert_eq!(
        role("/p/-x/5e1/subagents/workflows/run7/journal.jsonl"),
        None
    );
    assert_eq!(role("/p/-x/5e1/subagents/agent-a5b.meta.json"), None);
    assert_eq!(role("/p/-x/agent-.jsonl"), Some(FileRole::Main));
    assert_eq!(
        SubagentMeta::path_for(Path::new("/p/-x/5e1/subagents/agent-a5b.jsonl")),
        PathBuf::from("/p/-x/5e1/subagents/agent-a5b.meta.json")
    );
}

const ORPHAN: &str = "12121212-0000-4000-8000-00000000000c";

/// A `<session>/subagents/` folder whose main `<session>.jsonl` is gone: discovery still finds
/// the subagent, and its item keeps the lineage to the missing parent by id (it resolves if the
/// parent appears). The file also replays two earlier lines, as real subagent files do.
#[test]
fn claude_subagents_of_a_deleted_main_file_are_imported_with_their_lineage() {
    let root = fixture("claude-code");
    let options = nex::aix::WorkerOptions {
        claude_dirs: vec![root.clone()],
        ..Default::default()
    };
    let found: Vec<SourceFile> = nex::aix::discover::discover(&options)
        .into_iter()
        .map(|d| d.source)
        .filter(|f| f.path.starts_with(root.join("orphan")))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    let file = &found[0];
    assert!(!root.join(format!("orphan/{ORPHAN}.jsonl")).exists());
    assert_eq!(
        file.role,
        FileRole::Subagent {
            agent_id: s("a0f1e2d3c4b5a6978"),
            parent_session_id: o(ORPHAN),
            meta: Some(SubagentMeta {
                tool_use_id: o("toolu_gone1"),
                description: o("List shop crates"),
            }),
        }
    );
    let (items, _) = parse_all(file);
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(
        item.source_session_id,
        format!("{ORPHAN}/agent-a0f1e2d3c4b5a6978")
    );
    let sess = &item.session;
    assert!(sess.is_subagent);
    assert_eq!(sess.parent_source_session_id.as_deref(), Some(ORPHAN));
    assert_eq!(sess.spawn_tool_call_id.as_deref(), Some("toolu_gone1"));
    assert_eq!(sess.task_description.as_deref(), Some("List shop crates"));
    assert_eq!(sess.model.as_deref(), Some("claude-haiku-4-5"));
    let base = 1_773_216_000_000; // 2026-03-11T08:00:00Z
    // The file replays o2/o3 after the second prompt (real subagent files do): the copied
    // response is not counted again, and the call keeps its first start and first result.
    assert_eq!(
        turns(item),
        vec![
            (
                s("o1"),
                None,
                base,
                Some(base + 3000),
                o("claude-haiku-4-5"),
                [Some(5), Some(15), Some(110), Some(5), None, Some(135)],
                o("o4"),
                vec![s("o1")]
            ),
            (
                s("o5"),
                o("o1"),
                base + 60_000,
                Some(base + 62_000),
                o("claude-haiku-4-5"),
                [Some(4), Some(5), Some(70), Some(1), None, Some(80)],
                o("o6"),
                vec![s("o5")]
            ),
        ]
    );
    assert_eq!(
        tools(item),
        vec![(
            s("toolu_o1"),
            s("o1"),
            o("o2"),
            s("Read"),
            s("completed"),
            Some(base + 2000),
            None
        )]
    );
}

/// A subagent whose `Task` call was interrupted before its result named the agent (real 2.1.x
/// files: `is_error` result "[Request interrupted by user for tool use]", `toolUseResult` a
/// plain string) is linked by its first prompt to the first call that sent that prompt; an
/// agent whose call's result names it keeps that call, whatever the prompts.
#[test]
fn claude_subagent_of_an_interrupted_task_is_linked_by_its_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let sid = "dddddddd-0000-4000-8000-00000000000d";
    let project = dir.path().join("-work-shop");
    let agents = project.join(sid).join("subagents");
    std::fs::create_dir_all(&agents).unwrap();
    let line = |v: serde_json::Value| serde_json::to_string(&v).unwrap();
    let user = |uuid: &str, ts: &str, content: serde_json::Value, extra: serde_json::Value| {
        let mut v = serde_json::json!({"type": "user", "uuid": uuid, "sessionId": sid,
            "timestamp": ts, "message": {"role": "user", "content": content}});
        if let serde_json::Value::Object(m) = extra {
            v.as_object_mut().unwrap().extend(m);
        }
        line(v)
    };
    let task = |uuid: &str, id: &str, msg: &str, prompt: &str, ts: &str| {
        line(
            serde_json::json!({"type": "assistant", "uuid": uuid, "sessionId": sid,
            "timestamp": ts, "message": {"id": msg, "model": "claude-opus-4-6",
            "role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "Task",
            "input": {"description": "Survey", "prompt": prompt,
                      "subagent_type": "general-purpose"}}]}}),
        )
    };
    let interrupted = serde_json::json!([{"type": "tool_result", "tool_use_id": "toolu_a",
        "is_error": true, "content": "[Request interrupted by user for tool use]"}]);
    let answered = serde_json::json!([{"type": "tool_result", "tool_use_id": "toolu_b",
        "content": "done"}]);
    let main = [
        user(
            "p1",
            "2026-01-01T00:00:00Z",
            serde_json::json!("Survey the repo."),
            serde_json::json!({}),
        ),
        task(
            "t1",
            "toolu_a",
            "m1",
            "Survey the repository.",
            "2026-01-01T00:00:01Z",
        ),
        user(
            "r1",
            "2026-01-01T00:00:05Z",
            interrupted,
            serde_json::json!({
            "toolUseResult": "Error: [Request interrupted by user for tool use]"}),
        ),
        user(
            "p2",
            "2026-01-01T00:01:00Z",
            serde_json::json!("Go on."),
            serde_json::json!({}),
        ),
        task(
            "t2",
            "toolu_b",
            "m2",
            "Survey the repository.",
            "2026-01-01T00:01:01Z",
        ),
        user(
            "r2",
            "2026-01-01T00:02:00Z",
            answered,
            serde_json::json!({
            "toolUseResult": {"status": "completed", "agentId": "b000002"}}),
        ),
    ]
    .join("\n")
        + "\n";
    let child = |agent: &str, prompt: &str| {
        [
            line(
                serde_json::json!({"type": "user", "uuid": format!("{agent}-1"),
                "sessionId": sid, "agentId": agent, "isSidechain": true,
                "timestamp": "2026-01-01T00:00:02Z",
                "message": {"role": "user", "content": prompt}}),
            ),
            line(
                serde_json::json!({"type": "assistant", "uuid": format!("{agent}-2"),
                "sessionId": sid, "agentId": agent, "isSidechain": true,
                "timestamp": "2026-01-01T00:00:03Z", "message": {"id": format!("{agent}-m"),
                "model": "claude-haiku-4-5", "role": "assistant",
                "content": [{"type": "text", "text": "Looking."}]}}),
            ),
        ]
        .join("\n")
            + "\n"
    };
    // Each child is written before its parent's file says anything about it.
    std::fs::write(
        agents.join("agent-a000001.jsonl"),
        child("a000001", "Survey the repository."),
    )
    .unwrap();
    std::fs::write(
        agents.join("agent-b000002.jsonl"),
        child("b000002", "Survey the repository."),
    )
    .unwrap();
    std::fs::write(
        agents.join("agent-c000003.jsonl"),
        child("c000003", "Something else."),
    )
    .unwrap();
    // An agent Claude Code runs itself (a compaction: `agent-acompact-<id>`) opens with a copy
    // of the conversation it compacts, here the same prompt: no call spawned it.
    std::fs::write(
        agents.join("agent-acompact-d000004.jsonl"),
        child("acompact-d000004", "Survey the repository."),
    )
    .unwrap();
    let links = || -> Vec<(String, Option<String>)> {
        scanned(dir.path())
            .into_iter()
            .filter(|i| i.session.is_subagent)
            .map(|i| (i.source_session_id, i.session.spawn_tool_call_id))
            .collect()
    };
    let agent = |a: &str| format!("{sid}/agent-{a}");
    // No parent file yet: nobody is linked.
    assert_eq!(
        links(),
        vec![
            (agent("a000001"), None),
            (agent("acompact-d000004"), None),
            (agent("b000002"), None),
            (agent("c000003"), None)
        ]
    );
    std::fs::write(project.join(format!("{sid}.jsonl")), main).unwrap();
    assert_eq!(
        links(),
        vec![
            (agent("a000001"), o("toolu_a")),
            (agent("acompact-d000004"), None),
            (agent("b000002"), o("toolu_b")),
            (agent("c000003"), None)
        ]
    );
}

/// 2.1.16x `Workflow`: one call starts a run of agents, `<session>/subagents/workflows/<runId>/
/// agent-<id>.jsonl`, and its result names the run (`toolUseResult.runId`), not the agents:
/// every agent of the run is linked to that call (the call itself names no one session), in
/// whichever order the files are read.
#[test]
fn claude_workflow_agents_are_linked_to_the_call_that_started_their_run() {
    let dir = tempfile::tempdir().unwrap();
    let sid = "eeeeeeee-0000-4000-8000-00000000000e";
    let project = dir.path().join("-work-shop");
    let line = |v: serde_json::Value| serde_json::to_string(&v).unwrap();
    let base = |kind: &str, uuid: &str, ts: &str| {
        serde_json::json!({"type": kind, "uuid": uuid, "sessionId": sid, "timestamp": ts,
                           "version": "2.1.167"})
    };
    let with = |mut v: serde_json::Value, extra: serde_json::Value| {
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        line(v)
    };
    let workflow =
        |n: u32, run: &str, t: u32| {
            [
            with(
                base("assistant", &format!("w{n}"), &format!("2026-11-01T00:0{t}:00Z")),
                serde_json::json!({"message": {"id": format!("m{n}"), "model": "claude-opus-4-7",
                "role": "assistant", "content": [{"type": "tool_use", "id": format!("toolu_w{n}"),
                "name": "Workflow", "input": {"script": "review.js"}}]}}),
            ),
            with(
                base("user", &format!("r{n}"), &format!("2026-11-01T00:0{t}:01Z")),
                serde_json::json!({"message": {"role": "user", "content": [{"type": "tool_result",
                "tool_use_id": format!("toolu_w{n}"), "content": "launched"}]},
                "toolUseResult": {"status": "async_launched", "taskType": "local_workflow",
                "workflowName": "review", "runId": run}}),
            ),
        ]
        .join("\n")
        };
    let main = [
        with(
            base("user", "p1", "2026-11-01T00:00:00Z"),
            serde_json::json!({"message": {"role": "user", "content": "Review the shop."}}),
        ),
        workflow(1, "wf_one", 1),
        workflow(2, "wf_two", 2),
    ]
    .join("\n")
        + "\n";
    let agent = |run: &str, id: &str| {
        let d = project.join(sid).join("subagents/workflows").join(run);
        std::fs::create_dir_all(&d).unwrap();
        let text = [
            with(
                base("user", &format!("{id}-1"), "2026-11-01T00:01:02Z"),
                serde_json::json!({"agentId": id, "isSidechain": true,
                "message": {"role": "user", "content": "Check one file."}}),
            ),
            with(
                base("assistant", &format!("{id}-2"), "2026-11-01T00:01:03Z"),
                serde_json::json!({"agentId": id, "isSidechain": true,
                "message": {"id": format!("{id}-m"), "model": "claude-haiku-4-5",
                "role": "assistant", "content": [{"type": "text", "text": "Fine."}]}}),
            ),
        ]
        .join("\n")
            + "\n";
        std::fs::write(d.join(format!("agent-{id}.jsonl")), text).unwrap();
    };
    agent("wf_one", "a01");
    agent("wf_one", "a02");
    agent("wf_two", "a03");
    let scan = || -> Vec<(String, Option<String>, Option<String>)> {
        let items = scanned(dir.path());
        for call in items.iter().flat_map(|i| &i.tool_calls) {
            assert_eq!(call.spawned_source_session_id, None, "a run is no session");
        }
        items
            .into_iter()
            .filter(|i| i.session.is_subagent)
            .map(|i| {
                let s = i.session;
                (i.source_session_id, s.spawn_tool_call_id, s.task_status)
            })
            .collect()
    };
    let id = |a: &str| format!("{sid}/agent-{a}");
    // The agents' files are there before their parent's.
    assert_eq!(
        scan(),
        vec![
            (id("a01"), None, None),
            (id("a02"), None, None),
            (id("a03"), None, None)
        ]
    );
    std::fs::write(project.join(format!("{sid}.jsonl")), main).unwrap();
    let launched = o("async_launched");
    assert_eq!(
        scan(),
        vec![
            (id("a01"), o("toolu_w1"), launched.clone()),
            (id("a02"), o("toolu_w1"), launched.clone()),
            (id("a03"), o("toolu_w2"), launched.clone()),
        ]
    );
}

/// `aix scan --json` over the Claude Code folder `dir`: each session's last item, by session id.
fn scanned(dir: &std::path::Path) -> Vec<ImportSessionItem> {
    let options = nex::aix::WorkerOptions {
        claude_dirs: vec![dir.to_path_buf()],
        ..Default::default()
    };
    let mut out = Vec::new();
    nex::aix::scan(
        &options,
        &nex::aix::default_parser_factory(),
        Some(&mut out),
    )
    .unwrap();
    let mut last = std::collections::BTreeMap::new();
    for l in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let item: ImportSessionItem = serde_json::from_slice(l).unwrap();
        last.insert(item.source_session_id.clone(), item);
    }
    last.into_values().collect()
}
