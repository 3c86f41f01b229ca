//! How values read on a dashboard: numbers with separators and units, dates by the
//! granularity of their axis. Axis ticks, hover titles, tables, tiles and alerts all go
//! through here, so a value reads the same wherever it is shown.

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use observes_warehouse::SqlValue;
use serde::Deserialize;

/// How a column's numbers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberFormat {
    /// Thousands separators, at most two decimals: `12,345.5`.
    #[default]
    Number,
    /// A percentage (the value is already in percent, 0–100): `12.5%`.
    Percent,
    /// Seconds, shown as a duration: `350 ms`, `45 s`, `4m 10s`, `2h 05m`, `3d 4h`.
    Duration,
    /// Bytes, in binary units: `512 B`, `1.5 KiB`, `2.3 GiB`.
    Bytes,
}

/// A thousands-separated integer part and up to `decimals` decimals, trailing zeros cut.
pub fn grouped(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(text.len() + text.len() / 3 + 1);
    if v < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

impl NumberFormat {
    /// A value, exactly enough for a table cell or a hover title.
    pub fn show(self, v: f64) -> String {
        match self {
            NumberFormat::Number => grouped(v, 2),
            NumberFormat::Percent => format!("{}%", grouped(v, 1)),
            NumberFormat::Duration => duration(v),
            NumberFormat::Bytes => bytes(v),
        }
    }

    /// An axis tick: as short as the scale allows (`12k`, `1.5M`).
    pub fn tick(self, v: f64) -> String {
        match self {
            NumberFormat::Number => compact(v),
            NumberFormat::Percent => format!("{}%", compact(v)),
            NumberFormat::Duration => duration(v)
                .trim_end_matches(" 0h")
                .trim_end_matches(" 00m")
                .trim_end_matches(" 00s")
                .to_string(),
            NumberFormat::Bytes => bytes(v),
        }
    }
}

/// `950`, `12k`, `1.5M`, `2B`: for ticks and tiles' comparisons.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    let (scaled, unit) = if a >= 1e9 {
        (v / 1e9, "B")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        return grouped(v, if a >= 100.0 { 0 } else { 2 });
    };
    format!("{}{unit}", grouped(scaled, 1))
}

/// Seconds as a duration of two units at most.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return seconds.to_string();
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    let s = seconds.abs();
    if s > 0.0 && s < 1.0 {
        return format!(
            "{sign}{} ms",
            grouped(s * 1000.0, if s < 0.01 { 1 } else { 0 })
        );
    }
    if s < 10.0 {
        return format!("{sign}{} s", grouped(s, 1));
    }
    if s < 60.0 {
        return format!("{sign}{:.0} s", s);
    }
    let total = s.round() as u64;
    let (d, h, m, sec) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    if d > 0 {
        format!("{sign}{d}d {h}h")
    } else if h > 0 {
        format!("{sign}{h}h {m:02}m")
    } else {
        format!("{sign}{m}m {sec:02}s")
    }
}

/// Bytes in binary units.
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut scaled = v.abs();
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let decimals = if unit == 0 || scaled >= 100.0 { 0 } else { 1 };
    format!("{sign}{} {}", grouped(scaled, decimals), UNITS[unit])
}

/// How finely an axis of instants is divided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Granularity {
    /// Every value is the first of a month.
    Month,
    /// Every value is a midnight.
    Day,
    /// Values within days.
    Time,
}

/// A date or timestamp as an instant. DuckDB's reader gives dates as `YYYY-MM-DD` text,
/// so text of exactly that shape is a date too.
pub fn instant(v: &SqlValue) -> Option<DateTime<chrono::Utc>> {
    match v {
        SqlValue::Text(t) if t.len() == 10 => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc()),
        SqlValue::Timestamp(us) => DateTime::from_timestamp_micros(*us),
        SqlValue::Date(days) => NaiveDate::from_num_days_from_ce_opt(*days + 719_163)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc()),
        _ => None,
    }
}

/// The granularity of a column of instants (`None`: not every value is one).
pub fn granularity<'a>(values: impl IntoIterator<Item = &'a SqlValue>) -> Option<Granularity> {
    let mut finest = None;
    for v in values {
        let t = instant(v)?;
        let g = if t.num_seconds_from_midnight() != 0 || t.nanosecond() != 0 {
            Granularity::Time
        } else if t.day() != 1 {
            Granularity::Day
        } else {
            Granularity::Month
        };
        finest = finest.max(Some(g));
    }
    finest
}

