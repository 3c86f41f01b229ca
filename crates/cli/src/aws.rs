//! `observes batch definitions` and `observes aws policy`: what deploying on AWS needs.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use observes_app::Config;
use observes_scheduler::batch::BatchQueue;
use observes_scheduler::definitions;

/// `observes batch definitions [--apply] [--json]`.
pub(crate) fn batch_definitions(config: &Path, apply: bool, json: bool) -> Result<()> {
    let config = Config::load(config)?;
    let settings = config.queue.batch();
    let defs = definitions::definitions(&config.catalogue, &settings, config.url.as_deref())
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}: the job definitions", config.path.display()))?;
    if config.url.is_none() {
        tracing::warn!(
            config = %config.path.display(),
            "the config was not read from S3, so the definitions do not tell their containers where it is: \
             run this with --config s3://…/observes.toml, or put the config in the image"
        );
    }
    let mut out = std::io::stdout().lock();
    if !apply {
        let all: Vec<&serde_json::Value> = defs.iter().map(|d| &d.request).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        return Ok(());
    }
    let queue = BatchQueue::connect(settings)?;
    let applied = definitions::apply(&queue, &defs)?;
    for a in &applied {
        if json {
            writeln!(out, "{}", serde_json::to_string(a)?)?;
        } else {
            let what = if a.registered {
                "registered"
            } else {
                "unchanged"
            };
            writeln!(out, "{what} {}:{} ({})", a.name, a.revision, a.job)?;
        }
    }
    if !json {
        let registered = applied.iter().filter(|a| a.registered).count();
        writeln!(
            out,
            "{registered} registered, {} unchanged",
            applied.len() - registered
        )?;
    }
    Ok(())
}

/// `observes aws policy [--account ID]`.
pub(crate) fn policy(config: &Path, account: Option<&str>) -> Result<()> {
    let config = Config::load(config)?;
    let policies = observes_app::policy::policies(&config, account);
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&policies)?
    )?;
    Ok(())
}
