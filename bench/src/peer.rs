//! The `peer` scenario (P2): NEX against `claude-code-to-sqlite` (PyPI) on the same Claude Code
//! corpus, each on a fresh database, in the same run.
//!
//! - The peer is installed by the benchmark into a venv (`python3 -m venv`, then `pip install
//!   claude-code-to-sqlite==VERSION`), once; later runs reuse the venv when it holds that version.
//!   When it cannot be installed (no Python, no network), the scenario fails with
//!   [`PeerError::Unavailable`] and measures nothing.
//! - The peer runs as its README says: `claude-code-to-sqlite sessions DB PROJECTS --silent`.
//! - NEX runs the way a user runs it, `nex import backfill --wait` in a temp `NEX_HOME` (the
//!   headline ratio), and as the bare pipe `aix emit --mode backfill | nex import replay -`.
//! - Runs alternate the order (peer first, then NEX first). Reported: each side's median (min,
//!   max) wall time, the ratios peer / NEX per run, peak RSS, and what each side imported: the
//!   peer skips subagent files (anything under `subagents/`), NEX imports them as sessions of
//!   their own, so the session counts differ by design; tokens are each side's own sum.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::Spread;
use super::files::{FileCorpusSpec, projects_dir, write_corpus};
use super::home::{BenchHome, backfill_job};
use super::procs::{Binaries, Pair, root_args};
use super::proctree::{self, TreeHwm};

/// The peer's PyPI name and its command.
pub const PEER: &str = "claude-code-to-sqlite";

/// One peer benchmark.
#[derive(Debug, Clone)]
pub struct PeerBench {
    /// A `nex-bench files` output dir; generated from `sessions`/`seed` when `None`.
    pub corpus: Option<PathBuf>,
    pub sessions: usize,
    pub seed: u64,
    pub runs: usize,
    /// Where the peer's venv lives (created when missing).
    pub venv: PathBuf,
    /// The peer version installed (TARGETS.md's reference figures are of 0.1.0).
    pub peer_version: String,
    /// The Python that creates the venv.
    pub python: String,
    /// Work directory (a temp dir when `None`).
    pub dir: Option<PathBuf>,
    pub bins: Binaries,
}

/// Why there is no comparison.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be installed: nothing was measured.
    #[error(
        "peer unavailable: {PEER} {version} could not be installed into {venv} ({reason}); no comparison was made"
    )]
    Unavailable {
        version: String,
        venv: PathBuf,
        reason: String,
    },
    /// The peer ran and failed (its own exit status and last stderr line).
    #[error("peer failed: {PEER} exited with {status}: {stderr}")]
    PeerFailed { status: String, stderr: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("reading a result database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What one side holds after an import.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    pub sessions: u64,
    /// Sessions that are subagents (NEX only; the peer skips their files).
    pub subagent_sessions: u64,
    /// NEX only (the peer has no turns).
    pub turns: u64,
    pub messages: u64,
    /// NEX only (the peer keeps tool names on messages).
    pub tool_calls: u64,
    /// Input + output tokens as the side sums them.
    pub tokens: u64,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerResult {
    pub peer_version: String,
    /// Session files outside `subagents/` and subagent files, and their bytes.
    pub corpus_sessions: u64,
    pub corpus_subagents: u64,
    pub corpus_bytes: u64,
    pub peer_secs: Vec<f64>,
    pub backfill_secs: Vec<f64>,
    pub pipe_secs: Vec<f64>,
    pub peer: Spread,
    /// `nex import backfill --wait`.
    pub backfill: Spread,
    /// `aix emit --mode backfill | nex import replay -`.
    pub pipe: Spread,
    /// peer / backfill per run (P2: ≥ 3, TARGETS.md).
    pub ratio: Spread,
    /// peer / pipe per run.
    pub pipe_ratio: Spread,
    /// CPU time (user + system, every process of the side), seconds, and peer / backfill.
    pub peer_cpu: Spread,
    pub backfill_cpu: Spread,
    pub pipe_cpu: Spread,
    pub cpu_ratio: Spread,
    /// Peak RSS (MiB) over the runs: the peer's processes, nex + aix of the backfill (sum of
    /// each process' peak), and of the pipe.
    pub peer_peak_rss_mib: f64,
    pub backfill_peak_rss_mib: f64,
    pub pipe_peak_rss_mib: f64,
    pub peer_imported: Imported,
    pub nex_imported: Imported,
    /// The backfill's and the pipe's ledgers hold the same sessions count.
    pub nex_paths_agree: bool,
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The peer's executable in `b.venv`, installed when missing or of another version.
///
/// # Errors
/// [`PeerError::Unavailable`] when the venv or the package cannot be installed.
pub fn ensure_peer(b: &PeerBench) -> Result<PathBuf, PeerError> {
    let exe = b.venv.join("bin").join(PEER);
    let unavailable = |reason: String| PeerError::Unavailable {
        version: b.peer_version.clone(),
        venv: b.venv.clone(),
        reason,
    };
    let installed = Command::new(&exe)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|w| w == b.peer_version)
        });
    if installed {
        return Ok(exe);
    }
    let python = b.venv.join("bin").join("python");
    if !python.is_file() {
        let out = Command::new(&b.python)
            .args(["-m", "venv"])
            .arg(&b.venv)
            .output()
            .map_err(|e| unavailable(format!("{} -m venv: {e}", b.python)))?;
        if !out.status.success() {
            return Err(unavailable(format!(
                "{} -m venv exited with {}: {}",
                b.python,
                out.status,
                last_line(&out.stderr)
            )));
        }
    }
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
        ])
        .arg(format!("{PEER}=={}", b.peer_version))
        .output()
        .map_err(|e| unavailable(format!("pip: {e}")))?;
    if !out.status.success() {
        return Err(unavailable(format!(
            "pip install exited with {}: {}",
            out.status,
            last_line(&out.stderr)
        )));
    }
    if !exe.is_file() {
        return Err(unavailable(format!(
            "{} missing after pip install",
            exe.display()
        )));
    }
    Ok(exe)
}

