//! The AWS Batch queue: `SubmitJob` to the configured job queue and job definition with
//! the run's command, vCPU and memory, environment, retry strategy (`attempts`), timeout
//! (`attemptDurationSeconds`, at least 60) and tags; `ListJobs`/`DescribeJobs` to find a
//! run by its key and to read recent jobs for batch-stability.
//!
//! Batch's API is JSON over HTTPS, signed with SigV4. It goes through the shared HTTP
//! client (retries, 429 and 5xx, secrets kept out of errors), signed by object_store's
//! signer with the credential chain the S3 state store uses: the environment's keys, web
//! identity (EKS), the container's credentials (ECS, Batch) and the instance's (EC2).
//! The AWS SDK did the same in three minutes of a cold build. Secrets are not sent: on
//! Batch they belong in the job definition, so with `[queue] image` each job is submitted
//! to its own definition ([`crate::definitions`]), which carries them.
//!
//! The region is `[queue] region`, else `AWS_REGION` or `AWS_DEFAULT_REGION`; the
//! endpoint is `[queue] endpoint`, else `AWS_ENDPOINT_URL_BATCH` or `AWS_ENDPOINT_URL`
//! (an AWS-compatible server), else Batch's own for the region.
//!
//! [`Submit`] is not async (the scheduler's tick calls it from inside the runtime), so
//! each call runs on the process's runtime from a thread of its own.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use object_store::aws::{AmazonS3Builder, AwsAuthorizer, AwsCredentialProvider};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::queue::{run_id, Attempt, Run, RunStatus};
use crate::tick::{Submit, SubmitError};

