//! Item rule 15 (`retract`): a session the worker imported whose source still exists but, read
//! whole under the current mapping, yields no such session any more is deleted from the ledger,
//! and only then. Real processes: the built `nex import replay` and `nex import verify`, the
//! real worker runtime and stores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use nex::aix::cursor::cursor_map;
use nex::aix::mapping::{self, MappingVersions};
use nex::aix::sources::Provider;
use nex::aix::sources::store::store_cursor_key;
use nex::aix::sources::{ParseStats, SessionParser, SourceFile};
use nex::aix::{
    FrameSink, ParserFactory, RunSpec, StopSignal, WorkerOptions, WorkerStatus,
    default_parser_factory, run_mode,
};
use nex::protocol::{Cursor, Envelope, ImportRequest, ImportSessionItem, RunMode, WorkerFrame};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::e2e_support::{canonical, first_difference, open};
use crate::worker_backfill::backfill;
use crate::worker_fake::{Capture, batch_items};
use crate::worker_mapping::replay_report as replay;

/// 2025-03-01T00:00:00Z.
const T0: i64 = 1_740_787_200_000;

/// The legacy chat tabs never used: each holds only its input box (a user bubble without text).
const EMPTY_TABS: [&str; 3] = ["tab-blank-1", "tab-blank-2", "tab-blank-3"];

/// A Cursor workspace database as a 2024 Cursor leaves it (`ItemTable` chat data, our text):
/// one tab used (a question, its answer and the input box after them) and three never used.
fn write_workspace_db(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
         CREATE TABLE cursorDiskKV (key TEXT PRIMARY KEY, value BLOB);",
    )
    .unwrap();
    let input_box = |id: &str| json!({"type": "user", "id": id, "messageType": 2, "rawText": ""});
    let mut tabs = vec![json!({
        "tabId": "tab-used", "chatTitle": "Hedge trimming", "lastSendTime": T0 + 60_000,
        "bubbles": [
            {"type": "user", "id": "q1", "messageType": 2, "rawText": "How short can I cut the hedge?"},
            {"type": "ai", "id": "a1", "messageType": 3, "rawText": "A third of its height.",
             "modelType": "gpt-4"},
            input_box("q2")
        ]
    })];
    for (n, tab) in EMPTY_TABS.iter().enumerate() {
        tabs.push(
            json!({"tabId": tab, "chatTitle": null, "lastSendTime": null,
                         "bubbles": [input_box(&format!("box-{n}"))]}),
        );
    }
    conn.execute(
        "INSERT INTO ItemTable (key, value) VALUES (?1, ?2)",
        rusqlite::params![
            "workbench.panel.aichat.view.aichat.chatdata",
            json!({"tabs": tabs, "chatDataVersion": 1})
                .to_string()
                .into_bytes()
        ],
    )
    .unwrap();
}

fn options(db: &Path, empty: &Path, mappings: MappingVersions) -> WorkerOptions {
    WorkerOptions {
        claude_dirs: vec![empty.to_path_buf()],
        cursor_dbs: vec![db.to_path_buf()],
        mappings,
        parse_threads: 1,
        ..Default::default()
    }
}

/// What Cursor mapping 2 sent for a tab holding only its input box: a session of one turn whose
/// prompt is the empty bubble, with its store cursor under version 2.
fn mapping_2_empty_tab(db: &Path, tab: &str, n: usize) -> (ImportSessionItem, Cursor) {
    let item: ImportSessionItem = serde_json::from_value(json!({
        "sourceProvider": "cursor", "sourceSessionId": tab,
        "sourceSessionFingerprint": format!("mapping-2-{tab}"),
        "session": {"metadata": {"legacy": "chatdata"}},
        "turns": [{"sourceTurnId": format!("box-{n}"), "startedAtMs": T0,
                   "queryMessageSourceIds": [format!("box-{n}")]}],
        "messages": [{"sourceMessageId": format!("box-{n}"), "sourceTurnId": format!("box-{n}"),
                      "role": "user", "sequence": 0, "createdAtMs": T0}],
        "mappingVersion": 2, "wholeSession": true
    }))
    .unwrap();
    let cursor = Cursor {
        key: store_cursor_key(Provider::Cursor, db, tab),
        value: json!({"v": 1, "token": format!("m2:legacy:{tab}"),
                      "fingerprint": format!("mapping-2-{tab}")}),
    };
    (item, cursor)
}

