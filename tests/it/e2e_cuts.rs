//! The ledger is a function of the final files, whatever the cuts (issue 11, TARGETS R5).
//!
//! Every fixture file and every real file (`NEX_SAMPLES_DIR`, `NEX_REAL_SAMPLES_DIR`,
//! `NEX_CORPUS_DIR`: `claude/projects`, `codex/sessions`, `gemini/tmp`; skipped when unset) is
//! written in cuts: at every line boundary, at chosen lines in two steps, and at random byte
//! offsets (mid-line included) in several steps, the files of a group (a project: a session with
//! its subagents, several sessions) interleaved in random orders. After each step the real aix
//! side reads what is new, as the tail does it (a [`FileState`] per file kept in memory, lineage
//! learnt across files, the real emitter) or as a restarted run does it (a backfill run resuming
//! from the cursors the ledger committed), and the frames go through the real import pipeline
//! into a real SQLite ledger. The canonical dump of that ledger (every table, every column but
//! import times: [`dump`]) must equal the dump after one backfill of the final files into a
//! fresh ledger; a `--full` backfill over a ledger written with any cuts (or damaged) must
//! converge to it too.
//!
//! Gemini CLI legacy `.json` sessions are whole documents rewritten in place: their cuts are the
//! document with its first `k` messages.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nex::aix::backfill::emit_update;
use nex::aix::cursor::cursor_map;
use nex::aix::discover::discover;
use nex::aix::file_state::FileState;
use nex::aix::lineage::Lineage;
use nex::aix::mapping::MappingVersions;
use nex::aix::{
    EmitLimits, Emitter, FileCursor, FrameSink, RunSpec, StopSignal, WorkerOptions, WorkerStatus,
    run_mode,
};
use nex::pipeline::writer::{LedgerWriter, WriterConfig};
use nex::pipeline::{PipelineConfig, run_pipeline};
use nex::protocol::RunMode;
use nex_bench::rng::Rng;
use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use crate::e2e_support::files_under;
use crate::import_support::dump_table;

// ---- the files ----------------------------------------------------------------------------

/// One file of a group: where it goes under the tree, and its successive contents (the last
/// is the final file). A line log's states are prefixes of the final bytes.
#[derive(Clone)]
struct CutFile {
    rel: PathBuf,
    fin: Vec<u8>,
    /// A whole-file document (rewritten, not appended).
    document: bool,
}

impl CutFile {
    fn new(rel: PathBuf, fin: Vec<u8>) -> Self {
        let document = rel.extension().is_some_and(|e| e == "json")
            && rel.to_string_lossy().contains("/chats/");
        Self { rel, fin, document }
    }

    /// A log that is not a session (meta files, registries): written whole, before the logs.
    fn is_side_file(&self) -> bool {
        !self.document && self.rel.extension().is_none_or(|e| e != "jsonl")
    }

    /// The cut points a step may stop at: line ends (and any byte for a log), as lengths.
    fn line_ends(&self) -> Vec<usize> {
        if self.document {
            return (0..=document_messages(&self.fin)).collect();
        }
        let mut ends: Vec<usize> = self
            .fin
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        if ends.last() != Some(&self.fin.len()) {
            ends.push(self.fin.len());
        }
        ends
    }

    /// Final cut value (a length for logs, a message count for documents).
    fn end(&self) -> usize {
        if self.document {
            document_messages(&self.fin)
        } else {
            self.fin.len()
        }
    }

    /// The file's content at cut `at`.
    fn content(&self, at: usize) -> Vec<u8> {
        if !self.document {
            return self.fin[..at].to_vec();
        }
        if at >= document_messages(&self.fin) {
            return self.fin.clone();
        }
        let mut doc: serde_json::Value = serde_json::from_slice(&self.fin).unwrap();
        if let Some(m) = doc.get_mut("messages").and_then(|m| m.as_array_mut()) {
            m.truncate(at);
        }
        serde_json::to_vec_pretty(&doc).unwrap()
    }
}

fn document_messages(bytes: &[u8]) -> usize {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("messages")?.as_array().map(Vec::len))
        .unwrap_or(0)
}

/// A set of files imported together (a project, a session with its subagents).
#[derive(Clone)]
struct Group {
    name: String,
    files: Vec<CutFile>,
}

impl Group {
    fn logs(&self) -> impl Iterator<Item = (usize, &CutFile)> {
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.is_side_file())
    }
}

/// Files under `root/sub` as (`dest/<relative path>`, bytes).
fn collect(root: &Path, sub: &str, dest: &str, out: &mut Vec<CutFile>) {
    let mut paths = Vec::new();
    files_under(&root.join(sub), &mut paths);
    for p in paths {
        let rel = p.strip_prefix(root.join(sub)).unwrap();
        out.push(CutFile::new(
            Path::new(dest).join(rel),
            std::fs::read(&p).unwrap(),
        ));
    }
}

/// The session a Claude Code main file holds: its stem when a UUID, else its first `sessionId`.
fn claude_session(f: &CutFile) -> Option<String> {
    if !f.rel.starts_with("claude") || f.rel.to_string_lossy().contains("/subagents/") {
        return None;
    }
    let stem = f.rel.file_stem()?.to_string_lossy().into_owned();
    if stem.starts_with("agent-") {
        return None;
    }
    if stem.len() == 36 && stem.bytes().filter(|b| *b == b'-').count() == 4 {
        return Some(stem);
    }
    f.fin.split(|b| *b == b'\n').find_map(|l| {
        serde_json::from_slice::<serde_json::Value>(l)
            .ok()?
            .get("sessionId")?
            .as_str()
            .map(str::to_owned)
    })
}

/// Groups files by the first `depth` components of their destination. Of several Claude Code
/// main files holding one session (excerpts of one session in the samples) only the first is
/// kept: which of them a backfill reads last decides the rows, whatever the cuts.
fn group_by(files: Vec<CutFile>, depth: usize, prefix: &str) -> Vec<Group> {
    let mut groups: BTreeMap<String, Vec<CutFile>> = BTreeMap::new();
    let mut sessions = std::collections::HashSet::new();
    for f in files {
        if let Some(sid) = claude_session(&f)
            && !sessions.insert(sid)
        {
            continue;
        }
        let key: PathBuf = f.rel.components().take(depth).collect();
        groups.entry(key.display().to_string()).or_default().push(f);
    }
    groups
        .into_iter()
        .map(|(name, files)| Group {
            name: format!("{prefix}:{name}"),
            files,
        })
        .collect()
}

/// Every fixture file in one group (sessions of every provider, subagents before and after
/// their parents as the cuts fall).
fn fixture_group() -> Group {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    collect(&root, "claude-code", "claude", &mut files);
    let mut codex = Vec::new();
    collect(&root, "codex", "codex/sessions", &mut codex);
    files.extend(codex);
    collect(&root, "gemini/tmp", "gemini/tmp", &mut files);
    Group {
        name: "fixtures".into(),
        files,
    }
}

