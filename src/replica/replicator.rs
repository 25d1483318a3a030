//! The replicator: reads the ledger's changes after the machine's watermark and applies them to
//! the replica, batch after batch, until the replica is current; then polls the change log.
//!
//! # Never in the import's way
//! It owns a read-only ledger connection (WAL: no lock the writer waits for) and its own
//! PostgreSQL connection; the import never waits for it. When PostgreSQL is down or slow, the
//! change log keeps growing and the lag with it; the replicator reconnects with a backoff
//! (0.2 s doubling to 10 s) and catches up from the watermark stored in PostgreSQL.
//!
//! # Delivery
//! At least once: a batch whose transaction did not commit (connection lost, process killed)
//! is read again from the stored watermark; replaying one is harmless (see `apply`). When the
//! log no longer holds the changes after the watermark (pruned without a replica, or the
//! replica rebuilt), the whole ledger is sent again ([`apply::Resend`]).
//!
//! # Pruning
//! Once the replica has committed a watermark, the changes before it are deleted from the
//! ledger's log (`changes::LogPruner`): when the replicator is current, and every
//! [`changes::PRUNE_CHUNK`] changes while it catches up. The log holds what the replica lacks,
//! never more (plus one change).
//!
//! # Waking
//! A current replicator waits for a commit of the ledger: [`CommitWatch`] sees the writes to the
//! ledger's write-ahead log (every commit writes it), so a change is read within milliseconds
//! of its commit rather than at the next poll; the poll stays as a backstop (a write seen a
//! moment before its commit is visible finds nothing, and the next write or poll picks it up).
//!
//! # Shutdown
//! Cancelling the token ends the loop at its next wait, or drops the batch in flight (its
//! transaction rolls back; the next start sends it again).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::apply::{self, Applied, BeforeWatermark};
use super::changes::{Batch, ChangeReader, Limits};
use super::error::ReplicaError;
use super::pg;
use super::settings::ReplicaSettings;
use super::state::StateFile;
use super::tables::TableShape;

/// How often a current replicator looks for new changes when nothing woke it (see
/// [`CommitWatch`]; without one, it is the only way to notice a commit).
pub const DEFAULT_POLL: Duration = Duration::from_millis(200);
/// The poll when a [`CommitWatch`] wakes the replicator: only a backstop.
pub const WATCHED_POLL: Duration = Duration::from_secs(1);
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Fault tests: a directory where the replicator, before moving the watermark of its first
/// non-empty batch, writes `paused` (its backend pid) and waits until `resume` exists.
pub const PAUSE_ENV: &str = "NEX_REPLICA_PAUSE_BEFORE_WATERMARK";

/// One ledger replicating into one replica.
#[derive(Debug, Clone)]
pub struct Replicator {
    pub settings: ReplicaSettings,
    pub ledger: PathBuf,
    pub state: StateFile,
    pub limits: Limits,
    pub poll: Duration,
}

/// What `sync` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub batches: u64,
    pub changes: u64,
    /// Rows upserted plus rows deleted (a key changed twice in a batch counts once).
    pub rows: u64,
    /// The machine's watermark at the end.
    pub watermark: i64,
    /// Whole-ledger resends (the log lacked changes the replica never received).
    pub resends: u64,
    #[serde(rename = "durationMs")]
    pub duration_ms: u64,
}

/// A live connection with the machine's watermark as last committed by us.
struct Link {
    client: Client,
    watermark: i64,
}

enum Step {
    /// Nothing after the watermark.
    Current,
    Applied {
        changes: u64,
        rows: u64,
    },
    /// Another replicator moved the watermark.
    Moved,
    /// The whole ledger was sent again.
    Resent {
        rows: u64,
    },
}

impl Replicator {
    pub fn new(settings: ReplicaSettings, ledger: PathBuf, state: StateFile) -> Replicator {
        Replicator {
            settings,
            ledger,
            state,
            limits: Limits::default(),
            poll: DEFAULT_POLL,
        }
    }

