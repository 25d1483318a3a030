//! The ledger writer: ONE thread that owns the agents.db `rusqlite::Connection` and applies each
//! batch it receives in ONE transaction, then commits, and only then replies with the per-frame
//! results. It is the pipeline's single task boundary and the daemon's single writer of
//! agents.db: every run's sink holds a clone of the [`LedgerHandle`].
//!
//! # Backpressure
//! The handle's channel holds at most `queue` batches; a sink awaiting `submit` holds its
//! batch, so a slow disk stops the pipeline from reading its input.
//!
//! # Contention
//! When another process holds the write lock past the connection's busy timeout, the batch is
//! rolled back and retried with exponential backoff (nothing is lost, nothing is reported)
//! until `busy_max_wait` has passed; then the batch fails with `ledger_busy`.
//!
//! # Shutdown
//! The thread ends when every handle is dropped and the queue is drained; batches already
//! queued are applied first.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::PipelineError;
use super::RejectCode;
use super::apply::apply_batch;
use crate::import::{DecodedUpload, ImportOptions, ItemJson};
use crate::protocol::{ChunkRequest, ChunkResponse, Code, ImportRequest, ImportResponse};

/// Default number of batches queued to the writer (one committing, one waiting).
pub const DEFAULT_QUEUE: usize = 2;

/// Called on the writer thread after a batch is applied and before its COMMIT (tests hold the
/// commit here to prove that nothing is reported or visible before it).
pub type BeforeCommit = Arc<dyn Fn(&BatchInfo) + Send + Sync>;

/// What a [`BeforeCommit`] hook learns about the batch it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    pub run_id: Option<String>,
    pub ops: usize,
}

/// Writer settings.
#[derive(Clone)]
pub struct WriterConfig {
    /// Batches waiting in the channel.
    pub queue: usize,
    /// First backoff after a busy ledger; doubled per retry up to `busy_backoff_max`.
    pub busy_backoff: Duration,
    pub busy_backoff_max: Duration,
    /// Total retry time before a batch fails with `ledger_busy`.
    pub busy_max_wait: Duration,
    pub before_commit: Option<BeforeCommit>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue: DEFAULT_QUEUE,
            busy_backoff: Duration::from_millis(50),
            busy_backoff_max: Duration::from_secs(2),
            busy_max_wait: Duration::from_secs(120),
            before_commit: None,
        }
    }
}

impl std::fmt::Debug for WriterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterConfig")
            .field("queue", &self.queue)
            .field("busy_backoff", &self.busy_backoff)
            .field("busy_backoff_max", &self.busy_backoff_max)
            .field("busy_max_wait", &self.busy_max_wait)
            .field("before_commit", &self.before_commit.is_some())
            .finish()
    }
}

/// One frame's ledger work.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// `request_hash` is `import::request_hash(&request)`, computed by the sink before the
    /// batch is queued so that the writer thread does not spend its time hashing.
    Import {
        request: ImportRequest,
        request_hash: String,
        /// The tool JSON of each item of `request`, computed ahead like the hash and moved out
        /// of the items (`import::ItemJson::take`): the request is written only with it.
        item_json: Vec<ItemJson>,
    },
    /// `decoded`: the upload this part completes, decoded and hashed ahead of the writer
    /// (`stages::prepare`); the writer decodes when it is absent or does not match the parts
    /// it holds (`import::BatchPart::decoded`).
    Chunk {
        request: ChunkRequest,
        /// Unique among the parts of a run (`import::BatchPart::part`).
        part: u64,
        decoded: Option<Box<DecodedUpload>>,
    },
}

/// A batch: applied in one transaction, each op in its own SAVEPOINT.
#[derive(Debug, Clone)]
pub struct WriteBatch {
    pub run_id: Option<String>,
    pub options: Arc<ImportOptions>,
    pub ops: Vec<WriteOp>,
}

/// The committed result of one op.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteResult {
    Import {
        response: ImportResponse,
        cursors_stored: u64,
    },
    Chunk {
        response: ChunkResponse,
        cursors_stored: u64,
    },
    /// A request-level service failure: this op's writes were rolled back to its savepoint.
    Rejected(RejectCode),
}

