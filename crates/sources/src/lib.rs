//! Sources: the stream model and the extractors of the services observes reads.
//!
//! A source reads an API through the shared HTTP toolkit ([`observes_http`]) and emits
//! Singer messages into a [`stream::Sink`]: `SCHEMA` before a stream's first record,
//! `RECORD`s, and a `STATE` after each page or partition, holding every bookmark. A run
//! resumes from the last state its consumer committed. The same code runs inside a
//! pipeline and stand-alone as a Singer tap (`observes tap gitlab --config gitlab.toml`).

#![warn(missing_docs, unreachable_pub)]

pub mod checkly;
pub mod code;
pub mod gitlab;
pub mod registry;
pub mod rest;
pub mod schemas;
pub mod stream;
pub mod timedoctor;
pub mod window;
pub mod zoho;

use std::time::Duration;

use observes_http::{HttpClient, HttpConfig, HttpError, RetryPolicy};
use serde::Deserialize;

pub use registry::{Settings, Source, SourceKind, SOURCES};
pub use stream::{Emitter, Notice, Sink, StreamDef};

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A request failed (after retries).
    #[error("stream {stream}")]
    Http {
        /// The stream being extracted.
        stream: String,
        /// Why.
        #[source]
        source: HttpError,
    },
    /// The API's data is not what the stream expects.
    #[error("stream {stream}: {message}")]
    Data {
        /// The stream.
        stream: String,
        /// What is wrong.
        message: String,
    },
    /// The source's settings are wrong.
    #[error("{0}")]
    Config(String),
    /// A setting could not be used, for a reason of its own (a URL that does not parse, a
    /// folder that cannot be read).
    #[error("{setting}")]
    Setting {
        /// The setting, and its value where that helps.
        setting: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The API refused the calls as over its limits (rate, credits), after the retries.
    #[error("stream {stream}: {reason}")]
    Limit {
        /// The stream being extracted.
        stream: String,
        /// What the limit is and what to do.
        reason: String,
        /// The last refusal.
        #[source]
        source: Box<HttpError>,
    },
    /// Some streams could not be extracted this run, for reasons of their own (an export
    /// that failed or is still running); everything else was, and is committed.
    #[error("{}", NotLoaded::describe(not_loaded, "the others are extracted"))]
    Incomplete {
        /// The streams left out, and why.
        not_loaded: Vec<NotLoaded>,
    },
    /// The consumer of the messages went away (a load failed); not a source failure.
    #[error("the consumer of the messages stopped")]
    Stopped,
}

/// A stream a run left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotLoaded {
    /// The stream.
    pub stream: String,
    /// Why, and what to do.
    pub reason: String,
}

impl NotLoaded {
    /// `N streams not loaded, <rest>: a (why); b (why)`.
    pub fn describe(not_loaded: &[NotLoaded], rest: &str) -> String {
        let streams: Vec<String> = not_loaded
            .iter()
            .map(|n| format!("{} ({})", n.stream, n.reason))
            .collect();
        let count = match not_loaded.len() {
            1 => "1 stream".to_string(),
            n => format!("{n} streams"),
        };
        format!("{count} not loaded, {rest}: {}", streams.join("; "))
    }
}

impl SourceError {
    /// A [`SourceError::Setting`] for `map_err`.
    pub fn setting<E>(setting: impl Into<String>) -> impl FnOnce(E) -> SourceError
    where
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let setting = setting.into();
        move |source| SourceError::Setting {
            setting,
            source: source.into(),
        }
    }

    pub(crate) fn http(stream: &str) -> impl FnOnce(HttpError) -> SourceError + '_ {
        move |source| SourceError::Http {
            stream: stream.to_string(),
            source,
        }
    }
}

