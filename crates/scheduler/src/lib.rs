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
