//! Discovery layouts of Claude Code and Codex roots, ordering, missing roots.

use std::path::Path;
use std::time::{Duration, SystemTime};

use nex::aix::WorkerOptions;
use nex::aix::discover::discover;
use nex::aix::sources::{FileRole, Provider, SubagentMeta};

fn write(path: &Path, text: &str, age_secs: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    let t = SystemTime::now() - Duration::from_secs(age_secs);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn claude_and_codex_layouts_are_classified_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("claude/projects");
    let proj = claude.join("-home-u-x");
    write(&proj.join("s1.jsonl"), "{}\n", 100);
    // The child is older than its parent on disk, yet must come after it.
    write(&proj.join("s1/subagents/agent-a1.jsonl"), "{}\n", 500);
    write(
        &proj.join("s1/subagents/agent-a1.meta.json"),
        r#"{"agentType":"x","toolUseId":"toolu_1","description":"find it"}"#,
        500,
    );
    write(
        &proj.join("s1/subagents/workflows/r1/agent-w1.jsonl"),
        "{}\n",
        50,
    );
    write(
        &proj.join("s1/subagents/workflows/r1/journal.jsonl"),
        "{}\n",
        50,
    );
    write(&proj.join("agent-flat.jsonl"), "{}\n", 300);
    write(&proj.join("s0.jsonl"), "{}\n", 400);
    write(&proj.join("notes.txt"), "x", 10);
    let codex = dir.path().join("codex/sessions");
    write(
        &codex.join("2025/01/02/rollout-2025-01-02-a.jsonl"),
        "{}\n",
        200,
    );
    write(&codex.join("2025/01/02/other.jsonl"), "{}\n", 200);
    write(
        &dir.path().join("codex/archived_sessions/rollout-old.jsonl"),
        "{}\n",
        1000,
    );
    let options = WorkerOptions {
        claude_dirs: vec![claude.clone(), dir.path().join("missing")],
        codex_dirs: vec![codex.clone()],
        ..Default::default()
    };
    let found = discover(&options);
    let names: Vec<String> = found
        .iter()
        .map(|d| {
            d.source
                .path
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "codex/archived_sessions/rollout-old.jsonl",
            "claude/projects/-home-u-x/s0.jsonl",
            "claude/projects/-home-u-x/agent-flat.jsonl",
            "codex/sessions/2025/01/02/rollout-2025-01-02-a.jsonl",
            "claude/projects/-home-u-x/s1.jsonl",
            "claude/projects/-home-u-x/s1/subagents/agent-a1.jsonl",
            "claude/projects/-home-u-x/s1/subagents/workflows/r1/agent-w1.jsonl",
        ]
    );
    let role = |suffix: &str| {
        found
            .iter()
            .find(|d| d.source.path.ends_with(suffix))
            .unwrap()
            .source
            .clone()
    };
    assert_eq!(role("s1.jsonl").role, FileRole::Main);
    assert_eq!(role("rollout-old.jsonl").provider, Provider::Codex);
    assert_eq!(
        role("agent-a1.jsonl").role,
        FileRole::Subagent {
            agent_id: "a1".into(),
            parent_session_id: Some("s1".into()),
            meta: Some(SubagentMeta {
                tool_use_id: Some("toolu_1".into()),
                description: Some("find it".into()),
            }),
        }
    );
    assert_eq!(
        role("agent-flat.jsonl").role,
        FileRole::Subagent {
            agent_id: "flat".into(),
            parent_session_id: None,
            meta: None,
        }
    );
    assert_eq!(
        role("agent-w1.jsonl").role,
        FileRole::Subagent {
            agent_id: "w1".into(),
            parent_session_id: Some("s1".into()),
            meta: None,
        }
    );
}

#[test]
fn missing_roots_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    let options = WorkerOptions {
        claude_dirs: vec![dir.path().join("nope")],
        codex_dirs: vec![dir.path().join("sessions")],
        ..Default::default()
    };
    assert!(discover(&options).is_empty());
}

#[test]
fn overlapping_roots_list_a_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let codex = dir.path().join("sessions");
    write(&codex.join("rollout-1.jsonl"), "{}\n", 5);
    let options = WorkerOptions {
        codex_dirs: vec![codex.clone(), codex.clone(), dir.path().to_path_buf()],
        ..Default::default()
    };
    assert_eq!(discover(&options).len(), 1);
}
