use std::io::Write;

use base64::Engine;
use flate2::{Compression, write::GzEncoder};
use serde_json::Value;

use super::*;
use crate::protocol::ToolJson;

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
            .written_code()
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

/// Past the in-memory size the reader path gives the same items and codes.
#[test]
fn large_payloads_stream_with_the_same_results() {
    const SMALL: u64 = 1024;
    let decode = |data: &str, max| decode_with([data], "gzip+base64", max, SMALL, parse_large);
    let code = |json: &[u8], max| {
        decode(&encode(json), max)
            .unwrap_err()
            .written_code()
            .into_owned()
    };
    let mut json = br#"{"sourceProvider":"p","sourceSessionId":"s","messages":[{"sourceMessageId":"m","content":""#.to_vec();
    json.extend(std::iter::repeat_n(b'a', SMALL as usize + 10));
    json.extend_from_slice(br#""}]}"#);
    let item = decode(&encode(&json), 1 << 20).unwrap();
    assert_eq!(item.messages.len(), 1);
    assert_eq!(
        code(&json, json.len() as u64 - 1),
        "chunk_payload_too_large"
    );
    assert_eq!(code(&json, SMALL / 2), "chunk_payload_too_large");
    let mut bad = json.clone();
    bad.truncate(bad.len() - 1);
    assert_eq!(code(&bad, 1 << 20), "chunk_payload_json_invalid");
    // Invalid JSON met before the limit is invalid JSON, as when streaming.
    let mut early = b"]".to_vec();
    early.extend(std::iter::repeat_n(b' ', SMALL as usize * 4));
    assert_eq!(code(&early, SMALL * 2), "chunk_payload_json_invalid");
    // A gzip stream cut after a valid start: decode failure.
    let mut cut = STANDARD.decode(encode(&json)).unwrap();
    cut.truncate(cut.len() - 12);
    let err = decode(&STANDARD.encode(&cut), 1 << 20).unwrap_err();
    assert_eq!(err.code(), "chunk_payload_decode_failed");
}

#[test]
fn limit_exactly_at_size_is_accepted() {
    let json = br#"{"sourceProvider":"p"}"#;
    let data = encode(json);
    assert!(decode_chunked_item([&data], "gzip+base64", json.len() as u64).is_ok());
    let err = decode_chunked_item([&data], "gzip+base64", json.len() as u64 - 1).unwrap_err();
    assert_eq!(err.code(), "chunk_payload_too_large");
}

// ---- the streaming parse against serde_json's reader -----------------------------------------
//
// `parse_by_reader` is the path every payload past the slice maximum took before the streaming
// parse: `serde_json::from_reader` over the prefix and the rest. The streaming parse must give
// exactly its item or its code, for every input and every place the stream may fail.

/// The inflate limit the outcomes name (any value: both paths report the same one).
const LIMIT: u64 = 1 << 30;

/// An item or the code of its error.
type Outcome = Result<ImportSessionItem, String>;

fn outcome(result: Result<ImportSessionItem, ImportError>) -> Outcome {
    result.map_err(|err| err.written_code().into_owned())
}

/// The inflated stream of a test: `data` in pieces of at most `piece` bytes, failing with
/// `fault` once `fail_at` bytes have been read (never, when `None`).
struct TestStream {
    data: Vec<u8>,
    at: usize,
    piece: usize,
    fail_at: Option<usize>,
    fault: Fault,
}

impl Read for TestStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let end = self.fail_at.unwrap_or(self.data.len()).min(self.data.len());
        if self.at == end && self.fail_at.is_some_and(|at| at <= self.data.len()) {
            return Err(self.fault.into_io());
        }
        let n = (end - self.at).min(out.len()).min(self.piece);
        out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// How one payload reaches the parse: where the inflated prefix ends, the read sizes, and
/// where (and how) the stream fails.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    prefix: usize,
    piece: usize,
    block: usize,
    fault: Option<(usize, Fault)>,
}

/// The prefix and the rest as `decode_with` hands them over: a failure inside the prefix
/// ends the prefix there.
fn deliver(json: &[u8], d: Delivery) -> (Vec<u8>, TestStream) {
    let cut = d.fault.map_or(json.len(), |(at, _)| at.min(json.len()));
    let prefix = d.prefix.min(cut);
    let (fail_at, fault) = match d.fault {
        Some((at, fault)) if at <= json.len() => (Some(at - prefix), fault),
        _ => (None, Fault::DecodeFailed),
    };
    let rest = TestStream {
        data: json[prefix..].to_vec(),
        at: 0,
        piece: d.piece.max(1),
        fail_at,
        fault,
    };
    (json[..prefix].to_vec(), rest)
}

