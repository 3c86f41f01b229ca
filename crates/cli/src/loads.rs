//! `observes run …` (a pipeline, or the demo) and `observes target …` (Singer on stdin).

use std::io::Write;

use anyhow::{Context, Result};
use observes_app::{demo, run_pipeline, Config};
use observes_load::{LoadConfig, Loader};
use observes_pipeline::MessageStream;
use observes_singer::{Message, MessageWriter};
use serde_json::{json, Value};

/// `observes run NAME`.
pub(crate) fn run(
    name: &str,
    config: &std::path::Path,
    dir: &std::path::Path,
    json: bool,
) -> Result<()> {
    if name == "demo" && !config_has_pipeline(config, "demo") {
        return run_demo(dir, json);
    }
    let cfg = Config::load(config)?;
    match run_pipeline(&cfg, name) {
        Ok(summary) => print_run(&summary, json, &[]),
        // What was loaded is committed: its summary first, then what was left out.
        Err(observes_app::AppError::Run(observes_pipeline::RunError::Incomplete {
            summary,
            not_loaded,
        })) => {
            print_run(&summary, json, &not_loaded)?;
            if !json {
                let mut err = std::io::stderr().lock();
                for n in &not_loaded {
                    writeln!(err, "not loaded: {}: {}", n.stream, n.reason)?;
                }
            }
            anyhow::bail!(
                "pipeline {name:?}: {} of its streams not loaded ({})",
                not_loaded.len(),
                not_loaded
                    .iter()
                    .map(|n| n.stream.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("pipeline {name:?} failed"))),
    }
}

pub(crate) fn config_has_pipeline(path: &std::path::Path, name: &str) -> bool {
    Config::load(path).is_ok_and(|c| c.pipelines.contains_key(name))
}

pub(crate) fn print_run(
    summary: &observes_pipeline::RunSummary,
    as_json: bool,
    not_loaded: &[observes_sources::NotLoaded],
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        let streams: serde_json::Map<String, Value> = summary
            .load
            .streams
            .iter()
            .map(|(k, v)| (k.clone(), json!({"rows": v.rows, "rejected": v.rejected})))
            .collect();
        writeln!(
            out,
            "{}",
            json!({
                "pipeline": summary.pipeline,
                "load_id": summary.load.load_id,
                "streams": streams,
                "commits": summary.load.commits,
                "state": summary.load.state,
                "seconds": summary.elapsed.as_secs_f64(),
                "not_loaded": not_loaded,
                "notices": summary.notices,
            })
        )?;
        return Ok(());
    }
    let rows: u64 = summary.load.streams.values().map(|s| s.rows).sum();
    let rejected: u64 = summary.load.streams.values().map(|s| s.rejected).sum();
    writeln!(
        out,
        "{}: load {} committed {rows} records in {} streams ({rejected} rejected, {} commits) in {:.2}s",
        summary.pipeline,
        summary.load.load_id,
        summary.load.streams.len(),
        summary.load.commits,
        summary.elapsed.as_secs_f64()
    )?;
    for notice in &summary.notices {
        writeln!(out, "note: {}: {}", notice.stream, notice.message)?;
    }
    Ok(())
}

pub(crate) fn run_demo(dir: &std::path::Path, as_json: bool) -> Result<()> {
    let summary = demo::run_demo(dir).with_context(|| format!("demo in {}", dir.display()))?;
    for run in &summary.runs {
        print_run(run, as_json, &[])?;
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        let tables: Vec<Value> = summary
            .tables
            .iter()
            .map(|t| json!({"schema": t.schema, "table": t.table, "rows": t.rows}))
            .collect();
        writeln!(
            out,
            "{}",
            json!({"tables": tables, "mirror": summary.mirror,
                   "timedoctor_backup": summary.timedoctor_backup,
                   "zoho_prepare": summary.zoho_prepare, "bills": summary.bills})
        )?;
        return Ok(());
    }
    if let Some(mirror) = &summary.mirror {
        use observes_jobs::mirror::Outcome;
        writeln!(
            out,
            "\nMirror: {} published, {} unchanged, {} failed (in {})",
            mirror.count(Outcome::Published),
            mirror.count(Outcome::Unchanged),
            mirror.count(Outcome::Failed),
            summary.dir.join("storage/mirror").display()
        )?;
    }
    if let Some(backup) = &summary.timedoctor_backup {
        use observes_sources::timedoctor::backup::Backed;
        for m in &backup.months {
            let rows = match &m.backed {
                Backed::Published { manifest } => format!("{} rows", manifest.rows),
                Backed::Kept { manifest, .. } => format!("{} rows (kept)", manifest.rows),
            };
            writeln!(
                out,
                "Time Doctor backup: {} {}, {rows} (in {})",
                m.stream, m.month, backup.backup
            )?;
        }
    }
    if let Some(prepare) = &summary.zoho_prepare {
        writeln!(
            out,
            "Zoho prepare: bulk read exports of {} modules (in {})",
            prepare.modules.len(),
            prepare.jobs
        )?;
    }
    if let Some(bills) = &summary.bills {
        writeln!(out, "Bills for {}:", bills.month)?;
        for g in &bills.groups {
            writeln!(out, "  {:<40} {:>3} active authors", g.key, g.actors)?;
        }
    }
    writeln!(
        out,
        "\nTables in {}:",
        summary.dir.join("warehouse.duckdb").display()
    )?;
    // Empty tables (quarantine, child tables of fields the demo data leaves empty) would
    // bury the ones to look at; --json lists every table.
    let (filled, empty): (Vec<_>, Vec<_>) = summary.tables.iter().partition(|t| t.rows > 0);
    let width = filled
        .iter()
        .map(|t| t.schema.len() + 1 + t.table.len())
        .max()
        .unwrap_or(0)
        .max(40);
    for t in &filled {
        writeln!(
            out,
            "  {:<width$} {:>8} rows",
            format!("{}.{}", t.schema, t.table),
            t.rows
        )?;
    }
    if !empty.is_empty() {
        writeln!(
            out,
            "  and {} empty tables (_observes_rejects, child tables of fields the demo data leaves empty; --json lists them)",
            empty.len()
        )?;
    }
    writeln!(
        out,
        "\nRun it again to see incremental loads; edit {} to change the pipelines.",
        summary.config.display()
    )?;
    Ok(())
}

pub(crate) fn target(warehouse: &str, config: LoadConfig) -> Result<()> {
    let mut wh = observes_warehouse::connect_pipelined(warehouse)?;
    let mut loader = Loader::begin(wh.as_mut(), config)?;
    let mut stream = MessageStream::from_reader(std::io::stdin());
    let mut out = MessageWriter::new(std::io::stdout());
    let echo = |out: &mut MessageWriter<std::io::Stdout>,
                state: &Value|
     -> Result<(), observes_pipeline::RunError> {
        let message = Message::State(observes_singer::StateMessage {
            value: state.clone(),
        });
        // A closed stdout must not undo a committed load; the state is in the warehouse.
        let _ = out.write(&message).and_then(|_| out.flush());
        Ok(())
    };
    if let Err(e) = loader.drive(&mut stream, |s| echo(&mut out, s)) {
        if let Some(state) = loader.abort(&e) {
            echo(&mut out, &state)?;
        }
        return Err(e.into());
    }
    let summary = loader.finish()?;
    if let Some(state) = &summary.unreported_state {
        echo(&mut out, state)?;
    }
    let rows: u64 = summary.streams.values().map(|s| s.rows).sum();
    tracing::info!(load_id = summary.load_id, rows, "target finished");
    Ok(())
}