/// The groups of one real tree in the `claude/projects`, `codex/sessions`, `gemini/tmp`
/// layout: a Claude Code project, a Codex rollout, a Gemini CLI project each.
fn real_groups(var: &str) -> Vec<Group> {
    let Some(root) = std::env::var_os(var).map(PathBuf::from) else {
        eprintln!("e2e_cuts: {var} unset; skipped");
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut claude = Vec::new();
    collect(&root, "claude/projects", "claude", &mut claude);
    out.extend(group_by(claude, 2, var));
    let mut codex = Vec::new();
    collect(&root, "codex/sessions", "codex/sessions", &mut codex);
    codex.retain(|f| f.rel.extension().is_some_and(|e| e == "jsonl"));
    out.extend(group_by(codex, 10, var));
    let mut gemini = Vec::new();
    collect(&root, "gemini/tmp", "gemini/tmp", &mut gemini);
    out.extend(group_by(gemini, 3, var));
    out
}

/// `NEX_SAMPLES_DIR` (layout `claude-code/<set>/`, `codex/<set>/`): Claude Code sets as
/// projects, Codex rollouts one group each.
fn sample_groups() -> Vec<Group> {
    let Some(root) = crate::e2e_support::samples_dir() else {
        eprintln!("e2e_cuts: NEX_SAMPLES_DIR unset; skipped");
        return Vec::new();
    };
    let mut claude = Vec::new();
    collect(&root, "claude-code", "claude", &mut claude);
    let mut out = group_by(claude, 2, "NEX_SAMPLES_DIR");
    let mut codex = Vec::new();
    files_under(&root.join("codex"), &mut codex);
    for p in codex {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("rollout-") && name.ends_with(".jsonl") {
            out.push(Group {
                name: format!("NEX_SAMPLES_DIR:{name}"),
                files: vec![CutFile::new(
                    Path::new("codex/sessions").join(&name),
                    std::fs::read(&p).unwrap(),
                )],
            });
        }
    }
    out
}

/// Every real group; `NEX_CUTS_ONLY=<text>` keeps the groups whose name holds it.
fn real_sets() -> Vec<Group> {
    let mut groups = sample_groups();
    groups.extend(real_groups("NEX_REAL_SAMPLES_DIR"));
    // Our own corpus only on request: `NEX_CUTS_DEPTH=full` (the deep run) or `corpus` (the
    // corpus too, at the suite's depth).
    if std::env::var("NEX_CUTS_DEPTH").is_ok_and(|d| d == "full" || d == "corpus") {
        groups.extend(real_groups("NEX_CORPUS_DIR"));
    }
    if let Ok(only) = std::env::var("NEX_CUTS_ONLY") {
        groups.retain(|g| g.name.contains(&only));
    }
    groups
}

// ---- the ledger side ----------------------------------------------------------------------

/// A real ledger written through the real pipeline, one pipeline run per applied stream.
pub(crate) struct Ledger {
    path: PathBuf,
    rt: tokio::runtime::Runtime,
    writer: Option<LedgerWriter>,
}

impl Ledger {
    pub(crate) fn new(path: PathBuf) -> Self {
        let conn = nex::ledger::open_agents(&path).unwrap();
        // Durability is not what these tests are about: thousands of small commits without an
        // fsync each.
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let writer = {
            let _guard = rt.enter();
            LedgerWriter::spawn(conn, WriterConfig::default()).unwrap()
        };
        Self {
            path,
            rt,
            writer: Some(writer),
        }
    }

    /// Runs a recorded frame stream through the import pipeline; every item must import.
    pub(crate) fn apply(&self, frames: Vec<u8>, what: &str) {
        if frames.is_empty() {
            return;
        }
        let handle = self.writer.as_ref().unwrap().handle();
        let report = self
            .rt
            .block_on(run_pipeline(
                std::io::Cursor::new(frames),
                PipelineConfig::default(),
                &handle,
                None,
                CancellationToken::new(),
            ))
            .into_result()
            .unwrap();
        assert_eq!(report.counters.failed, 0, "{what}: failed items");
        assert!(
            report.counters.rejected.is_empty(),
            "{what}: rejects {:?}",
            report.counters.rejected
        );
    }

    pub(crate) fn read(&self) -> Connection {
        nex::ledger::open_agents(&self.path).unwrap()
    }

    fn cursors(&self) -> HashMap<String, FileCursor> {
        cursor_map(&nex::ledger::load_cursors(&self.read(), "aix").unwrap())
    }

    fn dump(&self) -> String {
        dump(&self.read())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            self.rt.block_on(w.shutdown());
        }
    }
}

