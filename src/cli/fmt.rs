//! The output conventions every human-facing `nex` line follows, in one place so each command
//! (and each one added later) prints alike:
//!
//! - times: local time with its offset (`2026-12-06 08:40:00 +01:00`), in `TZ` when it is set,
//!   else the system's zone; `--utc` (global) prints UTC (`… +00:00`);
//! - a value not known is `-`, never an empty cell nor `0`;
//! - counts with their noun in the right number (`1 turn`, `2 turns`);
//! - colour only on a terminal, and never when `NO_COLOR` is set (https://no-color.org);
//! - an error is one sentence a user understands, then its code once: `nex: <sentence> [code]`.
//!
//! `--json` output is not touched by any of this: times there are epoch milliseconds.

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once from `--utc` before a command runs.
static UTC: AtomicBool = AtomicBool::new(false);

/// `--utc`: print times in UTC instead of the local zone.
pub fn set_utc(utc: bool) {
    UTC.store(utc, Ordering::Relaxed);
}

/// The zone `--since` / `--until` days are read in: UTC under `--utc`, else the local one.
pub fn zone() -> crate::query::time::Zone {
    crate::query::time::Zone::of_utc_flag(UTC.load(Ordering::Relaxed))
}

/// Epoch ms as `YYYY-MM-DD HH:MM:SS +HH:MM` in the local zone (or UTC under `--utc`); `-` for
/// `None` or a time out of range.
pub fn time(ms: Option<i64>) -> String {
    let Some(ts) = ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()) else {
        return "-".to_owned();
    };
    let zone = if UTC.load(Ordering::Relaxed) {
        jiff::tz::TimeZone::UTC
    } else {
        // `TZ` first, then /etc/localtime; an unknown zone falls back to UTC (shown as +00:00,
        // so the reader is never misled).
        jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC)
    };
    ts.to_zoned(zone)
        .strftime("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// `1 turn`, `2 turns`, `0 turns` (`many` for every count but one).
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The provider names a `--provider` option accepts (checked by clap, which lists them in the
/// help and in its error).
pub fn provider_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        crate::aix::sources::Provider::ALL.map(crate::aix::sources::Provider::as_str),
    )
}

/// `value`, or `-` when it is not known.
pub fn or_dash<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Whether to colour what goes to stderr: a terminal, and `NO_COLOR` unset or empty.
pub fn color_stderr() -> bool {
    no_color_unset() && std::io::stderr().is_terminal()
}

/// Whether to colour what goes to stdout: a terminal, and `NO_COLOR` unset or empty.
pub fn color_stdout() -> bool {
    no_color_unset() && std::io::stdout().is_terminal()
}

fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The one way an error reaches the user: `nex: <sentence> [code]` on stderr.
pub fn print_error(sentence: &dyn Display, code: &dyn Display) {
    super::control_ctx::write_line(true, &format!("nex: {sentence} [{code}]"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_unknowns() {
        assert_eq!(count(1, "turn", "turns"), "1 turn");
        assert_eq!(count(0, "turn", "turns"), "0 turns");
        assert_eq!(count(2, "session", "sessions"), "2 sessions");
        assert_eq!(or_dash(None::<u64>), "-");
        assert_eq!(or_dash(Some(3)), "3");
        assert_eq!(time(None), "-");
    }

    #[test]
    fn utc_times_carry_their_offset() {
        set_utc(true);
        assert_eq!(time(Some(0)), "1970-01-01 00:00:00 +00:00");
        assert_eq!(time(Some(1_764_120_000_000)), "2025-11-26 01:20:00 +00:00");
        set_utc(false);
    }
}
