//! `nex-bench stores`: its flags and its report (one line per step, then a summary line to
//! paste into a note), or the result as JSON with `--json`.

use std::io::Write;

use clap::Args;

use super::{Latency, StoresBench, StoresResult, run};
use crate::Spread;
use crate::procs::Binaries;
use crate::worker_cli::BinArgs;

/// The flags of `nex-bench stores`.
#[derive(Debug, Clone, Args)]
pub struct StoresArgs {
    /// Sessions of each store (Cursor composers, OpenCode sessions).
    #[arg(long, default_value_t = 200)]
    pub sessions: usize,
    /// Messages of each session (Cursor bubbles, OpenCode messages), user and assistant in turn.
    #[arg(long, default_value_t = 100)]
    pub bubbles: usize,
    /// Backfill runs (median, min and max are reported; at least 3).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Measured tail appends, each to a random session of a random store.
    #[arg(long, default_value_t = 100)]
    pub appends: usize,
    /// Tail appends per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Seed of the deterministic generators.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub common: BinArgs,
}

type Res = Result<(), Box<dyn std::error::Error>>;

/// Runs the scenario and prints it. A rebackfill that sent sessions again is reported, then
/// made the command's error.
///
/// # Errors
/// Whatever the scenario reports; sessions sent again by a rebackfill.
pub fn stores_cmd(a: StoresArgs) -> Res {
    let r = run(&StoresBench {
        sessions: a.sessions,
        bubbles: a.bubbles,
        runs: a.runs,
        appends: a.appends,
        rate: a.rate,
        seed: a.seed,
        dir: a.common.dir.clone(),
        bins: Binaries::locate(a.common.bin_dir.as_deref())?,
    })?;
    let mut out = std::io::stdout().lock();
    if a.common.json {
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
    } else {
        write_report(&mut out, &a, &r)?;
    }
    if r.rebackfill_sessions > 0 {
        return Err(format!(
            "the rebackfills sent {} unchanged sessions again",
            r.rebackfill_sessions
        )
        .into());
    }
    Ok(())
}

fn secs(x: &Spread) -> String {
    format!(
        "median {:.3} (min {:.3}, max {:.3})",
        x.median, x.min, x.max
    )
}

fn latency(l: &Latency) -> String {
    format!(
        "p50 {:.1} ms · p99 {:.1} ms · max {:.1} ms · mean {:.1} ms ({} committed of {}, {} timed out)",
        l.p50_ms, l.p99_ms, l.max_ms, l.mean_ms, l.committed, l.appends, l.timed_out
    )
}

fn write_report(out: &mut impl Write, a: &StoresArgs, r: &StoresResult) -> std::io::Result<()> {
    let mb = |b: u64| b as f64 / 1e6;
    let (c, o) = (&r.cursor, &r.opencode);
    writeln!(
        out,
        "stores   seed {} · {} sessions × {} messages per store · {} runs",
        a.seed,
        a.sessions,
        a.bubbles,
        r.backfill_secs.len()
    )?;
    writeln!(
        out,
        "cursor   state.vscdb {:.1} MB · {} composers · {} bubbles · {} tool calls · {} keys · written in {:.1} s",
        mb(c.bytes),
        c.sessions,
        c.messages,
        c.tool_calls,
        c.rows,
        c.secs
    )?;
    writeln!(
        out,
        "opencode opencode.db {:.1} MB · {} sessions · {} messages · {} parts · {} tool calls · written in {:.1} s",
        mb(o.bytes),
        o.sessions,
        o.messages,
        r.opencode_parts,
        o.tool_calls,
        o.secs
    )?;
    writeln!(
        out,
        "items    {} sessions · {} messages · {} tool calls (aix scan = generated)",
        r.sessions, r.messages, r.tool_calls
    )?;
    writeln!(out, "backfill {} s", secs(&r.backfill))?;
    writeln!(out, "raw      {} s", secs(&r.raw))?;
    writeln!(out, "ratio    backfill/raw {}", secs(&r.ratio))?;
    writeln!(
        out,
        "rss      peak aix {:.1} MiB · nex {:.1} MiB",
        r.aix_peak_rss_mib, r.nex_peak_rss_mib
    )?;
    writeln!(
        out,
        "rebackfill {} s ({} frames, {} sessions sent again)",
        secs(&r.rebackfill),
        r.rebackfill_frames,
        r.rebackfill_sessions
    )?;
    writeln!(
        out,
        "ratio    rebackfill/backfill {}",
        secs(&r.rebackfill_ratio)
    )?;
    let t = &r.tail;
    writeln!(
        out,
        "tail     {} appends at {}/s: {} committed, {} timed out",
        t.all.appends, t.rate, t.all.committed, t.all.timed_out
    )?;
    writeln!(out, "latency  {}", latency(&t.all))?;
    writeln!(out, "  cursor   {}", latency(&t.cursor))?;
    writeln!(out, "  opencode {}", latency(&t.opencode))?;
    for (name, l) in [("cursor", &t.cursor), ("opencode", &t.opencode)] {
        if l.last_timed_out {
            writeln!(
                out,
                "warning  the last append to {name} was not visible after 10 s: nothing written \
                 later could make the tail notice a commit it missed"
            )?;
        }
    }
    writeln!(
        out,
        "summary  stores backfill/raw {:.2} (min {:.2}, max {:.2}) · backfill {:.3} s · raw {:.3} s · rebackfill/backfill {:.3} · tail p50 {:.0} ms p99 {:.0} ms max {:.0} ms ({}/{} committed) · rss aix {:.0} MiB nex {:.0} MiB · {} sessions × {} messages per store · {:.1} + {:.1} MB · seed {} · {} runs",
        r.ratio.median,
        r.ratio.min,
        r.ratio.max,
        r.backfill.median,
        r.raw.median,
        r.rebackfill_ratio.median,
        t.all.p50_ms,
        t.all.p99_ms,
        t.all.max_ms,
        t.all.committed,
        t.all.appends,
        r.aix_peak_rss_mib,
        r.nex_peak_rss_mib,
        a.sessions,
        a.bubbles,
        mb(c.bytes),
        mb(o.bytes),
        a.seed,
        r.backfill_secs.len()
    )
}