/// CPU time (clock ticks) of every child this process has reaped so far: a run's processes,
/// once waited for, and whatever they reaped themselves.
fn reaped_children_ticks() -> u64 {
    proctree::proc_cpu(std::process::id()).map_or(0, |c| c.children_ticks)
}

/// Runs `cmd` to its end: wall time, output, and the sum over command names of the highest
/// peak RSS (KiB) seen in its process tree.
fn timed(mut cmd: Command) -> std::io::Result<(f64, Output, u64)> {
    let t = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let hwm = TreeHwm::start(child.id());
    let out = child.wait_with_output()?;
    let secs = t.elapsed().as_secs_f64();
    let peak = hwm.finish().values().sum();
    Ok((secs, out, peak))
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn sync() {
    let _ = Command::new("sync").status();
}

/// `(root sessions, subagent files, bytes)` of the `.jsonl` files under `dir`.
fn corpus_files(dir: &Path, in_subagents: bool, acc: &mut (u64, u64, u64)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                let sub = in_subagents || p.file_name().is_some_and(|n| n == "subagents");
                corpus_files(&p, sub, acc);
            }
            Ok(_) if p.extension().is_some_and(|x| x == "jsonl") => {
                if in_subagents {
                    acc.1 += 1;
                } else {
                    acc.0 += 1;
                }
                acc.2 += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
            _ => {}
        }
    }
}

fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

fn count(conn: &Connection, sql: &str) -> rusqlite::Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| u64::try_from(n).unwrap_or(0))
}

fn peer_imported(db: &Path) -> rusqlite::Result<Imported> {
    let c = open_ro(db)?;
    Ok(Imported {
        sessions: count(&c, "SELECT count(*) FROM sessions")?,
        messages: count(&c, "SELECT count(*) FROM messages")?,
        tokens: count(
            &c,
            "SELECT coalesce(sum(coalesce(total_input_tokens, 0) + coalesce(total_output_tokens, 0)), 0) FROM sessions",
        )?,
        ..Imported::default()
    })
}

fn nex_imported(ledger: &Path) -> rusqlite::Result<Imported> {
    let c = open_ro(ledger)?;
    Ok(Imported {
        sessions: count(&c, "SELECT count(*) FROM sessions")?,
        subagent_sessions: count(&c, "SELECT count(*) FROM sessions WHERE is_subagent = 1")?,
        turns: count(&c, "SELECT count(*) FROM turns")?,
        messages: count(&c, "SELECT count(*) FROM messages")?,
        tool_calls: count(&c, "SELECT count(*) FROM tool_calls")?,
        tokens: count(
            &c,
            "SELECT coalesce(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), 0) FROM turns",
        )?,
    })
}

