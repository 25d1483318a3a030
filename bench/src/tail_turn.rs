//! The `tail-long-turn` scenario (issue 12): the cost of one appended tool call as the open turn
//! grows. One Claude Code session per size, each ending in an open turn of N tool calls (one
//! prompt, then N `tool_use` / `tool_result` line pairs with results of `--result-bytes`, the
//! output repeated in `toolUseResult.stdout` as Claude Code writes it: about 5 KB per call, so
//! 5,000 calls are about 25 MB). The real `aix worker --stdio` in tail mode is piped into the
//! real `nex import replay -` (as `tail-scaling` runs them); one more tool call (both lines in
//! one write) is appended to each session in turn, several times.
//!
//! Per append: the latency from the write returning to the call's row being visible with its
//! result (status `completed`, polled read-only every millisecond), the bytes `nex` wrote
//! (`wchar`: the ledger file and its WAL) and the bytes `aix` wrote (`wchar`: the frames on the
//! pipe, and its log lines, none at the default level). The first append to each session is a
//! warm-up, not counted: the start-up read keeps no parse state, so that append rebuilds it from
//! the cursor (the open turn is read and sent once, whole).
//!
//! Reported per size: p50 and p99 of the latency and the median bytes per append, each as the
//! median, min and max over `--runs` runs (fresh files, ledger and processes each); and the
//! ratios of the largest size to the smallest (of the medians).

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use serde_json::json;

use super::Spread;
use super::files::{iso8601, session_id};
use super::procs::{Binaries, Pair, proc_io_wchar, root_args};
use super::replay::BenchError;
use super::rng::Rng;
use nex::import::{IdKind, scoped_id};
use nex::protocol::RunMode;

/// What to run.
#[derive(Debug, Clone)]
pub struct TailLongTurnBench {
    /// Tool calls already in the open turn, one session each.
    pub calls: Vec<usize>,
    /// Measured appends per session and run (after one warm-up append each).
    pub appends: usize,
    pub runs: usize,
    /// Bytes of each tool result's output (written twice per call, as Claude Code does).
    pub result_bytes: usize,
    /// Pause before and after each append, so that the byte counters see one append's writes.
    pub settle: Duration,
    pub seed: u64,
    pub dir: Option<PathBuf>,
    pub bins: Binaries,
}

/// One open-turn size.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnSizeResult {
    pub calls: usize,
    /// Bytes of the session file before the first append.
    pub file_bytes: u64,
    /// Per run: p50 and p99 of the append -> commit latency, ms.
    pub p50_ms: Spread,
    pub p99_ms: Spread,
    /// Per run: median bytes `nex` wrote per append (ledger + WAL).
    pub ledger_bytes: Spread,
    /// Per run: median bytes `aix` wrote per append (the frames on the pipe).
    pub pipe_bytes: Spread,
    /// Appends measured over all runs.
    pub appends: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailLongTurnResult {
    pub sizes: Vec<TurnSizeResult>,
    /// Largest / smallest size, of the medians.
    pub p50_ratio: f64,
    pub ledger_bytes_ratio: f64,
    pub pipe_bytes_ratio: f64,
}

/// A session file whose last turn stays open, and the writer of its next tool calls.
struct OpenTurnFile {
    path: PathBuf,
    sid: String,
    rng: Rng,
    result_bytes: usize,
    now_ms: i64,
    line: u64,
    parent: String,
    bytes: u64,
}

impl OpenTurnFile {
    /// Writes a prompt and `calls` tool calls with their results.
    fn create(
        dir: &Path,
        seed: u64,
        index: usize,
        calls: usize,
        result_bytes: usize,
    ) -> std::io::Result<Self> {
        let sid = session_id(seed, index);
        let path = dir.join(format!("{sid}.jsonl"));
        let mut f = Self {
            path,
            sid,
            rng: Rng::new(seed ^ ((index as u64) << 8)),
            result_bytes,
            now_ms: 1_767_225_600_000,
            line: 0,
            parent: String::new(),
            bytes: 0,
        };
        let mut out = BufWriter::new(std::fs::File::create(&f.path)?);
        let prompt = f.record(
            "user",
            json!({"message": {"role": "user", "content": "Run the whole test suite and fix what fails."}}),
        );
        out.write_all(prompt.as_bytes())?;
        for _ in 0..calls {
            let (text, _) = f.tool_call();
            out.write_all(text.as_bytes())?;
        }
        out.flush()?;
        Ok(f)
    }

