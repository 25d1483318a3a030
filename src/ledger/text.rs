//! Large tool-call bodies stored compressed (migration 0009, README "Where the text is").
//!
//! `tool_calls.params_json` and `tool_calls.result_json` hold a call's JSON text as TEXT when it
//! is at most [`COMPRESS_OVER_BYTES`] bytes, else as a BLOB: the zlib stream (RFC 1950,
//! deflate with a checksum) of the same UTF-8 text. Tool output is most of what agents write
//! (about three quarters of a Claude Code history's bytes) and compresses about three times,
//! so this is most of the ledger's size.
//!
//! Every connection nex opens on the ledger registers [`TEXT_FUNCTION`] (`nex_text(x)`: the
//! text of either form) and [`PACK_FUNCTION`] (`nex_pack(x)`: the stored form of a text), so
//! SQL reads the plain text wherever it needs it: the search index's view
//! `tool_calls_search`, snippets, export, the replica. `nex sql` gives a user the same
//! function for their own queries; a client without it sees a BLOB (`typeof(result_json) =
//! 'blob'`), which JSON functions refuse rather than misread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;

use flate2::read::ZlibDecoder;
use libdeflater::{CompressionLvl, CompressionLvlError, Compressor};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

/// Texts longer than this many bytes are stored compressed. Shorter ones gain little (a zlib
/// stream has 6 bytes of framing and short JSON repeats little) and stay readable by any
/// SQLite client.
pub const COMPRESS_OVER_BYTES: usize = 1024;

/// `nex_text(x)`: a stored body's text (TEXT as is, a BLOB inflated, NULL as NULL).
pub const TEXT_FUNCTION: &str = "nex_text";
/// `nex_pack(x)`: the form a text is stored in (the migration of existing rows uses it).
pub const PACK_FUNCTION: &str = "nex_pack";
/// `nex_same_text(a, b)`: 1 when two stored bodies are both compressed and hold the same text
/// (their bytes may differ: another compressor or level wrote one of them), else 0. The
/// tool-call upsert asks it only of bytes that differ, so an existing ledger keeps its bytes
/// when the same text comes again; an unreadable body compares as different (and is rewritten).
pub const SAME_TEXT_FUNCTION: &str = "nex_same_text";

/// `nex_search_text(x)`: what the search index sees of a body (the view `tool_calls_search`):
/// its text when at most [`SEARCH_WHOLE_CHARS`] characters, else its first
/// [`SEARCH_HEAD_CHARS`], ` … ` and its last [`SEARCH_TAIL_CHARS`]; then the JSON escapes of
/// backslash, line feed, carriage return and tab read as spaces. Exactly the SQL of migration
/// 0007 (`length`, `substr` and `replace` count characters), inflating a body once instead of
/// three times, and not at all when this thread wrote it and remembers its text
/// ([`PackedBody::remember`]: the ledger writer does, for the batch it indexes).
pub const SEARCH_TEXT_FUNCTION: &str = "nex_search_text";
pub const SEARCH_WHOLE_CHARS: usize = 1536;
pub const SEARCH_HEAD_CHARS: usize = 1024;
pub const SEARCH_TAIL_CHARS: usize = 512;

/// The columns that may hold a compressed body, as `(table, column)`.
pub const PACKED_COLUMNS: &[(&str, &str)] =
    &[("tool_calls", "params_json"), ("tool_calls", "result_json")];

/// A body as the ledger stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredText {
    Plain(String),
    /// The zlib stream of a text over [`COMPRESS_OVER_BYTES`].
    Compressed(Vec<u8>),
}

impl StoredText {
    /// The stored form of `text`. Deterministic (fixed level and encoder), so an unchanged
    /// text compares equal to the stored one and an upsert leaves its row alone.
    pub fn of(text: String) -> StoredText {
        if text.len() <= COMPRESS_OVER_BYTES {
            return StoredText::Plain(text);
        }
        StoredText::Compressed(compress(text.as_bytes()))
    }
}

