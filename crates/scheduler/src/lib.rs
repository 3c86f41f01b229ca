//! Scheduling and running jobs: the catalogue, cron schedules, the scheduler tick that
//! submits each due run exactly once, the local queue that runs them, the record of runs
//! in the warehouse, and `batch-stability`, which watches the queue.

pub mod catalogue;
pub mod cron;
pub mod queue;
pub mod runs;
pub mod stability;
pub mod tick;

pub use catalogue::{Catalogue, Job};

/// `[queue]` in observes.toml: where scheduled runs go.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// `local` (the default) or `aws-batch`.
    #[serde(default = "local")]
    pub backend: String,
    /// The local queue's folder.
    #[serde(default = "queue_dir")]
    pub dir: std::path::PathBuf,
    /// Runs at a time in a local worker.
    #[serde(default = "two")]
    pub concurrency: usize,
}

fn local() -> String {
    "local".into()
}
fn queue_dir() -> std::path::PathBuf {
    "queue".into()
}
fn two() -> usize {
    2
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            backend: local(),
            dir: queue_dir(),
            concurrency: two(),
        }
    }
}
pub use cron::Cron;
pub use queue::{LocalQueue, Run, RunStatus};

impl tick::Submit for LocalQueue {
    fn exists(&mut self, key: &str) -> Result<bool, String> {
        Ok(LocalQueue::exists(self, key))
    }

    fn submit(&mut self, run: &Run) -> Result<(), String> {
        LocalQueue::submit(self, run)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
