//! Checkly (Public API v1): checks, check groups, check results, check statuses, check
//! alerts, alert channels, dashboards, environment variables, maintenance windows,
//! snippets and daily rolled-up reporting.
//!
//! Settings: [`SOURCE`]`.example` shows them all.
//!
//! Check results and check alerts are read in the API's windows of at most six hours,
//! every page of every window, from the bookmark (minus a lookback) to now; the bookmark
//! moves after each finished window. Reporting is rolled up per UTC day, each finished
//! day once (key: check and day). Values of secret environment variables (`locked` or
//! `secret`) are replaced by null before they leave the source.

use chrono::{Duration, DurationRound, Utc};
use observes_http::{Auth, HttpClient, PageBudget, PagePosition, PageStyle, Pager};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;
use url::Url;

use crate::stream::{object, Emitter, Sink, StreamDef};
use crate::window::{format_time, parse_time, resume_from, windows, Time};
use crate::{HttpSettings, SourceError};

/// The streams the Checkly source extracts.
pub const STREAM_NAMES: [&str; 11] = [
    "checks",
    "check_groups",
    "check_statuses",
    "alert_channels",
    "dashboards",
    "variables",
    "maintenance_windows",
    "snippets",
    "reporting",
    "check_results",
    "check_alerts",
];

crate::registry::register!(
    ChecklyConfig,
    "checkly",
    "Checkly: checks, groups, results, statuses, alerts, channels, dashboards, …",
    "Settings (TOML): api_url, account_id_env, api_key_env, streams, start_date, …",
    r#"api_url = "https://api.checklyhq.com"
account_id_env = "CHECKLY_ACCOUNT_ID"   # or account_id = "…"
api_key_env = "CHECKLY_API_KEY"         # or api_key = "…"
start_date = "2024-03-01T00:00:00Z"     # default: 30 days ago (raw results live 30 days)
"#,
    crate::registry::Demo {
        about: "The Checkly source against a fake Checkly (settings in data/checkly.toml).",
        pipeline: "checkly",
        settings: None,
        job: "/observes/etl/checkly",
        schedule: "cron(15 * * * ? *)",
        size: "nano",
        attempts: 2,
        timeout: "30m",
        settings_extra: "",
        more_jobs: "",
    }
);

/// The Checkly source's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklyConfig {
    /// The API's base URL.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The account id itself; prefer `account_id_env`.
    pub account_id: Option<String>,
    /// The environment variable holding the account id.
    pub account_id_env: Option<String>,
    /// The API key itself; prefer `api_key_env`.
    pub api_key: Option<String>,
    /// The environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Streams to extract (default: all).
    pub streams: Option<Vec<String>>,
    /// The earliest result, alert and reporting day extracted (default: 30 days ago).
    pub start_date: Option<String>,
    /// The end of the extracted time range (default: now); for bounded backfills.
    pub end_date: Option<String>,
    /// Incremental streams re-read this far behind their bookmark.
    #[serde(default = "default_lookback")]
    pub lookback_seconds: i64,
    /// Pages per run across all streams; where it stops is kept in the bookmarks.
    pub max_pages: Option<u64>,
    /// The check-results route's own limit (Checkly: 5 requests per 10 seconds).
    #[serde(default = "default_results_rate")]
    pub results_requests_per_second: f64,
    /// How it talks HTTP.
    #[serde(default)]
    pub http: HttpSettings,
}

fn default_api_url() -> String {
    "https://api.checklyhq.com".into()
}
fn default_lookback() -> i64 {
    600
}
fn default_results_rate() -> f64 {
    0.5
}

/// Pages hold at most 100 items (the API's maximum).
const LIMIT: u64 = 100;
/// Raw results and alerts are served in windows of at most six hours.
const WINDOW_HOURS: i64 = 6;

impl ChecklyConfig {
    /// Settings for the fake Checkly at `api_url`.
    pub fn for_fake(api_url: &str, account_id: &str, api_key: &str) -> ChecklyConfig {
        ChecklyConfig {
            api_url: api_url.to_string(),
            account_id: Some(account_id.to_string()),
            account_id_env: None,
            api_key: Some(api_key.to_string()),
            api_key_env: None,
            streams: None,
            start_date: None,
            end_date: None,
            lookback_seconds: default_lookback(),
            max_pages: None,
            results_requests_per_second: 50.0,
            http: HttpSettings::default(),
        }
    }

    fn selected(&self) -> Result<Vec<&'static str>, SourceError> {
        crate::select_streams(self.streams.as_deref(), &STREAM_NAMES, "Checkly")
    }
}

