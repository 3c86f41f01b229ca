//! Cron expressions: AWS's `cron(min hour day-of-month month day-of-week year)` and the
//! classic five fields (`min hour day-of-month month day-of-week`), evaluated in a time zone.
//!
//! AWS form: day-of-week 1–7 is Sunday–Saturday; one of the two day fields must be `?`;
//! `L` (last day of the month, or `5L` the last Thursday), `W` (`15W` the weekday nearest the
//! 15th, `LW` the last weekday), `#` (`2#1` the first Monday). Classic form: day-of-week 0–7
//! (0 and 7 are Sunday), no `?` or year, and when both day fields are restricted a day
//! matching either fires (as Vixie cron does).
//!
//! Daylight saving time: a local time that does not exist (skipped when clocks go forward)
//! fires at the same distance past the gap (02:30 → 03:30); a local time that happens twice
//! (when clocks go back) fires once, at its first occurrence.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A cron expression that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {expression:?}: {message}")]
pub struct CronError {
    /// The expression.
    pub expression: String,
    /// What is wrong.
    pub message: String,
}

/// Which values of a field match: bit `v` set when `v` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Bits(u64);

impl Bits {
    fn has(&self, v: u32) -> bool {
        v < 64 && self.0 & (1 << v) != 0
    }
    fn set(&mut self, v: u32) {
        self.0 |= 1 << v;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct DayOfMonth {
    days: Bits,
    /// `L`, or `L-3` (days before the last).
    last: Option<u32>,
    /// `LW`
    last_weekday: bool,
    /// `15W`
    nearest_weekday: Vec<u32>,
    /// `*` or `?`: no restriction.
    any: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct DayOfWeek {
    /// 0 = Sunday … 6 = Saturday.
    days: Bits,
    /// `5L`: the last Thursday of the month (0-based weekday).
    last: Vec<u32>,
    /// `2#1`: (weekday, n).
    nth: Vec<(u32, u32)>,
    any: bool,
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    expression: String,
    minutes: Bits,
    hours: Bits,
    dom: DayOfMonth,
    months: Bits,
    dow: DayOfWeek,
    /// `None`: every year.
    years: Option<Vec<i32>>,
    /// Classic cron: restricted day fields match either.
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl std::str::FromStr for Cron {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Cron, CronError> {
        Cron::parse(s)
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.expression)
    }
}

struct Field<'a> {
    name: &'static str,
    text: &'a str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// What a name's index maps to (months: 1, AWS days: 1, classic days: 0).
    name_base: u32,
}

impl Cron {
    /// Reads a five-field cron expression (minute, hour, day of month, month, day of week).
    pub fn parse(expression: &str) -> Result<Cron, CronError> {
        let err = |message: String| CronError {
            expression: expression.to_string(),
            message,
        };
        let trimmed = expression.trim();
        let (aws, body) = match trimmed
            .strip_prefix("cron(")
            .and_then(|r| r.strip_suffix(')'))
        {
            Some(body) => (true, body),
            None => (false, trimmed),
        };
        let fields: Vec<&str> = body.split_whitespace().collect();
        let expected = if aws { 6 } else { 5 };
        if fields.len() != expected {
            return Err(err(format!(
                "expected {expected} fields ({}), found {}",
                if aws {
                    "minutes hours day-of-month month day-of-week year"
                } else {
                    "minutes hours day-of-month month day-of-week, or cron(… year) for AWS's form"
                },
                fields.len()
            )));
        }
        let simple = |name, text, min, max, names: &'static [&'static str], base| {
            parse_simple(&Field {
                name,
                text,
                min,
                max,
                names,
                name_base: base,
            })
            .map_err(err)
        };
        let minutes = simple("minutes", fields[0], 0, 59, &[], 0)?;
        let hours = simple("hours", fields[1], 0, 23, &[], 0)?;
        let months = simple("month", fields[3], 1, 12, &MONTHS, 1)?;
        let dom = parse_dom(fields[2], aws).map_err(err)?;
        let dow = parse_dow(fields[4], aws).map_err(err)?;
        let years = if aws && fields[5] != "*" {
            let bits = parse_list(&Field {
                name: "year",
                text: fields[5],
                min: 1970,
                max: 2199,
                names: &[],
                name_base: 0,
            })
            .map_err(err)?;
            Some(bits)
        } else {
            None
        };
        if aws {
            let q_dom = fields[2] == "?";
            let q_dow = fields[4] == "?";
            if q_dom == q_dow {
                return Err(err(
                    "one of day-of-month and day-of-week must be ? (and not both)".into(),
                ));
            }
        } else if fields[2] == "?" || fields[4] == "?" {
            return Err(err("? belongs to AWS's cron(…) form".into()));
        }
        Ok(Cron {
            expression: trimmed.to_string(),
            minutes,
            hours,
            dom,
            months,
            dow,
            years,
            either_day: !aws,
        })
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.dom_matches(date);
        let dow = self.dow_matches(date);
        if self.either_day {
            match (self.dom.any, self.dow.any) {
                (true, true) => true,
                (true, false) => dow,
                (false, true) => dom,
                (false, false) => dom || dow,
            }
        } else {
            dom && dow
        }
    }

    fn dom_matches(&self, date: NaiveDate) -> bool {
        let d = &self.dom;
        if d.any {
            return true;
        }
        let day = date.day();
        let last = last_day(date.year(), date.month());
        if d.days.has(day) {
            return true;
        }
        if let Some(before) = d.last {
            if last.checked_sub(before) == Some(day) {
                return true;
            }
        }
        if d.last_weekday && nearest_weekday(date.year(), date.month(), last) == day {
            return true;
        }
        d.nearest_weekday
            .iter()
            .any(|&n| n <= last && nearest_weekday(date.year(), date.month(), n) == day)
    }

    fn dow_matches(&self, date: NaiveDate) -> bool {
        let d = &self.dow;
        if d.any {
            return true;
        }
        let wd = date.weekday().num_days_from_sunday();
        if d.days.has(wd) {
            return true;
        }
        let last = last_day(date.year(), date.month());
        if d.last.contains(&wd) && date.day() + 7 > last {
            return true;
        }
        d.nth
            .iter()
            .any(|&(w, n)| w == wd && (date.day() - 1) / 7 + 1 == n)
    }

    /// The first fire time strictly after `after`, in `tz`; `None` when there is none
    /// (a past year list).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local();
        let mut date = local.date();
        // Whole days are skipped quickly; the bound covers leap-day and year schedules.
        for _ in 0..(366 * 9) {
            if let Some(years) = &self.years {
                if years.iter().all(|&y| y < date.year()) {
                    return None;
                }
            }
            let year_ok = self
                .years
                .as_ref()
                .is_none_or(|ys| ys.contains(&date.year()));
            if year_ok && self.months.has(date.month()) && self.day_matches(date) {
                for hour in 0..24 {
                    if !self.hours.has(hour) {
                        continue;
                    }
                    for minute in 0..60 {
                        if !self.minutes.has(minute) {
                            continue;
                        }
                        let naive = date.and_hms_opt(hour, minute, 0)?;
                        let Some(at) = resolve_local(tz, naive) else {
                            continue;
                        };
                        if at > after {
                            return Some(at);
                        }
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// The fire times in `(after, until]`, at most `limit` of them.
    pub fn between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        tz: Tz,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = after;
        while out.len() < limit {
            match self.next_after(at, tz) {
                Some(next) if next <= until => {
                    out.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        out
    }
}

/// A local wall-clock time as an instant: the first of two when it happens twice, and
/// shifted past the gap when it does not happen.
fn resolve_local(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        chrono::LocalResult::None => {
            // The offset in force just before the gap, applied to the missing time.
            let before = tz
                .from_local_datetime(&(naive - Duration::hours(3)))
                .earliest()?;
            let offset = before.offset().fix().local_minus_utc();
            Some(Utc.from_utc_datetime(&(naive - Duration::seconds(offset as i64))))
        }
    }
}

use chrono::Offset;

fn last_day(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// The weekday nearest to day `n` of the month, without leaving the month.
fn nearest_weekday(year: i32, month: u32, n: u32) -> u32 {
    let Some(date) = NaiveDate::from_ymd_opt(year, month, n) else {
        return 0;
    };
    let last = last_day(year, month);
    match date.weekday().num_days_from_sunday() {
        6 if n == 1 => 3,        // Saturday the 1st → Monday the 3rd
        6 => n - 1,              // Saturday → Friday
        0 if n == last => n - 2, // Sunday the last → Friday
        0 => n + 1,              // Sunday → Monday
        _ => n,
    }
}

fn value(field: &Field, text: &str) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(i) = field.names.iter().position(|n| *n == upper) {
        return Ok(i as u32 + field.name_base);
    }
    let v: u32 = text
        .parse()
        .map_err(|_| format!("{}: {text:?} is not a value", field.name))?;
    if v < field.min || v > field.max {
        return Err(format!(
            "{}: {v} is out of range {}-{}",
            field.name, field.min, field.max
        ));
    }
    Ok(v)
}

/// `*`, `a`, `a-b`, `*/s`, `a/s`, `a-b/s`, comma-joined: the values it lists.
fn parse_list(field: &Field) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for part in field.text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{}: bad step {s:?}", field.name))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(field, a)?, value(field, b)?)
        } else {
            let v = value(field, range)?;
            // `a/s` runs from a to the end.
            (v, if part.contains('/') { field.max } else { v })
        };
        if lo > hi {
            return Err(format!("{}: range {range:?} runs backwards", field.name));
        }
        let mut v = lo;
        while v <= hi {
            out.push(v as i32);
            v += step;
        }
    }
    Ok(out)
}

fn parse_simple(field: &Field) -> Result<Bits, String> {
    let mut bits = Bits::default();
    for v in parse_list(field)? {
        bits.set(v as u32);
    }
    Ok(bits)
}

fn parse_dom(text: &str, aws: bool) -> Result<DayOfMonth, String> {
    let mut d = DayOfMonth::default();
    if text == "?" || text == "*" {
        d.any = true;
        return Ok(d);
    }
    fn field(text: &str) -> Field<'_> {
        Field {
            name: "day-of-month",
            text,
            min: 1,
            max: 31,
            names: &[],
            name_base: 0,
        }
    }
    for part in text.split(',') {
        let upper = part.to_ascii_uppercase();
        if aws && upper == "L" {
            d.last = Some(0);
        } else if aws && upper == "LW" {
            d.last_weekday = true;
        } else if let (true, Some(n)) = (aws, upper.strip_prefix("L-")) {
            d.last = Some(
                n.parse()
                    .ok()
                    .filter(|n| *n < 31)
                    .ok_or(format!("day-of-month: bad {part:?}"))?,
            );
        } else if let (true, Some(n)) = (aws, upper.strip_suffix('W')) {
            d.nearest_weekday.push(value(&field(n), n)?);
        } else {
            for v in parse_list(&field(part))? {
                d.days.set(v as u32);
            }
        }
    }
    Ok(d)
}

fn dow_field(text: &str, aws: bool) -> Field<'_> {
    Field {
        name: "day-of-week",
        text,
        min: if aws { 1 } else { 0 },
        max: 7,
        names: &DAYS,
        name_base: if aws { 1 } else { 0 },
    }
}

fn parse_dow(text: &str, aws: bool) -> Result<DayOfWeek, String> {
    let mut d = DayOfWeek::default();
    if text == "?" || text == "*" {
        d.any = true;
        return Ok(d);
    }
    // AWS numbers days 1–7 from Sunday; classic cron 0–7 with 0 and 7 for Sunday.
    let zero_based = |v: u32| if aws { v - 1 } else { v % 7 };
    let mut hashes = 0;
    for part in text.split(',') {
        let upper = part.to_ascii_uppercase();
        if let (true, Some((day, n))) = (aws, upper.split_once('#')) {
            hashes += 1;
            let n: u32 = n
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or(format!("day-of-week: bad {part:?} (n must be 1-5)"))?;
            d.nth
                .push((zero_based(value(&dow_field(day, aws), day)?), n));
        } else if let (true, Some(day)) = (aws, upper.strip_suffix('L').filter(|s| !s.is_empty())) {
            d.last.push(zero_based(value(&dow_field(day, aws), day)?));
        } else if aws && upper == "L" {
            d.last.push(6);
        } else {
            for v in parse_list(&dow_field(part, aws))? {
                d.days.set(zero_based(v as u32));
            }
        }
    }
    if hashes > 1 {
        return Err("day-of-week: only one # expression is allowed".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        let cron = Cron::parse(expr).unwrap();
        let tz: Tz = tz.parse().unwrap();
        let mut out = Vec::new();
        let mut t = at(after);
        for _ in 0..n {
            t = cron.next_after(t, tz).unwrap();
            out.push(t.with_timezone(&tz).to_rfc3339());
        }
        out
    }

    /// Expressions × instants → exact next fire times.
    #[test]
    fn next_fire_times() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            (
                "cron(0 10 * * ? *)",
                "UTC",
                "2026-03-05T10:00:00Z",
                &["2026-03-06T10:00:00+00:00", "2026-03-07T10:00:00+00:00"],
            ),
            (
                "cron(0/15 * * * ? *)",
                "UTC",
                "2026-03-05T10:07:00Z",
                &["2026-03-05T10:15:00+00:00", "2026-03-05T10:30:00+00:00"],
            ),
            (
                "cron(0 18 ? * MON-FRI *)",
                "UTC",
                "2026-11-27T18:00:00Z",
                &["2026-11-30T18:00:00+00:00"],
            ),
            (
                "cron(0 8 1 * ? *)",
                "UTC",
                "2026-01-31T00:00:00Z",
                &["2026-02-01T08:00:00+00:00", "2026-03-01T08:00:00+00:00"],
            ),
            (
                "cron(0/5 8-17 ? * MON-FRI *)",
                "UTC",
                "2026-11-27T17:56:00Z",
                &["2026-11-30T08:00:00+00:00"],
            ),
            // First Monday; the last day of the month (a leap February); the last Friday.
            (
                "cron(0 9 ? * 2#1 *)",
                "UTC",
                "2026-11-25T00:00:00Z",
                &["2026-12-07T09:00:00+00:00", "2027-01-04T09:00:00+00:00"],
            ),
            (
                "cron(0 0 L * ? *)",
                "UTC",
                "2028-02-01T00:00:00Z",
                &["2028-02-29T00:00:00+00:00", "2028-03-31T00:00:00+00:00"],
            ),
            (
                "cron(30 23 ? * 6L *)",
                "UTC",
                "2026-11-01T00:00:00Z",
                &["2026-11-27T23:30:00+00:00", "2026-12-25T23:30:00+00:00"],
            ),
            // The weekday nearest the 15th (Sat 15 Aug → Fri 14), the last weekday (Sat 31 Oct → Fri 30).
            (
                "cron(0 12 15W * ? *)",
                "UTC",
                "2026-08-01T00:00:00Z",
                &["2026-08-14T12:00:00+00:00", "2026-09-15T12:00:00+00:00"],
            ),
            (
                "cron(0 12 LW * ? *)",
                "UTC",
                "2026-10-01T00:00:00Z",
                &["2026-10-30T12:00:00+00:00", "2026-11-30T12:00:00+00:00"],
            ),
            // Saturday the 1st → Monday the 3rd (the month is not left).
            (
                "cron(0 12 1W * ? *)",
                "UTC",
                "2026-08-01T00:00:00Z",
                &["2026-08-03T12:00:00+00:00"],
            ),
            // Year fields.
            (
                "cron(0 0 1 1 ? 2028-2029)",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2028-01-01T00:00:00+00:00", "2029-01-01T00:00:00+00:00"],
            ),
            // Time zones and DST (New York: clocks forward 2026-03-08 02:00, back 2026-11-01 02:00).
            (
                "cron(30 2 * * ? *)",
                "America/New_York",
                "2026-03-07T12:00:00Z",
                &["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"],
            ),
            (
                "cron(30 1 * * ? *)",
                "America/New_York",
                "2026-10-31T12:00:00Z",
                &["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
            ),
            (
                "cron(0 9 * * ? *)",
                "Europe/Madrid",
                "2026-03-28T09:00:00Z",
                &["2026-03-29T09:00:00+02:00", "2026-03-30T09:00:00+02:00"],
            ),
            (
                "cron(0 9 * * ? *)",
                "America/Bogota",
                "2026-03-01T00:00:00Z",
                &["2026-03-01T09:00:00-05:00"],
            ),
            // Classic five fields: 0 and 7 are Sunday; both day fields restricted match either.
            (
                "0 3 * * 0",
                "UTC",
                "2026-11-25T00:00:00Z",
                &["2026-11-29T03:00:00+00:00"],
            ),
            (
                "0 3 * * 7",
                "UTC",
                "2026-11-25T00:00:00Z",
                &["2026-11-29T03:00:00+00:00"],
            ),
            (
                "*/20 9-10 * * 1-5",
                "UTC",
                "2026-11-27T10:41:00Z",
                &["2026-11-30T09:00:00+00:00", "2026-11-30T09:20:00+00:00"],
            ),
            (
                "0 0 13 * 5",
                "UTC",
                "2026-11-01T00:00:00Z",
                &[
                    "2026-11-06T00:00:00+00:00",
                    "2026-11-13T00:00:00+00:00",
                    "2026-11-20T00:00:00+00:00",
                ],
            ),
            (
                "15 4 1,15 jan,jul *",
                "UTC",
                "2026-01-02T00:00:00Z",
                &["2026-01-15T04:15:00+00:00", "2026-07-01T04:15:00+00:00"],
            ),
        ];
        for (expr, tz, after, expected) in cases {
            assert_eq!(
                next(expr, tz, after, expected.len()),
                expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{expr} in {tz} after {after}"
            );
        }
    }

    #[test]
    fn past_years_have_no_next_time() {
        let cron = Cron::parse("cron(0 0 1 1 ? 2020)").unwrap();
        assert_eq!(cron.next_after(at("2026-01-01T00:00:00Z"), Tz::UTC), None);
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let cases = [
            ("cron(0 10 * * * *)", "one of day-of-month and day-of-week must be ? (and not both)"),
            ("cron(0 10 * *)", "expected 6 fields (minutes hours day-of-month month day-of-week year), found 4"),
            ("0 10 * *", "expected 5 fields (minutes hours day-of-month month day-of-week, or cron(… year) for AWS's form), found 4"),
            ("cron(60 10 * * ? *)", "minutes: 60 is out of range 0-59"),
            ("cron(0 10 ? * 3#1,6#3 *)", "day-of-week: only one # expression is allowed"),
            ("cron(0 10 ? * 8 *)", "day-of-week: 8 is out of range 1-7"),
            ("cron(0 10 ? * 2#6 *)", "day-of-week: bad \"2#6\" (n must be 1-5)"),
            ("cron(*/0 10 ? * 2 *)", "minutes: bad step \"0\""),
            ("cron(0 20-10 * * ? *)", "hours: range \"20-10\" runs backwards"),
            ("0 10 ? * 1", "? belongs to AWS's cron(…) form"),
            ("cron(0 10 * FOO ? *)", "month: \"FOO\" is not a value"),
            ("cron(0 0 1 1 ? 1969)", "year: 1969 is out of range 1970-2199"),
        ];
        for (expr, message) in cases {
            let err = Cron::parse(expr).unwrap_err();
            assert_eq!(err.to_string(), format!("schedule {expr:?}: {message}"));
        }
    }
}
