//! The AWS Batch queue: `SubmitJob` to the configured job queue and job definition with
//! the run's command, vCPU and memory, environment, retry strategy (`attempts`), timeout
//! (`attemptDurationSeconds`, at least 60) and tags; `ListJobs`/`DescribeJobs` to find a
//! run by its key and to read recent jobs for batch-stability.
//!
//! Credentials and region come from the standard AWS chain (`aws-config`); `endpoint`
//! points it at an AWS-compatible server. Secrets are not sent: on Batch they belong in
//! the job definition, where the job's `secrets` names them.
//!
//! The SDK is async and [`Submit`] is not (the scheduler's tick calls it in its own
//! runtime), so each call runs on this queue's runtime from a thread of its own.

use std::collections::HashMap;

use aws_sdk_batch::types::{
    ContainerOverrides, JobDetail, JobStatus, JobTimeout, KeyValuePair, KeyValuesPair,
    ResourceRequirement, ResourceType, RetryStrategy,
};
use chrono::{DateTime, TimeZone, Utc};

use crate::queue::{run_id, Attempt, Run, RunStatus};
use crate::tick::Submit;

/// `[queue]` settings of the `aws-batch` backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchSettings {
    pub job_queue: String,
    pub job_definition: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

pub struct BatchQueue {
    client: aws_sdk_batch::Client,
    settings: BatchSettings,
    runtime: tokio::runtime::Runtime,
}

/// A run key as a Batch job name: letters, digits, `-` and `_`, at most 128.
pub fn job_name(key: &str) -> String {
    let mut name = run_id(key);
    name.truncate(128);
    name
}

