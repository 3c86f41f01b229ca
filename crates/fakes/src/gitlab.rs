//! A fake GitLab REST v4 (`/api/v4`): projects, members, pipelines, jobs (with cancel),
//! merge requests and issues of generated projects, plus `POST /oauth/token`.
//!
//! Faithful where clients depend on it (see `reference/gitlab.md`): offset pagination
//! with `x-page`/`x-next-page`/`x-total*`/`Link` headers (totals dropped above 10,000
//! rows), `per_page` capped at 100, keyset pagination of jobs by `Link`, bracketed
//! `scope[]`, `updated_after` filters (`>` for pipelines, `>=` for merge requests and
//! issues), 401/404 bodies, auth by `PRIVATE-TOKEN`, bearer or `private_token=`, and
//! rotating OAuth2 refresh tokens.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::{lock, param, params, Faults, Query, Rng, Server};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GitlabOptions {
    pub seed: u64,
    pub projects: usize,
    pub pipelines_per_project: usize,
    pub jobs_per_pipeline: usize,
    pub merge_requests_per_project: usize,
    pub issues_per_project: usize,
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

const USERS: [(i64, &str, &str); 6] = [
    (1160142, "dsalazar", "Daniel Salazar"),
    (4412, "rbot", "Merge Bot"),
    (20311, "mlopez", "Maria Lopez"),
    (30877, "jchen", "Jun Chen"),
    (41250, "aokafor", "Ada Okafor"),
    (52003, "pnovak", "Petra Novak"),
];

const JOB_NAMES: [(&str, &str); 6] = [
    ("lint-python", "test"),
    ("unit-tests", "test"),
    ("build-image", "build"),
    ("deploy-staging", "deploy"),
    ("integration", "test"),
    ("docs", "build"),
];

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn user(i: usize) -> Value {
    let (id, username, name) = USERS[i % USERS.len()];
    json!({"id": id, "username": username, "name": name, "state": "active",
           "avatar_url": null, "web_url": format!("https://gitlab.example.com/{username}")})
}

/// The fake's data; tests change it between runs.
#[derive(Debug)]
pub struct GitlabWorld {
    pub projects: Vec<Value>,
    pub members: Vec<(i64, Value)>,
    /// Commits by project, newest last (one per pipeline).
    pub commits: Vec<(i64, Value)>,
    pub pipelines: Vec<Value>,
    pub jobs: Vec<Value>,
    pub merge_requests: Vec<Value>,
    pub issues: Vec<Value>,
    /// Advances with every change, so changes get fresh `updated_at` values.
    pub clock: DateTime<Utc>,
    token: String,
    oauth: Option<OAuthState>,
    rng: Rng,
    next_id: i64,
}

#[derive(Debug)]
struct OAuthState {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    /// Live access tokens with the requests each has left.
    access_tokens: Vec<(String, u32)>,
    uses: u32,
    issued: u64,
}