/// An instant as a label at a granularity: `Nov 2026`, `Nov 3`, `Nov 3 14:00`. The year
/// shows on days when `with_year` (the first label, and where it changes).
pub fn date_label(t: DateTime<chrono::Utc>, g: Granularity, with_year: bool) -> String {
    match g {
        Granularity::Month => t.format("%b %Y").to_string(),
        Granularity::Day if with_year => t.format("%b %-d, %Y").to_string(),
        Granularity::Day => t.format("%b %-d").to_string(),
        Granularity::Time => t.format("%b %-d %H:%M").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_with_separators_and_units() {
        assert_eq!(grouped(1234567.0, 2), "1,234,567");
        assert_eq!(grouped(-1234.567, 2), "-1,234.57");
        assert_eq!(grouped(0.5, 2), "0.5");
        assert_eq!(grouped(-0.001, 2), "0");
        assert_eq!(grouped(999.999, 2), "1,000");
        assert_eq!(NumberFormat::Percent.show(12.345), "12.3%");
        assert_eq!(NumberFormat::Percent.tick(50.0), "50%");
        assert_eq!(NumberFormat::Number.tick(12_500.0), "12.5k");
        assert_eq!(NumberFormat::Number.tick(2_000_000.0), "2M");
        assert_eq!(NumberFormat::Number.tick(250.0), "250");
        assert_eq!(NumberFormat::Number.tick(2.5), "2.5");
        assert_eq!(NumberFormat::Duration.show(4.26), "4.3 s");
        assert_eq!(NumberFormat::Duration.show(0.3504), "350 ms");
        assert_eq!(NumberFormat::Duration.show(0.0042), "4.2 ms");
        assert_eq!(NumberFormat::Duration.show(0.0), "0 s");
        assert_eq!(NumberFormat::Duration.show(45.0), "45 s");
        assert_eq!(NumberFormat::Duration.show(250.0), "4m 10s");
        assert_eq!(NumberFormat::Duration.show(7500.0), "2h 05m");
        assert_eq!(NumberFormat::Duration.tick(120.0), "2m");
        assert_eq!(NumberFormat::Duration.tick(7200.0), "2h");
        assert_eq!(NumberFormat::Duration.tick(86_400.0), "1d");
        assert_eq!(
            NumberFormat::Duration.show(3.0 * 86_400.0 + 4.0 * 3600.0),
            "3d 4h"
        );
        assert_eq!(NumberFormat::Bytes.show(512.0), "512 B");
        assert_eq!(NumberFormat::Bytes.show(1536.0), "1.5 KiB");
        assert_eq!(
            NumberFormat::Bytes.show(3.0 * 1024.0 * 1024.0 * 1024.0),
            "3 GiB"
        );
        assert_eq!(grouped(f64::NAN, 2), "NaN");
    }

    #[test]
    fn dates_read_by_their_granularity() {
        let day = |y, m, d| {
            SqlValue::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap().num_days_from_ce() - 719_163)
        };
        let months = [day(2026, 10, 1), day(2026, 11, 1)];
        assert_eq!(granularity(&months), Some(Granularity::Month));
        let days = [day(2026, 11, 1), day(2026, 11, 2)];
        assert_eq!(granularity(&days), Some(Granularity::Day));
        let at = SqlValue::Timestamp(
            NaiveDate::from_ymd_opt(2026, 11, 3)
                .unwrap()
                .and_hms_opt(14, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_micros(),
        );
        assert_eq!(granularity([&days[0], &at]), Some(Granularity::Time));
        assert_eq!(granularity([&SqlValue::Text("x".into())]), None);
        // DuckDB's dates arrive as text.
        let texts = [
            SqlValue::Text("2026-11-01".into()),
            SqlValue::Text("2026-11-02".into()),
        ];
        assert_eq!(granularity(&texts), Some(Granularity::Day));
        assert_eq!(
            granularity([&SqlValue::Text("2026-13-01".into())]),
            None,
            "not a date"
        );
        let t = instant(&at).unwrap();
        assert_eq!(date_label(t, Granularity::Time, false), "Nov 3 14:00");
        assert_eq!(date_label(t, Granularity::Day, true), "Nov 3, 2026");
        assert_eq!(date_label(t, Granularity::Day, false), "Nov 3");
        assert_eq!(date_label(t, Granularity::Month, false), "Nov 2026");
    }
}
