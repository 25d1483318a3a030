//! Times of the query commands: `--since` / `--until` parsed into epoch milliseconds, and epoch
//! milliseconds written as RFC 3339 (UTC). No time-zone database: dates are UTC.

use super::QueryError;

/// A point or a span given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBound {
    /// The first millisecond it covers.
    pub start_ms: i64,
    /// The first millisecond after it (a date covers its whole day; a timestamp one ms).
    pub end_ms: i64,
}

/// Parses `YYYY-MM-DD` (that UTC day), `YYYY-MM-DDTHH:MM[:SS[.fff]]` followed by `Z` or
/// `±HH:MM` (that instant; without a zone: UTC), or a relative `N` + `h`/`d`/`w` (that long
/// before `now_ms`).
///
/// Errors: `bad_request` naming the text and the forms accepted.
pub fn parse_bound(text: &str, now_ms: i64) -> Result<TimeBound, QueryError> {
    let t = text.trim();
    let bad = || {
        QueryError::BadArgument(format!(
            "cannot read the date {t:?} (use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or 12h, 7d, 2w)"
        ))
    };
    if let Some(ms) = relative(t, now_ms) {
        return Ok(TimeBound {
            start_ms: ms,
            end_ms: ms + 1,
        });
    }
    let (date, rest) = if t.is_char_boundary(10) {
        t.split_at(10)
    } else {
        (t, "")
    };
    let day = parse_date(date).ok_or_else(bad)?;
    let day_ms = day * 86_400_000;
    if rest.is_empty() {
        return Ok(TimeBound {
            start_ms: day_ms,
            end_ms: day_ms + 86_400_000,
        });
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(bad)?;
    let ms = day_ms + parse_clock(rest).ok_or_else(bad)?;
    Ok(TimeBound {
        start_ms: ms,
        end_ms: ms + 1,
    })
}

fn relative(t: &str, now_ms: i64) -> Option<i64> {
    let unit = t.chars().last()?;
    let n: i64 = t[..t.len() - unit.len_utf8()].parse().ok()?;
    let ms = match unit {
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    Some(now_ms - n.checked_mul(ms)?)
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
fn parse_date(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = date[0..4].parse().ok()?;
    let m: i64 = date[5..7].parse().ok()?;
    let d: i64 = date[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Milliseconds from midnight UTC of `HH:MM[:SS[.fff]][Z|±HH:MM]`.
fn parse_clock(text: &str) -> Option<i64> {
    let (clock, offset_min) = if let Some(c) = text.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(pos) = text.rfind(['+', '-']) {
        let (c, zone) = text.split_at(pos);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        (
            c,
            sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?),
        )
    } else {
        (text, 0)
    };
    let mut parts = clock.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let (s, ms) = match parts.next() {
        None => (0, 0),
        Some(sec) => match sec.split_once('.') {
            None => (sec.parse().ok()?, 0),
            Some((s, frac)) => {
                let digits: String = frac.chars().chain("000".chars()).take(3).collect();
                (s.parse().ok()?, digits.parse().ok()?)
            }
        },
    };
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(((h * 60 + m - offset_min) * 60 + s) * 1000 + ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn dates_timestamps_and_relative_bounds() {
        let day = parse_bound("2026-12-06", 0).unwrap();
        assert_eq!(rfc3339(day.start_ms), "2026-12-06T00:00:00.000Z");
        assert_eq!(day.end_ms - day.start_ms, 86_400_000);
        let at = parse_bound("2026-12-06T06:49:54.5Z", 0).unwrap();
        assert_eq!(rfc3339(at.start_ms), "2026-12-06T06:49:54.500Z");
        let zoned = parse_bound("2026-12-06T08:49+02:00", 0).unwrap();
        assert_eq!(rfc3339(zoned.start_ms), "2026-12-06T06:49:00.000Z");
        assert_eq!(
            parse_bound("2d", 3 * 86_400_000).unwrap().start_ms,
            86_400_000
        );
        assert_eq!(
            rfc3339(parse_bound("2024-02-29", 0).unwrap().start_ms),
            "2024-02-29T00:00:00.000Z"
        );
        for bad in [
            "2025-02-29",
            "yesterday",
            "2026-13-01",
            "2026-12-06T25:00Z",
            "",
            "7x",
        ] {
            assert!(parse_bound(bad, 0).is_err(), "{bad}");
        }
    }
}
