//! The `replica` scenario (issue 14): M machines (NEX_HOMEs, each with its own corpus of Claude
//! Code files) replicating at once into one private PostgreSQL on this machine.
//!
//! 1. Baseline: M local backfills at once, no replica (`nex import backfill --wait` each).
//! 2. Replica: M fresh homes with `[replica]` and `nex daemon` each, the same M backfills as
//!    daemon jobs; time until every machine's watermark in PostgreSQL is its ledger's last
//!    change and the replica equals every ledger row for row (checked after the clock stops).
//! 3. Tail lag: the daemons' tails started; machines 1..M append a turn every 500 ms while
//!    machine 0 appends `samples` turns one at a time; the lag of each is from the write
//!    returning to its message row being visible in PostgreSQL (polled every 5 ms).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::files::{FileCorpusSpec, TurnWriter, projects_dir, session_id, write_corpus};
use super::home::{BenchHome, Daemon, backfill_job};
use super::pg::{PgServer, compare};
use super::procs::Binaries;
use super::rng::Rng;

/// What to run.
#[derive(Debug, Clone)]
pub struct ReplicaBench {
    pub machines: usize,
    /// Sessions per machine (each machine has its own corpus, seed = machine index).
    pub sessions: usize,
    /// Appended turns whose lag is measured.
    pub samples: usize,
    pub bins: Binaries,
}

/// What it measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaResult {
    pub machines: usize,
    pub sessions_per_machine: usize,
    /// Rows in the replica at convergence (every table, every machine).
    pub rows: u64,
    /// Wall time of the M local backfills at once, no replica.
    pub local_backfills_s: f64,
    /// Wall time from the daemons' start to a converged replica.
    pub converge_s: f64,
    /// `converge_s / local_backfills_s` (target: at most 1.5).
    pub ratio: f64,
    pub rows_per_s: f64,
    /// Lag of a turn appended on machine 0 while the others append and replicate.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// The same turns' lag to the local ledger (the import's share of the lag above).
    pub ledger_lag_p50_ms: f64,
    pub ledger_lag_p99_ms: f64,
}

/// How often each other machine appends a turn during the lag measurement.
const OTHERS_EVERY: Duration = Duration::from_millis(500);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Machine {
    name: String,
    home: BenchHome,
    seed: u64,
    appended: u64,
}

impl Machine {
    fn create(
        root: &Path,
        index: usize,
        sessions: usize,
        bins: &Binaries,
        url: Option<&str>,
    ) -> Result<Machine, BoxError> {
        let dir = root.join(format!("m{index}"));
        let corpus = dir.join("claude");
        let seed = 100 + index as u64;
        write_corpus(
            &FileCorpusSpec {
                seed,
                sessions,
                large_every: 0,
                ..FileCorpusSpec::default()
            },
            &corpus,
        )?;
        let home_dir = dir.join("home");
        std::fs::create_dir_all(&home_dir)?;
        let name = format!("machine-{index}");
        if let Some(url) = url {
            std::fs::write(
                home_dir.join("config.toml"),
                format!(
                    "[import]\ntail = false\n[replica]\nurl = \"{url}\"\nmachine = \"{name}\"\n"
                ),
            )?;
        }
        Ok(Machine {
            name,
            home: BenchHome::create(&home_dir, &corpus, bins)?,
            seed,
            appended: 0,
        })
    }

    fn backfill(&self) -> Result<(), BoxError> {
        let out = self
            .home
            .nex(&["import", "backfill", "--wait", "--json"])
            .stdin(Stdio::null())
            .output()?;
        backfill_job(&out)?;
        Ok(())
    }

    /// Appends one turn to the machine's first session; the ledger id of its message.
    fn append(&mut self) -> Result<String, BoxError> {
        use std::io::Write;
        self.appended += 1;
        let sid = session_id(self.seed, 0);
        let path = projects_dir(&self.home.claude_config_dir)
            .join("-work-proj-00")
            .join(format!("{sid}.jsonl"));
        let now = 1_800_000_000_000 + self.appended as i64 * 1000;
        let mut w = TurnWriter::new(&sid, None, Rng::new(self.seed * 7919 + self.appended), now)
            .resume_after(100_000 * self.appended, now);
        let t = w.turn(None);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        f.write_all(t.text.as_bytes())?;
        f.flush()?;
        Ok(nex::import::scoped_id(
            nex::import::IdKind::Message,
            "aix",
            "claude-code",
            &sid,
            &t.user_uuid,
        ))
    }

