//! The `search` scenario (issue 13): what the full-text index costs the import, and how fast
//! `nex search` answers.
//!
//! - Corpus: the standard corpus' shape ([`super::corpus::session`]: turns, 1-3 replies, 0-3
//!   tool calls with 5-50 KB results, every 50th session large), with its text replaced by
//!   prose of the same length drawn from a Zipf-distributed vocabulary of [`VOCABULARY`] words
//!   (the standard corpus' 62-word salad makes every word match every message, which no real
//!   history does), a thinking block on one reply in three, and five providers and twenty
//!   projects.
//! - Cost: the same items imported through the import service (`nex::import::import`, one
//!   transaction per [`BATCH`] sessions, as the writer does) into a ledger with the index and
//!   the same ledger with the index and its triggers dropped; wall time and file size
//!   (after the closing checkpoint) of both, per run, alternating which goes first; the
//!   importing thread's CPU time of both, and the wall time spent in `search_index::flush`.
//!   `NEX_BENCH_FTS_SQL`: SQL run on the ledger with the index before its import (to measure
//!   an index setting without a new build).
//! - Speed: [`QUERIES`] fixed queries (words across the frequency range, two-word ANDs,
//!   phrases, prefixes, OR/NOT, and filters by provider, project, time and role), each run
//!   through `nex::query::search::search` with `limit` 20 (snippets included) and the rank cap
//!   `nex search` takes (`NEX_SEARCH_RANK_CAP`, else the default) on a read-only connection;
//!   one warm-up pass, then the measured pass: p50, p99, max, and how many queries ranked only
//!   part of their matches.
//! - Real histories (`--claude-dir`, `--codex-dir`): the backfill `aix emit | nex import replay`
//!   (release binaries, two processes) into a ledger with the index and one created without it:
//!   the index's cost to the whole backfill and to a real ledger's size.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::Spread;
use super::corpus::session;
use super::replay::BenchError;
use super::rng::Rng;
use nex::ledger;
use nex::protocol::{ImportRequest, ImportSessionItem};
use nex::query::search::{RoleFilter, SearchFilter};

/// Distinct words of the generated prose.
pub const VOCABULARY: usize = 30_000;
/// Sessions per import transaction.
pub const BATCH: usize = 25;
/// Queries of the speed pass.
pub const QUERIES: usize = 100;
const PROVIDERS: [&str; 5] = ["claude-code", "codex", "cursor", "opencode", "gemini-cli"];

#[derive(Debug, Clone)]
pub struct SearchBench {
    pub seed: u64,
    pub sessions: usize,
    pub runs: usize,
    pub dir: Option<PathBuf>,
    /// Real histories (Claude Code `projects`, Codex `sessions` roots): when given, the
    /// backfill `aix emit | nex import replay` of them is timed too, into a ledger with the index
    /// and one without.
    pub claude_dirs: Vec<PathBuf>,
    pub codex_dirs: Vec<PathBuf>,
    /// Time the queries over the ledger an earlier run left in `dir`, without importing.
    pub queries_only: bool,
}

/// The end-to-end backfill of real histories with and without the index.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillCost {
    pub sessions: u64,
    pub with_index_secs: Vec<f64>,
    pub without_index_secs: Vec<f64>,
    pub ratio: Spread,
    pub ledger_with_index_bytes: u64,
    pub ledger_without_index_bytes: u64,
    pub size_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub sessions: usize,
    pub messages: usize,
    pub tool_calls: usize,
    /// Bytes of message text, thinking and tool results.
    pub text_bytes: u64,
    pub import_with_index_secs: Vec<f64>,
    pub import_without_index_secs: Vec<f64>,
    /// with / without, per run (1.25 = the index adds 25 %).
    pub import_ratio: Spread,
    /// CPU time of the importing thread, with and without the index, and their ratio per run.
    pub import_with_index_cpu_secs: Vec<f64>,
    pub import_without_index_cpu_secs: Vec<f64>,
    pub import_cpu_ratio: Spread,
    /// Wall time of the import with the index spent in `search_index::flush`, per run.
    pub flush_secs: Vec<f64>,
    pub ledger_with_index_bytes: u64,
    pub ledger_without_index_bytes: u64,
    pub size_ratio: f64,
    pub queries: usize,
    /// Queries that found at least one hit.
    pub queries_with_hits: usize,
    /// The rank cap of every query (`None`: every match ranked).
    pub rank_cap: Option<u32>,
    /// Queries that had more matches than the cap, so ranked the most recently imported only.
    pub queries_capped: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU time of the querying thread (user + system), p50 and p99: what a query costs
    /// apart from waiting for a core on a shared machine.
    pub cpu_p50_ms: f64,
    pub cpu_p99_ms: f64,
    /// The slowest queries, for the record.
    pub slowest: Vec<(String, f64)>,
    /// With real histories given.
    pub backfill: Option<BackfillCost>,
}

