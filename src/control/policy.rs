//! The restart policy of the adapter system (baseline.md §5): exponential backoff with a cap,
//! a counter reset after a long healthy stretch, and an `error` state after too many restarts.
//! Pure: time is passed in, so the policy is tested without a clock.

use std::time::Duration;

use tokio::time::Instant;

/// Backoff parameters. Defaults: base 1 s, ×2, cap 5 min, reset after 10 min healthy, at most 5
/// restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub base: Duration,
    pub multiplier: u32,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            base: Duration::from_secs(1),
            multiplier: 2,
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl RestartPolicy {
    /// Retries of a backfill job's run: 3 retries, same backoff.
    pub fn job_default() -> Self {
        RestartPolicy {
            max_restarts: 3,
            ..RestartPolicy::default()
        }
    }

    /// Wait before restart number `n` (1-based): `base × multiplier^(n-1)`, capped at `max`
    /// (1 s, 2 s, 4 s, … 5 min).
    pub fn delay(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(31);
        let factor = u64::from(self.multiplier.max(1)).saturating_pow(exp);
        let ms = u64::try_from(self.base.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(factor);
        Duration::from_millis(ms).min(self.max)
    }
}

/// What to do after a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after this wait; `restart` is the 1-based restart number.
    After { restart: u32, delay: Duration },
    /// Too many restarts: stay down until an operator restarts.
    GiveUp,
}

/// Restart bookkeeping of one supervised thing (the tail, or one job).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartTracker {
    /// Restarts since the last reset; shown in health.
    pub restarts: u32,
    /// Since when the current run has been continuously healthy.
    healthy_since: Option<Instant>,
}

impl RestartTracker {
    /// Records the current run's health: `true` starts (or continues) a healthy stretch, `false`
    /// ends it. A stretch of `reset_after` resets the counter.
    pub fn observe_health(&mut self, policy: &RestartPolicy, healthy: bool, now: Instant) {
        if !healthy {
            self.healthy_since = None;
            return;
        }
        let since = *self.healthy_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= policy.reset_after {
            self.restarts = 0;
        }
    }

    /// Decides after a failure at `now`, counting the restart.
    pub fn on_failure(&mut self, policy: &RestartPolicy, now: Instant) -> RestartDecision {
        self.observe_health(policy, self.healthy_since.is_some(), now);
        self.healthy_since = None;
        if self.restarts >= policy.max_restarts {
            return RestartDecision::GiveUp;
        }
        self.restarts += 1;
        RestartDecision::After {
            restart: self.restarts,
            delay: policy.delay(self.restarts),
        }
    }

    /// Operator restart (`nex import restart`): forget the count.
    pub fn reset(&mut self) {
        *self = RestartTracker::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RestartPolicy::default();
        let got: Vec<u64> = (1..=12).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(p.delay(u32::MAX), p.max);
    }

    #[test]
    fn gives_up_after_max_restarts() {
        let p = RestartPolicy::default();
        let mut t = RestartTracker::default();
        let now = Instant::now();
        for n in 1..=5 {
            assert_eq!(
                t.on_failure(&p, now),
                RestartDecision::After {
                    restart: n,
                    delay: p.delay(n)
                }
            );
        }
        assert_eq!(t.on_failure(&p, now), RestartDecision::GiveUp);
        t.reset();
        assert!(matches!(
            t.on_failure(&p, now),
            RestartDecision::After { restart: 1, .. }
        ));
    }

    #[test]
    fn ten_healthy_minutes_reset_the_counter() {
        let p = RestartPolicy::default();
        let mut t = RestartTracker::default();
        let t0 = Instant::now();
        t.on_failure(&p, t0);
        t.on_failure(&p, t0);
        assert_eq!(t.restarts, 2);
        t.observe_health(&p, true, t0);
        t.observe_health(&p, true, t0 + Duration::from_secs(599));
        assert_eq!(t.restarts, 2);
        // A degraded probe ends the stretch: the clock restarts.
        t.observe_health(&p, false, t0 + Duration::from_secs(599));
        t.observe_health(&p, true, t0 + Duration::from_secs(600));
        assert_eq!(t.restarts, 2);
        t.observe_health(&p, true, t0 + Duration::from_secs(1200));
        assert_eq!(t.restarts, 0);
        assert!(matches!(
            t.on_failure(&p, t0 + Duration::from_secs(1201)),
            RestartDecision::After { restart: 1, .. }
        ));
    }
}
