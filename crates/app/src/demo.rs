//! `observes run demo`: a self-contained folder with its own `observes.toml`, a DuckDB
//! warehouse and a state folder, loaded by every demo pipeline. Each API source's pipeline
//! reads an in-process fake of the API (every fake of [`observes_fakes::FAKES`] is started
//! for the run), through the settings file `data/<source>.toml` rewritten with the fake's
//! address.
//!
//! Git: three sample repositories are built once under `git/` (two groups); the mirror job
//! publishes them to `storage/mirror/` with local clones in `mirror/`, the `code`
//! pipeline reads those clones, and compute-bills writes this month's bills to
//! `storage/bills/`.

use std::path::{Path, PathBuf};

use observes_warehouse::SqlValue;

use observes_pipeline::{RunSummary, SourceConfig};

use crate::config::Config;
use crate::{run_pipeline, AppError};

/// A bundled Singer file of GitLab-shaped data (projects, pipelines, merge requests).
pub const GITLAB_SAMPLE: &str = include_str!("../demo/gitlab.singer");

/// The demo's `observes.toml`, written into its folder at the first run: the file
/// pipelines, jobs and settings here, and each registered source's own pipeline and job
/// (its `demo` in [`observes_sources::SOURCES`]), in the registry's order.
pub fn demo_config() -> String {
    let mut config = String::from(DEMO_HEAD);
    for kind in observes_sources::SOURCES {
        config.push('\n');
        config.push_str(&kind.demo_toml());
    }
    for (name, definition) in observes_sources::rest::SHIPPED {
        let about = definition
            .lines()
            .find_map(|l| l.strip_prefix("about = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or(name);
        config.push_str(&format!(
            "\n# {about}\n# From its REST definition (rest/{name}.toml) against a fake of it (settings in data/{name}.toml).\n\
             [pipelines.{name}]\nsource = \"rest\"\nconfig = \"data/{name}.toml\"\nschema = \"{name}\"\nwrite = \"merge\"\n\n\
             [jobs.\"/observes/etl/{name}\"]\ncommand = [\"observes\", \"run\", \"{name}\"]\nschedule = \"cron(0 5 * * ? *)\"\n\
             size = \"nano\"\nattempts = 2\ntimeout = \"1h\"\ntags = {{ source = \"rest\" }}\n"
        ));
    }
    config.push('\n');
    config.push_str(DEMO_REST);
    config
}

/// The start of the demo's `observes.toml`, before the sources' pipelines.
const DEMO_HEAD: &str = r#"# The demo's pipelines. Edit freely: `observes run NAME --config this-file` runs one.
warehouse = "duckdb://warehouse.duckdb"
state = "state"

# A bundled Singer file of GitLab-shaped data, merged by key.
[pipelines.gitlab_sample]
source = "singer-file"
path = "data/gitlab.singer"
schema = "gitlab"
write = "merge"
"#;

/// The rest of the demo's `observes.toml`, after the sources' pipelines.
const DEMO_REST: &str = r#"# CI jobs from the built-in generator (nested objects, arrays, nulls, timestamps).
[pipelines.ci_jobs]
source = "synthetic"
records = 5000
checkpoint_every = 1000
schema = "ci"
write = "merge"

# `observes job mirror`: clone or fetch, then publish a git bundle per repository to
# storage/mirror/<group>/<repository>/. Real remotes take a URL and a credential.
[mirror]
work_dir = "mirror"
[mirror.groups.acme]
web = { url = "git/acme/web" }
api = { url = "git/acme/api" }
[mirror.groups.beta]
tools = { url = "git/beta/tools" }

# `observes job compute-bills --month YYYY-MM`: group = organization.
[bills.groups]
acme = "Acme Corp"
beta = "Beta Labs"

# The job catalogue: `observes job list`, `observes schedule next`, `observes scheduler
# tick` (submits what fell due to the queue), `observes queue work` (runs it).
[scheduler]
timezone = "America/Bogota"

[queue]
backend = "local"
dir = "queue"
concurrency = 2

[jobs."/observes/etl/gitlab/sample"]
command = ["observes", "run", "gitlab_sample"]
schedule = "cron(30 4 ? * MON *)"
size = "nano"

[jobs."/observes/etl/ci-jobs"]
command = ["observes", "run", "ci_jobs"]
schedule = "*/30 * * * *"                 # the classic five fields work too
size = "nano"

[jobs."/observes/etl/code/compute-bills"]
command = ["observes", "job", "compute-bills", "--month", "previous"]
schedule = "cron(0 6 1 * ? *)"
size = "small"
attempts = 2

[jobs."/observes/etl/code/mirror"]
command = ["observes", "job", "mirror"]
schedule = "cron(0 1 * * ? *)"
size = "small"
timeout = "4h"

[jobs."/observes/job/cancel-ci-jobs"]
command = ["observes", "job", "cancel-ci-jobs", "--config", "data/gitlab.toml", "--older-than", "8h"]
schedule = "cron(0/30 * * * ? *)"
size = "nano"

[jobs."/observes/job/batch-stability"]
command = ["observes", "job", "batch-stability", "--hours", "1"]
schedule = "cron(5 * * * ? *)"
catch_up = "latest"
size = "nano"

# Thresholds of the dashboards' number panels, posted to $OBSERVES_ALERT_WEBHOOK (set it
# where the queue runs jobs) once per range; a weekly summary to $OBSERVES_SEND_WEBHOOK.
[jobs."/observes/dashboard/alert/ci_health"]
command = ["observes", "dashboard", "alert", "ci_health", "--link", "http://127.0.0.1:8787"]
schedule = "cron(15 * * * ? *)"
catch_up = "latest"
size = "nano"

[jobs."/observes/dashboard/alert/uptime"]
command = ["observes", "dashboard", "alert", "uptime", "--link", "http://127.0.0.1:8787"]
schedule = "cron(15 * * * ? *)"
catch_up = "latest"
size = "nano"

[jobs."/observes/dashboard/send/ci_health"]
command = ["observes", "dashboard", "send", "ci_health", "--link", "http://127.0.0.1:8787"]
schedule = "cron(0 8 ? * MON *)"
catch_up = "latest"
size = "nano"
"#;

/// The demo's sample repositories: (group, name, commits, seed).
const SAMPLE_REPOSITORIES: [(&str, &str, usize, u64); 3] = [
    ("acme", "web", 240, 1),
    ("acme", "api", 120, 2),
    ("beta", "tools", 60, 3),
];

/// One data table and its row count.
#[derive(Debug)]
pub struct TableCount {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub table: String,
    /// Rows in it.
    pub rows: i64,
}

/// What a demo run did.
#[derive(Debug)]
pub struct DemoSummary {
    /// The demo's folder.
    pub dir: PathBuf,
    /// Its `observes.toml`.
    pub config: PathBuf,
    /// Every pipeline's run, in name order.
    pub runs: Vec<RunSummary>,
    /// Every data table of the demo's schemas.
    pub tables: Vec<TableCount>,
    /// The mirror's report, when the config has a `[mirror]`.
    pub mirror: Option<observes_jobs::mirror::MirrorReport>,
    /// The last full month's Time Doctor backup, when a pipeline has one.
    pub timedoctor_backup: Option<observes_jobs::timedoctor::BackupReport>,
    /// The Zoho bulk exports started before the ETL, when a pipeline reads modules in bulk.
    pub zoho_prepare: Option<observes_jobs::zoho::PrepareReport>,
    /// This month's bills, when a pipeline reads the code source.
    pub bills: Option<observes_jobs::bills::BillsReport>,
}

/// Creates (or reuses) the demo folder and runs every pipeline of its config.
pub fn run_demo(dir: &Path) -> Result<DemoSummary, AppError> {
    let io = |source: std::io::Error| AppError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir.join("data")).map_err(io)?;
    let config_path = dir.join("observes.toml");
    if !config_path.exists() {
        std::fs::write(&config_path, demo_config()).map_err(io)?;
    }
    std::fs::write(dir.join("data/gitlab.singer"), GITLAB_SAMPLE).map_err(io)?;
    // Every registered fake, started for the run (they live as long as it does); its
    // source's settings go to data/<name>.toml, where the demo's pipelines read them.
    let mut fakes = Vec::new();
    for kind in observes_fakes::FAKES {
        let fake = (kind.start)(1, 0).map_err(io)?;
        let extra =
            observes_sources::registry::find(kind.name).map_or("", |k| k.demo.settings_extra);
        let settings = format!(
            "# Written by `observes run demo`, rewritten at every run.\n{extra}{}",
            fake.settings()
        );
        std::fs::write(dir.join(format!("data/{}.toml", kind.name)), settings).map_err(io)?;
        fakes.push(fake);
    }
    // Each shipped REST definition beside the config, and a fake of its API.
    std::fs::create_dir_all(dir.join("rest")).map_err(io)?;
    let mut rest_fakes = Vec::new();
    for (name, text) in observes_sources::rest::SHIPPED {
        let file = dir.join(format!("rest/{name}.toml"));
        std::fs::write(&file, text).map_err(io)?;
        let definition = observes_sources::rest::Definition::parse(&file, text)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let fake = observes_fakes::rest::FakeRest::start(definition, 1, 0, 3).map_err(io)?;
        let settings = format!(
            "# Written by `observes run demo`, rewritten at every run.\n{}",
            fake.settings(&format!("../rest/{name}.toml"))
        );
        std::fs::write(dir.join(format!("data/{name}.toml")), settings).map_err(io)?;
        rest_fakes.push(fake);
    }
    for (group, name, commits, seed) in SAMPLE_REPOSITORIES {
        let path = dir.join("git").join(group).join(name);
        if !path.exists() {
            let spec = observes_sources::code::sample::SampleRepo {
                commits,
                seed,
                ..Default::default()
            };
            observes_sources::code::sample::build(&path, &spec)
                .map_err(|e| io(std::io::Error::other(format!("{}: {e}", path.display()))))?;
        }
    }
    let config = Config::load(&config_path)?;
    let storage = observes_state::StateStore::open(&config.storage)?;
    // The mirror first: the code pipeline reads its clones.
    let mirror = match &config.mirror {
        Some(settings) => Some(observes_jobs::mirror::mirror(settings, &storage, None)?),
        None => None,
    };
    // The Time Doctor backup before its pipeline, which reads the backed-up months first.
    let mut timedoctor_backup = None;
    for pipeline in config.pipelines.values() {
        if let Some(settings) = pipeline
            .source
            .settings::<observes_sources::timedoctor::TimeDoctorConfig>()
            .filter(|s| s.backup.is_some())
        {
            timedoctor_backup = Some(observes_jobs::timedoctor::back_up(
                settings,
                &[observes_jobs::timedoctor::last_full_month()],
            )?);
        }
    }
    // Zoho's bulk exports before the pipeline that loads them, as the catalogue schedules.
    let mut zoho_prepare = None;
    for pipeline in config.pipelines.values() {
        if let Some(settings) = pipeline
            .source
            .settings::<observes_sources::zoho::ZohoConfig>()
            .filter(|s| !s.bulk_modules().is_empty())
        {
            zoho_prepare = Some(observes_jobs::zoho::prepare(settings, &[])?);
        }
    }
    let mut runs = Vec::new();
    for name in config.pipelines.keys() {
        runs.push(run_pipeline(&config, name)?);
    }
    let bills = if config
        .pipelines
        .values()
        .any(|p| matches!(&p.source, SourceConfig::Builtin(s) if s.name() == "code"))
    {
        let mut wh = observes_warehouse::connect(&config.warehouse)?;
        Some(observes_jobs::bills::compute_bills(
            wh.as_mut(),
            &storage,
            &config.bills,
            observes_jobs::bills::Month::now(),
        )?)
    } else {
        None
    };
    // The shipped dashboards, for `observes dashboard serve` (kept when edited).
    let dashboards = dir.join("dashboards");
    std::fs::create_dir_all(&dashboards).map_err(io)?;
    for (name, text) in observes_dashboards::SHIPPED {
        let path = dashboards.join(format!("{name}.toml"));
        if !path.exists() {
            std::fs::write(&path, text).map_err(io)?;
        }
    }
    // The pipelines the catalogue runs as jobs: their runs, for the freshness dashboard.
    let mut wh = observes_warehouse::connect(&config.warehouse)?;
    for run in &runs {
        let command = ["observes", "run", run.pipeline.as_str()];
        let Some(job) = config
            .catalogue
            .jobs
            .values()
            .find(|j| j.command == command)
        else {
            continue;
        };
        let mut record = observes_scheduler::Run::new(job, dir, None);
        let stopped = chrono::Utc::now();
        record.started_at =
            Some(stopped - chrono::Duration::from_std(run.elapsed).unwrap_or_default());
        record.stopped_at = Some(stopped);
        record.status = observes_scheduler::RunStatus::Succeeded;
        observes_scheduler::runs::record(wh.as_mut(), &record)?;
    }
    drop(wh);
    let tables = table_counts(&config)?;
    Ok(DemoSummary {
        dir: dir.to_path_buf(),
        config: config_path,
        runs,
        tables,
        mirror,
        timedoctor_backup,
        zoho_prepare,
        bills,
    })
}

/// Rows per data table of the config's schemas (staging and backup tables left out).
pub fn table_counts(config: &Config) -> Result<Vec<TableCount>, AppError> {
    let mut wh = observes_warehouse::connect(&config.warehouse)?;
    let mut schemas: Vec<&str> = config
        .pipelines
        .values()
        .map(|p| p.schema.as_str())
        .collect();
    schemas.sort();
    schemas.dedup();
    let mut out = Vec::new();
    for schema in schemas {
        let tables = wh.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
            &[schema.into()],
        )?;
        for row in tables {
            let Some(table) = row.first().and_then(SqlValue::as_str) else {
                continue;
            };
            if table.contains("__observes_") {
                continue;
            }
            let count = wh.query(
                &format!(
                    "SELECT COUNT(*) FROM {}",
                    observes_warehouse::sql::qualified(schema, table)
                ),
                &[],
            )?;
            out.push(TableCount {
                schema: schema.to_string(),
                table: table.to_string(),
                rows: count
                    .first()
                    .and_then(|r| r.first())
                    .and_then(SqlValue::as_i64)
                    .unwrap_or(0),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use observes_sources::{registry, Settings, SOURCES};

    /// What makes a source whole: a demo pipeline, and for an API its fake, whose settings
    /// the source reads.
    #[test]
    fn every_registered_source_has_a_demo_pipeline_and_every_api_a_fake() {
        let demo: toml::Table = toml::from_str(&demo_config()).unwrap();
        let demo_sources: Vec<&str> = demo["pipelines"]
            .as_table()
            .unwrap()
            .values()
            .filter_map(|p| p["source"].as_str())
            .collect();
        for kind in SOURCES {
            assert!(
                demo_sources.contains(&kind.name),
                "no demo pipeline reads {}",
                kind.name
            );
            assert_eq!(
                observes_fakes::find(kind.name).is_some(),
                kind.reads_api,
                "{}: an API source has a fake of its name, and only it",
                kind.name
            );
        }
        for fake in observes_fakes::FAKES {
            let kind = registry::find(fake.name).expect("a fake of a registered source");
            let running = (fake.start)(1, 0).unwrap();
            let settings: toml::Value = toml::from_str(&running.settings()).unwrap();
            let source = (kind.build)(&Settings::Table(settings), Path::new("/")).unwrap();
            assert_eq!(source.name(), fake.name);
            assert!(!running.describe().is_empty());
        }
    }
}
