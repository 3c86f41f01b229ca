//! Pipelines: what `observes.toml` declares, where messages come from, and running a
//! pipeline end to end.
//!
//! A run takes the pipeline's lock in the state store, reads the last committed state
//! from the warehouse (repairing the state store if a crash left it behind), opens the
//! source at that state, and feeds the loader; each state is copied to the state store
//! right after the transaction that holds it commits.

pub mod config;
pub mod demo;
pub mod run;
pub mod sources;
pub mod state;

pub use config::{Config, ConfigError, PipelineConfig};
pub use run::{drive, run_pipeline, RunError, RunSummary};
pub use sources::{MessageStream, SourceConfig};
