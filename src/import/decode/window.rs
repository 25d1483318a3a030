//! The window of [`super::stream`]: the unparsed bytes of the inflated stream, refilled block
//! by block, and the parse of one value from its span (or, when the span cannot be completed,
//! by serde_json's reader over the value's bytes and then the stream).

use std::fmt;
use std::io::{self, Read};

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::Fault;
use super::span::{Scan, SpanScan};
use super::stream::Failure;
use super::transient::Transient;

/// Room kept before the window's first byte for the `[`s written before a value (at most two:
/// the item object and an array member).
const HEAD: usize = 2;

/// How the inflated stream ended, once it has: a failure is kept, as the reader path would
/// meet it again at the same byte.
#[derive(Clone, Copy)]
enum End {
    Open,
    Eof,
    Failed(Fault),
}

/// The unparsed bytes of the stream, refilled block by block.
pub(super) struct Window<R> {
    /// `buf[pos..]` is read and not yet parsed; `buf[..pos]` is spent (the bytes just before a
    /// value are overwritten with `[` to parse it).
    buf: Vec<u8>,
    pos: usize,
    source: R,
    end: End,
    block: usize,
}

impl<R: Read> Window<R> {
    /// The window over `prefix` followed by what `source` yields, read `block` bytes at a time.
    pub(super) fn new(prefix: Vec<u8>, source: R, block: usize) -> Self {
        Self {
            buf: prefix,
            pos: 0,
            source,
            end: End::Open,
            block,
        }
    }

    /// Consumes the byte [`peek_token`](Self::peek_token) returned.
    pub(super) fn bump(&mut self) {
        self.pos += 1;
    }

