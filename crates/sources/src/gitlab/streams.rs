//! The GitLab streams and how each is walked.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use chrono::Duration;
use observes_http::{PageBudget, PagePosition, PageStyle, Pager};
use serde_json::{json, Map, Value};

use super::{GitlabApi, GitlabConfig};
use crate::stream::{object, Emitter, StreamDef};
use crate::window::{format_time, parse_time, resume_from, Time};
use crate::SourceError;

fn def(
    name: &'static str,
    file: &str,
    key_properties: &'static [&'static str],
    replication_key: Option<&'static str>,
) -> StreamDef {
    StreamDef {
        name,
        key_properties,
        replication_key,
        schema: crate::schemas::gitlab(file),
    }
}

/// Every GitLab stream.
pub static STREAMS: LazyLock<Vec<StreamDef>> = LazyLock::new(|| {
    vec![
        def("projects", "projects", &["id"], None),
        def(
            "project_members",
            "project_members",
            &["project_id", "id"],
            None,
        ),
        def("pipelines", "pipelines", &["id"], Some("updated_at")),
        def("jobs", "jobs", &["id"], Some("id")),
        def(
            "merge_requests",
            "merge_requests",
            &["id"],
            Some("updated_at"),
        ),
        def("issues", "issues", &["id"], Some("updated_at")),
    ]
});

fn stream_def(name: &str) -> &'static StreamDef {
    STREAMS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| unreachable!("stream {name} is defined"))
}

/// Job statuses that can still change.
const OPEN_JOB_STATUSES: [&str; 7] = [
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "canceling",
    "scheduled",
];

pub(super) struct Extractor<'a> {
    pub api: &'a GitlabApi,
    pub config: &'a GitlabConfig,
    pub budget: PageBudget,
    /// Numeric project ids by configured name (which may be a path).
    pub project_ids: Mutex<HashMap<String, i64>>,
    /// `start_date`, checked before the first request.
    pub start_date: Option<Time>,
}

