//! Times of the query commands: `--since` / `--until` parsed into epoch milliseconds (one
//! parser for `nex search`, `nex usage`, `nex sessions list` and the MCP tools), and epoch
//! milliseconds written as RFC 3339 (UTC).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use super::QueryError;

/// The clock a calendar day, or a time written without an offset, is read in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Zone {
    /// The local zone: `TZ` when it is set, else the system's (UTC when neither can be read,
    /// as `nex`'s printed times do). Every command's default.
    #[default]
    Local,
    /// UTC (`nex --utc`).
    Utc,
}

impl Zone {
    /// `--utc` given or not.
    pub fn of_utc_flag(utc: bool) -> Zone {
        if utc { Zone::Utc } else { Zone::Local }
    }

    fn time_zone(self) -> TimeZone {
        match self {
            Zone::Utc => TimeZone::UTC,
            Zone::Local => TimeZone::try_system().unwrap_or(TimeZone::UTC),
        }
    }
}

/// A point or a span given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBound {
    /// The first millisecond it covers (what `--since` keeps from).
    pub start_ms: i64,
    /// The first millisecond after it (what `--until` keeps before): a date covers its whole
    /// day, a time one millisecond.
    pub end_ms: i64,
}

/// Parses a `--since` / `--until` value:
///
/// - `YYYY-MM-DD`: that calendar day in `zone`, from its first instant to the next day's (a
///   day of 23 or 25 hours across a DST change is as long as it is);
/// - `YYYY-MM-DDTHH:MM[:SS[.fff]]` (or a space for `T`) followed by `Z` or `±HH:MM`: that
///   instant; without an offset: that wall-clock time in `zone`;
/// - `N` + `h` / `d` / `w`: that long before `now_ms`.
///
/// Errors: `date_invalid` naming the text and the forms accepted (a day off the calendar such
/// as `2026-02-30` included).
pub fn parse_bound(text: &str, now_ms: i64, zone: Zone) -> Result<TimeBound, QueryError> {
    bound_in(text, now_ms, zone.time_zone())
}

/// `--since` and `--until` as the window `[since_ms, until_ms)`: from the start of `since`
/// to the end of `until` (an `--until` day is included).
///
/// Errors: `date_invalid`, as [`parse_bound`].
pub fn window(
    since: Option<&str>,
    until: Option<&str>,
    zone: Zone,
) -> Result<(Option<i64>, Option<i64>), QueryError> {
    let now = now_ms();
    let bound = |text: Option<&str>| text.map(|t| parse_bound(t, now, zone)).transpose();
    Ok((
        bound(since)?.map(|b| b.start_ms),
        bound(until)?.map(|b| b.end_ms),
    ))
}

fn bound_in(text: &str, now_ms: i64, tz: TimeZone) -> Result<TimeBound, QueryError> {
    let t = text.trim();
    let bad = || QueryError::DateInvalid(t.to_owned());
    if let Some(ms) = relative(t, now_ms) {
        return Ok(TimeBound {
            start_ms: ms,
            end_ms: ms + 1,
        });
    }
    if t.len() == 10 {
        let day = parse_date(t).ok_or_else(bad)?;
        let start = day.to_zoned(tz.clone()).map_err(|_| bad())?;
        let next = day
            .tomorrow()
            .and_then(|d| d.to_zoned(tz))
            .map_err(|_| bad())?;
        return Ok(TimeBound {
            start_ms: start.timestamp().as_millisecond(),
            end_ms: next.timestamp().as_millisecond(),
        });
    }
    // The date must be ours to check (jiff accepts other shapes, such as `20261206`).
    if !t.is_char_boundary(10) || parse_date(&t[..10]).is_none() {
        return Err(bad());
    }
    let ms = match t.parse::<jiff::Timestamp>() {
        Ok(ts) => ts.as_millisecond(),
        Err(_) => {
            let local: DateTime = t.parse().map_err(|_| bad())?;
            local
                .to_zoned(tz)
                .map_err(|_| bad())?
                .timestamp()
                .as_millisecond()
        }
    };
    Ok(TimeBound {
        start_ms: ms,
        end_ms: ms + 1,
    })
}

