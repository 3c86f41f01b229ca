//! The local queue with real processes: a hanging job is killed at its timeout (its whole
//! process tree) and retried up to its attempts, each attempt's log is kept, a concurrency
//! limit of 2 never runs 3, a cancelled run never starts, a missing secret stops a run
//! before it starts — and batch-stability classifies exactly those failures.

use std::collections::BTreeMap;
use std::path::Path;

use observes_scheduler::catalogue::{Catalogue, RawJob, SchedulerSettings};
use observes_scheduler::queue::{Attempt, LocalQueue, Run, RunStatus};
use observes_scheduler::stability::{self, Failure};

fn catalogue(dir: &Path) -> Catalogue {
    let d = dir.display();
    let text = format!(
        r#"
["/hangs"]
command = ["sh", "-c", "echo started $OBSERVES_RUN_ID; sleep 300 & echo $! >> {d}/children; wait"]
timeout = "1s"
attempts = 2
["/flaky"]
command = ["sh", "-c", "if [ -f {d}/flaky ]; then echo second try; else touch {d}/flaky; echo first try >&2; exit 3; fi"]
attempts = 3
["/fails"]
command = ["sh", "-c", "exit 7"]
attempts = 2
["/slow"]
command = ["sh", "-c", "echo start $(date +%s%N) >> {d}/spans; sleep 0.4; echo end $(date +%s%N) >> {d}/spans"]
["/secret"]
command = ["sh", "-c", "echo $TOKEN"]
secrets = {{ TOKEN = "env:OBSERVES_TEST_NO_SUCH_SECRET" }}
["/waits"]
command = ["true"]
"#
    );
    let raw: BTreeMap<String, RawJob> = toml::from_str(&text).unwrap();
    Catalogue::build(&SchedulerSettings::default(), &BTreeMap::new(), &raw).unwrap()
}

fn submit(queue: &LocalQueue, catalogue: &Catalogue, job: &str, dir: &Path, n: i64) -> Run {
    let at = chrono::Utc::now() + chrono::Duration::seconds(n);
    let run = Run::new(catalogue.job(job).unwrap(), dir, Some(at));
    assert!(queue.submit(&run).unwrap());
    assert!(!queue.submit(&run).unwrap(), "a key is queued once");
    run
}

/// A catalogue of the jobs in `jobs` (TOML) and an empty queue under `root`.
fn queue_with(root: &Path, jobs: &str) -> (Catalogue, LocalQueue) {
    let raw: BTreeMap<String, RawJob> = toml::from_str(jobs).unwrap();
    let catalogue =
        Catalogue::build(&SchedulerSettings::default(), &BTreeMap::new(), &raw).unwrap();
    (catalogue, LocalQueue::open(&root.join("queue")).unwrap())
}

/// The run `id` as it ended: succeeded, its command (`echo ran >> ran.txt`) run once.
fn succeeded_after_one_run(queue: &LocalQueue, root: &Path, id: &str) -> Run {
    let done = queue.get(id).unwrap();
    assert_eq!(
        done.status,
        RunStatus::Succeeded,
        "{:?}",
        done.status_reason
    );
    assert_eq!(
        std::fs::read_to_string(root.join("ran.txt")).unwrap(),
        "ran\n"
    );
    done
}

/// Writes the claim file `claim` as a worker's whose process has exited; its pid.
fn claimed_by_a_dead_worker(root: &Path, claim: &str) -> u32 {
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(root.join("queue/runs").join(claim), pid.to_string()).unwrap();
    pid
}