impl Extractor<'_> {
    /// Extracts one stream of one project; true when the page cap stopped it.
    pub(super) async fn stream(
        &self,
        em: &mut Emitter<'_>,
        stream: &str,
        project: &str,
    ) -> Result<bool, SourceError> {
        match stream {
            "projects" => self.project(em, project).await,
            "project_members" => self.members(em, project).await,
            "pipelines" => {
                self.by_updated_at(em, "pipelines", project, &["pipelines"], &[])
                    .await
            }
            "merge_requests" => {
                self.by_updated_at(
                    em,
                    "merge_requests",
                    project,
                    &["merge_requests"],
                    &[("state", "all"), ("scope", "all")],
                )
                .await
            }
            "issues" => {
                self.by_updated_at(em, "issues", project, &["issues"], &[("scope", "all")])
                    .await
            }
            "jobs" => self.jobs(em, project).await,
            other => unreachable!("stream {other} was checked"),
        }
    }

    fn http<'s>(
        &self,
        stream: &'s str,
    ) -> impl FnOnce(observes_http::HttpError) -> SourceError + 's {
        SourceError::http(stream)
    }

    /// The numeric id of a configured project (which may be given as a path).
    async fn project_id(&self, project: &str) -> Result<i64, SourceError> {
        if let Some(id) = self.known_id(project) {
            return Ok(id);
        }
        let body = self.fetch_project(project).await?;
        let id = body
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| SourceError::Data {
                stream: "projects".into(),
                message: format!("project {project:?} has no numeric \"id\""),
            })?;
        self.remember_id(project, id);
        Ok(id)
    }

    fn known_id(&self, project: &str) -> Option<i64> {
        self.project_ids.lock().ok()?.get(project).copied()
    }

    fn remember_id(&self, project: &str, id: i64) {
        if let Ok(mut ids) = self.project_ids.lock() {
            ids.insert(project.to_string(), id);
        }
    }

    /// One project (not charged to the page budget: it is one request per project).
    async fn fetch_project(&self, project: &str) -> Result<Value, SourceError> {
        let url = self.api.url(&["projects", project], &[]);
        self.api.get(&url).await.map_err(self.http("projects"))
    }

    async fn project(&self, em: &mut Emitter<'_>, project: &str) -> Result<bool, SourceError> {
        if !self.budget.take() {
            return Ok(true);
        }
        let body = self.fetch_project(project).await?;
        let record = object("projects", body)?;
        if let Some(id) = record.get("id").and_then(Value::as_i64) {
            self.remember_id(project, id);
        }
        em.record(stream_def("projects"), record)?;
        em.checkpoint()?;
        Ok(false)
    }

    /// Members (direct, inherited, invited groups), read whole; a capped walk resumes
    /// at its page.
    async fn members(&self, em: &mut Emitter<'_>, project: &str) -> Result<bool, SourceError> {
        const STREAM: &str = "project_members";
        let project_id = self.project_id(project).await?;
        let url = self.api.url(
            &["projects", project, "members", "all"],
            &[("per_page", self.config.page_size().to_string())],
        );
        let position = em
            .bookmark(STREAM, Some(project))
            .and_then(|b| b.get("resume"))
            .and_then(|p| serde_json::from_value::<PagePosition>(p.clone()).ok());
        let mut pager = Pager::resume(
            PageStyle::NextPageHeader,
            url,
            position,
            self.budget.clone(),
        );
        while let Some(page) = pager
            .next_page(&self.api.client)
            .await
            .map_err(self.http(STREAM))?
        {
            for item in page.items {
                let mut record = object(STREAM, item)?;
                record.insert("project_id".into(), json!(project_id));
                em.record(stream_def(STREAM), record)?;
            }
            let bookmark = match pager.position() {
                Some(p) => json!({ "resume": p }),
                None => json!({}),
            };
            em.set_bookmark(STREAM, Some(project), bookmark);
            em.checkpoint()?;
        }
        Ok(pager.capped())
    }

    /// Pipelines, merge requests and issues: sorted by `updated_at` ascending and walked
    /// by moving `updated_after` to the last timestamp seen.
    ///
    /// The bookmark `{"updated_after": T}` means everything updated before `T` is loaded;
    /// `"page"` is present only inside a run of more than a page of equal timestamps.
    async fn by_updated_at(
        &self,
        em: &mut Emitter<'_>,
        stream: &'static str,
        project: &str,
        path: &[&str],
        filters: &[(&str, &str)],
    ) -> Result<bool, SourceError> {
        let def = stream_def(stream);
        let project_id = self.project_id(project).await?;
        let bookmark = em.bookmark(stream, Some(project)).cloned();
        let saved = bookmark
            .as_ref()
            .and_then(|b| b.get("updated_after"))
            .and_then(Value::as_str)
            .and_then(parse_time);
        let saved_page = bookmark
            .as_ref()
            .and_then(|b| b.get("page"))
            .and_then(Value::as_u64);
        let start_date = self.start_date;
        // Mid-walk resumes exactly where it was; a finished walk backs off by the lookback.
        let mut cursor: Option<Time> = match (saved, saved_page) {
            (Some(t), Some(_)) => Some(t),
            (Some(t), None) => Some(resume_from(
                Some(t),
                Duration::seconds(self.config.lookback_seconds),
                start_date,
                t,
            )),
            (None, _) => start_date,
        };
        let mut page = saved_page.unwrap_or(1).max(1);
        let mut newest = saved;
        let per_page = self.config.page_size() as usize;
        let mut segments = vec!["projects", project];
        segments.extend_from_slice(path);
        loop {
            if !self.budget.take() {
                return Ok(true);
            }
            let mut query = vec![
                ("order_by", "updated_at".to_string()),
                ("sort", "asc".to_string()),
                ("per_page", per_page.to_string()),
                ("page", page.to_string()),
            ];
            query.extend(filters.iter().map(|(k, v)| (*k, v.to_string())));
            if let Some(c) = cursor {
                // A millisecond earlier, so `updated_after` includes `c` whether the
                // server compares with > or >=.
                query.push(("updated_after", format_time(c - Duration::milliseconds(1))));
            }
            let url = self.api.url(&segments, &query);
            let body = self.api.get(&url).await.map_err(self.http(stream))?;
            let Value::Array(items) = body else {
                return Err(SourceError::Data {
                    stream: stream.into(),
                    message: format!("{}: expected a JSON array", url.path()),
                });
            };
            let count = items.len();
            let mut last: Option<Time> = None;
            for item in items {
                let mut record = object(stream, item)?;
                let updated = record
                    .get("updated_at")
                    .and_then(Value::as_str)
                    .and_then(parse_time)
                    .ok_or_else(|| SourceError::Data {
                        stream: stream.into(),
                        message: format!(
                            "record {} has no valid \"updated_at\"",
                            record.get("id").unwrap_or(&Value::Null)
                        ),
                    })?;
                last = last.max(Some(updated));
                flatten(stream, &mut record, project_id);
                em.record(def, record)?;
            }
            newest = newest.max(last);
            if count < per_page {
                let done = newest.map_or(json!({}), |t| json!({"updated_after": format_time(t)}));
                em.set_bookmark(stream, Some(project), done);
                em.checkpoint()?;
                return Ok(false);
            }
            match (last, cursor) {
                (Some(l), Some(c)) if l <= c => page += 1,
                _ => {
                    cursor = last;
                    page = 1;
                }
            }
            let at = cursor.map(format_time);
            let mut mark = json!({ "updated_after": at });
            if page > 1 {
                mark["page"] = json!(page);
            }
            em.set_bookmark(stream, Some(project), mark);
            em.checkpoint()?;
        }
    }

    /// Jobs newest-first (keyset on id) down to the floor: the oldest job that was still
    /// unfinished at the last walk. A capped walk keeps its next page and resumes there.
    ///
    /// Bookmark: `{"floor": F}` between walks; `{"floor": F, "walk": {"next": URL,
    /// "top": T, "lowest_open": X}}` inside one.
    async fn jobs(&self, em: &mut Emitter<'_>, project: &str) -> Result<bool, SourceError> {
        const STREAM: &str = "jobs";
        let def = stream_def(STREAM);
        let project_id = self.project_id(project).await?;
        let bookmark = em
            .bookmark(STREAM, Some(project))
            .cloned()
            .unwrap_or(json!({}));
        let floor = bookmark.get("floor").and_then(Value::as_i64).unwrap_or(0);
        let walk = bookmark.get("walk");
        let mut top = walk.and_then(|w| w.get("top")).and_then(Value::as_i64);
        let mut lowest_open = walk
            .and_then(|w| w.get("lowest_open"))
            .and_then(Value::as_i64);
        let start_date = self.start_date;
        let first = self.api.url(
            &["projects", project, "jobs"],
            &[
                ("pagination", "keyset".into()),
                ("order_by", "id".into()),
                ("sort", "desc".into()),
                ("per_page", self.config.page_size().to_string()),
            ],
        );
        let next = walk
            .and_then(|w| w.get("next"))
            .and_then(Value::as_str)
            .map(|next| PagePosition::Url(next.to_string()));
        let mut pager = Pager::resume(PageStyle::LinkHeader, first, next, self.budget.clone());
        let mut below_floor = false;
        while let Some(page) = pager
            .next_page(&self.api.client)
            .await
            .map_err(self.http(STREAM))?
        {
            for item in page.items {
                let mut record = object(STREAM, item)?;
                let id =
                    record
                        .get("id")
                        .and_then(Value::as_i64)
                        .ok_or_else(|| SourceError::Data {
                            stream: STREAM.into(),
                            message: "a job has no numeric \"id\"".into(),
                        })?;
                let created = record
                    .get("created_at")
                    .and_then(Value::as_str)
                    .and_then(parse_time);
                if id < floor || (start_date.is_some() && created < start_date) {
                    below_floor = true;
                    break;
                }
                top = top.max(Some(id));
                let status = record.get("status").and_then(Value::as_str).unwrap_or("");
                if OPEN_JOB_STATUSES.contains(&status) {
                    lowest_open = Some(lowest_open.map_or(id, |l| l.min(id)));
                }
                flatten(STREAM, &mut record, project_id);
                em.record(def, record)?;
            }
            match pager.position() {
                Some(PagePosition::Url(next)) if !below_floor => {
                    em.set_bookmark(
                        STREAM,
                        Some(project),
                        json!({"floor": floor, "walk": {"next": next, "top": top, "lowest_open": lowest_open}}),
                    );
                    em.checkpoint()?;
                }
                _ => break,
            }
        }
        if pager.capped() && !below_floor {
            return Ok(true);
        }
        let new_floor = lowest_open.or(top.map(|t| t + 1)).unwrap_or(floor);
        em.set_bookmark(STREAM, Some(project), json!({ "floor": new_floor }));
        em.checkpoint()?;
        Ok(false)
    }
}

