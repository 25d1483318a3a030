//! What the two store generators write inside their rows: word-salad text of a given size,
//! UUID-shaped ids, and tool calls with JSON arguments and results. All of it is drawn from one
//! [`Rng`], so a seed always gives the same values.

use serde_json::{Value, json};

use crate::rng::Rng;

const WORDS: &[&str] = &[
    "the", "function", "returns", "a", "value", "when", "called", "with", "error", "handling",
    "struct", "field", "module", "test", "passes", "fails", "because", "of", "missing", "import",
    "async", "await", "stream", "batch", "commit", "ledger", "session", "turn", "message", "tool",
    "result", "file", "path", "line", "column", "compile", "cargo", "build", "warning", "unused",
    "variable", "let", "mut", "impl", "trait", "for", "fn", "match", "some", "none", "ok", "err",
    "vec", "string", "into", "iter", "map", "filter", "collect", "clone", "borrow", "lifetime",
];

/// Word salad of `lo..hi` bytes (it compresses like prose and code, unlike random bytes).
pub(super) fn text(rng: &mut Rng, lo: u64, hi: u64) -> String {
    let bytes = rng.range(lo, hi) as usize;
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        out.push_str(WORDS[rng.range(0, WORDS.len() as u64) as usize]);
        out.push(if rng.range(0, 12) == 0 { '\n' } else { ' ' });
    }
    out
}

/// A message's text: 0.5 to 3 KB.
pub(super) fn message_text(rng: &mut Rng) -> String {
    text(rng, 500, 3_000)
}

/// A version-4-shaped UUID.
pub(super) fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// `digits` random lowercase hex digits (a snapshot hash, an id suffix).
pub(super) fn hex(rng: &mut Rng, digits: usize) -> String {
    let mut s = String::with_capacity(digits + 16);
    while s.len() < digits {
        s.push_str(&format!("{:016x}", rng.next_u64()));
    }
    s.truncate(digits);
    s
}

/// The four kinds of tool call the generators make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ToolKind {
    Read,
    Shell,
    Grep,
    Edit,
}

/// One tool call: what the agent passed and what it got back (0.3 to 4 KB of text inside).
#[derive(Debug, Clone)]
pub(super) struct ToolCall {
    pub kind: ToolKind,
    pub args: Value,
    pub result: Value,
}

/// A random tool call.
pub(super) fn tool_call(rng: &mut Rng) -> ToolCall {
    let file = format!(
        "src/module_{}/file_{}.rs",
        rng.range(0, 40),
        rng.range(0, 500)
    );
    let (kind, args, result) = match rng.range(0, 4) {
        0 => (
            ToolKind::Read,
            json!({"path": file, "startLine": 1, "endLine": rng.range(50, 400)}),
            json!({"contents": text(rng, 1_000, 4_000), "totalLines": rng.range(400, 2_000)}),
        ),
        1 => (
            ToolKind::Shell,
            json!({"command": "cargo test --quiet", "isBackground": false}),
            json!({"output": text(rng, 500, 3_000), "exitCode": rng.range(0, 2)}),
        ),
        2 => {
            let matches: Vec<Value> = (0..rng.range(3, 20))
                .map(|_| {
                    json!({"file": format!("src/f{}.rs", rng.range(0, 500)),
                           "line": rng.range(1, 900), "content": text(rng, 40, 160)})
                })
                .collect();
            (
                ToolKind::Grep,
                json!({"pattern": WORDS[rng.range(0, WORDS.len() as u64) as usize], "path": "src"}),
                json!({"matches": matches}),
            )
        }
        _ => (
            ToolKind::Edit,
            json!({"path": file, "instructions": text(rng, 40, 200),
                   "codeEdit": text(rng, 300, 1_500)}),
            json!({"diff": text(rng, 200, 1_000), "applied": true}),
        ),
    };
    ToolCall { kind, args, result }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_shapes_hold() {
        let mut rng = Rng::new(9);
        for _ in 0..200 {
            let t = message_text(&mut rng);
            assert!((500..3_020).contains(&t.len()), "{}", t.len());
        }
        let id = uuid(&mut rng);
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_eq!(hex(&mut rng, 20).len(), 20);
        let kinds: std::collections::HashSet<_> = (0..50)
            .map(|_| format!("{:?}", tool_call(&mut rng).kind))
            .collect();
        assert_eq!(kinds.len(), 4);
    }
}
