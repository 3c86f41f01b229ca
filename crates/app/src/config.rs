//! `observes.toml`: the warehouse, the state store and the named pipelines.
//!
//! ```toml
//! warehouse = "duckdb://warehouse.duckdb"   # relative paths are relative to this file
//! state = "state"                           # a folder, or s3://bucket/prefix
//! storage = "storage"                       # what jobs publish: a folder, or s3://bucket/prefix
//!
//! [pipelines.gitlab]
//! source = "singer-file"                    # or "command", "synthetic"
//! path = "data/gitlab.singer"
//! schema = "gitlab"
//! write = "merge"                           # append | merge | replace
//! on_invalid = "fail"                       # fail | quarantine
//! batch_rows = 50000                        # rows buffered per stream between sends (default: the warehouse's)
//! commit_records = 491520                   # a STATE commits once this many records wait (default: the warehouse's),
//! commit_bytes = "256MiB"                   #   or this many bytes of rows (default: the warehouse's),
//! commit_seconds = 30                       #   or this long after the last commit (0: every STATE)
//! on_schema_change = "fail"                 # fail | variant (new type, new column)
//! on_missing_key = "append"                 # merge of a keyless stream: append | fail
//! untyped = "json"                          # objects without properties: json | infer
//!
//! [pipelines.gitlab_api]
//! source = "gitlab"                         # any built-in source: `observes tap --help` lists them
//! config = "gitlab.toml"                    # the source's settings, as `observes tap` reads
//! schema = "gitlab"
//! write = "merge"
//! # or inline: [pipelines.gitlab_api.settings] with the same keys as gitlab.toml
//!
//! [pipelines.code]
//! source = "code"                           # git repositories; settings: root, groups, ignore
//! config = "code.toml"
//! schema = "code"
//! write = "merge"
//!
//! [bills]                                   # observes job compute-bills
//! [bills.groups]                            # group = organization
//! web = "acme"
//!
//! [mirror]                                  # observes job mirror
//! work_dir = "mirror"
//! [mirror.groups.acme]
//! web = { url = "https://gitlab.com/acme/web.git", credential = "acme" }
//!
//! [scheduler]
//! timezone = "America/Bogota"
//! [queue]
//! backend = "local"                         # or "aws-batch": job_queue, image (a job definition per job:
//!                                           #   `observes batch definitions`) or job_definition, region,
//!                                           #   execution_role_arn, job_role_arn, log_group, endpoint
//! dir = "queue"
//! concurrency = 2
//! [jobs."/observes/etl/checkly"]            # the job catalogue
//! command = ["observes", "run", "checkly"]
//! schedule = "cron(0 * * * ? *)"
//! size = "nano"
//!
//! [dashboards.access]                       # who may open which dashboard (off | token | basic | proxy)
//! mode = "basic"
//! users_file = "secrets/dashboard-users.toml"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use observes_pipeline::config::RawPipeline;
use observes_pipeline::{Destination, PipelineConfig};
use serde::Deserialize;

/// What is wrong with an `observes.toml`; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where (line and column, or section) and what is wrong.
        message: String,
    },
    /// The folder relative paths start from could not be resolved.
    #[error("{path}: resolving its folder")]
    Folder {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A config in S3 could not be fetched, or its folder copied.
    #[error("{url}: {message}")]
    Remote {
        /// The config's URL.
        url: String,
        /// What failed.
        message: String,
        /// Why.
        #[source]
        source: Option<Box<observes_state::StateError>>,
    },
    /// A pipeline the file does not declare.
    #[error("{path}: no pipeline named {name:?} (known: {known})")]
    UnknownPipeline {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The names it declares.
        known: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    warehouse: String,
    #[serde(default = "default_state")]
    state: String,
    #[serde(default = "default_storage")]
    storage: String,
    #[serde(default)]
    pipelines: BTreeMap<String, RawPipeline>,
    #[serde(default)]
    bills: observes_jobs::bills::BillsConfig,
    mirror: Option<observes_jobs::mirror::MirrorConfig>,
    #[serde(default)]
    scheduler: observes_scheduler::catalogue::SchedulerSettings,
    #[serde(default)]
    queue: observes_scheduler::QueueSettings,
    #[serde(default)]
    sizes: BTreeMap<String, observes_scheduler::catalogue::Size>,
    #[serde(default)]
    jobs: BTreeMap<String, observes_scheduler::catalogue::RawJob>,
    #[serde(default)]
    dashboards: DashboardSettings,
}

/// `[dashboards]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardSettings {
    #[serde(default)]
    access: observes_dashboards::access::AccessConfig,
}

