//! Incremental windows: where a run starts (the bookmark minus a lookback) and how a time
//! range is cut into the windows an API accepts.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

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
