//! Test support for the aix worker: a fake parser of a line-per-turn JSONL format, a parse log
//! to prove what was (not) re-read, and an in-memory frame capture.
//!
//! Fake format, one JSON object per line:
//! - `{"s":"<session id>","t":"<turn id>","m":"<text>"}` opens turn `t` with a user message;
//! - `{"m":"<text>"}` adds an assistant message to the open turn;
//! - `{"skip":"<kind>"}` is a non-message record; anything unparsable is malformed;
//! - `"spawn":"<agent id>"` on a line records a spawn link; `"parent":"<session>"` names the
//!   file's parent session (flat subagent files do not say it by their path);
//! - `{"panic":1}` makes the parser panic (a parser bug must not end the run).
//!
//! Items: one per file, the session header plus every turn touched by emitting lines, complete.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nex::aix::ParserFactory;
use nex::aix::sources::{FileRole, ParseStats, SessionParser, SourceFile, SpawnLink};
use nex::protocol::{
    Envelope, ImportSessionItem, Message, SessionInfo, Turn, WorkerFrame, decode_worker_frame,
};
use sha2::{Digest, Sha256};

#[derive(Clone)]
struct FakeTurn {
    id: String,
    messages: Vec<Message>,
}

pub struct FakeParser {
    provider: &'static str,
    file_session: String,
    is_subagent: bool,
    parent: Option<String>,
    session_id: Option<String>,
    fp: String,
    line_no: i64,
    open: Option<FakeTurn>,
    open_offset: u64,
    /// Closed turns touched by emitting lines since the last take.
    touched_closed: Vec<FakeTurn>,
    open_touched: bool,
    stats: ParseStats,
    log: Arc<ParseLog>,
    path: PathBuf,
    links: BTreeMap<String, SpawnLink>,
}

/// Bytes and lines pushed into fake parsers, by file.
#[derive(Default)]
pub struct ParseLog {
    bytes: Mutex<HashMap<PathBuf, u64>>,
}

impl ParseLog {
    pub fn bytes(&self, path: &Path) -> u64 {
        self.bytes.lock().unwrap().get(path).copied().unwrap_or(0)
    }
    pub fn total(&self) -> u64 {
        self.bytes.lock().unwrap().values().sum()
    }
    pub fn clear(&self) {
        self.bytes.lock().unwrap().clear();
    }
}

pub fn fake_factory() -> (ParserFactory, Arc<ParseLog>) {
    let log = Arc::new(ParseLog::default());
    let l = log.clone();
    let factory: ParserFactory = Arc::new(move |f: &SourceFile| {
        Box::new(FakeParser::new(f, l.clone())) as Box<dyn SessionParser>
    });
    (factory, log)
}

impl FakeParser {
    fn new(f: &SourceFile, log: Arc<ParseLog>) -> Self {
        let stem = f
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("x")
            .to_owned();
        let (is_subagent, parent, file_session) = match &f.role {
            FileRole::Main => (false, None, stem),
            FileRole::Subagent {
                agent_id,
                parent_session_id,
                ..
            } => (
                true,
                parent_session_id.clone(),
                format!(
                    "{}/agent-{agent_id}",
                    parent_session_id.clone().unwrap_or_default()
                ),
            ),
        };
        Self {
            provider: f.provider.as_str(),
            file_session,
            is_subagent,
            parent,
            session_id: None,
            fp: format!("{:x}", Sha256::digest(b"")),
            line_no: 0,
            open: None,
            open_offset: 0,
            touched_closed: Vec::new(),
            open_touched: false,
            stats: ParseStats::default(),
            log,
            path: f.path.clone(),
            links: BTreeMap::new(),
        }
    }
}

