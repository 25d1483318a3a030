//! Codex rollouts stored zstd-compressed (`rollout-*.jsonl.zst`, beside or instead of the plain
//! `.jsonl`; Codex reads the plain one when both exist, and so does discovery). Such a file is
//! closed: it is read as a whole-file document, decompressed in memory, on any stat change.

use std::io::{self, Read};
use std::path::Path;

use ruzstd::decoding::StreamingDecoder;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};

use crate::aix::sources::{Provider, SourceFile};

/// Most bytes one compressed rollout may inflate to: a larger one (or a decompression bomb) is
/// an unreadable file, counted and named as such, never an out-of-memory.
pub const MAX_INFLATED_BYTES: u64 = 2 << 30;

/// Whether `file` is a compressed Codex rollout.
pub fn is_compressed(file: &SourceFile) -> bool {
    file.provider == Provider::Codex && is_zst(&file.path)
}

fn is_zst(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zst")
}

/// The lines of a rollout read from `path` as `bytes`: [`inflate`]d when it is a compressed
/// one (`.zst`), else the bytes as read.
///
/// Errors: those of [`inflate`].
pub fn rollout_lines(path: &Path, bytes: Vec<u8>) -> io::Result<Vec<u8>> {
    if is_zst(path) {
        inflate(&bytes)
    } else {
        Ok(bytes)
    }
}

/// The lines of a compressed rollout: every zstd frame of `input` in order (skippable frames
/// skipped), with a newline added after an unterminated last line (the file is closed, so its
/// last line is complete).
///
/// Errors (`InvalidData`): not zstd, a damaged frame, or more than [`MAX_INFLATED_BYTES`].
pub fn inflate(mut input: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len().saturating_mul(4));
    while !input.is_empty() {
        let decoder = match StreamingDecoder::new(&mut input) {
            Ok(d) => d,
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                let skip = usize::try_from(length)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                input = &input[skip..];
                continue;
            }
            Err(e) => return Err(invalid(&e)),
        };
        let room = MAX_INFLATED_BYTES.saturating_sub(out.len() as u64);
        let read = decoder.take(room + 1).read_to_end(&mut out);
        read.map_err(|e| invalid(&e))?;
        if out.len() as u64 > MAX_INFLATED_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("compressed rollout inflates past {MAX_INFLATED_BYTES} bytes"),
            ));
        }
    }
    if out.last().is_some_and(|&b| b != b'\n') {
        out.push(b'\n');
    }
    Ok(out)
}

fn invalid(e: &dyn std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("compressed rollout unreadable: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use ruzstd::encoding::{CompressionLevel, compress_to_vec};

    use super::*;

    #[test]
    fn frames_are_read_in_order_and_the_last_line_is_ended() {
        let mut input = compress_to_vec(&b"{\"a\":1}\n"[..], CompressionLevel::Fastest);
        // A skippable frame (magic 0x184D2A50, 4 bytes of payload) between two data frames.
        input.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
        input.extend(compress_to_vec(
            &b"{\"b\":2}"[..],
            CompressionLevel::Fastest,
        ));
        assert_eq!(inflate(&input).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(inflate(&[]).unwrap(), b"");
    }

    #[test]
    fn damaged_input_is_invalid_data_never_a_panic() {
        let good = compress_to_vec(&b"{\"a\":1}\n"[..], CompressionLevel::Fastest);
        for bad in [
            b"not zstd at all".to_vec(),
            good[..good.len() / 2].to_vec(),
            [good.as_slice(), b"xx"].concat(),
        ] {
            let err = inflate(&bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
    }
}