/// The Zipf vocabulary and a sampler over it.
struct Prose {
    words: Vec<String>,
    /// Cumulative weights, rank order.
    cdf: Vec<f64>,
}

impl Prose {
    fn new(seed: u64) -> Self {
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "pe", "da", "go", "fu", "ri", "shi",
            "xa", "zo", "bel", "tor", "ian", "ex", "ump", "ok", "st", "ar",
        ];
        let mut rng = Rng::new(seed ^ 0x5eed);
        let mut seen = std::collections::HashSet::new();
        let mut words = Vec::with_capacity(VOCABULARY);
        while words.len() < VOCABULARY {
            let n = rng.range(1, 5);
            let w: String = (0..n)
                .map(|_| SYLLABLES[rng.range(0, SYLLABLES.len() as u64) as usize])
                .collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut total = 0.0;
        let cdf = (0..VOCABULARY)
            .map(|r| {
                total += 1.0 / ((r + 1) as f64).powf(1.07);
                total
            })
            .collect();
        Self { words, cdf }
    }

    fn word(&self, rng: &mut Rng) -> &str {
        let total = self.cdf[VOCABULARY - 1];
        let x = (rng.next_u64() as f64 / u64::MAX as f64) * total;
        let rank = self.cdf.partition_point(|&c| c < x).min(VOCABULARY - 1);
        &self.words[rank]
    }

    /// About `bytes` of prose.
    fn text(&self, rng: &mut Rng, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes + 16);
        while out.len() < bytes {
            out.push_str(self.word(rng));
            out.push(if rng.range(0, 14) == 0 { '\n' } else { ' ' });
        }
        out
    }
}

/// The corpus: the standard shape, Zipf prose, providers and projects spread.
fn corpus(seed: u64, sessions: usize, prose: &Prose) -> Vec<ImportSessionItem> {
    (0..sessions)
        .map(|i| {
            let large = i % 50 == 49;
            let mut item = session(seed, i, large.then_some(200));
            let mut rng = Rng::new(seed).fork(1_000_000 + i as u64);
            item.source_provider = PROVIDERS[i % PROVIDERS.len()].into();
            item.session.workspace_path = Some(format!("/work/project-{}", i % 20));
            for (n, m) in item.messages.iter_mut().enumerate() {
                let len = m.content.as_ref().map_or(0, String::len);
                m.content = Some(prose.text(&mut rng, len));
                if m.role == "assistant" && n % 3 == 1 {
                    m.thinking = Some(prose.text(&mut rng, len / 2));
                }
            }
            for c in &mut item.tool_calls {
                let len = c.result_json.as_ref().map_or(0, |v| v.text().len());
                c.result_json = Some(Value::String(prose.text(&mut rng, len)).into());
            }
            item
        })
        .collect()
}

fn text_bytes(items: &[ImportSessionItem]) -> u64 {
    let mut n = 0;
    for item in items {
        for m in &item.messages {
            n += m.content.as_ref().map_or(0, String::len);
            n += m.thinking.as_ref().map_or(0, String::len);
        }
        for c in &item.tool_calls {
            n += c.result_json.as_ref().map_or(0, |v| v.text().len());
        }
    }
    n as u64
}

