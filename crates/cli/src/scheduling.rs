//! `observes job list|show|run|batch-stability`, `observes schedule`, `observes scheduler`
//! and `observes queue`: the catalogue, the scheduler and the local queue, wired.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use observes_app::Config;
use observes_scheduler::queue::{LocalQueue, Run, RunStatus};
use observes_scheduler::{runs, stability, tick};
use observes_state::StateStore;

use crate::runtime;

fn local_queue(config: &Config) -> Result<LocalQueue> {
    if config.queue.backend != "local" {
        bail!(
            "queue backend {:?} is not available here yet (only \"local\")",
            config.queue.backend
        );
    }
    Ok(LocalQueue::open(&config.queue.dir)?)
}

pub(crate) fn job_list(config: &Path, as_json: bool) -> Result<()> {
    let config = Config::load(config)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let jobs: Vec<_> = config.catalogue.jobs.values().collect();
        writeln!(out, "{}", serde_json::to_string(&jobs)?)?;
        return Ok(());
    }
    for job in config.catalogue.jobs.values() {
        writeln!(
            out,
            "{:<40} {:<28} {:<6} {:<8} {}",
            job.name,
            job.schedule
                .as_ref()
                .map_or("(not scheduled)".to_string(), |c| c.to_string()),
            job.size_name,
            job.queue,
            job.command.join(" ")
        )?;
    }
    Ok(())
}

pub(crate) fn job_show(config: &Path, name: &str) -> Result<()> {
    let config = Config::load(config)?;
    let job = config.catalogue.job(name).map_err(anyhow::Error::msg)?;
    println!("{}", serde_json::to_string_pretty(job)?);
    Ok(())
}

/// Writes finished runs not yet in `_observes_job_runs` (a DuckDB file another process
/// holds is tried again next time).
fn record_runs(config: &Config, runs: &mut [Run], save: &dyn Fn(&Run) -> Result<()>) {
    let pending: Vec<&mut Run> = runs
        .iter_mut()
        .filter(|r| r.status.finished() && !r.recorded)
        .collect();
    if pending.is_empty() {
        return;
    }
    let mut wh = match observes_warehouse::connect(&config.warehouse) {
        Ok(wh) => wh,
        Err(e) => {
            tracing::warn!(error = %observes_runtime::chain(&e), "job runs not recorded in the warehouse yet");
            return;
        }
    };
    for run in pending {
        match runs::record(wh.as_mut(), run) {
            Ok(()) => {
                run.recorded = true;
                if let Err(e) = save(run) {
                    tracing::warn!(error = %observes_runtime::chain(e.as_ref()), run = %run.id, "saving the run");
                }
            }
            Err(e) => {
                tracing::warn!(error = %observes_runtime::chain(&e), run = %run.id, "recording the run")
            }
        }
    }
}

pub(crate) fn job_run(config: &Path, name: &str) -> Result<()> {
    let config = Config::load(config)?;
    let job = config.catalogue.job(name).map_err(anyhow::Error::msg)?;
    let run = observes_scheduler::queue::run_here(job, &config.base());
    let mut runs = [run];
    record_runs(&config, &mut runs, &|_| Ok(()));
    let run = &runs[0];
    match run.status {
        RunStatus::Succeeded => Ok(()),
        _ => bail!(
            "job {name}: {}",
            run.status_reason.as_deref().unwrap_or("failed")
        ),
    }
}

pub(crate) fn schedule_next(
    config: &Path,
    name: Option<&str>,
    count: usize,
    after: Option<DateTime<Utc>>,
) -> Result<()> {
    let config = Config::load(config)?;
    let tz = config.catalogue.timezone;
    let jobs: Vec<_> = match name {
        Some(n) => vec![config.catalogue.job(n).map_err(anyhow::Error::msg)?],
        None => config.catalogue.jobs.values().collect(),
    };
    let mut out = std::io::stdout().lock();
    for job in jobs {
        let Some(cron) = &job.schedule else {
            writeln!(out, "{}: not scheduled", job.name)?;
            continue;
        };
        writeln!(out, "{} {cron} ({tz}):", job.name)?;
        let mut at = after.unwrap_or_else(Utc::now);
        for _ in 0..count {
            let Some(next) = cron.next_after(at, tz) else {
                writeln!(out, "  (no more)")?;
                break;
            };
            writeln!(out, "  {}", next.with_timezone(&tz).to_rfc3339())?;
            at = next;
        }
    }
    Ok(())
}

