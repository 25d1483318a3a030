//! Snippets of search hits, cut in Rust: FTS5's `snippet()` tokenizes the whole column to
//! choose a fragment, which costs milliseconds per hit on tool results of tens of kilobytes.
//! Here the query's terms are matched against the text's tokens as the index's tokenizer splits
//! them (`unicode61` with `_` a token character: runs of letters, digits and `_`, compared
//! lowercased), and the fragment of [`WINDOW`] tokens holding the most distinct terms is kept
//! (the earliest of equals), every matching token marked. When no token matches as this
//! approximation sees it (a term that matched only after diacritics were folded, say), the
//! caller falls back to FTS5's own `snippet()`.

use super::search::{MATCH_CLOSE, MATCH_OPEN};

/// Tokens in a fragment.
pub const WINDOW: usize = 16;
const ELLIPSIS: &str = "…";

/// A term of the query: a word, or a prefix (`word*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub prefix: bool,
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Byte spans of the tokens of `text`.
fn tokens(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (is_token_char(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// The words and prefixes of an FTS5 query (operators, column names and syntax left out).
pub fn terms(query: &str) -> Vec<Term> {
    let mut out: Vec<Term> = Vec::new();
    for (s, e) in tokens(query) {
        let word = &query[s..e];
        let next = query[e..].chars().next();
        if matches!(word, "AND" | "OR" | "NOT" | "NEAR") || next == Some(':') {
            continue;
        }
        let term = Term {
            text: word.to_lowercase(),
            prefix: next == Some('*'),
        };
        if !out.contains(&term) {
            out.push(term);
        }
    }
    out
}

/// Which term `token` matches, if any.
fn matching(token: &str, terms: &[Term]) -> Option<usize> {
    let lower = token.to_lowercase();
    terms.iter().position(|t| {
        if t.prefix {
            lower.starts_with(&t.text)
        } else {
            lower == t.text
        }
    })
}

/// The best fragment of `text` for `terms`, and how many distinct terms it holds; `None` when
/// no token matches.
fn fragment(text: &str, terms: &[Term]) -> Option<(usize, String)> {
    let spans = tokens(text);
    let hits: Vec<Option<usize>> = spans
        .iter()
        .map(|&(s, e)| matching(&text[s..e], terms))
        .collect();
    let first = hits.iter().position(Option::is_some)?;
    // Windows starting at each matching token (or earlier, to centre short texts): the one
    // with the most distinct terms wins, the earliest of equals.
    let mut best = (0, usize::MAX);
    for start in (0..spans.len()).filter(|&i| hits[i].is_some()) {
        let start = start.saturating_sub(WINDOW / 4);
        let mut seen = vec![false; terms.len()];
        for h in hits[start..spans.len().min(start + WINDOW)]
            .iter()
            .flatten()
        {
            seen[*h] = true;
        }
        let distinct = seen.iter().filter(|s| **s).count();
        if distinct > best.0 {
            best = (distinct, start);
        }
    }
    let start = if best.1 == usize::MAX { first } else { best.1 };
    // A window that fits before the end starts early enough to fill it.
    let start = start.min(spans.len().saturating_sub(WINDOW));
    let end = spans.len().min(start + WINDOW);
    let mut out = String::new();
    let from = if start == 0 {
        0
    } else {
        out.push_str(ELLIPSIS);
        spans[start].0
    };
    let mut at = from;
    for i in start..end {
        let (s, e) = spans[i];
        out.push_str(&text[at..s]);
        if hits[i].is_some() {
            out.push_str(MATCH_OPEN);
            out.push_str(&text[s..e]);
            out.push_str(MATCH_CLOSE);
        } else {
            out.push_str(&text[s..e]);
        }
        at = e;
    }
    if end == spans.len() {
        out.push_str(&text[at..]);
    } else {
        out.push_str(ELLIPSIS);
    }
    Some((best.0, out))
}

/// The snippet of the column (among `columns`, in order) holding the most distinct terms;
/// `None` when no column has a matching token.
pub fn snippet(columns: &[Option<String>], query: &str) -> Option<String> {
    let terms = terms(query);
    if terms.is_empty() {
        return None;
    }
    let mut best: Option<(usize, String)> = None;
    for text in columns.iter().flatten() {
        if let Some((distinct, cut)) = fragment(text, &terms)
            && best.as_ref().is_none_or(|(d, _)| distinct > *d)
        {
            best = Some((distinct, cut));
        }
    }
    best.map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str, query: &str) -> Option<String> {
        snippet(&[Some(text.to_owned())], query)
    }

    #[test]
    fn terms_leave_out_operators_columns_and_syntax() {
        let t = terms("tool_name:Bash AND \"Parser crash\" OR migrat* NOT x");
        let texts: Vec<(&str, bool)> = t.iter().map(|t| (t.text.as_str(), t.prefix)).collect();
        assert_eq!(
            texts,
            [
                ("bash", false),
                ("parser", false),
                ("crash", false),
                ("migrat", true),
                ("x", false)
            ]
        );
    }

    #[test]
    fn fragments_mark_every_match_and_cut_with_ellipses() {
        assert_eq!(
            one("parser crash again", "parser crash").unwrap(),
            "**parser** **crash** again"
        );
        assert_eq!(
            one(
                "{\"stdout\":\"test tokenizer_empty ... ok\"}",
                "tokenizer_empty"
            )
            .unwrap(),
            "{\"stdout\":\"test **tokenizer_empty** ... ok\"}"
        );
        let long: String = (0..100).map(|i| format!("w{i} ")).collect::<String>() + "Needle end";
        assert_eq!(
            one(&long, "needl*").unwrap(),
            "…w86 w87 w88 w89 w90 w91 w92 w93 w94 w95 w96 w97 w98 w99 **Needle** end"
        );
        let mid: String = (0..100).map(|i| format!("w{i} ")).collect::<String>();
        assert_eq!(
            one(&mid, "w50").unwrap(),
            "…w46 w47 w48 w49 **w50** w51 w52 w53 w54 w55 w56 w57 w58 w59 w60 w61…"
        );
        // The window with both terms beats the earlier one with one.
        let text = format!("alpha {} alpha beta", "x ".repeat(40));
        assert!(
            one(&text, "alpha beta")
                .unwrap()
                .ends_with("**alpha** **beta**")
        );
        assert_eq!(
            one("Érable", "erable"),
            None,
            "diacritics: the caller falls back"
        );
        assert_eq!(one("nothing here", "absent"), None);
    }
}
