//! `observes job compute-bills | mirror | timedoctor-backup | zoho-prepare | cancel-ci-jobs` (the catalogue's own commands
//! are in `scheduling`).

use std::io::Write;

use anyhow::{bail, Result};
use observes_app::Config;
use observes_state::StateStore;
use serde_json::json;

use crate::args::Job;
use crate::{runtime, scheduling};

/// `observes job …`.
pub(crate) fn job(job: Job) -> Result<()> {
    match job {
        Job::CancelCiJobs {
            config,
            projects,
            older_than,
            dry_run,
            json,
        } => cancel_ci_jobs(&config, projects, older_than, dry_run, json),
        Job::ComputeBills {
            month,
            config,
            json,
        } => compute_bills(
            &config,
            month.unwrap_or_else(observes_jobs::bills::Month::now),
            json,
        ),
        Job::Mirror {
            group,
            config,
            json,
        } => mirror(&config, group.as_deref(), json),
        Job::TimedoctorBackup {
            month,
            from,
            to,
            pipeline,
            config,
            json,
        } => {
            let months = match (from, to) {
                (Some(from), Some(to)) => {
                    let months: Vec<_> = observes_jobs::bills::Month::range(from, to).collect();
                    if months.is_empty() {
                        bail!("--from {from} comes after --to {to}");
                    }
                    months
                }
                _ => vec![month.unwrap_or_else(observes_jobs::timedoctor::last_full_month)],
            };
            timedoctor_backup(&config, &pipeline, &months, json)
        }
        Job::ZohoPrepare {
            modules,
            pipeline,
            config,
            json,
        } => zoho_prepare(&config, &pipeline, &modules, json),
        Job::List { json, config } => scheduling::job_list(&config, json),
        Job::Show { name, config } => scheduling::job_show(&config, &name),
        Job::Run { name, config } => scheduling::job_run(&config, &name),
        Job::BatchStability {
            hours,
            json,
            webhook,
            config,
        } => scheduling::batch_stability(&config, hours, json, webhook.as_deref()),
    }
}

pub(crate) fn compute_bills(
    config: &std::path::Path,
    month: observes_jobs::bills::Month,
    as_json: bool,
) -> Result<()> {
    let config = Config::load(config)?;
    let storage = StateStore::open(&config.storage)?;
    let mut warehouse = observes_warehouse::connect(&config.warehouse)?;
    let report =
        observes_jobs::bills::compute_bills(warehouse.as_mut(), &storage, &config.bills, month)?;
    if as_json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let mut out = std::io::stdout().lock();
        for g in &report.groups {
            writeln!(out, "{}: {} active authors -> {}", g.group, g.actors, g.key)?;
        }
        for group in &report.unmapped_groups {
            writeln!(
                out,
                "warning: group {group:?} has no organization in [bills.groups]; billed alone"
            )?;
        }
        for key in &report.removed {
            writeln!(out, "removed {key} (no activity now)")?;
        }
    }
    Ok(())
}

pub(crate) fn mirror(config: &std::path::Path, group: Option<&str>, as_json: bool) -> Result<()> {
    use observes_jobs::mirror::Outcome;
    let path = config;
    let config = Config::load(path)?;
    let Some(settings) = &config.mirror else {
        bail!("{} has no [mirror] table", path.display());
    };
    let storage = StateStore::open(&config.storage)?;
    let report = observes_jobs::mirror::mirror(settings, &storage, group)?;
    if as_json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let mut out = std::io::stdout().lock();
        for r in &report.repositories {
            let what = match (&r.outcome, &r.error) {
                (Outcome::Published, _) => format!("published ({} bytes)", r.bytes),
                (Outcome::Unchanged, _) => "unchanged".to_string(),
                (Outcome::Failed, e) => format!("FAILED: {}", e.as_deref().unwrap_or("")),
            };
            writeln!(out, "{}/{}: {what}", r.group, r.repository)?;
        }
        writeln!(
            out,
            "{} published, {} unchanged, {} failed",
            report.count(Outcome::Published),
            report.count(Outcome::Unchanged),
            report.count(Outcome::Failed)
        )?;
    }
    if report.count(Outcome::Failed) > 0 {
        bail!("{} repositories failed", report.count(Outcome::Failed));
    }
    Ok(())
}