pub(crate) fn scheduler_tick(
    config: &Path,
    dry_run: bool,
    now: Option<DateTime<Utc>>,
) -> Result<()> {
    let config = Config::load(config)?;
    let now = now.unwrap_or_else(Utc::now);
    let store = StateStore::open(&config.state)?;
    let rt = runtime()?;
    let mut out = std::io::stdout().lock();
    if dry_run {
        for s in rt.block_on(tick::dry_run(&config.catalogue, &store, now))? {
            writeln!(out, "would submit {}", s.key)?;
        }
        return Ok(());
    }
    let mut queue: Box<dyn tick::Submit> = match config.queue.backend.as_str() {
        "aws-batch" => Box::new(observes_scheduler::batch::BatchQueue::connect(
            config.queue.batch(),
        )?),
        _ => Box::new(local_queue(&config)?),
    };
    match rt.block_on(tick::tick(
        &config.catalogue,
        &store,
        queue.as_mut(),
        &config.base(),
        now,
    ))? {
        None => writeln!(out, "another tick is running; nothing done")?,
        Some(submitted) => {
            for s in &submitted {
                writeln!(out, "submitted {}", s.key)?;
            }
            writeln!(out, "{} runs submitted", submitted.len())?;
        }
    }
    drop(queue);
    if config.queue.backend == "aws-batch" {
        // Batch runs the jobs; their outcomes reach _observes_job_runs from here.
        let batch = observes_scheduler::batch::BatchQueue::connect(config.queue.batch())?;
        let mut recent = batch.recent(now - chrono::Duration::days(1))?;
        record_runs(&config, &mut recent, &|_| Ok(()));
    }
    Ok(())
}

/// The daemon: tick, run what is queued (AWS Batch runs its own), sleep, again.
pub(crate) fn scheduler_run(config_path: &Path, interval: std::time::Duration) -> Result<()> {
    loop {
        scheduler_tick(config_path, false, None)?;
        if Config::load(config_path)?.queue.backend == "local" {
            queue_work(config_path, None)?;
        }
        std::thread::sleep(interval);
    }
}

pub(crate) fn queue_work(config: &Path, concurrency: Option<usize>) -> Result<()> {
    let config = Config::load(config)?;
    let queue = local_queue(&config)?;
    let n = queue.work(
        concurrency.unwrap_or(config.queue.concurrency),
        &|run: &Run| {
            tracing::info!(run = %run.id, status = ?run.status, "run finished");
        },
    )?;
    let mut runs = queue.list()?;
    record_runs(&config, &mut runs, &|r| Ok(queue.save(r)?));
    tracing::info!(runs = n, "queue drained");
    Ok(())
}

pub(crate) fn queue_list(config: &Path, as_json: bool) -> Result<()> {
    let config = Config::load(config)?;
    let runs = local_queue(&config)?.list()?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string(&runs)?)?;
        return Ok(());
    }
    for r in &runs {
        let status = serde_json::to_value(r.status)?;
        writeln!(
            out,
            "{:<48} {:<10} {:<30} attempts {}",
            r.id,
            status.as_str().unwrap_or(""),
            r.job,
            r.attempts.len()
        )?;
    }
    Ok(())
}

pub(crate) fn queue_show(config: &Path, id: &str) -> Result<()> {
    let config = Config::load(config)?;
    let run = local_queue(&config)?.get(id)?;
    println!("{}", serde_json::to_string_pretty(&run)?);
    Ok(())
}

pub(crate) fn queue_logs(config: &Path, id: &str, attempt: Option<u32>) -> Result<()> {
    let config = Config::load(config)?;
    let queue = local_queue(&config)?;
    let run = queue.get(id)?;
    let numbers: Vec<u32> = match attempt {
        Some(n) => vec![n],
        None => run.attempts.iter().map(|a| a.number).collect(),
    };
    let mut out = std::io::stdout().lock();
    for n in numbers {
        let path = queue.log_path(id, n);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("attempt {n} of {id}: {}", path.display()))?;
        writeln!(out, "== attempt {n}")?;
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}

pub(crate) fn queue_cancel(config: &Path, id: &str) -> Result<()> {
    let config = Config::load(config)?;
    let run = local_queue(&config)?.cancel(id)?;
    let what = match run.status {
        RunStatus::Cancelled => "cancelled",
        s if s.finished() => "already finished",
        _ => "cancel requested (its worker stops it)",
    };
    println!("{id}: {what}");
    Ok(())
}

pub(crate) fn batch_stability(
    config: &Path,
    hours: f64,
    as_json: bool,
    webhook: Option<&str>,
) -> Result<()> {
    let config = Config::load(config)?;
    let since = Utc::now() - chrono::Duration::milliseconds((hours * 3_600_000.0) as i64);
    let runs = match config.queue.backend.as_str() {
        "aws-batch" => observes_scheduler::batch::BatchQueue::connect(config.queue.batch())
            .and_then(|q| q.recent(since))?,
        _ => local_queue(&config)?.list()?,
    };
    let report = stability::report(&runs, since);
    let json = serde_json::to_string(&report)?;
    if as_json {
        println!("{json}");
    } else {
        print!("{}", stability::render(&report));
    }
    if let Some(url) = webhook {
        crate::post_to_webhook(url, json)?;
    }
    if report.failed() > 0 {
        bail!("{} runs failed in the last {hours} hours", report.failed());
    }
    Ok(())
}