fn streamed(json: &[u8], d: Delivery) -> Outcome {
    let (prefix, rest) = deliver(json, d);
    outcome(parse_streamed(prefix, rest, LIMIT, d.block.max(1)))
}

fn by_reader(json: &[u8], d: Delivery) -> Outcome {
    let (prefix, rest) = deliver(json, d);
    outcome(parse_by_reader(prefix, rest, LIMIT))
}

/// Both paths agree on `json` delivered as `d`; without a failure, so does a slice parse of
/// the whole payload. Returns the outcome.
fn assert_same(json: &[u8], d: Delivery) -> Outcome {
    let reader = by_reader(json, d);
    let streaming = streamed(json, d);
    assert_eq!(
        streaming,
        reader,
        "{d:?} on {:?}",
        String::from_utf8_lossy(json)
    );
    if d.fault.is_none() {
        let whole =
            outcome(serde_json::from_slice(json).map_err(|_| ImportError::ChunkPayloadJsonInvalid));
        assert_eq!(streaming, whole, "{:?}", String::from_utf8_lossy(json));
    }
    streaming
}

/// Every failure position (both kinds), with the prefix at the start, at the failure and
/// whole, and windows refilled a byte at a time or more.
fn assert_same_everywhere(json: &[u8]) {
    for block in [1, 3, 64] {
        for prefix in [0, json.len() / 2, json.len()] {
            let d = Delivery {
                prefix,
                piece: 5,
                block,
                fault: None,
            };
            let _ = assert_same(json, d);
            for at in 0..=json.len() {
                for fault in [Fault::TooLarge, Fault::DecodeFailed] {
                    let _ = assert_same(
                        json,
                        Delivery {
                            fault: Some((at, fault)),
                            ..d
                        },
                    );
                }
            }
        }
    }
}

/// Inputs that guard the places where the two paths could part: each is checked at every
/// failure position.
#[test]
fn tricky_payloads_match_the_reader_everywhere() {
    let docs: &[&[u8]] = &[
        br#"{}"#,
        br#"  {"sourceProvider":"p","sourceSessionId":"s","turns":[{"sourceTurnId":"t","startedAtMs":1}]}  "#,
        // An escaped key is the same field; an unknown one is skipped.
        br#"{"tu\u0072ns":[{"sourceTurnId":"t"}],"extra":{"a":[1,2,{"b":null}]},"x":"\u00e9"}"#,
        // Duplicate fields: the derived visitor's error, before the second value is read.
        br#"{"turns":[],"turns":[{"sourceTurnId":"t"}]}"#,
        br#"{"toolCalls":[{"sourceToolCallId":"c"}],"tool_calls":[{"sourceToolCallId":"d"}]}"#,
        // Trailing bytes and whitespace.
        br#"{"sourceProvider":"p"} x"#,
        b"{} {}",
        b"{}\n\t\r ",
        br#"{"sourceProvider":"p"},"#,
        // Numbers and literals at the end of a span.
        br#"{"importedAtMs":12}"#,
        br#"{"importedAtMs":-0.5e3}"#,
        br#"{"importedAtMs":12x}"#,
        br#"{"importedAtMs":01}"#,
        br#"{"wholeSession":true,"retract":tru}"#,
        br#"{"wholeSession":truex}"#,
        br#"{"session":null,"turns":null,"messages":[null]}"#,
        // Irregular `\u` escapes: serde_json's reader reads four bytes past the backslash.
        br#"{"turns":[{"sourceTurnId":"\u12"}],"messages":[]}"#,
        br#"{"sourceProvider":"\u1"}"#,
        br#"{"turns":[{"metadata":{"k":"\uD800\u00"}}]}"#,
        br#"{"\u12":1}"#,
        br#"{"turns":[{"sourceTurnId":"\uD800\uDC00"}]}"#,
        // Structure errors inside and between elements.
        br#"{"turns":[1,]}"#,
        br#"{"turns":[{},]}"#,
        br#"{"turns":[{}],}"#,
        br#"{"turns":[{}]"#,
        br#"{"sourceProvider":"p",}"#,
        br#"{"turns":[,1]}"#,
        br#"{"turns":[{}{}]}"#,
        br#"{"turns":[{} , {} ]}"#,
        br#"{"turns":[{"sourceTurnId":"t"]}"#,
        br#"{"turns":[{"sourceTurnId":"t"}}"#,
        br#"{"turns":[]]}"#,
        br#"{"sourceProvider":[1,2],"turns":[]}"#,
        br#"{"turns":{"sourceTurnId":"t"}}"#,
        br#"{"turns":"x"}"#,
        br#"{"a":]}"#,
        br#"{,}"#,
        br#"{"a" 1}"#,
        br#"{"a":1,}"#,
        br#"{"a":1 "b":2}"#,
        br#"{1}"#,
        br#"{"a":1,2:3}"#,
        br#"{"a"}"#,
        br#"{"a":}"#,
        br#"{"a":1}}"#,
        br#"{"turns":[1 2]}"#,
        br#"{"turns":[1,,2]}"#,
        br#"{"session":{"metadata":[1,2"#,
        // A tool call's bodies (raw JSON kept as text when canonical).
        br#"{"toolCalls":[{"sourceToolCallId":"c","paramsJson":{"a":[1,2.5,"x"]},"resultJson":"t\"x"}]}"#,
        br#"{"toolCalls":[{"paramsJson":{"b":1, "a":2},"resultJson":[ ]}]}"#,
        // Not an object: serde_json's reader either way.
        br#"[null,null]"#,
        br#"  "x""#,
        b"",
        b"   ",
    ];
    for doc in docs {
        assert_same_everywhere(doc);
    }
}

