//! The item of a large upload, parsed member by member and element by element from slices of
//! a bounded window over the inflated stream: serde_json's slice parser (several times faster
//! than its byte-at-a-time reader) without ever holding the item's whole JSON.
//!
//! # Exactness
//! The result is the one `serde_json::from_reader` gives over the whole stream: the same item,
//! or an error of the same class (invalid JSON, or the stream's own failure: bad gzip or base64,
//! the inflate limit), because
//! - the top-level object is read here exactly as serde_json's `MapAccess` and `SeqAccess` read
//!   it (the same bytes looked at in the same order, the same checks), and drives the derived
//!   `RawItem` visitor, so aliases, duplicate and unknown fields behave as they do there;
//! - each member value and each element of an array member is parsed by serde_json itself,
//!   from its span ([`super::span`]) behind as many `[` as the containers around it, so its
//!   recursion limit counts from the item object as in the whole parse;
//! - a stream failure is only reported when the parse needs a byte past the bytes read well,
//!   as the reader would. When the stream fails (or a value holds an irregular `\u`) before a
//!   value's span is complete, that value is parsed by serde_json's reader over its bytes and
//!   then the stream, which finds what the whole parse would: the value's JSON error, or the
//!   stream's.
//!
//! # Memory
//! The window holds the value being parsed (one element of an array member, or one other
//! member), plus one read block; what was parsed is dropped as the window refills. An unknown
//! member or an array where the item has none is held whole, like any other value.
//!
//! # Reads
//! The stream is read in blocks of [`READ_BLOCK`] bytes, the reads `from_reader`'s
//! `BufReader` makes, so that base64 and gzip see the same reads and fail at the same byte.

use std::fmt;
use std::io::{self, Read};

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::span::{Scan, SpanScan};
use super::transient::Transient;
use super::{Fault, ImportError};
use crate::protocol::ImportSessionItem;

/// One read of the inflated stream (the size of the reader path's `BufReader`).
pub(super) const READ_BLOCK: usize = 64 * 1024;

/// Room kept before the window's first byte for the `[`s written before a value (at most two:
/// the item object and an array member).
const HEAD: usize = 2;

/// Parses the item whose JSON is `prefix` (beginning, after whitespace, with `{`) followed by
/// what `rest` yields, reading `block` bytes at a time.
pub(super) fn parse_item<R: Read>(
    prefix: Vec<u8>,
    rest: R,
    block: usize,
) -> Result<ImportSessionItem, Failure> {
    let mut window = Window {
        buf: prefix,
        pos: 0,
        source: rest,
        end: End::Open,
        block,
    };
    let item = ImportSessionItem::deserialize(ItemObject {
        window: &mut window,
    })?;
    // `from_reader`'s end: only whitespace may follow.
    match window.peek_token()? {
        None => Ok(item),
        Some(_) => Err(Failure::Json),
    }
}

/// Why an item did not parse: its JSON, or the stream under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    Json,
    Stream(Fault),
}

impl Failure {
    /// The class of a serde_json error: a failed read is the stream's, anything else the
    /// JSON's.
    pub(super) fn of(err: serde_json::Error) -> Self {
        if !err.is_io() {
            return Failure::Json;
        }
        Failure::Stream(Fault::of_io(&io::Error::from(err)))
    }

    /// The code the caller reports (`limit`: the inflate limit, named by the too-large code).
    pub(super) fn into_import_error(self, limit: u64) -> ImportError {
        match self {
            Failure::Json => ImportError::ChunkPayloadJsonInvalid,
            Failure::Stream(Fault::TooLarge) => ImportError::ChunkPayloadTooLarge { limit },
            Failure::Stream(Fault::DecodeFailed) => ImportError::ChunkPayloadDecodeFailed,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Json => f.write_str("the payload is not one item JSON"),
            Failure::Stream(_) => f.write_str("the payload stream failed"),
        }
    }
}

impl std::error::Error for Failure {}

impl de::Error for Failure {
    /// A visitor's complaint (a duplicate field, a wrong type) is the JSON's fault; its message
    /// is dropped, as the code is all that is reported.
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Failure::Json
    }
}

impl From<Fault> for Failure {
    fn from(fault: Fault) -> Self {
        Failure::Stream(fault)
    }
}