impl GitlabWorld {
    pub fn generate(options: &GitlabOptions) -> GitlabWorld {
        let mut world = GitlabWorld {
            projects: Vec::new(),
            members: Vec::new(),
            commits: Vec::new(),
            pipelines: Vec::new(),
            jobs: Vec::new(),
            merge_requests: Vec::new(),
            issues: Vec::new(),
            clock: options.now,
            token: options.token.clone(),
            oauth: options
                .oauth
                .clone()
                .map(|(client_id, client_secret, refresh_token)| OAuthState {
                    client_id,
                    client_secret,
                    refresh_token,
                    access_tokens: Vec::new(),
                    uses: options.oauth_token_uses.unwrap_or(u32::MAX),
                    issued: 0,
                }),
            rng: Rng::new(options.seed),
            next_id: 5_000_000,
        };
        let start = options.now - Duration::days(30);
        for p in 0..options.projects {
            let id = 20_741_933 + p as i64 * 1_000;
            let path = format!("acme/service-{}", p + 1);
            let created = start - Duration::days(200 + p as i64);
            world.projects.push(json!({
                "id": id, "name": format!("service-{}", p + 1), "path": format!("service-{}", p + 1),
                "path_with_namespace": path, "name_with_namespace": format!("Acme / service-{}", p + 1),
                "description": "A generated project", "default_branch": "trunk", "visibility": "private",
                "archived": false, "empty_repo": false, "created_at": ts(created),
                "last_activity_at": ts(options.now), "updated_at": ts(options.now),
                "web_url": format!("https://gitlab.example.com/{path}"),
                "http_url_to_repo": format!("https://gitlab.example.com/{path}.git"),
                "namespace": {"id": 4630300, "name": "Acme", "path": "acme", "kind": "group", "full_path": "acme"},
                "topics": ["generated"], "tag_list": ["generated"], "forks_count": p, "star_count": 3 * p,
                "open_issues_count": 0, "creator_id": USERS[0].0,
                "permissions": {"project_access": null, "group_access": {"access_level": 50, "notification_level": 3}},
            }));
            for m in 0..options.members_per_project {
                let mut member = user(m);
                member["access_level"] = json!([10, 20, 30, 40, 50][m % 5]);
                member["membership_state"] = json!("active");
                member["created_at"] = json!(ts(created + Duration::days(m as i64)));
                member["expires_at"] = Value::Null;
                member["locked"] = json!(false);
                member["created_by"] = user(1);
                world.members.push((id, member));
            }
            for k in 0..options.pipelines_per_project {
                let at = start
                    + Duration::minutes(
                        (k as i64) * 30 * 24 * 60 / options.pipelines_per_project.max(1) as i64,
                    );
                // The last pipelines are still in the queue.
                let open = k + 3 >= options.pipelines_per_project;
                world.add_pipeline_at(id, at, options.jobs_per_pipeline, open);
            }
            let mut previous = start;
            for k in 0..options.merge_requests_per_project {
                // Every seventh shares its timestamp with the one before (ties are real).
                let updated = if k % 7 == 6 {
                    previous
                } else {
                    start + Duration::minutes(k as i64 * 577 + 13)
                };
                previous = updated;
                let mr = world.merge_request(id, &path, k as i64 + 1, updated);
                world.merge_requests.push(mr);
            }
            for k in 0..options.issues_per_project {
                let updated = start + Duration::minutes(k as i64 * 811 + 7);
                let issue = world.issue(id, &path, k as i64 + 1, updated);
                world.issues.push(issue);
            }
        }
        world
    }

    fn id(&mut self) -> i64 {
        self.next_id += 1 + self.rng.below(3) as i64;
        self.next_id
    }

    /// Moves the clock on and returns it (every change gets a newer timestamp).
    pub fn tick(&mut self) -> DateTime<Utc> {
        self.clock += Duration::seconds(1);
        self.clock
    }

    fn project_path(&self, project_id: i64) -> String {
        self.projects
            .iter()
            .find(|p| p["id"] == project_id)
            .and_then(|p| p["path_with_namespace"].as_str())
            .unwrap_or("acme/unknown")
            .to_string()
    }

