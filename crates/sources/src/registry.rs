//! Every built-in source, registered once: `observes tap NAME`, a pipeline's
//! `source = "NAME"`, `--help` and the demo all read [`SOURCES`] and never match on a
//! source's name. A new source is its folder, its fake, and one line in [`SOURCES`]
//! (`docs/adding-a-source.md`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use serde_json::Value;

use crate::{Sink, SourceError};

/// A source's run, until it has emitted everything new since its state.
pub type Running<'a> = Pin<Box<dyn Future<Output = Result<(), SourceError>> + 'a>>;

/// A source with its settings read: ready to run.
pub trait Source: std::fmt::Debug + Send + Sync {
    /// Its registered name.
    fn name(&self) -> &'static str;

    /// Extracts everything new since `state`, into `sink`.
    fn run<'a>(&'a self, state: Option<&'a Value>, sink: &'a mut dyn Sink) -> Running<'a>;

    /// Its settings, for a job that works with them (the Time Doctor backup reads its
    /// pipeline's): `downcast_ref` to the source's settings type.
    fn settings(&self) -> &dyn std::any::Any;
}

/// Where a source's settings are: a TOML file of their own, or a table inline in
/// `observes.toml`.
#[derive(Debug, Clone)]
pub enum Settings {
    /// A TOML file of their own (a path relative to `observes.toml`).
    File(PathBuf),
    /// A table inline in `observes.toml`.
    Table(toml::Value),
}

impl Settings {
    /// The settings as `T`; errors name the file and the position in it.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, SourceError> {
        match self {
            Settings::File(path) => crate::read_config(path),
            Settings::Table(table) => T::deserialize(table.clone())
                .map_err(|e| SourceError::Config(format!("settings: {}", e.message()))),
        }
    }
}

/// Reads a source's settings into a runnable source; the path is where their relative
/// paths start.
pub type Build = fn(&Settings, &Path) -> Result<Box<dyn Source>, SourceError>;

/// A registered source.
pub struct SourceKind {
    /// `source = "NAME"`, `observes tap NAME`.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// The main settings, for `observes tap NAME --help`.
    pub settings_help: &'static str,
    /// A complete settings example (TOML), checked by a test.
    pub example: &'static str,
    /// Its pipeline and job in the demo's `observes.toml`.
    pub demo: Demo,
    /// Whether it reads an HTTP API (and so has a fake of the same name in
    /// `observes-fakes`), or local data (git repositories).
    pub reads_api: bool,
    /// Reads the settings into a runnable source. `dir` is where their relative paths
    /// start: the folder of the file they came from.
    pub build: Build,
}

/// A source's pipeline in the demo (loaded with `write = "merge"` into the schema of the
/// pipeline's name) and its job in the demo's catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Demo {
    /// The comment above the pipeline: what it reads.
    pub about: &'static str,
    /// The pipeline's name, and its schema's.
    pub pipeline: &'static str,
    /// Its settings, a TOML inline table; `None`: `data/<name>.toml`, which the demo
    /// writes from the source's fake.
    pub settings: Option<&'static str>,
    /// The job's name in the catalogue.
    pub job: &'static str,
    /// When it runs.
    pub schedule: &'static str,
    /// Its size.
    pub size: &'static str,
    /// Attempts, the first included.
    pub attempts: u32,
    /// How long an attempt may run.
    pub timeout: &'static str,
    /// Lines the demo puts before the fake's settings in `data/<name>.toml`.
    pub settings_extra: &'static str,
    /// The source's other jobs in the demo's catalogue, as TOML (a backup, say).
    pub more_jobs: &'static str,
}

impl SourceKind {
    /// Its pipeline and job, as TOML for the demo's `observes.toml`.
    pub fn demo_toml(&self) -> String {
        let Demo {
            about,
            pipeline,
            settings,
            job,
            schedule,
            size,
            attempts,
            timeout,
            settings_extra: _,
            more_jobs,
        } = self.demo;
        let name = self.name;
        let settings = match settings {
            Some(table) => format!("settings = {table}"),
            None => format!("config = \"data/{name}.toml\""),
        };
        format!(
            "# {about}\n[pipelines.{pipeline}]\nsource = \"{name}\"\n{settings}\n\
             schema = \"{pipeline}\"\nwrite = \"merge\"\n\n\
             [jobs.\"{job}\"]\ncommand = [\"observes\", \"run\", \"{pipeline}\"]\n\
             schedule = \"{schedule}\"\nsize = \"{size}\"\nattempts = {attempts}\n\
             timeout = \"{timeout}\"\ntags = {{ source = \"{name}\" }}\n{more_jobs}"
        )
    }
}

impl std::fmt::Debug for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceKind")
            .field("name", &self.name)
            .finish()
    }
}

/// Every built-in source.
pub const SOURCES: &[SourceKind] = &[
    crate::gitlab::SOURCE,
    crate::checkly::SOURCE,
    crate::timedoctor::SOURCE,
    crate::zoho::SOURCE,
    crate::code::SOURCE,
];

/// The registered source of this name.
pub fn find(name: &str) -> Option<&'static SourceKind> {
    SOURCES.iter().find(|k| k.name == name)
}

/// The registered names, in order, for messages: `gitlab, checkly, …`.
pub fn names() -> String {
    SOURCES
        .iter()
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Implements [`Source`] for a settings type whose module has an async
/// `run(&settings, state, sink)`, and defines the module's `SOURCE`.
macro_rules! register {
    ($settings:ty, $name:literal, $about:literal, $help:literal, $example:literal, $demo:expr) => {
        $crate::registry::register!(
            $settings,
            $name,
            $about,
            $help,
            $example,
            $demo,
            |settings: $settings, _dir: &std::path::Path| settings
        );
    };
    // `$resolve` turns the settings' relative paths into paths from `dir`.
    ($settings:ty, $name:literal, $about:literal, $help:literal, $example:literal, $demo:expr, $resolve:expr) => {
        impl $crate::registry::Source for $settings {
            fn name(&self) -> &'static str {
                $name
            }
            fn run<'a>(
                &'a self,
                state: Option<&'a serde_json::Value>,
                sink: &'a mut dyn $crate::Sink,
            ) -> $crate::registry::Running<'a> {
                Box::pin(async move { run(self, state, sink).await.map(|_| ()) })
            }
            fn settings(&self) -> &dyn std::any::Any {
                self
            }
        }

        /// This source in the registry ([`crate::registry::SOURCES`]).
        pub const SOURCE: $crate::registry::SourceKind = $crate::registry::SourceKind {
            name: $name,
            about: $about,
            settings_help: $help,
            example: $example,
            demo: $demo,
            reads_api: true,
            build: |settings, dir| {
                let resolve: fn($settings, &std::path::Path) -> $settings = $resolve;
                Ok(Box::new(resolve(settings.parse::<$settings>()?, dir)))
            },
        };
    };
}
pub(crate) use register;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_example_builds() {
        let mut names: Vec<&str> = SOURCES.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SOURCES.len());
        for kind in SOURCES {
            let table: toml::Value = toml::from_str(kind.example)
                .unwrap_or_else(|e| panic!("{}: the example is not TOML: {e}", kind.name));
            let source = (kind.build)(&Settings::Table(table), Path::new("/srv"))
                .unwrap_or_else(|e| panic!("{}: the example does not build: {e}", kind.name));
            assert_eq!(source.name(), kind.name);
        }
        assert_eq!(find("gitlab").map(|k| k.name), Some("gitlab"));
        assert!(find("nope").is_none());
    }
}
