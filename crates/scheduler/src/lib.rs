//! Scheduling and running jobs: the catalogue, cron schedules, the scheduler tick that
//! submits each due run exactly once, the local queue that runs them, the record of runs
//! in the warehouse, and `batch-stability`, which watches the queue.

#![warn(missing_docs, unreachable_pub)]

pub mod batch;
pub mod catalogue;
pub mod cron;
pub mod definitions;
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
    /// aws-batch: the job queue (a job's `queue` other than `default` overrides it).
    #[serde(default)]
    pub job_queue: String,
    /// aws-batch: one definition for every job, managed elsewhere (`name`,
    /// `name:revision` or an ARN); else `image` and a definition per job.
    #[serde(default)]
    pub job_definition: String,
    /// aws-batch: the image of each job's own definition (`observes batch definitions`).
    pub image: Option<String>,
    /// aws-batch: put before each job definition's name.
    #[serde(default)]
    pub definition_prefix: String,
    /// aws-batch: the role Batch pulls the image and reads the jobs' secrets with.
    pub execution_role_arn: Option<String>,
    /// aws-batch: the role the jobs run with.
    pub job_role_arn: Option<String>,
    /// aws-batch: the CloudWatch log group of the jobs' output.
    #[serde(default = "log_group")]
    pub log_group: String,
    /// aws-batch: else the AWS chain's region.
    pub region: Option<String>,
    /// aws-batch: an AWS-compatible endpoint instead of AWS's.
    pub endpoint: Option<String>,
}

impl QueueSettings {
    /// The settings the `aws-batch` backend reads.
    pub fn batch(&self) -> batch::BatchSettings {
        batch::BatchSettings {
            job_queue: self.job_queue.clone(),
            job_definition: self.job_definition.clone(),
            image: self.image.clone(),
            definition_prefix: self.definition_prefix.clone(),
            execution_role_arn: self.execution_role_arn.clone(),
            job_role_arn: self.job_role_arn.clone(),
            log_group: self.log_group.clone(),
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
        }
    }
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
fn log_group() -> String {
    "/aws/batch/job".into()
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            backend: local(),
            dir: queue_dir(),
            concurrency: two(),
            job_queue: String::new(),
            job_definition: String::new(),
            image: None,
            definition_prefix: String::new(),
            execution_role_arn: None,
            job_role_arn: None,
            log_group: log_group(),
            region: None,
            endpoint: None,
        }
    }
}
pub use cron::Cron;
pub use queue::{LocalQueue, Run, RunStatus};

impl tick::Submit for LocalQueue {
    fn exists(&mut self, key: &str) -> Result<bool, tick::SubmitError> {
        Ok(LocalQueue::exists(self, key))
    }

    fn submit(&mut self, run: &Run) -> Result<(), tick::SubmitError> {
        LocalQueue::submit(self, run)?;
        Ok(())
    }
}
