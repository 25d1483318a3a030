//! Gemini files through `FileState` into a real ledger: a log appended in place and read after
//! every append from the committed cursor by a fresh state (a worker restart) or by a kept
//! state; subagent and parent read in either order; discovery of a `tmp` tree; the real
//! samples.

use std::io::Write;
use std::time::{Duration, SystemTime};

use super::gemini::{GA, GB};
use super::*;
use crate::e2e_support::canonical;
use crate::import_support::{import_req, ledger, run_import};
use nex::aix::cursor::FileCursor;
use nex::aix::discover::{discover, gemini_file, roots};
use nex::aix::file_state::{FileState, ReadKind};
use nex::aix::lineage::{Lineage, seal_lineage};
use nex::aix::{WorkerOptions, default_parser_factory};
use rusqlite::Connection;

const LOG_C: &str = "proj-b/chats/session-2026-04-02T09-00-cccc0003.jsonl";
pub(super) const DOC_D: &str = "proj-c/chats/session-2026-03-01T08-00-dddd0004.json";

pub(super) fn gemini_source(path: PathBuf) -> SourceFile {
    SourceFile {
        provider: Provider::GeminiCli,
        path,
        workspace: None,
        role: FileRole::Main,
    }
}

/// Imports `items` as one tail request (nothing when empty).
pub(super) fn import(conn: &mut Connection, key: &str, items: &[ImportSessionItem]) {
    if items.is_empty() {
        return;
    }
    let values = items
        .iter()
        .map(|i| serde_json::to_value(i).unwrap())
        .collect();
    let resp = run_import(conn, import_req(key, "tail", values)).unwrap();
    assert_eq!(resp.failed, 0, "{key}");
}

/// The ledger of one whole read of `bytes` written at `rel` under a fresh `tmp`.
pub(super) fn full_import(rel: &str, bytes: &[u8]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let update = FileState::new(gemini_source(path), None)
        .update(&default_parser_factory(), true)
        .unwrap()
        .unwrap();
    let mut conn = ledger();
    import(&mut conn, "full", &update.items);
    (canonical(&conn), update.cursor.fingerprint)
}

pub(super) fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Cut points of a log: every line end and the middle of every line (a partial last line
/// waits for its newline).
pub(super) fn cuts(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in line_ends(bytes) {
        out.push(start + (end - start) / 2);
        out.push(end);
        start = end;
    }
    out
}

#[test]
fn gemini_log_appended_in_place_imports_like_one_full_read() {
    let bytes = std::fs::read(fixture(&format!("gemini/tmp/{LOG_C}"))).unwrap();
    let (full, full_fp) = full_import(LOG_C, &bytes);
    let factory = default_parser_factory();
    for restart in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_C);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let source = gemini_source(path.clone());
        let mut conn = ledger();
        let mut kept = FileState::new(source.clone(), None);
        let mut cursor: Option<FileCursor> = None;
        let mut kinds = Vec::new();
        let mut written = 0;
        for (n, cut) in cuts(&bytes).into_iter().enumerate() {
            append(&path, &bytes[written..cut]);
            written = cut;
            let state = if restart {
                kept = FileState::new(source.clone(), cursor.clone());
                &mut kept
            } else {
                &mut kept
            };
            if let Some(u) = state.update(&factory, false).unwrap() {
                assert_eq!(
                    u.cursor.offset,
                    *line_ends(&bytes[..cut]).last().unwrap_or(&0) as u64
                );
                import(&mut conn, &format!("k{n}"), &u.items);
                kinds.push(u.kind);
                cursor = Some(u.cursor);
            }
        }
        let c = cursor.unwrap();
        assert_eq!(
            (c.offset, c.fingerprint.as_str()),
            (bytes.len() as u64, full_fp.as_str())
        );
        assert_eq!(
            c.open_turn_offset, c.offset,
            "the state is rebuilt, nothing re-emitted"
        );
        let later = if restart {
            ReadKind::Resumed
        } else {
            ReadKind::Appended
        };
        assert_eq!(kinds[0], ReadKind::Whole);
        // A header change after turns that borrow from it went out (the model switches while
        // a turn without its own is in the ledger; a restarted read does not know which turns
        // borrow) sends the file whole (README "Tail = backfill").
        assert!(
            kinds[1..]
                .iter()
                .all(|k| *k == later || *k == ReadKind::Whole),
            "{kinds:?}"
        );
        assert!(kinds.iter().filter(|k| **k == later).count() > kinds.len() / 2);
        let inc = canonical(&conn);
        assert_eq!(
            inc,
            full,
            "restart={restart}: {}",
            crate::e2e_support::first_difference(&inc, &full)
        );

        // Read-only: another read leaves the bytes and the mtime as they were.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut again = FileState::new(source.clone(), None);
        again.update(&factory, true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        assert!(!FileState::new(source, Some(c)).needs_read(false).unwrap());
    }
}

