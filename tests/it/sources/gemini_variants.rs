//! Gemini CLI variants seen in real chats (SOURCES.md "Real-world variants"), one fixture
//! each, exact items: a subagent chat kept as a document under a short id whose parent's file
//! is gone; Code Assist logs (one shared `a2a-server` session id, no `toolCalls`, a header-only
//! file); shell and slash commands as prompts beside CLI notices, with a message re-appended
//! as it updates.

use super::*;
use nex::aix::WorkerOptions;
use nex::aix::discover::discover;

const GE_SUB: &str = "eeee0005-0000-4000-8000-000000000005";
const CA_1: &str = "proj-e/chats/session-2026-05-27T11-44-a2a-serv.jsonl";
const CA_2: &str = "proj-e/chats/session-2026-05-27T12-15-a2a-serv.jsonl";
const CA_EMPTY: &str = "proj-e/chats/session-2026-05-28T09-00-a2a-serv.jsonl";
const CMDS: &str = "proj-f/chats/session-2026-06-16T17-01-ffff0006.jsonl";
const CONTEXT_ID: &str = "d0492300000000000000000000000001";

/// Milliseconds of a UTC wall-clock time on a fixture's day (`base` = its midnight).
fn at(base: i64, h: i64, m: i64, s: i64, ms: i64) -> i64 {
    base + ((h * 60 + m) * 60 + s) * 1000 + ms
}
const MAY_02: i64 = 1_777_680_000_000; // 2026-05-02T00:00:00Z
const MAY_27: i64 = 1_779_840_000_000; // 2026-05-27T00:00:00Z
const JUN_16: i64 = 1_781_568_000_000; // 2026-06-16T00:00:00Z

fn gemini_main(rel: &str) -> SourceFile {
    source(
        Provider::GeminiCli,
        &format!("gemini/tmp/{rel}"),
        FileRole::Main,
    )
}

fn subagent_document() -> SourceFile {
    source(
        Provider::GeminiCli,
        &format!("gemini/tmp/proj-d/chats/{GE_SUB}/inv-7k2p.json"),
        FileRole::Subagent {
            agent_id: s("inv-7k2p"),
            parent_session_id: o(GE_SUB),
            meta: None,
        },
    )
}

/// The variant logs that hold a session, for the line-level incremental = full harness (the
/// subagent document is read whole, see `gemini_subagent_document_rewritten_is_read_whole`).
pub(super) fn variant_fixtures() -> Vec<SourceFile> {
    vec![gemini_main(CA_1), gemini_main(CA_2), gemini_main(CMDS)]
}

#[test]
fn gemini_subagent_document_with_a_short_id_is_found_and_linked_without_its_parent() {
    // Discovery over a tree holding only the child: the parent's file is gone.
    let dir = tempfile::tempdir().unwrap();
    let chats = dir.path().join("tmp/proj-d/chats");
    std::fs::create_dir_all(chats.join(GE_SUB)).unwrap();
    let child = chats.join(GE_SUB).join("inv-7k2p.json");
    std::fs::copy(&subagent_document().path, &child).unwrap();
    let options = WorkerOptions {
        gemini_dirs: vec![dir.path().join("tmp")],
        ..Default::default()
    };
    let found: Vec<SourceFile> = discover(&options).into_iter().map(|d| d.source).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, child);
    assert_eq!(found[0].role, subagent_document().role);

    let (items, p) = parse_all(&found[0]);
    let item = &items[0];
    assert_eq!(items.len(), 1);
    assert_eq!(item.source_session_id, "inv-7k2p");
    assert!(item.session.is_subagent);
    assert_eq!(
        item.session.parent_source_session_id.as_deref(),
        Some(GE_SUB)
    );
    assert_eq!(item.session.project.as_deref(), Some("proj-d"));
    assert_eq!(
        turns(item),
        vec![(
            s("k1"),
            None,
            at(MAY_02, 8, 0, 0, 0),
            Some(at(MAY_02, 8, 0, 40, 0)),
            o("gemini-2.5-flash"),
            [Some(420), Some(17), Some(300), None, Some(4), Some(741)],
            o("k3"),
            vec![s("k1")]
        )]
    );
    assert_eq!(
        tools(item),
        vec![(
            s("glob-1"),
            s("k1"),
            o("k2"),
            s("glob"),
            s("completed"),
            Some(at(MAY_02, 8, 0, 25, 0)),
            None
        )]
    );
    assert_eq!(p.stats().malformed_lines, 0);
}

