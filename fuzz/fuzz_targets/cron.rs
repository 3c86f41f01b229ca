//! A schedule expression: parsing never panics, and a parsed schedule's next fire times
//! go forward.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(cron) = observes_scheduler::cron::Cron::parse(text) {
        let start = chrono::DateTime::<chrono::Utc>::from_timestamp(1_790_000_000, 0).unwrap();
        let mut at = start;
        for _ in 0..3 {
            match cron.next_after(at, chrono_tz::UTC) {
                Some(next) => {
                    assert!(next > at, "{text}: {next} after {at}");
                    at = next;
                }
                None => break,
            }
        }
    }
});
