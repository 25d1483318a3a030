//! `[prices."model"]` of `config.toml`: model prices overriding or adding to the repository's
//! table (`prices.toml`, `crate::query::prices`), checked key by key and value by value.

use std::collections::BTreeMap;

use super::keys::unknown;
use crate::query::prices::PriceOverride;

/// Keys of a `[prices."model"]` table.
const PRICE_KEYS: &[&str] = &["input", "output", "cache_read", "cache_write"];

/// The `prices` value of the top level: a table of models, each a table of known keys.
pub(super) fn check_keys(value: &toml::Value) -> Result<(), String> {
    let Some(models) = value.as_table() else {
        return Err("prices must be a table of models: [prices.\"model-name\"]".into());
    };
    for (model, price) in models {
        let Some(price) = price.as_table() else {
            return Err(format!(
                "prices.\"{model}\" must be a table: input, output, cache_read, cache_write"
            ));
        };
        for key in price.keys() {
            if !PRICE_KEYS.contains(&key.as_str()) {
                return Err(unknown(key, &format!("prices.\"{model}\"."), PRICE_KEYS));
            }
        }
    }
    Ok(())
}

/// Every price a price (the message names the model and the key).
pub(super) fn check_values(prices: &BTreeMap<String, PriceOverride>) -> Result<(), String> {
    for (model, price) in prices {
        price.check(model)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::read_config;

    #[test]
    fn prices_are_accepted_and_checked_key_by_key() {
        let f = read_config(
            "[prices.\"my-model\"]\ninput = 1.5\noutput = 3\n[prices.\"claude-opus-4-5\"]\ninput = 1\noutput = 2\ncache_read = 0.1\ncache_write = 1.25\n",
        )
        .unwrap();
        assert_eq!(f.prices.len(), 2);
        assert_eq!(f.prices["my-model"].input, 1.5);
        assert_eq!(f.prices["claude-opus-4-5"].cache_write, Some(1.25));
        let e = read_config("[prices.m]\ninput = 1\noutput = 2\ncache_reads = 1\n").unwrap_err();
        assert!(
            e.contains(
                "unknown key `prices.\"m\".cache_reads` (did you mean `prices.\"m\".cache_read`?)"
            ),
            "{e}"
        );
        let e = read_config("[prices.m]\ninput = -1\noutput = 2\n").unwrap_err();
        assert!(e.contains("prices.\"m\".input = -1 is not a price"), "{e}");
        let e = read_config("[prices.m]\ninput = 1\n").unwrap_err();
        assert!(e.contains("output"), "{e}");
        let e = read_config("prices = 3\n").unwrap_err();
        assert!(e.contains("prices"), "{e}");
    }
}
