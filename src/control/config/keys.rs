//! Strict keys of `config.toml`: an unknown key is an error naming the known key nearest to it
//! (`did you mean ...?`), shared by every section's check.

/// `unknown key `<prefix><key>``, with the nearest of `known` when it is near enough to be a
/// typo.
pub(super) fn unknown(key: &str, prefix: &str, known: &[&str]) -> String {
    let mut msg = format!("unknown key `{prefix}{key}`");
    if let Some(near) = closest(key, known) {
        msg.push_str(&format!(" (did you mean `{prefix}{near}`?)"));
    }
    msg
}

/// The known key nearest to `key` by edit distance, when it is near enough to be a typo (at
/// most a third of the key's length, at least 2).
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (key.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            row.push(sub.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}