fn default_storage() -> String {
    "storage".into()
}

fn default_state() -> String {
    "state".into()
}

/// A loaded `observes.toml`. Every relative path in it (warehouse, state, storage, the
/// mirror's URLs and `work_dir`, the code source's `root` and `groups`, `singer-file`
/// paths, settings files, the queue dir) is resolved once, here, against the file's folder
/// made absolute: no later code sees a relative path, whatever its working directory (jobs
/// run `git` and taps in other folders).
#[derive(Debug, Clone)]
pub struct Config {
    /// The file as it was named (for messages): a path, or its `s3://` URL.
    pub path: PathBuf,
    /// The file's `s3://` URL, when it was read from S3 (its folder's local copy is `dir`).
    pub url: Option<String>,
    /// The file's folder, absolute.
    pub dir: PathBuf,
    /// The warehouse's URL.
    pub warehouse: String,
    /// The state store's URL (a folder, or `s3://bucket/prefix`).
    pub state: String,
    /// Object storage for what jobs publish (bills, mirrored repositories): a folder or
    /// `s3://bucket/prefix`.
    pub storage: String,
    /// `[pipelines.NAME]`, by name.
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// `[bills]`: compute-bills' settings.
    pub bills: observes_jobs::bills::BillsConfig,
    /// `[mirror]`: the repositories to mirror.
    pub mirror: Option<observes_jobs::mirror::MirrorConfig>,
    /// `[jobs."/name"]`, `[sizes]` and `[scheduler]`: the job catalogue.
    pub catalogue: observes_scheduler::Catalogue,
    /// `[queue]`, with its folder resolved.
    pub queue: observes_scheduler::QueueSettings,
    /// `[dashboards.access]`: who may open which dashboard, its users file resolved.
    pub dashboard_access: observes_dashboards::access::AccessConfig,
}

impl Config {
    /// The folder of this file, absolute: where jobs run and relative paths start.
    pub fn base(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Where this file's pipelines load and keep their state.
    pub fn destination(&self) -> Destination {
        Destination {
            warehouse: self.warehouse.clone(),
            state: self.state.clone(),
        }
    }
}

/// The absolute folder of a file, from the working directory if the path is relative.
/// Lexical (no symlinks resolved, the file need not exist), as a shell user reads it.
pub fn absolute_dir(file: &Path) -> std::io::Result<PathBuf> {
    let file = std::path::absolute(file)?;
    Ok(file.parent().unwrap_or(Path::new("/")).to_path_buf())
}

/// A folder that may live in S3 (state, storage): relative ones under the config's S3
/// folder when it has one, else as [`resolve_url`].
fn resolve_folder(base: &Path, remote: Option<&str>, url: &str) -> String {
    match remote {
        Some(remote) if !url.contains("://") && !Path::new(url).is_absolute() => {
            let relative = url.trim_start_matches("./").trim_end_matches('/');
            format!("{remote}/{relative}")
        }
        _ => resolve_url(base, url),
    }
}

/// `duckdb://relative.duckdb` and plain state folders are relative to the config file.
fn resolve_url(base: &Path, url: &str) -> String {
    if let Some(path) = url.strip_prefix("duckdb://") {
        if path != ":memory:" && !Path::new(path).is_absolute() {
            return format!("duckdb://{}", base.join(path).display());
        }
        return url.to_string();
    }
    if url.contains("://") || Path::new(url).is_absolute() {
        return url.to_string();
    }
    base.join(url).display().to_string()
}

/// A TOML error as one line with its position (the crate's own text spans several).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

impl Config {
    /// Reads and checks the file at `path`: a local file, or `s3://bucket/prefix/file`
    /// (whose folder is copied locally first; see the `remote` module).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if let Some(url) = crate::remote::s3_url(path) {
            let fetched = crate::remote::fetch(url)?;
            let mut config = Config::parse_in(
                path,
                &fetched.file,
                Some(&fetched.remote_dir),
                &fetched.text,
            )?;
            config.url = Some(url.to_string());
            return Ok(config);
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Checks `text`, the file at `path` (which relative paths in it start from).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_in(path, path, None, text)
    }