/// A storage location from a settings file: a URL (`s3://…`, `file://…`) as it is, a
/// relative folder from `dir`, the settings file's folder.
pub fn resolve_location(location: &str, dir: &std::path::Path) -> String {
    if location.contains("://") || std::path::Path::new(location).is_absolute() {
        return location.to_string();
    }
    // Lexically, as a shell user reads `../storage`: the folder need not exist yet.
    let mut path = std::path::PathBuf::new();
    for part in dir.join(location).components() {
        match part {
            std::path::Component::ParentDir if path.file_name().is_some() => {
                path.pop();
            }
            std::path::Component::CurDir => {}
            other => path.push(other),
        }
    }
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_location_is_a_url_or_a_folder_from_the_settings_file() {
        let dir = std::path::Path::new("/srv/demo/data");
        let at = |l: &str| super::resolve_location(l, dir);
        assert_eq!(at("s3://b/p"), "s3://b/p");
        assert_eq!(at("/abs/backup"), "/abs/backup");
        assert_eq!(at("backup"), "/srv/demo/data/backup");
        assert_eq!(
            at("../storage/./timedoctor"),
            "/srv/demo/storage/timedoctor"
        );
        assert_eq!(
            super::resolve_location("../../x", std::path::Path::new("rel")),
            "../x"
        );
    }
}

/// How a source talks HTTP; the `[http]` table of its config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Seconds for one whole request.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
    /// Tries per request, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// The first backoff in milliseconds (doubling, with jitter, up to `max_backoff_ms`).
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// The longest backoff, in milliseconds.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
    /// Spacing of requests; the API's documented limit by default.
    pub requests_per_second: Option<f64>,
}

fn default_timeout() -> f64 {
    60.0
}
fn default_attempts() -> u32 {
    8
}
fn default_backoff() -> u64 {
    500
}
fn default_max_backoff() -> u64 {
    120_000
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout_seconds: default_timeout(),
            max_attempts: default_attempts(),
            backoff_ms: default_backoff(),
            max_backoff_ms: default_max_backoff(),
            requests_per_second: None,
        }
    }
}

impl HttpSettings {
    /// A client with these settings; `default_rate` applies unless the config sets one.
    pub fn client(&self, default_rate: f64) -> Result<HttpClient, SourceError> {
        let client = HttpClient::new(HttpConfig {
            timeout: Duration::from_secs_f64(self.timeout_seconds.max(0.001)),
            retry: RetryPolicy {
                max_attempts: self.max_attempts.max(1),
                base: Duration::from_millis(self.backoff_ms),
                max: Duration::from_millis(self.max_backoff_ms.max(self.backoff_ms)),
            },
            ..HttpConfig::default()
        })
        .map_err(SourceError::setting("[http]"))?;
        let rate = self.requests_per_second.unwrap_or(default_rate);
        Ok(client.with_rate_limit(observes_http::RateLimiter::per_second(rate)))
    }
}

/// A secret given literally in the config or, better, named by an environment variable.
pub(crate) fn secret(
    literal: &Option<String>,
    env: &Option<String>,
    default_env: &str,
    what: &str,
) -> Result<String, SourceError> {
    if let Some(value) = literal {
        return Ok(value.clone());
    }
    let name = env.as_deref().unwrap_or(default_env);
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(SourceError::Config(format!(
            "{what}: set the environment variable {name} (or give it in the config)"
        ))),
    }
}

/// The streams a config chose (all of `known` when it chose none), in `known`'s order.
pub(crate) fn select_streams(
    chosen: Option<&[String]>,
    known: &[&'static str],
    source: &str,
) -> Result<Vec<&'static str>, SourceError> {
    let Some(chosen) = chosen else {
        return Ok(known.to_vec());
    };
    if let Some(unknown) = chosen.iter().find(|s| !known.contains(&s.as_str())) {
        return Err(SourceError::Config(format!(
            "unknown {source} stream {unknown:?} (known: {})",
            known.join(", ")
        )));
    }
    Ok(known
        .iter()
        .copied()
        .filter(|s| chosen.iter().any(|c| c == s))
        .collect())
}

/// The start of `text`, cut at a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A config file of a source, read and checked; errors name the file and position.
pub fn read_config<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<T, SourceError> {
    let text = std::fs::read_to_string(path)
        .map_err(SourceError::setting(format!("reading {}", path.display())))?;
    toml::from_str(&text)
        .map_err(|e| SourceError::Config(format!("{}: {}", path.display(), e.message())))
}