/// Why a batch was not committed. Nothing of it was reported.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The write lock stayed taken for longer than `busy_max_wait`.
    #[error("ledger stayed busy for {waited_ms} ms")]
    Busy {
        waited_ms: u64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ledger write failed")]
    Write(#[source] rusqlite::Error),
    /// Applying the batch panicked (a bug); the batch was rolled back and the writer lives on.
    #[error("ledger writer panicked while applying a batch")]
    Panicked,
}

impl LedgerError {
    pub fn code(&self) -> Code {
        match self {
            LedgerError::Busy { .. } => Code::LedgerBusy,
            LedgerError::Write(_) => Code::LedgerWriteFailed,
            LedgerError::Panicked => Code::InternalPanic,
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<WriteResult>, LedgerError>>;

struct Command {
    batch: WriteBatch,
    reply: Reply,
}

/// Submits batches to the writer thread. Cheap to clone; the thread ends when all are dropped.
#[derive(Clone, Debug)]
pub struct LedgerHandle {
    tx: mpsc::Sender<Command>,
}

/// The reply of a submitted batch: resolves after COMMIT (or the failure).
pub type Pending = oneshot::Receiver<Result<Vec<WriteResult>, LedgerError>>;

impl LedgerHandle {
    /// Queues `batch`, waiting while the queue is full (backpressure).
    ///
    /// # Errors
    /// `WriterGone` when the writer thread has ended.
    pub async fn submit(&self, batch: WriteBatch) -> Result<Pending, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command { batch, reply })
            .await
            .map_err(|_| PipelineError::WriterGone)?;
        Ok(rx)
    }

    /// Queues `batch` and waits for its commit.
    pub async fn apply(&self, batch: WriteBatch) -> Result<Vec<WriteResult>, PipelineError> {
        let pending = self.submit(batch).await?;
        pending
            .await
            .map_err(|_| PipelineError::WriterGone)?
            .map_err(PipelineError::Ledger)
    }
}

/// The writer thread.
pub struct LedgerWriter {
    handle: LedgerHandle,
    thread: JoinHandle<()>,
}

impl LedgerWriter {
    /// Starts the thread on `conn` (an agents.db connection opened with the house pragmas and
    /// migrated: `ledger::open_agents`).
    ///
    /// # Errors
    /// The OS refused to start a thread, or the connection its writer settings
    /// (`ledger::configure_writer`).
    pub fn spawn(conn: Connection, config: WriterConfig) -> std::io::Result<Self> {
        crate::ledger::configure_writer(&conn).map_err(std::io::Error::other)?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let thread = std::thread::Builder::new()
            .name("nex-ledger-writer".into())
            .spawn(move || run(conn, rx, config))?;
        Ok(Self {
            handle: LedgerHandle { tx },
            thread,
        })
    }

    pub fn handle(&self) -> LedgerHandle {
        self.handle.clone()
    }

    /// Drops this writer's handle and waits (blocking) until the thread has applied every
    /// queued batch and ended. Other handles still alive keep it running until they drop.
    pub fn join(self) {
        drop(self.handle);
        // A panic in the thread already failed its pending batches (their replies dropped).
        let _ = self.thread.join();
    }

    /// [`join`](Self::join) without blocking the async runtime.
    pub async fn shutdown(self) {
        let _ = tokio::task::spawn_blocking(move || self.join()).await;
    }
}

/// Freeing an applied batch (every request's items, every chunk's payload) took ~12 % of the
/// writer thread's time: a helper thread frees them instead, while the writer applies the next
/// batch. At most this many batches wait to be freed; past that the writer frees inline.
const DROP_QUEUE: usize = 2;

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Command>, config: WriterConfig) {
    let (drop_tx, drop_rx) = std::sync::mpsc::sync_channel::<WriteBatch>(DROP_QUEUE);
    let dropper = std::thread::Builder::new()
        .name("nex-ledger-free".into())
        .spawn(move || drop_rx.iter().for_each(drop))
        .ok();
    while let Some(Command { batch, reply }) = rx.blocking_recv() {
        // A panic unwinds through the open `Transaction`, whose drop rolls the batch back; the
        // thread stays up for the other runs of the daemon.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            apply_with_retry(&mut conn, &batch, &config)
        }))
        .unwrap_or(Err(LedgerError::Panicked));
        if let Err(e) = &result {
            tracing::error!(error_code = %e.code(), run_id = batch.run_id.as_deref(), ops = batch.ops.len(), "ledger batch failed");
        }
        // The sink may be gone (its run was aborted); the commit stands either way.
        let _ = reply.send(result);
        if dropper.is_some() {
            // A full queue or a dead helper hands the batch back: it is freed here.
            let _ = drop_tx.try_send(batch);
        }
    }
    drop(drop_tx);
    if let Some(dropper) = dropper {
        let _ = dropper.join();
    }
}

fn apply_with_retry(
    conn: &mut Connection,
    batch: &WriteBatch,
    config: &WriterConfig,
) -> Result<Vec<WriteResult>, LedgerError> {
    let started = Instant::now();
    let mut backoff = config.busy_backoff;
    loop {
        match apply_batch(conn, batch, config.before_commit.as_ref()) {
            Err(LedgerError::Busy { source, .. }) => {
                let waited = started.elapsed();
                if waited >= config.busy_max_wait {
                    return Err(LedgerError::Busy {
                        waited_ms: waited.as_millis() as u64,
                        source,
                    });
                }
                tracing::warn!(error_code = %Code::LedgerBusy, backoff_ms = backoff.as_millis() as u64, "ledger busy, retrying batch");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(config.busy_backoff_max);
            }
            other => return other,
        }
    }
}