    fn head(&self) -> i64 {
        rusqlite::Connection::open_with_flags(
            self.home.ledger(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| {
            c.query_row("SELECT coalesce(max(seq), 0) FROM change_log", [], |r| {
                r.get(0)
            })
        })
        .unwrap_or(-1)
    }
}

/// Runs `f` on every machine at once; the first error.
fn all_at_once(
    machines: &[Machine],
    f: impl Fn(&Machine) -> Result<(), BoxError> + Sync,
) -> Result<(), BoxError> {
    std::thread::scope(|s| {
        let handles: Vec<_> = machines.iter().map(|m| s.spawn(|| f(m))).collect();
        for h in handles {
            h.join().map_err(|_| "a machine's thread panicked")??;
        }
        Ok(())
    })
}

/// Runs the scenario.
///
/// # Errors
/// PostgreSQL cannot be started, a backfill fails, the replica does not converge within 10
/// minutes or differs from a ledger, an appended turn never reaches the replica.
pub fn run(b: &ReplicaBench) -> Result<ReplicaResult, BoxError> {
    let pg = PgServer::start()?;
    let work = tempfile::tempdir()?;

    // 1. M local backfills at once.
    let local: Vec<Machine> = (0..b.machines)
        .map(|i| Machine::create(&work.path().join("local"), i, b.sessions, &b.bins, None))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    all_at_once(&local, Machine::backfill)?;
    let local_s = t.elapsed().as_secs_f64();
    drop(local);

    // 2. The same with daemons replicating.
    let url = pg.url();
    let mut machines: Vec<Machine> = (0..b.machines)
        .map(|i| {
            Machine::create(
                &work.path().join("replica"),
                i,
                b.sessions,
                &b.bins,
                Some(&url),
            )
        })
        .collect::<Result<_, _>>()?;
    let logs: PathBuf = work.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    let t = Instant::now();
    let daemons: Vec<Daemon> = machines
        .iter()
        .map(|m| Daemon::spawn(&m.home, &logs.join(format!("{}.log", m.name))))
        .collect::<Result<_, _>>()?;
    // The job goes to the daemon once its socket answers.
    all_at_once(&machines, |m| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while m.home.status().is_none() {
            if Instant::now() > deadline {
                return Err("a daemon did not answer within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        m.backfill()
    })?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let converged = machines.iter().all(|m| {
            let head = m.head();
            head > 0
                && pg
                    .scalar(&format!(
                        "SELECT seq FROM nex.replica_watermarks WHERE machine = '{}'",
                        m.name
                    ))
                    .is_ok_and(|w| w == head)
        });
        if converged {
            break;
        }
        if Instant::now() > deadline {
            return Err("the replica did not converge within 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let converge_s = t.elapsed().as_secs_f64();
    let mut rows = 0;
    for m in &machines {
        rows += compare(&pg, &m.home.ledger(), &m.name)?;
    }

    // 3. Tail lag while the others append and replicate.
    for m in &machines {
        let out = m
            .home
            .nex(&["import", "tail"])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(
                format!("nex import tail: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (first, others) = machines.split_at_mut(1);
    let (lags, ledger_lags) = std::thread::scope(|s| -> Result<(Vec<f64>, Vec<f64>), BoxError> {
        for m in others.iter_mut() {
            let stop = stop.clone();
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = m.append();
                    std::thread::sleep(OTHERS_EVERY);
                }
            });
        }
        let result = (|| {
            let m = &mut first[0];
            let mut lags = Vec::new();
            let mut ledger_lags = Vec::new();
            let ledger = rusqlite::Connection::open_with_flags(
                m.home.ledger(),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            // The first append also waits for the tail to be up: not a sample.
            for i in 0..=b.samples {
                let id = m.append()?;
                let t0 = Instant::now();
                let sql = format!(
                    "SELECT count(*) FROM nex.messages WHERE machine = '{}' AND id = '{id}'",
                    m.name
                );
                let mut in_ledger = None;
                loop {
                    if in_ledger.is_none()
                        && ledger
                            .query_row("SELECT count(*) FROM messages WHERE id = ?1", [&id], |r| {
                                r.get::<_, i64>(0)
                            })
                            .is_ok_and(|n| n == 1)
                    {
                        in_ledger = Some(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                    if pg.scalar(&sql)? == 1 {
                        // Seen in the replica before a ledger poll saw it: the ledger's lag is
                        // at most this.
                        in_ledger.get_or_insert(t0.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                    if t0.elapsed() > Duration::from_secs(60) {
                        return Err("an appended turn did not reach the replica in 60 s".into());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                if i > 0 {
                    lags.push(t0.elapsed().as_secs_f64() * 1000.0);
                    ledger_lags.push(in_ledger.unwrap_or(f64::NAN));
                }
            }
            Ok((lags, ledger_lags))
        })();
        stop.store(true, Ordering::Relaxed);
        result
    })?;
    drop(daemons);
    let mut sorted = lags.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |sorted: &[f64], p: f64| -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    };
    let mut ledger_sorted = ledger_lags.clone();
    ledger_sorted.sort_by(f64::total_cmp);
    Ok(ReplicaResult {
        machines: b.machines,
        sessions_per_machine: b.sessions,
        rows,
        local_backfills_s: local_s,
        converge_s,
        ratio: converge_s / local_s,
        rows_per_s: rows as f64 / converge_s,
        lag_p50_ms: pct(&sorted, 0.5),
        lag_p99_ms: pct(&sorted, 0.99),
        ledger_lag_p50_ms: pct(&ledger_sorted, 0.5),
        ledger_lag_p99_ms: pct(&ledger_sorted, 0.99),
        lag_max_ms: sorted.last().copied().unwrap_or(f64::NAN),
    })
}