    fn add_pipeline_at(
        &mut self,
        project_id: i64,
        at: DateTime<Utc>,
        jobs: usize,
        open: bool,
    ) -> i64 {
        let path = self.project_path(project_id);
        let id = self.id();
        let iid = self
            .pipelines
            .iter()
            .filter(|p| p["project_id"] == project_id)
            .count() as i64
            + 1;
        let sha = format!("{:040x}", self.rng.next_u64() as u128 * 7919);
        let mut statuses = Vec::new();
        for j in 0..jobs {
            let status = if open {
                ["created", "pending", "running", "success"][j % 4]
            } else if self.rng.chance(15) {
                "failed"
            } else {
                *self.rng.pick(&[
                    "success", "success", "success", "canceled", "skipped", "manual",
                ])
            };
            statuses.push(status);
        }
        let pipeline_status = if open {
            "running"
        } else if statuses.contains(&"failed") {
            "failed"
        } else {
            "success"
        };
        let updated = at + Duration::minutes(20);
        let pipeline = json!({
            "id": id, "iid": iid, "project_id": project_id, "sha": sha, "ref": "trunk",
            "status": pipeline_status, "source": "push", "created_at": ts(at), "updated_at": ts(if open { at } else { updated }),
            "web_url": format!("https://gitlab.example.com/{path}/-/pipelines/{id}"), "name": null,
        });
        for (j, status) in statuses.into_iter().enumerate() {
            let job_id = self.id();
            let (name, stage) = JOB_NAMES[j % JOB_NAMES.len()];
            let created = at + Duration::seconds(j as i64);
            let started = (!matches!(status, "created" | "pending" | "manual" | "skipped"))
                .then(|| created + Duration::seconds(30));
            let finished = (!matches!(
                status,
                "created" | "pending" | "running" | "manual" | "skipped"
            ))
            .then(|| created + Duration::minutes(6));
            let duration = match (started, finished) {
                (Some(s), Some(f)) => json!((f - s).num_milliseconds() as f64 / 1000.0),
                _ => Value::Null,
            };
            self.jobs.push(json!({
                "id": job_id, "name": name, "stage": stage, "status": status, "ref": "trunk", "tag": false,
                "coverage": null, "allow_failure": false, "archived": false, "source": "push",
                "created_at": ts(created), "started_at": started.map(ts), "finished_at": finished.map(ts),
                "erased_at": null, "duration": duration, "queued_duration": 30.0,
                "failure_reason": if status == "failed" { json!("script_failure") } else { Value::Null },
                "web_url": format!("https://gitlab.example.com/{path}/-/jobs/{job_id}"),
                "tag_list": ["small", "x86"], "user": user(j),
                "commit": {"id": sha, "short_id": &sha[..8], "title": "feat: generated", "author_name": USERS[j % USERS.len()].2},
                "pipeline": {"id": id, "iid": iid, "project_id": project_id, "ref": "trunk", "sha": sha,
                             "status": pipeline_status, "source": "push", "created_at": ts(at), "updated_at": ts(updated)},
                "runner": if started.is_some() { json!({"id": 12270859, "description": "shared-runners-4", "active": true,
                             "paused": false, "is_shared": true, "runner_type": "instance_type", "name": "gitlab-runner",
                             "online": true, "status": "online"}) } else { Value::Null },
                "artifacts": if finished.is_some() { json!([{"file_type": "trace", "size": 48211, "filename": "job.log", "file_format": null}]) } else { json!([]) },
                "project": {"ci_job_token_scope_enabled": false},
            }));
        }
        let author = USERS[(iid as usize) % USERS.len()];
        let email = format!("{}@example.com", author.1);
        self.commits.push((
            project_id,
            json!({
                "id": sha, "short_id": &sha[..8], "title": "feat: generated", "message": "feat: generated\n",
                "author_name": author.2, "author_email": email, "authored_date": ts(at),
                "committer_name": author.2, "committer_email": email, "committed_date": ts(at),
                "created_at": ts(at), "parent_ids": [],
                "web_url": format!("https://gitlab.example.com/{path}/-/commit/{sha}"),
            }),
        ));
        self.pipelines.push(pipeline);
        id
    }

    fn merge_request(
        &mut self,
        project_id: i64,
        path: &str,
        iid: i64,
        updated: DateTime<Utc>,
    ) -> Value {
        let id = self.id();
        let k = iid as usize;
        let state = ["merged", "opened", "closed", "merged"][k % 4];
        json!({
            "id": id, "iid": iid, "project_id": project_id, "title": format!("feat: change {iid}"),
            "description": format!("Closes #{iid}"), "state": state, "draft": false, "work_in_progress": false,
            "created_at": ts(updated - Duration::hours(5)), "updated_at": ts(updated),
            "merged_at": if state == "merged" { json!(ts(updated)) } else { Value::Null },
            "closed_at": if state == "closed" { json!(ts(updated)) } else { Value::Null },
            "source_branch": format!("branch-{iid}"), "target_branch": "trunk",
            "source_project_id": project_id, "target_project_id": project_id,
            "author": user(k), "assignee": user(k + 1), "assignees": [user(k + 1)], "reviewers": [user(k + 2), user(k + 3)],
            "merge_user": if state == "merged" { user(1) } else { Value::Null }, "merged_by": null, "closed_by": null,
            "labels": ["back"], "milestone": null, "merge_when_pipeline_succeeds": true,
            "detailed_merge_status": "not_open", "sha": format!("{:040x}", iid), "merge_commit_sha": null,
            "squash_commit_sha": null, "squash": true, "user_notes_count": k % 5, "upvotes": 0, "downvotes": 0,
            "discussion_locked": null, "reference": format!("!{iid}"),
            "references": {"short": format!("!{iid}"), "relative": format!("!{iid}"), "full": format!("{path}!{iid}")},
            "web_url": format!("https://gitlab.example.com/{path}/-/merge_requests/{iid}"),
            "time_stats": {"time_estimate": 0, "total_time_spent": 0}, "has_conflicts": false,
            "blocking_discussions_resolved": true,
        })
    }