/// Invalid UTF-8 and control characters: refused in a string the item keeps or a raw tool
/// body, accepted in a skipped member, as by serde_json.
#[test]
fn bad_bytes_in_strings_match_the_reader() {
    let docs: &[&[u8]] = &[
        b"{\"sourceProvider\":\"\xff\"}",
        b"{\"x\":\"\xff\",\"sourceProvider\":\"p\"}",
        b"{\"turns\":[{\"sourceTurnId\":\"\xc3\"}]}",
        b"{\"toolCalls\":[{\"paramsJson\":{\"k\":\"\xe2\x82\"}}]}",
        b"{\"turns\":[{\"unknown\":\"\xff\"}]}",
        b"{\"sourceProvider\":\"a\x01\"}",
        b"{\"x\":\"a\x1f\"}",
        b"{\"t\xffurns\":[]}",
    ];
    for doc in docs {
        assert_same_everywhere(doc);
    }
    let ok = assert_same(
        b"{\"x\":\"\xff\",\"sourceProvider\":\"p\"}",
        Delivery {
            prefix: 0,
            piece: 7,
            block: 2,
            fault: None,
        },
    );
    assert_eq!(ok.unwrap().source_provider, "p");
}

/// An item holding `depth` nested arrays where `{}` is in `template`.
fn nested(template: &str, depth: usize) -> Vec<u8> {
    let value = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    template.replace("{}", &value).into_bytes()
}

/// The deepest nesting serde_json accepts at `{}` of `template`, up to `cap`.
fn deepest_accepted(template: &str, cap: usize) -> usize {
    (1..=cap)
        .take_while(|&depth| {
            serde_json::from_slice::<ImportSessionItem>(&nested(template, depth)).is_ok()
        })
        .last()
        .unwrap_or(0)
}

