//! Cancelling CI jobs stuck in the queue: jobs still created, pending or running that were
//! created longer ago than a threshold.

use chrono::Duration;
use observes_http::{PageBudget, PageStyle, Pager};
use serde::Serialize;
use serde_json::Value;

use super::{GitlabApi, GitlabConfig};
use crate::window::{parse_time, Time};
use crate::SourceError;

/// What `observes job gitlab-cancel` looks at.
#[derive(Debug, Clone)]
pub struct CancelOptions {
    /// Projects whose stuck jobs are cancelled (ids or paths).
    pub projects: Vec<String>,
    /// Jobs running or pending longer than this are stuck.
    pub older_than: Duration,
    /// List what would be cancelled, change nothing.
    pub dry_run: bool,
    /// The clock the threshold is measured against.
    pub now: Time,
}

/// What happened to one stuck job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CancelOutcome {
    /// GitLab answered with the job canceled (or canceling).
    Cancelled {
        /// The status GitLab answered with.
        status: String,
    },
    /// Dry run: it would have been cancelled.
    WouldCancel,
    /// The job finished before the cancel arrived; GitLab left it as it was.
    AlreadyFinished {
        /// The status it finished with.
        status: String,
    },
    /// The cancel failed (the others go on).
    Failed {
        /// Why.
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobAction {
    pub project: String,
    pub id: i64,
    pub name: String,
    pub status: String,
    pub created_at: String,
    #[serde(flatten)]
    pub outcome: CancelOutcome,
}

/// What a cancel run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CancelReport {
    /// Each stuck job and what happened to it.
    pub jobs: Vec<JobAction>,
}

impl CancelReport {
    fn count(&self, f: impl Fn(&CancelOutcome) -> bool) -> usize {
        self.jobs.iter().filter(|j| f(&j.outcome)).count()
    }
    /// Jobs cancelled.
    pub fn cancelled(&self) -> usize {
        self.count(|o| matches!(o, CancelOutcome::Cancelled { .. }))
    }
    /// Jobs whose cancel failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, CancelOutcome::Failed { .. }))
    }
    /// Jobs a dry run would cancel.
    pub fn would_cancel(&self) -> usize {
        self.count(|o| matches!(o, CancelOutcome::WouldCancel))
    }
    /// Jobs that finished before their cancel.
    pub fn already_finished(&self) -> usize {
        self.count(|o| matches!(o, CancelOutcome::AlreadyFinished { .. }))
    }
}

const QUEUED: [&str; 3] = ["created", "pending", "running"];

/// Lists each project's queued jobs, then cancels those older than the threshold. A job
/// that fails to cancel is reported and the rest go on; listing a project fails the call.
pub async fn cancel_ci_jobs(
    config: &GitlabConfig,
    options: &CancelOptions,
) -> Result<CancelReport, SourceError> {
    let api = GitlabApi::connect(config)?;
    let mut report = CancelReport::default();
    let threshold = options.now - options.older_than;
    for project in &options.projects {
        // The whole list first: cancelling while paging would shift the pages.
        let mut query = vec![("per_page", "100".to_string())];
        query.extend(QUEUED.iter().map(|s| ("scope[]", s.to_string())));
        let url = api.url(&["projects", project, "jobs"], &query);
        let mut pager = Pager::new(PageStyle::NextPageHeader, url, PageBudget::unlimited());
        let mut stuck = Vec::new();
        while let Some(page) = pager
            .next_page(&api.client)
            .await
            .map_err(SourceError::http("jobs"))?
        {
            for job in page.items {
                let created = job
                    .get("created_at")
                    .and_then(Value::as_str)
                    .and_then(parse_time);
                let status = job.get("status").and_then(Value::as_str).unwrap_or("");
                // A status the filter should not have let through is left alone.
                if created.is_some_and(|c| c < threshold) && QUEUED.contains(&status) {
                    stuck.push(job);
                }
            }
        }
        for job in stuck {
            let text = |f: &str| job.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            let id = job.get("id").and_then(Value::as_i64).unwrap_or(0);
            let outcome = if options.dry_run {
                CancelOutcome::WouldCancel
            } else {
                let url = api.url(
                    &["projects", project, "jobs", &id.to_string(), "cancel"],
                    &[],
                );
                match api.post(&url).await {
                    Ok(after) => {
                        let status = after
                            .get("status")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        if status == "canceled" || status == "canceling" {
                            CancelOutcome::Cancelled { status }
                        } else {
                            CancelOutcome::AlreadyFinished { status }
                        }
                    }
                    Err(e) => CancelOutcome::Failed {
                        error: observes_runtime::chain(&e).to_string(),
                    },
                }
            };
            tracing::info!(project, id, outcome = ?outcome, "cancel-ci-jobs");
            report.jobs.push(JobAction {
                project: project.clone(),
                id,
                name: text("name"),
                status: text("status"),
                created_at: text("created_at"),
                outcome,
            });
        }
    }
    Ok(report)
}
