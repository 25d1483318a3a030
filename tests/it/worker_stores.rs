//! Polled stores in a run (the parsers' own tests assert exact items): a backfill emits every
//! Cursor session with its own store cursor, a run started on those cursors reads nothing, the
//! tail picks up rows written while the agent runs (WAL open, like a live Cursor) and an
//! OpenCode legacy part file that no stamp sees, and the database and its WAL are
//! byte-identical afterwards. Waits are event-driven with generous timeouts; nothing asserts
//! timing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nex::aix::sources::StoreCursor;
use nex::aix::stores::store_cursor_map;
use nex::aix::{
    FrameSink, RunCounters, RunSpec, StopSignal, WorkerOptions, WorkerStatus, run_mode,
};
use nex::protocol::{Cursor, Envelope, ImportSessionItem, RunMode, WorkerFrame};
use rusqlite::Connection;
use serde_json::json;

use crate::worker_fake::{Capture, batch_items, cursors, fake_factory};

const T0: i64 = 1_760_000_000_000;

/// A Cursor `state.vscdb` being written by a running Cursor (WAL, connection held open).
pub struct LiveCursorDb {
    _dir: Option<tempfile::TempDir>,
    pub path: PathBuf,
    conn: Connection,
}

impl LiveCursorDb {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Self::at(&dir.path().join("User/globalStorage/state.vscdb"));
        db._dir = Some(dir);
        db
    }

    /// A new database at `path` (its directories created).
    pub fn at(path: &Path) -> Self {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let path = path.to_path_buf();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
             CREATE TABLE cursorDiskKV (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
             INSERT INTO cursorDiskKV VALUES ('cursorAuth/accessToken', 'secret-token');",
        )
        .unwrap();
        Self {
            _dir: None,
            path,
            conn,
        }
    }

    fn put(&self, key: &str, value: serde_json::Value) {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO cursorDiskKV (key, value) VALUES (?1, ?2)",
                (key, value.to_string()),
            )
            .unwrap();
    }

    /// A composer whose conversation is `bubbles` (id, type 1 user / 2 assistant, text).
    pub fn composer(&self, id: &str, created: i64, bubbles: &[(&str, u8, &str)]) {
        let headers: Vec<_> = bubbles
            .iter()
            .map(|(b, t, _)| json!({"bubbleId": b, "type": t}))
            .collect();
        for (i, (b, t, text)) in bubbles.iter().enumerate() {
            let mut bubble = json!({"_v": 2, "bubbleId": b, "type": t, "text": text,
                "createdAt": created + i as i64 * 1000});
            if *t == 2 {
                bubble["tokenCount"] = json!({"inputTokens": 100, "outputTokens": 10});
            }
            self.put(&format!("bubbleId:{id}:{b}"), bubble);
        }
        self.put(
            &format!("composerData:{id}"),
            json!({"_v": 3, "composerId": id, "name": format!("chat {id}"), "createdAt": created,
                "lastUpdatedAt": created + bubbles.len() as i64 * 1000,
                "fullConversationHeadersOnly": headers}),
        );
    }

    /// The database and WAL bytes (the agent's data; `-shm` is the live lock index).
    pub fn data(&self) -> Vec<Vec<u8>> {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        vec![
            std::fs::read(&self.path).unwrap(),
            std::fs::read(wal).unwrap(),
        ]
    }
}

fn options(db: &Path) -> WorkerOptions {
    WorkerOptions {
        cursor_dbs: vec![db.to_path_buf()],
        ..Default::default()
    }
}

fn run(mode: RunMode, options: WorkerOptions, start: &[Cursor]) -> Vec<Envelope<WorkerFrame>> {
    run_counted(mode, options, start).0
}

fn run_counted(
    mode: RunMode,
    options: WorkerOptions,
    start: &[Cursor],
) -> (Vec<Envelope<WorkerFrame>>, RunCounters) {
    let (factory, _) = fake_factory();
    let cap = Capture::default();
    let sink = FrameSink::new(Box::new(cap.clone()), "store-run".into());
    let spec = RunSpec {
        mode,
        persona_id: None,
        cursors: Default::default(),
        store_cursors: store_cursor_map(start),
        options,
    };
    let counters = run_mode(
        &spec,
        &factory,
        &sink,
        &StopSignal::default(),
        &WorkerStatus::default(),
    )
    .unwrap();
    (cap.frames(), counters)
}

fn sessions(items: &[ImportSessionItem]) -> Vec<(String, usize)> {
    items
        .iter()
        .map(|i| (i.source_session_id.clone(), i.messages.len()))
        .collect()
}