    /// One line: the envelope Claude Code writes, `extra`, then uuid and timestamp.
    fn record(&mut self, kind: &str, extra: serde_json::Value) -> String {
        self.line += 1;
        self.now_ms += 1_000;
        // Unique across sessions (the whole session id): Claude Code uuids are random, and a uuid
        // two files of one project share is a resumed copy (`aix::claude_copies`).
        let uuid = format!("{}-{:06}", self.sid, self.line);
        let mut line = serde_json::Map::new();
        line.insert(
            "parentUuid".into(),
            if self.parent.is_empty() {
                serde_json::Value::Null
            } else {
                json!(self.parent)
            },
        );
        line.insert("isSidechain".into(), json!(false));
        line.insert("userType".into(), json!("external"));
        line.insert("cwd".into(), json!("/work/proj"));
        line.insert("sessionId".into(), json!(self.sid));
        line.insert("version".into(), json!("2.1.40"));
        line.insert("gitBranch".into(), json!("main"));
        line.insert("type".into(), json!(kind));
        if let serde_json::Value::Object(m) = extra {
            line.extend(m);
        }
        line.insert("uuid".into(), json!(uuid));
        line.insert("timestamp".into(), json!(iso8601(self.now_ms)));
        self.parent = uuid;
        let mut text = serde_json::Value::Object(line).to_string();
        text.push('\n');
        self.bytes += text.len() as u64;
        text
    }

    /// The two lines of one tool call (its `tool_use`, then its result), and its id.
    fn tool_call(&mut self) -> (String, String) {
        let n = self.line;
        let id = format!("toolu_{:x}_{n}", self.rng.next_u64() & 0xffff_ffff);
        let usage = json!({"input_tokens": 4, "output_tokens": 60, "cache_read_input_tokens": 20_000, "cache_creation_input_tokens": 300});
        let message = json!({
            "model": "claude-opus-4-6", "id": format!("msg_{n}"), "type": "message",
            "role": "assistant", "stop_reason": "tool_use", "stop_sequence": null, "usage": usage,
            "content": [{"type": "tool_use", "id": id, "name": "Bash",
                "input": {"command": format!("cargo test --quiet -p crate{n}")}}],
        });
        let mut text = self.record(
            "assistant",
            json!({"requestId": format!("req_{n}"), "message": message}),
        );
        let output = self.output();
        text.push_str(&self.record(
            "user",
            json!({
                "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": output, "is_error": false}]},
                "toolUseResult": {"stdout": output, "stderr": "", "interrupted": false, "isImage": false},
            }),
        ));
        (text, id)
    }

    fn output(&mut self) -> String {
        let mut s = String::with_capacity(self.result_bytes + 64);
        while s.len() < self.result_bytes {
            s.push_str(&format!(
                "test module::case_{} ... ok {:016x}\n",
                self.rng.range(0, 10_000),
                self.rng.next_u64()
            ));
        }
        s
    }

    /// Appends one tool call in one write; returns its tool call row id.
    fn append(&mut self) -> std::io::Result<String> {
        let (text, id) = self.tool_call();
        let mut f = OpenOptions::new().append(true).open(&self.path)?;
        f.write_all(text.as_bytes())?;
        f.flush()?;
        Ok(scoped_id(
            IdKind::Tool,
            "aix",
            "claude-code",
            &self.sid,
            &id,
        ))
    }
}