    /// Catches the replica up with every change committed before the call, then returns.
    ///
    /// Errors: the first error (unreachable server, unreadable ledger, …); what was committed
    /// before it stays committed.
    pub async fn sync(&self) -> Result<SyncReport, ReplicaError> {
        let started = std::time::Instant::now();
        let result = self.sync_inner().await;
        let now = crate::import::system_now_ms();
        match &result {
            Ok(_) => self.state.ok(now),
            Err(e) => self.state.error(e, now),
        }
        result.map(|mut r| {
            r.duration_ms = started.elapsed().as_millis() as u64;
            r
        })
    }

    async fn sync_inner(&self) -> Result<SyncReport, ReplicaError> {
        let reader = open_reader(self.ledger.clone()).await?;
        let head = reader.call(|r| r.head()).await?;
        let mut link = self.connect(&reader).await?;
        let mut report = SyncReport::default();
        while link.watermark < head {
            match self.step(&mut link, &reader).await? {
                Step::Current => break,
                Step::Applied { changes, rows } => {
                    report.batches += 1;
                    report.changes += changes;
                    report.rows += rows;
                }
                Step::Resent { rows } => {
                    report.resends += 1;
                    report.rows += rows;
                }
                Step::Moved => {}
            }
        }
        report.watermark = link.watermark;
        let acknowledged = link.watermark;
        reader.call(move |r| r.prune(acknowledged)).await?;
        Ok(report)
    }