#[test]
fn timeouts_retries_logs_concurrency_cancel_and_stability() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let catalogue = catalogue(root);
    let queue = LocalQueue::open(&root.join("queue")).unwrap();
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);

    let hangs = submit(&queue, &catalogue, "/hangs", root, 0);
    let flaky = submit(&queue, &catalogue, "/flaky", root, 0);
    let fails = submit(&queue, &catalogue, "/fails", root, 0);
    let secret = submit(&queue, &catalogue, "/secret", root, 0);
    let waits = submit(&queue, &catalogue, "/waits", root, 0);
    // Slow runs in a queue of their own, so that two workers are free for them.
    let slow_queue = LocalQueue::open(&root.join("slow-queue")).unwrap();
    let slow: Vec<Run> = (1..=5)
        .map(|i| submit(&slow_queue, &catalogue, "/slow", root, i))
        .collect();
    assert_eq!(
        queue.cancel(&waits.id).unwrap().status,
        RunStatus::Cancelled
    );

    let finished = std::sync::Mutex::new(Vec::new());
    let count = queue
        .work(2, &|run: &Run| {
            finished.lock().unwrap().push(run.id.clone())
        })
        .unwrap();
    assert_eq!(count, 4, "the cancelled run is not run");
    assert_eq!(finished.lock().unwrap().len(), 4);
    assert_eq!(slow_queue.work(2, &|_| {}).unwrap(), 5);

    // The hanging job: killed at 1 s, twice, with its child; a log per attempt.
    let run = queue.get(&hangs.id).unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.attempts.len(), 2, "{run:?}");
    assert!(run.attempts.iter().all(|a| a.timed_out));
    assert_eq!(
        run.status_reason.as_deref(),
        Some("attempt 2 exceeded its timeout of 1s")
    );
    for attempt in &run.attempts {
        assert_eq!(
            std::fs::read_to_string(&attempt.log).unwrap(),
            format!("started {}\n", run.key)
        );
    }
    for pid in std::fs::read_to_string(root.join("children"))
        .unwrap()
        .lines()
    {
        // Gone, or a zombie waiting to be reaped by init (killed all the same).
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                !stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        };
        let mut tries = 0;
        while alive() && tries < 50 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tries += 1;
        }
        assert!(!alive(), "the hanging job's child {pid} survived");
    }

    // Retried until it worked; both attempts' logs kept.
    let run = queue.get(&flaky.id).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let codes: Vec<Option<i32>> = run.attempts.iter().map(|a| a.exit_code).collect();
    assert_eq!(codes, vec![Some(3), Some(0)]);
    assert_eq!(
        std::fs::read_to_string(queue.log_path(&run.id, 1)).unwrap(),
        "first try\n"
    );
    assert_eq!(
        std::fs::read_to_string(queue.log_path(&run.id, 2)).unwrap(),
        "second try\n"
    );

    let run = queue.get(&fails.id).unwrap();
    assert_eq!(
        (run.status, run.attempts.len(), run.exit_code()),
        (RunStatus::Failed, 2, Some(7))
    );
    let run = queue.get(&secret.id).unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.started_at.is_none() && run.attempts.is_empty());
    assert_eq!(
        run.status_reason.as_deref(),
        Some("secret TOKEN: the environment variable OBSERVES_TEST_NO_SUCH_SECRET is not set")
    );
    let run = queue.get(&waits.id).unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(run.started_at.is_none() && run.stopped_at.is_none());

    // Concurrency 2: at most two slow jobs at any time (and two at some time).
    let mut events: Vec<(u128, i32)> = std::fs::read_to_string(root.join("spans"))
        .unwrap()
        .lines()
        .map(|l| {
            let (kind, ns) = l.split_once(' ').unwrap();
            (ns.parse().unwrap(), if kind == "start" { 1 } else { -1 })
        })
        .collect();
    events.sort();
    let (mut running, mut most) = (0, 0);
    for (_, delta) in events {
        running += delta;
        most = most.max(running);
    }
    assert_eq!(most, 2);
    assert!(slow
        .iter()
        .all(|r| slow_queue.get(&r.id).unwrap().status == RunStatus::Succeeded));

    // batch-stability over the same runs.
    let report = stability::report(&queue.list().unwrap(), since);
    assert_eq!((report.runs, report.succeeded, report.failed()), (5, 1, 4));
    let kinds: Vec<(String, Failure)> = report
        .failures
        .iter()
        .flat_map(|(job, runs)| runs.iter().map(move |r| (job.clone(), r.failure.clone())))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("/fails".to_string(), Failure::Failed { exit_code: Some(7) }),
            ("/hangs".to_string(), Failure::TimedOut),
            (
                "/secret".to_string(),
                Failure::Unstarted {
                    reason: Some(
                        "secret TOKEN: the environment variable OBSERVES_TEST_NO_SUCH_SECRET is not set"
                            .into()
                    )
                }
            ),
            ("/waits".to_string(), Failure::Cancelled),
        ]
    );
    let text = stability::render(&report);
    assert!(text.starts_with("5 runs since "), "{text}");
    assert!(text.ends_with(&format!(
        "/fails: 1 failed\n  {} failed with exit code 7\n/hangs: 1 failed\n  {} timed out\n/secret: 1 failed\n  {} unstarted: secret TOKEN: the environment variable OBSERVES_TEST_NO_SUCH_SECRET is not set\n/waits: 1 failed\n  {} cancelled (never started)\n",
        fails.id, hangs.id, secret.id, waits.id
    )), "{text}");
}

