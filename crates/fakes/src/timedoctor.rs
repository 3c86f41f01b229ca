//! A fake Time Doctor 2 API (`/api/1.0`): login, authorization, users, projects and
//! worklogs, following `reference/timedoctor.md`.
//!
//! Login takes email and password and answers a token; every other call wants it as
//! `Authorization: JWT <token>` (or `?token=`), else 401 `{"message":"Unauthorized"}`.
//! Worklogs take a comma-separated `user` list and answer one list per user in request
//! order; `from` is inclusive, `to` exclusive, and a range over seven days is a 400.
//!
//! Like the real one it forgets: with a retention window, worklogs that started longer
//! ago than that before its clock are no longer served (the clock is the world's `now`,
//! which tests move).

use std::sync::{Arc, Mutex};

use axum::extract::{Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::{lock, param, Faults, Query, Rng, Server};

/// What the fake Time Doctor generates and accepts.
#[derive(Debug, Clone)]
pub struct TimeDoctorOptions {
    /// The seed: the same seed makes the same world.
    pub seed: u64,
    /// Users.
    pub users: usize,
    /// Projects.
    pub projects: usize,
    /// Days of worklogs before `now`.
    pub history_days: i64,
    /// The account's email the fake accepts at login.
    pub email: String,
    /// The account's password.
    pub password: String,
    /// The clock: worklogs exist up to here.
    pub now: DateTime<Utc>,
    /// Days back from the clock that worklogs are served (none: all of them).
    pub retention_days: Option<i64>,
}

impl Default for TimeDoctorOptions {
    fn default() -> Self {
        TimeDoctorOptions {
            seed: 1,
            users: 4,
            projects: 3,
            history_days: 14,
            email: "analytics@example.com".into(),
            password: "td-fake-password".into(),
            now: Utc::now(),
            retention_days: None,
        }
    }
}

const MODES: [&str; 6] = [
    "computer",
    "computer",
    "computer",
    "manual",
    "mobile",
    "offcomputer",
];
const TASKS: [&str; 4] = ["Code review", "Meetings", "Development", "Support"];

/// The fake Time Doctor's data, as its API serves it.
#[derive(Debug)]
pub struct TimeDoctorWorld {
    /// The company's id.
    pub company_id: String,
    /// Users.
    pub users: Vec<Value>,
    /// Projects.
    pub projects: Vec<Value>,
    /// Every worklog with its user's id, sorted by start.
    pub worklogs: Vec<Value>,
    /// The token handed out at login (and the only one accepted).
    pub token: String,
    /// The clock: what started after it is not served yet, nor what started more than
    /// the retention window before it.
    pub now: DateTime<Utc>,
    /// How far back from `now` worklogs are served.
    pub retention: Option<Duration>,
    email: String,
    password: String,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl TimeDoctorWorld {
    fn generate(options: &TimeDoctorOptions) -> TimeDoctorWorld {
        let mut rng = Rng::new(options.seed);
        let id = |prefix: &str, n: usize| format!("{prefix}{n:04}x{:08}", options.seed);
        let names = [
            "Ada Lovelace",
            "Alan Turing",
            "Grace Hopper",
            "Edsger Dijkstra",
            "Barbara Liskov",
            "Donald Knuth",
        ];
        let users: Vec<Value> = (0..options.users)
            .map(|i| {
                let name = names[i % names.len()];
                json!({"id": id("U", i), "name": name,
                       "email": format!("{}@example.com", name.split(' ').next().unwrap_or("user").to_lowercase()),
                       "role": if i == 0 { "owner" } else { "user" }, "tzTimezone": "America/Bogota",
                       "active": true})
            })
            .collect();
        let project_names = ["Platform", "Customer success", "Data", "Security"];
        let projects: Vec<Value> = (0..options.projects)
            .map(|i| json!({"id": id("P", i), "name": project_names[i % project_names.len()], "deleted": false}))
            .collect();
        let mut worklogs = Vec::new();
        let first_day = (options.now - Duration::days(options.history_days))
            .duration_trunc(Duration::days(1))
            .unwrap_or(options.now);
        for day in 0..=options.history_days {
            let date = first_day + Duration::days(day);
            let weekend = matches!(
                chrono::Datelike::weekday(&date),
                chrono::Weekday::Sat | chrono::Weekday::Sun
            );
            for (u, user) in users.iter().enumerate() {
                // Weekends off, but for the odd one out.
                if weekend && !crate::shape::rare(&[options.seed, day as u64, u as u64], 120) {
                    continue;
                }
                // Three to five stretches of work a day, from 13:00 UTC.
                let mut at = date + Duration::hours(13) + Duration::minutes(rng.below(30) as i64);
                for _ in 0..3 + rng.below(3) {
                    let seconds = 900 + rng.below(8) as i64 * 900;
                    if at + Duration::seconds(seconds) > options.now {
                        break;
                    }
                    let project = rng.pick(&projects);
                    let task = rng.below(TASKS.len() as u64) as usize;
                    worklogs.push(json!({
                        "start": ts(at), "time": seconds, "mode": rng.pick(&MODES),
                        "userId": user["id"], "taskId": format!("T{task}"), "taskName": TASKS[task],
                        "projectId": project["id"], "projectName": project["name"],
                        "deviceId": format!("device-{u}"), "date": at.format("%Y-%m-%d").to_string()
                    }));
                    at += Duration::seconds(seconds + 300 + rng.below(1800) as i64);
                }
            }
        }
        worklogs.sort_by(|a, b| a["start"].as_str().cmp(&b["start"].as_str()));
        TimeDoctorWorld {
            company_id: format!("C{:014}", options.seed),
            users,
            projects,
            worklogs,
            token: format!("td-jwt-{:016x}", rng.next_u64()),
            now: options.now,
            retention: options.retention_days.map(Duration::days),
            email: options.email.clone(),
            password: options.password.clone(),
        }
    }

    /// Whether a worklog that started at `start` is still served.
    fn serves(&self, start: DateTime<Utc>) -> bool {
        self.retention.is_none_or(|kept| start >= self.now - kept)
    }

    /// Adds a worklog (a test's "new work since the last run").
    pub fn add_worklog(&mut self, worklog: Value) {
        self.worklogs.push(worklog);
        self.worklogs
            .sort_by(|a, b| a["start"].as_str().cmp(&b["start"].as_str()));
    }
}

type Shared = Arc<Mutex<TimeDoctorWorld>>;

/// A running fake Time Doctor; the API is at [`FakeTimeDoctor::api_url`].
pub struct FakeTimeDoctor {
    /// The server.
    pub server: Server,
    /// Its data, which tests may change.
    pub world: Shared,
    /// The email it accepts.
    pub email: String,
    /// The password it accepts.
    pub password: String,
}

/// This fake in the registry ([`crate::FAKES`]).
pub const FAKE: crate::FakeKind = crate::FakeKind::of::<FakeTimeDoctor>("timedoctor");

impl crate::SeededFake for FakeTimeDoctor {
    fn start_seeded(seed: u64, port: u16) -> std::io::Result<Self> {
        let options = TimeDoctorOptions {
            seed,
            ..Default::default()
        };
        Self::start_on(options, port)
    }
}

impl crate::RunningFake for FakeTimeDoctor {
    fn server(&self) -> &crate::Server {
        &self.server
    }

    fn describe(&self) -> Vec<String> {
        vec![
            format!("fake Time Doctor at {}", self.api_url()),
            format!("email: {}", self.email),
            format!("password: {} (POST /api/1.0/login)", self.password),
        ]
    }

    fn settings(&self) -> String {
        format!(
            "# For the fake Time Doctor: a real account needs email_env and\n\
             # password_env instead.\n\
             api_url = \"{}\"\nemail = \"{}\"\npassword = \"{}\"\n[http]\nrequests_per_second = 100\n",
            self.api_url(),
            self.email,
            self.password
        )
    }

    fn wait(self: Box<Self>) {
        self.server.wait()
    }
}

impl FakeTimeDoctor {
    /// Starts it on a free port.
    pub fn start(options: TimeDoctorOptions) -> std::io::Result<FakeTimeDoctor> {
        FakeTimeDoctor::start_on(options, 0)
    }

    /// Starts it on `port` (0: a free one).
    pub fn start_on(options: TimeDoctorOptions, port: u16) -> std::io::Result<FakeTimeDoctor> {
        let world = Arc::new(Mutex::new(TimeDoctorWorld::generate(&options)));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let server = Server::spawn(router(world.clone()), faults, port)?;
        Ok(FakeTimeDoctor {
            server,
            world,
            email: options.email,
            password: options.password,
        })
    }

    /// The API's base URL.
    pub fn api_url(&self) -> String {
        self.server.base_url()
    }

    /// Its data, locked.
    pub fn world(&self) -> std::sync::MutexGuard<'_, TimeDoctorWorld> {
        lock(&self.world)
    }
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({"message": message}))).into_response()
}

