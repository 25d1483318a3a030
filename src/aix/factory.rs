//! The parser factory the `aix` binary uses: the real parsers of every provider.

use std::sync::Arc;

use super::file_state::ParserFactory;
use super::sources::{SessionParser, SourceFile, parser_for};

/// `sources::parser_for` as a [`ParserFactory`].
pub fn default_parser_factory() -> ParserFactory {
    Arc::new(|file: &SourceFile| -> Box<dyn SessionParser> { parser_for(file) })
}
