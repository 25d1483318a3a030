//! Streaming decoder of an assembled chunked upload (IMPORT_SEMANTICS.md chunk algorithm 6):
//! parts in index order -> base64 -> gunzip -> one item JSON, without ever holding the
//! inflated payload: memory stays bounded by the parsed item, and inflation stops at
//! `max_inflated_bytes` (gzip bombs are refused with `chunk_payload_too_large`).
//!
//! Layout: `stream` parses an item past the slice maximum member by member, from slices of a
//! bounded window (`window`: its bytes and the parse of one value); `span` finds where each of
//! its values ends; `transient` lends serde_json's slice deserializer to the item's visitor;
//! `tests` holds it to serde_json's reader.

use std::io::{self, BufReader, Read};

use base64::engine::general_purpose::STANDARD;
use base64::read::DecoderReader;
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::ImportError;
use crate::protocol::{ENCODING_GZIP_BASE64, ImportSessionItem};

mod span;
mod stream;
mod transient;
mod window;

/// Decodes the concatenation of `parts` (each the `data` of one chunk, in index order) into one
/// item, its aliases folded.
///
/// Errors: `chunk_encoding_unsupported:<enc>` unless `encoding` is `gzip+base64` (`unknown`
/// when blank); `chunk_payload_decode_failed` for bad base64 or gzip;
/// `chunk_payload_json_invalid` when the inflated bytes are not one item JSON;
/// `chunk_payload_too_large` as soon as more than `max_inflated_bytes` would be inflated.
pub fn decode_chunked_item<I, S>(
    parts: I,
    encoding: &str,
    max_inflated_bytes: u64,
) -> Result<ImportSessionItem, ImportError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    decode_with(
        parts,
        encoding,
        max_inflated_bytes,
        SLICE_PARSE_MAX_BYTES,
        parse_large,
    )
}

/// The parse of a payload past the slice maximum: [`parse_streamed`] in the reader path's
/// blocks.
fn parse_large(
    prefix: Vec<u8>,
    rest: &mut dyn Read,
    limit: u64,
) -> Result<ImportSessionItem, ImportError> {
    parse_streamed(prefix, rest, limit, stream::READ_BLOCK)
}

/// What parses an inflated payload past the slice maximum: its prefix, the rest, the limit.
type LargeParse = fn(Vec<u8>, &mut dyn Read, u64) -> Result<ImportSessionItem, ImportError>;

/// [`decode_chunked_item`] with the slice maximum and the parse of large payloads given (the
/// tests compare the streaming parse with serde_json's reader through the whole decoder).
fn decode_with<I, S>(
    parts: I,
    encoding: &str,
    max_inflated_bytes: u64,
    slice_max: u64,
    large: LargeParse,
) -> Result<ImportSessionItem, ImportError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let encoding = encoding.trim();
    if encoding != ENCODING_GZIP_BASE64 {
        let shown = if encoding.is_empty() {
            "unknown"
        } else {
            encoding
        };
        return Err(ImportError::ChunkEncodingUnsupported(shown.to_owned()));
    }
    let concatenated = PartsReader::new(parts.into_iter());
    let base64 = DecoderReader::new(concatenated, &STANDARD);
    let inflated = MultiGzDecoder::new(base64);
    let mut bounded = LimitReader {
        inner: inflated,
        remaining: max_inflated_bytes,
    };
    // Most uploads inflate to a few MB: parse those from a slice. A larger or failing stream is
    // parsed from what was inflated so far followed by the rest (or the error met), so the
    // result and its code are exactly those of streaming the whole payload, and memory stays
    // bounded.
    // Sized once: `read_to_end` doubling its way to `slice_max + 1` bytes would allocate twice
    // `slice_max` (64 MiB held through the whole parse of a large item, measured in P3).
    let mut prefix = Vec::with_capacity(usize::try_from(slice_max.saturating_add(1)).unwrap_or(0));
    let prefix_read = Read::take(&mut bounded, slice_max + 1).read_to_end(&mut prefix);
    let mut tail = match prefix_read {
        Ok(n) if (n as u64) <= slice_max => {
            return serde_json::from_slice(&prefix)
                .map_err(|_| ImportError::ChunkPayloadJsonInvalid);
        }
        Ok(_) => Tail::Live(bounded),
        Err(err) => Tail::Failed(Some(err)),
    };
    large(prefix, &mut tail, max_inflated_bytes)
}

/// The item whose JSON is `prefix` followed by what `rest` yields, parsed without holding it
/// whole; the result and its code are exactly those of `serde_json::from_reader` over the whole
/// stream. An object (every item) is parsed member by member from slices of a bounded window
/// ([`stream`]), read `block` bytes at a time; anything else fails early and goes to serde_json's
/// reader.
fn parse_streamed<R: Read>(
    prefix: Vec<u8>,
    rest: R,
    limit: u64,
    block: usize,
) -> Result<ImportSessionItem, ImportError> {
    let first = prefix
        .iter()
        .find(|b| !matches!(b, b' ' | b'\n' | b'\t' | b'\r'));
    if first == Some(&b'{') {
        return stream::parse_item(prefix, rest, block)
            .map_err(|failure| failure.into_import_error(limit));
    }
    parse_by_reader(prefix, rest, limit)
}