pub(crate) fn timedoctor_backup(
    path: &std::path::Path,
    pipeline: &str,
    months: &[observes_jobs::bills::Month],
    as_json: bool,
) -> Result<()> {
    use observes_jobs::timedoctor::back_up;
    use observes_sources::timedoctor::backup::Backed;
    use observes_sources::timedoctor::TimeDoctorConfig;
    let config = Config::load(path)?;
    let source = &config.pipeline(pipeline)?.source;
    let Some(settings) = source.settings::<TimeDoctorConfig>() else {
        bail!(
            "pipeline {pipeline:?} in {} is not a timedoctor pipeline",
            path.display()
        );
    };
    let report = back_up(settings, months)?;
    if as_json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for m in &report.months {
        match &m.backed {
            Backed::Published { manifest } => writeln!(
                out,
                "{} {}: {} rows ({} to {}) -> {}/{}/{}",
                m.stream,
                m.month,
                manifest.rows,
                manifest.first.as_deref().unwrap_or("-"),
                manifest.last.as_deref().unwrap_or("-"),
                report.backup,
                m.stream,
                manifest.file
            )?,
            Backed::Kept { manifest, served } => writeln!(
                out,
                "{} {}: kept the backup of {} rows; the API now serves {served} (part of the month has expired)",
                m.stream, m.month, manifest.rows
            )?,
        }
    }
    Ok(())
}

pub(crate) fn zoho_prepare(
    path: &std::path::Path,
    pipeline: &str,
    modules: &[String],
    as_json: bool,
) -> Result<()> {
    use observes_sources::zoho::export::Prepared;
    use observes_sources::zoho::ZohoConfig;
    let config = Config::load(path)?;
    let source = &config.pipeline(pipeline)?.source;
    let Some(settings) = source.settings::<ZohoConfig>() else {
        bail!(
            "pipeline {pipeline:?} in {} is not a zoho pipeline",
            path.display()
        );
    };
    let report = observes_jobs::zoho::prepare(settings, modules)?;
    if as_json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let mut out = std::io::stdout().lock();
        for m in &report.modules {
            match &m.prepared {
                Prepared::Started { job_id } => {
                    writeln!(out, "{}: started bulk read job {job_id}", m.module)?
                }
                Prepared::Kept { job_id, state } => writeln!(
                    out,
                    "{}: kept the export of job {job_id} ({state})",
                    m.module
                )?,
                Prepared::Failed { error } => writeln!(out, "{}: FAILED: {error}", m.module)?,
            }
        }
        writeln!(out, "exports recorded in {}", report.jobs)?;
    }
    let failed = report.failed();
    if !failed.is_empty() {
        bail!("zoho-prepare failed for {}", failed.join(", "));
    }
    Ok(())
}

pub(crate) fn cancel_ci_jobs(
    config: &std::path::Path,
    projects: Vec<String>,
    older_than: chrono::Duration,
    dry_run: bool,
    as_json: bool,
) -> Result<()> {
    use observes_sources::gitlab::{self, CancelOptions, CancelOutcome};
    let settings: gitlab::GitlabConfig = observes_sources::read_config(config)?;
    let projects = if projects.is_empty() {
        settings.projects.clone()
    } else {
        projects
    };
    if projects.is_empty() {
        bail!(
            "no project given (--project) and none in {}",
            config.display()
        );
    }
    let options = CancelOptions {
        projects,
        older_than,
        dry_run,
        now: chrono::Utc::now(),
    };
    let rt = runtime()?;
    let report = rt.block_on(gitlab::cancel_ci_jobs(&settings, &options))?;
    if as_json {
        let out = json!({
            "dry_run": dry_run,
            "cancelled": report.cancelled(),
            "would_cancel": report.would_cancel(),
            "already_finished": report.already_finished(),
            "failed": report.failed(),
            "jobs": report.jobs,
        });
        println!("{out}");
    } else {
        let mut out = std::io::stdout().lock();
        for job in &report.jobs {
            let what = match &job.outcome {
                CancelOutcome::Cancelled { status } => format!("cancelled ({status})"),
                CancelOutcome::WouldCancel => "would cancel".to_string(),
                CancelOutcome::AlreadyFinished { status } => format!("already finished ({status})"),
                CancelOutcome::Failed { error } => format!("FAILED: {error}"),
            };
            writeln!(
                out,
                "{} job {} {:?} {} since {}: {what}",
                job.project, job.id, job.name, job.status, job.created_at
            )?;
        }
        if dry_run {
            writeln!(
                out,
                "dry run: {} jobs would be cancelled",
                report.would_cancel()
            )?;
        } else {
            writeln!(
                out,
                "{} cancelled, {} already finished, {} failed",
                report.cancelled(),
                report.already_finished(),
                report.failed()
            )?;
        }
    }
    if report.failed() > 0 {
        bail!(
            "{} of {} jobs could not be cancelled",
            report.failed(),
            report.jobs.len()
        );
    }
    Ok(())
}