#[test]
fn gemini_code_assist_chats_of_two_projects_begun_in_the_same_minute_are_two_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let name = std::path::Path::new(CA_1).file_name().unwrap();
    for project in ["proj-x", "proj-y"] {
        let chats = dir.path().join("tmp").join(project).join("chats");
        std::fs::create_dir_all(&chats).unwrap();
        std::fs::copy(&gemini_main(CA_1).path, chats.join(name)).unwrap();
    }
    let options = WorkerOptions {
        gemini_dirs: vec![dir.path().join("tmp")],
        ..Default::default()
    };
    let mut found: Vec<SourceFile> = discover(&options).into_iter().map(|d| d.source).collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    let named: Vec<(String, Vec<(String, String)>)> = found
        .iter()
        .map(|f| {
            let (items, p) = parse_all(f);
            assert_eq!(items.len(), 1);
            (items[0].source_session_id.clone(), p.renamed_sessions())
        })
        .collect();
    let former = s("a2a-server/2026-05-27T11-44-a2a-serv");
    assert_eq!(
        named,
        vec![
            (
                s("a2a-server/proj-x/2026-05-27T11-44-a2a-serv"),
                vec![(
                    former.clone(),
                    s("a2a-server/proj-x/2026-05-27T11-44-a2a-serv")
                )]
            ),
            (
                s("a2a-server/proj-y/2026-05-27T11-44-a2a-serv"),
                vec![(former, s("a2a-server/proj-y/2026-05-27T11-44-a2a-serv"))]
            ),
        ]
    );
    // A chat of the CLI itself was never named otherwise.
    let (_, p) = parse_all(&gemini_main(CMDS));
    assert_eq!(p.renamed_sessions(), Vec::<(String, String)>::new());
}

#[test]
fn gemini_code_assist_logs_are_a_session_each_and_import_what_they_hold() {
    let (first, _) = parse_all(&gemini_main(CA_1));
    let (second, _) = parse_all(&gemini_main(CA_2));
    let (empty, p) = parse_all(&gemini_main(CA_EMPTY));
    assert!(empty.is_empty(), "a header alone is no session");
    assert_eq!(p.stats().lines, 1);
    let (a, b) = (&first[0], &second[0]);
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_eq!(
        a.source_session_id,
        "a2a-server/proj-e/2026-05-27T11-44-a2a-serv"
    );
    assert_eq!(
        b.source_session_id,
        "a2a-server/proj-e/2026-05-27T12-15-a2a-serv"
    );
    assert_eq!(a.session.created_at_ms, Some(at(MAY_27, 11, 44, 30, 0)));
    assert_eq!(a.session.updated_at_ms, Some(at(MAY_27, 11, 45, 10, 0)));
    // Every `user` message is a prompt, the injected session context included; the reply
    // was written twice (placeholder, then text and tokens): it counts once. No `toolCalls`:
    // no tool rows are made up from the reply's text.
    assert_eq!(
        turns(a),
        vec![
            (
                s(CONTEXT_ID),
                None,
                at(MAY_27, 11, 44, 30, 1),
                Some(at(MAY_27, 11, 44, 30, 1)),
                None,
                [None; 6],
                None,
                vec![s(CONTEXT_ID)]
            ),
            (
                s("ca-u1"),
                o(CONTEXT_ID),
                at(MAY_27, 11, 45, 0, 0),
                Some(at(MAY_27, 11, 45, 10, 0)),
                o("gemini-2.5-pro"),
                [
                    Some(5000),
                    Some(60),
                    Some(4000),
                    None,
                    Some(120),
                    Some(9180)
                ],
                o("ca-g1"),
                vec![s("ca-u1")]
            ),
        ]
    );
    assert_eq!(
        messages(a)
            .into_iter()
            .map(|m| (m.0, m.1, m.2))
            .collect::<Vec<_>>(),
        vec![
            (s(CONTEXT_ID), s(CONTEXT_ID), s("user")),
            (s("ca-u1"), s("ca-u1"), s("user")),
            (s("ca-g1"), s("ca-u1"), s("assistant")),
            (s("ca-i1"), s("ca-u1"), s("system")),
        ]
    );
    assert!(a.tool_calls.is_empty() && b.tool_calls.is_empty());
    // The second file repeats the context message's id: its rows are its own session's. Its
    // tool work is only in the messages (a `functionCall` part, a `user` record made of a
    // `functionResponse`): imported as it is, the result as a tool message, not a prompt.
    assert_eq!(
        turns(b).iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
        vec![s(CONTEXT_ID), s("cb-u1")]
    );
    assert_eq!(
        turns(b)[1].5,
        [Some(13800), Some(27), Some(0), None, Some(0), Some(13827)]
    );
    assert_eq!(
        messages(b)
            .into_iter()
            .map(|m| (m.0, m.2, m.3))
            .collect::<Vec<_>>(),
        vec![
            (
                s(CONTEXT_ID),
                s("user"),
                o("<session_context>\nWorkspace: /home/dev/shop\n</session_context>")
            ),
            (s("cb-u1"), s("user"), o("Run the unit tests.")),
            (s("cb-g0"), s("assistant"), None),
            (s("cb-r0"), s("tool"), None),
            (s("cb-g1"), s("assistant"), o("All 42 tests pass.")),
        ]
    );
}

