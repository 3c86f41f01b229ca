//! Running a pipeline: lock, resume from the committed state, load, copy each committed
//! state to the state store, unlock.

use std::time::{Duration, Instant};

use observes_load::{failpoint, LoadConfig, LoadError, LoadSummary, Loader};
use observes_singer::ReadError;
use observes_sources::NotLoaded;
use observes_state::{StateError, StateStore};
use observes_warehouse::WarehouseError;

use crate::config::PipelineConfig;
use crate::sources::{MessageStream, SourceError};

/// Why a pipeline run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The warehouse failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// The load stopped.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A line is not a Singer message.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The source left streams out (an export not ready, say); the rest is committed.
    #[error("{}", NotLoaded::describe(not_loaded, "the others are committed"))]
    Incomplete {
        /// What was loaded.
        summary: Box<RunSummary>,
        /// The streams left out, and why.
        not_loaded: Vec<NotLoaded>,
    },
}

/// The streams an incomplete source left out, or the error as it was.
fn not_loaded(error: RunError) -> Result<Vec<NotLoaded>, RunError> {
    match error {
        RunError::Source(SourceError::Api { source_name, error }) => match *error {
            observes_sources::SourceError::Incomplete { not_loaded } => Ok(not_loaded),
            error => Err(RunError::Source(SourceError::Api {
                source_name,
                error: Box::new(error),
            })),
        },
        other => Err(other),
    }
}

/// Where pipelines load and keep their state: the warehouse's URL and the state store's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The warehouse's URL.
    pub warehouse: String,
    /// The state store's URL.
    pub state: String,
}

/// How long a run's lock lasts if the run dies without releasing it.
pub const LOCK_TTL: Duration = Duration::from_secs(6 * 3600);

/// What a pipeline run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The pipeline.
    pub pipeline: String,
    /// What its load did.
    pub load: LoadSummary,
    /// How long the run took.
    pub elapsed: Duration,
    /// What the source reported beside its data (months an API has forgotten, say).
    pub notices: Vec<observes_sources::Notice>,
}

fn load_config(pipeline: &PipelineConfig) -> LoadConfig {
    let defaults = LoadConfig::new(&pipeline.name, &pipeline.schema);
    LoadConfig {
        write_mode: pipeline.write_mode,
        on_invalid: pipeline.on_invalid,
        on_schema_change: pipeline.on_schema_change,
        on_missing_key: pipeline.on_missing_key,
        untyped: pipeline.untyped,
        batch_rows: pipeline.batch_rows,
        commit: pipeline.commit,
        ..defaults
    }
}

/// Runs a pipeline to the end.
pub fn run_pipeline(
    destination: &Destination,
    pipeline: &PipelineConfig,
) -> Result<RunSummary, RunError> {
    let name = pipeline.name.as_str();
    let started = Instant::now();
    let store = StateStore::open(&destination.state)?;
    let owner = format!(
        "pid {} at {}",
        std::process::id(),
        chrono::Utc::now().to_rfc3339()
    );
    let lock = store.wait(store.lock(name, &owner, LOCK_TTL))?;
    let result = run_locked(destination, pipeline, &store);
    let unlocked = store.wait(store.unlock(lock));
    let (load, not_loaded, notices) = result?;
    unlocked?;
    let summary = RunSummary {
        pipeline: name.to_string(),
        load,
        elapsed: started.elapsed(),
        notices,
    };
    if !not_loaded.is_empty() {
        return Err(RunError::Incomplete {
            summary: Box::new(summary),
            not_loaded,
        });
    }
    Ok(summary)
}

fn run_locked(
    destination: &Destination,
    pipeline: &PipelineConfig,
    store: &StateStore,
) -> Result<(LoadSummary, Vec<NotLoaded>, Vec<observes_sources::Notice>), RunError> {
    let mut wh = observes_warehouse::connect_pipelined(&destination.warehouse)?;
    let mut loader = Loader::begin(wh.as_mut(), load_config(pipeline))?;
    let name = pipeline.name.as_str();
    // The warehouse's copy is authoritative: a crash between a commit and the copy to the
    // store leaves the store one checkpoint behind, which is repaired here.
    let stored = store.wait(store.get(name))?;
    let state = match loader.previous_state().cloned() {
        Some(committed) => {
            if stored.as_ref() != Some(&committed) {
                tracing::info!(
                    pipeline = name,
                    "state store was behind the warehouse; repairing it"
                );
                store.wait(store.put(name, &committed))?;
            }
            Some(committed)
        }
        None => stored,
    };
    // A full reload reads its source from the start: handed the last state, a source that
    // resumes (a tap, a file) would send only what is new, and that would be swapped in.
    let resume_from = match pipeline.write_mode {
        observes_load::WriteMode::Replace => None,
        _ => state.as_ref(),
    };
    let mut notices = Vec::new();
    let outcome = (|| {
        let mut stream = MessageStream::open(&pipeline.source, resume_from)?;
        loader.drive(&mut stream, |state| {
            failpoint("after-commit");
            store.wait(store.put(name, state))?;
            Ok::<(), RunError>(())
        })?;
        notices = stream.notices();
        // A tap that failed leaves its last records without a state to cover them.
        stream.finish()?;
        Ok::<(), RunError>(())
    })();
    // Streams left out by a source that sent everything else: that is loaded.
    let not_loaded = match outcome.map_err(not_loaded) {
        Ok(()) => Vec::new(),
        Err(Ok(not_loaded)) => not_loaded,
        Err(Err(e)) => {
            if let Some(state) = loader.abort(&e) {
                store.wait(store.put(name, &state))?;
            }
            return Err(e);
        }
    };
    let summary = loader.finish()?;
    if let Some(state) = &summary.state {
        failpoint("after-commit");
        store.wait(store.put(name, state))?;
    }
    Ok((summary, not_loaded, notices))
}
