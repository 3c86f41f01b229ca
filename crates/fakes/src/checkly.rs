//! A fake Checkly Public API (v1): checks, groups, results, statuses, alerts, alert
//! channels, dashboards, variables, maintenance windows, snippets and reporting.
//!
//! Faithful where clients depend on it (see `reference/checkly.md`): both auth headers,
//! `limit` (1–100, default 10) and `page`, honoured on every list when sent; time
//! windows in UNIX seconds, at most six hours for results and alerts; the error body
//! `{"statusCode","error","message"}`.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use crate::{lock, param, Faults, Query, Rng, Server};

/// What the fake Checkly generates and accepts.
#[derive(Debug, Clone)]
pub struct ChecklyOptions {
    /// The seed: the same seed makes the same world.
    pub seed: u64,
    /// Checks.
    pub checks: usize,
    /// Check groups.
    pub groups: usize,
    /// Alert channels.
    pub alert_channels: usize,
    /// Dashboards.
    pub dashboards: usize,
    /// Every fourth is secret (`locked`).
    pub variables: usize,
    /// Maintenance windows.
    pub maintenance_windows: usize,
    /// Snippets.
    pub snippets: usize,
    /// Days of results before `now`; each check runs every `frequency_minutes`.
    pub history_days: i64,
    /// Minutes between two runs of a check.
    pub frequency_minutes: i64,
    /// The account id the fake accepts (`X-Checkly-Account`).
    pub account_id: String,
    /// The API key the fake accepts (`Authorization: Bearer`).
    pub api_key: String,
    /// The clock: results exist up to here.
    pub now: DateTime<Utc>,
}

