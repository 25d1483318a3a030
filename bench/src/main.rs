//! `nex-bench`: the benchmark harness (TARGETS.md). Speed is reported as a ratio against a
//! baseline measured in the same run, median of at least 3 runs with min and max.
//!
//! ```text
//! nex-bench corpus [--seed N] [--sessions N] [--out FILE]   # write a worker frame stream
//! nex-bench search [--sessions N] [--runs N] [--json]            # FTS cost and query latency
//! nex-bench fuzz [--frames N] [--seed S] [--json]           # bad-input harness (R3)
//! nex-bench replay [--seed N] [--sessions N] [--runs N] [--dir PATH] [--json]
//! nex-bench idle [--files N] [--seconds S] [--corpus DIR] [--json]   # P7
//! nex-bench peer [--sessions N] [--corpus DIR] [--runs N] [--json]   # P2 (exit 3: no peer)
//! nex-bench usage [--sessions N] [--runs N] [--dir PATH] [--nex PATH] [--json]   # issue 13
//! nex-bench tail-long-turn [--calls 10,1000,5000] [--appends N] [--runs N] [--json]   # issue 12
//! nex-bench replica [--machines 8] [--sessions N] [--samples N] [--json]   # issue 14
//! ```

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use nex_bench::corpus::{CorpusSpec, generate, write_frames};
use nex_bench::replay::{self, ReplayBench};

#[derive(Debug, Parser)]
#[command(name = "nex-bench", about = "Benchmarks of the nex import pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct CorpusArgs {
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sessions to generate (200: CI smoke size).
    #[arg(long, default_value_t = 200)]
    sessions: usize,
    /// Every Nth session is large and sent in chunks (0: none).
    #[arg(long, default_value_t = 50)]
    large_every: usize,
    /// Mean turns of a large session (200 is about 10 MB of frames).
    #[arg(long, default_value_t = 200)]
    large_turns: u64,
}