fn router(world: Shared) -> Router {
    let signed_in = Router::new()
        .route("/api/1.0/logout", get(logout))
        .route("/api/1.0/authorization", get(authorization))
        .route("/api/1.0/users", get(users))
        .route("/api/1.0/projects", get(projects))
        .route("/api/1.0/activity/worklog", get(worklog))
        .route_layer(axum::middleware::from_fn_with_state(
            world.clone(),
            require_token,
        ));
    Router::new()
        .route("/api/1.0/login", post(login))
        .merge(signed_in)
        .with_state(world)
}

async fn login(State(world): State<Shared>, Json(body): Json<Value>) -> Response {
    let world = lock(&world);
    if body["email"] != json!(world.email) || body["password"] != json!(world.password) {
        return error(StatusCode::UNAUTHORIZED, "Invalid email or password");
    }
    Json(
        json!({"data": {"token": world.token, "expires": "2099-01-01T00:00:00Z",
                         "createdAt": "2024-03-05T10:00:00Z"}}),
    )
    .into_response()
}

/// The session token as `Authorization: JWT …` or `?token=`, else 401.
async fn require_token(
    State(world): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("JWT "))
        .map(String::from);
    let query = QueryParams::<Query>::try_from_uri(request.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let token = header.or_else(|| param(&query, "token").map(String::from));
    if token.as_deref() != Some(lock(&world).token.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    next.run(request).await
}

/// `answer` for the token owner's company, else 403.
fn in_company(
    world: &TimeDoctorWorld,
    query: &Query,
    answer: impl FnOnce() -> Response,
) -> Response {
    if param(query, "company") != Some(world.company_id.as_str()) {
        return error(StatusCode::FORBIDDEN, "No access to this company");
    }
    answer()
}

async fn logout() -> Response {
    Json(json!({"data": {}})).into_response()
}

async fn authorization(State(world): State<Shared>) -> Response {
    let world = lock(&world);
    Json(
        json!({"data": {"id": world.users.first().map(|u| u["id"].clone()),
                         "companies": [{"id": world.company_id, "name": "Example Inc."}]}}),
    )
    .into_response()
}

/// At most `limit` items (all by default).
fn limited(items: &[Value], q: &Query) -> Response {
    let limit = param(q, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    Json(json!({"data": &items[..items.len().min(limit)]})).into_response()
}

async fn users(State(world): State<Shared>, QueryParams(q): QueryParams<Query>) -> Response {
    let world = lock(&world);
    in_company(&world, &q, || limited(&world.users, &q))
}

async fn projects(State(world): State<Shared>, QueryParams(q): QueryParams<Query>) -> Response {
    let world = lock(&world);
    in_company(&world, &q, || limited(&world.projects, &q))
}

fn time_param(query: &Query, name: &str) -> Option<DateTime<Utc>> {
    let text = param(query, name)?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

async fn worklog(State(world): State<Shared>, QueryParams(q): QueryParams<Query>) -> Response {
    let world = lock(&world);
    in_company(&world, &q, || worklog_lists(&world, &q))
}

/// One list of worklogs per requested user, in request order.
fn worklog_lists(world: &TimeDoctorWorld, q: &Query) -> Response {
    let (Some(from), Some(to)) = (time_param(q, "from"), time_param(q, "to")) else {
        return error(StatusCode::BAD_REQUEST, "from and to are required dates");
    };
    if to - from > Duration::days(7) {
        return error(StatusCode::BAD_REQUEST, "The date range is too long");
    }
    let users: Vec<&str> = param(q, "user")
        .unwrap_or("")
        .split(',')
        .filter(|u| !u.is_empty())
        .collect();
    let lists: Vec<Vec<&Value>> = users
        .iter()
        .map(|user| {
            world
                .worklogs
                .iter()
                .filter(|w| w["userId"] == json!(user))
                .filter(|w| {
                    w["start"]
                        .as_str()
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .is_some_and(|s| {
                            s >= from && s < to && s <= world.now && world.serves(s.to_utc())
                        })
                })
                .collect()
        })
        .collect();
    Json(json!({"data": lists})).into_response()
}
