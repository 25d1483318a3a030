//! The bad-input harness (TARGETS.md R3): a deterministic stream of worker frames that
//! interleaves valid frames (small batches, chunked uploads in any order with duplicates,
//! progress, health) with every kind of bad input (random bytes, invalid UTF-8, truncated JSON,
//! wrong types, huge numbers, bad base64, corrupt gzip, a gzip bomb, chunk metadata mismatches,
//! out-of-range indexes, unknown types, wrong run ids, over-long lines, empty lines, CRLF).
//!
//! The generator records the expected outcome of every frame before writing it; the stream is
//! generated as it is read (an in-memory duplex pipe, so 1,000,000 frames never sit in memory)
//! and goes through the real pipeline ([`frame_source`] + [`run_lines`]) into a real ledger. A
//! tap compares each frame's outcome with its expectation by `seq` (frames whose envelope could
//! not be read carry no seq and are compared by count of code), and the report's reject counts
//! and the ledger's sessions are compared with the generator's totals.

mod generate;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::procs::vm_hwm_kib;
use super::replay::BenchError;
use nex::import::ImportOptions;
use nex::ledger;
use nex::pipeline::writer::{LedgerWriter, WriterConfig};
use nex::pipeline::{Emit, PipelineConfig, PipelineError, Stage, StreamEnd, run_lines};
use nex::protocol::{ChunkStatus, ItemStatus};
use nex::stages::source::frame_source;
use nex::stages::{FrameOutcome, Outcome};

use generate::Gen;

/// The run id of the stream (the pipeline is started with it).
pub const RUN: &str = "f0220000-0000-4000-8000-000000000001";

/// Seqs of frames the decoder rejects start here, so the frames it accepts are numbered
/// 1, 2, 3... without gaps and every seq is unique.
const BAD_SEQ_BASE: u64 = 1 << 40;

/// One fuzz run.
#[derive(Debug, Clone, Copy)]
pub struct FuzzSpec {
    pub seed: u64,
    /// Frames to generate (at least; a multi-frame scenario may finish past it).
    pub frames: u64,
    /// Longest accepted line (set low so over-long lines are cheap).
    pub max_frame_bytes: usize,
    /// The gzip bomb's limit.
    pub max_inflated_bytes: u64,
}

impl Default for FuzzSpec {
    fn default() -> Self {
        Self {
            seed: 1,
            frames: 1_000_000,
            max_frame_bytes: 64 * 1024,
            max_inflated_bytes: 1 << 20,
        }
    }
}

/// The expected outcome of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// An `import.batch` whose items were all imported.
    Imported,
    /// An `import.batch` committed with one item `failed` for this reason.
    ItemFailed(&'static str),
    /// A chunk part staged.
    Staged,
    /// A chunk part that completed (or re-sent a completed) upload.
    Completed,
    /// A progress, health or terminal frame, reported in order.
    Reported,
    /// Rejected with this code.
    Rejected(&'static str),
}

/// What the run did against what was expected.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FuzzResult {
    /// Lines written (empty lines included).
    pub frames: u64,
    pub empty_lines: u64,
    /// Frames expected committed (imported, staged, completed, reported).
    pub valid_frames: u64,
    pub expected_rejects: BTreeMap<String, u64>,
    pub rejected: BTreeMap<String, u64>,
    pub expected_sessions: u64,
    pub ledger_sessions: u64,
    /// Seq gaps and repeats the decoder noted (the accepted frames are numbered without gaps).
    pub seq_anomalies: u64,
    /// The run ended on the stream's `run.complete`.
    pub completed: bool,
    /// Frames whose outcome differed from the expectation (or never came).
    pub mismatches: u64,
    /// The first few mismatches, `seq: expected -> actual` (codes only).
    pub mismatch_samples: Vec<String>,
    pub bytes: u64,
    pub secs: f64,
    pub frames_per_sec: f64,
    /// VmHWM of this process at the end, KiB.
    pub peak_rss_kib: Option<u64>,
}