/// A fresh ledger at `path`, with or without the search index.
fn fresh(path: &Path, with_index: bool) -> Result<rusqlite::Connection, BenchError> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let conn = ledger::open_agents(path)?;
    // An experiment's settings of the index (`NEX_BENCH_FTS_SQL`, for example an FTS5
    // `automerge`), run on the ledger with the index before the import.
    if with_index && let Ok(sql) = std::env::var("NEX_BENCH_FTS_SQL") {
        conn.execute_batch(&sql)?;
    }
    if !with_index {
        // The same file, pragmas and schema, without the index and its triggers.
        conn.execute_batch(
            "DROP TRIGGER messages_fts_delete; DROP TRIGGER messages_fts_update;
             DROP TRIGGER tool_calls_fts_delete; DROP TRIGGER tool_calls_mark_delete;
             DROP TRIGGER tool_calls_fts_update_old; DROP TRIGGER tool_calls_fts_update_new;
             DROP TABLE messages_fts; DROP TABLE tool_calls_fts; DROP VIEW tool_calls_search;
             DROP VIEW messages_search; DROP TABLE search_mark;",
        )?;
    }
    Ok(conn)
}

/// One timed import.
struct Timed {
    secs: f64,
    bytes: u64,
    /// CPU time of the importing thread (user + system).
    cpu_secs: f64,
    /// Wall time in `search_index::flush` (nothing to do without the index).
    flush_secs: f64,
}