/// The ledger a user has who imported with Cursor mapping 2: the used tab (read by this build
/// under version 2) and the three empty tabs as mapping 2 made them, with their cursors.
fn mapping_2_ledger(db: &Path, empty: &Path, ledger: &Path) {
    let v2 = MappingVersions::CURRENT.with(Provider::Cursor, 2);
    let mut frames = backfill(&options(db, empty, v2), &[], &default_parser_factory());
    let (items, cursors): (Vec<_>, Vec<_>) = EMPTY_TABS
        .iter()
        .enumerate()
        .map(|(n, tab)| mapping_2_empty_tab(db, tab, n))
        .unzip();
    let run_id = frames[0].run_id.clone();
    let batch = Envelope {
        run_id,
        seq: None,
        body: WorkerFrame::ImportBatch(ImportRequest {
            source: "aix".into(),
            run_id: None,
            mode: "backfill".into(),
            persona_id: None,
            idempotency_key: "aix:backfill:mapping-2-empty-tabs".into(),
            items,
            cursors,
        }),
    };
    // Before the terminal frame; the seqs renumbered.
    let end = frames.len() - 1;
    frames.insert(end, batch);
    for (n, f) in frames.iter_mut().enumerate() {
        f.seq = Some(n as u64 + 1);
    }
    let report = replay(&frames, ledger);
    assert_eq!(report["imported"], 4, "{report}");
}

fn sessions(ledger: &Path) -> Vec<String> {
    let conn = open(ledger);
    let mut stmt = conn
        .prepare("SELECT origin_session_id FROM sessions ORDER BY 1")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `nex import verify --json` of the Cursor database alone.
fn verify(home: &Path, ledger: &Path, db: &Path, empty: &Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_nex"))
        .args(["import", "verify", "--json", "--ledger"])
        .arg(ledger)
        .arg("--worker-cmd")
        .arg(env!("CARGO_BIN_EXE_aix"))
        .arg("--cursor-db")
        .arg(db)
        .args(
            [
                "--claude-dir",
                "--codex-dir",
                "--gemini-dir",
                "--opencode-dir",
            ]
            .iter()
            .flat_map(|flag| [std::ffi::OsStr::new(flag), empty.as_os_str()]),
        )
        .env("NEX_HOME", home.join("nex-home"))
        .env("HOME", home)
        .env_remove("NEX_LEDGER")
        .env_remove("NEX_WORKER_CMD")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let report: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn cursor_report(report: &Value) -> &Value {
    report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "cursor")
        .unwrap()
}

/// Cursor mapping 3 no longer makes a session of a legacy chat tab that holds only its input
/// box; a user who imported with mapping 2 kept those sessions, which `nex import verify`
/// listed as only in the ledger. The next plain backfill retracts them (and re-imports the used
/// tab under mapping 3): the ledger equals a clean import, verify lists nothing, and a second
/// backfill does nothing.
#[test]
fn the_next_backfill_retracts_the_empty_chat_tabs_cursor_mapping_2_imported() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir
        .path()
        .join("cursor/User/workspaceStorage/5f1c/state.vscdb");
    write_workspace_db(&db);
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let old = dir.path().join("old.db");
    mapping_2_ledger(&db, &empty, &old);
    assert_eq!(
        sessions(&old),
        ["tab-blank-1", "tab-blank-2", "tab-blank-3", "tab-used"]
    );
    let (_, before) = verify(dir.path(), &old, &db, &empty);
    let only: Vec<&str> = cursor_report(&before)["only_in_ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source_session_id"].as_str().unwrap())
        .collect();
    assert_eq!(only, EMPTY_TABS, "{before}");

    let clean = dir.path().join("clean.db");
    let current = options(&db, &empty, MappingVersions::CURRENT);
    replay(&backfill(&current, &[], &default_parser_factory()), &clean);
    assert_eq!(sessions(&clean), ["tab-used"]);

    let cursors = nex::ledger::load_cursors(&open(&old), "aix").unwrap();
    let frames = backfill(&current, &cursors, &default_parser_factory());
    let items = batch_items(&frames);
    let mut retracted: Vec<&str> = items
        .iter()
        .filter(|i| i.retract)
        .map(|i| i.source_session_id.as_str())
        .collect();
    retracted.sort_unstable();
    assert_eq!(retracted, EMPTY_TABS);
    assert!(
        items
            .iter()
            .all(|i| i.mapping_version == Some(mapping::CURSOR))
    );
    let report = replay(&frames, &old);
    assert_eq!(report["retracted"], 3, "{report}");
    assert_eq!(report["upserted"], 1, "{report}");
    let (got, expected) = (canonical(&open(&old)), canonical(&open(&clean)));
    assert!(got == expected, "{}", first_difference(&got, &expected));

    let (code, after) = verify(dir.path(), &old, &db, &empty);
    assert_eq!(code, 0, "{after}");
    let cursor = cursor_report(&after);
    assert_eq!(cursor["only_in_ledger"], json!([]), "{after}");
    assert_eq!(cursor["matched"], 1, "{after}");

    // Retracted once: the next backfill finds every tab unchanged.
    let cursors = nex::ledger::load_cursors(&open(&old), "aix").unwrap();
    let again = backfill(&current, &cursors, &default_parser_factory());
    assert_eq!(batch_items(&again), Vec::<ImportSessionItem>::new());
}