impl FuzzResult {
    /// Every bad frame rejected with its code, every valid frame committed, nothing else.
    pub fn is_clean(&self) -> bool {
        self.mismatches == 0
            && self.completed
            && self.seq_anomalies == 0
            && self.rejected == self.expected_rejects
            && self.ledger_sessions == self.expected_sessions
    }
}

/// Expectations shared by the generator (writes them before the frame) and the tap.
#[derive(Default)]
struct Checker {
    by_seq: HashMap<u64, Expect>,
    /// Rejects whose frame carries no readable seq, by code: expected and seen.
    no_seq_expected: BTreeMap<&'static str, u64>,
    no_seq_seen: BTreeMap<String, u64>,
    mismatches: u64,
    samples: Vec<String>,
}

impl Checker {
    fn mismatch(&mut self, text: String) {
        self.mismatches += 1;
        if self.samples.len() < 20 {
            self.samples.push(text);
        }
    }

    fn check(&mut self, outcome: &FrameOutcome) {
        let Some(seq) = outcome.meta.seq else {
            match &outcome.result {
                Outcome::Rejected(code) => {
                    *self.no_seq_seen.entry(code.to_string()).or_default() += 1
                }
                other => self.mismatch(format!("no seq: {}", describe(other))),
            }
            return;
        };
        let Some(expect) = self.by_seq.remove(&seq) else {
            let actual = describe(&outcome.result);
            return self.mismatch(format!("{seq}: unexpected -> {actual}"));
        };
        if !matches(expect, &outcome.result) {
            let actual = describe(&outcome.result);
            self.mismatch(format!("{seq}: {expect:?} -> {actual}"));
        }
    }

    /// Expectations never met, and no-seq counts that differ.
    fn finish(&mut self) {
        let mut left: Vec<(u64, Expect)> = self.by_seq.drain().collect();
        left.sort_by_key(|(s, _)| *s);
        for (seq, expect) in left {
            self.mismatch(format!("{seq}: {expect:?} -> no outcome"));
        }
        let expected: BTreeMap<String, u64> = self
            .no_seq_expected
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        if expected != self.no_seq_seen {
            let seen = format!("{:?}", self.no_seq_seen);
            self.mismatch(format!("no-seq rejects: {expected:?} -> {seen}"));
        }
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Imported { response, .. } => format!(
            "imported {}/{}/{}/{} {:?}",
            response.imported,
            response.upserted,
            response.skipped,
            response.failed,
            response
                .results
                .iter()
                .filter_map(|r| r.reason.as_deref())
                .collect::<Vec<_>>()
        ),
        Outcome::Chunk { response, .. } => format!("chunk {:?}", response.status),
        Outcome::Reported(_) => "reported".into(),
        Outcome::Rejected(code) => format!("rejected {code}"),
    }
}

fn matches(expect: Expect, outcome: &Outcome) -> bool {
    match (expect, outcome) {
        (Expect::Imported, Outcome::Imported { response, .. }) => {
            response.failed == 0 && response.imported as usize == response.results.len()
        }
        (Expect::ItemFailed(reason), Outcome::Imported { response, .. }) => {
            response.failed == 1
                && response.imported as usize + 1 == response.results.len()
                && response
                    .results
                    .iter()
                    .any(|r| r.status == ItemStatus::Failed && r.reason.as_deref() == Some(reason))
        }
        (Expect::Staged, Outcome::Chunk { response, .. }) => response.status == ChunkStatus::Staged,
        (Expect::Completed, Outcome::Chunk { response, .. }) => {
            response.status == ChunkStatus::Completed
                && response.import.as_ref().is_some_and(|i| i.failed == 0)
        }
        (Expect::Reported, Outcome::Reported(_)) => true,
        (Expect::Rejected(code), Outcome::Rejected(actual)) => actual.as_str() == code,
        _ => false,
    }
}

