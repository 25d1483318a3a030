//! Where one JSON value ends, found without parsing it: the structural scan of
//! [`super::stream`].
//!
//! The scan only has to agree with serde_json on valid input and never end a value before
//! serde_json would have failed on it. It tracks strings (with their escapes) and bracket
//! depth, nothing else: a malformed value still gets a span, and serde_json, parsing that
//! span, finds the error at or before the span's end. Two facts make the spans safe to parse
//! alone (the `decode` tests hold the proof by comparison):
//! - inside a string, serde_json consumes exactly what the scan steps over, except after
//!   `\u`, where its reader takes four bytes before looking at them; so the scan checks those
//!   four are hex digits and otherwise calls the value [`Scan::Irregular`];
//! - a scalar (number, `true`, `false`, `null`, or garbage) is the run of bytes that can
//!   belong to one, and the run ends on a byte that serde_json, too, stops at.

/// One value's scan, resumable when its bytes arrive in pieces.
pub(super) struct SpanScan {
    kind: Kind,
    /// Open brackets, for a container.
    depth: usize,
    in_string: bool,
    escape: Escape,
    /// How far the scan has looked, from the value's first byte.
    scanned: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Container,
    String,
    Scalar,
}

#[derive(Clone, Copy)]
enum Escape {
    None,
    /// After a backslash.
    Started,
    /// After `\u`: this many hex digits still to come.
    Hex(u8),
}

/// What the scan found so far.
#[derive(Debug, PartialEq)]
pub(super) enum Scan {
    /// The value is `bytes[..n]`.
    Ends(usize),
    /// Every byte given belongs to the value: it needs more.
    Open,
    /// A `\u` not followed by four hex digits: the value is invalid, and serde_json's reader
    /// may look past its end before saying so.
    Irregular,
}

impl SpanScan {
    /// The scan of a value whose first byte is `first` (not whitespace).
    pub(super) fn new(first: u8) -> Self {
        let kind = match first {
            b'{' | b'[' => Kind::Container,
            b'"' => Kind::String,
            _ => Kind::Scalar,
        };
        Self {
            kind,
            depth: usize::from(kind == Kind::Container),
            in_string: kind == Kind::String,
            escape: Escape::None,
            scanned: 1,
        }
    }

    /// Goes on over `bytes`, the value's bytes from its first one (those already scanned
    /// included: the window may have moved them, never changed them).
    pub(super) fn resume(&mut self, bytes: &[u8]) -> Scan {
        let mut i = self.scanned;
        let scan = match self.kind {
            Kind::Scalar => self.scalar(bytes, &mut i),
            _ => self.nested(bytes, &mut i),
        };
        self.scanned = i;
        scan
    }

    fn scalar(&self, bytes: &[u8], i: &mut usize) -> Scan {
        match bytes[*i..].iter().position(|&b| !in_scalar(b)) {
            Some(n) => Scan::Ends(*i + n),
            None => {
                *i = bytes.len();
                Scan::Open
            }
        }
    }

    fn nested(&mut self, bytes: &[u8], i: &mut usize) -> Scan {
        while *i < bytes.len() {
            if self.in_string {
                match self.string(bytes, i) {
                    Scan::Open => {}
                    Scan::Ends(end) if self.kind == Kind::String => return Scan::Ends(end),
                    Scan::Ends(_) => self.in_string = false,
                    Scan::Irregular => return Scan::Irregular,
                }
                continue;
            }
            let b = bytes[*i];
            *i += 1;
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => self.depth += 1,
                b']' | b'}' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Scan::Ends(*i);
                    }
                }
                _ => {}
            }
        }
        Scan::Open
    }

    /// Steps through a string's content: `Ends` just past its closing quote, `Open` when
    /// `bytes` ran out inside it.
    fn string(&mut self, bytes: &[u8], i: &mut usize) -> Scan {
        while *i < bytes.len() {
            match self.escape {
                Escape::Started => {
                    self.escape = match bytes[*i] {
                        b'u' => Escape::Hex(4),
                        _ => Escape::None,
                    };
                    *i += 1;
                }
                Escape::Hex(left) => {
                    if !bytes[*i].is_ascii_hexdigit() {
                        return Scan::Irregular;
                    }
                    self.escape = match left {
                        1 => Escape::None,
                        _ => Escape::Hex(left - 1),
                    };
                    *i += 1;
                }
                Escape::None => match memchr::memchr2(b'"', b'\\', &bytes[*i..]) {
                    None => *i = bytes.len(),
                    Some(n) => {
                        *i += n + 1;
                        if bytes[*i - 1] == b'"' {
                            return Scan::Ends(*i);
                        }
                        self.escape = Escape::Started;
                    }
                },
            }
        }
        Scan::Open
    }
}

/// Bytes that can continue a number or a literal; serde_json stops reading one at any other.
fn in_scalar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_whole(json: &[u8]) -> Scan {
        SpanScan::new(json[0]).resume(json)
    }

    /// The same scan fed one byte more at a time.
    fn scan_piecewise(json: &[u8]) -> Scan {
        let mut scan = SpanScan::new(json[0]);
        for n in 1..=json.len() {
            match scan.resume(&json[..n]) {
                Scan::Open => {}
                done => return done,
            }
        }
        Scan::Open
    }

    #[test]
    fn spans() {
        let cases: &[(&[u8], Scan)] = &[
            (br#"{"a":[1,{"b":"]}"}]} ,"#, Scan::Ends(20)),
            (br#""x\"y\\" ,"#, Scan::Ends(8)),
            (br#""\u00e9\uD83D\uDE00""#, Scan::Ends(20)),
            (b"-12.5e+3,", Scan::Ends(8)),
            (b"true]", Scan::Ends(4)),
            (b"nul\"", Scan::Ends(3)),
            (b",", Scan::Open),
            (br#"[1,"#, Scan::Open),
            (br#""abc\"#, Scan::Open),
            (br#""\u12"}"#, Scan::Irregular),
            (br#"{"k":"\uZ"#, Scan::Irregular),
        ];
        for (json, want) in cases {
            assert_eq!(&scan_whole(json), want, "{}", String::from_utf8_lossy(json));
            assert_eq!(
                &scan_piecewise(json),
                want,
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }
}