/// The canonical ledger: every table, every column but import times.
///
/// - `sessions`, `turns`, `threads`, `messages`, `tool_calls`: every row, every column.
/// - `session_imports` without `imported_at`, `updated_at`, `last_run_id` (when and by which run).
/// - `session_history` is the log of head changes as the importer saw them, so its length is
///   the number of times it looked: compared is each session's latest row (its `thread_id`),
///   which must be the session's head.
/// - `session_import_cursors` without `updated_at`, `last_run_id`.
/// - `session_import_requests` and `session_import_chunk_parts` are the transport's log (one row
///   per request or part sent); compared is that no stored response failed an item and no upload
///   is left incomplete.
pub fn dump(conn: &Connection) -> String {
    let tables: [(&str, &str, &[&str]); 6] = [
        ("sessions", "label", &[]),
        ("turns", "id", &[]),
        ("threads", "turn_id", &[]),
        ("messages", "id", &[]),
        ("tool_calls", "id", &[]),
        (
            "session_imports",
            "source, source_provider, source_session_id",
            &["imported_at", "updated_at", "last_run_id"],
        ),
    ];
    let mut out: String = tables
        .iter()
        .map(|(t, o, ex)| dump_table(conn, t, o, ex))
        .collect();
    // A cursor's stat (device, inode, mtime, size seen) belongs to the file on disk, not to the
    // content it consumed.
    let mut stmt = conn
        .prepare("SELECT cursor_key, cursor_json FROM session_import_cursors ORDER BY cursor_key")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    for row in rows {
        let (key, json) = row.unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        if let Some(o) = v.as_object_mut() {
            for k in ["dev", "ino", "mtimeMs", "size"] {
                o.remove(k);
            }
        }
        out.push_str(&format!("cursor key={key:?} value={v}\n"));
    }
    let mut stmt = conn
        .prepare(
            "SELECT s.label, h.thread_id, s.thread_id FROM sessions s
             LEFT JOIN session_history h ON h.id = (
               SELECT id FROM session_history WHERE session_label = s.label
               ORDER BY changed_at DESC, id DESC LIMIT 1)
             ORDER BY s.label",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (label, latest, head) = row.unwrap();
        out.push_str(&format!(
            "session_history latest label={label:?} thread_id={latest:?} is_head={}\n",
            latest == head
        ));
    }
    let failed: i64 = conn
        .query_row(
            "SELECT count(*) FROM session_import_requests
             WHERE COALESCE(json_extract(response_json, '$.failed'), 0) > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let open_uploads: i64 = conn
        .query_row(
            "SELECT count(DISTINCT upload_id) FROM session_import_chunk_parts
             WHERE completed_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    out.push_str(&format!(
        "session_import_requests failed_responses={failed}\nsession_import_chunk_parts open_uploads={open_uploads}\n"
    ));
    out
}

// ---- the aix side -------------------------------------------------------------------------

/// Frames written by a [`FrameSink`], taken per step.
#[derive(Clone, Default)]
pub(crate) struct Frames(Arc<Mutex<Vec<u8>>>);

impl Write for Frames {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Frames {
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A temp tree with the three line-file roots.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        // In memory when the machine has it: thousands of small ledgers and appends.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        for d in ["claude", "codex/sessions", "gemini/tmp"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Self { dir }
    }

    fn options(&self, full: bool) -> WorkerOptions {
        let p = self.dir.path();
        WorkerOptions {
            claude_dirs: vec![p.join("claude")],
            codex_dirs: vec![p.join("codex/sessions")],
            gemini_dirs: vec![p.join("gemini/tmp")],
            full,
            parse_threads: 1,
            limits: EmitLimits::default(),
            ..WorkerOptions::default()
        }
    }

    /// Brings `file` to cut `at` (appending to a log, rewriting a document).
    fn write(&self, file: &CutFile, from: usize, at: usize) {
        let dest = self.dir.path().join(&file.rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if file.document || file.is_side_file() {
            std::fs::write(&dest, file.content(at)).unwrap();
            return;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&dest)
            .unwrap();
        f.write_all(&file.fin[from..at]).unwrap();
    }

    /// One backfill run (resuming from the ledger's cursors unless `full`) into `ledger`.
    fn backfill(&self, ledger: &Ledger, full: bool, what: &str) {
        let frames = Frames::default();
        let sink = FrameSink::new(Box::new(frames.clone()), uuid::Uuid::new_v4().to_string());
        let spec = RunSpec {
            mode: RunMode::Backfill,
            persona_id: None,
            cursors: if full {
                HashMap::new()
            } else {
                ledger.cursors()
            },
            store_cursors: HashMap::new(),
            options: self.options(full),
        };
        let factory = nex::aix::default_parser_factory();
        run_mode(
            &spec,
            &factory,
            &sink,
            &StopSignal::default(),
            &WorkerStatus::default(),
        )
        .unwrap();
        ledger.apply(frames.take(), what);
    }
}

/// The tail's reading of changed files, driven step by step: the same [`FileState`]s kept in
/// memory between reads, the same lineage, the same emitter for the whole run, and the same
/// sequence per read as `aix::tail` (update, `emit_update`, evict when not live, re-send the
/// headers of children whose link became known).
struct Follower<'s> {
    files: HashMap<PathBuf, FileState>,
    lineage: Lineage,
    emitter: Emitter<'s>,
    cursors: HashMap<String, FileCursor>,
    /// One factory per run, as the worker has (its Claude Code copy index follows the run).
    factory: nex::aix::ParserFactory,
}

impl<'s> Follower<'s> {
    fn start(sink: &'s FrameSink, cursors: HashMap<String, FileCursor>) -> Self {
        Self {
            files: HashMap::new(),
            lineage: Lineage::default(),
            emitter: Emitter::new(sink, RunMode::Tail, None, EmitLimits::default()),
            cursors,
            factory: nex::aix::default_parser_factory(),
        }
    }

    /// Picks up new files (as the tail's re-scan) and reads `changed` (notified, kept live);
    /// at the first call every file whose cursor is stale is read too (start-up, not live).
    fn step(&mut self, tree: &Tree, changed: &[PathBuf]) {
        let factory = self.factory.clone();
        let mut due: Vec<(PathBuf, bool)> = Vec::new();
        for d in discover(&tree.options(false)) {
            let path = d.source.path.clone();
            if self.files.contains_key(&path) {
                continue;
            }
            let key = nex::aix::cursor::cursor_key(d.source.provider, &path);
            self.lineage.know(&d.source, self.cursors.get(&key));
            let state = FileState::new(d.source, self.cursors.get(&key).cloned());
            if state.needs_read_with(false, &factory).unwrap_or(true) {
                due.push((path.clone(), changed.contains(&path)));
            }
            self.files.insert(path, state);
        }
        for p in changed {
            if self.files.contains_key(p) && !due.iter().any(|(d, _)| d == p) {
                due.push((p.clone(), true));
            }
        }
        // Files that lost lines to another file's claims are read again, as the tail does.
        let mut due: std::collections::VecDeque<(PathBuf, bool)> = due.into();
        while let Some((path, live)) = due.pop_front() {
            let Some(state) = self.files.get_mut(&path) else {
                continue;
            };
            let Some(update) = state.update(&factory, false).unwrap() else {
                continue;
            };
            let mut pending = emit_update(
                state,
                update,
                &mut self.lineage,
                &MappingVersions::default(),
                &factory,
                &mut self.emitter,
            )
            .unwrap();
            // Files that lost lines to this read's claims (its own, or a parent scanned for the
            // lineage) are read again, as the tail does.
            for p in state.take_displaced(&factory) {
                if !due.iter().any(|(d, _)| *d == p) {
                    due.push_back((p, false));
                }
            }
            if !live {
                state.evict();
            }
            while let Some((source, _)) = pending.pop() {
                let Some(child) = self.files.get_mut(&source.path) else {
                    continue;
                };
                let had_state = child.parser().is_some();
                if let Some(update) = child.resend_header(&factory).unwrap() {
                    pending.extend(
                        emit_update(
                            child,
                            update,
                            &mut self.lineage,
                            &MappingVersions::default(),
                            &factory,
                            &mut self.emitter,
                        )
                        .unwrap(),
                    );
                }
                if !had_state {
                    child.evict();
                }
            }
        }
        self.emitter.flush().unwrap();
    }
}

// ---- scenarios ----------------------------------------------------------------------------

/// How a step reaches the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// The running tail (state in memory since the previous step).
    Tail,
    /// A new run: the tail restarted, or a backfill requested, from the ledger's cursors.
    Restart,
}

/// One step: bring these files to these cuts, then read.
#[derive(Clone, Debug)]
struct Step {
    cuts: Vec<(usize, usize)>,
    reader: Reader,
}

/// The clean result: one backfill of the final files into a fresh ledger.
fn reference(group: &Group) -> String {
    let tree = Tree::new();
    for f in &group.files {
        tree.write(f, 0, f.end());
    }
    let ledger = Ledger::new(tree.dir.path().join("ref.db"));
    tree.backfill(&ledger, false, &format!("{} reference", group.name));
    let dump = ledger.dump();
    // Paths differ between trees; cursor keys are compared relative to the tree.
    dump.replace(&tree.dir.path().display().to_string(), "<tree>")
}

/// Runs `steps` on a fresh tree and ledger, then brings every file to its end with a last
/// tail step; returns the dump, and the tree and ledger for more runs.
fn run_steps(group: &Group, steps: &[Step], what: &str) -> (String, Tree, Ledger) {
    let tree = Tree::new();
    for f in group.files.iter().filter(|f| f.is_side_file()) {
        tree.write(f, 0, f.end());
    }
    // Gemini CLI names a chat `session-<minute created>-<id8>`: a chat file never exists
    // before one whose name sorts before it, which is what names a session whose id several
    // files carry (`sources::gemini`). They are created (empty, or a document without
    // messages) in that order; their content comes in the cuts' order.
    let mut chats: Vec<&CutFile> = group
        .files
        .iter()
        .filter(|f| {
            f.rel.starts_with("gemini")
                && f.rel
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("session-"))
        })
        .collect();
    chats.sort_by_key(|f| f.rel.file_name().map(|n| n.to_owned()));
    for f in chats {
        tree.write(f, 0, 0);
    }
    let ledger = Ledger::new(tree.dir.path().join("cut.db"));
    let mut at: Vec<usize> = vec![0; group.files.len()];
    let mut all = steps.to_vec();
    all.push(Step {
        cuts: group.logs().map(|(i, f)| (i, f.end())).collect(),
        reader: Reader::Tail,
    });
    let mut i = 0;
    while i < all.len() {
        // A run of consecutive tail steps shares one follower (one tail run); a restart is a
        // backfill run, and the next tail step starts a new tail run.
        if all[i].reader == Reader::Restart {
            apply_cuts(&tree, group, &all[i].cuts, &mut at);
            tree.backfill(&ledger, false, &format!("{what} step {i}"));
            i += 1;
            continue;
        }
        let frames = Frames::default();
        let sink = FrameSink::new(Box::new(frames.clone()), uuid::Uuid::new_v4().to_string());
        let mut follower = Follower::start(&sink, ledger.cursors());
        while i < all.len() && all[i].reader == Reader::Tail {
            let changed = apply_cuts(&tree, group, &all[i].cuts, &mut at);
            follower.step(&tree, &changed);
            ledger.apply(frames.take(), &format!("{what} step {i}"));
            i += 1;
        }
    }
    let dump = ledger
        .dump()
        .replace(&tree.dir.path().display().to_string(), "<tree>");
    (dump, tree, ledger)
}

/// Writes the cuts; returns the paths that changed.
fn apply_cuts(
    tree: &Tree,
    group: &Group,
    cuts: &[(usize, usize)],
    at: &mut [usize],
) -> Vec<PathBuf> {
    let mut changed = Vec::new();
    for &(i, to) in cuts {
        let f = &group.files[i];
        if to <= at[i] {
            continue;
        }
        tree.write(f, at[i], to);
        at[i] = to;
        changed.push(tree.dir.path().join(&f.rel));
    }
    changed
}

