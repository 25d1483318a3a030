//! Streaming decoder of an assembled chunked upload (IMPORT_SEMANTICS.md chunk algorithm 6):
//! parts in index order -> base64 -> gunzip -> one item JSON, without ever holding the
//! inflated payload: memory stays bounded by the parsed item, and inflation stops at
//! `max_inflated_bytes` (gzip bombs are refused with `chunk_payload_too_large`).

use std::io::{self, BufReader, Read};

use base64::engine::general_purpose::STANDARD;
use base64::read::DecoderReader;
use flate2::read::MultiGzDecoder;

use super::ImportError;
use crate::protocol::{ENCODING_GZIP_BASE64, ImportSessionItem};

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
    let bounded = BufReader::with_capacity(
        64 * 1024,
        LimitReader {
            inner: inflated,
            remaining: max_inflated_bytes,
        },
    );
    serde_json::from_reader(bounded).map_err(|err| classify(err, max_inflated_bytes))
}

/// Maps a parse failure to its code: our limit marker -> too large; any other I/O failure
/// comes from base64 or gzip -> decode failed; everything else is the JSON's fault.
fn classify(err: serde_json::Error, limit: u64) -> ImportError {
    if !err.is_io() {
        return ImportError::ChunkPayloadJsonInvalid;
    }
    let io_err: io::Error = err.into();
    if io_err
        .get_ref()
        .is_some_and(|inner| inner.is::<InflateLimitReached>())
    {
        ImportError::ChunkPayloadTooLarge { limit }
    } else {
        ImportError::ChunkPayloadDecodeFailed
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
mod tests {
    use std::io::Write;

    use base64::Engine;
    use flate2::{Compression, write::GzEncoder};

    use super::*;

    fn encode(json: &[u8]) -> String {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(json).unwrap();
        STANDARD.encode(gz.finish().unwrap())
    }

    #[test]
    fn decodes_split_parts() {
        let data = encode(br#"{"sourceProvider":"p","source_session_id":"s","turns":[]}"#);
        let (a, b) = data.split_at(7);
        let item = decode_chunked_item([a, b], "gzip+base64", 1 << 20).unwrap();
        assert_eq!(item.source_provider, "p");
        assert_eq!(item.source_session_id, "s");
    }

    #[test]
    fn error_codes() {
        let code = |parts: &[&str], enc: &str, max| {
            decode_chunked_item(parts.iter().copied(), enc, max)
                .unwrap_err()
                .code()
                .into_owned()
        };
        assert_eq!(code(&["x"], "raw", 10), "chunk_encoding_unsupported:raw");
        assert_eq!(code(&["x"], " ", 10), "chunk_encoding_unsupported:unknown");
        assert_eq!(
            code(&["!!!!"], "gzip+base64", 10),
            "chunk_payload_decode_failed"
        );
        assert_eq!(
            code(&[&STANDARD.encode(b"plain")], "gzip+base64", 10),
            "chunk_payload_decode_failed"
        );
        assert_eq!(
            code(&[&encode(b"[1,2]")], "gzip+base64", 100),
            "chunk_payload_json_invalid"
        );
        assert_eq!(
            code(&[&encode(b"{} {}")], "gzip+base64", 100),
            "chunk_payload_json_invalid"
        );
        assert_eq!(
            code(&[&encode(&[b' '; 4096])], "gzip+base64", 100),
            "chunk_payload_too_large"
        );
    }

    #[test]
    fn limit_exactly_at_size_is_accepted() {
        let json = br#"{"sourceProvider":"p"}"#;
        let data = encode(json);
        assert!(decode_chunked_item([&data], "gzip+base64", json.len() as u64).is_ok());
        let err = decode_chunked_item([&data], "gzip+base64", json.len() as u64 - 1).unwrap_err();
        assert_eq!(err.code(), "chunk_payload_too_large");
    }
}
