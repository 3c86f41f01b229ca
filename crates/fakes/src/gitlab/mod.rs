//! A fake GitLab REST v4 (`/api/v4`): projects, members, pipelines, jobs (with cancel),
//! merge requests and issues of generated projects, plus `POST /oauth/token`.
//!
//! Faithful where clients depend on it (see `reference/gitlab.md`): offset pagination
//! with `x-page`/`x-next-page`/`x-total*`/`Link` headers (totals dropped above 10,000
//! rows), `per_page` capped at 100, keyset pagination of jobs by `Link`, bracketed
//! `scope[]`, `updated_after` filters (`>` for pipelines, `>=` for merge requests and
//! issues), 401/404 bodies, auth by `PRIVATE-TOKEN`, bearer or `private_token=`, and
//! rotating OAuth2 refresh tokens.
//!
//! The generated data lives in `world.rs`, the routes in `routes.rs`, the two pagination
//! styles in `pages.rs`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::{lock, Faults, Server};

mod pages;
mod routes;
mod world;

pub use world::GitlabWorld;

type Shared = Arc<Mutex<GitlabWorld>>;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GitlabOptions {
    /// The seed: the same seed makes the same world.
    pub seed: u64,
    /// Projects.
    pub projects: usize,
    /// Pipelines per project.
    pub pipelines_per_project: usize,
    /// Jobs per pipeline.
    pub jobs_per_pipeline: usize,
    /// Merge requests per project.
    pub merge_requests_per_project: usize,
    /// Issues per project.
    pub issues_per_project: usize,
    /// Members per project.
    pub members_per_project: usize,
    /// The personal access token the fake accepts.
    pub token: String,
    /// An OAuth2 client the fake accepts: (client id, client secret, first refresh token).
    pub oauth: Option<(String, String, String)>,
    /// Each OAuth access token expires after this many requests (to expire tokens
    /// mid-run, deterministically).
    pub oauth_token_uses: Option<u32>,
    /// The fake's "now": generated history ends here.
    pub now: DateTime<Utc>,
}

impl Default for GitlabOptions {
    fn default() -> Self {
        GitlabOptions {
            seed: 1,
            projects: 2,
            pipelines_per_project: 30,
            jobs_per_pipeline: 4,
            merge_requests_per_project: 45,
            issues_per_project: 35,
            members_per_project: 6,
            token: "glpat-fake-token".into(),
            oauth: None,
            oauth_token_uses: None,
            now: Utc::now(),
        }
    }
}

/// A running fake GitLab; the API is at [`FakeGitlab::api_url`].
#[derive(Debug)]
pub struct FakeGitlab {
    /// The server.
    pub server: Server,
    /// Its data, which tests may change.
    pub world: Shared,
    /// The personal access token it accepts.
    pub token: String,
}

/// This fake in the registry ([`crate::FAKES`]).
pub const FAKE: crate::FakeKind = crate::FakeKind::of::<FakeGitlab>("gitlab");

impl crate::SeededFake for FakeGitlab {
    fn start_seeded(seed: u64, port: u16) -> std::io::Result<Self> {
        let options = GitlabOptions {
            seed,
            ..Default::default()
        };
        Self::start_on(options, port)
    }
}

impl crate::RunningFake for FakeGitlab {
    fn server(&self) -> &crate::Server {
        &self.server
    }

    fn describe(&self) -> Vec<String> {
        let first = self
            .project_paths()
            .first()
            .map(|p| p.replace('/', "%2F"))
            .unwrap_or_default();
        let ids: Vec<String> = self
            .world()
            .project_ids()
            .iter()
            .map(i64::to_string)
            .collect();
        vec![
            format!("fake GitLab at {}", self.api_url()),
            format!("token: {} (header PRIVATE-TOKEN)", self.token),
            format!("projects: {}", self.project_paths().join(", ")),
            format!("project ids: {}", ids.join(" ")),
            format!(
                "try: curl -H 'PRIVATE-TOKEN: {}' '{}/projects/{first}/jobs?per_page=5' -i",
                self.token,
                self.api_url()
            ),
        ]
    }

    fn settings(&self) -> String {
        let projects: Vec<String> = self
            .project_paths()
            .iter()
            .map(|p| format!("{p:?}"))
            .collect();
        format!(
            "# For the fake GitLab: a real one needs its own URL and\n\
             # token_env = \"GITLAB_TOKEN\" instead of a token here.\n\
             api_url = \"{}\"\nprojects = [{}]\ntoken = \"{}\"\n",
            self.api_url(),
            projects.join(", "),
            self.token
        )
    }

    fn wait(self: Box<Self>) {
        self.server.wait()
    }
}

impl FakeGitlab {
    /// Starts it on a free port.
    pub fn start(options: GitlabOptions) -> std::io::Result<FakeGitlab> {
        FakeGitlab::start_on(options, 0)
    }

    /// Starts it on `port` (0: a free one).
    pub fn start_on(options: GitlabOptions, port: u16) -> std::io::Result<FakeGitlab> {
        let world = Arc::new(Mutex::new(GitlabWorld::generate(&options)));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let server = Server::spawn(routes::router(world.clone()), faults, port)?;
        Ok(FakeGitlab {
            server,
            world,
            token: options.token,
        })
    }

    /// The API's base URL (`…/api/v4`).
    pub fn api_url(&self) -> String {
        format!("{}/api/v4", self.server.base_url())
    }

    /// The OAuth2 token endpoint.
    pub fn oauth_token_url(&self) -> String {
        format!("{}/oauth/token", self.server.base_url())
    }

    /// Its data, locked.
    pub fn world(&self) -> std::sync::MutexGuard<'_, GitlabWorld> {
        lock(&self.world)
    }

    /// The project paths, as a config lists them.
    pub fn project_paths(&self) -> Vec<String> {
        self.world()
            .projects
            .iter()
            .filter_map(|p| p["path_with_namespace"].as_str().map(String::from))
            .collect()
    }
}