    /// Replicates until `cancel`; errors are recorded and retried, never returned.
    pub async fn run(self, cancel: CancellationToken) {
        let mut reader: Option<Reader> = None;
        let mut link: Option<Link> = None;
        let mut backoff = BACKOFF_FIRST;
        let mut last_ok_written = 0i64;
        let mut failing = false;
        // The watermark the log was last pruned to.
        let mut pruned = 0i64;
        let watch = match CommitWatch::start(&self.ledger) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the ledger for commits: polling");
                None
            }
        };
        tracing::info!(machine = %self.settings.machine, replica = %self.settings.url.host(), "replicator started");
        while !cancel.is_cancelled() {
            let result = tokio::select! {
                _ = cancel.cancelled() => break,
                r = self.turn(&mut reader, &mut link) => r,
            };
            let now = crate::import::system_now_ms();
            match result {
                Ok(current) => {
                    backoff = BACKOFF_FIRST;
                    if let (Some(r), Some(l)) = (&reader, &link)
                        && l.watermark > pruned
                        && (current || l.watermark - pruned >= super::changes::PRUNE_CHUNK)
                    {
                        let acknowledged = l.watermark;
                        match r.call(move |r| r.prune(acknowledged)).await {
                            Ok(_) => pruned = acknowledged,
                            Err(e) => {
                                tracing::warn!(error_code = %e.code(), "pruning the change log failed: {e}")
                            }
                        }
                    }
                    if failing || now - last_ok_written >= 1_000 {
                        self.state.ok(now);
                        last_ok_written = now;
                        if failing {
                            tracing::info!("replica reachable again");
                        }
                        failing = false;
                    }
                    if current {
                        let poll = if watch.is_some() {
                            WATCHED_POLL
                        } else {
                            self.poll
                        };
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(poll) => {}
                            _ = woken(&watch) => {}
                        }
                    }
                }
                Err(e) => {
                    // Logged where handled, once per kind of failure in a row.
                    if !failing {
                        tracing::warn!(error_code = %e.code(), "replication failed: {e}");
                    }
                    failing = true;
                    self.state.error(&e, now);
                    link = None;
                    if matches!(e, ReplicaError::Read(_)) {
                        reader = None;
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        tracing::info!("replicator stopped");
    }

    /// One step of the loop: (re)open what is missing, send one batch. `Ok(true)`: current.
    async fn turn(
        &self,
        reader: &mut Option<Reader>,
        link: &mut Option<Link>,
    ) -> Result<bool, ReplicaError> {
        if reader.is_none() {
            *reader = Some(open_reader(self.ledger.clone()).await?);
        }
        let r = reader.as_ref().expect("opened above");
        if link.is_none() {
            *link = Some(self.connect(r).await?);
        }
        let l = link.as_mut().expect("connected above");
        Ok(matches!(self.step(l, r).await?, Step::Current))
    }

    async fn connect(&self, reader: &Reader) -> Result<Link, ReplicaError> {
        let url = &self.settings.url;
        let mut client = pg::connect(url).await?;
        pg::ensure_schema(&mut client, url, &reader.shapes).await?;
        let writer = apply::Writer {
            machine: &self.settings.machine,
            ledger_id: &reader.ledger_id,
        };
        let watermark = apply::watermark_of(&client, url, writer).await?;
        Ok(Link { client, watermark })
    }

    async fn step(&self, link: &mut Link, reader: &Reader) -> Result<Step, ReplicaError> {
        let from = link.watermark;
        let limits = self.limits;
        let batch: Batch = reader.call(move |r| r.read(from, limits)).await?;
        if batch.gap {
            return self.resend(link, reader).await;
        }
        if batch.is_empty() {
            return Ok(Step::Current);
        }
        let pause = pause_hook();
        let hook: Option<BeforeWatermark<'_>> = pause.as_ref().map(|h| h as _);
        let applied = apply::apply(
            &mut link.client,
            &self.settings.url,
            apply::Writer {
                machine: &self.settings.machine,
                ledger_id: &reader.ledger_id,
            },
            &reader.shapes,
            &batch,
            hook,
        )
        .await?;
        match applied {
            Applied::Committed => {
                link.watermark = batch.to;
                tracing::debug!(
                    from = batch.from,
                    to = batch.to,
                    rows = batch.rows(),
                    "replicated"
                );
                Ok(Step::Applied {
                    changes: batch.changes,
                    rows: batch.rows(),
                })
            }
            Applied::Moved { watermark } => {
                link.watermark = watermark;
                Ok(Step::Moved)
            }
        }
    }
}

impl Replicator {
    /// Sends the whole ledger again ([`apply::Resend`]), up to the log's head as it is now.
    async fn resend(&self, link: &mut Link, reader: &Reader) -> Result<Step, ReplicaError> {
        let head = reader.call(|r| r.head()).await?;
        let url = &self.settings.url;
        let writer = apply::Writer {
            machine: &self.settings.machine,
            ledger_id: &reader.ledger_id,
        };
        tracing::info!(
            watermark = link.watermark,
            head,
            "the change log lacks changes the replica never received: sending the whole ledger"
        );
        let Some(resend) =
            apply::Resend::begin(&mut link.client, url, writer, link.watermark).await?
        else {
            let watermark = apply::watermark_of(&link.client, url, writer).await?;
            link.watermark = watermark;
            return Ok(Step::Moved);
        };
        let chunk = self.limits.max_changes;
        let mut rows = 0u64;
        for (index, shape) in reader.shapes.iter().enumerate() {
            let width = shape.key_columns().len();
            let mut keys = Vec::new();
            let mut after = 0i64;
            loop {
                let (part, last) = reader
                    .call(move |r| r.table_rows(index, after, chunk))
                    .await?;
                if part.is_empty() {
                    break;
                }
                keys.extend(part.iter().map(|row| row[..width].to_vec()));
                resend.rows(shape, &part).await?;
                rows += part.len() as u64;
                after = last;
            }
            rows += resend.sweep(shape, &keys).await?;
        }
        resend.commit(head).await?;
        link.watermark = head;
        Ok(Step::Resent { rows })
    }
}

/// Wakes the replicator when the ledger's write-ahead log (`<ledger>-wal`) is written: a file
/// watch on the ledger's directory, its events for that file folded into one permit.
pub struct CommitWatch {
    wake: Arc<tokio::sync::Notify>,
    /// Watching while it lives.
    _watcher: notify::RecommendedWatcher,
}

impl CommitWatch {
    /// Errors: the watch cannot be set up (no such directory, no inotify instance left).
    pub fn start(ledger: &std::path::Path) -> notify::Result<CommitWatch> {
        use notify::Watcher;
        let wake = Arc::new(tokio::sync::Notify::new());
        let mut wal = ledger.file_name().unwrap_or_default().to_owned();
        wal.push("-wal");
        let dir = ledger
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        let notify = wake.clone();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res
                    && matches!(
                        ev.kind,
                        notify::EventKind::Modify(_) | notify::EventKind::Create(_)
                    )
                    && ev
                        .paths
                        .iter()
                        .any(|p| p.file_name() == Some(wal.as_os_str()))
                {
                    notify.notify_one();
                }
            })?;
        watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        Ok(CommitWatch {
            wake,
            _watcher: watcher,
        })
    }
}

