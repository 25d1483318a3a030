//! The worker-side `nex-bench` subcommands (`files`, `backfill`, `rebackfill`, `big-session`,
//! `tail-latency`, `tail-scaling`, `tail-long-turn`), flattened into the `nex-bench` command line.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::backfill::{self, BackfillBench, BackfillResult};
use super::big::{self, BigSessionBench};
use super::codex_files::{codex_sessions_dir, write_codex};
use super::files::{FileCorpusSpec, projects_dir, write_corpus};
use super::floor::FloorCpu;
use super::procs::Binaries;
use super::tail::{self, TailLatencyBench, TailScalingBench};
use super::tail_turn::{self, TailLongTurnBench};

type Res = Result<(), Box<dyn std::error::Error>>;

/// Where the built binaries are.
#[derive(Debug, Clone, Args)]
pub struct BinArgs {
    /// Directory of the `aix` and `nex` binaries (default: next to nex-bench).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Work directory for ledgers and live files (default: a temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The backfill scenarios' corpus and runs.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// A corpus written by `nex-bench files` (its `projects` dir is the Claude root, its
    /// `codex/sessions` dir, when present, the Codex root).
    #[arg(long, value_name = "DIR")]
    pub corpus: PathBuf,
    /// Runs (median, min and max are reported; at least 3).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[command(flatten)]
    pub common: BinArgs,
}

#[derive(Debug, Subcommand)]
pub enum WorkerScenario {
    /// Write the standard Claude Code FILE corpus: `DIR/projects/<project>/<session>.jsonl`.
    Files {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sessions (2,000: standard, ~1 GB; 200: smoke).
        #[arg(long, default_value_t = 200)]
        sessions: usize,
        /// Every Nth session is 20-50 MB (0: none).
        #[arg(long, default_value_t = 200)]
        large_every: usize,
        /// Codex rollouts written besides (under DIR/codex/sessions).
        #[arg(long, default_value_t = 20)]
        codex_sessions: usize,
    },
    /// P1 + P3: `aix emit --mode backfill | nex import replay -` vs the raw insert loop.
    Backfill(BackfillArgs),
    /// P4: the same runs; prints the second backfill (committed cursors) as a ratio of the first.
    Rebackfill(BackfillArgs),
    /// P8: one Claude Code session of `--mb` MB through `aix emit | nex import replay -`.
    BigSession {
        /// Session size, MB (10^6 bytes).
        #[arg(long, default_value_t = 200)]
        mb: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: BinArgs,
    },
    /// P5: latency from an appended turn to its rows committed, tail mode.
    TailLatency {
        #[arg(long, default_value_t = 50)]
        files: usize,
        #[arg(long, default_value_t = 300)]
        appends: usize,
        /// Appends per second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: BinArgs,
    },
    /// P6: one turn appended to a large vs a small session: time and bytes written.
    TailScaling {
        #[arg(long, default_value_t = 50_000_000)]
        large_bytes: u64,
        #[arg(long, default_value_t = 50_000)]
        small_bytes: u64,
        #[arg(long, default_value_t = 10)]
        appends: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: BinArgs,
    },
    /// Issue 12: one tool call appended to an open turn of N tool calls: append -> commit
    /// latency and bytes written per append at each N; ratio largest / smallest.
    TailLongTurn {
        /// Open-turn sizes, in tool calls (comma list).
        #[arg(long, value_delimiter = ',', default_value = "10,1000,5000")]
        calls: Vec<usize>,
        /// Measured appends per size and run (after one warm-up append each).
        #[arg(long, default_value_t = 10)]
        appends: usize,
        /// Runs, each with fresh files, ledger and processes (median, min and max reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Bytes of each tool result's output (written twice per call, as Claude Code does).
        #[arg(long, default_value_t = 2_500)]
        result_bytes: usize,
        /// Pause before and after each append, ms (the byte counters see one append each).
        #[arg(long, default_value_t = 200)]
        settle_ms: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: BinArgs,
    },
}