fn open_ro(path: &Path) -> Result<Connection, BenchError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Waits until `sessions` sessions hold `calls` tool calls each (the start-up read committed).
fn wait_started(ledger: &Path, calls: &[usize], timeout: Duration) -> Result<(), BenchError> {
    let want: i64 = calls.iter().map(|c| *c as i64).sum();
    let t = Instant::now();
    loop {
        if ledger.exists()
            && let Ok(conn) = open_ro(ledger)
        {
            let n: Result<i64, _> = conn.query_row(
                "SELECT count(*) FROM tool_calls WHERE status = 'completed'",
                [],
                |r| r.get(0),
            );
            if matches!(n, Ok(n) if n >= want) {
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

/// Waits for the tool call row with its result; the latency from `t0`, `None` after `timeout`.
fn wait_completed(
    conn: &Connection,
    id: &str,
    t0: Instant,
    timeout: Duration,
) -> Result<Option<f64>, BenchError> {
    let mut stmt = conn.prepare_cached("SELECT status FROM tool_calls WHERE id = ?1")?;
    loop {
        let status: Option<String> = stmt.query_row([id], |r| r.get(0)).optional()?;
        if status.as_deref() == Some("completed") {
            return Ok(Some(t0.elapsed().as_secs_f64() * 1000.0));
        }
        if t0.elapsed() > timeout {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    Spread::of_or_nan(values).median
}

/// One run's measurements of one size.
#[derive(Default)]
struct SizeRun {
    ms: Vec<f64>,
    ledger: Vec<f64>,
    pipe: Vec<f64>,
}

/// Runs tail-long-turn.
///
/// # Errors
/// I/O, ledger or process failures; a start-up import not done within 300 s; an append not
/// committed within 60 s.
pub fn run(b: &TailLongTurnBench) -> Result<TailLongTurnResult, BenchError> {
    let sizes = b.calls.len();
    let mut runs: Vec<Vec<SizeRun>> = Vec::new();
    let mut file_bytes = vec![0u64; sizes];
    for run in 0..b.runs.max(1) {
        let (per_size, bytes) = run_once(b, run as u64)?;
        file_bytes = bytes;
        runs.push(per_size);
    }
    let mut out = Vec::with_capacity(sizes);
    for (i, calls) in b.calls.iter().enumerate() {
        let (mut p50, mut p99, mut ledger, mut pipe, mut appends) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        for run in &runs {
            let r = &run[i];
            let mut sorted = r.ms.clone();
            sorted.sort_by(f64::total_cmp);
            p50.push(percentile(&sorted, 50.0));
            p99.push(percentile(&sorted, 99.0));
            ledger.push(median(&r.ledger));
            pipe.push(median(&r.pipe));
            appends += r.ms.len();
        }
        out.push(TurnSizeResult {
            calls: *calls,
            file_bytes: file_bytes[i],
            p50_ms: Spread::of_or_nan(&p50),
            p99_ms: Spread::of_or_nan(&p99),
            ledger_bytes: Spread::of_or_nan(&ledger),
            pipe_bytes: Spread::of_or_nan(&pipe),
            appends,
        });
    }
    let ratio = |f: fn(&TurnSizeResult) -> f64| -> f64 {
        let small = out.iter().min_by_key(|s| s.calls).map(f);
        let large = out.iter().max_by_key(|s| s.calls).map(f);
        match (large, small) {
            (Some(l), Some(s)) => l / s,
            _ => f64::NAN,
        }
    };
    Ok(TailLongTurnResult {
        p50_ratio: ratio(|s| s.p50_ms.median),
        ledger_bytes_ratio: ratio(|s| s.ledger_bytes.median),
        pipe_bytes_ratio: ratio(|s| s.pipe_bytes.median),
        sizes: out,
    })
}

/// One run: fresh files, ledger and processes; every size appended to in turn.
fn run_once(b: &TailLongTurnBench, run: u64) -> Result<(Vec<SizeRun>, Vec<u64>), BenchError> {
    let tmp = tempfile::tempdir()?;
    let dir = match &b.dir {
        Some(d) => d.join(format!("run-{run}")),
        None => tmp.path().to_path_buf(),
    };
    let projects = dir.join("projects").join("-work-long-turn");
    std::fs::create_dir_all(&projects)?;
    let mut files = b
        .calls
        .iter()
        .enumerate()
        .map(|(i, calls)| OpenTurnFile::create(&projects, b.seed, i, *calls, b.result_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    let file_bytes: Vec<u64> = files.iter().map(|f| f.bytes).collect();
    let ledger = dir.join("tail.db");
    let empty = dir.join("empty-root");
    std::fs::create_dir_all(&empty)?;
    let mut args: Vec<String> = vec!["worker".into(), "--stdio".into()];
    args.extend(root_args(&[dir.join("projects")], &[], &empty));
    let mut pair = Pair::spawn(&b.bins, &args, &ledger, true)?;
    pair.start(RunMode::Tail, Vec::new(), "tail-long-turn")?;
    wait_started(&ledger, &b.calls, Duration::from_secs(300))?;
    let conn = open_ro(&ledger)?;
    let (nex, aix) = (pair.nex_pid(), pair.aix_pid());
    let timeout = Duration::from_secs(60);
    let mut per_size: Vec<SizeRun> = (0..files.len()).map(|_| SizeRun::default()).collect();
    for round in 0..=b.appends {
        for k in 0..files.len() {
            // Alternate the order of the sizes from round to round.
            let which = if round % 2 == 0 {
                k
            } else {
                files.len() - 1 - k
            };
            std::thread::sleep(b.settle);
            let (w0, a0) = (
                proc_io_wchar(nex).unwrap_or(0),
                proc_io_wchar(aix).unwrap_or(0),
            );
            let id = files[which].append()?;
            let t0 = Instant::now();
            let Some(lat) = wait_completed(&conn, &id, t0, timeout)? else {
                return Err(BenchError::Io(std::io::Error::other(
                    "append not committed in 60 s",
                )));
            };
            // Let the commit's trailing writes (WAL, checkpoint) land before reading the counters.
            std::thread::sleep(b.settle);
            let (w1, a1) = (
                proc_io_wchar(nex).unwrap_or(0),
                proc_io_wchar(aix).unwrap_or(0),
            );
            if round > 0 {
                let r = &mut per_size[which];
                r.ms.push(lat);
                r.ledger.push(w1.saturating_sub(w0) as f64);
                r.pipe.push(a1.saturating_sub(a0) as f64);
            }
        }
    }
    pair.stop();
    pair.finish()?;
    Ok((per_size, file_bytes))
}