/// Reads `f` with a fresh state from `cursor` (a worker restart), fills lineage as the worker
/// does, imports the items and the re-sent headers of the children this read linked; returns
/// the new cursor.
fn read_import(
    conn: &mut Connection,
    lineage: &mut Lineage,
    f: &SourceFile,
    cursor: Option<FileCursor>,
    key: &str,
) -> Option<FileCursor> {
    let factory = default_parser_factory();
    let mut st = FileState::new(f.clone(), cursor);
    let mut u = st.update(&factory, false).unwrap()?;
    let resend = lineage.record(f, &u.items, st.parser().unwrap());
    lineage.fill(f, &mut u.items, &u.cursor);
    seal_lineage(&mut u.items);
    import(conn, key, &u.items);
    for (child, c) in resend {
        let mut cst = FileState::new(child.clone(), Some(c));
        let mut r = cst.resend_header(&factory).unwrap().unwrap();
        assert_eq!(r.kind, ReadKind::Resent);
        lineage.fill(&child, &mut r.items, &r.cursor);
        seal_lineage(&mut r.items);
        import(conn, &format!("{key}-resend"), &r.items);
    }
    Some(u.cursor)
}

/// A new message, a `$set` and a `$rewindTo` appended to the main log, each read by a fresh
/// state from the committed cursor, with the subagent's log read before or after its parent:
/// the ledger of one read of the final files, the child pointing at its parent's tool call.
#[test]
fn gemini_appends_after_restarts_and_subagent_order_converge() {
    let main_rel = "proj-a/chats/session-2026-04-01T10-00-aaaa0001.jsonl";
    let child_rel = format!("proj-a/chats/{GA}/{GB}.jsonl");
    let main = std::fs::read(fixture(&format!("gemini/tmp/{main_rel}"))).unwrap();
    let child = std::fs::read(fixture(&format!("gemini/tmp/{child_rel}"))).unwrap();
    let appends = [
        r#"{"id":"u3","timestamp":"2026-04-01T10:03:00.000Z","type":"user","content":"And the docs?"}"#,
        r#"{"$set":{"summary":"Renamed","lastUpdated":"2026-04-01T10:03:01.000Z"}}"#,
        r#"{"$rewindTo":"u3"}"#,
        r#"{"id":"u4","timestamp":"2026-04-01T10:04:00.000Z","type":"user","content":"Only the docs."}"#,
    ];
    let mut final_main = main.clone();
    for a in appends {
        final_main.extend_from_slice(a.as_bytes());
        final_main.push(b'\n');
    }
    // 0: child first, 1: parent first (both with appends read after restarts); 2: reference,
    // one read of the final parent, then the child.
    let mut ledgers = Vec::new();
    for run in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let (mp, cp) = (dir.path().join(main_rel), dir.path().join(&child_rel));
        std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
        std::fs::write(&mp, if run == 2 { &final_main } else { &main }).unwrap();
        std::fs::write(&cp, &child).unwrap();
        let options = WorkerOptions {
            gemini_dirs: vec![dir.path().to_path_buf()],
            ..Default::default()
        };
        let found: Vec<SourceFile> = discover(&options).into_iter().map(|d| d.source).collect();
        assert_eq!(
            found.iter().map(|f| &f.path).collect::<Vec<_>>(),
            vec![&mp, &cp]
        );
        let (m, c) = (found[0].clone(), found[1].clone());
        let mut conn = ledger();
        let mut lineage = Lineage::default();
        let order = if run == 0 { [&c, &m] } else { [&m, &c] };
        let mut main_cursor = None;
        for (n, f) in order.into_iter().enumerate() {
            let cursor = read_import(&mut conn, &mut lineage, f, None, &format!("first{n}"));
            if f.path == mp {
                main_cursor = cursor;
            }
        }
        if run < 2 {
            for (n, a) in appends.iter().enumerate() {
                append(&mp, format!("{a}\n").as_bytes());
                main_cursor =
                    read_import(&mut conn, &mut lineage, &m, main_cursor, &format!("a{n}"));
            }
        }
        let spawn: String = conn
            .query_row(
                "SELECT spawn_tool_call_id FROM sessions WHERE is_subagent = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let tool: String = conn
            .query_row(
                "SELECT id FROM tool_calls WHERE tool_name = 'codebase_investigator'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            spawn, tool,
            "run {run}: the child points at its parent's tool-call row"
        );
        ledgers.push(canonical(&conn));
    }
    for run in 0..2 {
        let (a, b) = (&ledgers[run], &ledgers[2]);
        assert_eq!(
            a,
            b,
            "run {run}: {}",
            crate::e2e_support::first_difference(a, b)
        );
    }
    // The rewind re-edited u3: u4 branches from u2 as u3 did.
    let (items, _) = {
        let dir = tempfile::tempdir().unwrap();
        let mp = dir.path().join(main_rel);
        std::fs::create_dir_all(mp.parent().unwrap()).unwrap();
        std::fs::write(&mp, &final_main).unwrap();
        parse_all(&gemini_source(mp))
    };
    let turns: Vec<(String, Option<String>)> = items[0]
        .turns
        .iter()
        .map(|t| (t.source_turn_id.clone(), t.parent_source_turn_id.clone()))
        .collect();
    assert_eq!(
        turns,
        vec![
            (s("i0"), None),
            (s("u2"), o("i0")),
            (s("u3"), o("u2")),
            (s("u4"), o("u2")),
        ]
    );
    assert_eq!(
        items[0].session.metadata.as_ref().unwrap()["summary"],
        "Renamed"
    );
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

fn write_aged(path: &Path, text: &str, secs_ago: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    set_mtime(path, secs_ago);
}

#[test]
fn gemini_tmp_tree_is_discovered_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    let chats = tmp.join("p1/chats");
    let main = chats.join("session-2026-04-01T10-00-aaaa0001.jsonl");
    // The child is older than its parent on disk, yet must come after it.
    let child = chats.join(format!("{GA}/{GB}.jsonl"));
    let legacy = chats.join("session-2026-03-01T08-00-dddd0004.json");
    let migrated = chats.join("session-2026-03-02T08-00-eeee0005.json");
    let migrated_log = chats.join("session-2026-03-02T08-00-eeee0005.jsonl");
    // A subagent chat kept as a document, under a short id, and one migrated to a log.
    let doc_child = chats.join(format!("{GA}/x.json"));
    let migrated_child = chats.join(format!("{GA}/y.json"));
    let migrated_child_log = chats.join(format!("{GA}/y.jsonl"));
    write_aged(&main, "{}\n", 100);
    write_aged(&child, "{}\n", 500);
    write_aged(&legacy, "{}", 1000);
    write_aged(&migrated, "{}", 900);
    write_aged(&migrated_log, "{}\n", 50);
    write_aged(&doc_child, "{}", 20);
    write_aged(&migrated_child, "{}", 30);
    write_aged(&migrated_child_log, "{}\n", 15);
    for other in [
        tmp.join("p1/logs.json"),
        tmp.join("p1/checkpoint-tag.json"),
        chats.join("notes.txt"),
        chats.join("other.jsonl"),
        chats.join(format!("{GA}/notes.txt")),
        tmp.join("p2/session-2026-01-01T00-00-ffff0006.jsonl"),
    ] {
        write_aged(&other, "{}\n", 10);
    }
    let options = WorkerOptions {
        gemini_dirs: vec![tmp.clone(), dir.path().join("missing")],
        ..Default::default()
    };
    assert!(roots(&options).contains(&(Provider::GeminiCli, tmp.clone())));
    let found: Vec<(PathBuf, FileRole)> = discover(&options)
        .into_iter()
        .map(|d| {
            assert_eq!(d.source.provider, Provider::GeminiCli);
            (d.source.path, d.source.role)
        })
        .collect();
    let sub = FileRole::Subagent {
        agent_id: s(GB),
        parent_session_id: o(GA),
        meta: None,
    };
    assert_eq!(
        found,
        vec![
            (legacy.clone(), FileRole::Main),
            (main.clone(), FileRole::Main),
            (child.clone(), sub.clone()),
            (migrated_log, FileRole::Main),
            (doc_child.clone(), child_role("x")),
            (migrated_child_log, child_role("y")),
        ]
    );
    assert_eq!(gemini_file(&child).map(|f| f.role), Some(sub));
    assert_eq!(gemini_file(&legacy).map(|f| f.role), Some(FileRole::Main));
    assert!(gemini_file(&chats.join("other.jsonl")).is_none());
    assert!(gemini_file(&tmp.join("p1/logs.json")).is_none());
    assert_eq!(
        gemini_file(&doc_child).map(|f| f.role),
        Some(child_role("x"))
    );
    assert!(gemini_file(&chats.join(format!("{GA}/notes.txt"))).is_none());
}