    /// Checks `text`, named `path` in messages, whose relative paths start from the folder
    /// of `local`, and whose relative state and storage are under `remote` if given.
    fn parse_in(
        path: &Path,
        local: &Path,
        remote: Option<&str>,
        text: &str,
    ) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(toml_error(text, &e)))?;
        let base = absolute_dir(local).map_err(|source| ConfigError::Folder {
            path: path.to_path_buf(),
            source,
        })?;
        let mut pipelines = BTreeMap::new();
        for (name, p) in raw.pipelines {
            let pipeline = PipelineConfig::parse(&name, p, &base)
                .map_err(|e| invalid(format!("pipeline {name:?}: {e}")))?;
            pipelines.insert(name, pipeline);
        }
        let catalogue = observes_scheduler::Catalogue::build(&raw.scheduler, &raw.sizes, &raw.jobs)
            .map_err(invalid)?;
        if raw.queue.backend == "aws-batch" {
            observes_scheduler::definitions::check_secrets(&catalogue).map_err(invalid)?;
            if !raw.queue.job_definition.is_empty() && raw.queue.image.is_some() {
                return Err(invalid(
                    "[queue] give either image (a job definition per job) or job_definition (one for every job), not both".into(),
                ));
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            url: None,
            dir: base.clone(),
            warehouse: resolve_url(&base, &raw.warehouse),
            state: resolve_folder(&base, remote, &raw.state),
            storage: resolve_folder(&base, remote, &raw.storage),
            pipelines,
            bills: raw.bills,
            mirror: raw.mirror.map(|m| m.resolve(&base)),
            catalogue,
            dashboard_access: raw.dashboards.access.resolve(&base),
            queue: match raw.queue.backend.as_str() {
                "local" | "aws-batch" => observes_scheduler::QueueSettings {
                    dir: base.join(&raw.queue.dir),
                    ..raw.queue
                },
                other => {
                    return Err(invalid(format!(
                        "[queue] backend {other:?} is unknown (expected local or aws-batch)"
                    )))
                }
            },
        })
    }

    /// The pipeline `name`, or an error listing the ones there are.
    pub fn pipeline(&self, name: &str) -> Result<&PipelineConfig, ConfigError> {
        self.pipelines
            .get(name)
            .ok_or_else(|| ConfigError::UnknownPipeline {
                path: self.path.clone(),
                name: name.to_string(),
                known: self
                    .pipelines
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use observes_load::{OnInvalid, WriteMode};
    use observes_pipeline::SourceConfig;

    #[test]
    fn parses_and_resolves_paths() {
        let text = r#"
warehouse = "duckdb://wh.duckdb"
[pipelines.a]
source = "singer-file"
path = "in.singer"
schema = "raw"
write = "merge"
on_invalid = "quarantine"
[pipelines.b]
source = "synthetic"
records = 10
schema = "ci"
"#;
        let c = Config::parse(Path::new("/x/observes.toml"), text).unwrap();
        assert_eq!(c.warehouse, "duckdb:///x/wh.duckdb");
        assert_eq!(c.state, "/x/state");
        let a = c.pipeline("a").unwrap();
        assert_eq!(a.write_mode, WriteMode::Merge);
        assert_eq!(a.on_invalid, OnInvalid::Quarantine);
        assert!(
            matches!(&a.source, SourceConfig::SingerFile { path } if path == Path::new("/x/in.singer")),
            "{:?}",
            a.source
        );
        assert_eq!(c.pipeline("b").unwrap().write_mode, WriteMode::Append);
        let err = c.pipeline("zz").unwrap_err().to_string();
        assert_eq!(
            err,
            "/x/observes.toml: no pipeline named \"zz\" (known: a, b)"
        );
    }

    #[test]
    fn bad_config_names_the_file_and_problem() {
        let p = Path::new("o.toml");
        let err = Config::parse(p, "warehouse = 1").unwrap_err().to_string();
        assert_eq!(
            err,
            "o.toml: line 1, column 13: invalid type: integer `1`, expected a string"
        );
        let err = Config::parse(p, "warehouse = \"x\"\n[pipelines.a]\nsource = \"synthetic\"\nschema = \"s\"\nrecords = 1\npath = \"p\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "o.toml: pipeline \"a\": source \"synthetic\" takes no \"path\""
        );
        let err = Config::parse(p, "warehouse = \"x\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("o.toml: line 2, column 1: unknown field `bogus`"),
            "{err}"
        );
        let err = Config::parse(p, "warehouse = \"duckdb://x\"\n[pipelines.a]\nsource = \"singer-file\"\npath = \"x\"\nschema = \"s\"\nwrite = \"upsert\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "o.toml: pipeline \"a\": unknown write mode \"upsert\" (expected append, merge or replace)");
    }

    #[test]
    fn a_synthetic_pipeline_takes_a_shape_and_names_a_wrong_one() {
        let p = Path::new("o.toml");
        let config = |shape: &str| {
            format!("warehouse = \"x\"\n[pipelines.a]\nsource = \"synthetic\"\nschema = \"s\"\nrecords = 1\nshape = \"{shape}\"\n")
        };
        let c = Config::parse(p, &config("wide")).unwrap();
        assert!(
            matches!(&c.pipeline("a").unwrap().source, SourceConfig::Synthetic(s) if s.shape == observes_pipeline::sources::synthetic::Shape::Wide),
        );
        let err = Config::parse(p, &config("square")).unwrap_err().to_string();
        assert_eq!(
            err,
            "o.toml: pipeline \"a\": \"square\": the shape is narrow or wide"
        );
    }

    #[test]
    fn commit_bytes_is_a_number_or_a_size_and_a_wrong_one_is_named() {
        let p = Path::new("o.toml");
        let config = |bytes: &str| {
            format!("warehouse = \"x\"\n[pipelines.a]\nsource = \"synthetic\"\nschema = \"s\"\nrecords = 1\ncommit_bytes = {bytes}\n")
        };
        let bytes = |value: &str| {
            Config::parse(p, &config(value))
                .map(|c| c.pipeline("a").unwrap().commit.bytes)
                .map_err(|e| e.to_string())
        };
        assert_eq!(bytes("1000"), Ok(Some(1000)));
        assert_eq!(bytes("\"200KB\""), Ok(Some(200_000)));
        assert_eq!(bytes("\"256MiB\""), Ok(Some(256 << 20)));
        assert_eq!(bytes("\" 1 GiB \""), Ok(Some(1 << 30)));
        assert_eq!(
            bytes("\"lots\""),
            Err("o.toml: pipeline \"a\": commit_bytes: \"lots\" is not a size such as 268435456, 256MB or 1GiB".into())
        );
        assert_eq!(
            bytes("\"12PB\""),
            Err("o.toml: pipeline \"a\": commit_bytes: \"12PB\" is not a size such as 268435456, 256MB or 1GiB".into())
        );
        assert_eq!(
            bytes("0"),
            Err("o.toml: pipeline \"a\": commit_bytes must be more than 0 (commit_records = 0 commits every STATE)".into())
        );
        let unset = Config::parse(p, "warehouse = \"x\"\n[pipelines.a]\nsource = \"synthetic\"\nschema = \"s\"\nrecords = 1\n").unwrap();
        assert_eq!(unset.pipeline("a").unwrap().commit.bytes, None);
    }
}
