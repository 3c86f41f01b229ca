//! Time Doctor 2 (`/api/1.0`): users, projects and worklogs.
//!
//! Settings: [`SOURCE`]`.example` shows them all.
//!
//! A run logs in with email and password (read-only permission) and sends the token as
//! `Authorization: JWT …`. Users and projects are read whole. Worklogs are read in
//! windows of five days (longer ranges fail) for every user at once, from the bookmark
//! minus the lookback to now; the bookmark moves after each window. Worklogs carry no id:
//! the key is a hash of user, start, device and task, so a re-read merges in place.
//!
//! With `backup` set, each backed-up month ([`backup`], written by `observes job
//! timedoctor-backup`) is read from its backup and the months between from the API: the
//! history outlives the API's, which forgets worklogs after about a year.

pub mod backup;

use std::sync::LazyLock;

use chrono::{Duration, Utc};
use observes_http::{Auth, HttpClient};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use crate::stream::{Emitter, Sink, StreamDef};
use crate::window::{format_time, parse_time, resume_from, windows, Month, Time};
use crate::{HttpSettings, SourceError};

/// The streams the Time Doctor source extracts.
pub const STREAM_NAMES: [&str; 3] = ["users", "projects", "worklogs"];

crate::registry::register!(
    TimeDoctorConfig,
    "timedoctor",
    "Time Doctor: users, projects and worklogs.",
    "Settings (TOML): api_url, email_env, password_env, company_id, start_date, …",
    r#"api_url = "https://api2.timedoctor.com"
email_env = "TIMEDOCTOR_EMAIL"          # or email = "…"
password_env = "TIMEDOCTOR_PASSWORD"    # or password = "…"
company_id = "Qm3xT9aLp0ZrW7cB"         # default: the login's first company
start_date = "2025-01-01T00:00:00Z"     # default: a year ago, or the first backed-up month
lookback_days = 3                       # worklogs are edited after the fact
backup = "s3://bucket/observes/timedoctor/backup"  # months kept by `observes job timedoctor-backup`
retention_days = 365                    # how long the API keeps worklogs
"#,
    crate::registry::Demo {
        about:
            "The Time Doctor source against a fake Time Doctor (settings in data/timedoctor.toml).",
        pipeline: "timedoctor",
        settings: None,
        job: "/observes/etl/timedoctor",
        schedule: "cron(0 0/6 * * ? *)",
        size: "nano",
        attempts: 2,
        timeout: "1h",
        settings_extra: "# Months kept by the backup job, beside the demo's other storage.\n\
                         backup = \"../storage/timedoctor/backup\"\n",
        more_jobs: r#"
# The worklogs of the last full month, kept while the API still serves them (about a
# year); the timedoctor pipeline reads these months before the API.
[jobs."/observes/etl/timedoctor/backup"]
command = ["observes", "job", "timedoctor-backup"]
schedule = "cron(0 3 2 * ? *)"
size = "nano"
attempts = 3
timeout = "2h"
tags = { source = "timedoctor" }
"#,
    },
    |mut settings: TimeDoctorConfig, dir: &std::path::Path| {
        settings.backup = settings
            .backup
            .map(|url| crate::resolve_location(&url, dir));
        settings
    }
);

/// The Time Doctor source's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeDoctorConfig {
    /// The API's base URL.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The account's email itself; prefer `email_env`.
    pub email: Option<String>,
    /// The environment variable holding the email.
    pub email_env: Option<String>,
    /// The password itself; prefer `password_env`.
    pub password: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// The company (default: the account's first).
    pub company_id: Option<String>,
    /// Streams to extract (default: all).
    pub streams: Option<Vec<String>>,
    /// The earliest worklog day extracted (default: 30 days ago).
    pub start_date: Option<String>,
    /// The end of the extracted range (default: now); for bounded backfills.
    pub end_date: Option<String>,
    /// Worklogs are re-read this many days behind their bookmark.
    #[serde(default = "default_lookback_days")]
    pub lookback_days: i64,
    /// Where the monthly backups are (`s3://bucket/prefix` or a folder, relative to the
    /// settings file): read before the API, written by `observes job timedoctor-backup`.
    pub backup: Option<String>,
    /// How many days back the API serves worklogs; older months that were never backed up
    /// are reported as lost.
    #[serde(default = "default_retention_days")]
    pub retention_days: i64,
    /// How it talks HTTP.
    #[serde(default)]
    pub http: HttpSettings,
}