    fn issue(&mut self, project_id: i64, path: &str, iid: i64, updated: DateTime<Utc>) -> Value {
        let id = self.id();
        let k = iid as usize;
        let closed = k.is_multiple_of(3);
        json!({
            "id": id, "iid": iid, "project_id": project_id, "title": format!("Bug {iid}"),
            "description": "Seen on CI", "state": if closed { "closed" } else { "opened" },
            "type": "ISSUE", "issue_type": "issue", "confidential": false, "discussion_locked": null,
            "author": user(k), "assignee": user(k + 2), "assignees": [user(k + 2)],
            "closed_by": if closed { user(k) } else { Value::Null },
            "labels": ["bug"], "milestone": {"id": 3301, "iid": 12, "title": "Q1"},
            "upvotes": k % 3, "downvotes": 0, "merge_requests_count": k % 2, "user_notes_count": 4,
            "due_date": "2024-03-08", "weight": null, "epic": null, "health_status": null,
            "created_at": ts(updated - Duration::days(2)), "updated_at": ts(updated),
            "closed_at": if closed { json!(ts(updated)) } else { Value::Null },
            "web_url": format!("https://gitlab.example.com/{path}/-/issues/{iid}"),
            "task_completion_status": {"count": 0, "completed_count": 0},
        })
    }

    /// Project ids in order.
    pub fn project_ids(&self) -> Vec<i64> {
        self.projects
            .iter()
            .filter_map(|p| p["id"].as_i64())
            .collect()
    }

    /// Marks the `n`-th merge request of a project as updated now.
    pub fn touch_merge_request(&mut self, project_id: i64, n: usize) -> i64 {
        let now = ts(self.tick());
        let mr = self
            .merge_requests
            .iter_mut()
            .filter(|m| m["project_id"] == project_id)
            .nth(n)
            .expect("the test names an existing merge request");
        mr["updated_at"] = json!(now);
        mr["title"] = json!(format!("{} (edited)", mr["title"].as_str().unwrap_or("")));
        mr["id"].as_i64().unwrap_or(0)
    }

    /// Adds a merge request updated now.
    pub fn add_merge_request(&mut self, project_id: i64) -> i64 {
        let path = self.project_path(project_id);
        let iid = self
            .merge_requests
            .iter()
            .filter(|m| m["project_id"] == project_id)
            .count() as i64
            + 1;
        let now = self.tick();
        let mr = self.merge_request(project_id, &path, iid, now);
        let id = mr["id"].as_i64().unwrap_or(0);
        self.merge_requests.push(mr);
        id
    }

    /// Adds an issue updated now.
    pub fn add_issue(&mut self, project_id: i64) -> i64 {
        let path = self.project_path(project_id);
        let iid = self
            .issues
            .iter()
            .filter(|m| m["project_id"] == project_id)
            .count() as i64
            + 1;
        let now = self.tick();
        let issue = self.issue(project_id, &path, iid, now);
        let id = issue["id"].as_i64().unwrap_or(0);
        self.issues.push(issue);
        id
    }

    /// Adds a finished pipeline with its jobs, created now.
    pub fn add_pipeline(&mut self, project_id: i64, jobs: usize) -> i64 {
        let now = self.tick();
        self.add_pipeline_at(project_id, now, jobs, false)
    }

    /// Sets a job's status (and its pipeline's `updated_at`, as GitLab does).
    pub fn set_job_status(&mut self, job_id: i64, status: &str) {
        let now = ts(self.tick());
        let mut pipeline_id = None;
        if let Some(job) = self.jobs.iter_mut().find(|j| j["id"] == job_id) {
            job["status"] = json!(status);
            if !matches!(status, "created" | "pending" | "running") {
                job["finished_at"] = json!(now);
            }
            pipeline_id = job["pipeline"]["id"].as_i64();
        }
        if let Some(p) = self
            .pipelines
            .iter_mut()
            .find(|p| Some(p["id"].as_i64().unwrap_or(-1)) == pipeline_id)
        {
            p["updated_at"] = json!(now);
        }
    }

    /// Makes every OAuth access token handed out so far invalid (as if it expired).
    pub fn expire_access_tokens(&mut self) {
        if let Some(oauth) = &mut self.oauth {
            oauth.access_tokens.clear();
        }
    }

    /// OAuth access tokens handed out so far.
    pub fn tokens_issued(&self) -> u64 {
        self.oauth.as_ref().map_or(0, |o| o.issued)
    }

    /// The refresh token the fake accepts now (it rotates on every use).
    pub fn refresh_token(&self) -> Option<String> {
        self.oauth.as_ref().map(|o| o.refresh_token.clone())
    }