impl ToSql for StoredText {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            StoredText::Plain(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            StoredText::Compressed(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

/// A tool body in its stored form, with the search index's text of it when it is compressed
/// ([`search_text`], computed while the text is at hand: the writer's [`remember`] lets the
/// index read it instead of inflating the body again, see [`SEARCH_TEXT_FUNCTION`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBody {
    pub stored: StoredText,
    search: Option<String>,
}

impl PackedBody {
    pub fn of(text: String) -> PackedBody {
        let search = (text.len() > COMPRESS_OVER_BYTES).then(|| search_text(&text));
        PackedBody {
            stored: StoredText::of(text),
            search,
        }
    }

    /// The bytes [`remember`](Self::remember) holds for this body (0 when it has nothing to
    /// remember: a body stored as text).
    pub fn remembered_size(&self) -> usize {
        match (&self.stored, &self.search) {
            (StoredText::Compressed(bytes), Some(search)) => bytes.len() + search.len(),
            _ => 0,
        }
    }

    /// Lets `nex_search_text` of this thread answer for this body without inflating it, until
    /// [`forget_search_texts`]. Call it where the body is written (the search index reads it
    /// on the same thread, at the batch's flush). Past [`REMEMBERED_MAX_BYTES`] nothing more
    /// is remembered: those bodies are inflated as before.
    pub fn remember(&self) {
        let (StoredText::Compressed(bytes), Some(search)) = (&self.stored, &self.search) else {
            return;
        };
        REMEMBERED.with_borrow_mut(|r| {
            let size = self.remembered_size();
            if r.bytes + size > REMEMBERED_MAX_BYTES || r.texts.contains_key(bytes.as_slice()) {
                return;
            }
            r.bytes += size;
            r.texts.insert(bytes.clone().into(), search.clone().into());
        });
    }
}

/// Bound of what one thread remembers (stored bodies plus their search texts).
pub const REMEMBERED_MAX_BYTES: usize = 16 << 20;

/// Search texts of compressed bodies by their exact stored bytes ([`PackedBody::remember`]).
/// A stored form belongs to one text only (zlib is lossless), so an entry is right for every
/// row holding those bytes, in any transaction: a stale entry costs memory, never a wrong text.
/// Hashed by [`BodyHasher`] (a bounded fingerprint), compared in full: bodies that share a
/// fingerprint are told apart by their bytes.
#[derive(Default)]
struct Remembered {
    texts: HashMap<Box<[u8]>, Box<str>, BuildHasherDefault<BodyHasher>>,
    bytes: usize,
}

/// Hashes a stored body by its length and at most its first and last [`BodyHasher::EDGE`]
/// bytes, not all of it: the writer hashes every compressed body it remembers and the index's
/// flush every one it reads, and hashing whole bodies (SipHash) was about 5 % of the writer's
/// CPU in a backfill (issue 13). A zlib stream's last four bytes are the Adler-32 checksum of
/// its text, so two bodies of one batch rarely share a fingerprint; when they do, the map
/// compares them in full (a lookup is right either way, only slower). Not keyed: the bodies
/// come from the user's own histories.
#[derive(Default)]
struct BodyHasher(u64);

impl BodyHasher {
    const EDGE: usize = 32;
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(Self::MULTIPLIER);
    }
}

impl Hasher for BodyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let head = &bytes[..bytes.len().min(Self::EDGE)];
        let tail = &bytes[bytes.len().saturating_sub(Self::EDGE).max(head.len())..];
        for part in [head, tail] {
            for chunk in part.chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                self.mix(u64::from_le_bytes(word));
            }
        }
        self.mix(bytes.len() as u64);
    }

    fn finish(&self) -> u64 {
        // The high bits pick a bucket's control byte: fold them with the low ones.
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(Self::MULTIPLIER) ^ (x >> 32)
    }
}

thread_local! {
    static REMEMBERED: RefCell<Remembered> = RefCell::default();
}

/// Drops what this thread remembers (`search_index::flush` calls it once it has read them).
pub fn forget_search_texts() {
    REMEMBERED.with_borrow_mut(|r| {
        if r.bytes > 0 {
            *r = Remembered::default();
        }
    });
}

fn remembered_search_text(bytes: &[u8]) -> Option<String> {
    REMEMBERED.with_borrow(|r| r.texts.get(bytes).map(|t| t.to_string()))
}