/// Rows outlive their sources: a tab the database no longer holds, and a database that is gone,
/// are never retracted, whatever mapping imported them.
#[test]
fn a_chat_tab_or_database_that_is_gone_is_never_retracted() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir
        .path()
        .join("cursor/User/workspaceStorage/5f1c/state.vscdb");
    write_workspace_db(&db);
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let ledger = dir.path().join("old.db");
    mapping_2_ledger(&db, &empty, &ledger);
    let current = options(&db, &empty, MappingVersions::CURRENT);

    // The empty tabs closed: the chat data holds the used tab only.
    let conn = Connection::open(&db).unwrap();
    let key = "workbench.panel.aichat.view.aichat.chatdata";
    let value: Vec<u8> = conn
        .query_row("SELECT value FROM ItemTable WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .unwrap();
    let mut data: Value = serde_json::from_slice(&value).unwrap();
    data["tabs"].as_array_mut().unwrap().truncate(1);
    conn.execute(
        "INSERT INTO ItemTable (key, value) VALUES (?1, ?2)",
        rusqlite::params![key, data.to_string().into_bytes()],
    )
    .unwrap();
    drop(conn);
    let cursors = nex::ledger::load_cursors(&open(&ledger), "aix").unwrap();
    let frames = backfill(&current, &cursors, &default_parser_factory());
    let items = batch_items(&frames);
    assert_eq!(items.len(), 1, "the used tab, under mapping 3");
    assert!(items.iter().all(|i| !i.retract));
    let report = replay(&frames, &ledger);
    assert_eq!(report.get("retracted"), None, "{report}");
    assert_eq!(sessions(&ledger).len(), 4);

    // The database gone.
    std::fs::remove_file(&db).unwrap();
    let cursors = nex::ledger::load_cursors(&open(&ledger), "aix").unwrap();
    let frames = backfill(&current, &cursors, &default_parser_factory());
    assert_eq!(batch_items(&frames), Vec::<ImportSessionItem>::new());
    assert_eq!(sessions(&ledger).len(), 4);
}

/// The resumed file of the `resumed-chain` fixture holding only its copies of the owner's lines
/// (a summary and six copies), in a project folder of `root`, imported by one backfill before
/// its owner file exists.
struct CopiesOnly {
    proj: PathBuf,
    chain: PathBuf,
    options: WorkerOptions,
    ledger: PathBuf,
}

const CHAIN_OWNER: &str = "aaaaaaaa-1111-4000-8000-00000000000a.jsonl";
const CHAIN_RESUMED: &str = "cccccccc-3333-4000-8000-00000000000c.jsonl";

fn copies_only_imported(root: &Path) -> CopiesOnly {
    let proj = root.join("projects").join("-work-garden");
    std::fs::create_dir_all(&proj).unwrap();
    let chain =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code/resumed-chain");
    let text = std::fs::read_to_string(chain.join(CHAIN_RESUMED)).unwrap();
    let copies: String = text.split_inclusive('\n').take(7).collect();
    std::fs::write(proj.join(CHAIN_RESUMED), copies).unwrap();
    let options = WorkerOptions {
        claude_dirs: vec![root.join("projects")],
        parse_threads: 1,
        ..Default::default()
    };
    let ledger = root.join("agents.db");
    replay(&backfill(&options, &[], &default_parser_factory()), &ledger);
    CopiesOnly {
        proj,
        chain,
        options,
        ledger,
    }
}