    fn authorized(&mut self, headers: &HeaderMap, query: &Query) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if header("private-token") == Some(self.token.as_str())
            || param(query, "private_token") == Some(self.token.as_str())
        {
            return true;
        }
        match header("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
            Some(token) if token == self.token => true,
            Some(token) => self.oauth.as_mut().is_some_and(|o| {
                let Some(at) = o.access_tokens.iter().position(|(t, _)| t == token) else {
                    return false;
                };
                o.access_tokens[at].1 -= 1;
                if o.access_tokens[at].1 == 0 {
                    o.access_tokens.remove(at);
                }
                true
            }),
            None => false,
        }
    }

    fn find_project(&self, id: &str) -> Option<i64> {
        self.projects
            .iter()
            .find(|p| {
                p["id"].as_i64().is_some_and(|n| n.to_string() == id)
                    || p["path_with_namespace"] == id
            })
            .and_then(|p| p["id"].as_i64())
    }
}

type Shared = Arc<Mutex<GitlabWorld>>;

/// A running fake GitLab; the API is at [`FakeGitlab::api_url`].
#[derive(Debug)]
pub struct FakeGitlab {
    pub server: Server,
    pub world: Shared,
    pub token: String,
}

/// This fake in the registry ([`crate::FAKES`]).
pub const FAKE: crate::FakeKind = crate::FakeKind {
    name: "gitlab",
    start: |seed, port| {
        let fake = FakeGitlab::start_on(
            GitlabOptions {
                seed,
                ..Default::default()
            },
            port,
        )?;
        Ok(Box::new(fake))
    },
};

impl crate::RunningFake for FakeGitlab {
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
    pub fn start(options: GitlabOptions) -> std::io::Result<FakeGitlab> {
        FakeGitlab::start_on(options, 0)
    }

    pub fn start_on(options: GitlabOptions, port: u16) -> std::io::Result<FakeGitlab> {
        let world = Arc::new(Mutex::new(GitlabWorld::generate(&options)));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let server = Server::spawn(router(world.clone()), faults, port)?;
        Ok(FakeGitlab {
            server,
            world,
            token: options.token,
        })
    }

    pub fn api_url(&self) -> String {
        format!("{}/api/v4", self.server.base_url())
    }

    pub fn oauth_token_url(&self) -> String {
        format!("{}/oauth/token", self.server.base_url())
    }

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

fn router(world: Shared) -> Router {
    Router::new()
        .route("/api/v4/projects", get(list_projects))
        .route("/api/v4/projects/{id}", get(one_project))
        .route("/api/v4/projects/{id}/members/all", get(members))
        .route("/api/v4/projects/{id}/members", get(members))
        .route(
            "/api/v4/projects/{id}/pipelines",
            get(|s, p, h, q, u| updated_list(s, p, h, q, u, PIPELINES)),
        )
        .route("/api/v4/projects/{id}/jobs", get(jobs))
        .route("/api/v4/projects/{id}/jobs/{job}/cancel", post(cancel_job))
        .route(
            "/api/v4/projects/{id}/merge_requests",
            get(|s, p, h, q, u| updated_list(s, p, h, q, u, MERGE_REQUESTS)),
        )
        .route(
            "/api/v4/projects/{id}/issues",
            get(|s, p, h, q, u| updated_list(s, p, h, q, u, ISSUES)),
        )
        .route("/api/v4/projects/{id}/repository/commits", get(commits))
        .route("/api/v4/projects/{id}/repository/branches", get(branches))
        .route("/api/v4/projects/{id}/milestones", get(milestones))
        .route("/api/v4/projects/{id}/users", get(users))
        .route("/api/v4/user", get(current_user))
        .route("/oauth/token", post(oauth_token))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "404 Not Found"})),
            )
        })
        .with_state(world)
}

fn message(code: StatusCode, text: &str) -> Response {
    (code, Json(json!({ "message": text }))).into_response()
}

/// Checks the token and finds the project, or answers as GitLab does.
fn guard(
    world: &mut GitlabWorld,
    headers: &HeaderMap,
    query: &Query,
    id: &str,
) -> Result<i64, Response> {
    if !world.authorized(headers, query) {
        return Err(message(StatusCode::UNAUTHORIZED, "401 Unauthorized"));
    }
    world
        .find_project(id)
        .ok_or_else(|| message(StatusCode::NOT_FOUND, "404 Project Not Found"))
}

async fn list_projects(
    State(world): State<Shared>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
) -> Response {
    let mut world = lock(&world);
    if !world.authorized(&headers, &query) {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    }
    offset_page(world.projects.clone(), &query, &headers, "/api/v4/projects")
}