/// What talking to Batch failed with; each names the operation where there is one.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// `[queue]` settings the backend cannot work with.
    #[error("{0}")]
    Settings(String),
    /// No AWS credentials could be found, or refreshed.
    #[error("AWS credentials")]
    Credentials(#[source] object_store::Error),
    /// Batch refused the call with its own error (`{"__type": …, "message": …}`).
    #[error("Batch {operation}: HTTP {status}: {kind}: {message}")]
    Refused {
        /// The operation (`SubmitJob`, `DescribeJobs`, …).
        operation: String,
        /// The HTTP status.
        status: u16,
        /// Batch's error type (`__type`).
        kind: String,
        /// Batch's message.
        message: String,
    },
    /// The call failed on the way (after the shared client's retries).
    #[error("Batch {operation}")]
    Http {
        /// The operation.
        operation: String,
        /// Why.
        #[source]
        source: observes_http::HttpError,
    },
    /// The answer is not JSON.
    #[error("Batch {operation}: the answer is not JSON")]
    NotJson {
        /// The operation.
        operation: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The answer is JSON, but not of the operation's shape.
    #[error("Batch {operation}")]
    Shape {
        /// The operation.
        operation: String,
        /// What does not fit.
        #[source]
        source: serde_json::Error,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(observes_http::HttpError),
    /// The runtime could not be started.
    #[error(transparent)]
    Runtime(#[from] observes_state::RuntimeError),
}

fn shape(operation: &str) -> impl FnOnce(serde_json::Error) -> BatchError + '_ {
    move |source| BatchError::Shape {
        operation: operation.to_string(),
        source,
    }
}

/// `[queue]` settings of the `aws-batch` backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchSettings {
    /// The job queue runs go to (`default` in the catalogue).
    pub job_queue: String,
    /// One job definition every run is submitted with, managed elsewhere; empty when
    /// each job has its own (`image`).
    pub job_definition: String,
    /// The image each job's own definition runs ([`crate::definitions`]).
    pub image: Option<String>,
    /// Put before each job's definition name.
    pub definition_prefix: String,
    /// The role Batch (ECS) pulls the image and reads secrets with.
    pub execution_role_arn: Option<String>,
    /// The role the job's code runs with (S3, Redshift).
    pub job_role_arn: Option<String>,
    /// The CloudWatch log group of the jobs' output.
    pub log_group: String,
    /// The AWS region (default: the environment's).
    pub region: Option<String>,
    /// Batch's endpoint, for a stand-in (default: the region's).
    pub endpoint: Option<String>,
}

/// Runs submitted to AWS Batch.
pub struct BatchQueue {
    http: observes_http::HttpClient,
    credentials: AwsCredentialProvider,
    region: String,
    /// Where Batch's API is, with no trailing `/`.
    endpoint: String,
    settings: BatchSettings,
    runtime: &'static tokio::runtime::Runtime,
}

/// A run key as a Batch job name: letters, digits, `-` and `_`, at most 128.
pub fn job_name(key: &str) -> String {
    let mut name = run_id(key);
    name.truncate(128);
    name
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl BatchQueue {
    /// A client of Batch with these settings and the environment's AWS credentials.
    pub fn connect(settings: BatchSettings) -> Result<BatchQueue, BatchError> {
        if settings.job_queue.is_empty() {
            return Err(BatchError::Settings(
                "[queue] backend \"aws-batch\" needs job_queue".to_string(),
            ));
        }
        if settings.job_definition.is_empty() == settings.image.is_none() {
            return Err(BatchError::Settings(
                "[queue] backend \"aws-batch\" needs either image (a job definition per job) or job_definition (one for every job)".to_string(),
            ));
        }
        let region = settings
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                BatchError::Settings(
                    "[queue] backend \"aws-batch\" needs a region: [queue] region, or AWS_REGION"
                        .to_string(),
                )
            })?;
        let endpoint = settings
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_BATCH"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://batch.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_string();
        if format!("{endpoint}/v1/submitjob")
            .parse::<http::Uri>()
            .is_err()
            || !endpoint.starts_with("http")
        {
            return Err(BatchError::Settings(format!(
                "[queue] endpoint {endpoint:?} is not an http(s) URL"
            )));
        }
        // The chain object_store builds for S3; the bucket is a placeholder it requires.
        let credentials = AmazonS3Builder::from_env()
            .with_region(&region)
            .with_bucket_name("observes-batch")
            .build()
            .map_err(BatchError::Credentials)?
            .credentials()
            .clone();
        let http = observes_http::HttpClient::new(observes_http::HttpConfig::default())
            .map_err(BatchError::Client)?;
        let runtime = observes_state::runtime()?;
        Ok(BatchQueue {
            http,
            credentials,
            region,
            endpoint,
            settings,
            runtime,
        })
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

    /// One call of Batch's API: `operation` is its path under `/v1/` (`submitjob`,
    /// `listjobs`, `registerjobdefinition`, …), `body` its JSON request.
    pub fn call(&self, operation: &str, body: &Value) -> Result<Value, BatchError> {
        self.block_on(self.call_async(operation, body))
    }

    async fn call_async(&self, operation: &str, body: &Value) -> Result<Value, BatchError> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(BatchError::Credentials)?;
        let url = format!("{}/v1/{operation}", self.endpoint);
        let body = body.to_string();
        let response = self
            .http
            .send(|client| {
                // Signed again for each attempt: the signature carries the time. The URL
                // was checked in `connect`; were it refused here, the unsigned request
                // would fail with Batch's own error.
                let signed: Option<object_store::client::HttpRequest> = http::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone().into())
                    .ok()
                    .map(|mut request| {
                        AwsAuthorizer::new(&credential, "batch", &self.region)
                            .authorize(&mut request, None);
                        request
                    });
                let mut builder = client.post(&url).body(body.clone());
                if let Some(request) = signed {
                    builder = builder.headers(request.headers().clone());
                }
                builder
            })
            .await
            .map_err(|e| batch_error(operation, e))?;
        serde_json::from_slice(&response.body).map_err(|source| BatchError::NotJson {
            operation: operation.to_string(),
            source,
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
    ) -> Result<JobSummaries, BatchError> {
        let mut request = json!({
            "jobQueue": self.settings.job_queue,
            "filters": [{"name": filter, "values": [value]}],
        });
        if let Some(token) = token {
            request["nextToken"] = token.into();
        }
        let page = self.call_async("listjobs", &request).await?;
        serde_json::from_value(page).map_err(shape("listjobs"))
    }

    /// Jobs created at or after `since` in the queue, as runs (for batch-stability).
    pub fn recent(&self, since: DateTime<Utc>) -> Result<Vec<Run>, BatchError> {
        self.block_on(async {
            let mut ids = Vec::new();
            let mut token = None;
            loop {
                let after = (since.timestamp_millis() - 1).to_string();
                let page = self.list_page("AFTER_CREATED_AT", &after, token).await?;
                ids.extend(page.job_summary_list.into_iter().map(|j| j.job_id));
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            let mut runs = Vec::new();
            for chunk in ids.chunks(100) {
                let described = self
                    .call_async("describejobs", &json!({ "jobs": chunk }))
                    .await?;
                let described: JobDetails =
                    serde_json::from_value(described).map_err(shape("describejobs"))?;
                runs.extend(described.jobs.iter().map(run_of_job));
            }
            runs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            Ok(runs)
        })
    }
}

/// Batch's error (`{"__type": "ClientException", "message": …}`) said plainly.
fn batch_error(operation: &str, e: observes_http::HttpError) -> BatchError {
    if let observes_http::HttpError::Status { status, body, .. } = &e {
        if let Ok(error) = serde_json::from_str::<Value>(body) {
            let kind = error["__type"].as_str().unwrap_or("error");
            let kind = kind.rsplit('#').next().unwrap_or(kind);
            let message = error["message"]
                .as_str()
                .or(error["Message"].as_str())
                .unwrap_or(body);
            return BatchError::Refused {
                operation: operation.to_string(),
                status: *status,
                kind: kind.to_string(),
                message: message.to_string(),
            };
        }
    }
    BatchError::Http {
        operation: operation.to_string(),
        source: e,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobSummaries {
    #[serde(default)]
    job_summary_list: Vec<JobSummary>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobSummary {
    job_id: String,
    #[serde(default)]
    job_name: String,
}

#[derive(Debug, Deserialize)]
struct JobDetails {
    #[serde(default)]
    jobs: Vec<JobDetail>,
}

/// What Observes reads of a `DescribeJobs` job.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobDetail {
    /// Batch's job id.
    pub job_id: String,
    /// The job's name (the run's key, [`job_name`]).
    pub job_name: String,
    /// The job queue.
    pub job_queue: String,
    /// The job definition.
    pub job_definition: String,
    /// `SUBMITTED`, `PENDING`, `RUNNABLE`, `STARTING`, `RUNNING`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    /// Why it is in that status.
    pub status_reason: Option<String>,
    /// When it was created, milliseconds since the epoch.
    pub created_at: Option<i64>,
    /// When it started.
    pub started_at: Option<i64>,
    /// When it stopped.
    pub stopped_at: Option<i64>,
    /// Its attempts.
    pub attempts: Vec<AttemptDetail>,
    /// Its container, as the last attempt ran it.
    pub container: Option<ContainerDetail>,
    /// How often it is retried.
    pub retry_strategy: Option<RetryStrategy>,
    /// How long an attempt may run.
    pub timeout: Option<Timeout>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// One attempt of a job.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AttemptDetail {
    /// When it started, milliseconds since the epoch.
    pub started_at: Option<i64>,
    /// When it stopped.
    pub stopped_at: Option<i64>,
    /// Its container.
    pub container: Option<ContainerDetail>,
}

/// A job's container.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerDetail {
    /// The command.
    pub command: Vec<String>,
    /// The exit code, once it exited.
    pub exit_code: Option<i32>,
    /// Environment variables.
    pub environment: Vec<NameValue>,
}

/// A name and its value.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NameValue {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A job's retry strategy.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RetryStrategy {
    /// Attempts, the first included.
    pub attempts: Option<u32>,
}

/// A job's timeout.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Timeout {
    /// Seconds an attempt may run.
    pub attempt_duration_seconds: Option<u64>,
}

impl JobDetail {
    /// The jobs of a `DescribeJobs` answer.
    pub fn list(described: Value) -> Result<Vec<JobDetail>, BatchError> {
        serde_json::from_value::<JobDetails>(described)
            .map(|d| d.jobs)
            .map_err(shape("describejobs"))
    }
}

fn millis(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

/// A Batch job as a run, with the facts batch-stability classifies by.
pub fn run_of_job(job: &JobDetail) -> Run {
    let status = match job.status.as_str() {
        "SUCCEEDED" => RunStatus::Succeeded,
        "FAILED" => RunStatus::Failed,
        "RUNNING" | "STARTING" => RunStatus::Running,
        _ => RunStatus::Queued,
    };
    let reason = job.status_reason.clone();
    let timed_out = reason
        .as_deref()
        .is_some_and(|r| r.contains("duration exceeded timeout"));
    let exit_code = |c: &Option<ContainerDetail>| c.as_ref().and_then(|c| c.exit_code);
    let mut attempts: Vec<Attempt> = job
        .attempts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            Some(Attempt {
                number: i as u32 + 1,
                started_at: millis(a.started_at)?,
                stopped_at: millis(a.stopped_at),
                exit_code: exit_code(&a.container),
                timed_out: false,
                log: Default::default(),
            })
        })
        .collect();
    if attempts.is_empty() {
        if let Some(started_at) = millis(job.started_at) {
            attempts.push(Attempt {
                number: 1,
                started_at,
                stopped_at: millis(job.stopped_at),
                exit_code: exit_code(&job.container),
                timed_out: false,
                log: Default::default(),
            });
        }
    }
    if let Some(last) = attempts.last_mut() {
        last.timed_out = timed_out;
    }
    Run {
        id: job.job_id.clone(),
        key: job
            .tags
            .get("observes:run_key")
            .cloned()
            .unwrap_or_default(),
        job: job
            .tags
            .get("observes:job")
            .cloned()
            .unwrap_or_else(|| job.job_name.clone()),
        command: job
            .container
            .as_ref()
            .map(|c| c.command.clone())
            .unwrap_or_default(),
        cwd: Default::default(),
        attempts_allowed: job
            .retry_strategy
            .as_ref()
            .and_then(|r| r.attempts)
            .unwrap_or(1),
        timeout_seconds: job
            .timeout
            .as_ref()
            .and_then(|t| t.attempt_duration_seconds)
            .unwrap_or(0),
        environment: Default::default(),
        secrets: Default::default(),
        tags: job.tags.clone(),
        scheduled_for: None,
        created_at: millis(job.created_at).unwrap_or_default(),
        started_at: millis(job.started_at),
        stopped_at: millis(job.stopped_at),
        status,
        status_reason: reason,
        attempts,
        recorded: false,
        queue: job.job_queue.clone(),
        size: None,
        claimed_from: 1,
    }
}