fn child_role(agent: &str) -> FileRole {
    FileRole::Subagent {
        agent_id: s(agent),
        parent_session_id: o(GA),
        meta: None,
    }
}

/// A project's working directory comes from its `.project_root`, else from the registry
/// `projects.json` by slug; a hashed directory has none. It reaches the item and its
/// fingerprint.
#[test]
fn gemini_workspace_comes_from_the_project_registry() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("gemini/tmp");
    let log = |project: &str| {
        tmp.join(project)
            .join("chats/session-2026-04-01T10-00-aaaa0001.jsonl")
    };
    let line = |text: &str| format!("{text}\n");
    let session = [
        line(r#"{"sessionId":"g-ws","startTime":"2026-04-01T10:00:00Z"}"#),
        line(r#"{"id":"u1","timestamp":"2026-04-01T10:00:00Z","type":"user","content":"hi"}"#),
    ]
    .concat();
    for project in ["rooted", "my-app", "0f3a9c"] {
        write_aged(&log(project), &session, 10);
    }
    std::fs::write(tmp.join("rooted/.project_root"), "/work/rooted\n").unwrap();
    std::fs::write(
        dir.path().join("gemini/projects.json"),
        r#"{"projects": {"/work/my-app": "my-app", "/work/rooted": "not-this"}}"#,
    )
    .unwrap();
    let options = WorkerOptions {
        gemini_dirs: vec![tmp.clone()],
        ..Default::default()
    };
    let mut found: Vec<(PathBuf, Option<String>)> = discover(&options)
        .into_iter()
        .map(|d| (d.source.path, d.source.workspace))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            (log("0f3a9c"), None),
            (log("my-app"), o("/work/my-app")),
            (log("rooted"), o("/work/rooted")),
        ]
    );
    let item = |workspace: Option<&str>| {
        let mut file = gemini_source(log("my-app"));
        file.workspace = workspace.map(str::to_owned);
        let mut p = parser_for(&file);
        p.push_lines(session.as_bytes(), 0, true);
        p.take_items().remove(0)
    };
    let (with, without) = (item(Some("/work/my-app")), item(None));
    assert_eq!(with.session.workspace_path.as_deref(), Some("/work/my-app"));
    assert_eq!(without.session.workspace_path, None);
    assert_ne!(
        with.source_session_fingerprint,
        without.source_session_fingerprint
    );
    assert_eq!(
        item(Some("/work/my-app")).source_session_fingerprint,
        with.source_session_fingerprint
    );
}

