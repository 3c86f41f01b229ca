//! `batch-stability`: the failures among a queue's recent runs, classified and grouped by
//! job.
//!
//! - `cancelled`: never started and never stopped (cancelled while waiting);
//! - `unstarted`: stopped without starting (it could not start: a missing secret, a
//!   program that does not exist);
//! - `timed_out`: its last attempt ran past the job's timeout;
//! - `failed`: it ran and exited non-zero (with its exit code, or none when killed).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::queue::{Run, RunStatus};

/// How a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// It was cancelled.
    Cancelled,
    /// It never started.
    Unstarted {
        /// Why, if anything says.
        reason: Option<String>,
    },
    /// Its timeout stopped it.
    TimedOut,
    /// Its command failed.
    Failed {
        /// The exit code, if it exited.
        exit_code: Option<i32>,
    },
}

/// A run that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedRun {
    /// Its id.
    pub id: String,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// How it failed.
    #[serde(flatten)]
    pub failure: Failure,
}

/// Runs of a period, by outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StabilityReport {
    /// The start of the period.
    pub since: DateTime<Utc>,
    /// Runs in it.
    pub runs: usize,
    /// Runs that succeeded.
    pub succeeded: usize,
    /// The failed runs, by job.
    pub failures: BTreeMap<String, Vec<FailedRun>>,
}

impl StabilityReport {
    /// Failed runs.
    pub fn failed(&self) -> usize {
        self.failures.values().map(Vec::len).sum()
    }
}

/// How a finished run failed, `None` when it did not (or has not finished).
pub fn classify(run: &Run) -> Option<Failure> {
    match run.status {
        RunStatus::Succeeded | RunStatus::Queued | RunStatus::Running => None,
        RunStatus::Cancelled if run.started_at.is_none() => Some(Failure::Cancelled),
        _ if run.started_at.is_none() && run.stopped_at.is_none() => Some(Failure::Cancelled),
        _ if run.started_at.is_none() => Some(Failure::Unstarted {
            reason: run.status_reason.clone(),
        }),
        _ if run.attempts.last().is_some_and(|a| a.timed_out) => Some(Failure::TimedOut),
        _ => Some(Failure::Failed {
            exit_code: run.exit_code(),
        }),
    }
}

/// The report over runs created at or after `since`.
pub fn report(runs: &[Run], since: DateTime<Utc>) -> StabilityReport {
    let recent: Vec<&Run> = runs.iter().filter(|r| r.created_at >= since).collect();
    let mut failures: BTreeMap<String, Vec<FailedRun>> = BTreeMap::new();
    for run in &recent {
        if let Some(failure) = classify(run) {
            failures
                .entry(run.job.clone())
                .or_default()
                .push(FailedRun {
                    id: run.id.clone(),
                    created_at: run.created_at,
                    failure,
                });
        }
    }
    StabilityReport {
        since,
        runs: recent.len(),
        succeeded: recent
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .count(),
        failures,
    }
}

/// The report as text, one line per failed run under its job.
pub fn render(report: &StabilityReport) -> String {
    let mut out = format!(
        "{} runs since {}: {} succeeded, {} failed\n",
        report.runs,
        report
            .since
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        report.succeeded,
        report.failed()
    );
    for (job, runs) in &report.failures {
        out.push_str(&format!("{job}: {} failed\n", runs.len()));
        for r in runs {
            let what = match &r.failure {
                Failure::Cancelled => "cancelled (never started)".to_string(),
                Failure::Unstarted { reason } => format!(
                    "unstarted: {}",
                    reason.as_deref().unwrap_or("stopped before starting")
                ),
                Failure::TimedOut => "timed out".to_string(),
                Failure::Failed { exit_code: Some(c) } => format!("failed with exit code {c}"),
                Failure::Failed { exit_code: None } => "failed (exit code unknown)".to_string(),
            };
            out.push_str(&format!("  {} {what}\n", r.id));
        }
    }
    out
}