/// Drops the cursor rows of files that yield no import item: cursors travel on the frames that
/// commit items (an import request needs items), so such a file's cursor is stored only when a
/// frame of another file happens to carry it, and its file is otherwise re-read by the next run.
fn without_itemless(group: &Group, dump: &str) -> String {
    let tree = Tree::new();
    let factory = nex::aix::default_parser_factory();
    let mut itemless = Vec::new();
    for f in &group.files {
        tree.write(f, 0, f.end());
    }
    for d in discover(&tree.options(true)) {
        let rel = d
            .source
            .path
            .strip_prefix(tree.dir.path())
            .unwrap()
            .to_owned();
        let mut state = FileState::new(d.source, None);
        if state
            .update(&factory, true)
            .unwrap()
            .is_none_or(|u| u.items.is_empty())
        {
            itemless.push(format!("<tree>/{}\"", rel.display()));
        }
    }
    dump.lines()
        .filter(|l| !(l.starts_with("cursor ") && itemless.iter().any(|p| l.contains(p.as_str()))))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn check(group: &Group, expected: &str, steps: &[Step], what: &str) -> Option<String> {
    check_then(group, expected, steps, what, false)
}

/// [`check`]; with `full`, a `--full` backfill runs over the cut ledger before the comparison
/// (it must converge to the clean result too).
fn check_then(
    group: &Group,
    expected: &str,
    steps: &[Step],
    what: &str,
    full: bool,
) -> Option<String> {
    let (mut got, tree, ledger) = run_steps(group, steps, what);
    if full {
        tree.backfill(&ledger, true, &format!("{what} --full"));
        got = ledger
            .dump()
            .replace(&tree.dir.path().display().to_string(), "<tree>");
    }
    let (got, expected) = if got == expected {
        (got, expected.to_owned())
    } else {
        (
            without_itemless(group, &got),
            without_itemless(group, expected),
        )
    };
    let expected = expected.as_str();
    let failure = (got != expected).then(|| {
        format!(
            "{what}: {}\n  steps: {:?}",
            differences(&got, expected),
            steps
                .iter()
                .map(|s| (
                    s.reader,
                    s.cuts
                        .iter()
                        .map(|(i, c)| (group.files[*i].rel.display().to_string(), *c))
                        .collect::<Vec<_>>()
                ))
                .collect::<Vec<_>>()
        )
    });
    if let Some(f) = &failure {
        eprintln!("e2e_cuts: FAILED {f}");
    }
    failure
}

/// Every line boundary of every log (every `stride`-th for files longer than `max_steps` lines),
/// one cut per step, files round-robin, one tail run.
fn every_line(group: &Group, max_steps: usize) -> Vec<Step> {
    let mut ends: Vec<(usize, Vec<usize>)> = group
        .logs()
        .map(|(i, f)| {
            let e = f.line_ends();
            let stride = e.len().div_ceil(max_steps).max(1);
            let last = *e.last().unwrap_or(&0);
            let mut kept: Vec<usize> = e.into_iter().step_by(stride).collect();
            if kept.last() != Some(&last) {
                kept.push(last);
            }
            (i, kept)
        })
        .collect();
    let mut steps = Vec::new();
    let mut k = 0;
    loop {
        let cuts: Vec<(usize, usize)> = ends
            .iter_mut()
            .filter_map(|(i, e)| e.get(k).map(|c| (*i, *c)))
            .collect();
        if cuts.is_empty() {
            break;
        }
        for c in cuts {
            steps.push(Step {
                cuts: vec![c],
                reader: Reader::Tail,
            });
        }
        k += 1;
    }
    steps
}

/// File `i` cut after its line `k` (every other file whole or absent), then the rest.
fn two_steps(group: &Group, i: usize, cut: usize, others_first: bool, reader: Reader) -> Vec<Step> {
    let mut first: Vec<(usize, usize)> = Vec::new();
    if others_first {
        first.extend(
            group
                .logs()
                .filter(|(j, _)| *j != i)
                .map(|(j, f)| (j, f.end())),
        );
    }
    first.push((i, cut));
    vec![Step {
        cuts: first,
        reader,
    }]
}

/// Random cuts: each log in 1..=6 pieces at random offsets (mid-line included), the pieces of
/// all files interleaved in a random order, each step read by the tail or a restarted run.
fn random_steps(group: &Group, rng: &mut Rng) -> Vec<Step> {
    let mut pending: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, f) in group.logs() {
        let end = f.end();
        let n = rng.range(1, 7) as usize;
        let mut c: Vec<usize> = (1..n)
            .map(|_| rng.range(0, end as u64 + 1) as usize)
            .collect();
        c.push(end);
        c.sort_unstable();
        c.dedup();
        pending.push((i, c));
    }
    let mut steps = Vec::new();
    while !pending.is_empty() {
        let j = rng.range(0, pending.len() as u64) as usize;
        let (i, c) = &mut pending[j];
        let cut = (*i, c.remove(0));
        if c.is_empty() {
            pending.swap_remove(j);
        }
        let reader = if rng.range(0, 4) == 0 {
            Reader::Restart
        } else {
            Reader::Tail
        };
        // Sometimes two files move in the same step.
        match steps.last_mut() {
            Some(Step { cuts, reader: r }) if *r == reader && rng.range(0, 3) == 0 => {
                cuts.push(cut)
            }
            _ => steps.push(Step {
                cuts: vec![cut],
                reader,
            }),
        }
    }
    steps
}

/// Line boundaries of a file to cut at in two steps: all of them for small files, else the
/// first few, the last few and some in between.
fn chosen_lines(f: &CutFile, all: bool) -> Vec<usize> {
    let ends = f.line_ends();
    let mut cuts: Vec<usize> = std::iter::once(0).chain(ends).collect();
    cuts.pop(); // the end itself is the reference
    if all || cuts.len() <= 8 {
        return cuts;
    }
    let n = cuts.len();
    let mut pick: Vec<usize> = (0..2)
        .chain(n - 3..n)
        .chain((1..4).map(|k| k * n / 4))
        .collect();
    pick.sort_unstable();
    pick.dedup();
    pick.into_iter().map(|k| cuts[k]).collect()
}

/// Every scenario on one group; returns the failures.
/// `lines`: how many line ends the one-line-per-step scenario takes (`usize::MAX`: all, and every
/// line in the two-step scenario too).
fn run_group(
    group: &Group,
    seed: u64,
    random_cases: usize,
    lines: usize,
    two_step: bool,
) -> Vec<String> {
    let all_lines = lines == usize::MAX;
    let expected = reference(group);
    let mut failures = Vec::new();
    let mut cuts_run = 0usize;
    failures.extend(check(
        group,
        &expected,
        &every_line(group, lines),
        &format!("{} every line", group.name),
    ));
    for (i, f) in group.logs().filter(|_| two_step) {
        for (n, cut) in chosen_lines(f, all_lines).into_iter().enumerate() {
            let reader = if n % 2 == 0 {
                Reader::Tail
            } else {
                Reader::Restart
            };
            let others_first = n % 4 < 2;
            cuts_run += 1;
            failures.extend(check(
                group,
                &expected,
                &two_steps(group, i, cut, others_first, reader),
                &format!(
                    "{} {} cut at byte {cut} ({reader:?}, others first: {others_first})",
                    group.name,
                    f.rel.display()
                ),
            ));
        }
    }
    let mut rng = Rng::new(seed);
    for case in 0..random_cases {
        let steps = random_steps(group, &mut rng);
        cuts_run += steps.len();
        // The first case also runs `--full` over the cut ledger.
        failures.extend(check_then(
            group,
            &expected,
            &steps,
            &format!("{} random case {case} (seed {seed:#x})", group.name),
            case == 0,
        ));
    }
    eprintln!(
        "e2e_cuts: {}: {} files, {cuts_run} cut steps, {} failures",
        group.name,
        group.files.len(),
        failures.len()
    );
    failures
}

