//! GitLab (REST v4): projects, pipelines, jobs, merge requests, issues and project
//! members of the configured projects, with per-project bookmarks.
//!
//! Settings: [`SOURCE`]`.example` shows them all.
//!
//! How each stream stays correct while GitLab changes under it:
//! - pipelines, merge requests, issues: sorted by `updated_at` ascending and walked by
//!   moving `updated_after` to the last timestamp seen, not by page numbers, so an item
//!   updated mid-run moves ahead of the walk instead of shifting an unseen one behind it;
//! - jobs (no `updated_after` exists): a keyset walk newest-first down to the oldest job
//!   that was still unfinished last time, so status changes are picked up;
//! - projects and members: read whole every run (merge by key).

mod cancel;
mod streams;

use std::path::PathBuf;

use observes_http::{Auth, HttpClient, OAuth2Refresh, OAuth2Tokens, PageBudget};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::stream::{Emitter, Sink};
use crate::{HttpSettings, SourceError};

pub use cancel::{cancel_ci_jobs, CancelOptions, CancelOutcome, CancelReport};
pub use streams::STREAMS;

/// The stream names, in the order a run takes them.
pub const STREAM_NAMES: [&str; 6] = [
    "projects",
    "project_members",
    "pipelines",
    "jobs",
    "merge_requests",
    "issues",
];

crate::registry::register!(
    GitlabConfig,
    "gitlab",
    "GitLab: projects, members, pipelines, jobs, merge requests, issues.",
    "Settings (TOML): api_url, projects, token_env, streams, start_date, …",
    r#"api_url = "https://gitlab.com/api/v4"
projects = ["fluidattacks/universe", "20741933"]
token_env = "GITLAB_TOKEN"     # or token = "…", or an [oauth] table
start_date = "2024-01-01T00:00:00Z"
lookback_seconds = 300
max_pages = 500                # per run; the rest waits in the bookmarks
"#,
    crate::registry::Demo {
        about: "The GitLab source against a fake GitLab started for the run (settings in data/gitlab.toml).",
        pipeline: "gitlab_api",
        settings: None,
        job: "/observes/etl/gitlab/product",
        schedule: "cron(0 0/2 * * ? *)",
        size: "small",
        attempts: 3,
        timeout: "2h",
        settings_extra: "",
        more_jobs: "",
    }
);

/// The GitLab source's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabConfig {
    /// The API's base URL (`https://gitlab.com/api/v4`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Numeric ids or full paths (`group/project`).
    pub projects: Vec<String>,
    /// The token itself; prefer `token_env`.
    pub token: Option<String>,
    /// The environment variable holding the token (default `GITLAB_TOKEN`).
    pub token_env: Option<String>,
    /// OAuth2 refresh-token authentication instead of a token.
    pub oauth: Option<OAuthSettings>,
    /// Streams to extract (default: all).
    pub streams: Option<Vec<String>>,
    /// Nothing updated (or, for jobs, created) before this is extracted.
    pub start_date: Option<String>,
    /// Incremental streams re-read this far behind their bookmark.
    #[serde(default = "default_lookback")]
    pub lookback_seconds: i64,
    /// Pages per run across all streams; where it stops is kept in the bookmarks.
    pub max_pages: Option<u64>,
    /// Items per page.
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    /// How it talks HTTP.
    #[serde(default)]
    pub http: HttpSettings,
}

/// OAuth2 refresh-token authentication.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// `https://gitlab.com/oauth/token` for GitLab.com.
    pub token_url: String,
    /// The application's client id.
    pub client_id: String,
    /// The environment variable holding the client secret.
    #[serde(default = "default_secret_env")]
    pub client_secret_env: String,
    /// The environment variable holding the refresh token.
    #[serde(default = "default_refresh_env")]
    pub refresh_token_env: String,
    /// Where a rotated refresh token is written (GitLab invalidates the old one). When
    /// the file exists it is read in place of `refresh_token_env`.
    pub refresh_token_file: Option<PathBuf>,
}

fn default_api_url() -> String {
    "https://gitlab.com/api/v4".into()
}
fn default_lookback() -> i64 {
    300
}
fn default_per_page() -> u32 {
    100
}
fn default_secret_env() -> String {
    "GITLAB_CLIENT_SECRET".into()
}
fn default_refresh_env() -> String {
    "GITLAB_REFRESH_TOKEN".into()
}

impl GitlabConfig {
    /// The config of `observes fake-api gitlab` / the demo: every stream of `projects`.
    pub fn for_fake(api_url: &str, token: &str, projects: Vec<String>) -> GitlabConfig {
        GitlabConfig {
            api_url: api_url.to_string(),
            projects,
            token: Some(token.to_string()),
            token_env: None,
            oauth: None,
            streams: None,
            start_date: None,
            lookback_seconds: default_lookback(),
            max_pages: None,
            per_page: default_per_page(),
            http: HttpSettings::default(),
        }
    }

    /// GitLab caps `per_page` at 100; a short page must mean the last one.
    fn page_size(&self) -> u32 {
        self.per_page.clamp(1, 100)
    }