/// serde_json's recursion limit counts from the item object: a value parsed from its span
/// alone must refuse the depth the whole parse refuses. Measured: serde_json accepts 127
/// nested containers in all (its depth budget is 128, and the 128th container fails), the item
/// object included. A skipped member is not counted (serde_json skips without recursion), nor
/// are the containers around a tool body (kept raw: 128 levels of its own pass, the depth
/// `ToolJson::is_canonical` vouches for).
#[test]
fn recursion_limit_is_the_whole_parse_one() {
    let cases = [
        // (template, containers around `{}`, deepest accepted)
        (r#"{"session":{"metadata":{}}}"#, 2, Some(125)),
        (r#"{"messages":[{"metadataJson":{}}]}"#, 3, Some(124)),
        (r#"{"turns":[{"metadata":{"a":{}}}]}"#, 4, Some(123)),
        (r#"{"toolCalls":[{"paramsJson":{}}]}"#, 3, Some(128)),
        (r#"{"unknown":{}}"#, 1, None),
        (r#"{"turns":[{"unknown":{}}]}"#, 3, None),
    ];
    for (template, around, deepest) in cases {
        let found = deepest_accepted(template, 300);
        match deepest {
            Some(deepest) => {
                assert_eq!(found, deepest, "{template}");
                if template.contains("metadata") {
                    assert_eq!(around + deepest, 127, "{template}");
                }
            }
            None => assert_eq!(found, 300, "{template}"),
        }
        for depth in [1, found.saturating_sub(1), found, found + 1, found + 2] {
            let json = nested(template, depth);
            for prefix in [0, json.len()] {
                let d = Delivery {
                    prefix,
                    piece: 64,
                    block: 64,
                    fault: None,
                };
                let _ = assert_same(&json, d);
                let _ = assert_same(
                    &json,
                    Delivery {
                        fault: Some((json.len() - 3, Fault::DecodeFailed)),
                        ..d
                    },
                );
            }
        }
    }
}

// ---- generated items ----------------------------------------------------------------------

/// xorshift: the item and its damage drawn from one proptest seed.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn text(&mut self) -> String {
        const TEXTS: &[&str] = &[
            "",
            "a",
            " padded ",
            "ü é ß",
            "😀 emoji",
            "quote \" inside",
            "back \\ slash",
            "tab\tnew\nline",
            "control \u{1} \u{1f}",
            "{[,]}:",
            "\u{2028}\u{fffd}",
            "\\u0041 literally",
        ];
        let mut text = TEXTS[self.below(TEXTS.len())].to_owned();
        if self.chance(6) {
            // Long enough to cross read blocks and window refills.
            let n = self.below(3000);
            text.extend(std::iter::repeat_n('x', n));
        }
        text
    }

    fn opt_text(&mut self) -> Option<String> {
        self.chance(2).then(|| self.text())
    }

    fn int(&mut self) -> i64 {
        let shift = self.below(64) as u32;
        (self.next() as i64) >> shift
    }

    fn opt_int(&mut self) -> Option<i64> {
        self.chance(2).then(|| self.int())
    }

    fn json(&mut self, depth: usize) -> Value {
        match self.below(if depth == 0 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(self.chance(2)),
            2 => Value::from(self.int()),
            3 => Value::from(self.next()),
            4 => Value::from(self.int() as f64 / 7.0),
            5 => Value::String(self.text()),
            6 => Value::Array((0..self.below(4)).map(|_| self.json(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|_| (self.text(), self.json(depth - 1)))
                    .collect(),
            ),
        }
    }

    fn opt_json(&mut self) -> Option<Value> {
        self.chance(2).then(|| self.json(3))
    }

    fn item(&mut self) -> ImportSessionItem {
        use crate::protocol::{Message, SessionInfo, ToolCall, Turn};
        let session = SessionInfo {
            label_hint: self.opt_text(),
            created_at_ms: self.opt_int(),
            workspace_path: self.opt_text(),
            is_subagent: self.chance(2),
            metadata: self.opt_json(),
            ..SessionInfo::default()
        };
        let turns = (0..self.below(4))
            .map(|_| Turn {
                source_turn_id: self.text(),
                started_at_ms: self.int(),
                completed_at_ms: self.opt_int(),
                model: self.opt_text(),
                total_tokens: self.opt_int(),
                query_message_source_ids: (0..self.below(3)).map(|_| self.text()).collect(),
                metadata: self.opt_json(),
                tool_call_count: self.opt_int(),
                ..Turn::default()
            })
            .collect();
        let messages = (0..self.below(5))
            .map(|_| Message {
                source_message_id: self.text(),
                source_turn_id: self.opt_text(),
                role: self.text(),
                content: self.opt_text(),
                sequence: self.int(),
                created_at_ms: self.int(),
                thinking: self.opt_text(),
                context_json: self.opt_json(),
                metadata_json: self.opt_json(),
            })
            .collect();
        let tool_calls = (0..self.below(4))
            .map(|_| ToolCall {
                source_tool_call_id: self.text(),
                source_turn_id: self.opt_text(),
                tool_name: self.text(),
                params_json: self.opt_json().map(ToolJson::from),
                result_json: self.opt_json().map(ToolJson::from),
                status: self.opt_text(),
                started_at_ms: self.int(),
                sequence: self.int(),
                error: self.opt_text(),
                ..ToolCall::default()
            })
            .collect();
        ImportSessionItem {
            source_provider: self.text(),
            source_session_id: self.text(),
            source_session_fingerprint: self.text(),
            imported_at_ms: self.int(),
            session,
            turns,
            messages,
            tool_calls,
            mapping_version: self.chance(2).then(|| self.next() as u32),
            whole_session: self.chance(2),
            copies_elsewhere: self.chance(3),
            retract: self.chance(4),
        }
    }

    /// The item's JSON as a sender may write it: compact or pretty, some keys in their other
    /// spelling or escaped, an unknown member.
    fn item_json(&mut self) -> Vec<u8> {
        let item = self.item();
        let mut text = if self.chance(3) {
            serde_json::to_string_pretty(&item).unwrap()
        } else {
            serde_json::to_string(&item).unwrap()
        };
        let respellings = [
            ("\"toolCalls\":", "\"tool_calls\":"),
            ("\"sourceProvider\":", "\"source_provider\":"),
            ("\"turns\":", "\"tu\\u0072ns\":"),
            ("\"metadataJson\":", "\"metadata_json\":"),
        ];
        for (from, to) in respellings {
            if self.chance(3) {
                text = text.replacen(from, to, 1);
            }
        }
        if self.chance(3) {
            text = text.replacen('{', r#"{"extra":{"deep":[1,[2,[3]],{"x":"y"}]},"#, 1);
        }
        text.into_bytes()
    }

    /// `json` damaged the ways a broken sender or a bit flip would.
    fn damage(&mut self, json: &mut Vec<u8>) {
        const BYTES: &[u8] = b"\"\\{}[],: 0-nt\x01\xff\xc3";
        const SNIPPETS: &[&[u8]] = &[
            b"\\u",
            b"\\u12",
            b"\\uD800",
            b",",
            b"]",
            b"}",
            br#""x":1,"#,
            br#""turns":[],"#,
            b"[[[[",
            b"null",
            b" \n",
        ];
        for _ in 0..self.below(3) {
            let at = self.below(json.len() + 1);
            match self.below(5) {
                0 => json.truncate(at),
                1 if at < json.len() => json[at] = BYTES[self.below(BYTES.len())],
                2 => {
                    let snippet = SNIPPETS[self.below(SNIPPETS.len())];
                    json.splice(at..at, snippet.iter().copied());
                }
                3 if at < json.len() => {
                    json.remove(at);
                }
                _ => json.extend_from_slice([&b" "[..], b"x", b"{}", b"\n\t"][self.below(4)]),
            }
        }
    }
}

/// Top-level tokens and fragments, for objects that are mostly structure.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\"a\"",
    "\"turns\"",
    "\"session\"",
    "\"sourceProvider\"",
    "\"toolCalls\"",
    "\"tu\\u0072ns\"",
    "1",
    "-2.5",
    "true",
    "nul",
    "null",
    "\"x\"",
    "\"\\u1\"",
    "\"\\",
    "{\"sourceTurnId\":\"t\"}",
    "{}",
    "[]",
    "x",
    "\"turns\":[",
    "\"messages\":[{}",
    "],",
    "\"a\":1",
    ",{}",
    "\"session\":{}",
    "}",
];

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 512, ..Default::default() })]

    /// Objects made of structure tokens, good and bad, at every failure position: the
    /// streaming parse reads the item object's members and array elements as serde_json does.
    #[test]
    fn token_soup_matches_the_reader(
        picks in proptest::collection::vec(0..TOKENS.len(), 0..14),
        seed in proptest::prelude::any::<u64>(),
    ) {
        let mut json = b"{".to_vec();
        for pick in picks {
            json.extend_from_slice(TOKENS[pick].as_bytes());
        }
        let mut draw = Draw(seed | 1);
        let d = Delivery {
            prefix: draw.below(json.len() + 1),
            piece: 1 + draw.below(8),
            block: 1 + draw.below(8),
            fault: None,
        };
        let _ = assert_same(&json, d);
        for at in 0..=json.len() {
            let fault = if draw.chance(2) { Fault::TooLarge } else { Fault::DecodeFailed };
            let _ = assert_same(&json, Delivery { fault: Some((at, fault)), ..d });
        }
    }

    /// Real-shaped items, whole or damaged, delivered in any pieces and failing anywhere: the
    /// streaming parse gives the reader's item or code.
    #[test]
    fn generated_items_match_the_reader(seed in proptest::prelude::any::<u64>()) {
        let mut draw = Draw(seed | 1);
        let mut json = draw.item_json();
        let damaged = draw.chance(2);
        if damaged {
            draw.damage(&mut json);
        }
        let fault = |draw: &mut Draw| {
            let kind = if draw.chance(2) { Fault::TooLarge } else { Fault::DecodeFailed };
            (draw.below(json.len() + 1), kind)
        };
        for round in 0..6 {
            let blocks = if draw.chance(2) { 16 } else { 4096 };
            let d = Delivery {
                prefix: draw.below(json.len() + 1),
                piece: 1 + draw.below(300),
                block: 1 + draw.below(blocks),
                fault: (round > 0).then(|| fault(&mut draw)),
            };
            let outcome = assert_same(&json, d);
            if round == 0 && !damaged {
                proptest::prop_assert!(outcome.is_ok(), "{:?}", outcome);
            }
        }
    }

    /// The same through the whole decoder (base64, gzip, the inflate limit, a cut or garbled
    /// upload), with a slice maximum below the payload: the streaming parse and the reader it
    /// replaces see the same reads and give the same result.
    #[test]
    fn whole_decoder_matches_the_reader(seed in proptest::prelude::any::<u64>()) {
        let mut draw = Draw(seed | 1);
        let mut json = draw.item_json();
        if draw.chance(2) {
            draw.damage(&mut json);
        }
        let mut gz = STANDARD.decode(encode(&json)).unwrap();
        match draw.below(4) {
            0 => {
                let at = draw.below(gz.len());
                gz.truncate(at);
            }
            1 => {
                let at = draw.below(gz.len());
                gz[at] ^= 1 << draw.below(8);
            }
            _ => {}
        }
        let mut data = STANDARD.encode(&gz);
        if draw.chance(8) {
            let at = draw.below(data.len() + 1);
            data.insert(at, '!');
        }
        let limit = if draw.chance(3) { draw.below(json.len() + 2) as u64 } else { LIMIT };
        let slice_max = draw.below(json.len() / 2 + 1) as u64;
        let (a, b) = data.split_at(draw.below(data.len() + 1));
        let decode = |large: LargeParse| {
            outcome(decode_with([a, b], "gzip+base64", limit, slice_max, large))
        };
        let reader = decode(|prefix, rest, limit| parse_by_reader(prefix, rest, limit));
        let streaming = decode(parse_large);
        proptest::prop_assert_eq!(streaming, reader);
    }
}

/// A payload of many read blocks, through the whole decoder, cut, garbled and limited at
/// places spread over it: base64 and gzip see the reads they saw under the reader path, so
/// they fail at the same byte and the codes agree.
#[test]
fn large_garbled_uploads_match_the_reader() {
    let mut draw = Draw(0x5eed);
    let mut item = draw.item();
    item.messages = (0..120)
        .map(|i| crate::protocol::Message {
            source_message_id: format!("m{i}"),
            role: "user".into(),
            content: Some(format!("{i} {}", "é\"\\x".repeat(800 + i))),
            ..Default::default()
        })
        .collect();
    let json = serde_json::to_vec(&item).unwrap();
    assert!(json.len() > 8 * stream::READ_BLOCK, "{}", json.len());
    let gz = STANDARD.decode(encode(&json)).unwrap();
    let decode = |data: &str, limit: u64, large: LargeParse| {
        outcome(decode_with([data], "gzip+base64", limit, 1000, large))
    };
    let compare = |data: &str, limit: u64| {
        let reader = decode(data, limit, |prefix, rest, limit| {
            parse_by_reader(prefix, rest, limit)
        });
        let streaming = decode(data, limit, parse_large);
        assert_eq!(streaming, reader);
        streaming
    };
    // (The item comes back trimmed and folded, so only its success is checked here.)
    assert!(compare(&STANDARD.encode(&gz), LIMIT).is_ok());
    for step in 1..16 {
        let at = gz.len() * step / 16;
        compare(&STANDARD.encode(&gz[..at]), LIMIT).unwrap_err();
        let mut flipped = gz.clone();
        flipped[at] ^= 0x10;
        let _ = compare(&STANDARD.encode(&flipped), LIMIT);
        let mut data = STANDARD.encode(&gz);
        data.insert(data.len() * step / 16, '!');
        compare(&data, LIMIT).unwrap_err();
        let limit = (json.len() * step / 16) as u64;
        compare(&STANDARD.encode(&gz), limit).unwrap_err();
    }
}