#[test]
fn gemini_shell_and_slash_commands_are_prompts_and_notices_are_not() {
    let (items, p) = parse_all(&gemini_main(CMDS));
    let item = &items[0];
    assert_eq!(items.len(), 1);
    assert_eq!(
        item.source_session_id,
        "ffff0006-0000-4000-8000-000000000006"
    );
    // f-g1 was appended three times as it updated: the last version's tokens count once. The
    // notice before the first prompt is that prompt's turn, named by the notice.
    assert_eq!(
        turns(item),
        vec![
            (
                s("f-i1"),
                None,
                at(JUN_16, 17, 1, 10, 0),
                Some(at(JUN_16, 17, 2, 0, 0)),
                None,
                [None; 6],
                None,
                vec![s("f-u1")]
            ),
            (
                s("f-u2"),
                o("f-i1"),
                at(JUN_16, 17, 2, 30, 0),
                Some(at(JUN_16, 17, 2, 31, 0)),
                None,
                [None; 6],
                None,
                vec![s("f-u2")]
            ),
            (
                s("f-u3"),
                o("f-u2"),
                at(JUN_16, 17, 3, 0, 0),
                Some(at(JUN_16, 17, 4, 0, 0)),
                o("gemini-3-pro-preview"),
                [
                    Some(13400),
                    Some(55),
                    Some(11000),
                    None,
                    Some(250),
                    Some(24705)
                ],
                o("f-g2"),
                vec![s("f-u3")]
            ),
        ]
    );
    let roles: Vec<(String, String)> = messages(item).into_iter().map(|m| (m.0, m.2)).collect();
    assert_eq!(
        roles,
        [
            ("f-i1", "system"),
            ("f-u1", "user"),
            ("f-u2", "user"),
            ("f-i2", "system"),
            ("f-u3", "user"),
            ("f-g1", "assistant"),
            ("f-w1", "system"),
            ("f-g2", "assistant"),
            ("f-e1", "system"),
        ]
        .map(|(a, b)| (s(a), s(b)))
    );
    assert_eq!(
        tools(item),
        vec![(
            s("run_shell_command-1"),
            s("f-u3"),
            o("f-g1"),
            s("run_shell_command"),
            s("failed"),
            Some(at(JUN_16, 17, 3, 9, 0)),
            None
        )]
    );
    assert_eq!(item.tool_calls[0].error.as_deref(), Some("error"));
    assert_eq!(p.stats().malformed_lines, 0);
}