/// How the inflated stream ended, once it has: a failure is kept, as the reader path would
/// meet it again at the same byte.
#[derive(Clone, Copy)]
enum End {
    Open,
    Eof,
    Failed(Fault),
}

/// The unparsed bytes of the stream, refilled block by block.
struct Window<R> {
    /// `buf[pos..]` is read and not yet parsed; `buf[..pos]` is spent (the bytes just before a
    /// value are overwritten with `[` to parse it).
    buf: Vec<u8>,
    pos: usize,
    source: R,
    end: End,
    block: usize,
}

impl<R: Read> Window<R> {
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
    fn peek_token(&mut self) -> Result<Option<u8>, Fault> {
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
    fn expect(&mut self, expected: u8) -> Result<(), Failure> {
        match self.peek_token()? {
            Some(b) if b == expected => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(Failure::Json),
        }
    }

    /// Parses the value that starts at the next token with `seed`, inside `depth` containers.
    fn value<'de, T: DeserializeSeed<'de>>(
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

/// The item object, read as serde_json's `deserialize_struct` reads an object.
struct ItemObject<'w, R> {
    window: &'w mut Window<R>,
}

impl<'de, R: Read> Deserializer<'de> for ItemObject<'_, R> {
    type Error = Failure;

    /// The caller has seen the `{`; the item's `Deserialize` asks for a struct.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
        self.window.expect(b'{')?;
        let value = visitor.visit_map(Members {
            window: &mut *self.window,
            first: true,
        })?;
        // serde_json's `end_map`.
        match self.window.peek_token()? {
            Some(b'}') => {
                self.window.pos += 1;
                Ok(value)
            }
            _ => Err(Failure::Json),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// The item object's members, as serde_json's `MapAccess` reads them.
struct Members<'w, R> {
    window: &'w mut Window<R>,
    first: bool,
}

impl<'de, R: Read> MapAccess<'de> for Members<'_, R> {
    type Error = Failure;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Failure> {
        match self.window.peek_token()? {
            Some(b'}') => return Ok(None),
            Some(b'"') if self.first => self.first = false,
            Some(b',') if !self.first => {
                self.window.pos += 1;
                if self.window.peek_token()? != Some(b'"') {
                    return Err(Failure::Json);
                }
            }
            _ => return Err(Failure::Json),
        }
        self.window.value(0, seed).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Failure> {
        self.window.expect(b':')?;
        seed.deserialize(Member {
            window: &mut *self.window,
        })
    }
}

/// One member's value. An array is read element by element when the item wants a sequence
/// there; anything else is parsed whole by serde_json.
struct Member<'w, R> {
    window: &'w mut Window<R>,
}

/// A call on [`Member`] handed to serde_json's deserializer unchanged.
enum Call {
    Any,
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    String,
    Bytes,
    ByteBuf,
    Option,
    Unit,
    UnitStruct(&'static str),
    NewtypeStruct(&'static str),
    Seq,
    Tuple(usize),
    TupleStruct(&'static str, usize),
    Map,
    Struct(&'static str, &'static [&'static str]),
    Enum(&'static str, &'static [&'static str]),
    Identifier,
    IgnoredAny,
}

/// `call` with `visitor`, as a seed for [`Window::value`].
struct Forward<V> {
    call: Call,
    visitor: V,
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for Forward<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let v = self.visitor;
        match self.call {
            Call::Any => d.deserialize_any(v),
            Call::Bool => d.deserialize_bool(v),
            Call::I8 => d.deserialize_i8(v),
            Call::I16 => d.deserialize_i16(v),
            Call::I32 => d.deserialize_i32(v),
            Call::I64 => d.deserialize_i64(v),
            Call::I128 => d.deserialize_i128(v),
            Call::U8 => d.deserialize_u8(v),
            Call::U16 => d.deserialize_u16(v),
            Call::U32 => d.deserialize_u32(v),
            Call::U64 => d.deserialize_u64(v),
            Call::U128 => d.deserialize_u128(v),
            Call::F32 => d.deserialize_f32(v),
            Call::F64 => d.deserialize_f64(v),
            Call::Char => d.deserialize_char(v),
            Call::Str => d.deserialize_str(v),
            Call::String => d.deserialize_string(v),
            Call::Bytes => d.deserialize_bytes(v),
            Call::ByteBuf => d.deserialize_byte_buf(v),
            Call::Option => d.deserialize_option(v),
            Call::Unit => d.deserialize_unit(v),
            Call::UnitStruct(name) => d.deserialize_unit_struct(name, v),
            Call::NewtypeStruct(name) => d.deserialize_newtype_struct(name, v),
            Call::Seq => d.deserialize_seq(v),
            Call::Tuple(len) => d.deserialize_tuple(len, v),
            Call::TupleStruct(name, len) => d.deserialize_tuple_struct(name, len, v),
            Call::Map => d.deserialize_map(v),
            Call::Struct(name, fields) => d.deserialize_struct(name, fields, v),
            Call::Enum(name, variants) => d.deserialize_enum(name, variants, v),
            Call::Identifier => d.deserialize_identifier(v),
            Call::IgnoredAny => d.deserialize_ignored_any(v),
        }
    }
}

macro_rules! forward_member {
    ($($method:ident($($arg:ident: $ty:ty),*) => $call:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Failure> {
            self.window.value(1, Forward { call: $call, visitor })
        }
    )*};
}

impl<'de, R: Read> Deserializer<'de> for Member<'_, R> {
    type Error = Failure;

    /// serde_json's: `null` is `None`; anything else (even nothing) is the inner value.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
        match self.window.peek_token()? {
            Some(b'n') => self.window.value(
                1,
                Forward {
                    call: Call::Option,
                    visitor,
                },
            ),
            _ => visitor.visit_some(self),
        }
    }

    /// An array, element by element, as serde_json's `deserialize_seq` and `SeqAccess`.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
        if self.window.peek_token()? != Some(b'[') {
            return self.window.value(
                1,
                Forward {
                    call: Call::Seq,
                    visitor,
                },
            );
        }
        self.window.pos += 1;
        let value = visitor.visit_seq(Elements {
            window: &mut *self.window,
            first: true,
        })?;
        // serde_json's `end_seq`.
        self.window.expect(b']')?;
        Ok(value)
    }

    forward_member! {
        deserialize_any() => Call::Any;
        deserialize_bool() => Call::Bool;
        deserialize_i8() => Call::I8;
        deserialize_i16() => Call::I16;
        deserialize_i32() => Call::I32;
        deserialize_i64() => Call::I64;
        deserialize_i128() => Call::I128;
        deserialize_u8() => Call::U8;
        deserialize_u16() => Call::U16;
        deserialize_u32() => Call::U32;
        deserialize_u64() => Call::U64;
        deserialize_u128() => Call::U128;
        deserialize_f32() => Call::F32;
        deserialize_f64() => Call::F64;
        deserialize_char() => Call::Char;
        deserialize_str() => Call::Str;
        deserialize_string() => Call::String;
        deserialize_bytes() => Call::Bytes;
        deserialize_byte_buf() => Call::ByteBuf;
        deserialize_unit() => Call::Unit;
        deserialize_unit_struct(name: &'static str) => Call::UnitStruct(name);
        deserialize_newtype_struct(name: &'static str) => Call::NewtypeStruct(name);
        deserialize_tuple(len: usize) => Call::Tuple(len);
        deserialize_tuple_struct(name: &'static str, len: usize) => Call::TupleStruct(name, len);
        deserialize_map() => Call::Map;
        deserialize_struct(name: &'static str, fields: &'static [&'static str])
            => Call::Struct(name, fields);
        deserialize_enum(name: &'static str, variants: &'static [&'static str])
            => Call::Enum(name, variants);
        deserialize_identifier() => Call::Identifier;
        deserialize_ignored_any() => Call::IgnoredAny;
    }
}

/// The elements of an array member, as serde_json's `SeqAccess` reads them.
struct Elements<'w, R> {
    window: &'w mut Window<R>,
    first: bool,
}

impl<'de, R: Read> SeqAccess<'de> for Elements<'_, R> {
    type Error = Failure;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Failure> {
        match self.window.peek_token()? {
            None => return Err(Failure::Json),
            Some(b']') => return Ok(None),
            Some(_) if self.first => self.first = false,
            Some(b',') => {
                self.window.pos += 1;
                match self.window.peek_token()? {
                    Some(b']') | None => return Err(Failure::Json),
                    Some(_) => {}
                }
            }
            Some(_) => return Err(Failure::Json),
        }
        self.window.value(2, seed).map(Some)
    }
}