fn default_retention_days() -> i64 {
    365
}

fn default_api_url() -> String {
    "https://api2.timedoctor.com".into()
}
fn default_lookback_days() -> i64 {
    3
}

/// Longer worklog ranges fail; the old tap used five days.
const WINDOW_DAYS: i64 = 5;
/// Users or projects one list call reads.
pub const LIST_LIMIT: usize = 1000;
/// Users per worklog request (the answer holds one list per user).
const USERS_PER_REQUEST: usize = 25;

impl TimeDoctorConfig {
    /// Settings for the fake Time Doctor at `api_url`.
    pub fn for_fake(api_url: &str, email: &str, password: &str) -> TimeDoctorConfig {
        TimeDoctorConfig {
            api_url: api_url.to_string(),
            email: Some(email.to_string()),
            email_env: None,
            password: Some(password.to_string()),
            password_env: None,
            company_id: None,
            streams: None,
            start_date: None,
            end_date: None,
            lookback_days: default_lookback_days(),
            backup: None,
            retention_days: default_retention_days(),
            http: HttpSettings::default(),
        }
    }
}

fn text() -> Value {
    json!({"type": ["null", "string"]})
}

/// Every Time Doctor stream.
pub static STREAMS: LazyLock<Vec<StreamDef>> = LazyLock::new(|| {
    vec![
        StreamDef {
            name: "users",
            key_properties: &["id"],
            replication_key: None,
            schema: json!({"type": "object", "properties": {
                "id": {"type": "string"}, "name": text(), "email": text(), "role": text(),
                "timezone": text(), "active": {"type": ["null", "boolean"]},
                "company_id": text()
            }}),
        },
        StreamDef {
            name: "projects",
            key_properties: &["id"],
            replication_key: None,
            schema: json!({"type": "object", "properties": {
                "id": {"type": "string"}, "name": text(),
                "deleted": {"type": ["null", "boolean"]}, "company_id": text()
            }}),
        },
        StreamDef {
            name: "worklogs",
            key_properties: &["id"],
            replication_key: Some("start_time"),
            schema: json!({"type": "object", "properties": {
                "id": {"type": "string"},
                "user_id": {"type": "string"}, "user_name": text(),
                "project_id": text(), "project_name": text(),
                "task_id": text(), "task_name": text(), "device_id": text(),
                "start_time": {"type": "string", "format": "date-time"},
                "end_time": {"type": "string", "format": "date-time"},
                "seconds": {"type": "integer"},
                "mode": text(), "work_mode": text(),
                "edited": {"type": "boolean"},
                "company_id": text()
            }}),
        },
    ]
});

fn stream_def(name: &str) -> &'static StreamDef {
    STREAMS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| unreachable!("stream {name} is defined"))
}

/// The classic API's labels for TD2's modes, which the warehouse kept across the move.
pub fn work_mode(mode: &str) -> &'static str {
    match mode {
        "computer" => "online",
        "offline" | "offcomputer" => "offline or afk",
        "mobile" => "mobile app",
        "manual" => "manually added",
        "break" | "paidBreak" | "unpaidBreak" => "on break",
        _ => "other",
    }
}

struct TimeDoctor {
    client: HttpClient,
    base: Url,
    company: String,
}

