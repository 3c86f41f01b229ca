//! Incremental windows: where a run starts (the bookmark minus a lookback) and how a time
//! range is cut into the windows an API accepts.

use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, TimeZone, Utc};

/// An instant, in UTC.
pub type Time = DateTime<Utc>;

/// An RFC 3339 timestamp (any offset), as UTC.
pub fn parse_time(text: &str) -> Option<Time> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The API format: UTC with milliseconds (`2024-03-05T14:02:11.482Z`).
pub fn format_time(time: Time) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A calendar month, `YYYY-MM`, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// The year.
    pub year: i32,
    /// The month, 1 to 12.
    pub month: u32,
}

impl std::str::FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "current" => return Ok(Month::now()),
            "previous" => return Ok(Month::now().previous()),
            _ => {}
        }
        let bad = || format!("{s:?} is not a month like 2026-10 (or current, previous)");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        let (year, month) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if y.len() != 4 || m.len() != 2 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Month {
    /// The current month.
    pub fn now() -> Month {
        Month::of(Utc::now())
    }

    /// The month an instant falls in.
    pub fn of(time: Time) -> Month {
        Month {
            year: time.year(),
            month: time.month(),
        }
    }

    /// The month before.
    pub fn previous(&self) -> Month {
        match self.month {
            1 => Month {
                year: self.year - 1,
                month: 12,
            },
            m => Month {
                year: self.year,
                month: m - 1,
            },
        }
    }

    /// The month after.
    pub fn next(&self) -> Month {
        match self.month {
            12 => Month {
                year: self.year + 1,
                month: 1,
            },
            m => Month {
                year: self.year,
                month: m + 1,
            },
        }
    }

    /// Its first instant.
    pub fn start(&self) -> Time {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Utc.from_utc_datetime(&t))
            .unwrap_or_default()
    }

    /// The next month's first instant (the end, exclusive).
    pub fn end(&self) -> Time {
        self.next().start()
    }

    /// Every month from `first` to `last`, both included (none if `last` is earlier).
    pub fn range(first: Month, last: Month) -> impl Iterator<Item = Month> {
        std::iter::successors(Some(first), |m| Some(m.next())).take_while(move |m| *m <= last)
    }
}

/// Where incremental extraction starts: the bookmark moved back by `lookback` (late
/// arrivals and clock skew), never before `start_date`; with no bookmark, `start_date`
/// or else `default`.
pub fn resume_from(
    bookmark: Option<Time>,
    lookback: Duration,
    start_date: Option<Time>,
    default: Time,
) -> Time {
    let from = match bookmark {
        Some(b) => b - lookback,
        None => start_date.unwrap_or(default),
    };
    match start_date {
        Some(s) if s > from => s,
        _ => from,
    }
}

/// `[start, end)` cut into consecutive windows of at most `span` (none if `end <= start`).
pub fn windows(start: Time, end: Time, span: Duration) -> impl Iterator<Item = (Time, Time)> {
    let span = span.max(Duration::seconds(1));
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let to = (at + span).min(end);
        let window = (at, to);
        at = to;
        Some(window)
    })
}

#[cfg(test)]
mod tests {
    use super::Month;

    #[test]
    fn months_parse_strictly_and_count_on() {
        assert_eq!(
            "2026-10".parse::<Month>(),
            Ok(Month {
                year: 2026,
                month: 10
            })
        );
        for bad in [
            "2026-13", "2026-1", "26-10", "2026/10", "oct", "2026-00", "",
        ] {
            assert_eq!(
                bad.parse::<Month>().unwrap_err(),
                format!("{bad:?} is not a month like 2026-10 (or current, previous)")
            );
        }
        assert_eq!("previous".parse::<Month>(), Ok(Month::now().previous()));
        let january = Month {
            year: 2026,
            month: 1,
        };
        assert_eq!(january.previous().to_string(), "2025-12");
        assert_eq!(january.previous().next(), january);
        let december: Month = "2026-12".parse().unwrap();
        assert_eq!(december.start().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(december.end().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert_eq!(Month::of(december.end()), december.next());
        let months: Vec<String> =
            Month::range("2025-11".parse().unwrap(), "2026-02".parse().unwrap())
                .map(|m| m.to_string())
                .collect();
        assert_eq!(months, ["2025-11", "2025-12", "2026-01", "2026-02"]);
        assert_eq!(Month::range(december, january).count(), 0);
    }

    use super::*;

    fn t(s: &str) -> Time {
        parse_time(s).unwrap()
    }

    #[test]
    fn windows_cover_the_range_exactly() {
        let w: Vec<_> = windows(
            t("2024-03-05T00:00:00Z"),
            t("2024-03-05T13:00:00Z"),
            Duration::hours(6),
        )
        .collect();
        assert_eq!(
            w,
            vec![
                (t("2024-03-05T00:00:00Z"), t("2024-03-05T06:00:00Z")),
                (t("2024-03-05T06:00:00Z"), t("2024-03-05T12:00:00Z")),
                (t("2024-03-05T12:00:00Z"), t("2024-03-05T13:00:00Z")),
            ]
        );
        assert_eq!(
            windows(
                t("2024-03-05T00:00:00Z"),
                t("2024-03-05T00:00:00Z"),
                Duration::hours(6)
            )
            .count(),
            0
        );
    }

    #[test]
    fn resume_applies_lookback_but_not_before_start_date() {
        let default = t("2020-01-01T00:00:00Z");
        let start = Some(t("2024-03-01T00:00:00Z"));
        assert_eq!(
            resume_from(None, Duration::minutes(5), start, default),
            t("2024-03-01T00:00:00Z")
        );
        assert_eq!(
            resume_from(None, Duration::minutes(5), None, default),
            default
        );
        assert_eq!(
            resume_from(
                Some(t("2024-03-05T10:00:00Z")),
                Duration::minutes(5),
                start,
                default
            ),
            t("2024-03-05T09:55:00Z")
        );
        assert_eq!(
            resume_from(
                Some(t("2024-03-01T00:01:00Z")),
                Duration::minutes(5),
                start,
                default
            ),
            t("2024-03-01T00:00:00Z")
        );
        assert_eq!(
            format_time(t("2024-03-05T09:55:00+02:00")),
            "2024-03-05T07:55:00.000Z"
        );
    }
}