fn error(e: impl std::error::Error) -> String {
    // The SDK's Display is terse ("service error"); its source chain says what happened.
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl BatchQueue {
    pub fn connect(settings: BatchSettings) -> Result<BatchQueue, String> {
        if settings.job_queue.is_empty() || settings.job_definition.is_empty() {
            return Err(
                "[queue] backend \"aws-batch\" needs job_queue and job_definition".to_string(),
            );
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("starting the async runtime: {e}"))?;
        let client = runtime.block_on(async {
            let https = aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https();
            let mut loader =
                aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https);
            if let Some(region) = &settings.region {
                loader = loader.region(aws_config::Region::new(region.clone()));
            }
            if let Some(endpoint) = &settings.endpoint {
                loader = loader.endpoint_url(endpoint);
            }
            aws_sdk_batch::Client::new(&loader.load().await)
        });
        Ok(BatchQueue {
            client,
            settings,
            runtime,
        })
    }

    pub fn client(&self) -> &aws_sdk_batch::Client {
        &self.client
    }

    /// Runs a future on this queue's runtime, from any thread (even one inside another
    /// runtime).
    fn block_on<T: Send>(&self, fut: impl std::future::Future<Output = T> + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| self.runtime.block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    fn queue_for(&self, run: &Run) -> String {
        match run.queue.as_str() {
            "" | "default" => self.settings.job_queue.clone(),
            other => other.to_string(),
        }
    }

    /// A page of the queue's jobs matching one ListJobs filter (all statuses).
    async fn list_page(
        &self,
        filter: &str,
        value: &str,
        token: Option<String>,
    ) -> Result<aws_sdk_batch::operation::list_jobs::ListJobsOutput, String> {
        self.client
            .list_jobs()
            .job_queue(&self.settings.job_queue)
            .filters(KeyValuesPair::builder().name(filter).values(value).build())
            .set_next_token(token)
            .send()
            .await
            .map_err(error)
    }

    /// Jobs created at or after `since` in the queue, as runs (for batch-stability).
    pub fn recent(&self, since: DateTime<Utc>) -> Result<Vec<Run>, String> {
        self.block_on(async {
            let mut ids = Vec::new();
            let mut token = None;
            loop {
                let after = (since.timestamp_millis() - 1).to_string();
                let page = self.list_page("AFTER_CREATED_AT", &after, token).await?;
                ids.extend(
                    page.job_summary_list()
                        .iter()
                        .filter_map(|j| j.job_id().map(str::to_string)),
                );
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            let mut runs = Vec::new();
            for chunk in ids.chunks(100) {
                let described = self
                    .client
                    .describe_jobs()
                    .set_jobs(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(error)?;
                runs.extend(described.jobs().iter().map(run_of_job));
            }
            runs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            Ok(runs)
        })
    }
}

fn millis(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

/// A Batch job as a run, with the facts batch-stability classifies by.
pub fn run_of_job(job: &JobDetail) -> Run {
    let tags = job.tags().cloned().unwrap_or_default();
    let status = match job.status() {
        Some(JobStatus::Succeeded) => RunStatus::Succeeded,
        Some(JobStatus::Failed) => RunStatus::Failed,
        Some(JobStatus::Running) | Some(JobStatus::Starting) => RunStatus::Running,
        _ => RunStatus::Queued,
    };
    let reason = job.status_reason().map(str::to_string);
    let timed_out = reason
        .as_deref()
        .is_some_and(|r| r.contains("duration exceeded timeout"));
    let mut attempts: Vec<Attempt> = job
        .attempts()
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            Some(Attempt {
                number: i as u32 + 1,
                started_at: millis(a.started_at())?,
                stopped_at: millis(a.stopped_at()),
                exit_code: a.container().and_then(|c| c.exit_code()),
                timed_out: false,
                log: Default::default(),
            })
        })
        .collect();
    if attempts.is_empty() {
        if let Some(started_at) = millis(job.started_at()) {
            attempts.push(Attempt {
                number: 1,
                started_at,
                stopped_at: millis(job.stopped_at()),
                exit_code: job.container().and_then(|c| c.exit_code()),
                timed_out: false,
                log: Default::default(),
            });
        }
    }
    if let Some(last) = attempts.last_mut() {
        last.timed_out = timed_out;
    }
    Run {
        id: job.job_id().unwrap_or_default().to_string(),
        key: tags.get("observes:run_key").cloned().unwrap_or_default(),
        job: tags
            .get("observes:job")
            .cloned()
            .unwrap_or_else(|| job.job_name().unwrap_or_default().to_string()),
        command: job
            .container()
            .map(|c| c.command().to_vec())
            .unwrap_or_default(),
        cwd: Default::default(),
        attempts_allowed: job.retry_strategy().and_then(|r| r.attempts()).unwrap_or(1) as u32,
        timeout_seconds: job
            .timeout()
            .and_then(|t| t.attempt_duration_seconds())
            .unwrap_or(0) as u64,
        environment: Default::default(),
        secrets: Default::default(),
        tags: tags.into_iter().collect(),
        scheduled_for: None,
        created_at: millis(job.created_at()).unwrap_or_default(),
        started_at: millis(job.started_at()),
        stopped_at: millis(job.stopped_at()),
        status,
        status_reason: reason,
        attempts,
        recorded: false,
        queue: job.job_queue().unwrap_or_default().to_string(),
        size: None,
        claimed_from: 1,
    }
}

impl Submit for BatchQueue {
    fn exists(&mut self, key: &str) -> Result<bool, String> {
        let name = job_name(key);
        self.block_on(async {
            let page = self.list_page("JOB_NAME", &name, None).await?;
            Ok(page
                .job_summary_list()
                .iter()
                .any(|j| j.job_name() == Some(name.as_str())))
        })
    }

    fn submit(&mut self, run: &Run) -> Result<(), String> {
        let mut environment: Vec<KeyValuePair> = run
            .environment
            .iter()
            .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
            .collect();
        environment.push(
            KeyValuePair::builder()
                .name("OBSERVES_RUN_ID")
                .value(&run.key)
                .build(),
        );
        let mut resources = Vec::new();
        if let Some(size) = run.size {
            resources.push(
                ResourceRequirement::builder()
                    .r#type(ResourceType::Vcpu)
                    .value(size.vcpus.to_string())
                    .build(),
            );
            resources.push(
                ResourceRequirement::builder()
                    .r#type(ResourceType::Memory)
                    .value(size.memory_mb.to_string())
                    .build(),
            );
        }
        let mut tags: HashMap<String, String> = run.tags.clone().into_iter().collect();
        tags.insert("observes:job".into(), run.job.clone());
        tags.insert("observes:run_key".into(), run.key.clone());
        let request = self
            .client
            .submit_job()
            .job_name(job_name(&run.key))
            .job_queue(self.queue_for(run))
            .job_definition(&self.settings.job_definition)
            .container_overrides(
                ContainerOverrides::builder()
                    .set_command(Some(run.command.clone()))
                    .set_environment(Some(environment))
                    .set_resource_requirements(Some(resources))
                    .build(),
            )
            .retry_strategy(
                RetryStrategy::builder()
                    .attempts(run.attempts_allowed.clamp(1, 10) as i32)
                    .build(),
            )
            .timeout(
                JobTimeout::builder()
                    .attempt_duration_seconds(run.timeout_seconds.max(60) as i32)
                    .build(),
            )
            .set_tags(Some(tags))
            .propagate_tags(true);
        self.block_on(async { request.send().await.map(|_| ()).map_err(error) })
    }
}
