//! [`PipelineBuilder`]: composes stages into one stream, and is the only place a stage is
//! wrapped. Every stage (core or inserted) gets a `stage{stage}` tracing span and in/out/reject
//! counters, so stage code holds no plumbing.
//!
//! # Order
//! `.stage(a).stage(b)`: items meet `a` first. The item type changes at every stage, so the
//! seams are typed: a stage whose input type does not match the seam does not compile.
//!
//! ```
//! use nex::pipeline::PipelineBuilder;
//! use nex::stages::{assemble::ChunkAssembler, decode::Decoder, Line};
//! // Decoded frames flow into the assembler: this seam type-checks.
//! let builder = PipelineBuilder::<Line>::from_items(Vec::new())
//!     .stage(Decoder::new(None))
//!     .stage(ChunkAssembler::new());
//! ```
//!
//! ```compile_fail
//! use nex::pipeline::PipelineBuilder;
//! use nex::stages::{decode::Decoder, telemetry::TelemetryStage, Line};
//! // The telemetry stage observes frame outcomes (after the sink); after the decoder the seam
//! // carries decoded frames, so this is refused by the compiler.
//! let builder = PipelineBuilder::<Line>::from_items(Vec::new())
//!     .stage(Decoder::new(None))
//!     .stage(TelemetryStage::new().0);
//! ```

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde::Serialize;
use tracing::Span;

use super::stage::{Emit, Stage, StreamStage};
use super::{Flow, Flowing, PipelineError};

/// Live counters of one stage. Readable while the pipeline runs (tests assert backpressure
/// bounds on them) and copied into the run report at the end.
#[derive(Debug)]
pub struct StageCounters {
    name: &'static str,
    items_in: AtomicU64,
    items_out: AtomicU64,
    rejected: AtomicU64,
}

/// A copy of one stage's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageSnapshot {
    pub stage: &'static str,
    pub items_in: u64,
    pub items_out: u64,
    pub rejected: u64,
}

impl StageCounters {
    fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn items_in(&self) -> u64 {
        self.items_in.load(Ordering::Relaxed)
    }

