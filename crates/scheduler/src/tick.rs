//! A scheduler tick: submit every run that fell due since the last tick, exactly once.
//!
//! The bookkeeping lives in the state store under `scheduler/state.json`, guarded by the
//! store's lock, so ticks that overlap do not both submit: the second finds the lock taken
//! and leaves the work to the first. Per job it keeps how far the schedule is covered and
//! the runs decided but not yet confirmed submitted. Those are written before anything
//! is submitted and cleared after; each run has a key (`<job>@<time>`) the queue knows, so
//! a tick that died between submitting and recording is finished by the next one without
//! a second copy.
//!
//! The first tick that sees a job starts its schedule there (no backfill). After a gap, a
//! job's `catch_up` decides: `latest` submits the most recent missed run, `all` submits
//! each (at most [`MAX_CATCH_UP`] per tick).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use observes_state::StateStore;
use serde::{Deserialize, Serialize};

use crate::catalogue::{Catalogue, CatchUp, Job};
use crate::queue::{run_key, Run};

/// Runs one tick submits per job at most.
pub const MAX_CATCH_UP: usize = 1000;

const STATE_KEY: &str = "scheduler";

/// What a queue failed to answer or to take, kept as the queue's own error.
pub type SubmitError = Box<dyn std::error::Error + Send + Sync>;

/// Where runs are submitted.
pub trait Submit {
    /// Whether a run with this key was submitted already.
    fn exists(&mut self, key: &str) -> Result<bool, SubmitError>;
    /// Submits a run.
    fn submit(&mut self, run: &Run) -> Result<(), SubmitError>;
}

/// How far the scheduler got with one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobMark {
    /// Fire times up to this instant are handled.
    pub covered_until: DateTime<Utc>,
    /// Runs decided, not yet confirmed submitted.
    #[serde(default)]
    pub pending: Vec<DateTime<Utc>>,
}

/// What the scheduler remembers between ticks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerState {
    /// Per job, how far it got.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobMark>,
}

/// Why a tick failed.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] observes_state::StateError),
    /// A run could not be submitted.
    #[error("submitting {key}")]
    Submit {
        /// The run's key.
        key: String,
        /// Why.
        #[source]
        source: SubmitError,
    },
    /// The scheduler's state in the store is not valid.
    #[error("scheduler state is not valid")]
    Corrupt(#[source] serde_json::Error),
}

/// One submitted (or, dry, due) run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Submitted {
    /// The job.
    pub job: String,
    /// The fire time.
    pub scheduled_for: DateTime<Utc>,
    /// The run's key.
    pub key: String,
}

/// The runs of `job` due in `(after, now]` under its catch-up policy.
pub fn due_runs(
    job: &Job,
    catalogue: &Catalogue,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let Some(cron) = &job.schedule else {
        return Vec::new();
    };
    match job.catch_up {
        CatchUp::All => cron.between(after, now, catalogue.timezone, MAX_CATCH_UP),
        CatchUp::Latest => {
            // The last fire time in (after, now], found without listing a long gap.
            let mut last = None;
            let mut at = after;
            for _ in 0..MAX_CATCH_UP * 100 {
                match cron.next_after(at, catalogue.timezone) {
                    Some(t) if t <= now => {
                        last = Some(t);
                        at = t;
                    }
                    _ => break,
                }
            }
            last.into_iter().collect()
        }
    }
}

/// Reads the scheduler's state (an empty one when there is none).
pub async fn read_state(store: &StateStore) -> Result<SchedulerState, TickError> {
    match store.get(STATE_KEY).await? {
        None => Ok(SchedulerState::default()),
        Some(v) => serde_json::from_value(v).map_err(TickError::Corrupt),
    }
}

async fn write_state(store: &StateStore, state: &SchedulerState) -> Result<(), TickError> {
    let value = serde_json::to_value(state).map_err(TickError::Corrupt)?;
    store.put(STATE_KEY, &value).await?;
    Ok(())
}

/// What a dry run would submit now (nothing is written).
pub async fn dry_run(
    catalogue: &Catalogue,
    store: &StateStore,
    now: DateTime<Utc>,
) -> Result<Vec<Submitted>, TickError> {
    let state = read_state(store).await?;
    let mut out = Vec::new();
    for job in catalogue.jobs.values() {
        let Some(mark) = state.jobs.get(&job.name) else {
            continue;
        };
        let mut times = mark.pending.clone();
        times.extend(due_runs(job, catalogue, mark.covered_until, now));
        for t in times {
            out.push(Submitted {
                job: job.name.clone(),
                scheduled_for: t,
                key: run_key(&job.name, t),
            });
        }
    }
    Ok(out)
}

/// One tick at `now`. Returns `Ok(None)` when another tick holds the lock.
pub async fn tick(
    catalogue: &Catalogue,
    store: &StateStore,
    queue: &mut dyn Submit,
    cwd: &std::path::Path,
    now: DateTime<Utc>,
) -> Result<Option<Vec<Submitted>>, TickError> {
    let owner = format!("scheduler tick {}", now.to_rfc3339());
    let lock = match store
        .lock(STATE_KEY, &owner, std::time::Duration::from_secs(600))
        .await
    {
        Ok(lock) => lock,
        Err(observes_state::StateError::Locked { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let result = tick_locked(catalogue, store, queue, cwd, now).await;
    store.unlock(lock).await?;
    result.map(Some)
}

async fn tick_locked(
    catalogue: &Catalogue,
    store: &StateStore,
    queue: &mut dyn Submit,
    cwd: &std::path::Path,
    now: DateTime<Utc>,
) -> Result<Vec<Submitted>, TickError> {
    let mut state = read_state(store).await?;
    // Decide first, and write the decision down before submitting anything.
    for job in catalogue.jobs.values() {
        if job.schedule.is_none() {
            continue;
        }
        let mark = state.jobs.entry(job.name.clone()).or_insert(JobMark {
            covered_until: now,
            pending: Vec::new(),
        });
        if mark.covered_until >= now {
            continue;
        }
        let due = due_runs(job, catalogue, mark.covered_until, now);
        mark.pending.extend(due);
        mark.covered_until = now;
    }
    write_state(store, &state).await?;
    // Submit; a key the queue has already (a tick that died after submitting it) is not
    // submitted again, so the decision is recorded as done once, at the end.
    let mut submitted = Vec::new();
    for (name, mark) in state.jobs.iter_mut() {
        let Some(job) = catalogue.jobs.get(name) else {
            continue;
        };
        for &at in &mark.pending {
            let key = run_key(name, at);
            let err = |source: SubmitError| TickError::Submit {
                key: key.clone(),
                source,
            };
            if !queue.exists(&key).map_err(err)? {
                queue.submit(&Run::new(job, cwd, Some(at))).map_err(err)?;
                submitted.push(Submitted {
                    job: name.clone(),
                    scheduled_for: at,
                    key: key.clone(),
                });
            }
        }
        mark.pending.clear();
    }
    write_state(store, &state).await?;
    Ok(submitted)
}
