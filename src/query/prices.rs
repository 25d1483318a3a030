//! Model prices: the table in the repository (`prices.toml`, embedded at build time) with the
//! overrides of `config.toml` (`[prices."model-name"]`) on top, and the rule that matches a
//! ledger's model name (dated, prefixed) to a key of the table.
//!
//! # Matching
//!
//! A name is lowercased and trimmed. Matching is tried from the start of the name and after
//! every `/` and `.` in it (so `anthropic/claude-sonnet-4-5`, `models/gemini-2.5-pro` and
//! `us.anthropic.claude-opus-4-1-20250805-v1:0` find their key). At a start, a key matches
//! when the name continues with the key and then only version noise: a run of segments each
//! introduced by `-`, `@`, `_`, `:` or `.` and being a date (`20250929`, `2025-08-07`,
//! `05-20`), a build number of 3 or 4 digits (`001`), `latest`, `preview`, `exp` or `v1` /
//! `v1:0`; then optionally `[1m]`. The longest matching key wins (`gpt-5-codex` over `gpt-5`);
//! a name no key matches has no price (`gpt-5-pro` does not fall back to `gpt-5`). An exact
//! (lowercased) override key always wins.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The table in the repository.
const TABLE: &str = include_str!("../../prices.toml");

/// USD per million tokens of each token kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

/// A ledger's token counts of one kind of usage, to be priced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    /// Reasoning tokens billed on top of `output` (tools that report them apart from the
    /// output; see [`crate::query::reasoning_apart`]).
    pub reasoning_apart: i64,
}

impl TokenCounts {
    /// Whether any token is counted (a row of zeros needs no price).
    pub fn any(&self) -> bool {
        self.input != 0
            || self.output != 0
            || self.cache_read != 0
            || self.cache_write != 0
            || self.reasoning_apart != 0
    }
}

impl Price {
    /// The cost in USD of `t`.
    pub fn cost(&self, t: &TokenCounts) -> f64 {
        (t.input as f64 * self.input
            + (t.output + t.reasoning_apart) as f64 * self.output
            + t.cache_read as f64 * self.cache_read
            + t.cache_write as f64 * self.cache_write)
            / 1_000_000.0
    }
}

/// A price of `config.toml` (`[prices."model-name"]`): `input` and `output` are required;
/// the cache prices default to the input price.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}

impl PriceOverride {
    /// Every price finite and not negative; the message names the model and the field.
    pub fn check(&self, model: &str) -> Result<(), String> {
        let fields = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
        ];
        for (name, value) in fields {
            if let Some(v) = value.filter(|v| !v.is_finite() || *v < 0.0) {
                return Err(format!(
                    "prices.\"{model}\".{name} = {v} is not a price: a number >= 0 (USD per million tokens)"
                ));
            }
        }
        Ok(())
    }

    fn price(&self) -> Price {
        Price {
            input: self.input,
            output: self.output,
            cache_read: self.cache_read.unwrap_or(self.input),
            cache_write: self.cache_write.unwrap_or(self.input),
        }
    }
}

/// One row of `prices.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableEntry {
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
    /// Kept in the file for the reader; not used at run time.
    #[allow(dead_code)]
    checked: String,
    #[allow(dead_code)]
    source: String,
}

#[derive(Debug, Deserialize)]
struct TableFile {
    #[allow(dead_code)]
    sources: BTreeMap<String, String>,
    models: BTreeMap<String, TableEntry>,
}

/// The prices in force: the repository's table with the overrides of `config.toml`.
#[derive(Debug, Clone)]
pub struct PriceTable {
    /// Lowercased key -> price.
    prices: BTreeMap<String, Price>,
}

impl PriceTable {
    /// The repository's table alone.
    pub fn builtin() -> PriceTable {
        static BUILTIN: OnceLock<BTreeMap<String, Price>> = OnceLock::new();
        let prices = BUILTIN.get_or_init(|| {
            // The file is ours and tested (`builtin_table_parses`): it always parses.
            let file: TableFile = toml::from_str(TABLE).expect("prices.toml parses");
            file.models
                .into_iter()
                .map(|(k, e)| {
                    let price = Price {
                        input: e.input,
                        output: e.output,
                        cache_read: e.cache_read,
                        cache_write: e.cache_write,
                    };
                    (k.trim().to_lowercase(), price)
                })
                .collect()
        });
        PriceTable {
            prices: prices.clone(),
        }
    }

    /// The repository's table with `overrides` (from `config.toml`) replacing or adding keys.
    pub fn with_overrides(overrides: &BTreeMap<String, PriceOverride>) -> PriceTable {
        let mut table = PriceTable::builtin();
        for (model, o) in overrides {
            table.prices.insert(model.trim().to_lowercase(), o.price());
        }
        table
    }

    /// The price of the model named `name` in the ledger, by the matching rule (module doc).
    pub fn price(&self, name: &str) -> Option<Price> {
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            return None;
        }
        if let Some(p) = self.prices.get(&name) {
            return Some(*p);
        }
        self.matching_key(&name).map(|k| self.prices[k])
    }

    /// The key `name` (lowercased) matches, if any.
    fn matching_key(&self, name: &str) -> Option<&str> {
        let starts = std::iter::once(0).chain(
            name.char_indices()
                .filter(|(_, c)| *c == '/' || *c == '.')
                .map(|(i, _)| i + 1),
        );
        for start in starts {
            let rest = &name[start..];
            let best = self
                .prices
                .keys()
                .filter(|k| rest.starts_with(k.as_str()) && is_version_noise(&rest[k.len()..]))
                .max_by_key(|k| k.len());
            if let Some(k) = best {
                return Some(k.as_str());
            }
        }
        None
    }
}

