//! The `idle` (P7) and `peer` (P2) subcommands, flattened into the `nex-bench` command line.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use clap::Subcommand;

use super::Spread;
use super::idle::{self, IdleBench, IdleResult};
use super::peer::{self, PeerBench, PeerResult};
use super::procs::Binaries;
use super::worker_cli::BinArgs;

type Res = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Subcommand)]
pub enum PeerIdleScenario {
    /// P7: `nex daemon` tailing N unchanged files: CPU of nex + aix over a window vs 0.2 s/60 s.
    Idle {
        /// Session files to generate (one turn each; ignored with --corpus).
        #[arg(long, default_value_t = 2000)]
        files: usize,
        /// Measured window, seconds.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Seconds between the tail running and the measurement (then until a quiet second).
        #[arg(long, default_value_t = 5.0)]
        warmup: f64,
        /// Watch a `nex-bench files` corpus instead of generated files.
        #[arg(long, value_name = "DIR")]
        corpus: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: BinArgs,
    },
    /// P2: claude-code-to-sqlite (installed into a venv) vs `nex import backfill --wait` and
    /// `aix emit | nex import replay` on the same corpus. Exit 3 when the peer cannot be installed.
    Peer {
        /// A `nex-bench files` corpus (default: one generated with --sessions and --seed).
        #[arg(long, value_name = "DIR")]
        corpus: Option<PathBuf>,
        #[arg(long, default_value_t = 200)]
        sessions: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Runs (median, min and max are reported; at least 3).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The peer's venv (default: `peer-venv` next to nex-bench; created when missing).
        #[arg(long, value_name = "DIR")]
        venv: Option<PathBuf>,
        /// The claude-code-to-sqlite version to install.
        #[arg(long, default_value = "0.1.0")]
        peer_version: String,
        /// The Python that creates the venv.
        #[arg(long, default_value = "python3")]
        python: String,
        #[command(flatten)]
        common: BinArgs,
    },
}

/// Runs one scenario and prints its result.
///
/// # Errors
/// Whatever the scenario reports (`peer::PeerError::Unavailable` when the peer cannot be
/// installed).
pub fn run(s: PeerIdleScenario) -> Res {
    match s {
        PeerIdleScenario::Idle {
            files,
            seconds,
            warmup,
            corpus,
            seed,
            common,
        } => {
            let never = AtomicBool::new(false);
            let flag = idle::interrupt_flag();
            let r = idle::run(
                &IdleBench {
                    files,
                    seconds,
                    warmup,
                    corpus,
                    seed,
                    dir: common.dir.clone(),
                    bins: Binaries::locate(common.bin_dir.as_deref())?,
                },
                flag.as_deref().unwrap_or(&never),
            )?;
            if common.json {
                print_json(&r)
            } else {
                print_idle(&r);
                Ok(())
            }
        }
        PeerIdleScenario::Peer {
            corpus,
            sessions,
            seed,
            runs,
            venv,
            peer_version,
            python,
            common,
        } => {
            let venv = match venv {
                Some(v) => v,
                None => std::env::current_exe()?
                    .parent()
                    .map(|d| d.join("peer-venv"))
                    .unwrap_or_else(|| PathBuf::from("peer-venv")),
            };
            let r = peer::run(&PeerBench {
                corpus,
                sessions,
                seed,
                runs,
                venv,
                peer_version,
                python,
                dir: common.dir.clone(),
                bins: Binaries::locate(common.bin_dir.as_deref())?,
            })?;
            if common.json {
                print_json(&r)
            } else {
                print_peer(&r);
                Ok(())
            }
        }
    }
}

fn print_json<T: serde::Serialize>(r: &T) -> Res {
    println!("{}", serde_json::to_string(r)?);
    Ok(())
}