/// Where each stream comes from.
struct Endpoint {
    stream: &'static str,
    /// The OpenAPI component describing its records.
    component: &'static str,
    key: &'static [&'static str],
    replication_key: Option<&'static str>,
    path: &'static str,
    /// Takes `limit`/`page`.
    paged: bool,
}

const ENDPOINTS: [Endpoint; 11] = [
    Endpoint {
        stream: "checks",
        component: "Check",
        key: &["id"],
        replication_key: None,
        path: "/v1/checks",
        paged: true,
    },
    Endpoint {
        stream: "check_groups",
        component: "CheckGroup",
        key: &["id"],
        replication_key: None,
        path: "/v1/check-groups",
        paged: true,
    },
    Endpoint {
        stream: "check_statuses",
        component: "CheckStatus",
        key: &["checkId"],
        replication_key: None,
        path: "/v1/check-statuses",
        paged: false,
    },
    Endpoint {
        stream: "alert_channels",
        component: "AlertChannel",
        key: &["id"],
        replication_key: None,
        path: "/v1/alert-channels",
        paged: true,
    },
    Endpoint {
        stream: "dashboards",
        component: "Dashboard",
        key: &["dashboardId"],
        replication_key: None,
        path: "/v1/dashboards",
        paged: true,
    },
    Endpoint {
        stream: "variables",
        component: "EnvironmentVariable",
        key: &["key"],
        replication_key: None,
        path: "/v1/variables",
        paged: false,
    },
    Endpoint {
        stream: "maintenance_windows",
        component: "MaintenanceWindow",
        key: &["id"],
        replication_key: None,
        path: "/v1/maintenance-windows",
        paged: true,
    },
    Endpoint {
        stream: "snippets",
        component: "Snippet",
        key: &["id"],
        replication_key: None,
        path: "/v1/snippets",
        paged: true,
    },
    Endpoint {
        stream: "reporting",
        component: "Reporting",
        key: &["checkId", "from"],
        replication_key: Some("from"),
        path: "/v1/reporting",
        paged: false,
    },
    Endpoint {
        stream: "check_results",
        component: "CheckResult",
        key: &["id"],
        replication_key: Some("created_at"),
        path: "/v1/check-results",
        paged: true,
    },
    Endpoint {
        stream: "check_alerts",
        component: "CheckAlert",
        key: &["id"],
        replication_key: Some("created_at"),
        path: "/v1/check-alerts",
        paged: true,
    },
];

/// Every Checkly stream.
pub static STREAMS: LazyLock<Vec<StreamDef>> = LazyLock::new(|| {
    ENDPOINTS
        .iter()
        .map(|e| {
            let mut schema = crate::schemas::checkly(e.component);
            if e.stream == "reporting" {
                // The day a rollup covers is part of its key.
                schema["properties"]["from"] = json!({"type": "string", "format": "date-time"});
                schema["properties"]["to"] = json!({"type": "string", "format": "date-time"});
            }
            StreamDef {
                name: e.stream,
                key_properties: e.key,
                replication_key: e.replication_key,
                schema,
            }
        })
        .collect()
});

fn stream_def(name: &str) -> &'static StreamDef {
    STREAMS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| unreachable!("stream {name} is defined"))
}

fn path_of(name: &str) -> &'static str {
    ENDPOINTS
        .iter()
        .find(|e| e.stream == name)
        .map(|e| e.path)
        .unwrap_or_else(|| unreachable!("stream {name} is defined"))
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Records sent.
    pub records: u64,
    /// True when the page cap stopped the run; the bookmarks hold where to continue.
    pub capped: bool,
}

struct Checkly<'a> {
    config: &'a ChecklyConfig,
    client: HttpClient,
    results_client: HttpClient,
    base: Url,
    budget: PageBudget,
    now: Time,
    start: Time,
}