/// Seconds to import `items` into a fresh ledger (close and checkpoint included), and its size.
fn time_import(
    path: &Path,
    with_index: bool,
    items: &[ImportSessionItem],
) -> Result<Timed, BenchError> {
    let mut conn = fresh(path, with_index)?;
    let opts = nex::import::ImportOptions::default();
    let mut flush_secs = 0.0;
    let cpu_started = thread_cpu_ms();
    let started = Instant::now();
    for (b, batch) in items.chunks(BATCH).enumerate() {
        let tx = conn.transaction()?;
        for (i, item) in batch.iter().enumerate() {
            let req = ImportRequest {
                source: "aix".into(),
                mode: "backfill".into(),
                idempotency_key: format!("bench:{b}:{i}"),
                items: vec![item.clone()],
                ..Default::default()
            };
            nex::import::import(&tx, &req, &opts).map_err(|e| BenchError::Pipeline {
                code: e.code(),
                message: e.to_string(),
            })?;
        }
        // As nex's writer: the batch's rows are indexed last, before COMMIT.
        let flush_started = Instant::now();
        nex::ledger::search_index::flush(&tx)?;
        flush_secs += flush_started.elapsed().as_secs_f64();
        tx.commit()?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(conn);
    Ok(Timed {
        secs: started.elapsed().as_secs_f64(),
        bytes: std::fs::metadata(path)?.len(),
        cpu_secs: (thread_cpu_ms() - cpu_started) / 1000.0,
        flush_secs,
    })
}

/// The fixed query set, from the vocabulary's ranks (so the same seed gives the same set).
fn queries(prose: &Prose) -> Vec<SearchFilter> {
    let w = |rank: usize| prose.words[rank].clone();
    let plain = |q: String| SearchFilter {
        query: q,
        limit: 20,
        ..SearchFilter::default()
    };
    let mut out = Vec::new();
    // 30 words from the most frequent to the rare.
    for i in 0..30 {
        out.push(plain(w([
            3, 10, 40, 150, 600, 2_000, 6_000, 12_000, 20_000, 28_000,
        ][i % 10]
            + i / 10)));
    }
    // 15 two-word ANDs, 10 ORs, 5 NOTs.
    for i in 0..15 {
        out.push(plain(format!("{} {}", w(50 + i * 37), w(400 + i * 211))));
    }
    for i in 0..10 {
        out.push(plain(format!(
            "{} OR {}",
            w(1_000 + i * 97),
            w(9_000 + i * 503)
        )));
    }
    for i in 0..5 {
        out.push(plain(format!("{} NOT {}", w(200 + i * 13), w(20 + i))));
    }
    // 15 phrases of two or three words (frequent words, so that most exist).
    for i in 0..15 {
        let phrase = if i % 2 == 0 {
            format!("\"{} {}\"", w(i), w(i + 1))
        } else {
            format!("\"{} {} {}\"", w(i), w(2 * i), w(i + 2))
        };
        out.push(plain(phrase));
    }
    // 10 prefixes, as a user types them: a longer word without its last three letters.
    let long: Vec<&String> = prose.words[100..].iter().filter(|w| w.len() >= 8).collect();
    for i in 0..10 {
        let word = long[i * 97 % long.len()];
        out.push(plain(format!("{}*", &word[..word.len() - 3])));
    }
    // 15 with filters: provider, project, time, role.
    let day = 86_400_000;
    for i in 0..15 {
        let mut f = plain(w(30 + i * 71));
        match i % 5 {
            0 => f.provider = Some(PROVIDERS[i % 5].into()),
            1 => f.project = Some(format!("/work/project-{}", i % 20)),
            2 => {
                f.since_ms = Some(1_760_000_000_000 + (i as i64) * day);
                f.until_ms = Some(1_760_000_000_000 + (i as i64 + 3) * day);
            }
            3 => f.role = Some(RoleFilter::User),
            _ => f.role = Some(RoleFilter::Tool),
        }
        out.push(f);
    }
    assert_eq!(out.len(), QUERIES);
    out
}

/// Runs the scenario.
pub fn run(bench: &SearchBench) -> Result<SearchResult, BenchError> {
    let temp;
    let dir = match &bench.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let prose = Prose::new(bench.seed);
    let items = corpus(bench.seed, bench.sessions, &prose);
    let (with_path, without_path) = (dir.join("with.db"), dir.join("without.db"));
    let (mut with_secs, mut without_secs) = (Vec::new(), Vec::new());
    let (mut with_cpu, mut without_cpu, mut flush_secs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut with_bytes, mut without_bytes) = (0, 0);
    let runs = if bench.queries_only {
        0
    } else {
        bench.runs.max(1)
    };
    for run in 0..runs {
        for first in [run % 2 == 0, run % 2 != 0] {
            if first {
                let t = time_import(&with_path, true, &items)?;
                with_secs.push(t.secs);
                with_cpu.push(t.cpu_secs);
                flush_secs.push(t.flush_secs);
                with_bytes = t.bytes;
            } else {
                let t = time_import(&without_path, false, &items)?;
                without_secs.push(t.secs);
                without_cpu.push(t.cpu_secs);
                without_bytes = t.bytes;
            }
        }
        tracing::info!(
            run,
            with = with_secs[run],
            without = without_secs[run],
            with_cpu = with_cpu[run],
            without_cpu = without_cpu[run],
            flush = flush_secs[run],
            "search bench import"
        );
    }
    if bench.queries_only {
        // A ledger of an older build is brought to the current schema first.
        let started = Instant::now();
        drop(ledger::open_agents(&with_path)?);
        tracing::info!(
            secs = started.elapsed().as_secs_f64(),
            "search bench ledger opened"
        );
        with_bytes = std::fs::metadata(&with_path)?.len();
        without_bytes = std::fs::metadata(&without_path).map_or(0, |m| m.len());
    }
    let conn = nex::query::open_existing(&with_path).map_err(|e| BenchError::Pipeline {
        code: e.code(),
        message: e.to_string(),
    })?;
    let rank_cap = nex::query::search::rank_cap_from_env().map_err(|e| BenchError::Pipeline {
        code: e.code(),
        message: e.to_string(),
    })?;
    let mut set = queries(&prose);
    for q in &mut set {
        q.rank_cap = rank_cap;
    }
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let (mut with_hits, mut capped) = (0, 0);
    for pass in 0..2 {
        times.clear();
        cpu.clear();
        (with_hits, capped) = (0, 0);
        for q in &set {
            let cpu_started = thread_cpu_ms();
            let started = Instant::now();
            let hits = nex::query::search::search(&conn, &with_path, q).map_err(|e| {
                BenchError::Pipeline {
                    code: e.code(),
                    message: format!("{}: {e}", q.query),
                }
            })?;
            times.push((q.query.clone(), started.elapsed().as_secs_f64() * 1000.0));
            cpu.push(thread_cpu_ms() - cpu_started);
            with_hits += usize::from(!hits.hits.is_empty());
            capped += usize::from(hits.capped.is_some());
        }
        tracing::debug!(pass, "search bench query pass");
    }
    let mut ms: Vec<f64> = times.iter().map(|t| t.1).collect();
    ms.sort_by(f64::total_cmp);
    let pct_of =
        |v: &[f64], p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    let pct = |p: f64| pct_of(&ms, p);
    cpu.sort_by(f64::total_cmp);
    times.sort_by(|a, b| b.1.total_cmp(&a.1));
    let ratios = super::ratios(&with_secs, &without_secs);
    let cpu_ratios = super::ratios(&with_cpu, &without_cpu);
    Ok(SearchResult {
        sessions: items.len(),
        messages: items.iter().map(|i| i.messages.len()).sum(),
        tool_calls: items.iter().map(|i| i.tool_calls.len()).sum(),
        text_bytes: text_bytes(&items),
        import_ratio: Spread::of_or_nan(&ratios),
        import_with_index_secs: with_secs,
        import_without_index_secs: without_secs,
        import_cpu_ratio: Spread::of_or_nan(&cpu_ratios),
        import_with_index_cpu_secs: with_cpu,
        import_without_index_cpu_secs: without_cpu,
        flush_secs,
        ledger_with_index_bytes: with_bytes,
        ledger_without_index_bytes: without_bytes,
        size_ratio: with_bytes as f64 / without_bytes.max(1) as f64,
        queries: set.len(),
        queries_with_hits: with_hits,
        rank_cap,
        queries_capped: capped,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: ms[ms.len() - 1],
        cpu_p50_ms: pct_of(&cpu, 0.50),
        cpu_p99_ms: pct_of(&cpu, 0.99),
        slowest: times.into_iter().take(5).collect(),
        backfill: if bench.claude_dirs.is_empty() && bench.codex_dirs.is_empty() {
            None
        } else {
            Some(backfill_cost(bench, &dir)?)
        },
    })
}

/// CPU time (user + system) of the calling thread so far, in ms (0 where it cannot be read).
fn thread_cpu_ms() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_THREAD).map_or(0.0, |u| {
        let ms =
            |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1000.0 + t.tv_usec() as f64 / 1000.0;
        ms(u.user_time()) + ms(u.system_time())
    })
}

