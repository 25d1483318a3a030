//! Canonical JSON: compact, object keys sorted by byte order at every depth, written straight
//! from any `Serialize` value (no intermediate `serde_json::Value`, which cost more than the
//! SHA-256 itself on large requests).
//!
//! Objects (structs and maps) are written into the output as they come, then their entries are
//! re-emitted in key order: each nesting level copies its bytes once. Scalars and strings use
//! serde_json's own encoding, so the output equals `serde_json::to_vec` of the same value with
//! its keys sorted.

use std::borrow::Cow;

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::Error;
use sha2::{Digest, Sha256};

use crate::protocol::tool_json::CANONICAL_TEXT;

/// The canonical JSON bytes of `value`.
#[cfg(test)]
pub(crate) fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Canonical::new();
    out.encode(value)?;
    Ok(out.buf)
}

/// A reusable encoder: its buffers are kept between values, so encoding many items does not
/// allocate (and fault in) fresh memory for each.
pub(crate) struct Canonical {
    buf: Vec<u8>,
    /// Reused buffers for re-emitting objects in key order (one per nesting level in use).
    scratch: Vec<Vec<u8>>,
    /// Objects being written (their entries wait in `buf` to be re-ordered).
    open_objects: usize,
    /// When set, finished array elements outside any object go straight into the hasher.
    sink: Option<Sha256>,
}

impl Canonical {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::with_capacity(64 * 1024),
            scratch: Vec::new(),
            open_objects: 0,
            sink: None,
        }
    }

    /// Feeds the canonical JSON of the struct `value` into `hasher` without ever holding all of
    /// it: one pass per field, in key order, each field's value streamed element by element
    /// when it is an array. Memory follows the largest array element (a message, a turn), not
    /// the item. Values that are not structs are encoded whole.
    pub(crate) fn hash_struct<T: Serialize + ?Sized>(
        &mut self,
        hasher: &mut Sha256,
        value: &T,
    ) -> Result<(), Error> {
        let mut keys = Vec::new();
        if value
            .serialize(Pick {
                want: None,
                keys: &mut keys,
                out: self,
            })
            .is_err()
        {
            hasher.update(self.encode(value)?);
            return Ok(());
        }
        keys.sort_unstable();
        hasher.update(b"{");
        self.sink = Some(std::mem::take(hasher));
        let result = (|| {
            for (i, key) in keys.iter().enumerate() {
                self.buf.clear();
                if i > 0 {
                    self.buf.push(b',');
                }
                serde_json::to_writer(&mut self.buf, key)?;
                self.buf.push(b':');
                value.serialize(Pick {
                    want: Some(key),
                    keys: &mut Vec::new(),
                    out: self,
                })?;
                self.flush();
            }
            Ok(())
        })();
        if let Some(sink) = self.sink.take() {
            *hasher = sink;
        }
        self.buf.clear();
        result?;
        hasher.update(b"}");
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(sink) = self.sink.as_mut() {
            sink.update(&self.buf);
            self.buf.clear();
        }
    }

    /// The canonical JSON of `value`, valid until the next call.
    pub(crate) fn encode<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<&[u8], Error> {
        self.buf.clear();
        value.serialize(&mut *self)?;
        Ok(&self.buf)
    }

    fn scalar<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        serde_json::to_writer(&mut self.buf, v)
    }
}

/// An object being written: its entries' `(key, value byte range)` in arrival order.
pub(crate) struct Object<'a> {
    out: &'a mut Canonical,
    start: usize,
    entries: Vec<(Cow<'static, str>, usize, usize)>,
    pending_key: Option<Cow<'static, str>>,
}

impl Object<'_> {
    fn value<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Error> {
        let from = self.out.buf.len();
        value.serialize(&mut *self.out)?;
        self.entries.push((key, from, self.out.buf.len()));
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        self.out.open_objects -= 1;
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut object = self.out.scratch.pop().unwrap_or_default();
        object.clear();
        object.push(b'{');
        for (i, (key, from, to)) in self.entries.iter().enumerate() {
            if i > 0 {
                object.push(b',');
            }
            serde_json::to_writer(&mut object, key.as_ref())?;
            object.push(b':');
            object.extend_from_slice(&self.out.buf[*from..*to]);
        }
        object.push(b'}');
        self.out.buf.truncate(self.start);
        self.out.buf.extend_from_slice(&object);
        // Keep small buffers for reuse; a huge one (a whole large item) is given back.
        if object.capacity() <= 1 << 20 {
            self.out.scratch.push(object);
        }
        Ok(())
    }
}

/// An array being written.
pub(crate) struct Array<'a> {
    out: &'a mut Canonical,
    first: bool,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !self.first {
            self.out.buf.push(b',');
        }
        self.first = false;
        value.serialize(&mut *self.out)?;
        if self.out.open_objects == 0 {
            self.out.flush();
        }
        Ok(())
    }

    fn finish(self) -> Result<(), Error> {
        self.out.buf.push(b']');
        Ok(())
    }
}