#[test]
fn backfill_emits_each_session_with_its_cursor_and_a_resumed_run_reads_nothing() {
    let db = LiveCursorDb::new();
    db.composer("c1", T0, &[("b1", 1, "hello"), ("b2", 2, "hi")]);
    db.composer("c2", T0 + 60_000, &[("b1", 1, "again"), ("b2", 2, "sure")]);
    let before = db.data();

    let frames = run(RunMode::Backfill, options(&db.path), &[]);
    let items = batch_items(&frames);
    assert_eq!(
        sessions(&items),
        vec![("c1".to_owned(), 2), ("c2".to_owned(), 2)]
    );
    assert!(items.iter().all(|i| i.source_provider == "cursor"));
    let committed = cursors(&frames);
    let abs = std::path::absolute(&db.path).unwrap();
    let keys: Vec<&str> = committed.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            format!("cursor:{}#c1", abs.display()),
            format!("cursor:{}#c2", abs.display())
        ]
    );
    for c in &committed {
        let sc = StoreCursor::from_value(&c.value).expect("a store cursor");
        assert!(!sc.token.is_empty());
    }

    // Started on the committed cursors: nothing changed, nothing read or emitted.
    let (again, counters) = run_counted(RunMode::Backfill, options(&db.path), &committed);
    assert!(batch_items(&again).is_empty());
    assert_eq!(counters.skipped_files, 2);
    assert_eq!(counters.emitted_files, 0);

    // One session grows: only it comes back, whole.
    db.composer(
        "c2",
        T0 + 60_000,
        &[
            ("b1", 1, "again"),
            ("b2", 2, "sure"),
            ("b3", 1, "more"),
            ("b4", 2, "ok"),
        ],
    );
    let grown = run(RunMode::Backfill, options(&db.path), &committed);
    assert_eq!(sessions(&batch_items(&grown)), vec![("c2".to_owned(), 4)]);
    // Never a byte of the agent's data written, nor a value of a key we do not read.
    assert_ne!(
        db.data(),
        before,
        "the fixture's own write shows in the bytes"
    );
    let snapshot = db.data();
    run(RunMode::Backfill, options(&db.path), &[]);
    assert_eq!(db.data(), snapshot);
    assert!(
        !String::from_utf8_lossy(&serde_json::to_vec(&items).unwrap()).contains("secret-token")
    );
}

#[test]
fn tail_polls_a_live_database_and_emits_only_changed_sessions() {
    let db = LiveCursorDb::new();
    db.composer("c1", T0, &[("b1", 1, "hello"), ("b2", 2, "hi")]);
    db.composer("c2", T0 + 60_000, &[("b1", 1, "other"), ("b2", 2, "yes")]);
    let (factory, _) = fake_factory();
    let cap = Capture::default();
    let stop = Arc::new(StopSignal::default());
    let handle = {
        let (c, s, o) = (cap.clone(), stop.clone(), options(&db.path));
        std::thread::spawn(move || {
            let sink = FrameSink::new(Box::new(c), "tail".into());
            let spec = RunSpec {
                mode: RunMode::Tail,
                persona_id: None,
                cursors: Default::default(),
                store_cursors: HashMap::new(),
                options: o,
            };
            run_mode(&spec, &factory, &sink, &s, &WorkerStatus::default())
        })
    };
    cap.wait_for("both sessions", |f| batch_items(f).len() >= 2);

    db.composer(
        "c1",
        T0,
        &[
            ("b1", 1, "hello"),
            ("b2", 2, "hi"),
            ("b3", 1, "next"),
            ("b4", 2, "done"),
        ],
    );
    cap.wait_for("c1 grown", |f| {
        batch_items(f)
            .iter()
            .any(|i| i.source_session_id == "c1" && i.messages.len() == 4)
    });
    db.composer("c3", T0 + 120_000, &[("b1", 1, "new chat")]);
    cap.wait_for("c3", |f| {
        batch_items(f).iter().any(|i| i.source_session_id == "c3")
    });
    stop.stop();
    handle.join().unwrap().unwrap();
    let all = cap.frames();
    // c2 never changed: emitted once, at start.
    let c2 = batch_items(&all)
        .iter()
        .filter(|i| i.source_session_id == "c2")
        .count();
    assert_eq!(c2, 1);
}

