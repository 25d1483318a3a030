//! Bad input: random bytes and mutated real-shaped lines never panic.

use super::*;

fn fixture_lines() -> Vec<Vec<u8>> {
    all_fixtures()
        .iter()
        .flat_map(|f| {
            std::fs::read(&f.path)
                .unwrap()
                .split(|b| *b == b'\n')
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn both_parsers() -> Vec<Box<dyn SessionParser>> {
    vec![
        parser_for(&source(Provider::ClaudeCode, "x.jsonl", FileRole::Main)),
        parser_for(&source(
            Provider::ClaudeCode,
            "agent-x.jsonl",
            FileRole::Subagent {
                agent_id: s("x"),
                parent_session_id: None,
                meta: None,
            },
        )),
        parser_for(&source(Provider::Codex, "rollout-x.jsonl", FileRole::Main)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes never panic, and every line is counted.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), split in any::<usize>()) {
        for mut p in both_parsers() {
            let cut = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1)
                .nth(split % 8).unwrap_or(bytes.len());
            p.push_lines(&bytes[..cut], 0, true);
            let _ = p.take_items();
            p.push_lines(&bytes[cut..], cut as u64, true);
            let _ = p.take_items();
            let _ = (p.open_turn_offset(), p.fingerprint(), p.spawn_links());
        }
    }

    /// Real-shaped lines, truncated, with bytes flipped or with values swapped for other JSON
    /// types, never panic.
    #[test]
    fn mutated_fixture_lines_never_panic(
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<usize>(), any::<u8>(), 0u8..4), 1..60)
    ) {
        let lines = fixture_lines();
        let mut out = Vec::new();
        for (idx, pos, byte, how) in picks {
            let mut l = idx.get(&lines).clone();
            match how {
                0 => l.truncate(pos % (l.len() + 1)),
                1 if !l.is_empty() => { let n = l.len(); l[pos % n] = byte; }
                2 => {
                    let text = String::from_utf8_lossy(&l).into_owned();
                    let swaps = ["null", "[]", "{}", "-1", "1e999", "\"\"", "true", "18446744073709551616"];
                    let replaced = text.replacen("\"", &format!("{}, \"x\":\"", swaps[pos % swaps.len()]), 1);
                    l = replaced.replace(":\"", &format!(":{}, \"y\":\"", swaps[byte as usize % swaps.len()]))
                        .into_bytes();
                }
                _ => {}
            }
            out.extend_from_slice(&l);
            out.push(b'\n');
        }
        for mut p in both_parsers() {
            p.push_lines(&out, 0, true);
            let _ = p.take_items();
            prop_assert_eq!(p.stats().lines as usize, out.iter().filter(|b| **b == b'\n').count());
        }
    }
}

/// `line` with one invalid UTF-8 byte and one raw control byte put inside its first string
/// value (right after the first `":"`); `None` for a line without one.
fn damaged(line: &[u8]) -> Option<Vec<u8>> {
    let at = line.windows(3).position(|w| w == b"\":\"")? + 3;
    Some([&line[..at], b"\xff\x01", &line[at..]].concat())
}

/// Every line-file provider (Claude Code, Codex, Gemini CLI JSONL): a line damaged inside a
/// string is read repaired and counted, never dropped as malformed (what the damaged value
/// then means is the parser's business). Before: each such line was malformed, its content
/// gone.
#[test]
fn damaged_bytes_in_strings_lose_no_line_in_any_line_provider() {
    let mut files = all_fixtures();
    files.push(source(
        Provider::GeminiCli,
        "gemini/tmp/proj-a/chats/session-2026-04-01T10-00-aaaa0001.jsonl",
        FileRole::Main,
    ));
    for file in files {
        let clean = std::fs::read(&file.path).unwrap();
        let (_, clean_parser) = parse_all(&file);
        let mut damaged_lines = 0;
        let bytes: Vec<u8> = clean
            .split_inclusive(|b| *b == b'\n')
            .flat_map(|l| match damaged(l) {
                Some(d) => {
                    damaged_lines += 1;
                    d
                }
                None => l.to_vec(),
            })
            .collect();
        assert!(damaged_lines > 0, "{}", file.path.display());
        let mut p = parser_for(&file);
        p.push_lines(&bytes, 0, true);
        let _ = p.take_items();
        let (stats, clean_stats) = (p.stats(), clean_parser.stats());
        assert_eq!(stats.lossy_lines, damaged_lines, "{}", file.path.display());
        assert_eq!(
            stats.malformed_lines,
            clean_stats.malformed_lines,
            "{}",
            file.path.display()
        );
        assert_eq!(stats.lines, clean_stats.lines, "{}", file.path.display());
    }
}