/// Extracts every selected stream, resuming from `state`.
pub async fn run(
    config: &ChecklyConfig,
    state: Option<&Value>,
    sink: &mut dyn Sink,
) -> Result<RunReport, SourceError> {
    let streams = config.selected()?;
    let account = crate::secret(
        &config.account_id,
        &config.account_id_env,
        "CHECKLY_ACCOUNT_ID",
        "Checkly account id",
    )?;
    let key = crate::secret(
        &config.api_key,
        &config.api_key_env,
        "CHECKLY_API_KEY",
        "Checkly API key",
    )?;
    let auth = |client: HttpClient| {
        client
            .with_auth(Auth::Bearer(key.clone()))
            .with_header("X-Checkly-Account", &account)
    };
    // 600 requests a minute per account; check results have their own, lower limit.
    let client = auth(config.http.client(10.0)?);
    let results_client = auth(config.http.client(config.results_requests_per_second)?);
    let base = Url::parse(&config.api_url).map_err(SourceError::setting(format!(
        "Checkly api_url {:?}",
        config.api_url
    )))?;
    let now = match &config.end_date {
        Some(text) => parse_time(text).ok_or_else(|| {
            SourceError::Config(format!(
                "Checkly end_date {text:?} is not an RFC 3339 timestamp"
            ))
        })?,
        None => Utc::now(),
    };
    let start = match &config.start_date {
        Some(text) => parse_time(text).ok_or_else(|| {
            SourceError::Config(format!(
                "Checkly start_date {text:?} is not an RFC 3339 timestamp"
            ))
        })?,
        None => now - Duration::days(30),
    };
    let checkly = Checkly {
        config,
        client,
        results_client,
        base,
        budget: config
            .max_pages
            .map_or_else(PageBudget::unlimited, PageBudget::new),
        now,
        start,
    };
    let mut em = Emitter::new(sink, state);
    let keys: Vec<String> = streams.iter().map(|s| s.to_string()).collect();
    for i in em.rotation(&keys) {
        let stream = streams[i];
        let capped = match stream {
            "reporting" => checkly.reporting(&mut em).await?,
            "check_results" => checkly.check_results(&mut em).await?,
            "check_alerts" => {
                let url = checkly.url(path_of("check_alerts"));
                checkly.windowed(&mut em, "check_alerts", None, url).await?
            }
            other => checkly.whole(&mut em, other).await?,
        };
        if capped {
            em.set_resume_at(Some(stream));
            em.checkpoint()?;
            tracing::warn!(
                pages = config.max_pages,
                at = stream,
                "Checkly: the page cap was reached; the next run continues from here"
            );
            return Ok(RunReport {
                records: em.records(),
                capped: true,
            });
        }
    }
    em.set_resume_at(None);
    em.checkpoint()?;
    Ok(RunReport {
        records: em.records(),
        capped: false,
    })
}