    /// Reads one more block after `buf`, first moving the unparsed bytes to the front.
    /// `Ok(false)` at the end of the stream; the stream's failure when it fails.
    fn refill(&mut self) -> Result<bool, Fault> {
        match self.end {
            End::Open => {}
            End::Eof => return Ok(false),
            End::Failed(fault) => return Err(fault),
        }
        self.compact();
        let len = self.buf.len();
        self.buf.resize(len + self.block, 0);
        let read = loop {
            match self.source.read(&mut self.buf[len..]) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                read => break read,
            }
        };
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(len + n);
        match read {
            Ok(0) => {
                self.end = End::Eof;
                Ok(false)
            }
            Ok(_) => Ok(true),
            Err(err) => {
                let fault = Fault::of_io(&err);
                self.end = End::Failed(fault);
                Err(fault)
            }
        }
    }

    /// Drops the spent bytes (keeping [`HEAD`] in front) and, once a large value or the
    /// inflated prefix has gone, the memory it needed.
    fn compact(&mut self) {
        if self.pos > HEAD {
            self.buf.copy_within(self.pos.., HEAD);
            self.buf.truncate(self.buf.len() - (self.pos - HEAD));
            self.pos = HEAD;
        }
        let wanted = self.buf.len() + self.block;
        if self.buf.capacity() > 4 * wanted && self.buf.capacity() > 1 << 20 {
            // A fresh buffer and a `free` of the large one (the inflated prefix, mostly), as
            // the reader path freed its prefix, rather than a shrink in place.
            let mut smaller = Vec::with_capacity(2 * wanted);
            smaller.extend_from_slice(&self.buf);
            self.buf = smaller;
        }
    }

    /// serde_json's `parse_whitespace`: skips JSON whitespace and returns the next byte
    /// without consuming it, `None` at the end of the stream.
    pub(super) fn peek_token(&mut self) -> Result<Option<u8>, Fault> {
        loop {
            while let Some(&b) = self.buf.get(self.pos) {
                if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if !self.refill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes `expected` as the next token, else fails as serde_json does there (any byte
    /// or the end: invalid JSON; a failed read: the stream).
    pub(super) fn expect(&mut self, expected: u8) -> Result<(), Failure> {
        match self.peek_token()? {
            Some(b) if b == expected => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(Failure::Json),
        }
    }

    /// Parses the value that starts at the next token with `seed`, inside `depth` containers.
    pub(super) fn value<'de, T: DeserializeSeed<'de>>(
        &mut self,
        depth: usize,
        seed: T,
    ) -> Result<T::Value, Failure> {
        let Some(first) = self.peek_token()? else {
            return Err(Failure::Json);
        };
        let mut scan = SpanScan::new(first);
        let len = loop {
            match scan.resume(&self.buf[self.pos..]) {
                Scan::Ends(len) => break len,
                Scan::Irregular => return Err(self.replay(depth, seed)),
                Scan::Open => match self.refill() {
                    Ok(true) => {}
                    // A value cut by the end of the stream: the reader path fails on that end
                    // or on a JSON error before it, invalid JSON either way.
                    Ok(false) => return Err(Failure::Json),
                    Err(_) => return Err(self.replay(depth, seed)),
                },
            }
        };
        let start = self.open_brackets(depth);
        self.pos += len;
        let mut json = serde_json::Deserializer::from_slice(&self.buf[start..self.pos]);
        parse_nested(&mut json, depth, seed)
    }

    /// The reader path for a value whose span could not be completed: serde_json reads the
    /// value's bytes and then the stream, as the whole parse would have. The value cannot
    /// parse (it is cut by a failure, or holds an irregular escape), so only its error is
    /// returned.
    fn replay<'de, T: DeserializeSeed<'de>>(&mut self, depth: usize, seed: T) -> Failure {
        self.pos = self.open_brackets(depth);
        let replay = Replay {
            window: self,
            at: 0,
        };
        let mut json = serde_json::Deserializer::from_reader(replay);
        match parse_nested(&mut json, depth, seed) {
            Ok(_) => Failure::Json,
            Err(failure) => failure,
        }
    }

    /// Writes `depth` `[` just before the value at `pos` and returns where they start. Makes
    /// room for [`HEAD`] bytes first (already there unless the stream starts with the value,
    /// which no item does).
    fn open_brackets(&mut self, depth: usize) -> usize {
        if self.pos < HEAD {
            let missing = HEAD - self.pos;
            self.buf.splice(0..0, std::iter::repeat_n(b' ', missing));
            self.pos = HEAD;
        }
        let start = self.pos - depth;
        self.buf[start..self.pos].fill(b'[');
        start
    }
}

/// Deserializes `seed` from `json`: `depth` `[`, then the value. The value must take all of
/// what follows (when it is a slice) or parse up to where the stream failed.
fn parse_nested<'a, 'de, R, T>(
    json: &mut serde_json::Deserializer<R>,
    depth: usize,
    seed: T,
) -> Result<T::Value, Failure>
where
    R: serde_json::de::Read<'a>,
    T: DeserializeSeed<'de>,
{
    if depth == 0 {
        return seed
            .deserialize(Transient::new(&mut *json))
            .map_err(Failure::of);
    }
    let mut parsed = None;
    let nested = Nested {
        depth,
        seed,
        parsed: &mut parsed,
    };
    let outcome = nested.deserialize(Transient::new(&mut *json));
    match (parsed, outcome) {
        // The value parsed, then its innermost `[` met the end of the span: it took it all.
        (Some(value), Err(err)) if err.is_eof() => Ok(value),
        (_, Err(err)) => Err(Failure::of(err)),
        (_, Ok(())) => Err(Failure::Json),
    }
}

/// `depth` nested sequences around the one value of interest, which is kept in `parsed`.
struct Nested<'p, T, V> {
    depth: usize,
    seed: T,
    parsed: &'p mut Option<V>,
}

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Nested<'_, T, T::Value> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeSeed<'de>> Visitor<'de> for Nested<'_, T, T::Value> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth > 1 {
            seq.next_element_seed(Nested {
                depth: self.depth - 1,
                ..self
            })?;
        } else if let Some(value) = seq.next_element_seed(self.seed)? {
            *self.parsed = Some(value);
        }
        Ok(())
    }
}

/// A value's bytes from the window, then the rest of the stream, for serde_json's reader.
struct Replay<'w, R> {
    window: &'w mut Window<R>,
    /// Bytes handed over, from `window.pos`.
    at: usize,
}

impl<R: Read> Read for Replay<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let window = &mut *self.window;
        while window.pos + self.at == window.buf.len() {
            match window.refill() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(fault) => return Err(fault.into_io()),
            }
        }
        let rest = &window.buf[window.pos + self.at..];
        let n = rest.len().min(out.len());
        out[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}