impl Default for ChecklyOptions {
    fn default() -> Self {
        ChecklyOptions {
            seed: 1,
            checks: 5,
            groups: 2,
            alert_channels: 3,
            dashboards: 2,
            variables: 8,
            maintenance_windows: 2,
            snippets: 3,
            history_days: 2,
            frequency_minutes: 30,
            account_id: "4c1a7b2e-9d3f-4e5a-8b6c-0d1e2f3a4b5c".into(),
            api_key: "cu_fake_api_key".into(),
            now: Utc::now(),
        }
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

const LOCATIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];

/// The fake Checkly's data, as its API serves it.
#[derive(Debug)]
pub struct ChecklyWorld {
    /// Checks.
    pub checks: Vec<Value>,
    /// Check groups.
    pub groups: Vec<Value>,
    /// Alert channels.
    pub alert_channels: Vec<Value>,
    /// Dashboards.
    pub dashboards: Vec<Value>,
    /// Environment variables.
    pub variables: Vec<Value>,
    /// Maintenance windows.
    pub maintenance_windows: Vec<Value>,
    /// Snippets.
    pub snippets: Vec<Value>,
    /// Check results, oldest first.
    pub results: Vec<Value>,
    /// Alerts, oldest first.
    pub alerts: Vec<Value>,
    /// Results exist up to here; [`ChecklyWorld::run_until`] moves it.
    pub clock: DateTime<Utc>,
    frequency: Duration,
    account_id: String,
    api_key: String,
    rng: Rng,
    serial: u64,
}

impl ChecklyWorld {
    /// The world `o` describes.
    pub fn generate(o: &ChecklyOptions) -> ChecklyWorld {
        let mut rng = Rng::new(o.seed);
        let created = o.now - Duration::days(90);
        let mut world = ChecklyWorld {
            checks: Vec::new(),
            groups: Vec::new(),
            alert_channels: Vec::new(),
            dashboards: Vec::new(),
            variables: Vec::new(),
            maintenance_windows: Vec::new(),
            snippets: Vec::new(),
            results: Vec::new(),
            alerts: Vec::new(),
            clock: o.now - Duration::days(o.history_days),
            frequency: Duration::minutes(o.frequency_minutes.max(1)),
            account_id: o.account_id.clone(),
            api_key: o.api_key.clone(),
            rng: rng.clone(),
            serial: 0,
        };
        for g in 0..o.groups {
            world.groups.push(json!({
                "id": 31 + g, "name": format!("Group {}", g + 1), "activated": true, "muted": false,
                "tags": ["prod"], "locations": LOCATIONS[..2], "concurrency": 3,
                "apiCheckDefaults": {"url": "https://app.example.com", "headers": [], "queryParameters": [], "assertions": []},
                "environmentVariables": [{"key": "GROUP_TOKEN", "value": format!("group-secret-{g}"), "locked": true},
                                         {"key": "REGION", "value": "eu", "locked": false}],
                "doubleCheck": true, "useGlobalAlertSettings": true, "alertChannelSubscriptions": [],
                "setupSnippetId": null, "tearDownSnippetId": null, "runtimeId": "2024.02", "privateLocations": [],
                "created_at": ts(created), "updated_at": ts(created + Duration::days(g as i64)),
            }));
        }
        for c in 0..o.checks {
            let id = format!(
                "5d6e2d1c-8f3a-4b1e-9c61-{:012x}",
                rng.next_u64() & 0xffff_ffff_ffff
            );
            let api = c % 3 != 2;
            world.checks.push(json!({
                "id": id, "name": format!("{} check {}", if api { "API" } else { "Browser" }, c + 1),
                "checkType": if api { "API" } else { "BROWSER" }, "activated": true, "muted": false,
                "doubleCheck": true, "shouldFail": false, "frequency": o.frequency_minutes, "frequencyOffset": c,
                "locations": LOCATIONS[..2], "privateLocations": [], "tags": ["prod", if api { "api" } else { "web" }],
                "groupId": if o.groups > 0 { json!(31 + c % o.groups) } else { Value::Null }, "groupOrder": c,
                "runtimeId": "2024.02", "useGlobalAlertSettings": false,
                "alertSettings": {"escalationType": "RUN_BASED", "runBasedEscalation": {"failedRunThreshold": 2},
                                  "reminders": {"amount": 0, "interval": 5}},
                "alertChannelSubscriptions": [{"alertChannelId": 1024, "activated": true}],
                "request": if api { json!({"method": "GET", "url": format!("https://app.example.com/api/{c}"),
                    "followRedirects": true, "skipSSL": false, "body": "", "bodyType": "NONE", "headers": [],
                    "queryParameters": [], "assertions": [{"source": "STATUS_CODE", "property": "", "comparison": "EQUALS", "target": "200"}]}) } else { Value::Null },
                "script": if api { Value::Null } else { json!("await page.goto('https://app.example.com')") },
                "environmentVariables": [{"key": "PASSWORD", "value": format!("hunter{c}"), "locked": true},
                                         {"key": "USER", "value": "bot", "locked": false}],
                "setupSnippetId": null, "tearDownSnippetId": null, "degradedResponseTime": 5000, "maxResponseTime": 20000,
                "created_at": ts(created + Duration::hours(c as i64)), "updated_at": ts(created + Duration::days(10 + c as i64)),
            }));
        }
        for a in 0..o.alert_channels {
            let kind = ["EMAIL", "SLACK", "WEBHOOK"][a % 3];
            world.alert_channels.push(json!({
                "id": 1024 + a, "type": kind, "config": {"address": format!("ops{a}@example.com")},
                "subscriptions": [{"id": 7 + a, "checkId": world.checks.first().map(|c| c["id"].clone()), "groupId": null, "activated": true}],
                "sendRecovery": true, "sendFailure": true, "sendDegraded": false, "sslExpiry": false, "sslExpiryThreshold": 30,
                "created_at": ts(created), "updated_at": ts(created),
            }));
        }
        for d in 0..o.dashboards {
            world.dashboards.push(json!({
                "dashboardId": format!("dash-{}", d + 1), "customUrl": format!("status-{d}"), "customDomain": null,
                "logo": null, "favicon": null, "link": null, "header": "Status", "description": "Public status",
                "width": "FULL", "refreshRate": 60, "paginate": true, "paginationRate": 60, "checksPerPage": 15,
                "useTagsAndOperator": false, "hideTags": false, "tags": ["prod"],
            }));
        }
        for v in 0..o.variables {
            world.variables.push(json!({
                "key": format!("VAR_{v}"), "value": format!("value-{v}"), "locked": v % 4 == 0,
            }));
        }
        for m in 0..o.maintenance_windows {
            let starts = o.now + Duration::days(3 + m as i64);
            world.maintenance_windows.push(json!({
                "id": 400 + m, "name": format!("Upgrade {m}"), "tags": ["prod"], "startsAt": ts(starts),
                "endsAt": ts(starts + Duration::hours(2)), "repeatInterval": null, "repeatUnit": null, "repeatEndsAt": null,
                "created_at": ts(created), "updated_at": ts(created),
            }));
        }
        for s in 0..o.snippets {
            world.snippets.push(json!({
                "id": 90 + s, "name": format!("setup-{s}"), "script": "request.url = request.url + '/extra'",
                "created_at": ts(created), "updated_at": ts(created),
            }));
        }
        world.run_until(o.now);
        world
    }