    pub fn items_out(&self) -> u64 {
        self.items_out.load(Ordering::Relaxed)
    }

    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> StageSnapshot {
        StageSnapshot {
            stage: self.name,
            items_in: self.items_in(),
            items_out: self.items_out(),
            rejected: self.rejected(),
        }
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A pipeline under construction whose current seam carries `T`.
pub struct PipelineBuilder<T> {
    flow: Flow<T>,
    counters: Vec<Arc<StageCounters>>,
    parent: Span,
}

/// A built pipeline: the output stream and the counters of every stage, in order.
pub struct Pipeline<T> {
    pub flow: Flow<T>,
    pub counters: Vec<Arc<StageCounters>>,
}

impl<T: Send + 'static> PipelineBuilder<T> {
    /// Starts from a source stream, counted under `name` (`out` = items it produced).
    pub fn source(name: &'static str, flow: Flow<T>) -> Self {
        let counters = StageCounters::new(name);
        let parent = Span::current();
        let span = tracing::info_span!(parent: &parent, "stage", stage = name);
        let flow = Counted {
            inner: flow,
            counters: counters.clone(),
            span,
        }
        .boxed();
        Self {
            flow,
            counters: vec![counters],
            parent,
        }
    }

    /// Starts from in-memory items (tests, mid-pipeline seams).
    pub fn from_items(items: Vec<T>) -> Self {
        let flow = futures::stream::iter(items.into_iter().map(|i| Ok(Flowing::Item(i)))).boxed();
        Self::source("items", flow)
    }

    /// Appends a synchronous stage: its items meet it after every stage already added.
    pub fn stage<U, S>(self, stage: S) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        S: Stage<T, U>,
    {
        let counters = StageCounters::new(stage.name());
        let span = tracing::info_span!(parent: &self.parent, "stage", stage = stage.name());
        let mut all = self.counters;
        all.push(counters.clone());
        let flow = Wrapped {
            input: self.flow,
            stage: Box::new(stage),
            pending: VecDeque::new(),
            state: WrapState::Running,
            counters,
            span,
        }
        .boxed();
        PipelineBuilder {
            flow,
            counters: all,
            parent: self.parent,
        }
    }

    /// Appends `stage` if configured (tower's `option_layer`); `None` leaves the seam as is.
    pub fn option_stage<S>(self, stage: Option<S>) -> Self
    where
        S: Stage<T, T>,
    {
        match stage {
            Some(s) => self.stage(s),
            None => self,
        }
    }

    /// Appends every tap in order (config-driven insertion of `T -> T` stages).
    pub fn taps(self, taps: Vec<Box<dyn Stage<T, T>>>) -> Self
    where
        T: 'static,
    {
        taps.into_iter().fold(self, |b, tap| b.stage(tap))
    }

    /// Appends a stream stage (async, batching, task boundary), counted like any other.
    pub fn stream_stage<U, S>(self, stage: S) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        S: StreamStage<T, U>,
    {
        let name = stage.name();
        let counters = StageCounters::new(name);
        let span = tracing::info_span!(parent: &self.parent, "stage", stage = name);
        let mut all = self.counters;
        all.push(counters.clone());
        let input = CountIn {
            inner: self.flow,
            counters: counters.clone(),
        }
        .boxed();
        let flow = Counted {
            inner: Box::new(stage).apply(input),
            counters,
            span,
        }
        .boxed();
        PipelineBuilder {
            flow,
            counters: all,
            parent: self.parent,
        }
    }

    pub fn counters(&self) -> &[Arc<StageCounters>] {
        &self.counters
    }

    pub fn build(self) -> Pipeline<T> {
        Pipeline {
            flow: self.flow,
            counters: self.counters,
        }
    }
}

enum WrapState {
    Running,
    /// Input ended or a stage asked to stop: `finish` has run, only `pending` remains.
    Finished,
    /// A fatal error was yielded: nothing more.
    Failed,
}

/// A [`Stage`] turned into a stream: pulls one input only when its output buffer is empty.
struct Wrapped<In, Out> {
    input: Flow<In>,
    stage: Box<dyn Stage<In, Out>>,
    pending: VecDeque<Result<Flowing<Out>, PipelineError>>,
    state: WrapState,
    counters: Arc<StageCounters>,
    span: Span,
}

// No field is ever pinned in place (the input is boxed, outputs are moved out of the queue).
impl<In, Out> Unpin for Wrapped<In, Out> {}

impl<In: 'static, Out: 'static> Wrapped<In, Out> {
    fn drain(&mut self, emit: &mut Emit<Out>) {
        let (rejects, items) = emit.take();
        for r in &rejects {
            tracing::debug!(parent: &self.span, error_code = %r.code, seq = r.meta.seq, "frame rejected");
        }
        StageCounters::add(&self.counters.rejected, rejects.len());
        StageCounters::add(&self.counters.items_out, items.len());
        self.pending
            .extend(rejects.into_iter().map(|r| Ok(Flowing::Reject(r))));
        self.pending
            .extend(items.into_iter().map(|i| Ok(Flowing::Item(i))));
    }

    fn finish(&mut self) {
        let _enter = self.span.clone().entered();
        let mut emit = Emit::new();
        let result = self.stage.finish(&mut emit);
        self.drain(&mut emit);
        match result {
            Ok(()) => self.state = WrapState::Finished,
            Err(e) => {
                self.pending.push_back(Err(e));
                self.state = WrapState::Failed;
            }
        }
    }
}

impl<In: 'static, Out: 'static> Stream for Wrapped<In, Out> {
    type Item = Result<Flowing<Out>, PipelineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(next) = this.pending.pop_front() {
                return Poll::Ready(Some(next));
            }
            if !matches!(this.state, WrapState::Running) {
                return Poll::Ready(None);
            }
            match this.input.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.finish(),
                Poll::Ready(Some(Err(e))) => {
                    this.state = WrapState::Failed;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(Flowing::Reject(r)))) => {
                    return Poll::Ready(Some(Ok(Flowing::Reject(r))));
                }
                Poll::Ready(Some(Ok(Flowing::Item(item)))) => {
                    StageCounters::add(&this.counters.items_in, 1);
                    let mut emit = Emit::new();
                    let result = {
                        let _enter = this.span.enter();
                        this.stage.process(item, &mut emit)
                    };
                    let stop = emit.stop_requested();
                    this.drain(&mut emit);
                    if let Err(e) = result {
                        this.pending.push_back(Err(e));
                        this.state = WrapState::Failed;
                    } else if stop {
                        this.finish();
                    }
                }
            }
        }
    }
}