/// `aix emit | nex import replay` of the real histories into a fresh ledger with the index and
/// one created beforehand without it (alternating which goes first), checkpointed, sized.
fn backfill_cost(bench: &SearchBench, dir: &Path) -> Result<BackfillCost, BenchError> {
    use super::procs::{Binaries, Pair, root_args};
    let bins = Binaries::locate(None)?;
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty)?;
    let mut args: Vec<String> = vec!["emit".into(), "--mode".into(), "backfill".into()];
    args.extend(root_args(&bench.claude_dirs, &bench.codex_dirs, &empty));
    let (mut with_secs, mut without_secs) = (Vec::new(), Vec::new());
    let (mut with_bytes, mut without_bytes, mut sessions) = (0, 0, 0);
    for run in 0..bench.runs.max(1) {
        for with_index in [run % 2 == 0, run % 2 != 0] {
            let path = dir.join(if with_index {
                "real-with.db"
            } else {
                "real-without.db"
            });
            drop(fresh(&path, with_index)?);
            let outcome = Pair::spawn(&bins, &args, &path, false)?.finish()?;
            let conn = rusqlite::Connection::open(&path)?;
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
            drop(conn);
            let bytes = std::fs::metadata(&path)?.len();
            sessions = outcome.report.imported + outcome.report.upserted;
            if with_index {
                with_secs.push(outcome.secs);
                with_bytes = bytes;
            } else {
                without_secs.push(outcome.secs);
                without_bytes = bytes;
            }
        }
    }
    Ok(BackfillCost {
        sessions,
        ratio: Spread::of_or_nan(&super::ratios(&with_secs, &without_secs)),
        with_index_secs: with_secs,
        without_index_secs: without_secs,
        ledger_with_index_bytes: with_bytes,
        ledger_without_index_bytes: without_bytes,
        size_ratio: with_bytes as f64 / without_bytes.max(1) as f64,
    })
}
