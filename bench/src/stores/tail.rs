//! Step 3 of the `stores` scenario: tail latency. The worker runs in tail mode with the cursors
//! the last backfill committed while both stores are written through their writers held open;
//! each append's latency runs from its commit returning to its last new message's row being
//! visible in the ledger (polled read-only every millisecond).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::cursor::CursorDb;
use super::opencode::OpenCodeDir;
use super::{StoresBench, StoresError, open_ro};
use crate::procs::Pair;
use crate::rng::Rng;
use nex::import::{IdKind, scoped_id};
use nex::ledger;
use nex::protocol::RunMode;

/// Tail latencies of one store's appends, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub appends: usize,
    pub committed: usize,
    pub timed_out: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// The store's last append is among the timed out: nothing written after it could make the
    /// tail notice a commit it missed (see the `stores` module docs).
    pub last_timed_out: bool,
}

impl Latency {
    fn of(appends: usize, timed_out: usize, latencies: &[f64], last_timed_out: bool) -> Self {
        let mut sorted = latencies.to_vec();
        sorted.sort_by(f64::total_cmp);
        Self {
            appends,
            committed: sorted.len(),
            timed_out,
            p50_ms: percentile(&sorted, 50.0),
            p99_ms: percentile(&sorted, 99.0),
            max_ms: sorted.last().copied().unwrap_or(f64::NAN),
            mean_ms: sorted.iter().sum::<f64>() / sorted.len().max(1) as f64,
            last_timed_out,
        }
    }
}

/// The tail step: all appends, then each store's.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailFigures {
    pub rate: f64,
    /// Unmeasured appends before the measured ones (one per store, plus one more each time a
    /// store's warm-up append was not visible within 10 s).
    pub warmup_appends: usize,
    pub all: Latency,
    pub cursor: Latency,
    pub opencode: Latency,
}

/// How long one measured append may take to land in the ledger.
const APPEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the warm-up may take per store (the tail's start-up poll of large stores included).
const WARMUP_TIMEOUT: Duration = Duration::from_secs(300);
/// A warm-up append not visible after this long is followed by another (a commit the tail
/// missed shows up with the next write).
const WARMUP_RETRY: Duration = Duration::from_secs(10);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn has_message(conn: &Connection, id: &str) -> Result<bool, StoresError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Which store an append went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Cursor,
    OpenCode,
}

/// Appends to one store; the ledger id of the last new message.
fn append(
    which: Which,
    cursor: &mut CursorDb,
    opencode: &mut OpenCodeDir,
) -> Result<String, StoresError> {
    let (provider, a) = match which {
        Which::Cursor => ("cursor", cursor.append()?),
        Which::OpenCode => ("opencode", opencode.append()?),
    };
    let last = a
        .message_ids
        .last()
        .ok_or_else(|| StoresError::Check("an append wrote no message".into()))?;
    Ok(scoped_id(
        IdKind::Message,
        "aix",
        provider,
        &a.session_id,
        last,
    ))
}

/// Step 3, on the ledger of the last backfill.
///
/// # Errors
/// I/O, SQLite, ledger or process failures; a warm-up append not committed within
/// [`WARMUP_TIMEOUT`]; a tail run that rejects a frame.
pub(super) fn run_tail(
    b: &StoresBench,
    worker_args: &[String],
    ledger_path: &Path,
    cursor: &mut CursorDb,
    opencode: &mut OpenCodeDir,
) -> Result<TailFigures, StoresError> {
    let cursors = ledger::load_cursors(&ledger::open_agents(ledger_path)?, "aix")?;
    cursor.open_writer()?;
    opencode.open_writer()?;
    let mut pair = Pair::spawn(&b.bins, worker_args, ledger_path, true)?;
    pair.start(RunMode::Tail, cursors, "stores-tail")?;
    let conn = open_ro(ledger_path)?;
    let mut warmup_appends = 0;
    for which in [Which::Cursor, Which::OpenCode] {
        let started = Instant::now();
        'store: loop {
            let id = append(which, cursor, opencode)?;
            warmup_appends += 1;
            let t0 = Instant::now();
            while t0.elapsed() < WARMUP_RETRY {
                if has_message(&conn, &id)? {
                    break 'store;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if started.elapsed() > WARMUP_TIMEOUT {
                return Err(StoresError::Check(format!(
                    "the tail did not commit a {which:?} warm-up append in {} s",
                    WARMUP_TIMEOUT.as_secs()
                )));
            }
        }
    }

    let period = Duration::from_secs_f64(1.0 / b.rate.max(0.1));
    // (store, ledger id, commit time, index of the append)
    let mut pending: Vec<(Which, String, Instant, usize)> = Vec::new();
    let mut last = [usize::MAX; 2];
    let mut timed_out_at: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    let mut latencies: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let (mut appends, mut timed_out) = ([0usize; 2], [0usize; 2]);
    let mut rng = Rng::new(b.seed ^ 0x7a11);
    let started = Instant::now();
    let mut next = 0usize;
    while next < b.appends || !pending.is_empty() {
        if next < b.appends && started.elapsed() >= period.mul_f64(next as f64) {
            let which = if rng.range(0, 2) == 0 {
                Which::Cursor
            } else {
                Which::OpenCode
            };
            let id = append(which, cursor, opencode)?;
            pending.push((which, id, Instant::now(), next));
            appends[which as usize] += 1;
            last[which as usize] = next;
            next += 1;
        }
        let mut keep = Vec::with_capacity(pending.len());
        for (which, id, t0, index) in pending.drain(..) {
            if has_message(&conn, &id)? {
                latencies[which as usize].push(t0.elapsed().as_secs_f64() * 1000.0);
            } else if t0.elapsed() > APPEND_TIMEOUT {
                timed_out[which as usize] += 1;
                timed_out_at[which as usize].push(index);
            } else {
                keep.push((which, id, t0, index));
            }
        }
        pending = keep;
        std::thread::sleep(Duration::from_millis(1));
    }
    pair.stop();
    let out = pair.finish()?;
    let r = &out.report;
    let rejected = r.failed + r.rejected.values().sum::<u64>();
    if rejected > 0 {
        return Err(StoresError::Check(format!(
            "the tail run had {rejected} rejected or failed frames"
        )));
    }
    let all: Vec<f64> = latencies.concat();
    let timed_out_last = [0, 1].map(|w| timed_out_at[w].contains(&last[w]));
    Ok(TailFigures {
        rate: b.rate,
        warmup_appends,
        all: Latency::of(
            b.appends,
            timed_out[0] + timed_out[1],
            &all,
            timed_out_last[0] || timed_out_last[1],
        ),
        cursor: Latency::of(appends[0], timed_out[0], &latencies[0], timed_out_last[0]),
        opencode: Latency::of(appends[1], timed_out[1], &latencies[1], timed_out_last[1]),
    })
}