async fn one_project(
    State(world): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
) -> Response {
    let mut world = lock(&world);
    match guard(&mut world, &headers, &query, &id) {
        Err(r) => r,
        Ok(pid) => Json(world.projects.iter().find(|p| p["id"] == pid).cloned()).into_response(),
    }
}

async fn members(
    State(world): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
    uri: axum::http::Uri,
) -> Response {
    let mut world = lock(&world);
    let pid = match guard(&mut world, &headers, &query, &id) {
        Err(r) => return r,
        Ok(pid) => pid,
    };
    let list: Vec<Value> = world
        .members
        .iter()
        .filter(|(p, _)| *p == pid)
        .map(|(_, m)| m.clone())
        .collect();
    offset_page(list, &query, &headers, uri.path())
}

/// Filters by `updated_after` (strictly after, or at-or-after with `inclusive`), then
/// sorts by `order_by` (`id` by default) in `sort` order (`desc` by default).
fn filter_sort(
    mut list: Vec<Value>,
    query: &Query,
    inclusive: bool,
) -> Result<Vec<Value>, Response> {
    if let Some(after) = param(query, "updated_after") {
        let Ok(after) = DateTime::parse_from_rfc3339(after) else {
            return Err((
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "updated_after is invalid"})),
            )
                .into_response());
        };
        list.retain(|item| {
            let at = item["updated_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            at.is_some_and(|at| if inclusive { at >= after } else { at > after })
        });
    }
    let order = param(query, "order_by").unwrap_or("id");
    if !["id", "updated_at", "created_at"].contains(&order) {
        return Err((
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "order_by does not have a valid value"})),
        )
            .into_response());
    }
    // Equal timestamps are ordered by id, as the database's index would.
    list.sort_by(|a, b| {
        let key = |v: &Value| (v[order].as_str().map(String::from), v["id"].as_i64());
        match order {
            "id" => a["id"].as_i64().cmp(&b["id"].as_i64()),
            _ => key(a).cmp(&key(b)),
        }
    });
    if param(query, "sort") != Some("asc") {
        list.reverse();
    }
    Ok(list)
}

/// A project's pipelines, merge requests or issues: filtered by `filter_field` (the
/// `status`/`state` parameter) and `updated_after`, sorted and paged as GitLab does.
async fn updated_list(
    State(world): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
    uri: axum::http::Uri,
    listing: Listing,
) -> Response {
    let mut world = lock(&world);
    let pid = match guard(&mut world, &headers, &query, &id) {
        Err(r) => return r,
        Ok(pid) => pid,
    };
    let wanted = param(&query, listing.filter_field).unwrap_or("all");
    let list: Vec<Value> = (listing.items)(&world)
        .iter()
        .filter(|m| m["project_id"] == pid)
        .filter(|m| wanted == "all" || m[listing.filter_field] == wanted)
        .cloned()
        .collect();
    match filter_sort(list, &query, listing.inclusive) {
        Ok(list) => offset_page(list, &query, &headers, uri.path()),
        Err(r) => r,
    }
}

#[derive(Clone, Copy)]
struct Listing {
    items: fn(&GitlabWorld) -> &Vec<Value>,
    filter_field: &'static str,
    /// `updated_after` means at-or-after (merge requests, issues), else strictly after.
    inclusive: bool,
}

const PIPELINES: Listing = Listing {
    items: |w| &w.pipelines,
    filter_field: "status",
    inclusive: false,
};
const MERGE_REQUESTS: Listing = Listing {
    items: |w| &w.merge_requests,
    filter_field: "state",
    inclusive: true,
};
const ISSUES: Listing = Listing {
    items: |w| &w.issues,
    filter_field: "state",
    inclusive: true,
};

async fn commits(
    State(world): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
    uri: axum::http::Uri,
) -> Response {
    let mut world = lock(&world);
    let pid = match guard(&mut world, &headers, &query, &id) {
        Err(r) => return r,
        Ok(pid) => pid,
    };
    // Newest first, as `git log` and the API list them.
    let list: Vec<Value> = world
        .commits
        .iter()
        .rev()
        .filter(|(p, _)| *p == pid)
        .map(|(_, c)| c.clone())
        .collect();
    offset_page(list, &query, &headers, uri.path())
}

