//! Exactly-once: 1,000 random tick sequences over a simulated month — ticks that repeat,
//! arrive late after gaps, overlap (the lock is held by another tick), and die between
//! submitting and recording — submit each due run exactly once, per catch-up policy.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use observes_scheduler::catalogue::{Catalogue, RawJob, SchedulerSettings};
use observes_scheduler::tick::{self, Submit, SubmitError};
use observes_scheduler::Run;
use observes_state::StateStore;

/// A queue that remembers what it got, and can die after a submission (before the tick
/// records it), as a crashed scheduler would.
#[derive(Default)]
struct Recorder {
    submitted: Vec<String>,
    keys: BTreeSet<String>,
    die_after_next_submit: bool,
}

impl Submit for Recorder {
    fn exists(&mut self, key: &str) -> Result<bool, SubmitError> {
        Ok(self.keys.contains(key))
    }
    fn submit(&mut self, run: &Run) -> Result<(), SubmitError> {
        self.submitted.push(run.key.clone());
        self.keys.insert(run.key.clone());
        if std::mem::take(&mut self.die_after_next_submit) {
            return Err("the scheduler died".into());
        }
        Ok(())
    }
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn catalogue() -> Catalogue {
    let raw: BTreeMap<String, RawJob> = toml::from_str(
        r#"
["/every/15min/all"]
command = ["true"]
schedule = "cron(0/15 * * * ? *)"
catch_up = "all"
["/hourly/latest"]
command = ["true"]
schedule = "0 * * * *"
["/weekdays/9am/all"]
command = ["true"]
schedule = "cron(0 9 ? * MON-FRI *)"
catch_up = "all"
"#,
    )
    .unwrap();
    Catalogue::build(
        &SchedulerSettings {
            timezone: Some("America/New_York".into()),
        },
        &BTreeMap::new(),
        &raw,
    )
    .unwrap()
}

#[test]
fn a_thousand_random_tick_sequences_submit_each_due_run_exactly_once() {
    let catalogue = catalogue();
    let start: DateTime<Utc> = "2026-10-15T00:00:00Z".parse().unwrap();
    let end = start + Duration::days(30);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for sequence in 0..1000 {
        // The same store code as a folder or S3, in memory: a thousand months of ticks.
        let store = StateStore::open("memory://").unwrap();
        let mut queue = Recorder::default();
        // The first tick starts every schedule.
        let mut now = start;
        let mut ticks = vec![];
        rt.block_on(tick::tick(&catalogue, &store, &mut queue, root.path(), now))
            .unwrap();
        // Tick lengths: mostly a few minutes, sometimes the same instant again, sometimes a
        // gap of hours or days.
        while now < end {
            now += match rng.below(10) {
                0 => Duration::zero(),
                1 => Duration::hours(rng.below(72) as i64),
                _ => Duration::minutes(1 + rng.below(40) as i64),
            };
            let now = now.min(end);
            ticks.push(now);
            match rng.below(20) {
                // Another tick holds the lock: this one submits nothing.
                0 => {
                    let held = rt
                        .block_on(store.lock(
                            "scheduler",
                            "another tick",
                            std::time::Duration::from_secs(60),
                        ))
                        .unwrap();
                    let r = rt
                        .block_on(tick::tick(&catalogue, &store, &mut queue, root.path(), now))
                        .unwrap();
                    assert!(r.is_none());
                    rt.block_on(store.unlock(held)).unwrap();
                }
                // The tick dies right after a submission; the next one must not repeat it.
                1 => {
                    queue.die_after_next_submit = true;
                    let _ =
                        rt.block_on(tick::tick(&catalogue, &store, &mut queue, root.path(), now));
                    queue.die_after_next_submit = false;
                    // A lock left by a dead tick expires; here the test releases it as the
                    // expiry would.
                    let _ = rt.block_on(store.delete("scheduler", "lock"));
                }
                _ => {
                    rt.block_on(tick::tick(&catalogue, &store, &mut queue, root.path(), now))
                        .unwrap();
                }
            }
        }
        // A final tick finishes what a death left pending.
        rt.block_on(tick::tick(&catalogue, &store, &mut queue, root.path(), end))
            .unwrap();

        let unique: BTreeSet<&String> = queue.submitted.iter().collect();
        assert_eq!(
            unique.len(),
            queue.submitted.len(),
            "sequence {sequence}: a run was submitted twice"
        );
        for job in catalogue.jobs.values() {
            let cron = job.schedule.as_ref().unwrap();
            let all: Vec<DateTime<Utc>> = cron.between(start, end, catalogue.timezone, 100_000);
            let got: Vec<DateTime<Utc>> = queue
                .submitted
                .iter()
                .filter_map(|k| k.strip_prefix(&format!("{}@", job.name)))
                .map(|t| t.parse().unwrap())
                .collect();
            if job.name.ends_with("/all") {
                let mut sorted = got.clone();
                sorted.sort();
                assert_eq!(
                    sorted, all,
                    "sequence {sequence}: {} must get every run",
                    job.name
                );
            } else {
                // latest: only real fire times, the last one included, and never more than
                // one per tick window.
                assert!(got.iter().all(|t| all.contains(t)), "sequence {sequence}");
                assert_eq!(got.iter().max(), all.last(), "sequence {sequence}");
                assert!(got.len() <= ticks.len() + 1);
            }
        }
    }
}

#[test]
fn a_first_tick_starts_the_schedule_and_a_dry_run_changes_nothing() {
    let catalogue = catalogue();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().to_str().unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut queue = Recorder::default();
    let t0: DateTime<Utc> = "2026-11-02T13:50:00Z".parse().unwrap(); // Monday 08:50 in New York
    let first = rt
        .block_on(tick::tick(&catalogue, &store, &mut queue, dir.path(), t0))
        .unwrap()
        .unwrap();
    assert!(first.is_empty(), "no backfill on the first tick");
    let t1 = t0 + Duration::minutes(70);
    let dry = rt.block_on(tick::dry_run(&catalogue, &store, t1)).unwrap();
    let keys: Vec<String> = dry.iter().map(|s| s.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            "/every/15min/all@2026-11-02T14:00:00Z",
            "/every/15min/all@2026-11-02T14:15:00Z",
            "/every/15min/all@2026-11-02T14:30:00Z",
            "/every/15min/all@2026-11-02T14:45:00Z",
            "/every/15min/all@2026-11-02T15:00:00Z",
            "/hourly/latest@2026-11-02T15:00:00Z",
            "/weekdays/9am/all@2026-11-02T14:00:00Z",
        ]
    );
    assert!(queue.submitted.is_empty());
    let done = rt
        .block_on(tick::tick(&catalogue, &store, &mut queue, dir.path(), t1))
        .unwrap()
        .unwrap();
    assert_eq!(done.iter().map(|s| s.key.clone()).collect::<Vec<_>>(), keys);
    // The same instant again: nothing more.
    let again = rt
        .block_on(tick::tick(&catalogue, &store, &mut queue, dir.path(), t1))
        .unwrap()
        .unwrap();
    assert!(again.is_empty());
}
