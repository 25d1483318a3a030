//! The tail scenarios: `aix worker --stdio` in tail mode piped into `nex import replay -`, with
//! complete turns appended to live session files.
//!
//! - tail-latency (P5): appends at a given rate spread over N files; each append's latency is
//!   from the write returning to its user message row being visible in the ledger (polled
//!   read-only every millisecond).
//! - tail-scaling (P6): one turn appended alternately to a large and a small session; time to
//!   commit and bytes `nex` wrote (`wchar`) per append; ratio large / small.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::Spread;
use super::files::{TurnWriter, session_id};
use super::procs::{Binaries, Pair, proc_io_wchar, root_args};
use super::replay::BenchError;
use super::rng::Rng;
use nex::import::{IdKind, scoped_id};
use nex::protocol::RunMode;

/// A live session file and the writer of its next turns.
struct LiveFile {
    path: PathBuf,
    sid: String,
    writer: TurnWriter,
}

impl LiveFile {
    /// Creates the file with turns until it holds at least `bytes`.
    fn create(dir: &Path, seed: u64, index: usize, bytes: u64) -> std::io::Result<Self> {
        let sid = session_id(seed, index);
        let path = dir.join(format!("{sid}.jsonl"));
        let mut writer =
            TurnWriter::new(&sid, None, Rng::new(seed ^ index as u64), 1_767_225_600_000);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut written = 0;
        while written < bytes {
            let t = writer.turn(None);
            written += t.stats.bytes;
            f.write_all(t.text.as_bytes())?;
        }
        f.flush()?;
        Ok(Self { path, sid, writer })
    }

    /// Appended turns come from a writer seeded with `seed` (fresh uuids past any in the
    /// file), so two files given the same seed get turns of the same sizes.
    fn with_appender(mut self, seed: u64) -> Self {
        self.writer.reseed(Rng::new(seed));
        self
    }

    /// Appends one complete turn in one write; returns the ledger id of its user message.
    fn append(&mut self) -> std::io::Result<String> {
        let t = self.writer.turn(None);
        let mut f = OpenOptions::new().append(true).open(&self.path)?;
        f.write_all(t.text.as_bytes())?;
        f.flush()?;
        Ok(scoped_id(
            IdKind::Message,
            "aix",
            "claude-code",
            &self.sid,
            &t.user_uuid,
        ))
    }
}