#[test]
fn a_running_run_is_cancelled_by_its_worker() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (catalogue, queue) = queue_with(
        root,
        "[\"/long\"]\ncommand = [\"sleep\", \"30\"]\nattempts = 3\n",
    );
    let run = submit(&queue, &catalogue, "/long", root, 0);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| queue.work(1, &|_| {}).unwrap());
        while queue.get(&run.id).unwrap().status != RunStatus::Running {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        queue.cancel(&run.id).unwrap();
    });
    let done = queue.get(&run.id).unwrap();
    assert_eq!(done.status, RunStatus::Cancelled);
    assert_eq!(done.attempts.len(), 1, "a cancelled run is not retried");
    assert_eq!(
        done.status_reason.as_deref(),
        Some("cancelled while running")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let report = stability::report(&[done], chrono::Utc::now() - chrono::Duration::hours(1));
    assert_eq!(
        report.failures["/long"][0].failure,
        Failure::Failed { exit_code: None },
        "it ran, then was killed"
    );
}

#[test]
fn a_run_whose_worker_died_is_marked_failed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (catalogue, queue) = queue_with(root, "[\"/long\"]\ncommand = [\"sleep\", \"30\"]\n");
    let mut run = submit(&queue, &catalogue, "/long", root, 0);
    // A worker that claimed it, started it, and died: its process is gone.
    let pid = claimed_by_a_dead_worker(root, &format!("{}.claim", run.id));
    run.status = RunStatus::Running;
    run.started_at = Some(chrono::Utc::now());
    queue.save(&run).unwrap();

    assert_eq!(queue.work(1, &|_| {}).unwrap(), 0);
    let done = queue.get(&run.id).unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(
        done.status_reason,
        Some(format!(
            "its worker (process {pid}) stopped while attempt 1 ran"
        ))
    );
    assert_eq!(done.attempts.len(), 1);
    assert_eq!(done.attempts[0].exit_code, None);
    assert!(done.attempts[0].stopped_at.is_some());
    let report = stability::report(&[done], chrono::Utc::now() - chrono::Duration::hours(1));
    assert_eq!(
        report.failures["/long"][0].failure,
        Failure::Failed { exit_code: None }
    );
    // A run whose worker is alive (this process) is left alone.
    let mut live = submit(&queue, &catalogue, "/long", root, 5);
    std::fs::write(
        root.join(format!("queue/runs/{}.claim", live.id)),
        std::process::id().to_string(),
    )
    .unwrap();
    live.status = RunStatus::Running;
    queue.save(&live).unwrap();
    assert!(queue.reap_dead_workers().unwrap().is_empty());
}