/// Extracts every selected stream, resuming from `state`.
pub async fn run(
    config: &TimeDoctorConfig,
    state: Option<&Value>,
    sink: &mut dyn Sink,
) -> Result<u64, SourceError> {
    let streams = crate::select_streams(config.streams.as_deref(), &STREAM_NAMES, "Time Doctor")?;
    let email = crate::secret(
        &config.email,
        &config.email_env,
        "TIMEDOCTOR_EMAIL",
        "Time Doctor email",
    )?;
    let password = crate::secret(
        &config.password,
        &config.password_env,
        "TIMEDOCTOR_PASSWORD",
        "Time Doctor password",
    )?;
    let time = |field: &str, text: &Option<String>| -> Result<Option<Time>, SourceError> {
        text.as_deref()
            .map(|t| {
                parse_time(t).ok_or_else(|| {
                    SourceError::Config(format!(
                        "Time Doctor {field} {t:?} is not an RFC 3339 timestamp"
                    ))
                })
            })
            .transpose()
    };
    let now = time("end_date", &config.end_date)?.unwrap_or_else(Utc::now);
    let start = time("start_date", &config.start_date)?;
    let base = Url::parse(&config.api_url).map_err(SourceError::setting(format!(
        "Time Doctor api_url {:?}",
        config.api_url
    )))?;
    // No published limit; the old tap spaced calls 0.75 s apart.
    let client = config.http.client(1.3)?.with_secret(&password);
    let credentials = json!({
        "email": email, "password": password, "totpCode": "", "permissions": "read"
    })
    .to_string();
    let login = client
        .get_json(|c| {
            c.post(url(&base, "/api/1.0/login"))
                .header("content-type", "application/json")
                .body(credentials.clone())
        })
        .await
        .map_err(SourceError::http("login"))?
        .body;
    let token = login
        .pointer("/data/token")
        .and_then(Value::as_str)
        .ok_or_else(|| SourceError::Data {
            stream: "login".into(),
            message: "the login answer has no data.token".into(),
        })?;
    let client = client.with_auth(Auth::Header {
        name: "Authorization".into(),
        value: format!("JWT {token}"),
    });
    let company = match &config.company_id {
        Some(id) => id.clone(),
        None => {
            let me = client
                .get_json(|c| c.get(url(&base, "/api/1.0/authorization")))
                .await
                .map_err(SourceError::http("authorization"))?
                .body;
            me.pointer("/data/companies/0/id")
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| SourceError::Data {
                    stream: "authorization".into(),
                    message: "the account has no company (data.companies[0].id)".into(),
                })?
        }
    };
    let td = TimeDoctor {
        client,
        base,
        company,
    };
    let mut em = Emitter::new(sink, state);
    // Worklogs are asked for per user, so the users are read for either stream.
    let users = if streams.contains(&"users") || streams.contains(&"worklogs") {
        td.list("users", "/api/1.0/users").await?
    } else {
        Vec::new()
    };
    if streams.contains(&"users") {
        for user in &users {
            let record = td.user(user)?;
            em.record(stream_def("users"), record)?;
        }
        em.describe(stream_def("users"))?;
        em.checkpoint()?;
    }
    if streams.contains(&"projects") {
        for project in td.list("projects", "/api/1.0/projects").await? {
            let mut record = Map::new();
            record.insert("id".into(), required_id(&project, "projects")?);
            record.insert(
                "name".into(),
                project.get("name").cloned().unwrap_or(Value::Null),
            );
            record.insert(
                "deleted".into(),
                project
                    .get("deleted")
                    .filter(|d| d.is_boolean())
                    .cloned()
                    .unwrap_or(Value::Null),
            );
            record.insert("company_id".into(), json!(td.company));
            em.record(stream_def("projects"), record)?;
        }
        em.describe(stream_def("projects"))?;
        em.checkpoint()?;
    }
    if streams.contains(&"worklogs") {
        td.worklogs(&mut em, &users, config, start, now).await?;
    }
    let records = em.records();
    // Ends the session; a failure here loses nothing (the token expires on its own).
    let _ = td
        .client
        .send(|c| c.get(url(&td.base, "/api/1.0/logout")))
        .await;
    Ok(records)
}

