//! When to try a request again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// Exponential backoff with full jitter, capped; `Retry-After` wins when the server sends it.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// The first backoff, and the least any wait is (a `Retry-After: 0` must not spin).
    pub base: Duration,
    /// The longest wait, `Retry-After` included.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(500),
            max: Duration::from_secs(120),
        }
    }
}

/// A cheap random fraction in [0, 1): jitter only needs to spread clients apart.
fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let wait = match retry_after {
            Some(wait) => wait,
            None => {
                let ceiling = self
                    .base
                    .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
                    .min(self.max);
                ceiling.mul_f64(jitter())
            }
        };
        wait.clamp(self.base, self.max)
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (a wait until then).
///
/// ```
/// use observes_http::parse_retry_after;
/// use std::time::Duration;
/// let now = chrono::Utc::now();
/// assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO),
            "in the past: no wait"
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn waits_grow_are_capped_and_never_zero() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for attempt in 1..12 {
            let d = p.delay(attempt, None);
            assert!(d >= p.base && d <= p.max, "{attempt}: {d:?}");
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 1).min(16))).min(p.max);
            assert!(
                d <= ceiling.max(p.base),
                "{attempt}: {d:?} over {ceiling:?}"
            );
        }
        assert_eq!(
            p.delay(1, Some(Duration::ZERO)),
            p.base,
            "Retry-After: 0 must not spin"
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), p.max, "capped");
        assert_eq!(
            p.delay(1, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
    }
}
