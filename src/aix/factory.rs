//! The parser factory the `aix` binary uses: the real parsers of every provider.

use std::sync::Arc;

use super::claude_copies::CopyIndex;
use super::codex_reviews::ReviewIndex;
use super::file_state::ParserFactory;
use super::sources::{SessionParser, SourceFile, parser_with_indexes};

/// `sources::parser_for` as a [`ParserFactory`], its Claude Code parsers sharing one index of
/// the lines several files hold (`aix::claude_copies`) and its Codex parsers one index of the
/// `/review` links (`aix::codex_reviews`): make one factory per run (or scan), so that the
/// indexes read each project's (`sessions` directory's) files once and then follow them.
pub fn default_parser_factory() -> ParserFactory {
    let copies = Arc::new(CopyIndex::default());
    let reviews = Arc::new(ReviewIndex::default());
    Arc::new(move |file: &SourceFile| -> Box<dyn SessionParser> {
        parser_with_indexes(file, Some(copies.clone()), Some(reviews.clone()))
    })
}