/// The id of a nested object (`{"author": {"id": 5}}` → 5).
fn nested_id(record: &Map<String, Value>, field: &str) -> Value {
    record
        .get(field)
        .and_then(|v| v.get("id"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Adds the fields the reference schemas have beyond the raw API: `project_id`, the
/// flattened ids, and user lists as id lists.
fn flatten(stream: &str, record: &mut Map<String, Value>, project_id: i64) {
    record
        .entry("project_id")
        .or_insert_with(|| json!(project_id));
    let ids = |fields: &[(&str, &str)], record: &mut Map<String, Value>| {
        for (from, to) in fields {
            let id = nested_id(record, from);
            record.insert(to.to_string(), id);
        }
    };
    match stream {
        "jobs" => ids(
            &[
                ("pipeline", "pipeline_id"),
                ("user", "user_id"),
                ("runner", "runner_id"),
                ("commit", "commit_id"),
            ],
            record,
        ),
        "merge_requests" | "issues" => {
            ids(
                &[
                    ("author", "author_id"),
                    ("assignee", "assignee_id"),
                    ("closed_by", "closed_by_id"),
                    ("milestone", "milestone_id"),
                ],
                record,
            );
            if stream == "merge_requests" {
                let merged_by = match nested_id(record, "merged_by") {
                    Value::Null => nested_id(record, "merge_user"),
                    id => id,
                };
                record.insert("merged_by_id".into(), merged_by);
            } else if let Some(iid) = record.get("epic").and_then(|e| e.get("iid")).cloned() {
                record.insert("epic_iid".into(), iid);
            }
            for list in ["assignees", "reviewers"] {
                if let Some(Value::Array(users)) = record.get_mut(list) {
                    for user in users.iter_mut() {
                        if let Some(id) = user.get("id").cloned() {
                            *user = id;
                        }
                    }
                }
            }
        }
        _ => {}
    }
}
