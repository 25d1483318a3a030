//! A tool call's parameters or result (`paramsJson`, `resultJson`): arbitrary JSON, carried as
//! the text that crossed the pipe when that text is already what the ledger stores.
//!
//! The ledger stores a tool body as `serde_json`'s compact text of its parsed value (object
//! keys in byte order, since `serde_json::Map` is a `BTreeMap` here), and the request hash
//! reads the same canonical form. aix writes exactly that text, so parsing it into a `Value`
//! only to write it again is pure cost (most of an import's bytes are tool bodies). A body is
//! kept as text when [`is_canonical`] proves the text equal to what its value would serialise
//! to; any other text (another client's key order, spacing, escapes or number forms) is parsed
//! and stored as today. Either way the stored text and the hash are the same.

use std::fmt;

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// The name under which [`ToolJson::Text`] serialises as a newtype: transparent to every
/// serializer but the canonical encoder of the request hash (`import::canonical`), which copies
/// the text verbatim instead of reading it as a string.
pub const CANONICAL_TEXT: &str = "$nex::CanonicalJsonText";

/// Tool JSON, as text proven canonical or as a parsed value.
#[derive(Clone)]
pub enum ToolJson {
    /// Text equal to `serde_json::to_string` of its own value (checked by [`is_canonical`]).
    Text(Box<RawValue>),
    Value(Value),
}

impl ToolJson {
    /// The compact JSON text the ledger stores (the canonical form).
    pub fn into_text(self) -> String {
        match self {
            ToolJson::Text(raw) => String::from(Box::<str>::from(raw)),
            ToolJson::Value(value) => value_text(&value),
        }
    }

    /// [`into_text`](Self::into_text) without consuming.
    pub fn text(&self) -> String {
        match self {
            ToolJson::Text(raw) => raw.get().to_owned(),
            ToolJson::Value(value) => value_text(value),
        }
    }

    /// The parsed value (text is parsed on each call: for tests and rare readers).
    pub fn to_value(&self) -> Value {
        match self {
            // Canonical text was parsed once already when it was checked.
            ToolJson::Text(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            ToolJson::Value(value) => value.clone(),
        }
    }

    /// The value when it is held parsed (what aix builds), else `None`.
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            ToolJson::Text(_) => None,
            ToolJson::Value(value) => Some(value),
        }
    }

    pub fn is_null(&self) -> bool {
        match self {
            ToolJson::Text(raw) => raw.get() == "null",
            ToolJson::Value(value) => value.is_null(),
        }
    }
}

fn value_text(value: &Value) -> String {
    // A `Value` always serialises: its keys are strings.
    serde_json::to_string(value).expect("a Value serialises")
}

impl From<Value> for ToolJson {
    fn from(value: Value) -> Self {
        ToolJson::Value(value)
    }
}

impl From<ToolJson> for Value {
    fn from(json: ToolJson) -> Self {
        match json {
            ToolJson::Value(value) => value,
            text => text.to_value(),
        }
    }
}

impl PartialEq for ToolJson {
    /// Equal when their canonical texts are.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ToolJson::Value(a), ToolJson::Value(b)) => a == b,
            (ToolJson::Text(a), ToolJson::Text(b)) => a.get() == b.get(),
            (a, b) => a.text() == b.text(),
        }
    }
}

impl fmt::Debug for ToolJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolJson::Text(raw) => f.debug_tuple("Text").field(&raw.get()).finish(),
            ToolJson::Value(value) => f.debug_tuple("Value").field(value).finish(),
        }
    }
}

impl Serialize for ToolJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolJson::Text(raw) => serializer.serialize_newtype_struct(CANONICAL_TEXT, raw),
            ToolJson::Value(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ToolJson {
    /// Keeps the text when it is canonical, else parses it (errors as a `Value` would).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        if is_canonical(raw.get().as_bytes()) {
            return Ok(ToolJson::Text(raw));
        }
        serde_json::from_str(raw.get())
            .map(ToolJson::Value)
            .map_err(serde::de::Error::custom)
    }
}

/// True when `json` (one valid JSON document) is byte for byte `serde_json::to_string` of its
/// parsed `Value`: no whitespace, object keys strictly increasing in byte order, strings with
/// serde_json's escapes only, numbers in the form they print in. Conservative: `false` for
/// anything it does not prove (a key with an escape, a fraction or exponent that does not
/// print back the same), which only costs the slow path.
pub fn is_canonical(json: &[u8]) -> bool {
    let mut scan = Scan { s: json, i: 0 };
    scan.value(0) && scan.i == json.len()
}

/// serde_json refuses deeper documents; past it the text is not ours to vouch for.
const MAX_DEPTH: usize = 128;

struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => depth < MAX_DEPTH && self.object(depth + 1),
            Some(b'[') => depth < MAX_DEPTH && self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut previous: Option<&'a [u8]> = None;
        loop {
            let Some((key, escaped)) = self.string() else {
                return false;
            };
            // Escaped keys would have to be compared unescaped: not worth it, they are rare.
            if escaped || previous.is_some_and(|p| p >= key) {
                return false;
            }
            previous = Some(key);
            if !self.eat(b':') || !self.value(depth) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// A string written as serde_json writes it: its contents (between the quotes) and
    /// whether it holds an escape.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let s: &'a [u8] = self.s;
        if s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            let rest = &s[self.i..];
            // Valid JSON has no raw control characters in a string; all else is written as is.
            self.i += memchr::memchr2(b'"', b'\\', rest)?;
            match s.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some((&s[start..self.i - 1], escaped));
                }
                _ => {
                    escaped = true;
                    match *s.get(self.i + 1)? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let hex = s.get(self.i + 2..self.i + 6)?;
                            // serde_json writes `\u00XX` (lowercase) for the other controls only.
                            let code = std::str::from_utf8(hex).ok()?;
                            let lower = hex.iter().all(|h| matches!(h, b'0'..=b'9' | b'a'..=b'f'));
                            let value = u32::from_str_radix(code, 16).ok()?;
                            if !lower
                                || value >= 0x20
                                || matches!(value, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)
                            {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
            }
        }
    }

    fn number(&mut self) -> bool {
        let start = self.i;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let token = &self.s[start..self.i];
        let digits = token.strip_prefix(b"-").unwrap_or(token);
        let integer = digits.iter().all(u8::is_ascii_digit);
        // Integers that fit i64/u64 print back as they are; `-0` prints `-0.0`.
        if integer && token == b"0" {
            return true;
        }
        if integer && !digits.is_empty() && digits[0] != b'0' && digits.len() <= 18 {
            return true;
        }
        // Anything else: does it print back the same?
        let Ok(text) = std::str::from_utf8(token) else {
            return false;
        };
        serde_json::from_str::<serde_json::Number>(text)
            .is_ok_and(|n| serde_json::to_string(&n).is_ok_and(|printed| printed == text))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn round_trips(text: &str) -> bool {
        serde_json::from_str::<Value>(text)
            .is_ok_and(|v| serde_json::to_string(&v).is_ok_and(|t| t == text))
    }

    #[test]
    fn canonical_texts_are_recognised() {
        for text in [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e\"\\\n\u001f\u0000é","e":-5}}"#,
            r#"{"":0,"A":1,"a":2,"é":3}"#,
            r#""plain""#,
            "[]",
            "{}",
            "0",
            "1.5",
            "-2.5e-7",
            "1e+100",
            "18446744073709551615",
            "-9223372036854775808",
            "\"\u{7f}\"",
        ] {
            assert!(round_trips(text), "{text} should round-trip");
            assert!(is_canonical(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn other_forms_are_refused() {
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a": 1}"#,
            " 1",
            "[1, 2]",
            r#""\/""#,
            r#""\u0041""#,
            r#""\u001F""#,
            r#""\u0009""#,
            r#""\ud83d\ude00""#,
            r#"{"\"":1}"#,
            "-0",
            "1E5",
            "1e5",
            "1e16",
            "1.50",
            "100000000000000000000",
            "-18446744073709551616",
            "1 2",
        ] {
            assert!(!is_canonical(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn deserialises_to_text_only_when_canonical() {
        let text: ToolJson = serde_json::from_str(r#"{"a":1,"b":"x"}"#).unwrap();
        assert!(matches!(text, ToolJson::Text(_)));
        let parsed: ToolJson = serde_json::from_str(r#"{"b":"x", "a":1}"#).unwrap();
        assert!(matches!(parsed, ToolJson::Value(_)));
        assert_eq!(text, parsed);
        assert_eq!(parsed.text(), r#"{"a":1,"b":"x"}"#);
        assert_eq!(text.to_value(), json!({"a": 1, "b": "x"}));
        // Serialised by serde_json, the text is written as is, not as a string.
        assert_eq!(
            serde_json::to_string(&vec![text]).unwrap(),
            r#"[{"a":1,"b":"x"}]"#
        );
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[\\x00-\\x7f\u{e9}\u{1f600}]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[\\x00-\\x7f\u{e9}]{0,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn has_escaped_key(value: &Value) -> bool {
        match value {
            Value::Array(items) => items.iter().any(has_escaped_key),
            Value::Object(map) => map.iter().any(|(k, v)| {
                k.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') || has_escaped_key(v)
            }),
            _ => false,
        }
    }

    proptest! {
        /// The check never vouches for a text that would not print back the same.
        #[test]
        fn canonical_means_round_trip(value in any_json(), spaced in any::<bool>()) {
            let text = if spaced {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                value.to_string()
            };
            if is_canonical(text.as_bytes()) {
                prop_assert!(round_trips(&text), "{}", text);
            }
            // serde_json's own compact output is recognised unless a key has an escape or a
            // float does not parse back to itself (serde_json's default float parser is not
            // exact: `1.6958211001273316e-112` reads back as another number).
            if !spaced && !has_escaped_key(&value) {
                prop_assert_eq!(is_canonical(text.as_bytes()), round_trips(&text), "{}", text);
            }
        }
    }
}