    /// Runs every check at its frequency from the clock up to `until`: new results, and
    /// an alert for each failure.
    pub fn run_until(&mut self, until: DateTime<Utc>) {
        while self.clock + self.frequency <= until {
            self.clock += self.frequency;
            let at = self.clock;
            for c in 0..self.checks.len() {
                self.serial += 1;
                let check = &self.checks[c];
                let (check_id, name, kind) = (
                    check["id"].clone(),
                    check["name"].clone(),
                    check["checkType"].clone(),
                );
                let failed = self.rng.chance(8);
                let location = LOCATIONS[(self.serial % 2) as usize];
                // Around each check's own median, slower in busy hours, a rare spike;
                // keyed by the run, so the world's other draws stay as they were.
                let _ = self.rng.below(900);
                let serial = self.serial;
                let median = [180.0, 420.0, 950.0][c % 3];
                let mut response = crate::shape::spread(
                    &[serial, 1],
                    median * (0.8 + 0.4 * crate::shape::busy(at)),
                    0.25,
                );
                if crate::shape::rare(&[serial, 2], 8) {
                    response *= 6.0;
                }
                let response_time = response.round() as u64;
                // Checkly's degraded: slower than the check's degraded response time.
                let degraded = !failed && response > 1.6 * median;
                // Runs finish before the clock reads their slot: nothing is in the future.
                let started = at - Duration::seconds(5 + c as i64);
                let id = format!("0f7d6c2a-1b9e-4e0f-a3c4-{:012x}", self.serial);
                self.results.push(json!({
                    "id": id, "checkId": check_id, "name": name, "hasFailures": failed, "hasErrors": false,
                    "isDegraded": degraded, "overMaxResponseTime": false, "runLocation": location,
                    "startedAt": ts(started), "stoppedAt": ts(started + Duration::milliseconds(response_time as i64)),
                    "created_at": ts(started + Duration::milliseconds(response_time as i64 + 20)),
                    "responseTime": response_time, "checkRunId": 912_837_000 + self.serial, "attempts": if failed { 2 } else { 1 },
                    "apiCheckResult": if kind == "API" { json!({"assertions": [], "request": {"method": "GET", "url": "https://app.example.com/api", "data": "", "headers": {}, "params": {}},
                        "response": {"status": if failed { 503 } else { 200 }, "statusText": if failed { "Service Unavailable" } else { "OK" },
                        "body": "{\"ok\":true}", "headers": {"content-type": "application/json"},
                        "timings": {"socket": 1.2, "lookup": 8.4, "connect": 31.0, "response": 380.5, "end": 391.7},
                        "timingPhases": {"wait": 1.2, "dns": 7.2, "tcp": 22.6, "firstByte": 349.5, "download": 11.2, "total": 391.7}},
                        "requestError": null, "jobLog": null, "jobAssets": null}) } else { Value::Null },
                    "browserCheckResult": if kind == "BROWSER" { json!({"type": "PLAYWRIGHT", "errors": [], "startTime": started.timestamp_millis(),
                        "endTime": started.timestamp_millis() + response_time as i64, "runtimeVersion": "2024.02", "jobLog": null, "jobAssets": null,
                        "traceSummary": {}, "pages": [{"url": "https://app.example.com", "webVitals": {}}]}) } else { Value::Null },
                }));
                if failed {
                    self.alerts.push(json!({
                        "id": format!("{}", 70_000 + self.serial), "name": name, "checkId": check_id, "alertType": "ALERT_FAILURE",
                        "checkType": kind, "runLocation": location, "responseTime": response_time, "error": "HTTP 503",
                        "statusCode": "503", "created_at": ts(started + Duration::seconds(2)), "startedAt": ts(started),
                    }));
                }
            }
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        header("authorization").and_then(|v| v.strip_prefix("Bearer "))
            == Some(self.api_key.as_str())
            && header("x-checkly-account") == Some(self.account_id.as_str())
    }

    fn statuses(&self) -> Vec<Value> {
        self.checks
            .iter()
            .map(|check| {
                let last = self.results.iter().rev().find(|r| r["checkId"] == check["id"]);
                json!({
                    "name": check["name"], "checkId": check["id"],
                    "hasFailures": last.map_or(json!(false), |r| r["hasFailures"].clone()),
                    "hasErrors": false, "isDegraded": false, "longestRun": 1040, "shortestRun": 151,
                    "lastRunLocation": last.map_or(Value::Null, |r| r["runLocation"].clone()),
                    "lastCheckRunId": last.map_or(Value::Null, |r| json!(r["checkRunId"].to_string())),
                    "sslDaysRemaining": 64, "created_at": check["created_at"], "updated_at": last.map_or(Value::Null, |r| r["created_at"].clone()),
                })
            })
            .collect()
    }
}

type Shared = Arc<Mutex<ChecklyWorld>>;

/// A running fake Checkly; the API is at [`FakeCheckly::api_url`].
#[derive(Debug)]
pub struct FakeCheckly {
    /// The server.
    pub server: Server,
    /// Its data, which tests may change.
    pub world: Shared,
    /// The account id it accepts.
    pub account_id: String,
    /// The API key it accepts.
    pub api_key: String,
}

/// This fake in the registry ([`crate::FAKES`]).
pub const FAKE: crate::FakeKind = crate::FakeKind::of::<FakeCheckly>("checkly");

impl crate::SeededFake for FakeCheckly {
    fn start_seeded(seed: u64, port: u16) -> std::io::Result<Self> {
        let options = ChecklyOptions {
            seed,
            ..Default::default()
        };
        Self::start_on(options, port)
    }
}

impl crate::RunningFake for FakeCheckly {
    fn server(&self) -> &crate::Server {
        &self.server
    }