/// libdeflate at level 1, one compressor per thread (it holds its match finder's tables).
///
/// Measured on every line over 1 KiB of the shared real Claude Code histories (878 texts,
/// 4 MB) and of the standard bench corpus (12,506 texts, 300 MB), against flate2 (miniz_oxide)
/// at level 1, the compressor before: 2.5 x and 1.3 x as fast, output 11 % and 4 % smaller.
/// Earlier, for flate2 itself: level 6 saves about 2 % more of the ledger for several times the
/// CPU; its zlib-rs backend at level 1 spends about a third less CPU but grows the ledger from
/// 0.47 to 0.58 x the corpus, and at levels 2 to 4 keeps the size and spends 10 to 60 % more.
/// A body stored by another compressor reads the same (`inflate` reads any zlib stream), and
/// a re-sent body whose bytes differ only by compressor is not rewritten (`nex_same_text`).
fn compress(bytes: &[u8]) -> Vec<u8> {
    // (libdeflate's level 0, its `fastest`, stores without compressing.)
    const LEVEL_1: Result<CompressionLvl, CompressionLvlError> = CompressionLvl::new(1);
    thread_local! {
        static COMPRESSOR: RefCell<Compressor> =
            RefCell::new(Compressor::new(LEVEL_1.unwrap_or_default()));
    }
    COMPRESSOR.with_borrow_mut(|compressor| {
        let mut out = vec![0; compressor.zlib_compress_bound(bytes.len())];
        // The bound holds any output, so compression cannot run out of room.
        let len = compressor
            .zlib_compress(bytes, &mut out)
            .expect("zlib_compress_bound is enough room");
        out.truncate(len);
        out.shrink_to_fit();
        out
    })
}

/// Why a stored body could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("a compressed body is not a valid zlib stream")]
    Corrupt,
    #[error("a compressed body is not UTF-8 text")]
    NotUtf8,
}

/// The text of a compressed body.
///
/// Errors: [`UnpackError`] when `bytes` is not a zlib stream of UTF-8 text.
pub fn inflate(bytes: &[u8]) -> Result<String, UnpackError> {
    let mut out = Vec::with_capacity(bytes.len() * 3);
    ZlibDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|_| UnpackError::Corrupt)?;
    String::from_utf8(out).map_err(|_| UnpackError::NotUtf8)
}

/// Registers `nex_text`, `nex_search_text`, `nex_pack` and `nex_same_text` on `conn`. All are
/// deterministic and innocuous, so views, triggers and the FTS5 content view may call them.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function(TEXT_FUNCTION, 1, flags, text_of)?;
    conn.create_scalar_function(SEARCH_TEXT_FUNCTION, 1, flags, search_text_of)?;
    conn.create_scalar_function(PACK_FUNCTION, 1, flags, pack)?;
    conn.create_scalar_function(SAME_TEXT_FUNCTION, 2, flags, same_text)
}

fn same_text(ctx: &mut Context<'_>) -> rusqlite::Result<bool> {
    let (ValueRef::Blob(a), ValueRef::Blob(b)) = (ctx.get_raw(0), ctx.get_raw(1)) else {
        return Ok(false);
    };
    Ok(a == b || matches!((inflate(a), inflate(b)), (Ok(x), Ok(y)) if x == y))
}

fn search_text_of(ctx: &mut Context<'_>) -> rusqlite::Result<Option<String>> {
    if let ValueRef::Blob(bytes) = ctx.get_raw(0)
        && let Some(text) = remembered_search_text(bytes)
    {
        return Ok(Some(text));
    }
    Ok(text_of(ctx)?.map(|text| search_text(&text)))
}

/// See [`SEARCH_TEXT_FUNCTION`].
///
/// Reads only the text's first and last characters (not the whole body: a body may be MBs).
pub fn search_text(text: &str) -> String {
    // More than SEARCH_WHOLE_CHARS characters; then head and tail do not overlap.
    if text.chars().nth(SEARCH_WHOLE_CHARS).is_none() {
        let mut out = String::with_capacity(text.len());
        push_spaced(&mut out, text);
        return out;
    }
    let head_end = text
        .char_indices()
        .nth(SEARCH_HEAD_CHARS)
        .map_or(text.len(), |(i, _)| i);
    let tail_start = text
        .char_indices()
        .nth_back(SEARCH_TAIL_CHARS - 1)
        .map_or(0, |(i, _)| i);
    // Each part on its own: the ` … ` between them holds no backslash and begins and ends with
    // a space, so no escape spans a join.
    let mut out = String::with_capacity(head_end + 5 + text.len() - tail_start);
    push_spaced(&mut out, &text[..head_end]);
    out.push_str(" … ");
    push_spaced(&mut out, &text[tail_start..]);
    out
}