/// Every real sample under `NEX_SAMPLES_DIR/gemini` (legacy documents) read whole through
/// `FileState`: exact counts.
#[test]
fn gemini_real_samples_parse_with_exact_counts() {
    let Some(dir) = std::env::var_os("NEX_SAMPLES_DIR").filter(|d| !d.is_empty()) else {
        eprintln!("NEX_SAMPLES_DIR unset: skipped");
        return;
    };
    let dir = PathBuf::from(dir).join("gemini");
    let mut files = Vec::new();
    crate::e2e_support::files_under(&dir, &mut files);
    files.sort();
    // (file name, session id, turns, messages, tool calls, lines, thinking of the reply); the
    // first file ends with a newline, the second does not (its last line counts all the same).
    let expected = [
        (
            "thinking_only.json",
            "sess-uuid-thinking",
            1,
            2,
            0,
            33,
            "Understanding request\nThe user wants an explanation of the system.\n\
             Planning response\nI should describe the config loading flow.",
        ),
        (
            "tool_calls.json",
            "sess-uuid-2",
            1,
            2,
            1,
            38,
            "Planning\nI need to read the file first.",
        ),
    ];
    assert_eq!(files.len(), expected.len(), "{files:?}");
    let factory = default_parser_factory();
    for (path, (name, sid, n_turns, n_msgs, n_tools, n_lines, thinking)) in
        files.iter().zip(expected)
    {
        assert_eq!(path.file_name().unwrap(), name);
        let before = std::fs::read(path).unwrap();
        let mut state = FileState::new(gemini_source(path.clone()), None);
        let u = state.update(&factory, true).unwrap().unwrap();
        let item = &u.items[0];
        assert_eq!(u.items.len(), 1);
        assert_eq!(item.source_session_id, sid);
        assert_eq!(
            (item.turns.len(), item.messages.len(), item.tool_calls.len()),
            (n_turns, n_msgs, n_tools),
            "{name}"
        );
        assert_eq!(
            item.turns[0].response_message_source_id.as_deref(),
            Some("a1")
        );
        assert_eq!(item.messages[1].thinking.as_deref(), Some(thinking));
        let stats = state.parser().unwrap().stats();
        assert_eq!((stats.lines, stats.malformed_lines), (n_lines, 0), "{name}");
        assert!(stats.skipped_records.is_empty());
        assert_eq!(u.cursor.offset, before.len() as u64);
        assert_eq!(std::fs::read(path).unwrap(), before, "read-only");
        if n_tools == 1 {
            assert_eq!(
                tools(item),
                vec![(
                    s("a1#0"),
                    s("u1"),
                    o("a1"),
                    s("read_file"),
                    s("completed"),
                    item.messages[1].created_at_ms.into(),
                    None
                )]
            );
        }
    }
}