/// The subagent document rewritten in place as the child works (a running call, then its
/// result and the answer) is read whole each time: the ledger after both reads equals one
/// full read of the final document.
#[test]
fn gemini_subagent_document_rewritten_is_read_whole() {
    use crate::e2e_support::canonical;
    use crate::import_support::ledger;
    use nex::aix::default_parser_factory;
    use nex::aix::file_state::FileState;

    let final_bytes = std::fs::read(&subagent_document().path).unwrap();
    let mut early: serde_json::Value = serde_json::from_slice(&final_bytes).unwrap();
    let messages = early["messages"].as_array_mut().unwrap();
    messages.pop();
    let call = &mut messages[1]["toolCalls"][0];
    call["status"] = "executing".into();
    call.as_object_mut().unwrap().remove("result");
    let early = serde_json::to_vec_pretty(&early).unwrap();

    let factory = default_parser_factory();
    let read = |bytes: &[u8], cursor| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir
            .path()
            .join(format!("proj-d/chats/{GE_SUB}/inv-7k2p.json"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let file = SourceFile {
            path,
            ..subagent_document()
        };
        FileState::new(file, cursor)
            .update(&factory, false)
            .unwrap()
            .unwrap()
    };
    let first = read(&early, None);
    assert_eq!(tools(&first.items[0])[0].4, "running");
    let second = read(&final_bytes, Some(first.cursor.clone()));
    let mut tailed = ledger();
    super::gemini_files::import(&mut tailed, "v1", &first.items);
    super::gemini_files::import(&mut tailed, "v2", &second.items);
    let mut full = ledger();
    super::gemini_files::import(&mut full, "full", &read(&final_bytes, None).items);
    assert_eq!(canonical(&tailed), canonical(&full));
}

/// Each variant log appended in place, cut at every line end and mid-line, read after every
/// append by a fresh `FileState` from the committed cursor into a real ledger, equals one full
/// read: turns without a reply (the commands, Code Assist's context) keep the same `model`
/// whichever way they arrive.
#[test]
fn gemini_variant_logs_tailed_mid_line_equal_one_full_read() {
    use super::gemini_files::{append, cuts, full_import, gemini_source, import};
    use crate::e2e_support::{canonical, first_difference};
    use crate::import_support::ledger;
    use nex::aix::default_parser_factory;
    use nex::aix::file_state::FileState;

    let factory = default_parser_factory();
    for rel in [CA_1, CA_2, CMDS] {
        let bytes = std::fs::read(fixture(&format!("gemini/tmp/{rel}"))).unwrap();
        let (full, _) = full_import(rel, &bytes);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut conn = ledger();
        let mut cursor = None;
        let mut written = 0;
        for (n, cut) in cuts(&bytes).into_iter().enumerate() {
            append(&path, &bytes[written..cut]);
            written = cut;
            let mut state = FileState::new(gemini_source(path.clone()), cursor.clone());
            if let Some(u) = state.update(&factory, false).unwrap() {
                import(&mut conn, &format!("k{n}"), &u.items);
                cursor = Some(u.cursor);
            }
        }
        let tailed = canonical(&conn);
        assert_eq!(tailed, full, "{rel}: {}", first_difference(&tailed, &full));
    }
}

/// A tool that read an image hands its bytes back in a `user` message of its own: the
/// `functionResponse` and the `inlineData` it returned (a real 2026-03 chat). That message is a
/// tool result, not a prompt: it stays in the turn of the prompt that led to it.
#[test]
fn gemini_a_tool_result_with_inline_data_is_not_a_prompt() {
    const MAR_30: i64 = 1_774_828_800_000; // 2026-03-30T00:00:00Z
    let file = gemini_main("proj-g/chats/session-2026-03-30T03-06-9999000a.json");
    let (items, _) = parse_all(&file);
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(
        item.source_session_id,
        "9999000a-0000-4000-8000-00000000000a"
    );
    type Row = (String, i64, Vec<String>, Option<i64>, Option<i64>);
    let turn_rows: Vec<Row> = item
        .turns
        .iter()
        .map(|t| {
            (
                t.source_turn_id.clone(),
                t.started_at_ms,
                t.query_message_source_ids.clone(),
                t.output_tokens,
                t.total_tokens,
            )
        })
        .collect();
    assert_eq!(
        turn_rows,
        vec![
            (
                s("g-u1"),
                at(MAR_30, 3, 6, 1, 0),
                vec![s("g-u1")],
                Some(60),
                Some(4370)
            ),
            (
                s("g-u2"),
                at(MAR_30, 3, 7, 0, 0),
                vec![s("g-u2")],
                Some(5),
                Some(2405)
            ),
        ]
    );
    assert_eq!(
        messages(item)
            .into_iter()
            .map(|m| (m.0, m.1, m.2))
            .collect::<Vec<_>>(),
        vec![
            (s("g-u1"), s("g-u1"), s("user")),
            (s("g-g1"), s("g-u1"), s("assistant")),
            (s("g-r1"), s("g-u1"), s("tool")),
            (s("g-g2"), s("g-u1"), s("assistant")),
            (s("g-u2"), s("g-u2"), s("user")),
            (s("g-g3"), s("g-u2"), s("assistant")),
        ]
    );
    assert_eq!(
        tools(item)
            .into_iter()
            .map(|t| (t.0, t.1, t.3, t.4))
            .collect::<Vec<_>>(),
        vec![(s("read_file-1"), s("g-u1"), s("read_file"), s("completed"))]
    );
}
