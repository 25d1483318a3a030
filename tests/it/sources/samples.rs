//! The real samples, read at run time from `NEX_SAMPLES_DIR` (skipped when unset).

use super::*;

fn samples_dir() -> Option<PathBuf> {
    // CI exports the variable empty when the samples are not beside the checkout.
    std::env::var_os("NEX_SAMPLES_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

#[test]
fn real_claude_samples_parse_with_lineage() {
    let Some(dir) = samples_dir() else {
        eprintln!("NEX_SAMPLES_DIR unset: skipped");
        return;
    };
    let main_sid = "ae4a77f8-aedd-4bc1-888f-c94edc91af04";
    let spotter = dir.join("claude-code/marot-spotter");
    // The head excerpt keeps the session's name with a suffix: the body gives the session id.
    let main = SourceFile {
        provider: Provider::ClaudeCode,
        path: spotter.join(format!("{main_sid}.head-L1-101.jsonl")),
        workspace: None,
        role: FileRole::Main,
    };
    let (items, p) = parse_all(&main);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].source_session_id, main_sid);
    let task = items[0]
        .tool_calls
        .iter()
        .find(|c| c.source_tool_call_id == "toolu_01Hf8v1Za7y4af8VUwSR4CXU")
        .expect("the Task spawn");
    assert_eq!(task.tool_name, "Task");
    assert_eq!(task.status.as_deref(), Some("completed"));
    assert_eq!(
        task.spawned_source_session_id.as_deref(),
        Some(format!("{main_sid}/agent-aac57f5").as_str())
    );
    assert_eq!(p.stats().lines, 101);
    assert_eq!(p.stats().malformed_lines, 0);
    assert_eq!(p.stats().skipped_records.get("progress"), Some(&67));
    assert_eq!(
        p.stats().skipped_records.get("file-history-snapshot"),
        Some(&2)
    );
    let link = &p.spawn_links()["aac57f5"];
    assert_eq!(link.tool_use_id, "toolu_01Hf8v1Za7y4af8VUwSR4CXU");
    assert_eq!(
        link.description.as_deref(),
        Some("Check OTEL hex package versions")
    );
    assert_eq!(link.status.as_deref(), Some("completed"));

    let child = SourceFile {
        provider: Provider::ClaudeCode,
        path: spotter.join(format!("{main_sid}/subagents/agent-aac57f5.jsonl")),
        workspace: None,
        role: FileRole::Subagent {
            agent_id: s("aac57f5"),
            parent_session_id: o(main_sid),
            meta: None,
        },
    };
    let (mut child_items, _) = parse_all(&child);
    let item = &mut child_items[0];
    assert_eq!(item.source_session_id, format!("{main_sid}/agent-aac57f5"));
    assert_eq!(
        item.session.parent_source_session_id.as_deref(),
        Some(main_sid)
    );
    fill_spawn_link(&mut item.session, link);
    assert_eq!(
        item.session.spawn_tool_call_id.as_deref(),
        Some("toolu_01Hf8v1Za7y4af8VUwSR4CXU")
    );
    assert_eq!(item.session.task_status.as_deref(), Some("completed"));
    // The child's first user line is the prompt the parent's agent_progress carried.
    assert_eq!(
        item.turns[0].source_turn_id,
        "f1eb9ac5-1928-4a73-b605-aaf2f3a24db9"
    );
    assert_eq!(item.turns.len(), 1);
    let task_tools = item.tool_calls.len();
    assert!(task_tools >= 10, "{task_tools}");
    assert!(
        item.tool_calls
            .iter()
            .all(|c| c.status.as_deref() == Some("completed"))
    );

    // The synthetic showcase: `<session>/subagents/agent-showcol1.jsonl` + `.meta.json`.
    let syn = dir.join("claude-code/claude-code-log-synthetic");
    let sid = "55550000-0000-4000-8000-000000000001";
    let meta = SubagentMeta::from_json(
        &std::fs::read(syn.join(format!("{sid}/subagents/agent-showcol1.meta.json"))).unwrap(),
    );
    let child = SourceFile {
        provider: Provider::ClaudeCode,
        path: syn.join(format!("{sid}/subagents/agent-showcol1.jsonl")),
        workspace: None,
        role: FileRole::Subagent {
            agent_id: s("showcol1"),
            parent_session_id: o(sid),
            meta,
        },
    };
    let (items, _) = parse_all(&child);
    let sess = &items[0].session;
    assert_eq!(items[0].source_session_id, format!("{sid}/agent-showcol1"));
    assert!(sess.is_subagent);
    assert_eq!(sess.parent_source_session_id.as_deref(), Some(sid));
    assert_eq!(
        sess.spawn_tool_call_id.as_deref(),
        Some("toolu_sc_showcol1")
    );
    assert_eq!(
        sess.task_description.as_deref(),
        Some("Survey the web module")
    );
    let (parent_items, parent) = parse_all(&SourceFile {
        provider: Provider::ClaudeCode,
        path: syn.join(format!("{sid}.jsonl")),
        workspace: None,
        role: FileRole::Main,
    });
    let spawn = parent_items[0]
        .tool_calls
        .iter()
        .find(|c| c.source_tool_call_id == "toolu_sc_showcol1")
        .unwrap();
    assert_eq!(
        spawn.spawned_source_session_id.as_deref(),
        Some(format!("{sid}/agent-showcol1").as_str())
    );
    let by_agent = parent
        .spawn_links()
        .into_keys()
        .filter(|k| !k.starts_with(nex::aix::sources::PROMPT_LINK_PREFIX))
        .count();
    assert_eq!(by_agent, 2);
}

#[test]
fn real_samples_incremental_equals_full() {
    let Some(dir) = samples_dir() else {
        eprintln!("NEX_SAMPLES_DIR unset: skipped");
        return;
    };
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "jsonl") {
                let rel = path
                    .strip_prefix(&dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let provider = if rel.starts_with("codex/") {
                    Provider::Codex
                } else {
                    Provider::ClaudeCode
                };
                let role = match provider {
                    Provider::ClaudeCode => {
                        let Some(mut role) = FileRole::claude_code_for(&path) else {
                            continue;
                        };
                        if let FileRole::Subagent { meta, .. } = &mut role {
                            *meta = std::fs::read(SubagentMeta::path_for(&path))
                                .ok()
                                .and_then(|b| SubagentMeta::from_json(&b));
                        }
                        role
                    }
                    _ => FileRole::Main,
                };
                files.push(SourceFile {
                    provider,
                    path,
                    workspace: None,
                    role,
                });
            }
        }
    }
    assert!(files.len() >= 10, "{}", files.len());
    for file in files {
        let bytes = std::fs::read(&file.path).unwrap();
        let (full, full_fp, full_stats) = full_ledger(&file, &bytes);
        assert!(!full.is_empty(), "{}", file.path.display());
        let mut p = parser_for(&file);
        let mut ledger = Ledger::new();
        let mut start = 0;
        for (n, end) in line_ends(&bytes).into_iter().enumerate() {
            if n % 3 == 0 {
                p.push_lines(&bytes[start..end], start as u64, true);
                upsert(&mut ledger, p.take_items());
                start = end;
            }
        }
        p.push_lines(&bytes[start..], start as u64, true);
        upsert(&mut ledger, p.take_items());
        assert_eq!(ledger, full, "{}", file.path.display());
        assert_eq!(p.fingerprint(), full_fp);
        assert_eq!(p.stats(), &full_stats);
        assert_eq!(full_stats.malformed_lines, 0, "{}", file.path.display());
    }
}
