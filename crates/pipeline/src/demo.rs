//! `observes run demo`: a self-contained folder with its own `observes.toml`, a DuckDB
//! warehouse and a state folder, loaded by every demo pipeline. The GitLab and Checkly
//! pipelines read in-process fakes of those APIs, started for the run; their settings
//! files (`data/gitlab.toml`, `data/checkly.toml`) are rewritten with the fakes' addresses.

use std::path::{Path, PathBuf};

use observes_fakes::checkly::{ChecklyOptions, FakeCheckly};
use observes_fakes::gitlab::{FakeGitlab, GitlabOptions};
use observes_warehouse::SqlValue;

use crate::config::Config;
use crate::run::{run_pipeline, RunError, RunSummary};

/// A bundled Singer file of GitLab-shaped data (projects, pipelines, merge requests).
pub const GITLAB_SAMPLE: &str = include_str!("../demo/gitlab.singer");

pub const DEMO_CONFIG: &str = r#"# The demo's pipelines. Edit freely: `observes run NAME --config this-file` runs one.
warehouse = "duckdb://warehouse.duckdb"
state = "state"

# A bundled Singer file of GitLab-shaped data, merged by key.
[pipelines.gitlab_sample]
source = "singer-file"
path = "data/gitlab.singer"
schema = "gitlab"
write = "merge"

# The GitLab source against a fake GitLab started for the run (settings in data/gitlab.toml).
[pipelines.gitlab_api]
source = "gitlab"
config = "data/gitlab.toml"
schema = "gitlab_api"
write = "merge"

# The Checkly source against a fake Checkly (settings in data/checkly.toml).
[pipelines.checkly]
source = "checkly"
config = "data/checkly.toml"
schema = "checkly"
write = "merge"

# CI jobs from the built-in generator (nested objects, arrays, nulls, timestamps).
[pipelines.ci_jobs]
source = "synthetic"
records = 5000
checkpoint_every = 1000
schema = "ci"
write = "merge"
"#;

#[derive(Debug)]
pub struct TableCount {
    pub schema: String,
    pub table: String,
    pub rows: i64,
}

#[derive(Debug)]
pub struct DemoSummary {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub runs: Vec<RunSummary>,
    pub tables: Vec<TableCount>,
}

/// Creates (or reuses) the demo folder and runs every pipeline of its config.
pub fn run_demo(dir: &Path) -> Result<DemoSummary, RunError> {
    let io = |source: std::io::Error| {
        RunError::Source(crate::sources::SourceError::Open {
            path: dir.to_path_buf(),
            source,
        })
    };
    std::fs::create_dir_all(dir.join("data")).map_err(io)?;
    let config_path = dir.join("observes.toml");
    if !config_path.exists() {
        std::fs::write(&config_path, DEMO_CONFIG).map_err(io)?;
    }
    std::fs::write(dir.join("data/gitlab.singer"), GITLAB_SAMPLE).map_err(io)?;
    // The fakes live as long as the demo runs.
    let gitlab = FakeGitlab::start(GitlabOptions::default()).map_err(io)?;
    let checkly = FakeCheckly::start(ChecklyOptions::default()).map_err(io)?;
    let projects: Vec<String> = gitlab
        .project_paths()
        .iter()
        .map(|p| format!("{p:?}"))
        .collect();
    let gitlab_settings = format!(
        "# Written by `observes run demo` for its fake GitLab; a real one needs its own URL and\n\
         # token_env = \"GITLAB_TOKEN\" instead of a token here.\n\
         api_url = \"{}\"\nprojects = [{}]\ntoken = \"{}\"\n",
        gitlab.api_url(),
        projects.join(", "),
        gitlab.token
    );
    std::fs::write(dir.join("data/gitlab.toml"), gitlab_settings).map_err(io)?;
    let checkly_settings = format!(
        "# Written by `observes run demo` for its fake Checkly; a real account needs\n\
         # account_id_env and api_key_env instead.\n\
         api_url = \"{}\"\naccount_id = \"{}\"\napi_key = \"{}\"\nresults_requests_per_second = 100\n",
        checkly.api_url(),
        checkly.account_id,
        checkly.api_key
    );
    std::fs::write(dir.join("data/checkly.toml"), checkly_settings).map_err(io)?;
    let config = Config::load(&config_path)?;
    let mut runs = Vec::new();
    for name in config.pipelines.keys() {
        runs.push(run_pipeline(&config, name)?);
    }
    let tables = table_counts(&config)?;
    Ok(DemoSummary {
        dir: dir.to_path_buf(),
        config: config_path,
        runs,
        tables,
    })
}

/// Rows per data table of the config's schemas (staging and backup tables left out).
pub fn table_counts(config: &Config) -> Result<Vec<TableCount>, RunError> {
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
