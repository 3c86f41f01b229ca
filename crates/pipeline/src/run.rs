//! Running a pipeline: lock, resume from the committed state, load, copy each committed
//! state to the state store, unlock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use observes_load::ahead::{Ahead, Helpers};
use observes_load::{failpoint, LoadConfig, LoadError, LoadSummary, Loader};
use observes_singer::ReadError;
use observes_state::{StateError, StateStore};
use observes_warehouse::WarehouseError;
use serde_json::Value;

use crate::config::PipelineConfig;
use crate::sources::{Item, MessageStream, Next, SourceError};

/// How long the source may be quiet before a finished commit is handed out without it.
const QUIET_SOURCE: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0}")]
    Read(#[from] ReadError),
}

/// Where pipelines load and keep their state: the warehouse's URL and the state store's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub warehouse: String,
    pub state: String,
}

/// How long a run's lock lasts if the run dies without releasing it.
pub const LOCK_TTL: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub pipeline: String,
    pub load: LoadSummary,
    pub elapsed: Duration,
}

/// Feeds messages into a loader, calling `on_commit` with each state right after the
/// transaction that holds it commits. Stops at the first error, leaving the open
/// (uncommitted) checkpoint for the caller to abort.
///
/// Blocks of lines go to helper threads that normalize their records ahead (see
/// [`observes_load::ahead`]) while the loader takes earlier items in order.
pub fn drive(
    loader: &mut Loader<'_>,
    stream: &mut MessageStream,
    mut on_commit: impl FnMut(&Value) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let helpers = Helpers::per_core(AHEAD_BLOCKS);
    // Items read and not yet loaded, in order; blocks among them are with the helpers.
    let mut window: VecDeque<Queued> = VecDeque::new();
    let mut ended = false;
    loop {
        while !ended && window.len() < AHEAD_BLOCKS {
            // Wait for the source only when there is nothing else to do.
            let wait = if window.is_empty() {
                QUIET_SOURCE
            } else {
                Duration::ZERO
            };
            match stream.next_within(wait) {
                Next::Item(Item::Lines(block)) => {
                    window.push_back(Queued::Ahead(helpers.submit(block, loader.layouts())))
                }
                Next::Item(item) => window.push_back(Queued::Item(item)),
                Next::Quiet if window.is_empty() => {
                    // A commit that finished while the source is quiet is handed out now,
                    // so its state is echoed and stored when it is durable, not with the
                    // source's next message (which may be minutes away).
                    if let Some(state) = loader.committed_meanwhile()? {
                        on_commit(&state)?;
                    }
                }
                Next::Quiet => break,
                Next::End => ended = true,
            }
        }
        let Some(next) = window.pop_front() else {
            if ended {
                // The end of a file is its last checkpoint (it may have no STATE of its own).
                if let Some((value, line)) = stream.file.as_ref().and_then(|f| f.at_end()) {
                    let message =
                        observes_singer::Message::State(observes_singer::StateMessage { value });
                    if let Some(state) = loader.handle(line + 1, message)? {
                        on_commit(&state)?;
                    }
                }
                break;
            }
            continue;
        };
        match next {
            Queued::Item(Item::Line(line)) => {
                if let Some(state) = loader.handle(line.number, line.message)? {
                    on_commit(&state)?;
                }
            }
            Queued::Item(Item::Lines(block)) => {
                loader.load_lines(&block, 0, file_state(&mut stream.file), &mut on_commit)?
            }
            Queued::Ahead(ahead) => {
                let (block, prepared) = ahead.wait();
                let mut done = 0;
                if let Some(mut prepared) = prepared {
                    let taken = loader.take_ahead(&mut prepared);
                    helpers.recycle(prepared);
                    let (lines, state) = taken?;
                    if let Some(state) = state {
                        on_commit(&state)?;
                    }
                    done = lines;
                }
                loader.load_lines(&block, done, file_state(&mut stream.file), &mut on_commit)?;
            }
            Queued::Item(Item::Bad { error, raw }) => {
                if !loader.reject_line(error.line(), error.reason(), &raw)? {
                    return Err(error.into());
                }
            }
        }
    }
    Ok(())
}

/// A file's `STATE`s carry where in the file they end (see
/// [`crate::sources::singer_file`]); other sources' states go as they are.
fn file_state(
    file: &mut Option<crate::sources::singer_file::FileCursor>,
) -> impl FnMut(Value, u64, u64) -> Value + '_ {
    move |value, end, line| match file {
        Some(file) => file.wrap(value, end, line),
        None => value,
    }
}

/// Blocks of lines read ahead of the loader: enough to keep every helper busy.
const AHEAD_BLOCKS: usize = 4;

enum Queued {
    Item(Item),
    Ahead(Ahead),
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
    let load = result?;
    unlocked?;
    Ok(RunSummary {
        pipeline: name.to_string(),
        load,
        elapsed: started.elapsed(),
    })
}

fn run_locked(
    destination: &Destination,
    pipeline: &PipelineConfig,
    store: &StateStore,
) -> Result<LoadSummary, RunError> {
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
    let outcome = (|| {
        let mut stream = MessageStream::open(&pipeline.source, resume_from)?;
        drive(&mut loader, &mut stream, |state| {
            failpoint("after-commit");
            store.wait(store.put(name, state))?;
            Ok(())
        })?;
        // A tap that failed leaves its last records without a state to cover them.
        stream.finish()?;
        Ok::<(), RunError>(())
    })();
    if let Err(e) = outcome {
        if let Some(state) = loader.abort(&e.to_string()) {
            store.wait(store.put(name, &state))?;
        }
        return Err(e);
    }
    let summary = loader.finish()?;
    if let Some(state) = &summary.state {
        failpoint("after-commit");
        store.wait(store.put(name, state))?;
    }
    Ok(summary)
}
