//! The application: what `observes.toml` declares, whole ([`Config`]: warehouse, state,
//! storage, pipelines, bills, mirror, the job catalogue and the queue, with every path
//! resolved once), and the demo. The CLI parses arguments and calls here or into the
//! crate that owns the work (`observes_pipeline` runs a pipeline, `observes_jobs` the
//! jobs, `observes_scheduler` the queue).

#![warn(missing_docs, unreachable_pub)]

pub mod config;
pub mod demo;
pub mod policy;
mod remote;

pub use config::{absolute_dir, Config, ConfigError};

use observes_pipeline::{RunError, RunSummary};

/// What the application's calls fail with: the config, a run, a job, or the files the
/// demo writes.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `observes.toml` could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A pipeline's run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A job (the mirror, bills) failed.
    #[error(transparent)]
    Job(#[from] observes_jobs::JobError),
    /// A file or folder the demo writes.
    #[error("{}", path.display())]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<observes_warehouse::WarehouseError> for AppError {
    fn from(e: observes_warehouse::WarehouseError) -> Self {
        AppError::Run(e.into())
    }
}

impl From<observes_state::StateError> for AppError {
    fn from(e: observes_state::StateError) -> Self {
        AppError::Run(e.into())
    }
}

/// Runs the pipeline `name` of `config` to the end.
pub fn run_pipeline(config: &Config, name: &str) -> Result<RunSummary, AppError> {
    let pipeline = config.pipeline(name)?;
    Ok(observes_pipeline::run_pipeline(
        &config.destination(),
        pipeline,
    )?)
}