fn open_ro(path: &Path) -> Result<Connection, BenchError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn has_message(conn: &Connection, id: &str) -> Result<bool, BenchError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Waits until `sessions` session mappings exist (the start-up read committed).
fn wait_sessions(ledger: &Path, sessions: u64, timeout: Duration) -> Result<(), BenchError> {
    let t = Instant::now();
    loop {
        if ledger.exists()
            && let Ok(conn) = open_ro(ledger)
        {
            let n: Result<i64, _> =
                conn.query_row("SELECT count(*) FROM session_imports", [], |r| r.get(0));
            if matches!(n, Ok(n) if n as u64 >= sessions) {
                return Ok(());
            }
        }
        if t.elapsed() > timeout {
            return Err(BenchError::Io(std::io::Error::other(
                "tail start-up import did not complete in time",
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for one message row; its latency from `t0`, `None` after `timeout`.
fn wait_message(
    conn: &Connection,
    id: &str,
    t0: Instant,
    timeout: Duration,
) -> Result<Option<f64>, BenchError> {
    loop {
        if has_message(conn, id)? {
            return Ok(Some(t0.elapsed().as_secs_f64() * 1000.0));
        }
        if t0.elapsed() > timeout {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn start_tail(bins: &Binaries, dir: &Path, ledger: &Path) -> Result<Pair, BenchError> {
    let empty = dir.join("empty-root");
    std::fs::create_dir_all(&empty)?;
    let mut args: Vec<String> = vec!["worker".into(), "--stdio".into()];
    args.extend(root_args(&[dir.join("projects")], &[], &empty));
    let mut pair = Pair::spawn(bins, &args, ledger, true)?;
    pair.start(RunMode::Tail, Vec::new(), "tail-bench")?;
    Ok(pair)
}

/// The tail-latency scenario.
#[derive(Debug, Clone)]
pub struct TailLatencyBench {
    pub files: usize,
    pub appends: usize,
    /// Appends per second.
    pub rate: f64,
    pub seed: u64,
    pub dir: Option<PathBuf>,
    pub bins: Binaries,
}

/// Latencies in milliseconds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailLatencyResult {
    pub appends: usize,
    pub committed: usize,
    pub timed_out: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs tail-latency.
///
/// # Errors
/// I/O, ledger or process failures; a start-up import that does not finish within 120 s.
pub fn run_latency(b: &TailLatencyBench) -> Result<TailLatencyResult, BenchError> {
    let tmp = tempfile::tempdir()?;
    let dir = b.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let projects = dir.join("projects").join("-work-tail");
    std::fs::create_dir_all(&projects)?;
    let mut files = (0..b.files.max(1))
        .map(|i| LiveFile::create(&projects, b.seed, i, 20_000))
        .collect::<Result<Vec<_>, _>>()?;
    let ledger = dir.join("tail.db");
    let mut pair = start_tail(&b.bins, &dir, &ledger)?;
    wait_sessions(&ledger, files.len() as u64, Duration::from_secs(120))?;
    let conn = open_ro(&ledger)?;
    let period = Duration::from_secs_f64(1.0 / b.rate.max(0.1));
    let timeout = Duration::from_secs(10);
    let mut pending: Vec<(String, Instant)> = Vec::new();
    let mut latencies = Vec::new();
    let mut timed_out = 0;
    let mut rng = Rng::new(b.seed ^ 0x7a11);
    let started = Instant::now();
    let mut next = 0usize;
    while next < b.appends || !pending.is_empty() {
        if next < b.appends && started.elapsed() >= period.mul_f64(next as f64) {
            let i = rng.range(0, files.len() as u64) as usize;
            let id = files[i].append()?;
            pending.push((id, Instant::now()));
            next += 1;
        }
        let mut keep = Vec::with_capacity(pending.len());
        for (id, t0) in pending.drain(..) {
            if has_message(&conn, &id)? {
                latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            } else if t0.elapsed() > timeout {
                timed_out += 1;
            } else {
                keep.push((id, t0));
            }
        }
        pending = keep;
        std::thread::sleep(Duration::from_millis(1));
    }
    pair.stop();
    pair.finish()?;
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(TailLatencyResult {
        appends: b.appends,
        committed: sorted.len(),
        timed_out,
        p50_ms: percentile(&sorted, 50.0),
        p99_ms: percentile(&sorted, 99.0),
        max_ms: sorted.last().copied().unwrap_or(f64::NAN),
        mean_ms: sorted.iter().sum::<f64>() / sorted.len().max(1) as f64,
    })
}

/// The tail-scaling scenario.
#[derive(Debug, Clone)]
pub struct TailScalingBench {
    pub large_bytes: u64,
    pub small_bytes: u64,
    /// Measured appends per session (after one warm-up append each).
    pub appends: usize,
    pub seed: u64,
    pub dir: Option<PathBuf>,
    pub bins: Binaries,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailScalingResult {
    pub large_ms: Spread,
    pub small_ms: Spread,
    pub large_bytes_written: Spread,
    pub small_bytes_written: Spread,
    /// large / small of the medians.
    pub time_ratio: f64,
    pub bytes_ratio: f64,
}

/// Runs tail-scaling.
///
/// # Errors
/// I/O, ledger or process failures, an append not committed within 60 s.
pub fn run_scaling(b: &TailScalingBench) -> Result<TailScalingResult, BenchError> {
    let tmp = tempfile::tempdir()?;
    let dir = b.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let projects = dir.join("projects").join("-work-scale");
    std::fs::create_dir_all(&projects)?;
    // The same appended turns for both sessions: only the session size differs.
    let mut files = [
        LiveFile::create(&projects, b.seed, 0, b.large_bytes)?.with_appender(b.seed ^ 0xA11),
        LiveFile::create(&projects, b.seed, 1, b.small_bytes)?.with_appender(b.seed ^ 0xA11),
    ];
    let ledger = dir.join("tail.db");
    let mut pair = start_tail(&b.bins, &dir, &ledger)?;
    wait_sessions(&ledger, 2, Duration::from_secs(300))?;
    let conn = open_ro(&ledger)?;
    let nex = pair.nex_pid();
    let timeout = Duration::from_secs(60);
    let mut ms = [Vec::new(), Vec::new()];
    let mut bytes = [Vec::new(), Vec::new()];
    for round in 0..=b.appends {
        for k in 0..2 {
            // Alternate which session goes first.
            let which = if round % 2 == 0 { k } else { 1 - k };
            std::thread::sleep(Duration::from_millis(300));
            let w0 = proc_io_wchar(nex).unwrap_or(0);
            let id = files[which].append()?;
            let t0 = Instant::now();
            let Some(lat) = wait_message(&conn, &id, t0, timeout)? else {
                return Err(BenchError::Io(std::io::Error::other(
                    "append not committed in 60 s",
                )));
            };
            // Let the commit's trailing writes (WAL, checkpoint) land before reading the counter.
            std::thread::sleep(Duration::from_millis(300));
            let w1 = proc_io_wchar(nex).unwrap_or(0);
            if round > 0 {
                ms[which].push(lat);
                bytes[which].push(w1.saturating_sub(w0) as f64);
            }
        }
    }
    pair.stop();
    pair.finish()?;
    let spread = Spread::of_or_nan;
    let (lm, sm, lb, sb) = (
        spread(&ms[0]),
        spread(&ms[1]),
        spread(&bytes[0]),
        spread(&bytes[1]),
    );
    Ok(TailScalingResult {
        time_ratio: lm.median / sm.median,
        bytes_ratio: lb.median / sb.median,
        large_ms: lm,
        small_ms: sm,
        large_bytes_written: lb,
        small_bytes_written: sb,
    })
}
