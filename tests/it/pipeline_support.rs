//! Shared fixtures of the pipeline tests: items, frames, chunked uploads, temp ledgers, a
//! writer with a commit gate, canonical ledger dumps.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use nex::ledger;
use nex::pipeline::writer::{BatchInfo, LedgerWriter, WriterConfig};
use nex::protocol::{
    ChunkRequest, Cursor, HealthStatus, ImportRequest, ImportSessionItem, RunError, RunProgress,
    WorkerFrame,
};
use rusqlite::Connection;
use serde_json::json;
use tempfile::TempDir;

pub const RUN: &str = "5b1f0e4e-8f0c-4c1e-9a53-2f8e0c1d7a01";

/// A small session: one turn, a user and an assistant message, one tool call.
pub fn item(provider: &str, session: &str, fingerprint: &str) -> ImportSessionItem {
    serde_json::from_value(json!({
        "sourceProvider": provider,
        "sourceSessionId": session,
        "sourceSessionFingerprint": fingerprint,
        "importedAtMs": 1_764_000_000_000i64,
        "session": {"createdAtMs": 1_764_000_000_000i64, "updatedAtMs": 1_764_000_100_000i64,
                    "model": "m-1", "workspacePath": "/w"},
        "turns": [{"sourceTurnId": "t1", "startedAtMs": 1_764_000_000_000i64,
                   "completedAtMs": 1_764_000_050_000i64, "inputTokens": 10, "outputTokens": 20,
                   "queryMessageSourceIds": ["m1"], "responseMessageSourceId": "m2"}],
        "messages": [
            {"sourceMessageId": "m1", "sourceTurnId": "t1", "role": "user", "content": "hello",
             "sequence": 0, "createdAtMs": 1_764_000_000_000i64},
            {"sourceMessageId": "m2", "sourceTurnId": "t1", "role": "assistant", "content": "hi",
             "sequence": 1, "createdAtMs": 1_764_000_040_000i64}
        ],
        "toolCalls": [{"sourceToolCallId": "c1", "sourceTurnId": "t1", "sourceMessageId": "m2",
                       "toolName": "read_file", "paramsJson": {"path": "/w/a"},
                       "resultJson": {"ok": true}, "status": "completed",
                       "startedAtMs": 1_764_000_041_000i64, "completedAtMs": 1_764_000_042_000i64,
                       "sequence": 0}]
    }))
    .expect("fixture item decodes")
}

pub fn request(key: &str, items: Vec<ImportSessionItem>, cursors: Vec<Cursor>) -> ImportRequest {
    ImportRequest {
        source: "aix".into(),
        mode: "backfill".into(),
        idempotency_key: key.into(),
        items,
        cursors,
        ..Default::default()
    }
}

pub fn cursor(key: &str, offset: u64) -> Cursor {
    Cursor {
        key: key.into(),
        value: json!({ "offset": offset }),
    }
}

/// gzip+base64 of the item's JSON, split into `parts` roughly equal strings.
pub fn encode_parts(item: &ImportSessionItem, parts: usize) -> Vec<String> {
    let json = serde_json::to_vec(item).unwrap();
    gzip_base64_parts(&json, parts)
}

pub fn gzip_base64_parts(bytes: &[u8], parts: usize) -> Vec<String> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    let size = encoded.len().div_ceil(parts.max(1)).max(1);
    encoded
        .as_bytes()
        .chunks(size)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect()
}

/// The chunk requests of one upload of `item`.
pub fn chunk_requests(
    item: &ImportSessionItem,
    upload: &str,
    key: &str,
    parts: usize,
    cursors: Vec<Cursor>,
) -> Vec<ChunkRequest> {
    let data = encode_parts(item, parts);
    let total = data.len() as i64;
    data.into_iter()
        .enumerate()
        .map(|(i, data)| ChunkRequest {
            source: "aix".into(),
            mode: "backfill".into(),
            idempotency_key: key.into(),
            upload_id: upload.into(),
            chunk_index: i as i64,
            chunk_total: total,
            encoding: "gzip+base64".into(),
            data: data.into(),
            source_provider: item.source_provider.clone(),
            source_session_id: item.source_session_id.clone(),
            source_session_fingerprint: item.source_session_fingerprint.clone(),
            cursors: if i as i64 == total - 1 {
                cursors.clone()
            } else {
                vec![]
            },
            ..Default::default()
        })
        .collect()
}

/// A recorded worker stream under construction.
#[derive(Default)]
pub struct Stream {
    pub lines: Vec<Vec<u8>>,
    seq: u64,
    run: String,
}

impl Stream {
    pub fn new(run: &str) -> Self {
        Self {
            lines: Vec::new(),
            seq: 0,
            run: run.into(),
        }
    }

    /// Appends a frame with the next seq.
    pub fn frame(&mut self, frame: WorkerFrame) -> &mut Self {
        self.seq += 1;
        self.lines
            .push(frame.encode(&self.run, self.seq).into_bytes());
        self
    }

