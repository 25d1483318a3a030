//! Frame source: an `AsyncRead` cut into lines by `LinesCodec::new_with_max_length`, with codec
//! errors turned into rejects so the stream continues (a plain `FramedRead` ends at the first
//! decoder error, tokio issue 3976).
//!
//! - over-long line -> reject `frame_too_large`; the codec discards up to the next newline.
//! - invalid UTF-8 -> reject `frame_invalid_utf8` (the line is already consumed).
//! - a real read error -> fatal `PipelineError::Io`, the run ends.
//! - empty lines are ignored; `\r\n` is accepted.
//!
//! Cancellation is applied here and only here: when `cancel` fires the source ends (after the
//! line in hand), so every downstream stage drains and commits what was read.
//!
//! # Backpressure
//! A line is read from the input only when the next stage pulls; the only buffer is the
//! codec's read buffer (one line, bounded by `max_frame_bytes`, plus one read's worth).

use std::io;

use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Flow, Flowing, FrameMeta, PipelineError, Reject};
use crate::protocol::Code;

use super::Line;

/// Default longest line: 64 MiB (PROTOCOL.md "Transport").
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// A `LinesCodec` whose line-level errors are items, so `FramedRead` keeps going. Its `Error`
/// is only a real I/O failure.
#[derive(Debug)]
pub struct FrameCodec {
    lines: LinesCodec,
}

/// A line, or why the codec could not produce one.
pub type CodecItem = Result<String, Code>;

impl FrameCodec {
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            lines: LinesCodec::new_with_max_length(max_frame_bytes.max(1)),
        }
    }

    fn wrap(
        result: Result<Option<String>, LinesCodecError>,
    ) -> Result<Option<CodecItem>, io::Error> {
        match result {
            Ok(line) => Ok(line.map(Ok)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Err(Code::FrameTooLarge))),
            Err(LinesCodecError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                Ok(Some(Err(Code::FrameInvalidUtf8)))
            }
            Err(LinesCodecError::Io(e)) => Err(e),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = CodecItem;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<CodecItem>, io::Error> {
        Self::wrap(self.lines.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<CodecItem>, io::Error> {
        Self::wrap(self.lines.decode_eof(buf))
    }
}

/// The source stream of a run: lines of `input` until it ends or `cancel` fires.
pub fn frame_source<R>(input: R, max_frame_bytes: usize, cancel: CancellationToken) -> Flow<Line>
where
    R: AsyncRead + Send + 'static,
{
    // A 256 KiB read buffer: frames of tool results are tens of KB, so fewer reads and moves.
    let framed = FramedRead::with_capacity(
        Box::pin(input),
        FrameCodec::new(max_frame_bytes),
        256 * 1024,
    );
    framed
        .take_until(cancel.cancelled_owned())
        .filter_map(|item| async move {
            match item {
                Ok(Ok(text)) => {
                    if text.trim().is_empty() {
                        return None;
                    }
                    let meta = FrameMeta::new(text.len() + 1);
                    Some(Ok(Flowing::Item(Line { text, meta })))
                }
                // The size of a rejected line is unknown (discarded by the codec).
                Ok(Err(code)) => Some(Ok(Flowing::Reject(Reject::new(code, FrameMeta::new(0))))),
                Err(e) => Some(Err(PipelineError::Io(e))),
            }
        })
        .boxed()
}

/// A source over lines already cut (tests, other transports): same empty-line rule, same
/// cancellation point as [`frame_source`].
pub fn lines_source<S>(lines: S, cancel: CancellationToken) -> Flow<Line>
where
    S: futures::Stream<Item = String> + Send + 'static,
{
    lines
        .take_until(cancel.cancelled_owned())
        .filter_map(|text| async move {
            if text.trim().is_empty() {
                return None;
            }
            let text = text.strip_suffix('\r').map(str::to_owned).unwrap_or(text);
            let meta = FrameMeta::new(text.len() + 1);
            Some(Ok(Flowing::Item(Line { text, meta })))
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(
        input: impl AsyncRead + Send + 'static,
        max: usize,
    ) -> Vec<Result<String, String>> {
        let mut out = Vec::new();
        let mut flow = frame_source(input, max, CancellationToken::new());
        while let Some(x) = flow.next().await {
            out.push(match x {
                Ok(Flowing::Item(l)) => Ok(l.text),
                Ok(Flowing::Reject(r)) => Err(r.code.to_string()),
                Err(e) => Err(format!("fatal:{}", e.code())),
            });
        }
        out
    }

    #[tokio::test]
    async fn codec_errors_are_items_and_the_stream_continues() {
        let mut input = Vec::new();
        input.extend_from_slice(&[b'x'; 40]);
        input.extend_from_slice(b"\n\xff\xfe bad\r\n\n{\"ok\":1}\r\n  \nlast");
        let out = run(std::io::Cursor::new(input), 16).await;
        assert_eq!(
            out,
            vec![
                Err("frame_too_large".into()),
                Err("frame_invalid_utf8".into()),
                Ok("{\"ok\":1}".into()),
                Ok("last".into()),
            ]
        );
    }

    #[tokio::test]
    async fn io_error_is_fatal_after_the_lines_before_it() {
        let input = tokio_test::io::Builder::new()
            .read(b"a\nb")
            .read(b"c\n")
            .read_error(io::Error::other("pipe broke"))
            .build();
        let out = run(input, 1024).await;
        assert_eq!(
            out,
            vec![
                Ok("a".into()),
                Ok("bc".into()),
                Err("fatal:worker_exited".into())
            ]
        );
    }

    #[tokio::test]
    async fn cancellation_ends_the_source() {
        let cancel = CancellationToken::new();
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut flow = frame_source(rx, 1024, cancel.clone());
        tokio::io::AsyncWriteExt::write_all(&mut tx, b"one\n")
            .await
            .unwrap();
        assert!(matches!(flow.next().await, Some(Ok(Flowing::Item(_)))));
        cancel.cancel();
        // The writer is still open: only the cancellation can end the stream.
        assert!(flow.next().await.is_none());
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the source, and every non-empty line is an item or a
        /// reject: nothing is silently dropped.
        #[test]
        fn arbitrary_bytes_become_lines_or_rejects(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let out = rt.block_on(run(std::io::Cursor::new(bytes.clone()), 64));
            proptest::prop_assert!(out.iter().all(|o| !matches!(o, Err(e) if e.starts_with("fatal"))));
            let non_empty = bytes
                .split(|b| *b == b'\n')
                .filter(|l| !String::from_utf8_lossy(l).trim().is_empty())
                .count();
            // Over-long lines may be reported before their end, so a long line can make one
            // reject while its remainder is discarded: never more outputs than lines.
            proptest::prop_assert!(out.len() <= non_empty);
            proptest::prop_assert!(out.len() + bytes.split(|b| *b == b'\n').filter(|l| l.len() > 64).count() >= non_empty);
        }
    }
}
