//! Jobs that are not ETLs: they read the warehouse or outside systems and publish to
//! object storage.
//!
//! - [`bills`]: `compute-bills`, the authors active per group in a month, from the code
//!   ETL's commits, as one CSV per group.
//! - [`mirror`]: the repository mirror, each configured repository cloned or fetched and
//!   published as a git bundle that plain git restores.
//! - [`timedoctor`]: `timedoctor-backup`, each month of Time Doctor's worklogs kept while
//!   the API still serves it.

#![warn(missing_docs, unreachable_pub)]

pub mod bills;
pub mod mirror;
pub mod timedoctor;
pub mod zoho;

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The object store or the state store failed.
    #[error(transparent)]
    Storage(#[from] observes_state::StateError),
    /// The warehouse failed.
    #[error("warehouse")]
    Warehouse(#[from] observes_warehouse::WarehouseError),
    /// The runtime could not be started.
    #[error(transparent)]
    Runtime(#[from] observes_state::RuntimeError),
    /// The mirror's helper scripts could not be written.
    #[error("mirror: helper scripts")]
    Helpers(#[source] std::io::Error),
    /// The job's settings are wrong.
    #[error("{0}")]
    Config(String),
    /// A source the job reads failed.
    #[error(transparent)]
    Source(#[from] observes_sources::SourceError),
}
