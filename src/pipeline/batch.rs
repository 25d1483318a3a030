//! Size-or-time batching in front of the ledger writer: a batch is cut when it holds
//! `max_ops` entries or `max_bytes` of frames, when `max_wait` has passed since its first entry
//! arrived, or at the end of input (no lost tail batch).
//!
//! # Backpressure
//! The batcher pulls from upstream only while it is filling a batch for a consumer that polls
//! it, so it holds at most one partial batch.

use std::num::NonZeroUsize;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use tokio::time::Instant;

/// When a batch is handed to the ledger writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most entries (frames) in one transaction.
    pub max_ops: NonZeroUsize,
    /// Longest time the first entry of a batch waits for company.
    pub max_wait: Duration,
    /// Most frame bytes in one transaction: with the batches in flight, this bounds the memory
    /// of the sink whatever the frames' sizes (512 frames of a few MiB each would otherwise be
    /// GiBs). A batch always takes at least one entry.
    pub max_bytes: usize,
}

/// Default [`BatchPolicy::max_bytes`].
pub const DEFAULT_MAX_BATCH_BYTES: usize = 16 << 20;

impl Default for BatchPolicy {
    /// 512 ops / 25 ms (ARCHITECTURE.md "The pipeline").
    fn default() -> Self {
        Self {
            max_ops: NonZeroUsize::new(512).expect("512 is not zero"),
            max_wait: Duration::from_millis(25),
            max_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

impl BatchPolicy {
    pub fn new(max_ops: usize, max_wait: Duration) -> Self {
        Self {
            max_ops: NonZeroUsize::new(max_ops).unwrap_or(NonZeroUsize::MIN),
            max_wait,
            max_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }

    /// The same policy with another byte bound.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }
}

/// How many `max_wait`s in all a batch may wait for the rest of a group it holds the start of
/// (see [`batched_with`]).
pub const MAX_HOLD_WAITS: u32 = 4;

/// How often a batch held back by a busy consumer checks again.
pub const BUSY_RECHECK: Duration = Duration::from_millis(2);

type HoldsOpen<T> = Box<dyn FnMut(&T) -> bool + Send>;
type Weigh<T> = Box<dyn Fn(&T) -> usize + Send>;

struct State<T, E> {
    input: BoxStream<'static, Result<T, E>>,
    holds_open: HoldsOpen<T>,
    weigh: Weigh<T>,
    consumer_busy: Box<dyn Fn() -> bool + Send>,
    policy: BatchPolicy,
    /// An error met while filling the previous batch: yielded after that batch.
    error: Option<E>,
    done: bool,
}

/// Groups `input` into batches. An `Err` flushes the batch in hand, is yielded after it, and
/// ends the stream.
pub fn batched<T, E>(
    input: BoxStream<'static, Result<T, E>>,
    policy: BatchPolicy,
) -> BoxStream<'static, Result<Vec<T>, E>>
where
    T: Send + 'static,
    E: Send + 'static,
{
    batched_with(input, policy, |_: &T| false, |_: &T| 0, || false)
}

/// [`batched`], except that a batch whose last entry `holds_open` (the start of a group whose
/// rest is expected right behind it, e.g. a chunk part that is not its upload's last) is not
/// cut when `max_wait` passes: its wait is extended, `max_wait` at a time, up to
/// [`MAX_HOLD_WAITS`] `max_wait`s in all.
///
/// Group commit: while `consumer_busy()` (the consumer has not finished the previous batch
/// yet, so a batch cut now would only wait in its queue), a batch is not cut on time either:
/// it keeps growing, and `consumer_busy` is checked again every [`BUSY_RECHECK`], until the
/// consumer is free or the batch holds `max_ops`. Size cuts and the end of input are
/// unchanged.
///
/// `weigh` gives an entry's bytes: a batch is cut once it holds `max_bytes`, even one held
/// open (the rest of its group then goes in the next batch).
pub fn batched_with<T, E, F, W, B>(
    input: BoxStream<'static, Result<T, E>>,
    policy: BatchPolicy,
    holds_open: F,
    weigh: W,
    consumer_busy: B,
) -> BoxStream<'static, Result<Vec<T>, E>>
where
    T: Send + 'static,
    E: Send + 'static,
    F: FnMut(&T) -> bool + Send + 'static,
    W: Fn(&T) -> usize + Send + 'static,
    B: Fn() -> bool + Send + 'static,
{
    let state = State {
        input,
        holds_open: Box::new(holds_open) as HoldsOpen<T>,
        weigh: Box::new(weigh) as Weigh<T>,
        consumer_busy: Box::new(consumer_busy),
        policy,
        error: None,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if let Some(e) = st.error.take() {
            st.done = true;
            return Some((Err(e), st));
        }
        if st.done {
            return None;
        }
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut deadline: Option<Instant> = None;
        let mut open = false;
        let mut waits = 0u32;
        loop {
            let next = match deadline {
                None => st.input.next().await,
                // `StreamExt::next` is cancel-safe: a timeout loses no item.
                Some(d) => match tokio::time::timeout_at(d, st.input.next()).await {
                    Ok(next) => next,
                    Err(_elapsed) if open && waits + 1 < MAX_HOLD_WAITS => {
                        waits += 1;
                        deadline = Some(d + st.policy.max_wait);
                        continue;
                    }
                    Err(_elapsed) if (st.consumer_busy)() => {
                        deadline = Some(Instant::now() + BUSY_RECHECK);
                        continue;
                    }
                    Err(_elapsed) => break,
                },
            };
            match next {
                None => {
                    st.done = true;
                    break;
                }
                Some(Err(e)) => {
                    st.error = Some(e);
                    break;
                }
                Some(Ok(item)) => {
                    if batch.is_empty() {
                        deadline = Some(Instant::now() + st.policy.max_wait);
                    }
                    open = (st.holds_open)(&item);
                    bytes = bytes.saturating_add((st.weigh)(&item));
                    batch.push(item);
                    if batch.len() >= st.policy.max_ops.get() || bytes >= st.policy.max_bytes {
                        break;
                    }
                }
            }
        }
        if batch.is_empty() {
            match st.error.take() {
                Some(e) => {
                    st.done = true;
                    Some((Err(e), st))
                }
                None => None,
            }
        } else {
            Some((Ok(batch), st))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok_stream(items: Vec<u32>) -> BoxStream<'static, Result<u32, &'static str>> {
        futures::stream::iter(items.into_iter().map(Ok)).boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_on_size_and_flushes_the_tail() {
        let out: Vec<_> = batched(
            ok_stream((0..7).collect()),
            BatchPolicy::new(3, Duration::from_secs(1)),
        )
        .collect()
        .await;
        let out: Vec<Vec<u32>> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(out, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_on_bytes_even_a_batch_held_open() {
        // Entries weigh their value; every entry asks to hold the batch open.
        let policy = BatchPolicy::new(100, Duration::from_secs(1)).with_max_bytes(10);
        let out: Vec<_> = batched_with(
            ok_stream(vec![4, 4, 4, 20, 1, 1]),
            policy,
            |_: &u32| true,
            |x: &u32| *x as usize,
            || false,
        )
        .collect()
        .await;
        let out: Vec<Vec<u32>> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(out, vec![vec![4, 4, 4], vec![20], vec![1, 1]]);
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_on_time() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<u32, &'static str>>(8);
        let input =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
                .boxed();
        let mut batches = batched(input, BatchPolicy::new(100, Duration::from_millis(25)));
        tx.send(Ok(1)).await.unwrap();
        tx.send(Ok(2)).await.unwrap();
        // Nothing else arrives: the batch is cut when 25 ms have passed.
        let first = batches.next().await.unwrap().unwrap();
        assert_eq!(first, vec![1, 2]);
        tx.send(Ok(3)).await.unwrap();
        drop(tx);
        assert_eq!(batches.next().await.unwrap().unwrap(), vec![3]);
        assert!(batches.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_group_extends_the_wait_up_to_the_bound() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<u32, &'static str>>(8);
        let input =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
                .boxed();
        // Odd numbers open a group.
        let policy = BatchPolicy::new(100, Duration::from_millis(25));
        let mut batches = batched_with(input, policy, |x: &u32| x % 2 == 1, |_: &u32| 0, || false);
        let started = Instant::now();
        tx.send(Ok(1)).await.unwrap();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            tx.send(Ok(2)).await.unwrap();
            tx.send(Ok(3)).await.unwrap();
            tx
        });
        // 1 holds the batch past 25 ms; 2 closes its group but 3 opens one: cut at the bound.
        assert_eq!(batches.next().await.unwrap().unwrap(), vec![1, 2, 3]);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(25 * MAX_HOLD_WAITS as u64)
        );
        let tx = sender.await.unwrap();
        tx.send(Ok(5)).await.unwrap();
        let started = Instant::now();
        assert_eq!(batches.next().await.unwrap().unwrap(), vec![5]);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(25 * MAX_HOLD_WAITS as u64)
        );
        tx.send(Ok(4)).await.unwrap();
        let started = Instant::now();
        assert_eq!(batches.next().await.unwrap().unwrap(), vec![4]);
        assert_eq!(started.elapsed(), Duration::from_millis(25));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_consumer_lets_the_batch_grow_until_it_is_free() {
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<u32, &'static str>>(8);
        let input =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
                .boxed();
        let policy = BatchPolicy::new(3, Duration::from_millis(25));
        let flag = busy.clone();
        let mut batches = batched_with(
            input,
            policy,
            |_: &u32| false,
            |_: &u32| 0,
            move || flag.load(std::sync::atomic::Ordering::SeqCst),
        );
        let started = Instant::now();
        tx.send(Ok(1)).await.unwrap();
        let control = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(Ok(2)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            busy.store(false, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            for x in [3, 4, 5, 6] {
                tx.send(Ok(x)).await.unwrap();
            }
        });
        // Held past 25 ms while busy; cut within a recheck of the consumer becoming free.
        assert_eq!(batches.next().await.unwrap().unwrap(), vec![1, 2]);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200));
        assert!(waited <= Duration::from_millis(200) + BUSY_RECHECK);
        // A busy consumer never stops a size cut.
        assert_eq!(batches.next().await.unwrap().unwrap(), vec![3, 4, 5]);
        control.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn error_follows_the_batch_in_hand() {
        let input = futures::stream::iter(vec![Ok(1), Ok(2), Err("boom"), Ok(3)]).boxed();
        let out: Vec<_> = batched(input, BatchPolicy::new(10, Duration::from_secs(1)))
            .collect()
            .await;
        assert_eq!(out, vec![Ok(vec![1, 2]), Err("boom")]);
    }

    proptest! {
        #[test]
        fn batches_are_bounded_and_lossless(items in proptest::collection::vec(any::<u32>(), 0..200), max in 1usize..20) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            let out: Vec<Vec<u32>> = rt.block_on(async {
                batched(ok_stream(items.clone()), BatchPolicy::new(max, Duration::from_millis(5)))
                    .map(Result::unwrap)
                    .collect()
                    .await
            });
            prop_assert!(out.iter().all(|b| !b.is_empty() && b.len() <= max));
            let flat: Vec<u32> = out.into_iter().flatten().collect();
            prop_assert_eq!(flat, items);
        }
    }
}
