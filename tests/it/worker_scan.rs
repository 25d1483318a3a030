//! `aix scan` over the library: per-provider summary and items as JSON lines.

use nex::aix::WorkerOptions;
use nex::aix::sources::Provider;
use nex::protocol::ImportSessionItem;

use crate::worker_fake::{fake_factory, reply, turn};

#[test]
fn summary_counts_sessions_turns_messages_and_skips() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects/-p");
    std::fs::create_dir_all(proj.join("A/subagents")).unwrap();
    std::fs::write(
        proj.join("A.jsonl"),
        format!(
            "{}{}{{\"skip\":\"progress\"}}\n{{\"skip\":\"progress\"}}\nbroken\n{}",
            turn("A", "t1", "x"),
            reply("y"),
            turn("A", "t2", "z")
        ),
    )
    .unwrap();
    std::fs::write(proj.join("A/subagents/agent-k.jsonl"), turn("A", "c1", "s")).unwrap();
    let codex = dir.path().join("sessions");
    std::fs::create_dir_all(&codex).unwrap();
    std::fs::write(codex.join("rollout-1.jsonl"), turn("X", "t1", "q")).unwrap();
    let options = WorkerOptions {
        claude_dirs: vec![dir.path().join("projects")],
        codex_dirs: vec![codex],
        ..Default::default()
    };
    let (factory, _) = fake_factory();
    let mut json = Vec::new();
    let summary = nex::aix::scan(&options, &factory, Some(&mut json)).unwrap();
    let claude = &summary[&Provider::ClaudeCode];
    assert_eq!(claude.files, 2);
    assert_eq!(claude.sessions, 1);
    assert_eq!(claude.subagent_sessions, 1);
    assert_eq!(claude.turns, 3);
    assert_eq!(claude.messages, 4);
    assert_eq!(claude.malformed_lines, 1);
    assert_eq!(claude.skipped_records.get("progress"), Some(&2));
    assert_eq!(summary[&Provider::Codex].sessions, 1);
    let items: Vec<ImportSessionItem> = String::from_utf8(json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 3);
    let text = nex::aix::render_summary(&summary);
    assert!(text.contains("claude-code:") && text.contains("codex:"));
    assert!(text.contains("progress"));
}

/// Regression: `aix scan --json | head` used to panic when the reader closed the pipe.
#[test]
fn scan_json_into_a_closed_writer_is_an_error_not_a_panic() {
    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects/-p");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(proj.join("A.jsonl"), turn("A", "t1", "x")).unwrap();
    let options = WorkerOptions {
        claude_dirs: vec![dir.path().join("projects")],
        ..Default::default()
    };
    let (factory, _) = fake_factory();
    let err = nex::aix::scan(&options, &factory, Some(&mut Closed)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}

/// Every provider has a line, found or not; one not found says where it was looked for.
#[test]
fn summary_lists_all_five_providers_and_where_each_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let options = WorkerOptions {
        claude_dirs: vec![dir.path().join("claude")],
        codex_dirs: vec![dir.path().join("codex")],
        cursor_dbs: vec![dir.path().join("state.vscdb")],
        ..Default::default()
    };
    let (factory, _) = fake_factory();
    let summary = nex::aix::scan(&options, &factory, None).unwrap();
    assert_eq!(
        summary.keys().copied().collect::<Vec<_>>(),
        Provider::ALL.to_vec()
    );
    let text = nex::aix::render_summary(&summary);
    let d = dir.path().display();
    // Regression: a provider without a location said "no default location exists" instead of
    // naming the default locations it tried.
    let tried = |p: Provider| {
        let paths: Vec<String> = nex::aix::config::default_candidates(p)
            .iter()
            .map(|l| l.display().to_string())
            .collect();
        assert!(
            !paths.is_empty(),
            "HOME is set: {p:?} has default locations"
        );
        paths.join(", ")
    };
    assert_eq!(
        text,
        format!(
            "claude-code: nothing found in {d}/claude\n\
             codex: nothing found in {d}/codex\n\
             cursor: nothing found in {d}/state.vscdb\n\
             opencode: nothing found in {}\n\
             gemini-cli: nothing found in {}\n",
            tried(Provider::OpenCode),
            tried(Provider::GeminiCli)
        )
    );
}