impl Submit for BatchQueue {
    fn exists(&mut self, key: &str) -> Result<bool, SubmitError> {
        let name = job_name(key);
        self.block_on(async {
            let page = self.list_page("JOB_NAME", &name, None).await?;
            Ok(page.job_summary_list.iter().any(|j| j.job_name == name))
        })
    }

    fn submit(&mut self, run: &Run) -> Result<(), SubmitError> {
        let mut environment: Vec<Value> = run
            .environment
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        environment.push(json!({"name": "OBSERVES_RUN_ID", "value": run.key}));
        // A job's own definition has its size and runs the image's observes; the shared
        // one is told the size and the whole command.
        let (definition, command, resources) = if self.settings.job_definition.is_empty() {
            let name =
                crate::definitions::definition_name(&self.settings.definition_prefix, &run.job);
            let command = crate::definitions::image_command(&run.job, &run.command)?;
            (name, command, Vec::new())
        } else {
            let mut resources = Vec::new();
            if let Some(size) = run.size {
                resources.push(json!({"type": "VCPU", "value": size.vcpus.to_string()}));
                resources.push(json!({"type": "MEMORY", "value": size.memory_mb.to_string()}));
            }
            (
                self.settings.job_definition.clone(),
                run.command.clone(),
                resources,
            )
        };
        let mut tags: HashMap<String, String> = run.tags.clone().into_iter().collect();
        tags.insert("observes:job".into(), run.job.clone());
        tags.insert("observes:run_key".into(), run.key.clone());
        let request = json!({
            "jobName": job_name(&run.key),
            "jobQueue": self.queue_for(run),
            "jobDefinition": definition,
            "containerOverrides": {
                "command": command,
                "environment": environment,
                "resourceRequirements": resources,
            },
            "retryStrategy": {"attempts": run.attempts_allowed.clamp(1, 10)},
            "timeout": {"attemptDurationSeconds": run.timeout_seconds.max(60)},
            "tags": tags,
            "propagateTags": true,
        });
        self.call("submitjob", &request)?;
        Ok(())
    }
}
