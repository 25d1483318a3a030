//! Validator: the request-level checks of an import request (`import::check_import_request`:
//! source, mode, idempotency key, items present), before anything reaches the ledger. A failing
//! frame is rejected with the service's code and nothing of it (cursors included) is written.
//!
//! Item-level problems are not checked here: they flow on and become per-item `failed`
//! results in the sink's transaction, as the baseline reports them. Chunk parts were checked by
//! the assembler; report frames need no check.

use crate::import::check_import_request;
use crate::pipeline::{Emit, PipelineError, RejectCode, Stage};

use super::{FrameOp, Op, ValidOp};

#[derive(Debug, Default)]
pub struct Validator;

impl Validator {
    pub fn new() -> Self {
        Self
    }
}

impl Stage<FrameOp, ValidOp> for Validator {
    fn name(&self) -> &'static str {
        "validate"
    }

    fn process(&mut self, frame: FrameOp, out: &mut Emit<ValidOp>) -> Result<(), PipelineError> {
        if let Op::Import(req) = &frame.op
            && let Err(e) = check_import_request(req)
        {
            out.reject(RejectCode::service(e.written_code()), frame.meta);
            return Ok(());
        }
        out.push(ValidOp(frame));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::FrameMeta;
    use crate::protocol::{ImportRequest, ImportSessionItem};

    fn op(req: ImportRequest) -> FrameOp {
        FrameOp {
            op: Op::Import(req),
            meta: FrameMeta::new(1),
        }
    }

    #[test]
    fn request_level_failures_are_rejected_item_problems_flow_on() {
        let good = ImportRequest {
            source: "aix".into(),
            mode: "tail".into(),
            idempotency_key: "k".into(),
            // An item without provider: an item-level failure for the sink, not a reject.
            items: vec![ImportSessionItem::default()],
            ..Default::default()
        };
        let cases = [
            (
                ImportRequest {
                    source: "foo".into(),
                    ..good.clone()
                },
                Some("source_unsupported"),
            ),
            (
                ImportRequest {
                    mode: "x".into(),
                    ..good.clone()
                },
                Some("mode_unsupported"),
            ),
            (
                ImportRequest {
                    idempotency_key: " ".into(),
                    ..good.clone()
                },
                Some("idempotency_key_required"),
            ),
            (
                ImportRequest {
                    items: vec![],
                    ..good.clone()
                },
                Some("items_required"),
            ),
            (good.clone(), None),
        ];
        for (req, want) in cases {
            let mut out = Emit::new();
            Validator::new().process(op(req), &mut out).unwrap();
            let got = out.rejects().first().map(|r| r.code.to_string());
            assert_eq!(got.as_deref(), want);
            assert_eq!(out.items().len(), usize::from(want.is_none()));
        }
    }
}