fn print_idle(r: &IdleResult) {
    println!(
        "corpus   {} session files · {:.1} MB · backfill {:.2} s ({} sessions) · tail running after {:.1} s, window after {:.1} s more ({})",
        r.files,
        r.corpus_bytes as f64 / 1e6,
        r.backfill_secs,
        r.backfill_imported,
        r.startup_secs,
        r.warmup_secs,
        if r.settled {
            "settled"
        } else {
            "NOT settled: busy for 30 s"
        }
    );
    println!(
        "startup  {:.3} s CPU from the daemon's spawn to the window",
        r.startup_cpu_secs
    );
    for p in &r.processes {
        println!(
            "  {:<6} pid {:<7} cpu {} s · on-cpu {:.4} s · rss {:.1} MiB (max {:.1}, peak since start {:.1})",
            p.comm,
            p.pid,
            p.cpu_secs.map_or("?".to_owned(), |c| format!("{c:.2}")),
            p.on_cpu_secs,
            p.rss_mib,
            p.max_rss_mib,
            p.peak_rss_mib
        );
    }
    if !r.spawned_during_window.is_empty() {
        println!(
            "spawned  during the window: {}",
            r.spawned_during_window.join(", ")
        );
    }
    println!(
        "tail     {} · {} restarts · worker pid {} -> {} · {} sessions imported by the tail",
        r.tail_state,
        r.tail_restarts,
        r.worker_pid_before.map_or("?".into(), |p| p.to_string()),
        r.worker_pid_after.map_or("?".into(), |p| p.to_string()),
        r.tail_imported
    );
    println!(
        "idle     {:.1} s window: CPU nex + aix {:.3} s (ticks of {:.0} ms; schedstat {:.4} s) · budget {:.3} s (P7: 0.2 s / 60 s) · ratio {:.2}: {}",
        r.window_secs,
        r.cpu_secs,
        r.tick_secs * 1000.0,
        r.on_cpu_secs,
        r.budget_secs,
        r.budget_ratio,
        if r.within_budget { "ok" } else { "EXCEEDED" }
    );
}

fn print_peer(r: &PeerResult) {
    let s = |x: &Spread| {
        format!(
            "median {:.3} (min {:.3}, max {:.3})",
            x.median, x.min, x.max
        )
    };
    println!(
        "corpus   {} sessions + {} subagent files · {:.1} MB · {} runs",
        r.corpus_sessions,
        r.corpus_subagents,
        r.corpus_bytes as f64 / 1e6,
        r.peer_secs.len()
    );
    println!(
        "peer     claude-code-to-sqlite {}: {} s · CPU {:.2} s · peak RSS {:.1} MiB",
        r.peer_version,
        s(&r.peer),
        r.peer_cpu.median,
        r.peer_peak_rss_mib
    );
    println!(
        "nex      nex import backfill --wait: {} s · CPU {:.2} s · peak RSS nex + aix {:.1} MiB",
        s(&r.backfill),
        r.backfill_cpu.median,
        r.backfill_peak_rss_mib
    );
    println!(
        "pipe     aix emit | nex import replay: {} s · CPU {:.2} s · peak RSS {:.1} MiB",
        s(&r.pipe),
        r.pipe_cpu.median,
        r.pipe_peak_rss_mib
    );
    let p = &r.peer_imported;
    let n = &r.nex_imported;
    println!(
        "imported peer: {} sessions · {} messages · {} tokens (input + output as it sums them); subagent files skipped",
        p.sessions, p.messages, p.tokens
    );
    println!(
        "imported nex:  {} sessions ({} subagents) · {} turns · {} messages · {} tool calls · {} tokens{}",
        n.sessions,
        n.subagent_sessions,
        n.turns,
        n.messages,
        n.tool_calls,
        n.tokens,
        if r.nex_paths_agree {
            ""
        } else {
            " · backfill and pipe ledgers DIFFER"
        }
    );
    println!(
        "ratio    peer/backfill {} (P2: ≥ 3: {}) · peer/pipe {}",
        s(&r.ratio),
        if r.ratio.median >= 3.0 {
            "ok"
        } else {
            "MISSED"
        },
        s(&r.pipe_ratio)
    );
    println!(
        "cpu      peer/backfill CPU time {} (wall time also counts waits on the disk)",
        s(&r.cpu_ratio)
    );
}
