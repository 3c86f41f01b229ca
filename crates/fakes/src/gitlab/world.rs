//! The fake's data: generated projects, pipelines, jobs, merge requests and issues, the
//! changes tests make between runs, and the OAuth2 tokens it has issued.

use axum::http::HeaderMap;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::GitlabOptions;
use crate::{param, Query, Rng};

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

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn user(i: usize) -> Value {
    let (id, username, name) = USERS[i % USERS.len()];
    json!({"id": id, "username": username, "name": name, "state": "active",
           "avatar_url": null, "web_url": format!("https://gitlab.example.com/{username}")})
}

/// The fake's data; tests change it between runs.
#[derive(Debug)]
pub struct GitlabWorld {
    /// Projects.
    pub projects: Vec<Value>,
    /// Members, by project id.
    pub members: Vec<(i64, Value)>,
    /// Commits by project, newest last (one per pipeline).
    pub commits: Vec<(i64, Value)>,
    /// Pipelines.
    pub pipelines: Vec<Value>,
    /// Jobs.
    pub jobs: Vec<Value>,
    /// Merge requests.
    pub merge_requests: Vec<Value>,
    /// Issues.
    pub issues: Vec<Value>,
    /// Advances with every change, so changes get fresh `updated_at` values.
    pub clock: DateTime<Utc>,
    token: String,
    pub(super) oauth: Option<OAuthState>,
    rng: Rng,
    /// Keys the shape of durations and queues (see [`crate::shape`]).
    seed: u64,
    next_id: i64,
}

#[derive(Debug)]
pub(super) struct OAuthState {
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) refresh_token: String,
    /// Live access tokens with the requests each has left.
    pub(super) access_tokens: Vec<(String, u32)>,
    pub(super) uses: u32,
    pub(super) issued: u64,
}

impl GitlabWorld {
    /// The world `options` describes.
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
            seed: options.seed,
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
                // As many as ever, busier on weekdays' working hours.
                let at = crate::shape::busy_instant(
                    start,
                    options.now,
                    k as f64 / options.pipelines_per_project.max(1) as f64,
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
            } else if self.rng.chance(6) {
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
            let (queued, took) = self.job_timing(job_id, stage, status, created);
            // Nothing has happened after the world's clock.
            let started = (!matches!(status, "created" | "pending" | "manual" | "skipped"))
                .then(|| (created + queued).min(self.clock));
            let finished = (!matches!(
                status,
                "created" | "pending" | "running" | "manual" | "skipped"
            ))
            .then(|| (created + queued + took).min(self.clock));
            let queued_duration = match started {
                Some(s) => json!((s - created).num_milliseconds() as f64 / 1000.0),
                None => Value::Null,
            };
            let duration = match (started, finished) {
                (Some(s), Some(f)) => json!((f - s).num_milliseconds() as f64 / 1000.0),
                _ => Value::Null,
            };
            self.jobs.push(json!({
                "id": job_id, "name": name, "stage": stage, "status": status, "ref": "trunk", "tag": false,
                "coverage": null, "allow_failure": false, "archived": false, "source": "push",
                "created_at": ts(created), "started_at": started.map(ts), "finished_at": finished.map(ts),
                "erased_at": null, "duration": duration, "queued_duration": queued_duration,
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

    /// How long a job waits for a runner and then runs: around a median per stage, slower
    /// over the month as the code grows, longer queues in working hours, a failure cut
    /// short, and now and then a stuck runner or a job that hangs.
    fn job_timing(
        &self,
        job_id: i64,
        stage: &str,
        status: &str,
        created: DateTime<Utc>,
    ) -> (Duration, Duration) {
        use crate::shape::{busy, rare, spread, trend};
        let key = |salt: u64| [self.seed, job_id as u64, salt];
        let median = match stage {
            "build" => 260.0,
            "deploy" => 95.0,
            _ => 410.0,
        } * trend(created, self.clock - Duration::days(30), self.clock, 0.3);
        let mut took = spread(&key(1), median, 0.3);
        if rare(&key(2), 15) {
            took *= 5.0;
        }
        if status == "failed" {
            took *= 0.45;
        }
        let mut queued = spread(&key(3), 6.0 + 50.0 * busy(created), 0.6);
        if rare(&key(4), 10) {
            queued += 900.0;
        }
        let ms = |s: f64| Duration::milliseconds((s * 1000.0) as i64);
        (ms(queued), ms(took))
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

    pub(super) fn authorized(&mut self, headers: &HeaderMap, query: &Query) -> bool {
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

    pub(super) fn find_project(&self, id: &str) -> Option<i64> {
        self.projects
            .iter()
            .find(|p| {
                p["id"].as_i64().is_some_and(|n| n.to_string() == id)
                    || p["path_with_namespace"] == id
            })
            .and_then(|p| p["id"].as_i64())
    }
}
