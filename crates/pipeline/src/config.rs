//! One pipeline as `observes.toml` declares it (`[pipelines.NAME]`): its source, schema,
//! write mode and policies. The rest of the file is the application's
//! (`observes_app::Config`), which hands each pipeline table here.

use std::path::{Path, PathBuf};

use observes_load::{OnInvalid, WriteMode};
use serde::Deserialize;

use crate::sources::SourceConfig;

/// A `[pipelines.NAME]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    source: String,
    schema: String,
    path: Option<PathBuf>,
    command: Option<Vec<String>>,
    records: Option<u64>,
    seed: Option<u64>,
    checkpoint_every: Option<u64>,
    /// The synthetic source's record shape (`narrow` or `wide`).
    shape: Option<String>,
    /// An API source's settings file (relative to this file).
    config: Option<PathBuf>,
    /// An API source's settings, inline.
    settings: Option<toml::Table>,
    #[serde(default = "default_write")]
    write: String,
    #[serde(default = "default_on_invalid")]
    on_invalid: String,
    batch_rows: Option<usize>,
    #[serde(default = "default_on_schema_change")]
    on_schema_change: String,
    #[serde(default)]
    on_missing_key: Option<String>,
    #[serde(default)]
    untyped: Option<String>,
    commit_records: Option<u64>,
    commit_bytes: Option<ByteSize>,
    commit_seconds: Option<f64>,
}

/// A size in a config file: a number of bytes, or a string such as `"256MB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    fn bytes(&self) -> Result<u64, String> {
        match self {
            ByteSize::Bytes(n) => Ok(*n),
            ByteSize::Text(text) => parse_size(text),
        }
    }
}

/// Parses a size: a number of bytes, optionally with a unit (`KB`, `MB`, `GB` of 1000,
/// `KiB`, `MiB`, `GiB` of 1024; `K`, `M` and `G` alone are binary, as in DuckDB).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size such as 268435456, 256MB or 1GiB");
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    number.checked_mul(factor).ok_or_else(bad)
}

fn default_on_schema_change() -> String {
    "fail".into()
}

fn default_write() -> String {
    "append".into()
}

fn default_on_invalid() -> String {
    "fail".into()
}

/// The commit policy a pipeline sets, over the defaults.
pub fn commit_policy(
    records: Option<u64>,
    bytes: Option<u64>,
    seconds: Option<f64>,
) -> Result<observes_load::CommitPolicy, String> {
    let defaults = observes_load::CommitPolicy::default();
    let interval = match seconds {
        None => defaults.interval,
        Some(s) if s.is_finite() && s >= 0.0 => std::time::Duration::from_secs_f64(s),
        Some(s) => return Err(format!("commit_seconds must be 0 or more, not {s}")),
    };
    if bytes == Some(0) {
        return Err(
            "commit_bytes must be more than 0 (commit_records = 0 commits every STATE)".into(),
        );
    }
    Ok(observes_load::CommitPolicy {
        records: records.or(defaults.records),
        bytes: bytes.or(defaults.bytes),
        interval,
    })
}

/// A pipeline as declared.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Its name: the key of its state and lock.
    pub name: String,
    /// Where its messages come from.
    pub source: SourceConfig,
    /// The warehouse schema its tables go into.
    pub schema: String,
    /// How rows are written.
    pub write_mode: WriteMode,
    /// What an invalid record does.
    pub on_invalid: OnInvalid,
    /// Rows buffered per stream before they go to the warehouse (not a commit).
    pub batch_rows: Option<usize>,
    /// What an incompatible type change does.
    pub on_schema_change: observes_model::SchemaChangePolicy,
    /// Under merge, a stream without key properties.
    pub on_missing_key: observes_load::OnMissingKey,
    /// Objects and arrays the SCHEMA leaves untyped.
    pub untyped: observes_load::Untyped,
    /// When a checkpoint commits.
    pub commit: observes_load::CommitPolicy,
}