/// The default branch at the newest commit, and a branch per open merge request.
async fn branches(
    State(world): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
    uri: axum::http::Uri,
) -> Response {
    let mut world = lock(&world);
    let pid = match guard(&mut world, &headers, &query, &id) {
        Err(r) => return r,
        Ok(pid) => pid,
    };
    let head = world
        .commits
        .iter()
        .rev()
        .find(|(p, _)| *p == pid)
        .map(|(_, c)| c.clone());
    let branch = |name: &str, default: bool, commit: Value| {
        json!({"name": name, "merged": false, "protected": default, "default": default,
               "developers_can_push": false, "developers_can_merge": false, "can_push": true,
               "web_url": format!("https://gitlab.example.com/-/tree/{name}"), "commit": commit})
    };
    let mut list = vec![branch("trunk", true, head.clone().unwrap_or(Value::Null))];
    for mr in world
        .merge_requests
        .iter()
        .filter(|m| m["project_id"] == pid && m["state"] == "opened")
    {
        let mut commit = head.clone().unwrap_or(Value::Null);
        if let Some(sha) = mr["sha"].as_str() {
            commit["id"] = json!(sha);
            commit["short_id"] = json!(&sha[..8.min(sha.len())]);
        }
        list.push(branch(
            mr["source_branch"].as_str().unwrap_or("branch"),
            false,
            commit,
        ));
    }
    offset_page(list, &query, &headers, uri.path())
}

async fn milestones(
    State(world): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
    uri: axum::http::Uri,
) -> Response {
    let mut world = lock(&world);
    let pid = match guard(&mut world, &headers, &query, &id) {
        Err(r) => return r,
        Ok(pid) => pid,
    };
    let created = ts(world.clock - Duration::days(60));
    let list = vec![json!({
        "id": 3301, "iid": 12, "project_id": pid, "title": "Q1", "description": "The quarter's work",
        "state": "active", "due_date": "2024-03-31", "start_date": "2024-01-01", "expired": false,
        "created_at": created, "updated_at": created,
        "web_url": "https://gitlab.example.com/-/milestones/12",
    })];
    offset_page(list, &query, &headers, uri.path())
}

/// The project's users: its members, without the membership fields.
async fn users(
    State(world): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
    uri: axum::http::Uri,
) -> Response {
    let mut world = lock(&world);
    let pid = match guard(&mut world, &headers, &query, &id) {
        Err(r) => return r,
        Ok(pid) => pid,
    };
    let list: Vec<Value> = world
        .members
        .iter()
        .filter(|(p, _)| *p == pid)
        .map(|(_, m)| {
            json!({"id": m["id"], "username": m["username"], "name": m["name"], "state": m["state"],
                   "avatar_url": m["avatar_url"], "web_url": m["web_url"]})
        })
        .collect();
    offset_page(list, &query, &headers, uri.path())
}

/// The token's owner (clients call it to check their credentials).
async fn current_user(
    State(world): State<Shared>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
) -> Response {
    let mut world = lock(&world);
    if !world.authorized(&headers, &query) {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    }
    Json(user(0)).into_response()
}

const JOB_SCOPES: [&str; 9] = [
    "created",
    "pending",
    "running",
    "failed",
    "success",
    "canceled",
    "skipped",
    "waiting_for_resource",
    "manual",
];

async fn jobs(
    State(world): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
    uri: axum::http::Uri,
) -> Response {
    let mut world = lock(&world);
    let pid = match guard(&mut world, &headers, &query, &id) {
        Err(r) => return r,
        Ok(pid) => pid,
    };
    let mut scopes = params(&query, "scope[]");
    scopes.extend(params(&query, "scope"));
    if scopes.iter().any(|s| !JOB_SCOPES.contains(s)) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "scope does not have a valid value"})),
        )
            .into_response();
    }
    let mut list: Vec<Value> = world
        .jobs
        .iter()
        .filter(|j| j["pipeline"]["project_id"] == pid)
        .filter(|j| scopes.is_empty() || scopes.iter().any(|s| j["status"] == *s))
        .cloned()
        .collect();
    list.sort_by_key(|j| std::cmp::Reverse(j["id"].as_i64()));
    if param(&query, "pagination") == Some("keyset") {
        if param(&query, "order_by").unwrap_or("id") != "id"
            || param(&query, "sort").unwrap_or("desc") != "desc"
        {
            return (StatusCode::METHOD_NOT_ALLOWED, Json(json!({"error": "Keyset pagination is not yet available for this type of request"}))).into_response();
        }
        return keyset_page(list, &query, &headers, uri.path());
    }
    offset_page(list, &query, &headers, uri.path())
}