    fn describe(&self) -> Vec<String> {
        vec![
            format!("fake Checkly at {}", self.api_url()),
            format!("account: {} (header X-Checkly-Account)", self.account_id),
            format!("api key: {} (Authorization: Bearer)", self.api_key),
        ]
    }

    fn settings(&self) -> String {
        format!(
            "# For the fake Checkly: a real account needs account_id_env and\n\
             # api_key_env instead.\n\
             api_url = \"{}\"\naccount_id = \"{}\"\napi_key = \"{}\"\nresults_requests_per_second = 100\n[http]\nrequests_per_second = 100\n",
            self.api_url(),
            self.account_id,
            self.api_key
        )
    }

    fn wait(self: Box<Self>) {
        self.server.wait()
    }
}

impl FakeCheckly {
    /// Starts it on a free port.
    pub fn start(options: ChecklyOptions) -> std::io::Result<FakeCheckly> {
        FakeCheckly::start_on(options, 0)
    }

    /// Starts it on `port` (0: a free one).
    pub fn start_on(options: ChecklyOptions, port: u16) -> std::io::Result<FakeCheckly> {
        let world = Arc::new(Mutex::new(ChecklyWorld::generate(&options)));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let server = Server::spawn(router(world.clone()), faults, port)?;
        Ok(FakeCheckly {
            server,
            world,
            account_id: options.account_id,
            api_key: options.api_key,
        })
    }

    /// The API's base URL.
    pub fn api_url(&self) -> String {
        self.server.base_url()
    }

    /// Its data, locked.
    pub fn world(&self) -> std::sync::MutexGuard<'_, ChecklyWorld> {
        lock(&self.world)
    }
}

fn error(code: StatusCode, message: &str) -> Response {
    let body = json!({"statusCode": code.as_u16(), "error": code.canonical_reason().unwrap_or(""), "message": message});
    (code, Json(body)).into_response()
}

fn router(world: Shared) -> Router {
    Router::new()
        .route(
            "/v1/checks",
            get(|s, h, q| list(s, h, q, |w| w.checks.clone())),
        )
        .route(
            "/v1/check-groups",
            get(|s, h, q| list(s, h, q, |w| w.groups.clone())),
        )
        .route(
            "/v1/alert-channels",
            get(|s, h, q| list(s, h, q, |w| w.alert_channels.clone())),
        )
        .route(
            "/v1/dashboards",
            get(|s, h, q| list(s, h, q, |w| w.dashboards.clone())),
        )
        .route(
            "/v1/variables",
            get(|s, h, q| list(s, h, q, |w| w.variables.clone())),
        )
        .route(
            "/v1/maintenance-windows",
            get(|s, h, q| list(s, h, q, |w| w.maintenance_windows.clone())),
        )
        .route(
            "/v1/snippets",
            get(|s, h, q| list(s, h, q, |w| w.snippets.clone())),
        )
        .route(
            "/v1/check-statuses",
            get(|s, h, q| list(s, h, q, ChecklyWorld::statuses)),
        )
        .route("/v1/check-results/{check}", get(check_results))
        .route("/v1/check-alerts", get(check_alerts))
        .route("/v1/reporting", get(reporting))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found") })
        .with_state(world)
}

/// `limit`/`page` paging of a list (the whole list when neither is sent).
fn paged(list: Vec<Value>, query: &Query) -> Response {
    if param(query, "limit").is_none() && param(query, "page").is_none() {
        return Json(list).into_response();
    }
    let limit = match param(query, "limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "\"limit\" must be less than or equal to 100",
            )
        }
    };
    let page = match param(query, "page").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "\"page\" must be larger than or equal to 1",
            )
        }
    };
    let items: Vec<Value> = list
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .collect();
    Json(items).into_response()
}