/// Runs the scenario.
///
/// # Errors
/// [`PeerError::Unavailable`] before anything is measured when the peer cannot be installed;
/// the peer or a NEX path failing (NEX: a job not completed, a failed item or a reject).
pub fn run(b: &PeerBench) -> Result<PeerResult, PeerError> {
    let peer_exe = ensure_peer(b)?;
    let tmp = tempfile::tempdir()?;
    let dir = b.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let corpus = match &b.corpus {
        Some(c) => c.clone(),
        None => {
            let c = dir.join("peer-corpus");
            if c.exists() {
                std::fs::remove_dir_all(&c)?;
            }
            let spec = FileCorpusSpec {
                seed: b.seed,
                sessions: b.sessions,
                ..FileCorpusSpec::default()
            };
            write_corpus(&spec, &c)?;
            c
        }
    };
    let projects = projects_dir(&corpus);
    let mut files = (0, 0, 0);
    corpus_files(&projects, false, &mut files);
    let empty = dir.join("empty-root");
    std::fs::create_dir_all(&empty)?;
    let mut emit_args: Vec<String> = vec!["emit".into(), "--mode".into(), "backfill".into()];
    emit_args.extend(root_args(std::slice::from_ref(&projects), &[], &empty));

    let peer_db = dir.join("peer.db");
    let pipe_db = dir.join("pipe.db");
    let home_dir = dir.join("peer-nex-home");
    let (mut peer_secs, mut backfill_secs, mut pipe_secs) = (Vec::new(), Vec::new(), Vec::new());
    let mut rss: BTreeMap<&str, u64> = BTreeMap::new();
    let hz = proctree::clock_ticks_per_sec() as f64;
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let mut peak = |k: &'static str, kib: u64| {
        let e = rss.entry(k).or_insert(0);
        *e = (*e).max(kib);
    };
    for run in 0..b.runs.max(1) {
        let order: [u8; 3] = if run % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for side in order {
            // A fresh database, its removal on disk before the clock starts.
            match side {
                0 => remove_db(&peer_db),
                1 => remove_db(&pipe_db),
                _ => {
                    if home_dir.exists() {
                        std::fs::remove_dir_all(&home_dir)?;
                    }
                    std::fs::create_dir_all(&home_dir)?;
                }
            }
            sync();
            let ticks0 = reaped_children_ticks();
            match side {
                0 => {
                    let mut cmd = Command::new(&peer_exe);
                    cmd.arg("sessions")
                        .arg(&peer_db)
                        .arg(&projects)
                        .arg("--silent");
                    let (secs, out, kib) = timed(cmd)?;
                    if !out.status.success() {
                        return Err(PeerError::PeerFailed {
                            status: out.status.to_string(),
                            stderr: last_line(&out.stderr),
                        });
                    }
                    peer_secs.push(secs);
                    peak("peer", kib);
                }
                1 => {
                    let o = Pair::spawn(&b.bins, &emit_args, &pipe_db, false)?.finish()?;
                    let r = &o.report;
                    let rejected: u64 = r.rejected.values().sum();
                    if r.failed > 0 || rejected > 0 {
                        return Err(PeerError::Io(std::io::Error::other(format!(
                            "aix emit | nex import replay: {} failed, {rejected} rejected",
                            r.failed
                        ))));
                    }
                    pipe_secs.push(o.secs);
                    peak("pipe", o.aix_rss_kib + o.nex_rss_kib);
                }
                _ => {
                    let home = BenchHome::create(&home_dir, &corpus, &b.bins)?;
                    let (secs, out, kib) =
                        timed(home.nex(&["import", "backfill", "--wait", "--json"]))?;
                    backfill_job(&out)?;
                    backfill_secs.push(secs);
                    peak("backfill", kib);
                }
            }
            let ticks = reaped_children_ticks().saturating_sub(ticks0);
            cpu[usize::from(side)].push(ticks as f64 / hz);
        }
    }
    let peer_imported = peer_imported(&peer_db)?;
    let nex_imported = nex_imported(&pipe_db)?;
    let backfill_sessions = nex_imported_sessions(&home_dir.join("agents.db"))?;
    let ratios =
        |ours: &[f64]| -> Vec<f64> { peer_secs.iter().zip(ours).map(|(p, o)| p / o).collect() };
    let mib = |k: &str| rss.get(k).copied().unwrap_or(0) as f64 / 1024.0;
    Ok(PeerResult {
        peer_version: b.peer_version.clone(),
        corpus_sessions: files.0,
        corpus_subagents: files.1,
        corpus_bytes: files.2,
        peer_cpu: Spread::of_or_nan(&cpu[0]),
        pipe_cpu: Spread::of_or_nan(&cpu[1]),
        backfill_cpu: Spread::of_or_nan(&cpu[2]),
        cpu_ratio: Spread::of_or_nan(
            &cpu[0]
                .iter()
                .zip(&cpu[2])
                .map(|(p, o)| p / o)
                .collect::<Vec<_>>(),
        ),
        peer: Spread::of_or_nan(&peer_secs),
        backfill: Spread::of_or_nan(&backfill_secs),
        pipe: Spread::of_or_nan(&pipe_secs),
        ratio: Spread::of_or_nan(&ratios(&backfill_secs)),
        pipe_ratio: Spread::of_or_nan(&ratios(&pipe_secs)),
        peer_peak_rss_mib: mib("peer"),
        backfill_peak_rss_mib: mib("backfill"),
        pipe_peak_rss_mib: mib("pipe"),
        peer_secs,
        backfill_secs,
        pipe_secs,
        peer_imported,
        nex_paths_agree: backfill_sessions == nex_imported.sessions,
        nex_imported,
    })
}

fn nex_imported_sessions(ledger: &Path) -> rusqlite::Result<u64> {
    count(&open_ro(ledger)?, "SELECT count(*) FROM sessions")
}
