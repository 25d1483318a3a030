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

use super::window::Window;
use super::{Fault, ImportError};
use crate::protocol::ImportSessionItem;

/// One read of the inflated stream (the size of the reader path's `BufReader`).
pub(super) const READ_BLOCK: usize = 64 * 1024;

/// Parses the item whose JSON is `prefix` (beginning, after whitespace, with `{`) followed by
/// what `rest` yields, reading `block` bytes at a time.
pub(super) fn parse_item<R: Read>(
    prefix: Vec<u8>,
    rest: R,
    block: usize,
) -> Result<ImportSessionItem, Failure> {
    let mut window = Window::new(prefix, rest, block);
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
                self.window.bump();
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
                self.window.bump();
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
        self.window.bump();
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
                self.window.bump();
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