fn url(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url
}

fn required_id(item: &Value, stream: &str) -> Result<Value, SourceError> {
    match item.get("id") {
        Some(Value::String(id)) => Ok(json!(id)),
        Some(Value::Number(n)) => Ok(json!(n.to_string())),
        _ => Err(SourceError::Data {
            stream: stream.into(),
            message: format!(
                "an item has no id: {}",
                crate::truncate(&item.to_string(), 200)
            ),
        }),
    }
}

impl TimeDoctor {
    /// A `{"data": [...]}` list of the company, in one call of at most [`LIST_LIMIT`]
    /// items. A full answer fails the run rather than cut the list short: how the API
    /// pages these lists is not documented.
    async fn list(&self, stream: &str, path: &str) -> Result<Vec<Value>, SourceError> {
        let mut url = url(&self.base, path);
        url.query_pairs_mut()
            .append_pair("company", &self.company)
            .append_pair("limit", &LIST_LIMIT.to_string());
        let body = self
            .client
            .get_json(|c| c.get(url.clone()))
            .await
            .map_err(SourceError::http(stream))?
            .body;
        match body.get("data") {
            Some(Value::Array(items)) if items.len() >= LIST_LIMIT => Err(SourceError::Data {
                stream: stream.into(),
                message: format!(
                    "the company has {LIST_LIMIT} or more {stream}, more than one call reads; nothing was loaded"
                ),
            }),
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(SourceError::Data {
                stream: stream.into(),
                message: "expected {\"data\": [...]}".into(),
            }),
        }
    }

    fn user(&self, user: &Value) -> Result<Map<String, Value>, SourceError> {
        let mut record = Map::new();
        record.insert("id".into(), required_id(user, "users")?);
        for field in ["name", "email", "role"] {
            record.insert(
                field.into(),
                user.get(field).cloned().unwrap_or(Value::Null),
            );
        }
        record.insert(
            "timezone".into(),
            user.get("tzTimezone")
                .or(user.get("timezone"))
                .cloned()
                .unwrap_or(Value::Null),
        );
        record.insert(
            "active".into(),
            user.get("active")
                .filter(|a| a.is_boolean())
                .cloned()
                .unwrap_or(Value::Null),
        );
        record.insert("company_id".into(), json!(self.company));
        Ok(record)
    }