/// A Claude Code resumed file holding copies only, imported while their owner was not written
/// yet, then deleted before its owner appears: nothing reads it whole again, and its session
/// stays (the retract of item rule 15 needs the file's final content).
#[test]
fn a_copies_only_claude_file_that_is_gone_keeps_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let CopiesOnly {
        proj,
        chain,
        options,
        ledger,
    } = copies_only_imported(dir.path());
    assert_eq!(sessions(&ledger), ["cccccccc-3333-4000-8000-00000000000c"]);

    std::fs::remove_file(proj.join(CHAIN_RESUMED)).unwrap();
    std::fs::copy(chain.join(CHAIN_OWNER), proj.join(CHAIN_OWNER)).unwrap();
    let cursors = nex::ledger::load_cursors(&open(&ledger), "aix").unwrap();
    let frames = backfill(&options, &cursors, &default_parser_factory());
    assert!(batch_items(&frames).iter().all(|i| !i.retract));
    replay(&frames, &ledger);
    assert_eq!(
        sessions(&ledger),
        [
            "aaaaaaaa-1111-4000-8000-00000000000a",
            "cccccccc-3333-4000-8000-00000000000c"
        ]
    );
}

/// The same file still on disk when its owner appears: the next backfill retracts its session
/// (its final content is the owner's copies only), once.
#[test]
fn a_copies_only_claude_file_still_there_is_retracted_once_its_owner_appears() {
    let dir = tempfile::tempdir().unwrap();
    let CopiesOnly {
        proj,
        chain,
        options,
        ledger,
    } = copies_only_imported(dir.path());
    std::fs::copy(chain.join(CHAIN_OWNER), proj.join(CHAIN_OWNER)).unwrap();
    let cursors = nex::ledger::load_cursors(&open(&ledger), "aix").unwrap();
    let frames = backfill(&options, &cursors, &default_parser_factory());
    let retracts: Vec<String> = batch_items(&frames)
        .into_iter()
        .filter(|i| i.retract)
        .map(|i| i.source_session_id)
        .collect();
    assert_eq!(retracts, ["cccccccc-3333-4000-8000-00000000000c"]);
    let report = replay(&frames, &ledger);
    assert_eq!(report["retracted"], 1, "{report}");
    assert_eq!(sessions(&ledger), ["aaaaaaaa-1111-4000-8000-00000000000a"]);
    for table in ["turns", "messages", "tool_calls"] {
        let stale: i64 = open(&ledger)
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE session_label LIKE '%cccccccc%'"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stale, 0, "{table}");
    }
    let cursors = nex::ledger::load_cursors(&open(&ledger), "aix").unwrap();
    let again = backfill(&options, &cursors, &default_parser_factory());
    assert_eq!(batch_items(&again), Vec::<ImportSessionItem>::new());
}

/// Gemini CLI mapping 5's name of a Code Assist log, `a2a-server/<file stem>`, from mapping 6's
/// `a2a-server/<project>/<file stem>`: the parser of the old mapping.
struct ProjectlessCodeAssist(Box<dyn SessionParser>);

impl SessionParser for ProjectlessCodeAssist {
    fn push_lines(&mut self, bytes: &[u8], offset: u64, emit: bool) {
        self.0.push_lines(bytes, offset, emit);
    }
    fn take_items(&mut self) -> Vec<ImportSessionItem> {
        let mut items = self.0.take_items();
        for item in &mut items {
            let parts: Vec<&str> = item.source_session_id.split('/').collect();
            if let ["a2a-server", _project, stem] = parts[..] {
                item.source_session_id = format!("a2a-server/{stem}");
            }
        }
        items
    }
    fn open_turn_offset(&self) -> u64 {
        self.0.open_turn_offset()
    }
    fn fingerprint(&self) -> String {
        self.0.fingerprint()
    }
    fn stats(&self) -> &ParseStats {
        self.0.stats()
    }
}

const CODE_ASSIST_LOGS: [&str; 2] = [
    "session-2026-05-27T11-44-a2a-serv.jsonl",
    "session-2026-05-27T12-15-a2a-serv.jsonl",
];