#[test]
fn a_run_whose_worker_died_between_claiming_and_starting_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (catalogue, queue) = queue_with(
        root,
        "[\"/once\"]\ncommand = [\"sh\", \"-c\", \"echo ran >> ran.txt\"]\n",
    );
    let run = submit(&queue, &catalogue, "/once", root, 0);
    // A worker claimed it and died before marking it running: it is still queued.
    let pid = claimed_by_a_dead_worker(root, &format!("{}.claim", run.id));
    let claim = root.join(format!("queue/runs/{}.claim", run.id));

    let reaped = queue.reap_dead_workers().unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].status, RunStatus::Queued);
    assert_eq!(
        reaped[0].status_reason,
        Some(format!(
            "its worker (process {pid}) stopped before starting it; queued again"
        ))
    );
    assert!(!claim.exists(), "the dead worker's claim is released");

    // The next worker takes it: the command runs once, as the first attempt.
    assert_eq!(queue.work(1, &|_| {}).unwrap(), 1);
    let done = succeeded_after_one_run(&queue, root, &run.id);
    let attempts: Vec<(u32, Option<i32>)> = done
        .attempts
        .iter()
        .map(|a| (a.number, a.exit_code))
        .collect();
    assert_eq!(attempts, [(1, Some(0))]);
    // A queued run claimed by a live worker (this process) is left alone.
    let held = submit(&queue, &catalogue, "/once", root, 5);
    let held_claim = root.join(format!("queue/runs/{}.claim", held.id));
    std::fs::write(&held_claim, std::process::id().to_string()).unwrap();
    assert!(queue.reap_dead_workers().unwrap().is_empty());
    assert!(held_claim.exists());
}

#[test]
fn a_run_whose_worker_died_runs_again_while_attempts_are_left() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (catalogue, queue) = queue_with(
        root,
        "[\"/twice\"]\ncommand = [\"sh\", \"-c\", \"echo ran >> ran.txt\"]\nattempts = 2\n",
    );
    let run = submit(&queue, &catalogue, "/twice", root, 0);
    // A worker claimed it, recorded its first attempt, and died in it.
    claimed_by_a_dead_worker(root, &format!("{}.claim", run.id));
    let mut running = run.clone();
    running.status = RunStatus::Running;
    running.started_at = Some(chrono::Utc::now());
    running.attempts.push(Attempt {
        number: 1,
        started_at: running.started_at.unwrap(),
        stopped_at: None,
        exit_code: None,
        timed_out: false,
        log: queue.log_path(&run.id, 1),
    });
    queue.save(&running).unwrap();

    // The next worker closes that attempt and runs the second: the command runs once.
    assert_eq!(queue.work(1, &|_| {}).unwrap(), 1);
    let done = succeeded_after_one_run(&queue, root, &run.id);
    let attempts: Vec<(u32, Option<i32>, bool)> = done
        .attempts
        .iter()
        .map(|a| (a.number, a.exit_code, a.stopped_at.is_some()))
        .collect();
    assert_eq!(attempts, [(1, None, true), (2, Some(0), true)]);
    assert_eq!(done.claimed_from, 2);
    assert!(root.join(format!("queue/runs/{}.2.claim", run.id)).exists());

    // Its second worker dies too: no attempt is left, so it fails for good.
    let mut again = done.clone();
    again.status = RunStatus::Running;
    again.attempts.truncate(1);
    again.attempts.push(Attempt {
        number: 2,
        started_at: chrono::Utc::now(),
        stopped_at: None,
        exit_code: None,
        timed_out: false,
        log: queue.log_path(&run.id, 2),
    });
    let pid = claimed_by_a_dead_worker(root, &format!("{}.2.claim", run.id));
    queue.save(&again).unwrap();
    let reaped = queue.reap_dead_workers().unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].status, RunStatus::Failed);
    assert_eq!(
        reaped[0].status_reason,
        Some(format!(
            "its worker (process {pid}) stopped while attempt 2 ran"
        ))
    );
    assert_eq!(queue.work(1, &|_| {}).unwrap(), 0);
}