    /// From the bookmark (minus the lookback) to `now`: each backed-up month from its
    /// backup, the months between from the API.
    async fn worklogs(
        &self,
        em: &mut Emitter<'_>,
        users: &[Value],
        config: &TimeDoctorConfig,
        start: Option<Time>,
        now: Time,
    ) -> Result<(), SourceError> {
        let stream = stream_def("worklogs");
        let done = em
            .bookmark("worklogs", None)
            .and_then(|b| b.get("done_until"))
            .and_then(Value::as_str)
            .and_then(parse_time);
        let backups = match &config.backup {
            Some(url) => Some(backup::Backups::open(url)?),
            None => None,
        };
        let manifests = match &backups {
            Some(backups) => backups.manifests("worklogs").await?,
            None => Vec::new(),
        };
        let kept_since = now - Duration::days(config.retention_days.max(0));
        // A first run starts at the first backed-up month if the API has forgotten it.
        let first_backup = manifests
            .first()
            .and_then(|m| m.month.parse::<Month>().ok())
            .map(|m| m.start());
        let from = resume_from(
            done,
            Duration::days(config.lookback_days.max(0)),
            start,
            first_backup.map_or(kept_since, |b| b.min(kept_since)),
        );
        let mut ids: Vec<(String, Value)> = Vec::new();
        for user in users {
            if let Value::String(id) = required_id(user, "users")? {
                ids.push((id, user.get("name").cloned().unwrap_or(Value::Null)));
            }
        }
        let backed: std::collections::BTreeMap<Month, &backup::Manifest> = manifests
            .iter()
            .filter_map(|m| Some((m.month.parse::<Month>().ok()?, m)))
            .collect();
        // Month by month from `from`: a backed-up month from its backup, the months
        // between from the API, each stretch of them at once.
        let mut at = from;
        let mut lost = Vec::new();
        while at < now {
            let month = Month::of(at);
            if let (Some(backups), Some(manifest)) = (&backups, backed.get(&month)) {
                let since = at;
                backups
                    .each_record(manifest, |record| {
                        let started = record
                            .get("start_time")
                            .and_then(Value::as_str)
                            .and_then(parse_time);
                        match started {
                            Some(t) if t >= since && t < now => em.record(stream, record),
                            _ => Ok(()),
                        }
                    })
                    .await?;
                at = month.end().min(now);
                em.set_bookmark("worklogs", None, json!({ "done_until": format_time(at) }));
                em.checkpoint()?;
                continue;
            }
            let until = backed
                .range(month.next()..)
                .next()
                .map_or(now, |(m, _)| m.start().min(now));
            lost.extend(
                Month::range(month, Month::of(until - Duration::seconds(1)))
                    .filter(|m| m.start() < kept_since)
                    .map(|m| m.to_string()),
            );
            self.api_worklogs(em, &ids, at, until).await?;
            at = until;
        }
        if !lost.is_empty() {
            em.notice(
                stream.name,
                format!(
                    "months {} were never backed up and are older than retention_days ({}): only what the API still serves of them is loaded",
                    lost.join(", "),
                    config.retention_days
                ),
            );
        }
        em.describe(stream)?;
        Ok(())
    }

    /// Worklogs of `[from, until)` from the API, window by window, every user; the
    /// bookmark moves after each window.
    async fn api_worklogs(
        &self,
        em: &mut Emitter<'_>,
        ids: &[(String, Value)],
        from: Time,
        until: Time,
    ) -> Result<(), SourceError> {
        let stream = stream_def("worklogs");
        for (window_start, window_end) in windows(from, until, Duration::days(WINDOW_DAYS)) {
            for chunk in ids.chunks(USERS_PER_REQUEST) {
                let mut url = url(&self.base, "/api/1.0/activity/worklog");
                let joined: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
                url.query_pairs_mut()
                    .append_pair("company", &self.company)
                    .append_pair("user", &joined.join(","))
                    .append_pair("from", &format_time(window_start))
                    .append_pair("to", &format_time(window_end))
                    .append_pair("detail", "true")
                    .append_pair("task-project-names", "true");
                let body = self
                    .client
                    .get_json(|c| c.get(url.clone()))
                    .await
                    .map_err(SourceError::http("worklogs"))?
                    .body;
                let Some(Value::Array(per_user)) = body.get("data") else {
                    return Err(SourceError::Data {
                        stream: "worklogs".into(),
                        message: "expected {\"data\": [[...], ...]}".into(),
                    });
                };
                if per_user.len() != chunk.len() {
                    return Err(SourceError::Data {
                        stream: "worklogs".into(),
                        message: format!(
                            "asked for {} users, got {} lists",
                            chunk.len(),
                            per_user.len()
                        ),
                    });
                }
                for ((user_id, user_name), items) in chunk.iter().zip(per_user) {
                    let Value::Array(items) = items else {
                        return Err(SourceError::Data {
                            stream: "worklogs".into(),
                            message: format!("user {user_id}: expected a list of worklogs"),
                        });
                    };
                    for item in items {
                        let record = worklog(item, user_id, user_name, &self.company)?;
                        em.record(stream, record)?;
                    }
                }
            }
            em.set_bookmark(
                "worklogs",
                None,
                json!({ "done_until": format_time(window_end) }),
            );
            em.checkpoint()?;
        }
        Ok(())
    }
}