/// Appends `text` with the JSON escapes `\\`, `\n`, `\r` and `\t` as one space each, in one
/// pass: the same as SQL's `replace` of each in turn (0007), since pairs of backslashes are
/// taken first and left to right in both, and a space never makes a new escape.
fn push_spaced(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while let Some(at) = memchr::memchr(b'\\', &bytes[i..]).map(|p| i + p) {
        if matches!(bytes.get(at + 1), Some(b'\\' | b'n' | b'r' | b't')) {
            out.push_str(&text[copied..at]);
            out.push(' ');
            copied = at + 2;
            i = at + 2;
        } else {
            i = at + 1;
        }
    }
    out.push_str(&text[copied..]);
}

fn text_of(ctx: &mut Context<'_>) -> rusqlite::Result<Option<String>> {
    match ctx.get_raw(0) {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(bytes) => inflate(bytes)
            .map(Some)
            .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e))),
        ValueRef::Text(text) => Ok(Some(String::from_utf8_lossy(text).into_owned())),
        ValueRef::Integer(i) => Ok(Some(i.to_string())),
        ValueRef::Real(r) => Ok(Some(r.to_string())),
    }
}

fn pack(ctx: &mut Context<'_>) -> rusqlite::Result<Option<StoredText>> {
    match ctx.get_raw(0) {
        ValueRef::Null => Ok(None),
        // Already stored compressed: kept (the migration may run over it twice).
        ValueRef::Blob(bytes) => Ok(Some(StoredText::Compressed(bytes.to_vec()))),
        ValueRef::Text(text) => Ok(Some(StoredText::of(
            String::from_utf8_lossy(text).into_owned(),
        ))),
        ValueRef::Integer(i) => Ok(Some(StoredText::Plain(i.to_string()))),
        ValueRef::Real(r) => Ok(Some(StoredText::Plain(r.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_stays_plain_and_long_text_round_trips() {
        assert_eq!(
            StoredText::of("{\"a\":1}".into()),
            StoredText::Plain("{\"a\":1}".into())
        );
        let long = format!("{{\"content\":\"{}\"}}", "line of output é\\n".repeat(200));
        let StoredText::Compressed(bytes) = StoredText::of(long.clone()) else {
            panic!("a text over the threshold is compressed");
        };
        assert!(bytes.len() < long.len() / 4);
        assert_eq!(inflate(&bytes).unwrap(), long);
        assert_eq!(StoredText::of(long.clone()), StoredText::of(long));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Escapes, lone and paired backslashes, multi-byte characters, around the lengths
        /// where the text is cut.
        #[test]
        fn search_text_is_the_sql_of_0007_for_any_text(
            parts in proptest::collection::vec(
                proptest::sample::select(vec!["\\", "\\\\", "n", "r", "t", "x", "é", "€", " ", "\\n"]),
                0..2200,
            )
        ) {
            let text: String = parts.concat();
            let conn = Connection::open_in_memory().unwrap();
            let by_sql: String = conn
                .query_row(&format!("SELECT {SEARCH_TEXT_EXPR}"), [&text], |r| r.get(0))
                .unwrap();
            proptest::prop_assert_eq!(search_text(&text), by_sql);
        }
    }

    /// Migration 0007's expression of what the index sees of the text `?1`.
    const SEARCH_TEXT_EXPR: &str = r"replace(replace(replace(replace(
        CASE WHEN length(?1) <= 1536 THEN ?1
             ELSE substr(?1, 1, 1024) || ' … ' || substr(?1, -512) END,
        '\\', ' '), '\n', ' '), '\r', ' '), '\t', ' ')";

    #[test]
    fn search_text_is_the_sql_of_0007() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let sql = format!("SELECT {SEARCH_TEXT_EXPR}, nex_search_text(nex_pack(?1))");
        let cases = [
            String::new(),
            "{\"a\":\"x\\ny\\\\z\\tw\\r\"}".to_owned(),
            "é".repeat(1536),
            format!("{}\\n{}", "é€".repeat(700), "ab\\t".repeat(300)),
            "a\\".repeat(600),
            "é".repeat(1537),
            "x".repeat(1536) + "€",
            format!("{}{}", "a".repeat(5000), "€".repeat(600)),
        ];
        for text in cases {
            let (by_sql, by_fn): (String, String) = conn
                .query_row(&sql, [&text], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            assert_eq!(by_fn, by_sql, "{} chars", text.chars().count());
            assert_eq!(search_text(&text), by_sql);
        }
    }

    #[test]
    fn search_text_of_a_remembered_body_is_read_without_inflating_until_forgotten() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let long = format!("{{\"content\":\"{}\"}}", "build output\\n".repeat(200));
        let body = PackedBody::of(long.clone());
        assert_eq!(body.search.as_deref(), Some(search_text(&long).as_str()));
        let StoredText::Compressed(bytes) = body.stored.clone() else {
            panic!("a long body is compressed");
        };
        let search = |bytes: &[u8]| -> String {
            conn.query_row("SELECT nex_search_text(?1)", [bytes], |r| r.get(0))
                .unwrap()
        };
        // A marker instead of the true text shows which path answered.
        let marked = PackedBody {
            search: Some("remembered".into()),
            ..body.clone()
        };
        marked.remember();
        assert_eq!(search(&bytes), "remembered");
        forget_search_texts();
        assert_eq!(search(&bytes), search_text(&long));
        // A short body has nothing to remember; a remembered one answers with its own text.
        PackedBody::of("{}".into()).remember();
        body.remember();
        assert_eq!(search(&bytes), search_text(&long));
        forget_search_texts();
    }

    #[test]
    fn remembered_bodies_that_share_a_fingerprint_keep_their_own_texts() {
        use std::hash::BuildHasher;
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        // Same length, same first and last bytes: only the middle tells them apart.
        let body = |middle: u8, search: &str| {
            let mut bytes = vec![7u8; 300];
            bytes[150] = middle;
            PackedBody {
                stored: StoredText::Compressed(bytes),
                search: Some(search.into()),
            }
        };
        let (a, b) = (body(1, "first"), body(2, "second"));
        let (StoredText::Compressed(a_bytes), StoredText::Compressed(b_bytes)) =
            (&a.stored, &b.stored)
        else {
            panic!("compressed bodies");
        };
        let hasher = BuildHasherDefault::<BodyHasher>::default();
        assert_eq!(
            hasher.hash_one(a_bytes.as_slice()),
            hasher.hash_one(b_bytes.as_slice())
        );
        a.remember();
        b.remember();
        let search = |bytes: &[u8]| -> String {
            conn.query_row("SELECT nex_search_text(?1)", [bytes], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(search(a_bytes), "first");
        assert_eq!(search(b_bytes), "second");
        // A third body of that fingerprint, not remembered, is inflated (and is no zlib).
        let mut c_bytes = a_bytes.clone();
        c_bytes[150] = 3;
        let err = conn
            .query_row("SELECT nex_search_text(?1)", [&c_bytes], |r| {
                r.get::<_, String>(0)
            })
            .unwrap_err();
        assert!(err.to_string().contains("zlib"), "{err}");
        forget_search_texts();
    }

    #[test]
    fn sql_functions_read_both_forms_and_refuse_garbage() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let long = "x".repeat(COMPRESS_OVER_BYTES + 1);
        let (kind, back): (String, String) = conn
            .query_row(
                "SELECT typeof(nex_pack(?1)), nex_text(nex_pack(?1))",
                [&long],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((kind.as_str(), back.as_str()), ("blob", long.as_str()));
        let short: (String, String) = conn
            .query_row("SELECT typeof(nex_pack('ab')), nex_text('ab')", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(short, ("text".into(), "ab".into()));
        let null: Option<String> = conn
            .query_row("SELECT nex_text(NULL)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(null, None);
        let err = conn
            .query_row("SELECT nex_text(x'00ff')", [], |r| r.get::<_, String>(0))
            .unwrap_err();
        assert!(err.to_string().contains("zlib"), "{err}");
    }
}