impl SessionParser for FakeParser {
    fn push_lines(&mut self, bytes: &[u8], offset: u64, emit: bool) {
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "lines must be complete"
        );
        *self
            .log
            .bytes
            .lock()
            .unwrap()
            .entry(self.path.clone())
            .or_default() += bytes.len() as u64;
        let mut at = offset;
        for raw in bytes.split_inclusive(|&b| b == b'\n') {
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            let mut h = Sha256::new();
            h.update(self.fp.as_bytes());
            h.update(line);
            self.fp = format!("{:x}", h.finalize());
            self.stats.lines += 1;
            let line_no = self.line_no;
            self.line_no += 1;
            let start = at;
            at += raw.len() as u64;
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
                self.stats.malformed_lines += 1;
                continue;
            };
            assert!(v.get("panic").is_none(), "fake parser told to panic");
            if let Some(kind) = v.get("skip").and_then(|k| k.as_str()) {
                *self
                    .stats
                    .skipped_records
                    .entry(kind.to_owned())
                    .or_default() += 1;
                continue;
            }
            if let Some(parent) = v.get("parent").and_then(|k| k.as_str()) {
                self.parent = Some(parent.to_owned());
            }
            if let Some(spawn) = v.get("spawn").and_then(|k| k.as_str()) {
                self.links.insert(
                    spawn.to_owned(),
                    SpawnLink {
                        tool_use_id: format!("tool-{spawn}"),
                        description: Some(format!("task {spawn}")),
                        status: Some("completed".into()),
                    },
                );
            }
            let text = v.get("m").and_then(|m| m.as_str()).unwrap_or("").to_owned();
            if let Some(s) = v.get("s").and_then(|s| s.as_str()) {
                self.session_id.get_or_insert_with(|| s.to_owned());
            }
            if let Some(t) = v.get("t").and_then(|t| t.as_str()) {
                if let Some(prev) = self.open.take()
                    && self.open_touched
                {
                    self.touched_closed.push(prev);
                }
                self.open = Some(FakeTurn {
                    id: t.to_owned(),
                    messages: Vec::new(),
                });
                self.open_offset = start;
                self.open_touched = false;
            }
            let Some(turn) = self.open.as_mut() else {
                self.stats.malformed_lines += 1;
                continue;
            };
            let role = if turn.messages.is_empty() {
                "user"
            } else {
                "assistant"
            };
            turn.messages.push(Message {
                source_message_id: format!("{}:{}", turn.id, turn.messages.len()),
                source_turn_id: Some(turn.id.clone()),
                role: role.into(),
                content: Some(text),
                sequence: line_no,
                created_at_ms: 1_700_000_000_000 + line_no,
                ..Default::default()
            });
            if emit {
                self.open_touched = true;
            }
        }
    }

    fn take_items(&mut self) -> Vec<ImportSessionItem> {
        let mut turns: Vec<FakeTurn> = std::mem::take(&mut self.touched_closed);
        if self.open_touched
            && let Some(open) = &self.open
        {
            turns.push(open.clone());
        }
        self.open_touched = false;
        if turns.is_empty() {
            return Vec::new();
        }
        let session_id = if self.is_subagent {
            self.file_session.clone()
        } else {
            self.session_id
                .clone()
                .unwrap_or_else(|| self.file_session.clone())
        };
        vec![ImportSessionItem {
            source_provider: self.provider.into(),
            source_session_id: session_id,
            source_session_fingerprint: self.fp.clone(),
            imported_at_ms: 42,
            session: SessionInfo {
                is_subagent: self.is_subagent,
                parent_source_session_id: self.parent.clone(),
                ..Default::default()
            },
            turns: turns
                .iter()
                .map(|t| Turn {
                    source_turn_id: t.id.clone(),
                    started_at_ms: t.messages.first().map_or(1, |m| m.created_at_ms),
                    ..Default::default()
                })
                .collect(),
            messages: turns.into_iter().flat_map(|t| t.messages).collect(),
            tool_calls: Vec::new(),
            ..Default::default()
        }]
    }

    fn open_turn_offset(&self) -> u64 {
        self.open_offset
    }

    fn fingerprint(&self) -> String {
        self.fp.clone()
    }

    fn stats(&self) -> &ParseStats {
        &self.stats
    }

    fn spawn_links(&self) -> BTreeMap<String, SpawnLink> {
        self.links.clone()
    }

    fn resend_header(&mut self) {
        self.open_touched = self.open.is_some();
    }
}

/// Lines of the fake format.
pub fn turn(session: &str, turn: &str, text: &str) -> String {
    format!("{{\"s\":\"{session}\",\"t\":\"{turn}\",\"m\":\"{text}\"}}\n")
}

pub fn reply(text: &str) -> String {
    format!("{{\"m\":\"{text}\"}}\n")
}

/// A `Write` into shared memory, for capturing frames.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub fn frames(&self) -> Vec<Envelope<WorkerFrame>> {
        decode_frames(&self.0.lock().unwrap())
    }

    /// Waits until `pred` holds for the frames so far (several seconds at most: tests must not
    /// be flaky on a loaded machine).
    pub fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&[Envelope<WorkerFrame>]) -> bool,
    ) -> Vec<Envelope<WorkerFrame>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let frames = self.frames();
            if pred(&frames) {
                return frames;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Decodes the complete lines of `bytes` (a frame being written is not a line yet).
pub fn decode_frames(bytes: &[u8]) -> Vec<Envelope<WorkerFrame>> {
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&bytes[..0], |i| &bytes[..=i]);
    std::str::from_utf8(complete)
        .unwrap()
        .lines()
        .map(|l| decode_worker_frame(l).expect("worker frame decodes"))
        .collect()
}

/// Every item of every `import.batch`, in order.
pub fn batch_items(frames: &[Envelope<WorkerFrame>]) -> Vec<ImportSessionItem> {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            WorkerFrame::ImportBatch(b) => Some(b.items.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Every cursor of every import frame, in order.
pub fn cursors(frames: &[Envelope<WorkerFrame>]) -> Vec<nex::protocol::Cursor> {
    frames
        .iter()
        .flat_map(|f| match &f.body {
            WorkerFrame::ImportBatch(b) => b.cursors.clone(),
            WorkerFrame::ImportChunk(c) => c.cursors.clone(),
            _ => Vec::new(),
        })
        .collect()
}

pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
}

pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
}