async fn list(
    State(world): State<Shared>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
    items: impl Fn(&ChecklyWorld) -> Vec<Value>,
) -> Response {
    let world = lock(&world);
    if !world.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Bad Token");
    }
    paged(items(&world), &query)
}

/// The `from`/`to` window of a request (UNIX seconds), with the API's defaults and cap.
fn window(
    query: &Query,
    now: DateTime<Utc>,
    max: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Response> {
    let read = |k: &str| -> Result<Option<DateTime<Utc>>, Response> {
        match param(query, k) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .and_then(|s| Utc.timestamp_opt(s, 0).single())
                .map(Some)
                .ok_or_else(|| {
                    error(
                        StatusCode::BAD_REQUEST,
                        &format!("\"{k}\" must be a number"),
                    )
                }),
        }
    };
    let (from, to) = match (read("from")?, read("to")?) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, f + max),
        (None, Some(t)) => (t - max, t),
        (None, None) => (now - max, now),
    };
    if to - from > max {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the time window between \"from\" and \"to\" is too large",
        ));
    }
    Ok((from, to))
}

fn within(item: &Value, field: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    item[field]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t >= from && t <= to)
}

/// Items created in the request's window (at most six hours), newest first as the API
/// lists them, paged.
fn windowed(
    world: &ChecklyWorld,
    items: &[Value],
    query: &Query,
    keep: impl Fn(&Value) -> bool,
) -> Response {
    let (from, to) = match window(query, world.clock, Duration::hours(6)) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let list: Vec<Value> = items
        .iter()
        .rev()
        .filter(|item| keep(item) && within(item, "created_at", from, to))
        .cloned()
        .collect();
    paged(list, &with_default_paging(query))
}

async fn check_results(
    State(world): State<Shared>,
    Path(check): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
) -> Response {
    let world = lock(&world);
    if !world.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Bad Token");
    }
    if !world.checks.iter().any(|c| c["id"] == check) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    windowed(&world, &world.results, &query, |r| r["checkId"] == check)
}

async fn check_alerts(
    State(world): State<Shared>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
) -> Response {
    let world = lock(&world);
    if !world.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Bad Token");
    }
    windowed(&world, &world.alerts, &query, |_| true)
}

/// Paginated routes page even when the client sends no `limit` (default 10).
fn with_default_paging(query: &Query) -> Query {
    let mut q = query.clone();
    if param(&q, "limit").is_none() {
        q.push(("limit".into(), "10".into()));
    }
    q
}

async fn reporting(
    State(world): State<Shared>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<Query>,
) -> Response {
    let world = lock(&world);
    if !world.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Bad Token");
    }
    let (from, to) = match (param(&query, "from"), param(&query, "to")) {
        (Some(_), Some(_)) => match window(&query, world.clock, Duration::days(3650)) {
            Ok(w) => w,
            Err(r) => return r,
        },
        _ => (world.clock - Duration::hours(24), world.clock),
    };
    let rows: Vec<Value> = world
        .checks
        .iter()
        .map(|check| {
            let runs: Vec<&Value> = world.results.iter().filter(|r| r["checkId"] == check["id"] && within(r, "created_at", from, to)).collect();
            let ok = runs.iter().filter(|r| r["hasFailures"] == false).count();
            let mut times: Vec<f64> = runs.iter().filter_map(|r| r["responseTime"].as_f64()).collect();
            times.sort_by(f64::total_cmp);
            let pct = |p: f64| times.get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1))).copied().unwrap_or(0.0);
            let avg = if times.is_empty() { 0.0 } else { times.iter().sum::<f64>() / times.len() as f64 };
            json!({
                "name": check["name"], "checkId": check["id"], "checkType": check["checkType"], "deactivated": false,
                "tags": check["tags"],
                "aggregate": {"successRatio": if runs.is_empty() { 0.0 } else { (ok as f64 * 10000.0 / runs.len() as f64).round() / 100.0 },
                              "avg": (avg * 10.0).round() / 10.0, "p95": pct(0.95), "p99": pct(0.99)},
            })
        })
        .collect();
    Json(rows).into_response()
}
