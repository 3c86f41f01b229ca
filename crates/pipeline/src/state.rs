//! A pipeline's committed state, read and changed by hand (`observes state`). Changes are
//! made as a load makes them: under the pipeline's lock, in the warehouse's
//! `_observes_state` first (the authoritative copy), then in the state store.

use serde_json::Value;

use observes_state::StateStore;

use crate::run::{RunError, LOCK_TTL};
use crate::Config;

/// The committed state: the warehouse's copy, else the state store's.
pub fn get(config: &Config, pipeline: &str) -> Result<Option<Value>, RunError> {
    let schema = &config.pipeline(pipeline)?.schema;
    let mut wh = observes_warehouse::connect(&config.warehouse)?;
    if let Some(state) = observes_load::metadata::read_state(wh.as_mut(), schema, pipeline)? {
        return Ok(Some(state));
    }
    let store = StateStore::open(&config.state)?;
    Ok(store.wait(store.get(pipeline))?)
}

/// Replaces the committed state with `state`, as if a load had committed it.
pub fn set(config: &Config, pipeline: &str, state: &Value) -> Result<(), RunError> {
    locked(
        config,
        pipeline,
        "observes state set",
        |wh, store, schema| {
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
pub fn clear(config: &Config, pipeline: &str) -> Result<(), RunError> {
    locked(
        config,
        pipeline,
        "observes state clear",
        |wh, store, schema| {
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
    config: &Config,
    pipeline: &str,
    owner: &str,
    change: impl FnOnce(
        &mut dyn observes_warehouse::Warehouse,
        &StateStore,
        &str,
    ) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let schema = config.pipeline(pipeline)?.schema.clone();
    let store = StateStore::open(&config.state)?;
    let mut wh = observes_warehouse::connect(&config.warehouse)?;
    let lock = store.wait(store.lock(pipeline, owner, LOCK_TTL))?;
    let result = change(wh.as_mut(), &store, &schema);
    let unlocked = store.wait(store.unlock(lock));
    result?;
    Ok(unlocked?)
}
