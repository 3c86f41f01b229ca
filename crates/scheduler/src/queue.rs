//! The local job queue: runs as JSON files in a folder, a worker pool with a concurrency
//! limit, a timeout per attempt that kills the whole process tree, retries up to the job's
//! attempts, a log file per attempt, and the history that `observes queue` shows.
//!
//! Layout: `<dir>/runs/<id>.json` (the run, rewritten atomically at each change),
//! `<dir>/logs/<id>/attempt-<n>.log`, `<dir>/runs/<id>.claim` (the worker that took it;
//! `<id>.<n>.claim` when a run is taken again from attempt n, after its worker died) and
//! `<dir>/runs/<id>.cancel` (a cancel request); `<dir>/reap.lock` lets one worker at a time
//! reap the runs of dead workers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalogue::Job;

/// Why the local queue failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A file of the queue could not be read or written.
    #[error("queue {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file of the queue is not a run.
    #[error("queue {path}: not a run")]
    NotARun {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// No run has this id.
    #[error("no run {0:?} in the queue")]
    NoRun(String),
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// An attempt is running.
    Running,
    /// It succeeded.
    Succeeded,
    /// Its last attempt failed.
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl RunStatus {
    /// Whether it will not change any more.
    pub fn finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// One attempt of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its number, from 1.
    pub number: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it stopped.
    pub stopped_at: Option<DateTime<Utc>>,
    /// The command's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Whether the timeout stopped it.
    pub timed_out: bool,
    /// Its log file.
    pub log: PathBuf,
}

/// A run: what to execute and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Its id (a file name).
    pub id: String,
    /// `<job>@<scheduled time>`: the same scheduled run always has the same key.
    pub key: String,
    /// The job it runs.
    pub job: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Where it runs.
    pub cwd: PathBuf,
    /// Attempts, the first included.
    pub attempts_allowed: u32,
    /// How long an attempt may run, in seconds.
    pub timeout_seconds: u64,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Environment variables whose values are read from secrets.
    pub secrets: BTreeMap<String, String>,
    /// The job's tags.
    pub tags: BTreeMap<String, String>,
    /// The fire time it is for, if the scheduler submitted it.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Where it is.
    pub status: RunStatus,
    /// Why it is there, if anything says.
    pub status_reason: Option<String>,
    /// Its attempts.
    pub attempts: Vec<Attempt>,
    /// Written to the warehouse's `_observes_job_runs`.
    #[serde(default)]
    pub recorded: bool,
    /// The catalogue's queue name (Batch: a job queue; `default` is the configured one).
    #[serde(default)]
    pub queue: String,
    /// The job's size (the local queue ignores it).
    #[serde(default)]
    pub size: Option<crate::catalogue::Size>,
    /// The attempt its current worker took it from (see `LocalQueue::claim`).
    #[serde(default = "first_attempt")]
    pub claimed_from: u32,
}

fn first_attempt() -> u32 {
    1
}

impl Run {
    /// A run of `job`, queued now.
    pub fn new(job: &Job, cwd: &Path, scheduled_for: Option<DateTime<Utc>>) -> Run {
        let now = Utc::now();
        let at = scheduled_for.unwrap_or(now);
        let key = run_key(&job.name, at);
        Run {
            id: run_id(&key),
            key,
            job: job.name.clone(),
            command: job.command.clone(),
            cwd: cwd.to_path_buf(),
            attempts_allowed: job.attempts,
            timeout_seconds: job.timeout_seconds,
            environment: job.environment.clone(),
            secrets: job
                .secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            tags: job.tags.clone(),
            scheduled_for,
            created_at: now,
            started_at: None,
            stopped_at: None,
            status: RunStatus::Queued,
            status_reason: None,
            attempts: Vec::new(),
            recorded: false,
            queue: job.queue.clone(),
            size: Some(job.size),
            claimed_from: 1,
        }
    }