async fn cancel_job(
    State(world): State<Shared>,
    Path((id, job)): Path<(String, i64)>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
) -> Response {
    let mut world = lock(&world);
    let pid = match guard(&mut world, &headers, &query, &id) {
        Err(r) => return r,
        Ok(pid) => pid,
    };
    let status = world
        .jobs
        .iter()
        .find(|j| j["id"] == job && j["pipeline"]["project_id"] == pid)
        .and_then(|j| j["status"].as_str().map(String::from));
    let Some(status) = status else {
        return message(StatusCode::NOT_FOUND, "404 Job Not Found");
    };
    if matches!(
        status.as_str(),
        "created" | "pending" | "running" | "waiting_for_resource" | "preparing" | "scheduled"
    ) {
        world.set_job_status(job, "canceled");
    }
    let after = world.jobs.iter().find(|j| j["id"] == job).cloned();
    (StatusCode::CREATED, Json(after)).into_response()
}

async fn oauth_token(
    State(world): State<Shared>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut world = lock(&world);
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let Some(oauth) = world.oauth.as_mut() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    };
    let valid = field("grant_type") == Some("refresh_token")
        && field("client_id") == Some(oauth.client_id.as_str())
        && field("client_secret") == Some(oauth.client_secret.as_str())
        && field("refresh_token") == Some(oauth.refresh_token.as_str());
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."})),
        )
            .into_response();
    }
    oauth.issued += 1;
    let access = format!("oat-access-{}", oauth.issued);
    // The refresh token rotates: the old one stops working.
    oauth.refresh_token = format!("ort-refresh-{}", oauth.issued);
    oauth.access_tokens.push((access.clone(), oauth.uses));
    Json(json!({
        "access_token": access, "token_type": "Bearer", "expires_in": 7200,
        "refresh_token": oauth.refresh_token, "scope": "read_api api", "created_at": Utc::now().timestamp(),
    }))
    .into_response()
}

/// `http://host/path?query` with `changes` applied to the query.
fn absolute(headers: &HeaderMap, path: &str, query: &Query, changes: &[(&str, String)]) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut url = url::Url::parse(&format!("http://{host}{path}")).unwrap_or_else(|_| {
        url::Url::parse("http://127.0.0.1/").unwrap_or_else(|e| unreachable!("{e}"))
    });
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in query
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
        {
            pairs.append_pair(k, v);
        }
        for (k, v) in changes {
            pairs.append_pair(k, v);
        }
    }
    url.to_string()
}

/// GitLab's offset pagination: a page of `list` with its headers.
fn offset_page(list: Vec<Value>, query: &Query, headers: &HeaderMap, path: &str) -> Response {
    let per_page = param(query, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page = param(query, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = list.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = list
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    let mut response = Json(items).into_response();
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    };
    set(h, "x-page", page.to_string());
    set(h, "x-per-page", per_page.to_string());
    set(h, "x-next-page", next.clone());
    set(h, "x-prev-page", prev.clone());
    let link_to = |p: usize| {
        absolute(
            headers,
            path,
            query,
            &[("page", p.to_string()), ("per_page", per_page.to_string())],
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_to(page - 1)));
    }
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", link_to(page + 1)));
    }
    links.push(format!("<{}>; rel=\"first\"", link_to(1)));
    // Above 10,000 rows GitLab stops counting.
    if total <= 10_000 {
        set(h, "x-total", total.to_string());
        set(h, "x-total-pages", pages.to_string());
        links.push(format!("<{}>; rel=\"last\"", link_to(pages)));
    }
    set(h, "link", links.join(", "));
    response
}

/// GitLab's keyset pagination (jobs by id, newest first): only a `Link: rel="next"`,
/// carrying an opaque `cursor`.
fn keyset_page(list: Vec<Value>, query: &Query, headers: &HeaderMap, path: &str) -> Response {
    let per_page = param(query, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let before = param(query, "cursor")
        .and_then(|c| c.strip_prefix("eyJpZCI6"))
        .and_then(|c| i64::from_str_radix(c, 16).ok());
    let items: Vec<Value> = list
        .into_iter()
        .filter(|j| before.is_none_or(|b| j["id"].as_i64().is_some_and(|id| id < b)))
        .take(per_page + 1)
        .collect();
    let more = items.len() > per_page;
    let items: Vec<Value> = items.into_iter().take(per_page).collect();
    let mut response = Json(&items).into_response();
    if more {
        if let Some(last) = items.last().and_then(|j| j["id"].as_i64()) {
            let next = absolute(
                headers,
                path,
                query,
                &[("cursor", format!("eyJpZCI6{last:x}"))],
            );
            if let Ok(v) = format!("<{next}>; rel=\"next\"").parse() {
                response.headers_mut().insert("link", v);
            }
        }
    }
    response
}