/// Whether `tail` (what follows a key in a model name) is only dates, build numbers and
/// release words (module doc).
fn is_version_noise(tail: &str) -> bool {
    static NOISE: OnceLock<Regex> = OnceLock::new();
    NOISE
        .get_or_init(|| {
            // A constant pattern: it compiles (tested by every match).
            Regex::new(
                r"^(?:[-@_:.](?:\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{2}|\d{3,4}|latest|preview|exp|v\d+(?::\d+)?))*(?:\[1m\])?$",
            )
            .expect("version noise pattern compiles")
        })
        .is_match(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses_with_every_price_sane() {
        let t = PriceTable::builtin();
        assert!(t.prices.len() >= 30);
        for (k, p) in &t.prices {
            for v in [p.input, p.output, p.cache_read, p.cache_write] {
                assert!(v.is_finite() && v >= 0.0, "{k}");
            }
            assert!(p.output >= p.input, "{k}");
            assert!(p.cache_read <= p.input, "{k}");
        }
    }

    fn key_of(name: &str) -> Option<String> {
        let t = PriceTable::builtin();
        t.matching_key(&name.trim().to_lowercase())
            .map(str::to_owned)
            .or_else(|| t.prices.contains_key(name).then(|| name.to_owned()))
    }

    #[test]
    fn model_names_match_their_key_through_dates_and_prefixes() {
        let cases = [
            ("claude-sonnet-4-5-20250929", Some("claude-sonnet-4-5")),
            ("claude-sonnet-4-20250514", Some("claude-sonnet-4")),
            ("claude-opus-4-1-20250805", Some("claude-opus-4-1")),
            ("claude-opus-4-5", Some("claude-opus-4-5")),
            ("Claude-Haiku-4-5-20251001", Some("claude-haiku-4-5")),
            ("claude-3-5-haiku-20241022", Some("claude-3-5-haiku")),
            ("claude-3-7-sonnet-latest", Some("claude-3-7-sonnet")),
            ("claude-sonnet-4-5-20250929[1m]", Some("claude-sonnet-4-5")),
            ("anthropic/claude-sonnet-4-5", Some("claude-sonnet-4-5")),
            (
                "us.anthropic.claude-opus-4-1-20250805-v1:0",
                Some("claude-opus-4-1"),
            ),
            ("claude-opus-4-1@20250805", Some("claude-opus-4-1")),
            ("gpt-5", Some("gpt-5")),
            ("gpt-5-codex", Some("gpt-5-codex")),
            ("gpt-5-2025-08-07", Some("gpt-5")),
            ("gpt-5-mini-2025-08-07", Some("gpt-5-mini")),
            ("gpt-5.1-codex-max", Some("gpt-5.1-codex-max")),
            ("openai/gpt-5-codex", Some("gpt-5-codex")),
            ("o3-2025-04-16", Some("o3")),
            ("o4-mini", Some("o4-mini")),
            ("gpt-4.1-2025-04-14", Some("gpt-4.1")),
            ("gemini-2.5-pro", Some("gemini-2.5-pro")),
            ("models/gemini-2.5-flash", Some("gemini-2.5-flash")),
            ("gemini-2.5-flash-preview-05-20", Some("gemini-2.5-flash")),
            ("gemini-2.5-flash-lite", Some("gemini-2.5-flash-lite")),
            // No fallback to a shorter, cheaper or dearer neighbour.
            ("gpt-5-pro", None),
            ("gpt-4.1-nano", None),
            ("claude-sonnet-4-5-fast", None),
            ("gemini-2.5-pro-tts", None),
            ("o3-pro", None),
            ("<synthetic>", None),
            ("", None),
        ];
        for (name, want) in cases {
            assert_eq!(key_of(name).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn overrides_replace_and_add_prices_and_cache_prices_default_to_input() {
        let mut o = BTreeMap::new();
        o.insert(
            "claude-sonnet-4-5".to_owned(),
            PriceOverride {
                input: 1.0,
                output: 2.0,
                cache_read: Some(0.5),
                cache_write: None,
            },
        );
        o.insert(
            "My-Local-Model".to_owned(),
            PriceOverride {
                input: 0.0,
                output: 0.0,
                cache_read: None,
                cache_write: None,
            },
        );
        let t = PriceTable::with_overrides(&o);
        let p = t.price("claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(
            (p.input, p.output, p.cache_read, p.cache_write),
            (1.0, 2.0, 0.5, 1.0)
        );
        assert_eq!(t.price("my-local-model").unwrap().output, 0.0);
        assert!(PriceTable::builtin().price("my-local-model").is_none());
        let bad = PriceOverride {
            input: -1.0,
            output: 1.0,
            cache_read: None,
            cache_write: None,
        };
        assert!(
            bad.check("m")
                .unwrap_err()
                .contains("prices.\"m\".input = -1")
        );
    }

    #[test]
    fn cost_bills_each_kind_at_its_price_and_reasoning_apart_as_output() {
        let p = PriceTable::builtin().price("claude-opus-4-1").unwrap();
        let t = TokenCounts {
            input: 1_000_000,
            output: 100_000,
            cache_read: 2_000_000,
            cache_write: 400_000,
            reasoning_apart: 0,
        };
        // 15 + 7.5 + 3 + 7.5
        assert!((p.cost(&t) - 33.0).abs() < 1e-9);
        let g = PriceTable::builtin().price("gemini-2.5-pro").unwrap();
        let t = TokenCounts {
            output: 1_000_000,
            reasoning_apart: 1_000_000,
            ..TokenCounts::default()
        };
        assert!((g.cost(&t) - 20.0).abs() < 1e-9);
    }
}
