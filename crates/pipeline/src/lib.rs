//! Running a pipeline: where its messages come from, and taking them to the end.
//!
//! A run takes the pipeline's lock in the state store, reads the last committed state
//! from the warehouse (repairing the state store if a crash left it behind), opens the
//! source at that state, and feeds the loader; each state is copied to the state store
//! right after the transaction that holds it commits. The whole `observes.toml` and the
//! demo are the application's (`observes_app`); a pipeline's own table is parsed here
//! ([`config`]).

#![warn(missing_docs, unreachable_pub)]

pub mod config;
pub mod run;
pub mod sources;
pub mod state;

pub use config::PipelineConfig;
pub use run::{run_pipeline, Destination, RunError, RunSummary};
pub use sources::{MessageStream, SourceConfig};