    pub fn batch(&mut self, req: ImportRequest) -> &mut Self {
        self.frame(WorkerFrame::ImportBatch(req))
    }

    pub fn chunk(&mut self, req: ChunkRequest) -> &mut Self {
        self.frame(WorkerFrame::ImportChunk(req))
    }

    pub fn progress(&mut self, total: u64, emitted: u64) -> &mut Self {
        self.frame(WorkerFrame::RunProgress(RunProgress {
            total: Some(total),
            emitted: Some(emitted),
            ..Default::default()
        }))
    }

    pub fn health(&mut self) -> &mut Self {
        self.frame(WorkerFrame::HealthStatus(HealthStatus {
            connected: true,
            ..Default::default()
        }))
    }

    pub fn complete(&mut self) -> &mut Self {
        self.frame(WorkerFrame::RunComplete(RunProgress::default()))
    }

    pub fn error(&mut self, code: &str) -> &mut Self {
        self.frame(WorkerFrame::RunError(RunError {
            code: code.into(),
            message: "worker failed".into(),
            retryable: Some(true),
        }))
    }

    /// A raw line (no seq bookkeeping).
    pub fn raw(&mut self, line: impl Into<Vec<u8>>) -> &mut Self {
        self.lines.push(line.into());
        self
    }

    /// The seq of the last frame appended.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Skips `n` seq numbers (a gap) or goes back (a repeat) for the next frame.
    pub fn set_seq(&mut self, next: u64) -> &mut Self {
        self.seq = next - 1;
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for l in &self.lines {
            out.extend_from_slice(l);
            out.push(b'\n');
        }
        out
    }
}

/// A temp dir holding a migrated agents.db.
pub fn temp_ledger() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    drop(ledger::open_agents(&path).unwrap());
    (dir, path)
}

pub fn writer(path: &Path) -> LedgerWriter {
    writer_with(path, WriterConfig::default())
}

pub fn writer_with(path: &Path, config: WriterConfig) -> LedgerWriter {
    LedgerWriter::spawn(ledger::open_agents(path).unwrap(), config).unwrap()
}

/// Holds every commit until released: `held` receives each batch as it waits.
pub struct CommitGate {
    /// Shared so that a test on a current-thread runtime can wait for it on a blocking thread.
    pub held: Arc<Mutex<mpsc::Receiver<BatchInfo>>>,
    release: Arc<Mutex<Option<mpsc::Sender<()>>>>,
}

impl CommitGate {
    /// A writer config whose commits each wait for one `release()` (or all after
    /// `open()`).
    pub fn new() -> (Self, WriterConfig) {
        let (held_tx, held) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let gate_rx = Mutex::new(release_rx);
        let held_tx = Mutex::new(held_tx);
        let config = WriterConfig {
            before_commit: Some(Arc::new(move |info: &BatchInfo| {
                let _ = held_tx.lock().unwrap().send(info.clone());
                // A closed gate (test over) lets everything through.
                let _ = gate_rx.lock().unwrap().recv();
            })),
            ..WriterConfig::default()
        };
        let gate = Self {
            held: Arc::new(Mutex::new(held)),
            release: Arc::new(Mutex::new(Some(release_tx))),
        };
        (gate, config)
    }

    pub fn release_one(&self) {
        if let Some(tx) = self.release.lock().unwrap().as_ref() {
            let _ = tx.send(());
        }
    }

    /// Lets every commit through from now on.
    pub fn open(&self) {
        self.release.lock().unwrap().take();
    }
}

pub fn read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

pub fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Columns whose value is the wall clock of the import, not a function of the requests.
const CLOCK_COLUMNS: &[(&str, &str)] = &[
    ("session_imports", "imported_at"),
    ("session_imports", "updated_at"),
    ("session_import_requests", "created_at"),
    ("session_import_chunk_parts", "created_at"),
    ("session_import_chunk_parts", "completed_at"),
    ("session_import_cursors", "updated_at"),
];

pub const LEDGER_TABLES: &[&str] = &[
    "sessions",
    "turns",
    "threads",
    "messages",
    "tool_calls",
    "session_history",
    "session_imports",
    "session_import_requests",
    "session_import_chunk_parts",
    "session_import_cursors",
];

/// Every row of `table` as text, clock columns excluded, sorted.
pub fn dump(conn: &Connection, table: &str) -> Vec<String> {
    let columns: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(1))
        .unwrap()
        .map(Result::unwrap)
        .filter(|c| {
            // The history id is an autoincrement: its value depends on nothing imported.
            !(CLOCK_COLUMNS.contains(&(table, c.as_str()))
                || table == "session_history" && c == "id")
        })
        .collect();
    let select = columns
        .iter()
        .map(|c| format!("quote({c})"))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let mut rows: Vec<String> = conn
        .prepare(&format!("SELECT {select} FROM {table}"))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    rows
}