impl CorpusArgs {
    fn spec(&self) -> CorpusSpec {
        CorpusSpec {
            seed: self.seed,
            sessions: self.sessions,
            large_every: self.large_every,
            large_turns: self.large_turns,
            ..CorpusSpec::default()
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the corpus as a worker frame stream (JSON Lines) for `nex import replay`.
    Corpus {
        #[command(flatten)]
        corpus: CorpusArgs,
        /// Output file (default stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Time `replay` of the corpus through the pipeline against a raw SQLite insert loop.
    Replay {
        #[command(flatten)]
        corpus: CorpusArgs,
        /// Runs (the median, min and max are reported; at least 3 recommended).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Work directory (default: a temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bad-input harness (R3): valid frames interleaved with every kind of bad input through
    /// the real pipeline; every outcome checked against the generator's expectation.
    Fuzz {
        /// Frames to generate.
        #[arg(long, default_value_t = 1_000_000)]
        frames: u64,
        /// Seed of the deterministic generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Full-text search: the index's cost to the import (time, ledger size) and the latency of
    /// 100 fixed queries (p50, p99).
    Search {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 200)]
        sessions: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Work directory (default: a temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Real Claude Code `projects` roots: also time their backfill with and without the
        /// index (repeatable).
        #[arg(long)]
        claude_dir: Vec<PathBuf>,
        /// Real Codex `sessions` roots (repeatable).
        #[arg(long)]
        codex_dir: Vec<PathBuf>,
        /// Time the queries only, over the ledger `with.db` an earlier run left in `--dir`
        /// (no import, no cost figures).
        #[arg(long, requires = "dir")]
        queries_only: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cursor and OpenCode databases: backfill vs raw, rebackfill, tail latency.
    Stores(nex_bench::stores::cli::StoresArgs),
    #[command(flatten)]
    Worker(nex_bench::worker_cli::WorkerScenario),
    #[command(flatten)]
    PeerIdle(nex_bench::peer_idle_cli::PeerIdleScenario),
    /// Time `nex usage --by day` over a ledger of the corpus (in-process query and the built
    /// `nex`), target <= 200 ms at 2,000 sessions.
    Usage {
        #[command(flatten)]
        corpus: CorpusArgs,
        /// Timed runs of each kind (after one untimed warm-up).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Work directory (default: a temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The `nex` binary (default: next to this executable).
        #[arg(long)]
        nex: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// M ledgers replicating into one private PostgreSQL at once: time to converge against M
    /// local backfills, rows/s, lag of an appended turn (p50, p99).
    Replica {
        #[arg(long, default_value_t = 8)]
        machines: usize,
        /// Sessions per machine (200: the standard corpus).
        #[arg(long, default_value_t = 200)]
        sessions: usize,
        /// Appended turns whose lag is measured.
        #[arg(long, default_value_t = 50)]
        samples: usize,
        /// Directory of the built `nex` and `aix` (default: next to this executable).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    nex::cli::init_tracing();
    let result = match Cli::parse().command {
        Command::Corpus { corpus, out } => corpus_cmd(&corpus, out),
        Command::Replay {
            corpus,
            runs,
            dir,
            json,
        } => replay_cmd(&corpus, runs, dir, json),
        Command::Fuzz { frames, seed, json } => fuzz_cmd(frames, seed, json),
        Command::Search {
            seed,
            sessions,
            runs,
            dir,
            claude_dir,
            codex_dir,
            queries_only,
            json,
        } => search_cmd(
            nex_bench::search::SearchBench {
                seed,
                sessions,
                runs,
                dir,
                claude_dirs: claude_dir,
                codex_dirs: codex_dir,
                queries_only,
            },
            json,
        ),
        Command::Stores(a) => nex_bench::stores::cli::stores_cmd(a),
        Command::Worker(s) => nex_bench::worker_cli::run(s),
        Command::PeerIdle(s) => nex_bench::peer_idle_cli::run(s),
        Command::Usage {
            corpus,
            runs,
            dir,
            nex,
            json,
        } => usage_cmd(&corpus, runs, dir, nex, json),
        Command::Replica {
            machines,
            sessions,
            samples,
            bin_dir,
            json,
        } => replica_cmd(machines, sessions, samples, bin_dir, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nex-bench: {e}");
            // A missing peer is not a failed measurement: scripts can tell them apart.
            if matches!(
                e.downcast_ref::<nex_bench::peer::PeerError>(),
                Some(nex_bench::peer::PeerError::Unavailable { .. })
            ) {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn search_cmd(
    bench: nex_bench::search::SearchBench,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let r = nex_bench::search::run(&bench)?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
        return Ok(());
    }
    let mb = |b: u64| b as f64 / 1e6;
    writeln!(
        out,
        "search   {} sessions · {} messages · {} tool calls · {:.1} MB of text",
        r.sessions,
        r.messages,
        r.tool_calls,
        mb(r.text_bytes)
    )?;
    writeln!(
        out,
        "import   with index / without: {:.3} (min {:.3}, max {:.3}) over {} runs",
        r.import_ratio.median,
        r.import_ratio.min,
        r.import_ratio.max,
        r.import_with_index_secs.len()
    )?;
    let median = |v: &[f64]| nex_bench::Spread::of(v).map_or(f64::NAN, |s| s.median);
    writeln!(
        out,
        "         wall {:.2} s / {:.2} s, of which flush {:.2} s; CPU {:.2} s / {:.2} s = {:.3} (min {:.3}, max {:.3}) (medians)",
        median(&r.import_with_index_secs),
        median(&r.import_without_index_secs),
        median(&r.flush_secs),
        median(&r.import_with_index_cpu_secs),
        median(&r.import_without_index_cpu_secs),
        r.import_cpu_ratio.median,
        r.import_cpu_ratio.min,
        r.import_cpu_ratio.max
    )?;
    writeln!(
        out,
        "size     {:.1} MB / {:.1} MB = {:.3}",
        mb(r.ledger_with_index_bytes),
        mb(r.ledger_without_index_bytes),
        r.size_ratio
    )?;
    writeln!(
        out,
        "queries  {} ({} with hits): p50 {:.2} ms · p99 {:.2} ms · max {:.2} ms (CPU p50 {:.2} ms · p99 {:.2} ms)",
        r.queries, r.queries_with_hits, r.p50_ms, r.p99_ms, r.max_ms, r.cpu_p50_ms, r.cpu_p99_ms
    )?;
    writeln!(
        out,
        "         rank cap {}: {} queries ranked their most recently imported matches only",
        r.rank_cap.map_or("none".to_owned(), |c| c.to_string()),
        r.queries_capped
    )?;
    for (q, ms) in &r.slowest {
        writeln!(out, "         {ms:8.2} ms  {q}")?;
    }
    if let Some(b) = &r.backfill {
        writeln!(
            out,
            "backfill {} real sessions, aix | nex with index / without: {:.3} (min {:.3}, max {:.3}); size {:.1} MB / {:.1} MB = {:.3}",
            b.sessions,
            b.ratio.median,
            b.ratio.min,
            b.ratio.max,
            mb(b.ledger_with_index_bytes),
            mb(b.ledger_without_index_bytes),
            b.size_ratio
        )?;
    }
    Ok(())
}

fn fuzz_cmd(frames: u64, seed: u64, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    let spec = nex_bench::fuzz::FuzzSpec {
        frames,
        seed,
        ..Default::default()
    };
    let r = nex_bench::fuzz::run(&spec)?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
    } else {
        let rejects: u64 = r.rejected.values().sum();
        writeln!(
            out,
            "fuzz     seed {seed} · {} frames ({} valid, {} rejected in {} codes, {} empty) · {:.1} MB",
            r.frames,
            r.valid_frames,
            rejects,
            r.rejected.len(),
            r.empty_lines,
            r.bytes as f64 / 1e6
        )?;
        for (code, n) in &r.expected_rejects {
            let got = r.rejected.get(code).copied().unwrap_or(0);
            writeln!(out, "  {code:<45} expected {n:>8}  rejected {got:>8}")?;
        }
        for (code, n) in r
            .rejected
            .iter()
            .filter(|(c, _)| !r.expected_rejects.contains_key(*c))
        {
            writeln!(out, "  {code:<45} expected        0  rejected {n:>8}")?;
        }
        writeln!(
            out,
            "ledger   sessions {} (expected {})",
            r.ledger_sessions, r.expected_sessions
        )?;
        writeln!(
            out,
            "result   {} mismatches · {} seq anomalies · ended on run.complete: {} · {:.1} s · {:.0} frames/s · peak RSS {} MiB",
            r.mismatches,
            r.seq_anomalies,
            r.completed,
            r.secs,
            r.frames_per_sec,
            r.peak_rss_kib
                .map_or("?".into(), |k| (k / 1024).to_string())
        )?;
        for m in &r.mismatch_samples {
            writeln!(out, "  mismatch {m}")?;
        }
    }
    if !r.is_clean() {
        return Err("fuzz: outcomes differ from the expectations".into());
    }
    Ok(())
}

fn corpus_cmd(args: &CorpusArgs, out: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    let corpus = generate(args.spec());
    match out {
        Some(path) => write_frames(&corpus, &mut std::fs::File::create(path)?)?,
        None => write_frames(&corpus, &mut io::stdout().lock())?,
    }
    eprintln!(
        "corpus: {} sessions ({} chunked), {} frames, {:.1} MB",
        corpus.stats.sessions,
        corpus.stats.chunked_sessions,
        corpus.stats.frames,
        corpus.stats.bytes as f64 / 1e6
    );
    Ok(())
}

fn replay_cmd(
    args: &CorpusArgs,
    runs: usize,
    dir: Option<PathBuf>,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let bench = ReplayBench {
        spec: args.spec(),
        runs,
        dir,
    };
    let r = replay::run(&bench)?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
        return Ok(());
    }
    let c = &r.corpus;
    let mb = c.bytes as f64 / 1e6;
    writeln!(
        out,
        "corpus   seed {} · {} sessions ({} chunked) · {} turns · {} messages · {} tool calls · {} frames · {:.1} MB · {} runs",
        args.seed,
        c.sessions,
        c.chunked_sessions,
        c.turns,
        c.messages,
        c.tool_calls,
        c.frames,
        mb,
        r.ratios.len()
    )?;
    writeln!(
        out,
        "replay   median {:.3} s (min {:.3}, max {:.3})  {:.1} MB/s  {:.0} sessions/s",
        r.replay.median,
        r.replay.min,
        r.replay.max,
        mb / r.replay.median,
        c.sessions as f64 / r.replay.median
    )?;
    writeln!(
        out,
        "raw      median {:.3} s (min {:.3}, max {:.3})  {:.1} MB/s",
        r.raw.median,
        r.raw.min,
        r.raw.max,
        mb / r.raw.median
    )?;
    writeln!(
        out,
        "ratio    replay/raw median {:.2} (min {:.2}, max {:.2})",
        r.ratio.median, r.ratio.min, r.ratio.max
    )?;
    writeln!(out, "{}", summary_line(args, &r))?;
    Ok(())
}

/// One line to paste into a note: ratio median/min/max, both medians, corpus size.
fn summary_line(args: &CorpusArgs, r: &replay::ReplayResult) -> String {
    let c = &r.corpus;
    format!(
        "summary  replay/raw {:.2} (min {:.2}, max {:.2}) · replay {:.3} s · raw {:.3} s · seed {} · {} sessions ({} chunked) · {} messages · {} tool calls · {:.1} MB · {} runs",
        r.ratio.median,
        r.ratio.min,
        r.ratio.max,
        r.replay.median,
        r.raw.median,
        args.seed,
        c.sessions,
        c.chunked_sessions,
        c.messages,
        c.tool_calls,
        c.bytes as f64 / 1e6,
        r.ratios.len()
    )
}

fn usage_cmd(
    corpus: &CorpusArgs,
    runs: usize,
    dir: Option<PathBuf>,
    nex: Option<PathBuf>,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let r = nex_bench::usage::run(&nex_bench::usage::UsageBench {
        seed: corpus.seed,
        sessions: corpus.sessions,
        large_every: corpus.large_every,
        large_turns: corpus.large_turns,
        runs,
        dir,
        nex,
    })?;
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "usage --by day: {} sessions ({} subagents), {} turns, ledger {} MB, built in {:.1} s, {} rows",
        r.sessions,
        r.subagents,
        r.turns,
        r.ledger_bytes / 1_000_000,
        r.build_secs,
        r.rows
    )?;
    let s = r.library_ms;
    writeln!(
        out,
        "  library: median {:.1} ms (min {:.1}, max {:.1})",
        s.median, s.min, s.max
    )?;
    match r.process_ms {
        Some(s) => writeln!(
            out,
            "  nex usage --by day --json: median {:.1} ms (min {:.1}, max {:.1}); target <= 200 ms",
            s.median, s.min, s.max
        )?,
        None => writeln!(out, "  nex binary not found: process not timed")?,
    }
    Ok(())
}

fn replica_cmd(
    machines: usize,
    sessions: usize,
    samples: usize,
    bin_dir: Option<PathBuf>,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let bench = nex_bench::replica::ReplicaBench {
        machines,
        sessions,
        samples,
        bins: nex_bench::procs::Binaries::locate(bin_dir.as_deref())?,
    };
    let r = nex_bench::replica::run(&bench).map_err(|e| e.to_string())?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "replica  {} machines x {} sessions · {} rows · converged in {:.2} s vs {:.2} s of local backfills (x{:.2}) · {:.0} rows/s · tail lag p50 {:.0} ms, p99 {:.0} ms (in the ledger: p50 {:.0} ms, p99 {:.0} ms)",
            r.machines,
            r.sessions_per_machine,
            r.rows,
            r.converge_s,
            r.local_backfills_s,
            r.ratio,
            r.rows_per_s,
            r.lag_p50_ms,
            r.lag_p99_ms,
            r.ledger_lag_p50_ms,
            r.ledger_lag_p99_ms
        )?;
    }
    Ok(())
}