fn unsupported(what: &str) -> Error {
    ser::Error::custom(format!("canonical JSON does not support {what}"))
}

impl<'a> ser::Serializer for &'a mut Canonical {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.scalar(&v)
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.buf.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.scalar(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name == CANONICAL_TEXT {
            // Tool JSON text already proven canonical (`protocol::tool_json`): serde_json
            // writes it verbatim.
            return serde_json::to_writer(&mut self.buf, value);
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.open_objects += 1;
        let start = self.buf.len();
        let mut object = Object {
            out: self,
            start,
            entries: Vec::with_capacity(1),
            pending_key: None,
        };
        object.value(Cow::Borrowed(variant), value)?;
        object.finish()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Array<'a>, Error> {
        self.buf.push(b'[');
        Ok(Array {
            out: self,
            first: true,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Array<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(unsupported("tuple variants"))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Object<'a>, Error> {
        self.open_objects += 1;
        let start = self.buf.len();
        Ok(Object {
            out: self,
            start,
            entries: Vec::with_capacity(len.unwrap_or(4)),
            pending_key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Object<'a>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(unsupported("struct variants"))
    }
}

impl ser::SerializeSeq for Array<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for Array<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Array<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        // Map keys are strings in JSON; anything else is refused like serde_json does.
        match serde_json::to_value(key)? {
            serde_json::Value::String(s) => {
                self.pending_key = Some(Cow::Owned(s));
                Ok(())
            }
            _ => Err(unsupported("non-string map keys")),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| unsupported("a map value without a key"))?;
        self.value(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.value(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// Serialises one struct either to list its field names (`want: None`) or to encode the value
/// of one field (`want: Some(key)`) into the encoder. Anything but a struct is refused.
struct Pick<'k, 'o> {
    want: Option<&'static str>,
    keys: &'k mut Vec<&'static str>,
    out: &'o mut Canonical,
}

struct PickFields<'k, 'o> {
    want: Option<&'static str>,
    keys: &'k mut Vec<&'static str>,
    out: &'o mut Canonical,
}

impl ser::SerializeStruct for PickFields<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        match self.want {
            None => self.keys.push(key),
            Some(want) if want == key => value.serialize(&mut *self.out)?,
            Some(_) => {}
        }
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*);)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<(), Error> {
            Err(unsupported("a non-struct value here"))
        })*
    };
}

impl<'k, 'o> ser::Serializer for Pick<'k, 'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = PickFields<'k, 'o>;
    type SerializeStructVariant = Impossible<(), Error>;

    refuse! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Error> {
        Err(unsupported("a non-struct value here"))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(unsupported("a non-struct value here"))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(unsupported("a non-struct value here"))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(unsupported("a non-struct value here"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(unsupported("a non-struct value here"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(unsupported("a non-struct value here"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(unsupported("a non-struct value here"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(unsupported("a non-struct value here"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Ok(PickFields {
            want: self.want,
            keys: self.keys,
            out: self.out,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(unsupported("a non-struct value here"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::protocol::ImportRequest;

    /// Reference: through `Value`, keys sorted explicitly.
    fn reference(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let body: Vec<String> = keys
                    .into_iter()
                    .map(|k| format!("{}:{}", Value::String(k.clone()), reference(&map[k])))
                    .collect();
                format!("{{{}}}", body.join(","))
            }
            Value::Array(items) => {
                let body: Vec<String> = items.iter().map(reference).collect();
                format!("[{}]", body.join(","))
            }
            scalar => scalar.to_string(),
        }
    }

    #[test]
    fn equals_the_sorted_value_encoding() {
        let req: ImportRequest = serde_json::from_value(json!({
            "source": "aix", "mode": "tail", "idempotencyKey": "k", "personaId": "p",
            "items": [{
                "sourceProvider": "p\u{2028}<&>", "sourceSessionId": "s", "sourceSessionFingerprint": "f",
                "importedAtMs": 12, "session": { "metadata": { "z": [1, 2.5, null, {"b": true, "a": "\"q\""}], "a": {} },
                "isSubagent": true, "labelHint": "h" },
                "turns": [{ "sourceTurnId": "t", "startedAtMs": -1, "queryMessageSourceIds": ["m"],
                            "metadata": { "é": 1, "e": 2 } }],
                "messages": [{ "sourceMessageId": "m", "role": "user", "sequence": 0, "createdAtMs": 1,
                               "contextJson": "ctx", "metadataJson": [1, "x"] }],
                "toolCalls": [{ "sourceToolCallId": "c", "toolName": "x", "startedAtMs": 1, "sequence": 0,
                                "paramsJson": { "k": 18446744073709551615u64 } }]
            }]
        }))
        .unwrap();
        let fast = String::from_utf8(to_canonical_vec(&req).unwrap()).unwrap();
        assert_eq!(fast, reference(&serde_json::to_value(&req).unwrap()));
    }
}