impl PipelineConfig {
    /// Checks a pipeline table; `base` is the absolute folder its relative paths start
    /// from. The error says what is wrong in the table, for the caller to locate.
    pub fn parse(name: &str, p: RawPipeline, base: &Path) -> Result<PipelineConfig, String> {
        let write_mode = p.write.parse()?;
        let on_invalid = p.on_invalid.parse()?;
        let source = source_config(&p, base)?;
        Ok(PipelineConfig {
            name: name.to_string(),
            source: source.resolve(base),
            write_mode,
            on_invalid,
            batch_rows: p.batch_rows,
            on_schema_change: p.on_schema_change.parse()?,
            on_missing_key: match &p.on_missing_key {
                Some(policy) => policy.parse()?,
                None => observes_load::OnMissingKey::default(),
            },
            untyped: match &p.untyped {
                Some(policy) => policy.parse()?,
                // A REST definition without schemas: its columns come from the records.
                None if p.source == "rest" => observes_load::Untyped::Infer,
                None => observes_load::Untyped::default(),
            },
            commit: commit_policy(
                p.commit_records,
                p.commit_bytes
                    .as_ref()
                    .map(ByteSize::bytes)
                    .transpose()
                    .map_err(|e| format!("commit_bytes: {e}"))?,
                p.commit_seconds,
            )?,
            schema: p.schema,
        })
    }
}

/// A built-in source's settings: the `config` file or the inline `settings` table, and the
/// folder their relative paths start from (the file's, or this config's).
fn builtin_settings(
    p: &RawPipeline,
    base: &Path,
) -> Result<(observes_sources::Settings, PathBuf), String> {
    match (&p.config, &p.settings) {
        (Some(_), Some(_)) => Err("give either \"config\" or \"settings\", not both".into()),
        (Some(path), None) => {
            let path = base.join(path);
            let dir = path.parent().unwrap_or(base).to_path_buf();
            Ok((observes_sources::Settings::File(path), dir))
        }
        (None, Some(table)) => Ok((
            observes_sources::Settings::Table(toml::Value::Table(table.clone())),
            base.to_path_buf(),
        )),
        (None, None) => Err(format!(
            "source {:?} needs \"config\" (a settings file) or a \"settings\" table",
            p.source
        )),
    }
}

/// The source settings of a pipeline table, checked against its `source` kind.
fn source_config(p: &RawPipeline, base: &Path) -> Result<SourceConfig, String> {
    let stray = |allowed: &[&str]| -> Result<(), String> {
        let given = [
            ("path", p.path.is_some()),
            ("command", p.command.is_some()),
            ("records", p.records.is_some()),
            ("seed", p.seed.is_some()),
            ("checkpoint_every", p.checkpoint_every.is_some()),
            ("config", p.config.is_some()),
            ("settings", p.settings.is_some()),
        ];
        match given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            Some((k, _)) => Err(format!("source {:?} takes no {k:?}", p.source)),
            None => Ok(()),
        }
    };
    match p.source.as_str() {
        "singer-file" => {
            stray(&["path"])?;
            let path = p
                .path
                .clone()
                .ok_or("source \"singer-file\" needs a \"path\"")?;
            Ok(SourceConfig::SingerFile { path })
        }
        "command" => {
            stray(&["command"])?;
            let command = p.command.clone().filter(|c| !c.is_empty());
            let command = command.ok_or("source \"command\" needs a non-empty \"command\" list")?;
            Ok(SourceConfig::Command { command, dir: None })
        }
        "synthetic" => {
            stray(&["records", "seed", "checkpoint_every", "shape"])?;
            Ok(SourceConfig::Synthetic(
                crate::sources::synthetic::SyntheticConfig {
                    records: p.records.ok_or("source \"synthetic\" needs \"records\"")?,
                    seed: p.seed.unwrap_or(1),
                    checkpoint_every: p.checkpoint_every.unwrap_or(10_000),
                    shape: p.shape.as_deref().unwrap_or("narrow").parse()?,
                },
            ))
        }
        "rest" => {
            stray(&["config", "settings"])?;
            let (settings, dir) = builtin_settings(p, base)?;
            let config: observes_sources::rest::RestConfig =
                settings.parse().map_err(|e| observes_runtime::chain(&e).to_string())?;
            let source = observes_sources::rest::RestSource::new(config, &dir)
                .map_err(|e| observes_runtime::chain(&e).to_string())?;
            Ok(SourceConfig::Builtin(std::sync::Arc::new(source)))
        }
        name => match observes_sources::registry::find(name) {
            Some(kind) => {
                stray(&["config", "settings"])?;
                let (settings, dir) = builtin_settings(p, base)?;
                let source = (kind.build)(&settings, &dir).map_err(|e| observes_runtime::chain(&e).to_string())?;
                Ok(SourceConfig::Builtin(source.into()))
            }
            None => Err(format!(
                "unknown source {name:?} (expected singer-file, command, synthetic, rest or a built-in one: {})",
                observes_sources::registry::names()
            )),
        },
    }
}
