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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn stop_wakes_registered_and_late_wakers() {
        let stop = StopSignal::default();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        stop.on_stop(Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(!stop.is_stopped());
        stop.stop();
        assert!(stop.is_stopped());
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        let w = woken.clone();
        stop.on_stop(Box::new(move || {
            w.fetch_add(10, Ordering::SeqCst);
        }));
        assert_eq!(
            woken.load(Ordering::SeqCst),
            11,
            "registered after stop: woken at once"
        );
    }

    #[test]
    fn details_report_lag_of_the_oldest_pending_change() {
        let s = WorkerStatus::default();
        s.watched_files.store(3, Ordering::Relaxed);
        s.pending_files.store(1, Ordering::Relaxed);
        assert_eq!(s.details(1_000)["lagMs"], 0);
        s.oldest_pending_ms.store(900, Ordering::Relaxed);
        let d = s.details(1_000);
        assert_eq!(
            (
                d["watchedFiles"].as_u64(),
                d["pendingFiles"].as_u64(),
                d["lagMs"].as_i64()
            ),
            (Some(3), Some(1), Some(100))
        );
    }
}