/// Runs one scenario and prints its result.
///
/// # Errors
/// Whatever the scenario reports.
pub fn run(s: WorkerScenario) -> Res {
    match s {
        WorkerScenario::Files {
            out,
            seed,
            sessions,
            large_every,
            codex_sessions,
        } => {
            let spec = FileCorpusSpec {
                seed,
                sessions,
                large_every,
                ..FileCorpusSpec::default()
            };
            let st = write_corpus(&spec, &out)?;
            println!(
                "files    {} sessions ({} large, {} subagents) · {} turns · {} lines ({} progress) · {} tool calls · {:.1} MB",
                st.sessions,
                st.large_sessions,
                st.subagents,
                st.turns,
                st.lines,
                st.progress_lines,
                st.tool_calls,
                st.bytes as f64 / 1e6
            );
            if codex_sessions > 0 {
                let cx = write_codex(seed, codex_sessions, (3, 12), &out)?;
                println!(
                    "codex    {} rollouts · {} turns · {} lines · {} tool calls · {:.1} MB",
                    cx.sessions,
                    cx.turns,
                    cx.lines,
                    cx.tool_calls,
                    cx.bytes as f64 / 1e6
                );
            }
            Ok(())
        }
        WorkerScenario::Backfill(a) => backfill_cmd(&a, false),
        WorkerScenario::Rebackfill(a) => backfill_cmd(&a, true),
        WorkerScenario::BigSession { mb, seed, common } => big_cmd(mb, seed, &common),
        WorkerScenario::TailLatency {
            files,
            appends,
            rate,
            seed,
            common,
        } => {
            let r = tail::run_latency(&TailLatencyBench {
                files,
                appends,
                rate,
                seed,
                dir: common.dir.clone(),
                bins: Binaries::locate(common.bin_dir.as_deref())?,
            })?;
            if common.json {
                return print_json(&r);
            }
            println!(
                "tail     {} appends at {rate}/s over {files} files: {} committed, {} timed out",
                r.appends, r.committed, r.timed_out
            );
            println!(
                "latency  p50 {:.1} ms · p99 {:.1} ms · max {:.1} ms · mean {:.1} ms",
                r.p50_ms, r.p99_ms, r.max_ms, r.mean_ms
            );
            Ok(())
        }
        WorkerScenario::TailScaling {
            large_bytes,
            small_bytes,
            appends,
            seed,
            common,
        } => {
            let r = tail::run_scaling(&TailScalingBench {
                large_bytes,
                small_bytes,
                appends,
                seed,
                dir: common.dir.clone(),
                bins: Binaries::locate(common.bin_dir.as_deref())?,
            })?;
            if common.json {
                return print_json(&r);
            }
            let s =
                |x: &super::Spread| format!("{:.1} (min {:.1}, max {:.1})", x.median, x.min, x.max);
            println!(
                "large    {:.1} MB session: append->commit {} ms, nex wrote {} bytes",
                large_bytes as f64 / 1e6,
                s(&r.large_ms),
                s(&r.large_bytes_written)
            );
            println!(
                "small    {:.1} KB session: append->commit {} ms, nex wrote {} bytes",
                small_bytes as f64 / 1e3,
                s(&r.small_ms),
                s(&r.small_bytes_written)
            );
            println!(
                "ratio    large/small time {:.2} · bytes {:.2}",
                r.time_ratio, r.bytes_ratio
            );
            Ok(())
        }
        WorkerScenario::TailLongTurn {
            calls,
            appends,
            runs,
            result_bytes,
            settle_ms,
            seed,
            common,
        } => {
            let r = tail_turn::run(&TailLongTurnBench {
                calls,
                appends,
                runs,
                result_bytes,
                settle: std::time::Duration::from_millis(settle_ms),
                seed,
                dir: common.dir.clone(),
                bins: Binaries::locate(common.bin_dir.as_deref())?,
            })?;
            if common.json {
                return print_json(&r);
            }
            let s =
                |x: &super::Spread| format!("{:.1} (min {:.1}, max {:.1})", x.median, x.min, x.max);
            for z in &r.sizes {
                println!(
                    "calls {:>6}  {:>6.1} MB  p50 {} ms  p99 {} ms  ledger {} B/append  pipe {} B/append  ({} appends)",
                    z.calls,
                    z.file_bytes as f64 / 1e6,
                    s(&z.p50_ms),
                    s(&z.p99_ms),
                    s(&z.ledger_bytes),
                    s(&z.pipe_bytes),
                    z.appends
                );
            }
            println!(
                "ratio    largest/smallest p50 {:.2} · ledger bytes {:.2} · pipe bytes {:.2}",
                r.p50_ratio, r.ledger_bytes_ratio, r.pipe_bytes_ratio
            );
            Ok(())
        }
    }
}

fn print_json<T: serde::Serialize>(r: &T) -> Res {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, r)?;
    writeln!(out)?;
    Ok(())
}