/// Counts the items a source or stream stage yields, inside its span.
struct Counted<T> {
    inner: Flow<T>,
    counters: Arc<StageCounters>,
    span: Span,
}

impl<T> Stream for Counted<T> {
    type Item = Result<Flowing<T>, PipelineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let _enter = this.span.enter();
        let next = this.inner.poll_next_unpin(cx);
        match &next {
            Poll::Ready(Some(Ok(Flowing::Item(_)))) => {
                StageCounters::add(&this.counters.items_out, 1)
            }
            Poll::Ready(Some(Ok(Flowing::Reject(_)))) => {
                StageCounters::add(&this.counters.rejected, 1)
            }
            _ => {}
        }
        next
    }
}

/// Counts the items a stream stage pulls from upstream.
struct CountIn<T> {
    inner: Flow<T>,
    counters: Arc<StageCounters>,
}

impl<T> Stream for CountIn<T> {
    type Item = Result<Flowing<T>, PipelineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = this.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(Flowing::Item(_)))) = &next {
            StageCounters::add(&this.counters.items_in, 1);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{FrameMeta, Reject};
    use crate::protocol::Code;

    /// Doubles even numbers, rejects odd ones.
    struct Evens;

    impl Stage<u32, u32> for Evens {
        fn name(&self) -> &'static str {
            "evens"
        }

        fn process(&mut self, item: u32, out: &mut Emit<u32>) -> Result<(), PipelineError> {
            if item.is_multiple_of(2) {
                out.push(item * 2);
            } else {
                out.reject(Code::FrameSchemaInvalid, FrameMeta::new(0));
            }
            Ok(())
        }

        fn finish(&mut self, out: &mut Emit<u32>) -> Result<(), PipelineError> {
            out.push(1000);
            Ok(())
        }
    }

    /// Stops the input at 4.
    struct StopAtFour;

    impl Stage<u32, u32> for StopAtFour {
        fn name(&self) -> &'static str {
            "stop_at_four"
        }

        fn process(&mut self, item: u32, out: &mut Emit<u32>) -> Result<(), PipelineError> {
            out.push(item);
            if item == 4 {
                out.stop_input();
            }
            Ok(())
        }
    }

    async fn collect<T>(flow: Flow<T>) -> (Vec<T>, Vec<Reject>) {
        let mut items = Vec::new();
        let mut rejects = Vec::new();
        let mut flow = flow;
        while let Some(x) = flow.next().await {
            match x.unwrap() {
                Flowing::Item(i) => items.push(i),
                Flowing::Reject(r) => rejects.push(r),
            }
        }
        (items, rejects)
    }

    #[tokio::test]
    async fn stages_are_counted_and_rejects_pass_through() {
        let p = PipelineBuilder::from_items(vec![1, 2, 3, 4])
            .stage(Evens)
            .option_stage(None::<StopAtFour>)
            .build();
        let counters = p.counters.clone();
        let (items, rejects) = collect(p.flow).await;
        assert_eq!(items, vec![4, 8, 1000]);
        assert_eq!(rejects.len(), 2);
        let evens = counters[1].snapshot();
        assert_eq!((evens.items_in, evens.items_out, evens.rejected), (4, 3, 2));
        assert_eq!(counters[0].items_out(), 4);
    }

    #[tokio::test]
    async fn stop_input_stops_pulling_and_finishes() {
        let p = PipelineBuilder::from_items(vec![2, 4, 6, 8])
            .option_stage(Some(StopAtFour))
            .stage(Evens)
            .build();
        let counters = p.counters.clone();
        let (items, _) = collect(p.flow).await;
        assert_eq!(items, vec![4, 8, 1000]);
        assert_eq!(
            counters[0].items_out(),
            2,
            "the source was not pulled after the stop"
        );
    }
}