/// Writes `value` as OpenCode < 1.2 did, pretty-printed at `storage/<rel>`.
fn legacy_json(storage: &Path, rel: &str, value: serde_json::Value) {
    let path = storage.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

/// A part file added to an existing part directory of the legacy tree changes no directory the
/// store's stamp covers: the notification alone makes the tail poll, and the session's token
/// (which covers its part directories) makes it read.
#[test]
fn tail_polls_a_store_on_a_notification_its_stamp_does_not_see() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("opencode/storage");
    legacy_json(
        &storage,
        "session/prj1/ses_l.json",
        json!({"id": "ses_l", "projectID": "prj1", "directory": "/work/l", "title": "legacy",
               "version": "1.1.10", "time": {"created": T0, "updated": T0 + 2000}}),
    );
    let message = |id: &str, role: &str, at: i64| {
        legacy_json(
            &storage,
            &format!("message/ses_l/{id}.json"),
            json!({"id": id, "sessionID": "ses_l", "role": role,
                   "time": {"created": at, "completed": at + 500}}),
        );
    };
    let part = |msg: &str, id: &str, text: &str| {
        legacy_json(
            &storage,
            &format!("part/{msg}/{id}.json"),
            json!({"id": id, "sessionID": "ses_l", "messageID": msg, "type": "text",
                   "text": text}),
        );
    };
    message("msg_1", "user", T0);
    part("msg_1", "prt_1", "hello");
    message("msg_2", "assistant", T0 + 1000);
    part("msg_2", "prt_2a", "first half");
    let options = WorkerOptions {
        opencode_dirs: vec![dir.path().join("opencode")],
        ..Default::default()
    };
    let (factory, _) = fake_factory();
    let cap = Capture::default();
    let stop = Arc::new(StopSignal::default());
    let handle = {
        let (c, s) = (cap.clone(), stop.clone());
        std::thread::spawn(move || {
            let sink = FrameSink::new(Box::new(c), "tail".into());
            let spec = RunSpec {
                mode: RunMode::Tail,
                persona_id: None,
                cursors: Default::default(),
                store_cursors: HashMap::new(),
                options,
            };
            run_mode(&spec, &factory, &sink, &s, &WorkerStatus::default())
        })
    };
    let text_of = |items: &[ImportSessionItem]| -> Vec<String> {
        items
            .iter()
            .filter(|i| i.source_session_id == "ses_l")
            .flat_map(|i| i.messages.iter().filter_map(|m| m.content.clone()))
            .collect()
    };
    cap.wait_for("the legacy session", |f| {
        text_of(&batch_items(f)).contains(&"first half".to_owned())
    });
    part("msg_2", "prt_2b", "and the rest");
    cap.wait_for("the new part", |f| {
        text_of(&batch_items(f)).contains(&"first half\nand the rest".to_owned())
    });
    stop.stop();
    handle.join().unwrap().unwrap();
}

/// Cursor mapping 4 (a draft-only legacy tab is no session, zero counts unknown, `timingInfo`
/// times, …): the store cursors a mapping 3 run committed are not current, so the next backfill
/// reads every Cursor session again, whole and stamped with mapping 4 (the service then
/// replaces the rows mapping 3 wrote, item rule 13); a run on the new cursors reads nothing.
#[test]
fn cursor_sessions_a_mapping_3_run_imported_are_read_again_under_mapping_4() {
    use nex::aix::mapping::{self, MappingVersions};
    use nex::aix::sources::Provider;
    let db = LiveCursorDb::new();
    db.composer("c1", T0, &[("b1", 1, "hello"), ("b2", 2, "hi")]);
    db.composer("c2", T0 + 60_000, &[("b1", 1, "again"), ("b2", 2, "sure")]);
    let old = WorkerOptions {
        mappings: MappingVersions::CURRENT.with(Provider::Cursor, 3),
        ..options(&db.path)
    };
    let first = run(RunMode::Backfill, old, &[]);
    assert!(
        batch_items(&first)
            .iter()
            .all(|i| i.mapping_version == Some(3))
    );
    let (again, counters) = run_counted(RunMode::Backfill, options(&db.path), &cursors(&first));
    let items = batch_items(&again);
    assert_eq!(
        sessions(&items),
        vec![("c1".to_owned(), 2), ("c2".to_owned(), 2)]
    );
    assert_eq!(mapping::CURSOR, 4);
    assert!(
        items
            .iter()
            .all(|i| i.mapping_version == Some(4) && i.whole_session)
    );
    assert_eq!(counters.skipped_files, 0);
    let (none, counters) = run_counted(RunMode::Backfill, options(&db.path), &cursors(&again));
    assert!(batch_items(&none).is_empty());
    assert_eq!(counters.skipped_files, 2);
}
