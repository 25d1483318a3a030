//! Lets a type be deserialized by serde_json from a slice of the stream window through a
//! deserializer of any lifetime.
//!
//! The item's visitor (derived for `RawItem`) hands [`super::stream`] seeds that are
//! `DeserializeSeed<'de>` for the `'de` it was called with, while serde_json's fast slice
//! deserializer is a `Deserializer<'a>` for the borrow of the window, which refills between
//! values and so cannot lend for `'de`. Every type of an item owns its data, so nothing needs
//! `'a` to outlive the call: [`Transient`] presents the `'a` side as a `'de` side and hands
//! what serde_json lends over as transient data (`visit_borrowed_str` becomes `visit_str`),
//! which an owned type accepts exactly as it would the borrowed form. Everything else is
//! passed through unchanged, so errors, depth counting and `RawValue` are serde_json's own.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, Error, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// A deserializer (or a sequence, map, enum or variant access) of lifetime `'a`, presented as
/// one of any lifetime `'de`.
pub(super) struct Transient<'a, T>(T, PhantomData<&'a ()>);

impl<T> Transient<'_, T> {
    pub(super) fn new(inner: T) -> Self {
        Self(inner, PhantomData)
    }
}

/// A visitor (or seed) of lifetime `'de`, presented as one of lifetime `'a`: the other half
/// of [`Transient`].
struct Recipient<'de, T>(T, PhantomData<&'de ()>);

impl<T> Recipient<'_, T> {
    fn new(inner: T) -> Self {
        Self(inner, PhantomData)
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method($($arg,)* Recipient::new(visitor))
        }
    )*};
}

impl<'a, 'de, D: Deserializer<'a>> Deserializer<'de> for Transient<'a, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf(); deserialize_option();
        deserialize_unit(); deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize); deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map(); deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<'a, 'de, A: SeqAccess<'a>> SeqAccess<'de> for Transient<'a, A> {
    type Error = A::Error;

    fn next_element_seed<T>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error>
    where
        T: DeserializeSeed<'de>,
    {
        self.0.next_element_seed(Recipient::new(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'a, 'de, A: MapAccess<'a>> MapAccess<'de> for Transient<'a, A> {
    type Error = A::Error;

    fn next_key_seed<K>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error>
    where
        K: DeserializeSeed<'de>,
    {
        self.0.next_key_seed(Recipient::new(seed))
    }

    fn next_value_seed<V>(&mut self, seed: V) -> Result<V::Value, A::Error>
    where
        V: DeserializeSeed<'de>,
    {
        self.0.next_value_seed(Recipient::new(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'a, 'de, A: EnumAccess<'a>> EnumAccess<'de> for Transient<'a, A> {
    type Error = A::Error;
    type Variant = Transient<'a, A::Variant>;

    fn variant_seed<V>(self, seed: V) -> Result<(V::Value, Self::Variant), A::Error>
    where
        V: DeserializeSeed<'de>,
    {
        let (value, variant) = self.0.variant_seed(Recipient::new(seed))?;
        Ok((value, Transient::new(variant)))
    }
}

impl<'a, 'de, A: VariantAccess<'a>> VariantAccess<'de> for Transient<'a, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T>(self, seed: T) -> Result<T::Value, A::Error>
    where
        T: DeserializeSeed<'de>,
    {
        self.0.newtype_variant_seed(Recipient::new(seed))
    }

    fn tuple_variant<V>(self, len: usize, visitor: V) -> Result<V::Value, A::Error>
    where
        V: Visitor<'de>,
    {
        self.0.tuple_variant(len, Recipient::new(visitor))
    }

    fn struct_variant<V>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error>
    where
        V: Visitor<'de>,
    {
        self.0.struct_variant(fields, Recipient::new(visitor))
    }
}

impl<'a, 'de, T: DeserializeSeed<'de>> DeserializeSeed<'a> for Recipient<'de, T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<T::Value, D::Error> {
        self.0.deserialize(Transient::new(deserializer))
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: Error>(self, v: $ty) -> Result<V::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'a, 'de, V: Visitor<'de>> Visitor<'a> for Recipient<'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
        visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
        visit_u128(u128); visit_f32(f32); visit_f64(f64); visit_char(char); visit_str(&str);
        visit_string(String); visit_bytes(&[u8]); visit_byte_buf(Vec<u8>);
    }

    fn visit_borrowed_str<E: Error>(self, v: &'a str) -> Result<V::Value, E> {
        self.0.visit_str(v)
    }

    fn visit_borrowed_bytes<E: Error>(self, v: &'a [u8]) -> Result<V::Value, E> {
        self.0.visit_bytes(v)
    }

    fn visit_none<E: Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_some<D: Deserializer<'a>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(Transient::new(deserializer))
    }

    fn visit_unit<E: Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_newtype_struct<D>(self, deserializer: D) -> Result<V::Value, D::Error>
    where
        D: Deserializer<'a>,
    {
        self.0.visit_newtype_struct(Transient::new(deserializer))
    }

    fn visit_seq<A: SeqAccess<'a>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Transient::new(seq))
    }

    fn visit_map<A: MapAccess<'a>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Transient::new(map))
    }

    fn visit_enum<A: EnumAccess<'a>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Transient::new(data))
    }
}
