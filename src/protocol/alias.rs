//! Alias folding for the baseline's two spellings of every field.
//!
//! Rule (IMPORT_SEMANTICS.md "Requests"): strings are trimmed; a non-blank camelCase value wins,
//! else the trimmed snake_case value. Integers: a positive camelCase value wins, else the
//! snake_case value. Lists: a non-empty camelCase list wins. Booleans are ORed.

use serde_json::Value;

use super::tool_json::ToolJson;

/// Optional string: `None` when both spellings are absent or blank.
pub(crate) fn pick_str(camel: Option<String>, snake: Option<String>) -> Option<String> {
    [camel, snake]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
}

/// Required string: empty when absent (the import service reports it as an item error).
pub(crate) fn pick_string(camel: Option<String>, snake: Option<String>) -> String {
    pick_str(camel, snake).unwrap_or_default()
}

pub(crate) fn pick_int(camel: Option<i64>, snake: Option<i64>) -> i64 {
    pick_opt_int(camel, snake).unwrap_or(0)
}

pub(crate) fn pick_opt_int(camel: Option<i64>, snake: Option<i64>) -> Option<i64> {
    match (camel, snake) {
        (Some(c), _) if c > 0 => Some(c),
        (c, Some(s)) if c.is_none() || s > 0 => Some(s),
        (c, _) => c,
    }
}

pub(crate) fn pick_bool(camel: Option<bool>, snake: Option<bool>) -> bool {
    camel.unwrap_or(false) || snake.unwrap_or(false)
}

pub(crate) fn pick_vec<T>(camel: Option<Vec<T>>, snake: Option<Vec<T>>) -> Vec<T> {
    match camel {
        Some(c) if !c.is_empty() => c,
        _ => snake.unwrap_or_default(),
    }
}

/// Arbitrary JSON: JSON `null` counts as absent.
pub(crate) fn pick_value(camel: Option<Value>, snake: Option<Value>) -> Option<Value> {
    camel
        .filter(|v| !v.is_null())
        .or(snake.filter(|v| !v.is_null()))
}

/// Tool JSON, as [`pick_value`].
pub(crate) fn pick_json(camel: Option<ToolJson>, snake: Option<ToolJson>) -> Option<ToolJson> {
    camel
        .filter(|v| !v.is_null())
        .or(snake.filter(|v| !v.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_wins_unless_blank() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(pick_str(s(" a "), s("b")), s("a"));
        assert_eq!(pick_str(s("  "), s(" b")), s("b"));
        assert_eq!(pick_str(None, s("  ")), None);
    }

    #[test]
    fn ints_prefer_positive_camel() {
        assert_eq!(pick_opt_int(Some(5), Some(7)), Some(5));
        assert_eq!(pick_opt_int(Some(0), Some(7)), Some(7));
        assert_eq!(pick_opt_int(Some(-1), None), Some(-1));
        assert_eq!(pick_opt_int(None, Some(-3)), Some(-3));
        assert_eq!(pick_opt_int(None, None), None);
    }
}
