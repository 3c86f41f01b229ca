//! Parsing of JSON Schema `date-time`, `date` and `time` strings. Hand-written because it
//! runs once per timestamp of every record: the common RFC 3339 forms take a fast path.

fn digits(b: &[u8], from: usize, n: usize) -> Option<u32> {
    let slice = b.get(from..from + n)?;
    let mut v = 0u32;
    for &c in slice {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
///
/// ```
/// assert_eq!(observes_model::time::civil_from_days(19_782), (2024, 2, 29));
/// ```
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn parse_date_parts(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(b, 0, 4)? as i64;
    let m = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `HH:MM[:SS[.fraction]]` at the start of `b`: (microseconds of the day, bytes used).
fn parse_clock(b: &[u8]) -> Option<(i64, usize)> {
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let h = digits(b, 0, 2)?;
    let mi = digits(b, 3, 2)?;
    let mut used = 5;
    let mut s = 0;
    let mut micros = 0i64;
    if b.get(5) == Some(&b':') {
        s = digits(b, 6, 2)?;
        used = 8;
        if matches!(b.get(8), Some(b'.') | Some(b',')) {
            let mut i = 9;
            let mut scale = 100_000i64;
            while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
                micros += (c - b'0') as i64 * scale;
                scale /= 10;
                i += 1;
            }
            if i == 9 {
                return None;
            }
            used = i;
        }
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    if s == 60 {
        // A leap second (RFC 3339 allows `23:59:60`): kept within its minute, as
        // PostgreSQL does, at the last microsecond before the next one.
        s = 59;
        micros = 999_999;
    }
    Some((
        (h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1_000_000 + micros,
        used,
    ))
}

/// Parses an offset (`Z`, `+HH:MM`, `+HHMM`, `+HH`) filling all of `b`: seconds east of UTC.
fn parse_offset(b: &[u8]) -> Option<i64> {
    match b {
        [] => Some(0),
        [b'Z'] | [b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest.len() {
                2 => (digits(rest, 0, 2)?, 0),
                4 => (digits(rest, 0, 2)?, digits(rest, 2, 2)?),
                5 if rest[2] == b':' => (digits(rest, 0, 2)?, digits(rest, 3, 2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i64;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

/// Microseconds since the Unix epoch (UTC) of an RFC 3339 date-time. A missing offset
/// means UTC; a bare date means its midnight (UTC).
///
/// ```
/// use observes_model::time::parse_timestamp_micros;
/// assert_eq!(parse_timestamp_micros("1970-01-01T00:00:01Z"), Some(1_000_000));
/// assert_eq!(parse_timestamp_micros("1970-01-01T01:00:00.5+01:00"), Some(500_000));
/// assert_eq!(parse_timestamp_micros("2026-02-30T00:00:00Z"), None);
/// ```
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let days = parse_date_parts(b)?;
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(days * 86_400_000_000);
    }
    if !matches!(rest[0], b'T' | b't' | b' ') {
        return None;
    }
    let (clock, used) = parse_clock(&rest[1..])?;
    let offset = parse_offset(&rest[1 + used..])?;
    Some(days * 86_400_000_000 + clock - offset * 1_000_000)
}

/// Days since the Unix epoch of a `YYYY-MM-DD` date.
pub fn parse_date_days(s: &str) -> Option<i32> {
    let b = s.trim().as_bytes();
    if b.len() != 10 {
        return None;
    }
    i32::try_from(parse_date_parts(b)?).ok()
}

/// Microseconds since midnight of an `HH:MM[:SS[.fraction]]` time (an offset is allowed and
/// ignored: a time of day has no date to shift).
pub fn parse_time_micros(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let (clock, used) = parse_clock(b)?;
    parse_offset(&b[used..])?;
    Some(clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let day = 86_400_000_000i64;
        let cases: [(&str, Option<i64>); 16] = [
            ("2016-12-31T23:59:60Z", Some(17_166 * day + 86_399_999_999)),
            ("2016-12-31T23:59:61Z", None),
            ("2026-11-25T16:13:00Z", Some(1_795_623_180_000_000)),
            ("2026-11-25T16:13:00.123456Z", Some(1_795_623_180_123_456)),
            ("2026-11-25T16:13:00.1234567Z", Some(1_795_623_180_123_456)),
            ("2026-11-25T18:13:00+02:00", Some(1_795_623_180_000_000)),
            ("2026-11-25T18:13:00+0200", Some(1_795_623_180_000_000)),
            ("2026-11-25 16:13:00", Some(1_795_623_180_000_000)),
            (
                "2026-11-25",
                Some(1_795_623_180_000_000 - (16 * 3600 + 13 * 60) * 1_000_000),
            ),
            ("2024-02-29T00:00:00Z", Some(19_782 * day)),
            ("1969-12-31T23:59:59Z", Some(-1_000_000)),
            ("2023-02-29T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-25T24:00:00Z", None),
            ("yesterday", None),
            ("2026-11-25T16:13:00Zjunk", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_timestamp_micros(input), expected, "{input}");
        }
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date_days("1970-01-02"), Some(1));
        assert_eq!(parse_date_days("1970-01-02T00:00:00Z"), None);
        assert_eq!(parse_time_micros("01:02:03.5"), Some(3_723_500_000));
        assert_eq!(parse_time_micros("01:02"), Some(3_720_000_000));
        assert_eq!(parse_time_micros("25:00:00"), None);
    }
}