/// serde_json's reader over the prefix and then the rest (byte at a time, several times slower
/// than a slice; the prefix is freed once read).
fn parse_by_reader<R: Read>(
    prefix: Vec<u8>,
    rest: R,
    limit: u64,
) -> Result<ImportSessionItem, ImportError> {
    let stream = BufReader::with_capacity(stream::READ_BLOCK, Prefixed::new(prefix, rest));
    serde_json::from_reader(stream).map_err(|err| stream::Failure::of(err).into_import_error(limit))
}

/// A digest of what [`decode_chunked_item`] decodes: `encoding` (trimmed) and each part (as
/// given: the caller trims as it does for the decoder), in order. Equal digests mean the same
/// decoder input, hence the same item or error; the ledger writer uses it to reuse an upload
/// decoded ahead when the parts staged in the ledger are the ones that were decoded.
pub fn upload_digest<I, S>(parts: I, encoding: &str) -> [u8; 32]
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let mut digest = UploadDigest::new(encoding);
    for part in parts {
        digest.part(part.as_ref());
    }
    digest.finish()
}

/// [`upload_digest`] fed one part at a time.
pub(crate) struct UploadDigest(Sha256);

impl UploadDigest {
    pub(crate) fn new(encoding: &str) -> Self {
        let mut digest = Self(Sha256::new());
        digest.part(encoding.trim().as_bytes());
        digest
    }

    /// Each field is length-prefixed, so part boundaries count.
    pub(crate) fn part(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// Inflated uploads up to this size are parsed from memory. A larger one streams: its JSON
/// is never held whole, only the item it becomes (P3, P8: one large item at a time, bounded
/// buffers). 8 MiB keeps the slice parse for most uploads (items past the 4 MiB chunk
/// threshold) while a 50 MB session no longer holds 32-64 MiB of text beside its item.
const SLICE_PARSE_MAX_BYTES: u64 = 8 << 20;

/// The inflated prefix, then the rest of the stream; the prefix is freed as soon as it has
/// been read (a `Cursor` chain would hold its 32 MiB for the whole parse of a large item).
struct Prefixed<R> {
    prefix: Vec<u8>,
    offset: usize,
    tail: R,
}

impl<R> Prefixed<R> {
    fn new(prefix: Vec<u8>, tail: R) -> Self {
        Self {
            prefix,
            offset: 0,
            tail,
        }
    }
}

impl<R: Read> Read for Prefixed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.offset < self.prefix.len() {
            let rest = &self.prefix[self.offset..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.offset += n;
            if self.offset == self.prefix.len() {
                self.prefix = Vec::new();
                self.offset = 0;
            }
            return Ok(n);
        }
        self.tail.read(buf)
    }
}

/// What follows the inflated prefix: the rest of the stream, or the error that ended it.
enum Tail<R> {
    Live(R),
    Failed(Option<io::Error>),
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Tail::Live(inner) => inner.read(buf),
            Tail::Failed(err) => match err.take() {
                Some(err) => Err(err),
                None => Err(io::Error::other("payload stream already failed")),
            },
        }
    }
}

/// How the inflated stream failed: the inflate limit, or bad base64 or gzip under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    TooLarge,
    DecodeFailed,
}

impl Fault {
    /// Our limit marker is the limit; any other read failure comes from base64 or gzip.
    fn of_io(err: &io::Error) -> Self {
        if err
            .get_ref()
            .is_some_and(|inner| inner.is::<InflateLimitReached>())
        {
            Fault::TooLarge
        } else {
            Fault::DecodeFailed
        }
    }

    /// The error serde_json's reader meets for this failure (classified back by
    /// [`Fault::of_io`]).
    fn into_io(self) -> io::Error {
        match self {
            Fault::TooLarge => io::Error::other(InflateLimitReached),
            Fault::DecodeFailed => io::Error::other("payload stream failed"),
        }
    }
}

/// Reads the parts one after the other as one byte stream.
struct PartsReader<I: Iterator> {
    parts: I,
    current: Option<I::Item>,
    offset: usize,
}

impl<I: Iterator> PartsReader<I> {
    fn new(mut parts: I) -> Self {
        let current = parts.next();
        Self {
            parts,
            current,
            offset: 0,
        }
    }
}

impl<I, S> Read for PartsReader<I>
where
    I: Iterator<Item = S>,
    S: AsRef<[u8]>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(part) = self.current.as_ref() else {
                return Ok(0);
            };
            let rest = &part.as_ref()[self.offset..];
            if rest.is_empty() {
                self.current = self.parts.next();
                self.offset = 0;
                continue;
            }
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.offset += n;
            return Ok(n);
        }
    }
}

/// Marker error: the inflated stream passed `max_inflated_bytes`.
#[derive(Debug)]
struct InflateLimitReached;

impl std::fmt::Display for InflateLimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inflated payload exceeds the limit")
    }
}

impl std::error::Error for InflateLimitReached {}

/// Passes at most `remaining` bytes, then fails with [`InflateLimitReached`] if the inner
/// stream has more. Never asks the inner reader for more than one byte past the limit.
struct LimitReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(InflateLimitReached)),
            };
        }
        let cap = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..cap])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
