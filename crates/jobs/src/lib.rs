//! Jobs that are not ETLs: they read the warehouse or outside systems and publish to
//! object storage.
//!
//! - [`bills`]: `compute-bills`, the authors active per group in a month, from the code
//!   ETL's commits, as one CSV per group.
//! - [`mirror`]: the repository mirror, each configured repository cloned or fetched and
//!   published as a git bundle that plain git restores.

#![warn(unreachable_pub)]

pub mod bills;
pub mod mirror;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Storage(#[from] observes_state::StateError),
    #[error("warehouse")]
    Warehouse(#[from] observes_warehouse::WarehouseError),
    #[error(transparent)]
    Runtime(#[from] observes_state::RuntimeError),
    #[error("mirror: helper scripts")]
    Helpers(#[source] std::io::Error),
    #[error("{0}")]
    Config(String),
}
