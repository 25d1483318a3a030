//! Size-or-time batching in front of the ledger writer: a batch is cut when it holds
//! `max_ops` entries, when `max_wait` has passed since its first entry arrived, or at the end of
//! input (no lost tail batch).
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
}

impl Default for BatchPolicy {
    /// 512 ops / 25 ms (ARCHITECTURE.md "The pipeline").
    fn default() -> Self {
        Self {
            max_ops: NonZeroUsize::new(512).expect("512 is not zero"),
            max_wait: Duration::from_millis(25),
        }
    }
}

impl BatchPolicy {
    pub fn new(max_ops: usize, max_wait: Duration) -> Self {
        Self {
            max_ops: NonZeroUsize::new(max_ops).unwrap_or(NonZeroUsize::MIN),
            max_wait,
        }
    }
}

struct State<T, E> {
    input: BoxStream<'static, Result<T, E>>,
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
    let state = State {
        input,
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
        let mut deadline: Option<Instant> = None;
        loop {
            let next = match deadline {
                None => st.input.next().await,
                // `StreamExt::next` is cancel-safe: a timeout loses no item.
                Some(d) => match tokio::time::timeout_at(d, st.input.next()).await {
                    Ok(next) => next,
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
                    batch.push(item);
                    if batch.len() >= st.policy.max_ops.get() {
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