/// A write to the log seen (never, without a watch); a moment later, so that the commit the
/// write belongs to is visible.
async fn woken(watch: &Option<CommitWatch>) {
    match watch {
        Some(w) => {
            w.wake.notified().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None => std::future::pending().await,
    }
}

/// How often a daemon without a replica empties the change log.
pub const PRUNE_UNREPLICATED_EVERY: Duration = Duration::from_secs(60);

/// The daemon without a replica: keeps the change log empty (but its last change), now and
/// every `every`, until `cancel`. A replica configured later receives the whole ledger by a
/// resend. Failures are logged and retried at the next round.
pub async fn prune_unreplicated(ledger: PathBuf, every: Duration, cancel: CancellationToken) {
    loop {
        let path = ledger.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            if !path.exists() {
                return Ok(0);
            }
            let has_log = ChangeReader::open(&path).is_ok();
            if !has_log {
                return Ok(0);
            }
            super::changes::LogPruner::open(&path)?.prune_all()
        })
        .await;
        match pruned {
            Ok(Ok(n)) if n > 0 => tracing::debug!(deleted = n, "change log pruned (no replica)"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error_code = %e.code(), "pruning the change log failed: {e}")
            }
            Err(_) => tracing::warn!("the change log pruner thread failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// The ledger reader, used from blocking threads (rusqlite never runs on the async workers).
struct Reader {
    inner: Arc<Mutex<ChangeReader>>,
    shapes: Vec<TableShape>,
    ledger_id: String,
}

impl Reader {
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ChangeReader) -> Result<T, ReplicaError> + Send + 'static,
    ) -> Result<T, ReplicaError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while reading poisons nothing we rely on: the next read starts afresh.
            let mut r = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut r)
        })
        .await
        .map_err(|_| ReplicaError::Read("the ledger reader thread failed".into()))?
    }
}

/// Opens the reader on a blocking thread.
async fn open_reader(ledger: PathBuf) -> Result<Reader, ReplicaError> {
    let reader = tokio::task::spawn_blocking(move || ChangeReader::open(&ledger))
        .await
        .map_err(|_| ReplicaError::Read("the ledger reader thread failed".into()))??;
    Ok(Reader {
        shapes: reader.shapes().to_vec(),
        ledger_id: reader.ledger_id().to_owned(),
        inner: Arc::new(Mutex::new(reader)),
    })
}

/// The fault tests' pause (see [`PAUSE_ENV`]), armed once per process.
fn pause_hook() -> Option<impl Fn(i32) -> futures::future::BoxFuture<'static, ()> + Sync> {
    static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    let dir = std::env::var_os(PAUSE_ENV).map(PathBuf::from)?;
    if !ARMED.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    Some(move |pid: i32| -> futures::future::BoxFuture<'static, ()> {
        let dir = dir.clone();
        Box::pin(async move {
            let _ = std::fs::write(dir.join("paused"), pid.to_string());
            while !dir.join("resume").exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_commit_to_the_ledger_wakes_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("agents.db");
        let conn = rusqlite::Connection::open(&ledger).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute("CREATE TABLE t (x)", []).unwrap();
        let watch = Some(CommitWatch::start(&ledger).unwrap());
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        tokio::time::timeout(Duration::from_secs(5), woken(&watch))
            .await
            .expect("a commit wakes the watch");
    }
}