fn relative(t: &str, now_ms: i64) -> Option<i64> {
    let unit = t.chars().last()?;
    let n = i64::from(t[..t.len() - unit.len_utf8()].parse::<u32>().ok()?);
    let ms = match unit {
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    Some(now_ms - n.checked_mul(ms)?)
}

/// The calendar day `YYYY-MM-DD` (exactly that shape; a day off the calendar is `None`).
fn parse_date(date: &str) -> Option<Date> {
    let b = date.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    let y: i16 = date[0..4].parse().ok()?;
    let m: i8 = date[5..7].parse().ok()?;
    let d: i8 = date[8..10].parse().ok()?;
    Date::new(y, m, d).ok()
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `ms` as RFC 3339 in UTC with milliseconds: `2026-12-06T06:49:54.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_timestamps_and_relative_bounds_in_utc() {
        let day = parse_bound("2026-12-06", 0, Zone::Utc).unwrap();
        assert_eq!(rfc3339(day.start_ms), "2026-12-06T00:00:00.000Z");
        assert_eq!(day.end_ms - day.start_ms, 86_400_000);
        let at = parse_bound("2026-12-06T06:49:54.5Z", 0, Zone::Utc).unwrap();
        assert_eq!(rfc3339(at.start_ms), "2026-12-06T06:49:54.500Z");
        assert_eq!(at.end_ms, at.start_ms + 1);
        let zoned = parse_bound("2026-12-06T08:49+02:00", 0, Zone::Utc).unwrap();
        assert_eq!(rfc3339(zoned.start_ms), "2026-12-06T06:49:00.000Z");
        let bare = parse_bound("2026-12-06 08:49", 0, Zone::Utc).unwrap();
        assert_eq!(rfc3339(bare.start_ms), "2026-12-06T08:49:00.000Z");
        assert_eq!(
            parse_bound("2d", 3 * 86_400_000, Zone::Utc)
                .unwrap()
                .start_ms,
            86_400_000
        );
        assert_eq!(
            rfc3339(parse_bound("2024-02-29", 0, Zone::Utc).unwrap().start_ms),
            "2024-02-29T00:00:00.000Z"
        );
        for bad in [
            "2025-02-29",
            "2026-02-30",
            "2026-3-01",
            "yesterday",
            "2026-13-01",
            "2026-12-06T25:00Z",
            "20261206T0849Z",
            "-2d",
            "",
            "7x",
        ] {
            let e = parse_bound(bad, 0, Zone::Utc).unwrap_err();
            assert_eq!(e.code(), crate::protocol::Code::DateInvalid, "{bad}");
        }
    }

    #[test]
    fn a_day_is_read_in_the_local_zone_with_its_dst_length() {
        // A fixed zone, as `Zone::Local` reads it from `TZ`.
        let paris = TimeZone::get("Europe/Paris").unwrap();
        let spring = bound_in("2026-03-29", 0, paris.clone()).unwrap();
        assert_eq!(rfc3339(spring.start_ms), "2026-03-28T23:00:00.000Z");
        // The spring-forward day has 23 hours.
        assert_eq!(spring.end_ms - spring.start_ms, 23 * 3_600_000);
        let wall = bound_in("2026-07-01T12:00", 0, paris.clone()).unwrap();
        assert_eq!(rfc3339(wall.start_ms), "2026-07-01T10:00:00.000Z");
        // An offset given wins over the zone.
        let given = bound_in("2026-07-01T12:00Z", 0, paris).unwrap();
        assert_eq!(rfc3339(given.start_ms), "2026-07-01T12:00:00.000Z");
    }
}
