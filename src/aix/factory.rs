//! The parser factory the `aix` binary uses: the real parsers of every provider.

use std::sync::Arc;

use super::claude_copies::CopyIndex;
use super::file_state::ParserFactory;
use super::sources::{SessionParser, SourceFile, parser_with_copies};

/// `sources::parser_for` as a [`ParserFactory`], its Claude Code parsers sharing one index of
/// the lines several files hold (`aix::claude_copies`): make one factory per run (or scan), so
/// that the index reads each project's files once and then follows them.
pub fn default_parser_factory() -> ParserFactory {
    let copies = Arc::new(CopyIndex::default());
    Arc::new(move |file: &SourceFile| -> Box<dyn SessionParser> {
        parser_with_copies(file, Some(copies.clone()))
    })
}
