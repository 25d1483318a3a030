//! What the control side needs from a running backfill or tail: a stop signal that also wakes a
//! sleeping tail, and the figures of `health.status`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Asks the work to stop emitting new work, flush and return. Idempotent.
#[derive(Default)]
pub struct StopSignal {
    flag: AtomicBool,
    wakers: Mutex<Vec<Box<dyn Fn() + Send>>>,
}

impl StopSignal {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        for wake in wakers.iter() {
            wake();
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Registers a function called on `stop` (and at once when already stopped), e.g. to wake
    /// a thread blocked on a channel.
    pub fn on_stop(&self, wake: Box<dyn Fn() + Send>) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_stopped() {
            wake();
        }
        wakers.push(wake);
    }
}

/// Live figures of the work, read by `health.status`.
#[derive(Default)]
pub struct WorkerStatus {
    /// Files known (tail: watched; backfill: discovered).
    pub watched_files: AtomicU64,
    /// Files waiting to be read.
    pub pending_files: AtomicU64,
    /// Epoch ms of the oldest change not yet emitted (0: none).
    pub oldest_pending_ms: AtomicI64,
    /// Epoch ms of the last file change seen (0: none).
    pub last_event_ms: AtomicI64,
}

impl WorkerStatus {
    /// The `details` object of `health.status`.
    pub fn details(&self, now_ms: i64) -> serde_json::Value {
        let oldest = self.oldest_pending_ms.load(Ordering::Relaxed);
        let lag = if oldest > 0 {
            (now_ms - oldest).max(0)
        } else {
            0
        };
        serde_json::json!({
            "watchedFiles": self.watched_files.load(Ordering::Relaxed),
            "pendingFiles": self.pending_files.load(Ordering::Relaxed),
            "lagMs": lag,
        })
    }
}