/// The tap that checks each outcome as it passes.
struct CheckTap(Arc<Mutex<Checker>>);

impl Stage<FrameOutcome, FrameOutcome> for CheckTap {
    fn name(&self) -> &'static str {
        "fuzz_check"
    }

    fn process(
        &mut self,
        outcome: FrameOutcome,
        out: &mut Emit<FrameOutcome>,
    ) -> Result<(), PipelineError> {
        lock(&self.0).check(&outcome);
        out.push(outcome);
        Ok(())
    }
}

fn lock(m: &Mutex<Checker>) -> std::sync::MutexGuard<'_, Checker> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Generates the stream of `spec`, runs it through the pipeline into a fresh ledger in a temp
/// dir, and compares every outcome with its expectation. Blocking: builds its own runtime.
///
/// # Errors
/// The pipeline failing (a fatal error is itself a finding: bad input must never end a run),
/// the ledger or temp dir failing.
pub fn run(spec: &FuzzSpec) -> Result<FuzzResult, BenchError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("fuzz.db");
    let conn = ledger::open_agents(&path)?;
    let writer = LedgerWriter::spawn(conn, WriterConfig::default())?;
    let checker = Arc::new(Mutex::new(Checker::default()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let spec = *spec;
    let (report, generated) = runtime.block_on(async {
        let (reader, mut pipe) = tokio::io::duplex(1 << 20);
        let gen_checker = checker.clone();
        let producer = tokio::spawn(async move {
            let mut g = Gen::new(&spec, gen_checker);
            let mut buf = Vec::with_capacity(1 << 20);
            let mut bytes = 0u64;
            while g.result.frames < spec.frames {
                g.scenario(&mut buf);
                if buf.len() >= 256 * 1024 {
                    bytes += buf.len() as u64;
                    pipe.write_all(&buf).await?;
                    buf.clear();
                }
            }
            g.complete(&mut buf);
            bytes += buf.len() as u64;
            pipe.write_all(&buf).await?;
            pipe.shutdown().await?;
            g.result.bytes = bytes;
            g.result.expected_rejects = g
                .expected_rejects
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            Ok::<_, std::io::Error>(g.result)
        });
        let config = PipelineConfig {
            run_id: Some(RUN.into()),
            max_frame_bytes: spec.max_frame_bytes,
            import: ImportOptions {
                max_inflated_bytes: spec.max_inflated_bytes,
                ..ImportOptions::default()
            },
            ..PipelineConfig::default()
        };
        let cancel = CancellationToken::new();
        let lines = frame_source(reader, spec.max_frame_bytes, cancel.clone());
        let taps: nex::pipeline::OutcomeTaps = vec![Box::new(CheckTap(checker.clone()))];
        let report = run_lines(lines, config, &writer.handle(), None, cancel, taps).await;
        let generated = producer
            .await
            .map_err(|e| BenchError::Io(std::io::Error::other(e)))??;
        Ok::<_, BenchError>((BenchError::of(report)?, generated))
    })?;
    writer.join();
    let secs = started.elapsed().as_secs_f64();
    let mut result = generated;
    let mut c = lock(&checker);
    c.finish();
    result.mismatches = c.mismatches;
    result.mismatch_samples = c.samples.clone();
    result.rejected = report.counters.rejected.clone();
    result.seq_anomalies = report.counters.seq_gaps + report.counters.seq_repeats;
    result.completed = report.end == StreamEnd::Complete;
    result.secs = secs;
    result.frames_per_sec = result.frames as f64 / secs.max(f64::MIN_POSITIVE);
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let sessions: i64 = conn.query_row("SELECT count(*) FROM session_imports", [], |r| r.get(0))?;
    result.ledger_sessions = sessions as u64;
    result.peak_rss_kib = vm_hwm_kib(std::process::id());
    Ok(result)
}