fn backfill_cmd(a: &BackfillArgs, re: bool) -> Res {
    let claude = projects_dir(&a.corpus);
    let codex = codex_sessions_dir(&a.corpus);
    let r: BackfillResult = backfill::run(&BackfillBench {
        claude_dirs: vec![claude],
        codex_dirs: if codex.is_dir() {
            vec![codex]
        } else {
            Vec::new()
        },
        runs: a.runs,
        dir: a.common.dir.clone(),
        bins: Binaries::locate(a.common.bin_dir.as_deref())?,
    })?;
    if a.common.json {
        return print_json(&r);
    }
    let s = |x: &super::Spread| {
        format!(
            "median {:.3} (min {:.3}, max {:.3})",
            x.median, x.min, x.max
        )
    };
    println!(
        "corpus   {} sessions · {:.1} MB · {} runs",
        r.sessions,
        r.corpus_bytes as f64 / 1e6,
        r.backfill_secs.len()
    );
    if !re {
        println!("backfill {} s", s(&r.backfill));
        println!("raw      {} s", s(&r.raw));
        println!("ratio    backfill/raw {}", s(&r.ratio));
        println!(
            "cpu      backfill {} s · raw {} s · ratio {}",
            s(&super::Spread::of_or_nan(&r.backfill_cpu_secs)),
            s(&super::Spread::of_or_nan(&r.raw_cpu_secs)),
            s(&r.cpu_ratio)
        );
        let part = |f: fn(&FloorCpu) -> f64| {
            s(&super::Spread::of_or_nan(
                &r.floor_cpu.iter().map(f).collect::<Vec<_>>(),
            ))
        };
        println!(
            "floor    outside SQLite, at least: parse {} s · sha-256 {} s · compress {} s",
            part(|f| f.parse_secs),
            part(|f| f.digest_secs),
            part(|f| f.compress_secs)
        );
        println!(
            "         (raw + floor) / raw CPU {} (the least any importer can reach)",
            s(&r.floor_cpu_ratio)
        );
        println!(
            "ledger   {:.1} MB ({:.2} x the corpus) · raw {:.1} MB ({:.2} x)",
            r.ledger_bytes as f64 / 1e6,
            r.ledger_per_corpus_byte,
            r.raw_ledger_bytes as f64 / 1e6,
            r.raw_ledger_bytes as f64 / r.corpus_bytes.max(1) as f64
        );
        println!(
            "         without the search index {:.1} MB ({:.2} x the corpus; index {:.1} MB)",
            r.ledger_bytes.saturating_sub(r.search_index_bytes) as f64 / 1e6,
            r.ledger_per_corpus_byte_without_index,
            r.search_index_bytes as f64 / 1e6
        );
        println!(
            "rss      peak aix {:.1} MiB · nex {:.1} MiB",
            r.aix_peak_rss_mib, r.nex_peak_rss_mib
        );
    }
    let re_spread = super::Spread::of(&r.rebackfill_secs);
    if let Some(x) = re_spread {
        println!(
            "rebackfill {} s ({} frames, {} sessions re-imported)",
            s(&x),
            r.rebackfill_frames,
            r.rebackfill_imported
        );
    }
    println!("ratio    rebackfill/backfill {}", s(&r.rebackfill_ratio));
    Ok(())
}

fn big_cmd(mb: u64, seed: u64, common: &BinArgs) -> Res {
    let r = big::run(&BigSessionBench {
        bytes: mb.saturating_mul(1_000_000),
        seed,
        dir: common.dir.clone(),
        bins: Binaries::locate(common.bin_dir.as_deref())?,
    })?;
    if common.json {
        print_json(&r)?;
    } else {
        println!(
            "session  {:.1} MB · {} turns · {} tool calls · {} frames · {:.1} s",
            r.session_bytes as f64 / 1e6,
            r.file.turns,
            r.file.tool_calls,
            r.frames,
            r.secs
        );
        println!(
            "rss      peak aix {:.1} MiB · nex {:.1} MiB · bound {:.1} MiB each (P8): {}",
            r.aix_peak_rss_mib,
            r.nex_peak_rss_mib,
            r.bound_mib,
            if r.within_bound { "ok" } else { "EXCEEDED" }
        );
        println!(
            "ledger   {} sessions · {} turns · {} messages · {} tool calls (expected {} · {} · {} · {}): {}",
            r.ledger.sessions,
            r.ledger.turns,
            r.ledger.messages,
            r.ledger.tool_calls,
            r.expected.sessions,
            r.expected.turns,
            r.expected.messages,
            r.expected.tool_calls,
            if r.complete { "complete" } else { "INCOMPLETE" }
        );
    }
    if !r.complete {
        return Err("the session did not land complete".into());
    }
    Ok(())
}