/// Two Code Assist logs of project `proj-e` imported by mapping 5; the options of a run under
/// `gemini` (the Gemini CLI mapping version).
fn code_assist_imported(root: &Path, ledger: &Path) -> (PathBuf, MappingVersions) {
    let chats = root.join("tmp/proj-e/chats");
    std::fs::create_dir_all(&chats).unwrap();
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemini/tmp/proj-e/chats");
    for name in CODE_ASSIST_LOGS {
        std::fs::copy(fixtures.join(name), chats.join(name)).unwrap();
    }
    let old = MappingVersions::CURRENT.with(Provider::GeminiCli, 5);
    let inner = default_parser_factory();
    let v5: ParserFactory = Arc::new(move |f: &SourceFile| {
        Box::new(ProjectlessCodeAssist(inner(f))) as Box<dyn SessionParser>
    });
    replay(&backfill(&gemini_options(root, old), &[], &v5), ledger);
    assert_eq!(
        sessions(ledger),
        [
            "a2a-server/2026-05-27T11-44-a2a-serv",
            "a2a-server/2026-05-27T12-15-a2a-serv"
        ]
    );
    (root.join("tmp"), old)
}

fn gemini_options(root: &Path, mappings: MappingVersions) -> WorkerOptions {
    WorkerOptions {
        gemini_dirs: vec![root.join("tmp")],
        mappings,
        parse_threads: 1,
        ..Default::default()
    }
}

const RENAMED: [&str; 2] = [
    "a2a-server/proj-e/2026-05-27T11-44-a2a-serv",
    "a2a-server/proj-e/2026-05-27T12-15-a2a-serv",
];

/// What an upgrade's frames must hold and leave: each log again under its new name, each old
/// name retracted, and a ledger equal to a clean import of mapping 6.
fn assert_renamed(frames: &[Envelope<WorkerFrame>], ledger: &Path, root: &Path) {
    let items = batch_items(frames);
    let mut sent: Vec<(&str, bool)> = items
        .iter()
        .map(|i| (i.source_session_id.as_str(), i.retract))
        .collect();
    sent.sort_unstable();
    assert_eq!(
        sent,
        [
            ("a2a-server/2026-05-27T11-44-a2a-serv", true),
            ("a2a-server/2026-05-27T12-15-a2a-serv", true),
            (RENAMED[0], false),
            (RENAMED[1], false),
        ]
    );
    let report = replay(frames, ledger);
    assert_eq!(report["retracted"], 2, "{report}");
    assert_eq!(sessions(ledger), RENAMED);
    let clean = root.join("clean.db");
    replay(
        &backfill(
            &gemini_options(root, MappingVersions::CURRENT),
            &[],
            &default_parser_factory(),
        ),
        &clean,
    );
    let (got, want) = (canonical(&open(ledger)), canonical(&open(&clean)));
    assert!(got == want, "{}", first_difference(&got, &want));
}

#[test]
fn the_next_backfill_renames_code_assist_sessions_and_retracts_their_old_names() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("agents.db");
    code_assist_imported(dir.path(), &ledger);
    let cursors = nex::ledger::load_cursors(&open(&ledger), "aix").unwrap();
    let options = gemini_options(dir.path(), MappingVersions::CURRENT);
    let frames = backfill(&options, &cursors, &default_parser_factory());
    assert_renamed(&frames, &ledger, dir.path());
    // Once upgraded, nothing is sent again: the retracts are not repeated.
    let cursors = nex::ledger::load_cursors(&open(&ledger), "aix").unwrap();
    let again = backfill(&options, &cursors, &default_parser_factory());
    assert_eq!(batch_items(&again), Vec::<ImportSessionItem>::new());
}

#[test]
fn the_next_tail_start_renames_code_assist_sessions_and_retracts_their_old_names() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("agents.db");
    code_assist_imported(dir.path(), &ledger);
    let cursors = nex::ledger::load_cursors(&open(&ledger), "aix").unwrap();
    let cap = Capture::default();
    let stop = Arc::new(StopSignal::default());
    let (sink_cap, s) = (cap.clone(), stop.clone());
    let options = gemini_options(dir.path(), MappingVersions::CURRENT);
    let handle = std::thread::spawn(move || {
        let sink = FrameSink::new(Box::new(sink_cap), "tail-run".into());
        let spec = RunSpec {
            mode: RunMode::Tail,
            persona_id: None,
            cursors: cursor_map(&cursors),
            store_cursors: nex::aix::stores::store_cursor_map(&cursors),
            options,
        };
        let counters = run_mode(
            &spec,
            &default_parser_factory(),
            &sink,
            &s,
            &WorkerStatus::default(),
        )?;
        sink.complete(&counters.progress(false))
            .map_err(nex::aix::WorkerError::Output)
    });
    cap.wait_for("4 items", |f| batch_items(f).len() >= 4);
    stop.stop();
    handle.join().unwrap().unwrap();
    assert_renamed(&cap.frames(), &ledger, dir.path());
}