    fn selected(&self) -> Result<Vec<&'static str>, SourceError> {
        crate::select_streams(self.streams.as_deref(), &STREAM_NAMES, "GitLab")
    }

    fn auth(&self) -> Result<Auth, SourceError> {
        if let Some(oauth) = &self.oauth {
            let client_secret = crate::secret(
                &None,
                &Some(oauth.client_secret_env.clone()),
                "",
                "GitLab OAuth client secret",
            )?;
            let saved = oauth
                .refresh_token_file
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty());
            let refresh_token = match saved {
                Some(token) => token,
                None => crate::secret(
                    &None,
                    &Some(oauth.refresh_token_env.clone()),
                    "",
                    "GitLab OAuth refresh token",
                )?,
            };
            return Ok(Auth::OAuth2(OAuth2Tokens::new(OAuth2Refresh {
                token_url: oauth.token_url.clone(),
                client_id: oauth.client_id.clone(),
                client_secret,
                refresh_token,
                rotated_token_file: oauth.refresh_token_file.clone(),
                grant_params: observes_http::GrantParams::Form,
                scheme: "Bearer".into(),
            })));
        }
        let token = crate::secret(&self.token, &self.token_env, "GITLAB_TOKEN", "GitLab token")?;
        Ok(Auth::Header {
            name: "PRIVATE-TOKEN".into(),
            value: token,
        })
    }
}

/// A GitLab API endpoint with its client.
#[derive(Debug, Clone)]
pub struct GitlabApi {
    pub(crate) client: HttpClient,
    base: Url,
}

impl GitlabApi {
    /// A client of the GitLab API these settings name.
    pub fn connect(config: &GitlabConfig) -> Result<GitlabApi, SourceError> {
        // A token may ride in the URL's query (`?private_token=…`): never shown.
        let shown = match config.api_url.split_once('?') {
            Some((path, _)) => format!("{path}?***"),
            None => config.api_url.clone(),
        };
        let mut base = Url::parse(&config.api_url)
            .map_err(SourceError::setting(format!("GitLab api_url {shown:?}")))?;
        if base.cannot_be_a_base() {
            return Err(SourceError::Config(format!(
                "GitLab api_url {shown:?} cannot hold paths"
            )));
        }
        // `…/api/v4` and `…/api/v4/` alike.
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        // GitLab.com allows 2,000 requests a minute per user.
        let client = config.http.client(2000.0 / 60.0)?.with_auth(config.auth()?);
        Ok(GitlabApi { client, base })
    }

    /// `base/segments…?query`; each segment is escaped whole, so a project path
    /// `group/name` becomes `group%2Fname` as GitLab wants.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// GETs a JSON document.
    pub async fn get(&self, url: &Url) -> Result<Value, observes_http::HttpError> {
        Ok(self.client.get_json(|c| c.get(url.clone())).await?.body)
    }

    /// POSTs and reads the JSON answer.
    pub async fn post(&self, url: &Url) -> Result<Value, observes_http::HttpError> {
        Ok(self.client.get_json(|c| c.post(url.clone())).await?.body)
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Records sent.
    pub records: u64,
    /// True when the page cap stopped the run; the bookmarks hold where to continue.
    pub capped: bool,
}

/// Extracts every selected stream of every project, resuming from `state`.
pub async fn run(
    config: &GitlabConfig,
    state: Option<&Value>,
    sink: &mut dyn Sink,
) -> Result<RunReport, SourceError> {
    let streams = config.selected()?;
    if config.projects.is_empty() {
        return Err(SourceError::Config("GitLab: no projects configured".into()));
    }
    let start_date = match &config.start_date {
        None => None,
        Some(text) => Some(crate::window::parse_time(text).ok_or_else(|| {
            SourceError::Config(format!(
                "GitLab start_date {text:?} is not an RFC 3339 timestamp"
            ))
        })?),
    };
    let api = GitlabApi::connect(config)?;
    let budget = config
        .max_pages
        .map_or_else(PageBudget::unlimited, PageBudget::new);
    let mut emitter = Emitter::new(sink, state);
    let extractor = streams::Extractor {
        api: &api,
        config,
        budget: budget.clone(),
        project_ids: Default::default(),
        start_date,
    };
    let units: Vec<(&str, &str)> = config
        .projects
        .iter()
        .flat_map(|p| streams.iter().map(move |s| (p.as_str(), *s)))
        .collect();
    let keys: Vec<String> = units.iter().map(|(p, s)| format!("{s}@{p}")).collect();
    for i in emitter.rotation(&keys) {
        let (project, stream) = units[i];
        if extractor.stream(&mut emitter, stream, project).await? {
            emitter.set_resume_at(Some(&keys[i]));
            emitter.checkpoint()?;
            tracing::warn!(
                pages = config.max_pages,
                at = %keys[i],
                "GitLab: the page cap was reached; the next run continues from here"
            );
            return Ok(RunReport {
                records: emitter.records(),
                capped: true,
            });
        }
    }
    emitter.set_resume_at(None);
    emitter.checkpoint()?;
    Ok(RunReport {
        records: emitter.records(),
        capped: false,
    })
}