fn report(failures: Vec<String>) {
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(12).collect();
        panic!(
            "{} cut scenarios differ from one import of the final files:\n{}",
            failures.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Every fixture, the resumed Claude chain among them (its files appear and grow between the
/// other files' cuts, read by the running tail and by restarted runs). `NEX_CUTS_SEED=<hex>`
/// runs only the random cases, with that seed (to try other interleavings quickly; the other
/// scenarios do not depend on the seed).
#[test]
fn every_cut_of_the_fixtures_equals_one_import() {
    let group = fixture_group();
    assert!(group.files.len() >= 12);
    assert!(
        group
            .files
            .iter()
            .any(|f| f.rel.to_string_lossy().contains("resumed-chain/"))
    );
    assert!(
        reference(&group).contains("\nturns "),
        "the fixtures import turns"
    );
    if let Some(seed) = seed_from_env() {
        let expected = reference(&group);
        let mut rng = Rng::new(seed);
        let failures = (0..12).filter_map(|case| {
            let steps = random_steps(&group, &mut rng);
            check(
                &group,
                &expected,
                &steps,
                &format!("{} random case {case} (seed {seed:#x})", group.name),
            )
        });
        report(failures.collect());
        return;
    }
    report(run_group(&group, 0xC075, 12, usize::MAX, true));
}

/// `NEX_CUTS_SEED` (hex, `0x` optional).
fn seed_from_env() -> Option<u64> {
    let seed = std::env::var("NEX_CUTS_SEED").ok()?;
    u64::from_str_radix(seed.trim().trim_start_matches("0x"), 16).ok()
}

/// Every real file. The suite's depth (`NEX_CUTS_DEPTH` unset) cuts each file at 8 line ends
/// spread over it, one per step, and in one random case (mid-line cuts, tail steps and
/// restarts); `NEX_CUTS_DEPTH=full` takes 200 line ends, the chosen lines of each file in two
/// steps and two random cases (about an hour on the whole corpus: the check to run by hand
/// after a parser change). `NEX_CUTS_DEPTH=corpus` adds `NEX_CORPUS_DIR` at the suite's depth.
#[test]
fn every_cut_of_the_real_files_equals_one_import() {
    let full = std::env::var("NEX_CUTS_DEPTH").is_ok_and(|d| d == "full");
    let (lines, random_cases) = if full { (200, 2) } else { (8, 1) };
    let mut failures = Vec::new();
    for (n, group) in real_sets().iter().enumerate() {
        failures.extend(run_group(
            group,
            0x5EED + n as u64,
            random_cases,
            lines,
            full,
        ));
    }
    report(failures);
}

/// The differing lines of two dumps (at most 6), each from a little before where they differ.
pub(crate) fn differences(got: &str, expected: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (got.lines().collect(), expected.lines().collect());
    let mut out = Vec::new();
    let mut n = 0;
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(""),
            b.get(i).copied().unwrap_or(""),
        );
        if x == y {
            continue;
        }
        n += 1;
        if out.len() < 6 {
            let at = x.bytes().zip(y.bytes()).take_while(|(p, q)| p == q).count();
            let from = x[..at].rfind(' ').unwrap_or(0);
            let head: String = x.chars().take(60).collect();
            let cut = |s: &str| {
                s.get(from..)
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect::<String>()
            };
            out.push(format!(
                "    {head}…\n      got:      …{}\n      expected: …{}",
                cut(x),
                cut(y)
            ));
        }
    }
    format!(
        "{n} lines differ ({}/{} lines)\n{}",
        a.len(),
        b.len(),
        out.join("\n")
    )
}

// ---- regressions of issue 11 --------------------------------------------------------------

const SID: &str = "99999999-0000-4000-8000-000000000009";

/// A Claude Code line of session [`SID`] (our own text): a prompt, or an answer by `model`.
fn cc_line(uuid: &str, parent: Option<&str>, second: u32, model: Option<&str>) -> String {
    let parent = parent.map_or("null".to_owned(), |p| format!("\"{p}\""));
    let head = format!(
        r#""parentUuid":{parent},"isSidechain":false,"cwd":"/work/cuts","sessionId":"{SID}","uuid":"{uuid}","timestamp":"2026-05-01T10:00:{second:02}.000Z""#
    );
    match model {
        None => format!(
            r#"{{{head},"type":"user","message":{{"role":"user","content":"Prompt {uuid}."}}}}"#
        ),
        Some(m) => format!(
            r#"{{{head},"type":"assistant","requestId":"req_{uuid}","message":{{"model":"{m}","id":"msg_{uuid}","type":"message","role":"assistant","content":[{{"type":"text","text":"Answer {uuid}."}}],"usage":{{"input_tokens":3,"output_tokens":4}}}}}}"#
        ),
    }
}

fn session_group(lines: &[String]) -> Group {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    Group {
        name: "regression".into(),
        files: vec![CutFile::new(
            PathBuf::from(format!("claude/cuts/{SID}.jsonl")),
            text.into_bytes(),
        )],
    }
}

/// Imports `group` cut after each of `lines` lines (tail and restarted run), then whole; every
/// ledger must equal one import of the final file.
fn assert_cuts_after(group: &Group, lines: &[usize]) {
    let expected = reference(group);
    let ends = group.files[0].line_ends();
    let mut failures = Vec::new();
    for &k in lines {
        for reader in [Reader::Tail, Reader::Restart] {
            let step = Step {
                cuts: vec![(0, ends[k - 1])],
                reader,
            };
            failures.extend(check(
                group,
                &expected,
                &[step],
                &format!("cut after line {k} ({reader:?})"),
            ));
        }
    }
    report(failures);
}

/// Issue 11: a turn whose lines so far had no model (a prompt not answered yet, here never)
/// took the session's model as the tail saw it then (none): NULL, never repaired, where one
/// import gives the session's final model.
#[test]
fn turn_model_of_a_turn_without_a_model_yet_follows_the_final_session() {
    let group = session_group(&[
        cc_line("u1", None, 1, None),
        cc_line("u2", Some("u1"), 5, None),
        cc_line("a2", Some("u2"), 6, Some("claude-opus-4-6")),
    ]);
    assert!(reference(&group).contains("model=\"claude-opus-4-6\""));
    assert_cuts_after(&group, &[1, 2]);
}

/// Issue 11: a turn with no assistant reply takes the session's model, which is the last model
/// seen; the tail gave it the model of the moment (here the first), one import the final one.
#[test]
fn turn_model_of_a_turn_without_a_reply_is_the_same_through_the_tail() {
    let group = session_group(&[
        cc_line("u1", None, 1, None),
        cc_line("a1", Some("u1"), 2, Some("claude-sonnet-4-5")),
        cc_line("u2", Some("a1"), 10, None),
        cc_line("u3", Some("u2"), 20, None),
        cc_line("a3", Some("u3"), 21, Some("claude-opus-4-6")),
    ]);
    assert_cuts_after(&group, &[2, 3, 4]);
}

/// Issue 11: a subagent's `task_status` comes from its parent's Task result line; when that line
/// arrived after the subagent file was imported, by another run than the one that read the
/// subagent, the status stayed NULL (the run that read the parent did not know the child).
#[test]
fn subagent_task_status_arrives_after_the_subagent_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code/flat");
    let read = |name: &str| std::fs::read(root.join(name)).unwrap();
    let parent = CutFile::new(
        PathBuf::from("claude/flat/cccccccc-0000-4000-8000-000000000003.jsonl"),
        read("cccccccc-0000-4000-8000-000000000003.jsonl"),
    );
    let child = CutFile::new(
        PathBuf::from("claude/flat/agent-f1a7001.jsonl"),
        read("agent-f1a7001.jsonl"),
    );
    let before_result = parent.line_ends()[1];
    let group = Group {
        name: "subagent".into(),
        files: vec![parent, child],
    };
    let expected = reference(&group);
    assert!(expected.contains("task_status=\"completed\""));
    let mut failures = Vec::new();
    for (first, second) in [
        (Reader::Restart, Reader::Restart),
        (Reader::Restart, Reader::Tail),
        (Reader::Tail, Reader::Restart),
    ] {
        let steps = [
            Step {
                cuts: vec![(0, before_result)],
                reader: first,
            },
            Step {
                cuts: vec![(1, group.files[1].end())],
                reader: second,
            },
        ];
        failures.extend(check(
            &group,
            &expected,
            &steps,
            &format!("parent's result after the child ({first:?}, {second:?})"),
        ));
    }
    report(failures);
}

