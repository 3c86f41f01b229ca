//! What makes generated data look like a company's: values spread around a median with a
//! long tail, busier working hours and weekdays, a slow trend, rare outliers. Each value
//! is a pure function of a key (an id, a serial), not a draw from a world's [`Rng`]
//! (crate::Rng), so shaping one field leaves every other generated value as it was.

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};

/// A uniform number in `[0, 1)` for `key` (splitmix64 of the key's parts).
pub fn unit(key: &[u64]) -> f64 {
    let mut z = 0x9E37_79B9_7F4A_7C15u64;
    for part in key {
        z = z.wrapping_add(*part).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// About normally distributed, mean 0 and deviation 1 (the logistic quantile, scaled).
fn normal(key: &[u64]) -> f64 {
    let u = unit(key).clamp(1e-9, 1.0 - 1e-9);
    (u / (1.0 - u)).ln() * 0.5513
}

/// A value around `median`, spread multiplicatively by `sigma` (log-normal: durations,
/// response times and amounts are skewed right, never negative).
pub fn spread(key: &[u64], median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(key)).exp()
}

/// True for about `per_thousand` keys in a thousand.
pub fn rare(key: &[u64], per_thousand: u32) -> bool {
    unit(key) * 1000.0 < f64::from(per_thousand)
}

/// How busy an instant is: 1 on weekday working hours (08–18 UTC), less at night, and
/// about a third of that at weekends.
pub fn busy(t: DateTime<Utc>) -> f64 {
    let day = if matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
        0.35
    } else {
        1.0
    };
    let hour = if (8..18).contains(&t.hour()) {
        1.0
    } else {
        0.45
    };
    day * hour
}

/// The instant `fraction` (0 to 1) of the way through `start..end` by busyness rather
/// than by the clock: evenly spread events placed so are denser in working hours and on
/// weekdays, and their count is unchanged.
pub fn busy_instant(start: DateTime<Utc>, end: DateTime<Utc>, fraction: f64) -> DateTime<Utc> {
    let hours = ((end - start).num_hours()).max(1);
    let weight = |h: i64| busy(start + chrono::Duration::hours(h));
    let total: f64 = (0..hours).map(weight).sum();
    let mut target = fraction.clamp(0.0, 1.0) * total;
    for h in 0..hours {
        let w = weight(h);
        if target <= w {
            let into = (target / w * 3600.0) as i64;
            return start + chrono::Duration::hours(h) + chrono::Duration::seconds(into);
        }
        target -= w;
    }
    end
}

/// A slow trend: 1 at `start`, `1 + growth` at `end`, linear between.
pub fn trend(t: DateTime<Utc>, start: DateTime<Utc>, end: DateTime<Utc>, growth: f64) -> f64 {
    let span = (end - start).num_seconds().max(1) as f64;
    let done = ((t - start).num_seconds() as f64 / span).clamp(0.0, 1.0);
    1.0 + growth * done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_has_its_median_and_a_long_tail() {
        let mut values: Vec<f64> = (0..10_000).map(|i| spread(&[7, i], 300.0, 0.4)).collect();
        values.sort_by(f64::total_cmp);
        let median = values[5_000];
        assert!((280.0..320.0).contains(&median), "{median}");
        assert!(
            values[9_900] > 2.0 * median,
            "a right tail: {}",
            values[9_900]
        );
        assert!(values[0] > 0.0);
        assert_eq!(spread(&[7, 1], 300.0, 0.4), spread(&[7, 1], 300.0, 0.4));
        let rare_ones = (0..100_000).filter(|i| rare(&[3, *i], 10)).count();
        assert!((800..1200).contains(&rare_ones), "{rare_ones}");
    }

    #[test]
    fn weekends_and_nights_are_quieter() {
        let at = |d: u32, h: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 12, d)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
                .and_utc()
        };
        assert_eq!(busy(at(7, 10)), 1.0, "a Monday morning");
        assert!(busy(at(5, 10)) < 0.5, "a Saturday");
        assert!(busy(at(7, 3)) < 0.5, "a night");
        assert_eq!(trend(at(7, 0), at(1, 0), at(11, 0), 0.2), 1.12);
        // A week of evenly spread events, placed by busyness: most on weekdays' days.
        let placed: Vec<_> = (0..700)
            .map(|k| busy_instant(at(5, 0), at(12, 0), k as f64 / 700.0))
            .collect();
        assert!(placed.windows(2).all(|w| w[0] <= w[1]), "in order");
        let weekend = placed
            .iter()
            .filter(|t| matches!(t.weekday(), Weekday::Sat | Weekday::Sun))
            .count();
        assert!(
            (60..140).contains(&weekend),
            "{weekend} of 700 at the weekend"
        );
    }
}