/// One worklog as a record. Its key hashes what tells worklogs apart (the API has no id).
pub fn worklog(
    item: &Value,
    user_id: &str,
    user_name: &Value,
    company: &str,
) -> Result<Map<String, Value>, SourceError> {
    let bad = |message: String| SourceError::Data {
        stream: "worklogs".into(),
        message: format!(
            "user {user_id}: {message}: {}",
            crate::truncate(&item.to_string(), 200)
        ),
    };
    let start = item
        .get("start")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .ok_or_else(|| bad("a worklog without a valid start".into()))?;
    let seconds = item
        .get("time")
        .and_then(Value::as_i64)
        .filter(|s| *s >= 0)
        .ok_or_else(|| bad("a worklog without a whole number of seconds in time".into()))?;
    let text = |field: &str| match item.get(field) {
        Some(Value::String(s)) if !s.is_empty() => json!(s),
        Some(Value::Number(n)) => json!(n.to_string()),
        _ => Value::Null,
    };
    let mode = item.get("mode").and_then(Value::as_str).unwrap_or("");
    let device = text("deviceId");
    let task = text("taskId");
    let identity = format!(
        "{user_id}\u{1f}{}\u{1f}{}\u{1f}{}",
        format_time(start),
        device.as_str().unwrap_or(""),
        task.as_str().unwrap_or("")
    );
    let id = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(identity.as_bytes()));
    let mut record = Map::new();
    record.insert("id".into(), json!(id));
    record.insert("user_id".into(), json!(user_id));
    record.insert("user_name".into(), user_name.clone());
    record.insert("project_id".into(), text("projectId"));
    record.insert("project_name".into(), text("projectName"));
    record.insert("task_id".into(), task);
    record.insert("task_name".into(), text("taskName"));
    record.insert("device_id".into(), device);
    record.insert("start_time".into(), json!(format_time(start)));
    record.insert(
        "end_time".into(),
        json!(format_time(start + Duration::seconds(seconds))),
    );
    record.insert("seconds".into(), json!(seconds));
    record.insert(
        "mode".into(),
        if mode.is_empty() {
            Value::Null
        } else {
            json!(mode)
        },
    );
    record.insert("work_mode".into(), json!(work_mode(mode)));
    record.insert("edited".into(), json!(mode == "manual"));
    record.insert("company_id".into(), json!(company));
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worklog_gets_a_stable_key_and_the_classic_labels() {
        let item = json!({"start":"2024-03-04T13:02:11Z","time":5400,"mode":"manual","userId":"U1",
            "taskId":"T1","taskName":"Code review","projectId":"P1","projectName":"Platform","deviceId":"d1"});
        let a = worklog(&item, "U1", &json!("Ada"), "C").unwrap();
        let mut edited = item.clone();
        edited["time"] = json!(60);
        let b = worklog(&edited, "U1", &json!("Ada"), "C").unwrap();
        assert_eq!(a["id"], b["id"], "an edit keeps the key");
        assert_eq!(a["end_time"], json!("2024-03-04T14:32:11.000Z"));
        assert_eq!(a["work_mode"], json!("manually added"));
        assert_eq!(a["edited"], json!(true));
        let errors = [
            (
                json!({"time": 5}),
                "user U1: a worklog without a valid start",
            ),
            (
                json!({"start": "yesterday", "time": 5}),
                "user U1: a worklog without a valid start",
            ),
            (
                json!({"start": "2024-03-04T13:02:11Z", "time": "5"}),
                "user U1: a worklog without a whole number of seconds in time",
            ),
            (
                json!({"start": "2024-03-04T13:02:11Z", "time": -1}),
                "user U1: a worklog without a whole number of seconds in time",
            ),
        ];
        for (item, message) in errors {
            let e = worklog(&item, "U1", &Value::Null, "C")
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("stream worklogs: {message}: ")),
                "{e}"
            );
        }
    }
}