/// A Claude Code 2.1 subagent line of session [`SID`]'s agent `a7e5` (our own text): a prompt,
/// an answer with `text`, a `tool_use` call, or the result of one.
fn agent_line(uuid: &str, parent: Option<&str>, second: u32, body: &str) -> String {
    let parent = parent.map_or("null".to_owned(), |p| format!("\"{p}\""));
    let head = format!(
        r#""parentUuid":{parent},"isSidechain":true,"agentId":"a7e5","cwd":"/work/cuts","sessionId":"{SID}","uuid":"{uuid}","timestamp":"2026-05-01T10:00:{second:02}.000Z""#
    );
    let assistant = |content: String| {
        format!(
            r#"{{{head},"type":"assistant","requestId":"req_{uuid}","message":{{"model":"claude-sonnet-4-6","id":"msg_{uuid}","type":"message","role":"assistant","content":[{content}],"usage":{{"input_tokens":3,"output_tokens":4}}}}}}"#
        )
    };
    match body.split_once(':') {
        Some(("tool", id)) => assistant(format!(
            r#"{{"type":"tool_use","id":"toolu_{id}","name":"Read","input":{{"file_path":"/work/cuts/{id}.md"}}}}"#
        )),
        Some(("result", id)) => format!(
            r#"{{{head},"type":"user","message":{{"role":"user","content":[{{"tool_use_id":"toolu_{id}","type":"tool_result","content":"Contents of {id}."}}]}}}}"#
        ),
        Some(("text", text)) => assistant(format!(r#"{{"type":"text","text":"{text}"}}"#)),
        _ => format!(r#"{{{head},"type":"user","message":{{"role":"user","content":"{body}"}}}}"#),
    }
}

/// Issue 11 (real Claude Code 2.1 subagent files): a subagent sent a follow-up message writes
/// its whole earlier transcript to its file again (same uuids, same `message.id`s, the first
/// answer re-parented) before the new prompt. The copied prompt re-opened its turn under the
/// same id: through a tail or a restart resuming inside the copy, the turn was re-sent without
/// its tool calls (already seen) and its `tool_call_count` fell from 2 to 0.
#[test]
fn replayed_lines_of_a_resumed_subagent_do_not_reopen_their_turn() {
    let first = [
        agent_line("s1", None, 1, "Check the two notes."),
        agent_line("s2", Some("x0"), 2, "text:Reading them."),
        agent_line("s3", Some("s2"), 3, "tool:one"),
        agent_line("s4", Some("s3"), 4, "result:one"),
        agent_line("s5", Some("s4"), 5, "tool:two"),
        agent_line("s6", Some("s5"), 6, "result:two"),
        agent_line("s7", Some("s6"), 7, "text:Both read."),
    ];
    let mut lines: Vec<String> = first.to_vec();
    // The copy: the same lines, the first answer now parented to the prompt.
    lines.push(first[0].clone());
    lines.push(agent_line("s2", Some("s1"), 2, "text:Reading them."));
    lines.extend(first[2..].iter().cloned());
    lines.push(agent_line("s8", Some("s7"), 30, "Now summarise them."));
    lines.push(agent_line("s9", Some("s8"), 31, "text:Summary."));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let group = Group {
        name: "resumed subagent".into(),
        files: vec![CutFile::new(
            PathBuf::from(format!("claude/cuts/{SID}/subagents/agent-a7e5.jsonl")),
            text.into_bytes(),
        )],
    };
    let expected = reference(&group);
    assert_eq!(
        expected.matches("tool_call_count=2").count(),
        1,
        "one turn holds both calls:\n{expected}"
    );
    assert_eq!(expected.matches("\nturns ").count(), 2, "{expected}");
    assert_cuts_after(&group, &(1..lines.len()).collect::<Vec<_>>());
}

/// A Gemini CLI legacy document of session `sid` (our own text): one prompt and one answer by
/// `model` per `(prompt id, minute)`.
fn gemini_doc(sid: &str, start_minute: u32, turns: &[(&str, u32, &str)]) -> Vec<u8> {
    let mut messages = Vec::new();
    for (id, minute, model) in turns {
        messages.push(serde_json::json!({
            "id": format!("{id}-q"), "type": "user",
            "timestamp": format!("2026-01-27T17:{minute:02}:01.000Z"),
            "content": format!("Question {id}."),
        }));
        messages.push(serde_json::json!({
            "id": format!("{id}-a"), "type": "gemini",
            "timestamp": format!("2026-01-27T17:{minute:02}:09.000Z"),
            "content": format!("Answer {id}."), "model": model,
            "tokens": {"input": 10, "output": 2, "cached": 0, "thoughts": 0, "tool": 0, "total": 12},
        }));
    }
    let last = turns.last().map_or(start_minute, |t| t.1);
    serde_json::to_vec_pretty(&serde_json::json!({
        "sessionId": sid,
        "projectHash": "ph-shared",
        "startTime": format!("2026-01-27T17:{start_minute:02}:00.000Z"),
        "lastUpdated": format!("2026-01-27T17:{last:02}:30.000Z"),
        "messages": messages,
    }))
    .unwrap()
}

/// Issue 10/11 (real Gemini CLI 2025-2026 legacy chats): two files of one project carry the
/// same `sessionId` (a subagent's chat, or the conversation after `/clear`, written to a new
/// file). Both were imported as one session whose header (times, model, head, fingerprint) was
/// that of whichever file was read last, so the ledger depended on the order of reads.
#[test]
fn gemini_files_sharing_a_session_id_give_one_result_whatever_order() {
    let sid = "0f4d0000-0000-4000-8000-0000000000aa";
    let chats = "gemini/tmp/ph-shared/chats";
    let first = CutFile::new(
        PathBuf::from(format!("{chats}/session-2026-01-27T17-44-0f4d0000.json")),
        gemini_doc(
            sid,
            44,
            &[("m1", 45, "gemini-2.5-pro"), ("m2", 50, "gemini-2.5-flash")],
        ),
    );
    let second = CutFile::new(
        PathBuf::from(format!("{chats}/session-2026-01-27T17-51-0f4d0000.json")),
        gemini_doc(sid, 51, &[("s1", 51, "gemini-2.5-flash-lite")]),
    );
    let group = Group {
        name: "gemini shared id".into(),
        files: vec![first, second],
    };
    let expected = reference(&group);
    assert!(
        expected.contains(&format!(
            "source_session_id=\"{sid}/2026-01-27T17-51-0f4d0000\""
        )),
        "the later file is a session of its own:\n{expected}"
    );
    let mut failures = Vec::new();
    // The first file is created first (it is named after the earlier minute); either file may
    // then be read last (a backfill reads by modification time).
    for order in [
        [(0, 1), (1, 1), (0, 2)],
        [(0, 2), (1, 1), (0, 2)],
        [(0, 1), (0, 2), (1, 1)],
    ] {
        for reader in [Reader::Tail, Reader::Restart] {
            let steps: Vec<Step> = order
                .iter()
                .map(|&(i, at)| Step {
                    cuts: vec![(i, at)],
                    reader,
                })
                .collect();
            failures.extend(check(
                &group,
                &expected,
                &steps,
                &format!("{order:?} ({reader:?})"),
            ));
        }
    }
    report(failures);
}

// ---- issue 12: the open turn as deltas -----------------------------------------------------

/// A Claude Code session of our own text: a closed first turn, then an open turn of `calls`
/// tool calls (a `tool_use` line and its `tool_result` line each), one second apart.
fn long_turn_lines(calls: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut parent: Option<String> = None;
    let mut push = |lines: &mut Vec<String>, uuid: String, body: String| {
        let n = lines.len();
        let parent_json = parent
            .as_deref()
            .map_or("null".to_owned(), |p| format!("\"{p}\""));
        lines.push(format!(
            r#"{{"parentUuid":{parent_json},"isSidechain":false,"cwd":"/work/long","sessionId":"{SID}","uuid":"{uuid}","timestamp":"2026-05-01T10:{:02}:{:02}.000Z",{body}}}"#,
            n / 60,
            n % 60
        ));
        parent = Some(uuid);
    };
    let prompt =
        |text: &str| format!(r#""type":"user","message":{{"role":"user","content":"{text}"}}"#);
    push(&mut lines, "p1".into(), prompt("List the crates."));
    push(
        &mut lines,
        "a1".into(),
        r#""type":"assistant","requestId":"req_a1","message":{"model":"claude-opus-4-6","id":"msg_a1","type":"message","role":"assistant","content":[{"type":"text","text":"Three crates."}],"usage":{"input_tokens":3,"output_tokens":4}}"#.into(),
    );
    push(
        &mut lines,
        "p2".into(),
        prompt("Run every test and fix what fails."),
    );
    for i in 0..calls {
        push(
            &mut lines,
            format!("u{i}"),
            format!(
                r#""type":"assistant","requestId":"req_{i}","message":{{"model":"claude-opus-4-6","id":"msg_{i}","type":"message","role":"assistant","content":[{{"type":"tool_use","id":"toolu_{i}","name":"Bash","input":{{"command":"cargo test -p crate{i}"}}}}],"usage":{{"input_tokens":2,"output_tokens":{i}}}}}"#
            ),
        );
        push(
            &mut lines,
            format!("r{i}"),
            format!(
                r#""type":"user","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_{i}","content":"test result {i}: ok"}}]}},"toolUseResult":{{"stdout":"test result {i}: ok","stderr":""}}"#
            ),
        );
    }
    lines
}

/// What the frames of one read carried: (turns, messages, tool calls) over their items.
fn carried(frames: &[u8]) -> (usize, usize, usize) {
    let mut sum = (0, 0, 0);
    for line in frames.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let frame: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert_ne!(frame["type"], "import.chunk", "a small item went in chunks");
        let Some(items) = frame["payload"]["items"].as_array() else {
            continue;
        };
        for item in items {
            let len = |k: &str| item[k].as_array().map_or(0, Vec::len);
            sum.0 += len("turns");
            sum.1 += len("messages");
            sum.2 += len("toolCalls");
        }
    }
    sum
}

/// The open turn's `tool_call_count` in the ledger.
fn open_turn_tool_calls(ledger: &Ledger) -> i64 {
    ledger
        .read()
        .query_row(
            "SELECT tool_call_count FROM turns WHERE source_event_id = 'p2'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Issue 12: an append to a long open turn sends the turn's row and only the new messages and
/// tool calls; a worker restarted mid-turn (no state in memory, the ledger's cursors) sends the
/// open turn whole once, then deltas again; so does one started after a backfill run (a daemon
/// restart); the turn's `tool_call_count` is right after every append, and the ledger at the
/// end equals one import of the final file.
#[test]
fn a_long_open_turn_goes_as_deltas_and_survives_a_worker_restart_mid_turn() {
    let calls = 30;
    let group = session_group(&long_turn_lines(calls));
    let expected = reference(&group);
    let file = &group.files[0];
    let ends = file.line_ends();
    // Bytes of the file with the first turn, the prompt and `k` tool calls.
    let after_calls = |k: usize| ends[2 + 2 * k];
    let tree = Tree::new();
    let ledger = Ledger::new(tree.dir.path().join("cut.db"));
    let mut at = vec![0];
    let mut done = 0;
    // Three tail runs (the second a restarted worker, the third after a backfill run); each
    // reads 8 tool calls: its first read 2 at once, then one per read.
    for run in 0..3 {
        if run == 2 {
            done += 2;
            apply_cuts(&tree, &group, &[(0, after_calls(done))], &mut at);
            tree.backfill(&ledger, false, "backfill run mid-turn");
            assert_eq!(open_turn_tool_calls(&ledger), done as i64);
        }
        let frames = Frames::default();
        let sink = FrameSink::new(Box::new(frames.clone()), uuid::Uuid::new_v4().to_string());
        let mut follower = Follower::start(&sink, ledger.cursors());
        for read in 0..7 {
            done += if read == 0 { 2 } else { 1 };
            let changed = apply_cuts(&tree, &group, &[(0, after_calls(done))], &mut at);
            follower.step(&tree, &changed);
            let sent = frames.take();
            let (turns, messages, tool_calls) = carried(&sent);
            ledger.apply(sent, &format!("run {run} read {read}"));
            assert_eq!(
                open_turn_tool_calls(&ledger),
                done as i64,
                "run {run} read {read}"
            );
            if read > 0 {
                assert_eq!(
                    (turns, messages, tool_calls),
                    (1, 2, 1),
                    "run {run} read {read}: the turn row and the new call's two lines only"
                );
            } else if run > 0 {
                // No state in memory: the open turn once, whole (prompt and every call so far).
                assert_eq!(
                    (turns, messages, tool_calls),
                    (1, 1 + 2 * done, done),
                    "run {run}: the open turn re-read once"
                );
            }
        }
    }
    let frames = Frames::default();
    let sink = FrameSink::new(Box::new(frames.clone()), uuid::Uuid::new_v4().to_string());
    let mut follower = Follower::start(&sink, ledger.cursors());
    let changed = apply_cuts(&tree, &group, &[(0, file.end())], &mut at);
    follower.step(&tree, &changed);
    ledger.apply(frames.take(), "the rest");
    let got = ledger
        .dump()
        .replace(&tree.dir.path().display().to_string(), "<tree>");
    assert!(expected.contains(&format!("tool_call_count={calls}")));
    if got != expected {
        panic!("{}", differences(&got, &expected));
    }
}

/// A Gemini CLI log of our own text: the metadata record, a closed first turn, then an open turn
/// of `calls` tool calls, each a gemini message written twice (the call executing, then the
/// same message id again with its result: the CLI's upsert), one second apart.
fn gemini_long_turn_lines(calls: usize) -> Vec<String> {
    let time = |n: usize| format!("2026-05-01T10:{:02}:{:02}.000Z", n / 60, n % 60);
    let mut lines = vec![
        format!(
            r#"{{"sessionId":"{SID}","projectHash":"ph-long","startTime":"{}"}}"#,
            time(0)
        ),
        format!(
            r#"{{"id":"p1","timestamp":"{}","type":"user","content":"List the crates."}}"#,
            time(1)
        ),
        format!(
            r#"{{"id":"a1","timestamp":"{}","type":"gemini","content":"Three crates.","model":"gemini-2.5-pro","tokens":{{"input":3,"output":4,"cached":0,"total":7}}}}"#,
            time(2)
        ),
        format!(
            r#"{{"id":"p2","timestamp":"{}","type":"user","content":[{{"text":"Run every test and fix what fails."}}]}}"#,
            time(3)
        ),
    ];
    for i in 0..calls {
        let (at, done) = (time(4 + 2 * i), time(5 + 2 * i));
        let call = |status: &str, ts: &str, result: &str| {
            format!(
                r#"{{"id":"m{i}","timestamp":"{at}","type":"gemini","content":"Testing crate{i}.","model":"gemini-2.5-pro","tokens":{{"input":2,"output":{i},"cached":0,"total":{}}},"toolCalls":[{{"id":"call_{i}","name":"run_shell_command","args":{{"command":"cargo test -p crate{i}"}},"status":"{status}","timestamp":"{ts}"{result}}}]}}"#,
                2 + i
            )
        };
        lines.push(call("executing", &at, ""));
        lines.push(call(
            "success",
            &done,
            &format!(r#","result":[{{"functionResponse":{{"id":"call_{i}","name":"run_shell_command","response":{{"output":"test result {i}: ok"}}}}}}]"#),
        ));
    }
    lines
}

/// Issue 12: as [`a_long_open_turn_goes_as_deltas_and_survives_a_worker_restart_mid_turn`] for
/// a Gemini CLI log: an append to a long open turn sends the turn's row and only the messages
/// and tool calls the new lines wrote (a call's second line, its result, re-sends that call
/// alone), with the turn's `tool_call_count` right after every append; a worker restarted
/// mid-turn (it rebuilds its state from the cursor's offset silently) and one started after a
/// backfill run send deltas from their first read; the ledger at the end equals one import of
/// the final file.
#[test]
fn a_long_open_gemini_turn_goes_as_deltas_and_survives_a_worker_restart_mid_turn() {
    let calls = 30;
    let text: String = gemini_long_turn_lines(calls)
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    let group = Group {
        name: "gemini long turn".into(),
        files: vec![CutFile::new(
            PathBuf::from("gemini/tmp/ph-long/chats/session-2026-05-01T10-00-99999999.jsonl"),
            text.into_bytes(),
        )],
    };
    let expected = reference(&group);
    let file = &group.files[0];
    let ends = file.line_ends();
    // Bytes of the file with the first turn, the prompt and `k` tool calls (two lines each);
    // `half`: the last call's first line only (executing, no result yet).
    let upto = |k: usize, half: bool| ends[3 + 2 * k - usize::from(half)];
    let tree = Tree::new();
    let ledger = Ledger::new(tree.dir.path().join("cut.db"));
    let mut at = vec![0];
    let mut done = 0;
    for run in 0..3 {
        if run == 2 {
            done += 2;
            apply_cuts(&tree, &group, &[(0, upto(done, false))], &mut at);
            tree.backfill(&ledger, false, "backfill run mid-turn");
            assert_eq!(open_turn_tool_calls(&ledger), done as i64);
        }
        let frames = Frames::default();
        let sink = FrameSink::new(Box::new(frames.clone()), uuid::Uuid::new_v4().to_string());
        let mut follower = Follower::start(&sink, ledger.cursors());
        for read in 0..7 {
            let new = if read == 0 { 2 } else { 1 };
            done += new;
            // The new calls' first lines, then their results.
            for half in [true, false] {
                let changed = apply_cuts(&tree, &group, &[(0, upto(done, half))], &mut at);
                follower.step(&tree, &changed);
                let sent = frames.take();
                let carried = carried(&sent);
                ledger.apply(sent, &format!("run {run} read {read} {half}"));
                assert_eq!(
                    open_turn_tool_calls(&ledger),
                    done as i64,
                    "run {run} read {read} {half}"
                );
                if run == 0 && read == 0 && half {
                    // The first read of the file: all of it.
                    assert_eq!(carried, (2, 3 + done, done), "first read");
                } else if half {
                    // The new messages and calls; at a restart, the first read's only.
                    assert_eq!(carried, (1, new, new), "run {run} read {read}: new lines");
                } else {
                    // The last call's result: that call alone (its message row is unchanged).
                    assert_eq!(carried, (1, 0, 1), "run {run} read {read}: a result");
                }
            }
        }
    }
    let frames = Frames::default();
    let sink = FrameSink::new(Box::new(frames.clone()), uuid::Uuid::new_v4().to_string());
    let mut follower = Follower::start(&sink, ledger.cursors());
    let changed = apply_cuts(&tree, &group, &[(0, file.end())], &mut at);
    follower.step(&tree, &changed);
    ledger.apply(frames.take(), "the rest");
    let got = ledger
        .dump()
        .replace(&tree.dir.path().display().to_string(), "<tree>");
    assert!(expected.contains(&format!("tool_call_count={calls}")));
    if got != expected {
        panic!("{}", differences(&got, &expected));
    }
}

// ---- lines several Claude Code files hold ---------------------------------------------------

/// The `resumed-chain` fixture (A, B resumed from A, C resumed from B, each starting with a
/// copy of the conversation so far) as one project.
fn resumed_chain_group() -> Group {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    collect(
        &root,
        "claude-code/resumed-chain",
        "claude/resumed-chain",
        &mut files,
    );
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    assert_eq!(files.len(), 3);
    Group {
        name: "claude resumed chain".into(),
        files,
    }
}

/// Whatever order the files of a resumed chain appear and grow in (a copy first, its origin
/// later; cut mid-line), read by a running tail or by restarted runs, each copied line ends in
/// its owner's session only: the rows a file imported before a line's owner appeared are
/// removed when the owner appears, and the ledger equals one backfill of the final files.
#[test]
fn resumed_claude_files_give_one_result_whatever_order_they_appear_in() {
    let group = resumed_chain_group();
    let expected = reference(&group);
    let mut failures = Vec::new();
    let ends: Vec<usize> = group.files.iter().map(CutFile::end).collect();
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
        for reader in [Reader::Tail, Reader::Restart] {
            let steps: Vec<Step> = order
                .iter()
                .map(|&i| Step {
                    cuts: vec![(i, ends[i])],
                    reader,
                })
                .collect();
            failures.extend(check(
                &group,
                &expected,
                &steps,
                &format!("files in order {order:?} ({reader:?})"),
            ));
        }
    }
    failures.extend(run_group(&group, 0x5eed_c0b1, 8, usize::MAX, true));
    report(failures);
}

/// Regression (issues 10 and 11): a resumed file read while it holds only copies (its origin
/// not written yet) imports them as its own; when the origin appears, the file is read again
/// whole and now yields no item at all (every complete line is another file's), so nothing
/// removed those rows, while its cursor recorded the new ownership: later reads resumed from it
/// and the file kept the copied turns (its `created_at` the copies' time). Cut among every
/// other fixture, seed 0xC075 met this order in its first random case.
#[test]
fn a_resumed_file_that_held_only_copies_loses_their_rows_when_their_owner_appears() {
    let group = resumed_chain_group();
    let expected = reference(&group);
    let (a, b, c) = (0, 1, 2);
    assert!(group.files[c].rel.to_string_lossy().contains("cccccccc"));
    // C up to its last copy of A's lines (6 lines after its summary): copies only.
    let c_copies = group.files[c].line_ends()[6];
    let b_own = group.files[b].line_ends()[7];
    let mut failures = Vec::new();
    for owner in [(a, group.files[a].end()), (b, b_own)] {
        for first in [Reader::Tail, Reader::Restart] {
            for second in [Reader::Tail, Reader::Restart] {
                let steps = vec![
                    Step {
                        cuts: vec![(c, c_copies)],
                        reader: first,
                    },
                    Step {
                        cuts: vec![owner],
                        reader: second,
                    },
                ];
                failures.extend(check(
                    &group,
                    &expected,
                    &steps,
                    &format!(
                        "copies of C read ({first:?}), then {} ({second:?})",
                        group.files[owner.0].rel.display()
                    ),
                ));
            }
        }
    }
    report(failures);
}

/// A 2.1.x `aside_question` subagent file starts with a copy of its parent's conversation
/// (same uuids, timestamps and `sessionId`): cut at every line, in two steps and at random,
/// read by the tail or restarted runs, the copies end in the parent's session only and the
/// agent keeps its side question and answer, as one backfill of the final files has them.
#[test]
fn an_aside_question_agent_copy_of_its_parent_belongs_to_the_parent_whatever_the_cuts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    collect(
        &root,
        "claude-code/aside-question",
        "claude/aside-question",
        &mut files,
    );
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    assert_eq!(files.len(), 2);
    let group = Group {
        name: "claude aside question".into(),
        files,
    };
    let expected = reference(&group);
    assert_eq!(
        expected.matches("\ntool_calls ").count(),
        1,
        "the parent's call, once: {expected}"
    );
    report(run_group(&group, 0xA51D_E000, 8, usize::MAX, true));
}

/// A `/review` rollout and the parent that started it, appearing and growing in either order
/// (the review's first, before the parent wrote the review's turn id; cut mid-line), read by a
/// running tail or restarted runs: the review ends linked to its parent, and the ledger equals
/// one backfill of the final files.
#[test]
fn a_review_rollout_links_to_its_parent_whatever_order_they_appear_in() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    collect(&root, "codex/review", "codex/sessions/review", &mut files);
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    assert_eq!(files.len(), 2);
    let group = Group {
        name: "codex review".into(),
        files,
    };
    let expected = reference(&group);
    assert!(
        expected.contains("parent_session_label=\"import:codex:019c7400"),
        "the review is linked:\n{expected}"
    );
    let ends: Vec<usize> = group.files.iter().map(CutFile::end).collect();
    let mut failures = Vec::new();
    for order in [[0, 1], [1, 0]] {
        for reader in [Reader::Tail, Reader::Restart] {
            let steps: Vec<Step> = order
                .iter()
                .map(|&i| Step {
                    cuts: vec![(i, ends[i])],
                    reader,
                })
                .collect();
            failures.extend(check(
                &group,
                &expected,
                &steps,
                &format!("files in order {order:?} ({reader:?})"),
            ));
        }
    }
    failures.extend(run_group(&group, 0x5eed_4e71, 6, usize::MAX, true));
    report(failures);
}

/// A resumed file whose *final* content is only copies of lines another file owns (its user
/// resumed a session and left without typing): the `resumed-chain` fixture's origin A and its
/// third file C cut after its copies of A's lines (a summary and six copies, C's own id).
fn copies_only_group() -> Group {
    let chain = resumed_chain_group();
    let (a, c) = (&chain.files[0], &chain.files[2]);
    assert!(c.rel.to_string_lossy().contains("cccccccc"));
    let copies_end = c.line_ends()[6];
    Group {
        name: "claude copies-only file".into(),
        files: vec![
            a.clone(),
            CutFile::new(c.rel.clone(), c.fin[..copies_end].to_vec()),
        ],
    }
}

/// Known limit of issue 11, fixed by item rule 15: a resumed file read while it holds copies
/// alone (their owner not written yet) imports them as its own session; when the owner
/// appears, a whole read of the final file yields nothing for it. The worker then retracts the
/// session (it sent it before, and its lines are now other files' copies), so whatever the
/// order the files appear in and wherever they are cut, read by the running tail or restarted
/// runs, the ledger equals one backfill of the final files, which holds no session of C at
/// all. `NEX_CUTS_SEED=<hex>` changes the random cases' seed.
#[test]
fn a_file_left_with_copies_only_gives_no_session_whatever_order_and_cuts() {
    let group = copies_only_group();
    let expected = reference(&group);
    assert!(
        !expected.contains("claude-code:cccccccc-3333")
            && !expected.contains("source_session_id=\"cccccccc"),
        "one backfill of the final files has no session of the copies-only file:\n{expected}"
    );
    let ends: Vec<usize> = group.files.iter().map(CutFile::end).collect();
    let mut failures = Vec::new();
    // The bad order first: the copies before their owner.
    for order in [[1, 0], [0, 1]] {
        for first in [Reader::Tail, Reader::Restart] {
            for second in [Reader::Tail, Reader::Restart] {
                let steps = vec![
                    Step {
                        cuts: vec![(order[0], ends[order[0]])],
                        reader: first,
                    },
                    Step {
                        cuts: vec![(order[1], ends[order[1]])],
                        reader: second,
                    },
                ];
                failures.extend(check(
                    &group,
                    &expected,
                    &steps,
                    &format!("files in order {order:?} ({first:?}, then {second:?})"),
                ));
            }
        }
    }
    let seed = seed_from_env().unwrap_or(0x5eed_c0c1);
    failures.extend(run_group(&group, seed, 12, usize::MAX, true));
    report(failures);
}
