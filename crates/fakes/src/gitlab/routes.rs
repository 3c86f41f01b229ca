//! The REST v4 routes, answering as GitLab does.

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::pages::{keyset_page, offset_page};
use super::world::{ts, user};
use super::{GitlabWorld, Shared};
use crate::{lock, param, params, Query};

pub(super) fn router(world: Shared) -> Router {
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