impl Checkly<'_> {
    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        url
    }

    fn pager(&self, url: Url, position: Option<PagePosition>) -> Pager {
        let style = PageStyle::PageNumbers {
            page_param: "page".into(),
            limit_param: "limit".into(),
            limit: LIMIT,
            total: None,
        };
        Pager::resume(style, url, position, self.budget.clone())
    }

    fn emit(&self, em: &mut Emitter<'_>, stream: &str, item: Value) -> Result<(), SourceError> {
        let mut record = object(stream, item)?;
        hide_secrets(stream, &mut record);
        em.record(stream_def(stream), record)
    }

    /// A stream read whole every run (merge by key); paged ones resume a capped walk.
    async fn whole(&self, em: &mut Emitter<'_>, stream: &'static str) -> Result<bool, SourceError> {
        let url = self.url(path_of(stream));
        let paged = ENDPOINTS.iter().any(|e| e.stream == stream && e.paged);
        if !paged {
            if !self.budget.take() {
                return Ok(true);
            }
            let body = self
                .client
                .get_json(|c| c.get(url.clone()))
                .await
                .map_err(SourceError::http(stream))?
                .body;
            let Value::Array(items) = body else {
                return Err(SourceError::Data {
                    stream: stream.into(),
                    message: "expected a JSON array".into(),
                });
            };
            for item in items {
                self.emit(em, stream, item)?;
            }
            em.describe(stream_def(stream))?;
            em.checkpoint()?;
            return Ok(false);
        }
        let position = em
            .bookmark(stream, None)
            .and_then(|b| b.get("resume"))
            .and_then(|p| serde_json::from_value(p.clone()).ok());
        let mut pager = self.pager(url, position);
        while let Some(page) = pager
            .next_page(&self.client)
            .await
            .map_err(SourceError::http(stream))?
        {
            for item in page.items {
                self.emit(em, stream, item)?;
            }
            let mark = match pager.position() {
                Some(p) => json!({ "resume": p }),
                None => json!({}),
            };
            em.set_bookmark(stream, None, mark);
            em.checkpoint()?;
        }
        em.describe(stream_def(stream))?;
        Ok(pager.capped())
    }

    /// Each check's results, window by window.
    async fn check_results(&self, em: &mut Emitter<'_>) -> Result<bool, SourceError> {
        let ids = self.check_ids().await?;
        for id in ids {
            let url = self.url(&format!("{}/{id}", path_of("check_results")));
            if self.windowed(em, "check_results", Some(&id), url).await? {
                return Ok(true);
            }
        }
        em.describe(stream_def("check_results"))?;
        Ok(false)
    }

    async fn check_ids(&self) -> Result<Vec<String>, SourceError> {
        let mut pager = self.pager(self.url(path_of("checks")), None);
        let mut ids = Vec::new();
        while let Some(page) = pager
            .next_page(&self.client)
            .await
            .map_err(SourceError::http("checks"))?
        {
            ids.extend(
                page.items
                    .iter()
                    .filter_map(|c| c.get("id").and_then(Value::as_str).map(String::from)),
            );
        }
        Ok(ids)
    }

    /// Every page of every window from the bookmark (minus the lookback) to now. The
    /// bookmark `{"done_until": T}` moves after each window; a capped window keeps its
    /// next page as `"page"` and is resumed exactly.
    async fn windowed(
        &self,
        em: &mut Emitter<'_>,
        stream: &'static str,
        partition: Option<&str>,
        url: Url,
    ) -> Result<bool, SourceError> {
        let mark = em.bookmark(stream, partition).cloned().unwrap_or(json!({}));
        let done = mark
            .get("done_until")
            .and_then(Value::as_str)
            .and_then(parse_time);
        let page = mark
            .get("page")
            .and_then(|p| serde_json::from_value::<PagePosition>(p.clone()).ok());
        let from = match (done, &page) {
            (Some(t), Some(_)) => t,
            _ => resume_from(
                done,
                Duration::seconds(self.config.lookback_seconds),
                Some(self.start),
                self.start,
            ),
        };
        let mut resume = page;
        for (window_start, window_end) in windows(from, self.now, Duration::hours(WINDOW_HOURS)) {
            let mut window_url = url.clone();
            window_url
                .query_pairs_mut()
                .append_pair("from", &window_start.timestamp().to_string())
                .append_pair("to", &window_end.timestamp().to_string());
            let mut pager = self.pager(window_url, resume.take());
            let client = if stream == "check_results" {
                &self.results_client
            } else {
                &self.client
            };
            while let Some(page) = pager
                .next_page(client)
                .await
                .map_err(SourceError::http(stream))?
            {
                for item in page.items {
                    self.emit(em, stream, item)?;
                }
                if let Some(next) = pager.position() {
                    em.set_bookmark(
                        stream,
                        partition,
                        json!({"done_until": format_time(window_start), "page": next}),
                    );
                    em.checkpoint()?;
                }
            }
            if pager.capped() {
                return Ok(true);
            }
            em.set_bookmark(
                stream,
                partition,
                json!({ "done_until": format_time(window_end) }),
            );
            em.checkpoint()?;
        }
        Ok(false)
    }

    /// Rolled-up reporting per finished UTC day, each day once.
    async fn reporting(&self, em: &mut Emitter<'_>) -> Result<bool, SourceError> {
        const STREAM: &str = "reporting";
        let day = |t: Time| t.duration_trunc(Duration::days(1)).unwrap_or(t);
        let next_day = em
            .bookmark(STREAM, None)
            .and_then(|b| b.get("next_day"))
            .and_then(Value::as_str)
            .and_then(parse_time);
        let first = day(next_day.unwrap_or(self.start).max(self.start));
        let today = day(self.now);
        for (from, to) in windows(first, today, Duration::days(1)) {
            if !self.budget.take() {
                return Ok(true);
            }
            let mut url = self.url(path_of(STREAM));
            url.query_pairs_mut()
                .append_pair("from", &from.timestamp().to_string())
                .append_pair("to", &to.timestamp().to_string());
            let body = self
                .client
                .get_json(|c| c.get(url.clone()))
                .await
                .map_err(SourceError::http(STREAM))?
                .body;
            let Value::Array(items) = body else {
                return Err(SourceError::Data {
                    stream: STREAM.into(),
                    message: "expected a JSON array".into(),
                });
            };
            for item in items {
                let mut record = object(STREAM, item)?;
                record.insert("from".into(), json!(format_time(from)));
                record.insert("to".into(), json!(format_time(to)));
                em.record(stream_def(STREAM), record)?;
            }
            em.set_bookmark(STREAM, None, json!({ "next_day": format_time(to) }));
            em.checkpoint()?;
        }
        em.describe(stream_def(STREAM))?;
        Ok(false)
    }
}

/// Nulls the values of secret environment variables, wherever a stream carries them.
fn hide_secrets(stream: &str, record: &mut Map<String, Value>) {
    let hide = |var: &mut Value| {
        let secret = var.get("locked").and_then(Value::as_bool) == Some(true)
            || var.get("secret").and_then(Value::as_bool) == Some(true);
        if secret {
            if let Some(value) = var.get_mut("value") {
                *value = Value::Null;
            }
        }
    };
    match stream {
        "variables" => {
            let mut whole = Value::Object(std::mem::take(record));
            hide(&mut whole);
            if let Value::Object(map) = whole {
                *record = map;
            }
        }
        "checks" | "check_groups" => {
            if let Some(Value::Array(vars)) = record.get_mut("environmentVariables") {
                vars.iter_mut().for_each(hide);
            }
        }
        _ => {}
    }
}