    /// The number of the attempt that runs next (attempts are recorded as they start).
    pub fn next_attempt(&self) -> u32 {
        self.attempts.len() as u32 + 1
    }

    /// The last attempt's exit code.
    pub fn exit_code(&self) -> Option<i32> {
        self.attempts.last().and_then(|a| a.exit_code)
    }
}

/// The key of a job's run for an instant.
pub fn run_key(job: &str, at: DateTime<Utc>) -> String {
    format!(
        "{job}@{}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// A file-name-safe id of a run key: `observes-etl-checkly-20260305T140000Z`.
pub fn run_id(key: &str) -> String {
    let mut id = String::new();
    for c in key.trim_start_matches('/').chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => id.push(c),
            '/' | '@' | '_' => id.push('-'),
            _ => {}
        }
    }
    id
}

/// The local queue in a folder.
#[derive(Debug, Clone)]
pub struct LocalQueue {
    dir: PathBuf,
}

impl LocalQueue {
    /// The queue in `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<LocalQueue, QueueError> {
        for sub in ["runs", "logs"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| QueueError::Io {
                path: p.clone(),
                source,
            })?;
        }
        Ok(LocalQueue {
            dir: dir.to_path_buf(),
        })
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> QueueError + '_ {
        let path = path.to_path_buf();
        move |source| QueueError::Io {
            path: path.clone(),
            source,
        }
    }

    fn run_path(&self, id: &str) -> PathBuf {
        self.dir.join("runs").join(format!("{id}.json"))
    }

    /// Whether a run with this key was submitted.
    pub fn exists(&self, key: &str) -> bool {
        self.run_path(&run_id(key)).exists()
    }

    /// Adds a run; a run with the same key is never added twice (`false` then).
    pub fn submit(&self, run: &Run) -> Result<bool, QueueError> {
        let path = self.run_path(&run.id);
        let json = serde_json::to_vec_pretty(run).unwrap_or_default();
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, &json).map_err(self.io(&path))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.io(&path)(e)),
        }
    }

    /// Writes a run back.
    pub fn save(&self, run: &Run) -> Result<(), QueueError> {
        let path = self.run_path(&run.id);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(run).unwrap_or_default();
        std::fs::write(&tmp, json).map_err(self.io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(self.io(&path))
    }

    /// A run by id.
    pub fn get(&self, id: &str) -> Result<Run, QueueError> {
        let path = self.run_path(id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(QueueError::NoRun(id.to_string()))
            }
            Err(e) => return Err(self.io(&path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| QueueError::NotARun { path, source })
    }

    /// Every run, oldest first.
    pub fn list(&self) -> Result<Vec<Run>, QueueError> {
        let runs_dir = self.dir.join("runs");
        let mut runs = Vec::new();
        for entry in std::fs::read_dir(&runs_dir).map_err(self.io(&runs_dir))? {
            let path = entry.map_err(self.io(&runs_dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            runs.push(self.get(id)?);
        }
        runs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(runs)
    }

    /// Cancels a queued run at once; a running one is killed by its worker.
    pub fn cancel(&self, id: &str) -> Result<Run, QueueError> {
        let mut run = self.get(id)?;
        if run.status == RunStatus::Queued && self.claim(&run) {
            run.status = RunStatus::Cancelled;
            run.status_reason = Some("cancelled before it started".into());
            self.save(&run)?;
        } else if !run.status.finished() {
            let marker = self.dir.join("runs").join(format!("{id}.cancel"));
            std::fs::write(&marker, b"").map_err(self.io(&marker))?;
        }
        Ok(run)
    }

    fn cancel_requested(&self, id: &str) -> bool {
        self.dir.join("runs").join(format!("{id}.cancel")).exists()
    }

    /// The claim file of a run taken from attempt `from`.
    fn claim_path(&self, id: &str, from: u32) -> PathBuf {
        let name = match from {
            0 | 1 => format!("{id}.claim"),
            n => format!("{id}.{n}.claim"),
        };
        self.dir.join("runs").join(name)
    }

    /// Takes a queued run for this worker from its next attempt: only one worker ever gets
    /// it. A run taken again after its worker died has a new next attempt, so a new claim.
    fn claim(&self, run: &Run) -> bool {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.claim_path(&run.id, run.next_attempt()))
        {
            Ok(mut f) => {
                // Who holds it: a claim whose process is gone is a dead worker's.
                let _ =
                    std::io::Write::write_all(&mut f, std::process::id().to_string().as_bytes());
                true
            }
            Err(_) => false,
        }
    }

    /// Runs whose worker process no longer exists (killed, or the machine stopped). A
    /// run left `running` has the attempt it was on closed as killed, and is queued again
    /// while the job allows more attempts, else marked failed, so it is never left running
    /// forever. A run claimed by a worker that died before starting it is released, so
    /// another worker can take it. Returns them.
    pub fn reap_dead_workers(&self) -> Result<Vec<Run>, QueueError> {
        // One reaper at a time: a claim is removed only while it is known stale, never
        // after another reaper's worker has claimed the run anew.
        let lock_path = self.dir.join("reap.lock");
        let lock = std::fs::File::create(&lock_path).map_err(self.io(&lock_path))?;
        lock.lock().map_err(self.io(&lock_path))?;
        let mut reaped = Vec::new();
        for run in self.list()? {
            let reaped_run = match run.status {
                RunStatus::Running => self.reap_running(run)?,
                RunStatus::Queued => self.release_dead_claim(run)?,
                _ => None,
            };
            reaped.extend(reaped_run);
        }
        Ok(reaped)
    }

    /// The process that wrote the claim file `claim`, if it is gone. A claim being written
    /// (no pid yet) or held by this process is live.
    fn dead_claimant(claim: &Path) -> Option<u32> {
        let pid = std::fs::read_to_string(claim)
            .ok()?
            .trim()
            .parse::<u32>()
            .ok()?;
        let gone = pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists();
        gone.then_some(pid)
    }

    fn reap_running(&self, mut run: Run) -> Result<Option<Run>, QueueError> {
        let Some(pid) = Self::dead_claimant(&self.claim_path(&run.id, run.claimed_from)) else {
            return Ok(None);
        };
        let now = Utc::now();
        let number = match run.attempts.last_mut() {
            Some(attempt) if attempt.stopped_at.is_none() => {
                attempt.stopped_at = Some(now);
                attempt.number
            }
            _ => {
                let number = run.next_attempt();
                run.attempts.push(Attempt {
                    number,
                    started_at: run.started_at.unwrap_or(now),
                    stopped_at: Some(now),
                    exit_code: None,
                    timed_out: false,
                    log: self.log_path(&run.id, number),
                });
                number
            }
        };
        let died = format!("its worker (process {pid}) stopped while attempt {number} ran");
        if number < run.attempts_allowed {
            run.status = RunStatus::Queued;
            run.status_reason = Some(format!("{died}; queued again"));
            tracing::warn!(run = %run.id, pid, "a dead worker's run is queued again");
        } else {
            run.status = RunStatus::Failed;
            run.stopped_at = Some(now);
            run.status_reason = Some(died);
            tracing::warn!(run = %run.id, pid, "a dead worker's run is marked failed");
        }
        self.save(&run)?;
        Ok(Some(run))
    }

    /// A queued run claimed by a worker that died before marking it running: nobody else
    /// could ever claim it, so the claim goes.
    fn release_dead_claim(&self, mut run: Run) -> Result<Option<Run>, QueueError> {
        let claim = self.claim_path(&run.id, run.next_attempt());
        let Some(pid) = Self::dead_claimant(&claim) else {
            return Ok(None);
        };
        run.status_reason = Some(format!(
            "its worker (process {pid}) stopped before starting it; queued again"
        ));
        self.save(&run)?;
        std::fs::remove_file(&claim).map_err(self.io(&claim))?;
        tracing::warn!(run = %run.id, pid, "a dead worker's claim on a queued run is released");
        Ok(Some(run))
    }

    /// The log file of an attempt.
    pub fn log_path(&self, id: &str, attempt: u32) -> PathBuf {
        self.dir
            .join("logs")
            .join(id)
            .join(format!("attempt-{attempt}.log"))
    }

    /// Works through the queued runs, `concurrency` at a time, until none is left;
    /// `finished` is called with each run that ends.
    pub fn work(
        &self,
        concurrency: usize,
        finished: &(dyn Fn(&Run) + Sync),
    ) -> Result<usize, QueueError> {
        self.reap_dead_workers()?;
        let done = AtomicUsize::new(0);
        let queued: Vec<Run> = self
            .list()?
            .into_iter()
            .filter(|r| r.status == RunStatus::Queued)
            .collect();
        let next = AtomicUsize::new(0);
        let failure = std::sync::Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..concurrency.max(1) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(run) = queued.get(i) else { return };
                    if !self.claim(run) {
                        continue;
                    }
                    match self.execute(run.clone()) {
                        Ok(run) => {
                            done.fetch_add(1, Ordering::SeqCst);
                            finished(&run);
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        Ok(done.into_inner())
    }

    /// Runs a claimed run's attempts to the end.
    fn execute(&self, mut run: Run) -> Result<Run, QueueError> {
        run.status = RunStatus::Running;
        run.claimed_from = run.next_attempt();
        self.save(&run)?;
        let id = run.id.clone();
        run_attempts(
            &mut run,
            &|n| Some(self.log_path(&id, n)),
            &|| self.cancel_requested(&id),
            &mut |r| self.save(r),
        )?;
        Ok(run)
    }
}

/// Runs a run's attempts until one succeeds, it is cancelled, or none is left. Output goes
/// to `log_for(attempt)` (this process's own stdout and stderr when `None`); `save` sees
/// each change.
fn run_attempts(
    run: &mut Run,
    log_for: &dyn Fn(u32) -> Option<PathBuf>,
    cancelled: &dyn Fn() -> bool,
    save: &mut dyn FnMut(&Run) -> Result<(), QueueError>,
) -> Result<(), QueueError> {
    // A run taken again after its worker died goes on from the attempt after the last.
    for number in run.next_attempt()..=run.attempts_allowed.max(1) {
        let log = log_for(number);
        let started_at = Utc::now();
        run.started_at.get_or_insert(started_at);
        // Recorded before it runs, so a worker that dies leaves the attempt it was on.
        run.attempts.push(Attempt {
            number,
            started_at,
            stopped_at: None,
            exit_code: None,
            timed_out: false,
            log: log.clone().unwrap_or_default(),
        });
        save(run)?;
        let outcome = run_attempt(run, log.as_deref(), cancelled);
        let stopped_at = Utc::now();
        run.stopped_at = Some(stopped_at);
        match outcome {
            AttemptOutcome::NotStarted(reason) => {
                // Nothing ran: the run stops without having started.
                run.attempts.pop();
                if run.attempts.is_empty() {
                    run.started_at = None;
                }
                run.status = RunStatus::Failed;
                run.status_reason = Some(reason);
                return save(run);
            }
            AttemptOutcome::Finished {
                exit_code,
                timed_out,
                cancelled,
            } => {
                if let Some(attempt) = run.attempts.last_mut() {
                    attempt.stopped_at = Some(stopped_at);
                    attempt.exit_code = exit_code;
                    attempt.timed_out = timed_out;
                }
                if cancelled {
                    run.status = RunStatus::Cancelled;
                    run.status_reason = Some("cancelled while running".into());
                    return save(run);
                }
                if exit_code == Some(0) && !timed_out {
                    run.status = RunStatus::Succeeded;
                    run.status_reason = None;
                    return save(run);
                }
                run.status_reason = Some(if timed_out {
                    format!(
                        "attempt {number} exceeded its timeout of {}s",
                        run.timeout_seconds
                    )
                } else {
                    match exit_code {
                        Some(code) => format!("attempt {number} exited with {code}"),
                        None => format!("attempt {number} was killed by a signal"),
                    }
                });
                save(run)?;
            }
        }
    }
    run.status = RunStatus::Failed;
    save(run)
}

enum AttemptOutcome {
    NotStarted(String),
    Finished {
        exit_code: Option<i32>,
        timed_out: bool,
        cancelled: bool,
    },
}

/// The program to run: `observes` means this very binary.
fn program(name: &str) -> PathBuf {
    if name == "observes" {
        if let Ok(exe) = std::env::current_exe() {
            return exe;
        }
    }
    PathBuf::from(name)
}

/// The command of a run with its environment; secrets are read now, from references.
pub fn command(run: &Run) -> Result<Command, String> {
    let (first, rest) = run
        .command
        .split_first()
        .ok_or_else(|| "the command is empty".to_string())?;
    let mut cmd = Command::new(program(first));
    cmd.args(rest).current_dir(&run.cwd).stdin(Stdio::null());
    cmd.envs(&run.environment);
    cmd.env("OBSERVES_RUN_ID", &run.key);
    for (name, reference) in &run.secrets {
        use crate::catalogue::SecretRef;
        let var = match reference.parse::<SecretRef>() {
            Ok(SecretRef::Env(var)) => var,
            Ok(_) => {
                return Err(format!(
                    "secret {name}: {reference} is read by AWS Batch from the job's definition; \
                     a local queue reads env: references only"
                ))
            }
            Err(e) => return Err(format!("secret {name}: {e}")),
        };
        let value = std::env::var(&var)
            .map_err(|_| format!("secret {name}: the environment variable {var} is not set"))?;
        cmd.env(name, value);
    }
    Ok(cmd)
}

fn run_attempt(run: &Run, log: Option<&Path>, cancelled: &dyn Fn() -> bool) -> AttemptOutcome {
    use std::os::unix::process::CommandExt;
    let mut cmd = match command(run) {
        Ok(c) => c,
        Err(reason) => return AttemptOutcome::NotStarted(reason),
    };
    if let Some(log) = log {
        let files = log
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(log))
            .and_then(|f| Ok((f.try_clone()?, f)));
        match files {
            Ok((out, err)) => {
                cmd.stdout(out).stderr(err);
            }
            Err(e) => return AttemptOutcome::NotStarted(format!("{}: {e}", log.display())),
        }
    }
    // Its own process group, so a timeout kills everything it started.
    cmd.process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return AttemptOutcome::NotStarted(format!("starting {:?}: {e}", run.command[0])),
    };
    let deadline = Instant::now() + Duration::from_secs(run.timeout_seconds.max(1));
    let group = child.id() as i32;
    let kill_group = || {
        // SAFETY: kill(2) with a negative pid signals the process group this run created.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                kill_group(); // anything it left behind
                return AttemptOutcome::Finished {
                    exit_code: status.code(),
                    timed_out: false,
                    cancelled: false,
                };
            }
            Ok(None) => {}
            Err(_) => {}
        }
        let timed_out = Instant::now() >= deadline;
        let cancel = cancelled();
        if timed_out || cancel {
            kill_group();
            let status = child.wait().ok();
            return AttemptOutcome::Finished {
                exit_code: status.and_then(|s| s.code()),
                timed_out,
                cancelled: cancel,
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a job here and now (no queue), its output on this terminal: attempts, timeout and
/// all. The run is returned for the record.
pub fn run_here(job: &Job, cwd: &Path) -> Run {
    let mut run = Run::new(job, cwd, None);
    run.status = RunStatus::Running;
    let _ = run_attempts(&mut run, &|_| None, &|| false, &mut |_| Ok(()));
    run
}
