//! A pipeline's committed state, read and changed by hand (`observes state`). Changes are
//! made as a load makes them: under the pipeline's lock, in the warehouse's
//! `_observes_state` first (the authoritative copy), then in the state store.

use serde_json::Value;

use observes_state::StateStore;

use crate::run::{Destination, RunError, LOCK_TTL};
use crate::PipelineConfig;

/// The committed state: the warehouse's copy, else the state store's.
pub fn get(to: &Destination, pipeline: &PipelineConfig) -> Result<Option<Value>, RunError> {
    let (name, schema) = (&pipeline.name, &pipeline.schema);
    let mut wh = observes_warehouse::connect(&to.warehouse)?;
    if let Some(state) = observes_load::metadata::read_state(wh.as_mut(), schema, name)? {
        return Ok(Some(state));
    }
    let store = StateStore::open(&to.state)?;
    Ok(store.wait(store.get(name))?)
}

/// Replaces the committed state with `state`, as if a load had committed it.
pub fn set(to: &Destination, pipeline: &PipelineConfig, state: &Value) -> Result<(), RunError> {
    locked(
        to,
        pipeline,
        "observes state set",
        |wh, store, schema, pipeline| {
            wh.begin()?;
            let (load_id, _) = observes_load::metadata::prepare(wh, schema, pipeline)?;
            observes_load::metadata::write_state(wh, schema, pipeline, state, load_id - 1)?;
            wh.commit()?;
            store.wait(store.put(pipeline, state))?;
            Ok(())
        },
    )
}

/// Forgets the committed state: the next run starts from the beginning.
pub fn clear(to: &Destination, pipeline: &PipelineConfig) -> Result<(), RunError> {
    locked(
        to,
        pipeline,
        "observes state clear",
        |wh, store, schema, pipeline| {
            wh.begin()?;
            observes_load::metadata::clear_state(wh, schema, pipeline)?;
            wh.commit()?;
            store.wait(store.clear(pipeline))?;
            Ok(())
        },
    )
}

/// Runs `change` under the pipeline's lock (released whatever happens).
fn locked(
    to: &Destination,
    pipeline: &PipelineConfig,
    owner: &str,
    change: impl FnOnce(
        &mut dyn observes_warehouse::Warehouse,
        &StateStore,
        &str,
        &str,
    ) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let store = StateStore::open(&to.state)?;
    let mut wh = observes_warehouse::connect(&to.warehouse)?;
    let lock = store.wait(store.lock(&pipeline.name, owner, LOCK_TTL))?;
    let result = change(wh.as_mut(), &store, &pipeline.schema, &pipeline.name);
    let unlocked = store.wait(store.unlock(lock));
    result?;
    Ok(unlocked?)
}
