//! The two kinds of stage. A [`Stage`] is a synchronous step over one item (prefer it: it is
//! testable without a runtime); a [`StreamStage`] owns its input stream, for steps that need
//! time or a task boundary (the batched ledger sink).
//!
//! Stages hold domain logic only: the builder wraps each one with a tracing span and
//! in/out/reject counters, passes upstream rejects through untouched, and calls
//! [`Stage::finish`] when the input ends.

use super::{Flow, FrameMeta, PipelineError, Reject, RejectCode};

/// A synchronous step: each input gives zero or more outputs and rejects.
///
/// # Errors
/// `Err` is fatal and ends the run; a bad frame is a reject ([`Emit::reject`]), not an error.
///
/// # Backpressure
/// `process` runs when the downstream stage pulls; a stage never buffers beyond what one call
/// emits (plus its own documented state, e.g. nothing for the core stages).
pub trait Stage<In, Out>: Send + 'static {
    /// Stable snake_case name: span field, counter label.
    fn name(&self) -> &'static str;

    fn process(&mut self, item: In, out: &mut Emit<Out>) -> Result<(), PipelineError>;

    /// Called once when the input has ended (also after cancellation: the source ends, and every
    /// stage drains). Not called after a fatal error.
    fn finish(&mut self, _out: &mut Emit<Out>) -> Result<(), PipelineError> {
        Ok(())
    }
}

impl<In, Out> Stage<In, Out> for Box<dyn Stage<In, Out>>
where
    In: 'static,
    Out: 'static,
{
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn process(&mut self, item: In, out: &mut Emit<Out>) -> Result<(), PipelineError> {
        (**self).process(item, out)
    }

    fn finish(&mut self, out: &mut Emit<Out>) -> Result<(), PipelineError> {
        (**self).finish(out)
    }
}

/// A step that transforms the whole stream (async, time-based or with a task boundary).
/// The builder counts what it yields; upstream rejects must be passed through in order.
pub trait StreamStage<In, Out>: Send + 'static {
    fn name(&self) -> &'static str;

    fn apply(self: Box<Self>, input: Flow<In>) -> Flow<Out>;
}

/// The outputs of one [`Stage::process`] call. The builder drains it after every call.
#[derive(Debug)]
pub struct Emit<T> {
    items: Vec<T>,
    rejects: Vec<Reject>,
    stop: bool,
}

impl<T> Default for Emit<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            rejects: Vec::new(),
            stop: false,
        }
    }
}

impl<T> Emit<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, item: T) {
        self.items.push(item);
    }

    pub fn reject(&mut self, code: impl Into<RejectCode>, meta: FrameMeta) {
        self.rejects.push(Reject::new(code, meta));
    }

    /// Asks the pipeline to stop pulling new input after this item (a terminal frame was seen).
    /// Everything already emitted still flows and is committed.
    pub fn stop_input(&mut self) {
        self.stop = true;
    }

    pub fn items(&self) -> &[T] {
        &self.items
    }

    pub fn rejects(&self) -> &[Reject] {
        &self.rejects
    }

    pub fn stop_requested(&self) -> bool {
        self.stop
    }

    /// Outputs in emission order: rejects of the call first (they concern the input item, which
    /// produced no output), then items.
    pub fn take(&mut self) -> (Vec<Reject>, Vec<T>) {
        (
            std::mem::take(&mut self.rejects),
            std::mem::take(&mut self.items),
        )
    }
}
