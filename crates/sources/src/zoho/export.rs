//! Whole modules through bulk read: the exports that `observes job zoho-prepare` starts
//! and the `zoho` pipeline loads (`reference/zoho-crm.md`, "Bulk read job lifecycle").
//!
//! An export is one module's bulk read jobs, a page of at most 200,000 records each, in
//! order. It is recorded as `<Module>/bulk-read.json` in the `bulk.jobs` store, so the
//! job and the pipeline, run hours apart, share it:
//!
//! - prepare creates page 1's job unless the module's export is pending, or complete,
//!   fresh (`fresh_hours`) and not loaded yet;
//! - either one polls pending jobs and, when a completed page says `more_records`, creates
//!   the next page's job;
//! - the pipeline loads a module once every page is complete: it downloads every page
//!   first, then streams the records, then `ACTIVATE_VERSION` (the module's rows of
//!   earlier loads go: records deleted in Zoho leave the table), then a `STATE` naming
//!   the export. A module whose export failed, expired or is still running is named and
//!   left as it was; the others load.
//!
//! Every bulk call is spaced by `calls_per_minute` (Zoho allows 10 downloads a minute),
//! and a 429 that outlasts the retries is reported as the org's API limit.

use std::time::Duration;

use chrono::Utc;
use observes_http::{reqwest, HttpClient, HttpError, RateLimiter};
use observes_state::StateStore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;

use super::bulk::{self, Job, JobState};
use crate::window::{format_time, parse_time, Time};
use crate::SourceError;

/// The modules observes reads by default: the 16 the company uses.
pub const DEFAULT_MODULES: [&str; 16] = [
    "Leads",
    "Accounts",
    "Contacts",
    "Deals",
    "Campaigns",
    "Tasks",
    "Cases",
    "Calls",
    "Solutions",
    "Products",
    "Vendors",
    "Price_Books",
    "Quotes",
    "Sales_Orders",
    "Purchase_Orders",
    "Invoices",
];

/// How a module is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// The records API, changes since the bookmark (`If-Modified-Since`), 200 a page.
    #[default]
    Incremental,
    /// The whole module from the bulk read export prepared by `observes job zoho-prepare`.
    Bulk,
}

/// The `bulk` table of the Zoho settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkSettings {
    /// Where exports are recorded (`s3://bucket/prefix` or a folder, relative to the
    /// settings file); needed when a module is read in bulk.
    pub jobs: Option<String>,
    /// Bulk calls (create, poll, download) a minute; Zoho allows 10 downloads a minute.
    #[serde(default = "default_calls_per_minute")]
    pub calls_per_minute: f64,
    /// A complete export younger than this is reused by prepare, unless loaded already.
    #[serde(default = "default_fresh_hours")]
    pub fresh_hours: f64,
    /// How long after its creation an export's results can still be downloaded.
    #[serde(default = "default_expires_hours")]
    pub expires_hours: f64,
    /// How long the pipeline waits for a pending export before naming it and moving on.
    #[serde(default = "default_wait_minutes")]
    pub wait_minutes: f64,
    /// Seconds between polls of a pending job.
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: f64,
}

fn default_calls_per_minute() -> f64 {
    10.0
}
fn default_fresh_hours() -> f64 {
    12.0
}
fn default_expires_hours() -> f64 {
    24.0
}
fn default_wait_minutes() -> f64 {
    10.0
}
fn default_poll_seconds() -> f64 {
    30.0
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            jobs: None,
            calls_per_minute: default_calls_per_minute(),
            fresh_hours: default_fresh_hours(),
            expires_hours: default_expires_hours(),
            wait_minutes: default_wait_minutes(),
            poll_seconds: default_poll_seconds(),
        }
    }
}

fn hours(h: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((h.max(0.0) * 3_600_000.0) as i64)
}

/// One page's job in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageJob {
    /// The page, from 1.
    pub page: u32,
    /// The bulk read job.
    pub job_id: String,
    /// Its state as last polled (`ADDED`, `QUEUED`, `IN PROGRESS`, `COMPLETED`, `FAILED`).
    pub state: String,
    /// Records in the page, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Whether a next page exists, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_records: Option<bool>,
    /// Where the result is, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

/// One module's export: its pages' jobs in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// The module.
    pub module: String,
    /// When page 1's job was created (RFC 3339).
    pub created_at: String,
    /// The pages' jobs, page 1 first.
    pub pages: Vec<PageJob>,
    /// When a pipeline loaded it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
}

/// Where an export is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every page is complete: it can be loaded.
    Ready,
    /// A page's job is still running (or the next page's job is to be created).
    Pending {
        /// The page.
        page: u32,
        /// Its job.
        job_id: String,
        /// Its state.
        state: String,
    },
    /// A page's job failed or is unknown to Zoho: the export is lost.
    Failed {
        /// The page.
        page: u32,
        /// Its job.
        job_id: String,
        /// Its state (`FAILED`, or `NOT FOUND` for a job Zoho no longer knows).
        state: String,
    },
    /// Its results can no longer be downloaded.
    Expired,
}

impl Export {
    /// Its id: page 1's job.
    pub fn id(&self) -> &str {
        self.pages.first().map_or("", |p| p.job_id.as_str())
    }

    /// Records in its complete pages.
    pub fn rows(&self) -> u64 {
        self.pages.iter().filter_map(|p| p.count).sum()
    }

    fn created(&self) -> Option<Time> {
        parse_time(&self.created_at)
    }

    /// Where it is at `now`, results kept `expires_hours`.
    pub fn status(&self, now: Time, settings: &BulkSettings) -> Status {
        if self
            .created()
            .is_none_or(|c| now - c > hours(settings.expires_hours))
        {
            return Status::Expired;
        }
        for page in &self.pages {
            match JobState::parse(&page.state) {
                JobState::Completed => {}
                JobState::Failed | JobState::Other(_) => {
                    return Status::Failed {
                        page: page.page,
                        job_id: page.job_id.clone(),
                        state: page.state.clone(),
                    }
                }
                JobState::Added | JobState::Queued | JobState::InProgress => {
                    return Status::Pending {
                        page: page.page,
                        job_id: page.job_id.clone(),
                        state: page.state.clone(),
                    }
                }
            }
        }
        match self.pages.last() {
            Some(last) if last.more_records == Some(true) => Status::Pending {
                page: last.page + 1,
                job_id: String::new(),
                state: "not created".into(),
            },
            Some(_) => Status::Ready,
            None => Status::Expired,
        }
    }

    /// Whether prepare keeps it rather than start a new one: pending, or complete,
    /// fresh and not loaded yet.
    pub fn usable(&self, now: Time, settings: &BulkSettings) -> bool {
        match self.status(now, settings) {
            Status::Pending { .. } => true,
            Status::Ready => {
                self.loaded_at.is_none()
                    && self
                        .created()
                        .is_some_and(|c| now - c <= hours(settings.fresh_hours))
            }
            Status::Failed { .. } | Status::Expired => false,
        }
    }
}

/// Where exports are recorded.
#[derive(Debug, Clone)]
pub struct Exports {
    store: StateStore,
}

const RECORD: &str = "bulk-read.json";

/// The state recorded for a job Zoho answers 404 for.
const NOT_FOUND: &str = "NOT FOUND";

fn store_error(e: observes_state::StateError) -> SourceError {
    SourceError::Setting {
        setting: "Zoho bulk.jobs".into(),
        source: Box::new(e),
    }
}

impl Exports {
    /// The exports at `url` (`s3://…`, `file://…` or a folder).
    pub fn open(url: &str) -> Result<Exports, SourceError> {
        Ok(Exports {
            store: StateStore::open(url).map_err(store_error)?,
        })
    }

    /// Where they are.
    pub fn url(&self) -> &str {
        self.store.url()
    }

    /// A module's export, if one was recorded.
    pub async fn load(&self, module: &str) -> Result<Option<Export>, SourceError> {
        let Some((bytes, _)) = self
            .store
            .get_bytes(module, RECORD)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SourceError::Data {
                stream: super::stream_name(module),
                message: format!(
                    "{}/{module}/{RECORD} is not an export record ({e}): delete it and run `observes job zoho-prepare`",
                    self.store.url()
                ),
            })
    }

    /// Records `export` (replacing the module's earlier one).
    pub async fn save(&self, export: &Export) -> Result<(), SourceError> {
        let bytes = serde_json::to_vec_pretty(export).unwrap_or_default();
        self.store
            .put_bytes(&export.module, RECORD, bytes.into())
            .await
            .map_err(store_error)
    }
}

/// The bulk read API, its calls spaced by `calls_per_minute`.
#[derive(Debug, Clone)]
pub struct BulkApi {
    client: HttpClient,
    base: Url,
}

/// What a refused or failed bulk call is, for `module`'s stream: a 429 that outlasted
/// the retries is the org's API limit, said plainly.
fn call_error(module: &str, e: HttpError) -> SourceError {
    let stream = super::stream_name(module);
    match &e {
        HttpError::GaveUp { last, .. } | HttpError::Status { body: last, .. }
            if last.starts_with("HTTP 429") || last.contains("TOO_MANY_REQUESTS") =>
        {
            SourceError::Limit {
                stream,
                reason: "Zoho refused the calls as over the org's API limit: its API credits for the day are used up or too many calls run at once (credits renew over 24 hours; Setup → Developer Hub → APIs shows the usage)".into(),
                source: Box::new(e),
            }
        }
        _ => SourceError::Http { stream, source: e },
    }
}

impl BulkApi {
    /// Bulk calls through `client` (its auth, retries), at `calls_per_minute`.
    pub fn new(client: &HttpClient, base: Url, calls_per_minute: f64) -> BulkApi {
        BulkApi {
            client: client
                .clone()
                .with_rate_limit(RateLimiter::per_second(calls_per_minute.max(0.01) / 60.0)),
            base,
        }
    }

    fn url(&self, path: &str) -> Url {
        super::api_url(&self.base, path)
    }

    async fn job_call(
        &self,
        module: &str,
        asked: Option<u32>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Job, SourceError> {
        let body = self
            .client
            .get_json(build)
            .await
            .map_err(|e| call_error(module, e))?
            .body;
        bulk::parse_job(&body, asked.map(|page| (module, page))).map_err(|message| {
            SourceError::Data {
                stream: super::stream_name(module),
                message,
            }
        })
    }

    /// Creates the job for `page` of `module` (every field, CSV).
    pub async fn create(&self, module: &str, page: u32) -> Result<Job, SourceError> {
        let url = self.url("/crm/bulk/v2/read");
        let body =
            json!({"query": {"module": module, "page": page}, "file_type": "csv"}).to_string();
        self.job_call(module, Some(page), |c| {
            c.post(url.clone())
                .header("content-type", "application/json")
                .body(body.clone())
        })
        .await
    }

    /// A job as it is now.
    pub async fn poll(&self, module: &str, job_id: &str) -> Result<Job, SourceError> {
        let url = self.url(&format!("/crm/bulk/v2/read/{job_id}"));
        self.job_call(module, None, |c| c.get(url.clone())).await
    }

    /// Downloads a page's result into a temporary file. `Ok(None)`: the result is gone
    /// (404, expired).
    pub async fn download(
        &self,
        module: &str,
        page: &PageJob,
    ) -> Result<Option<std::fs::File>, SourceError> {
        let path = page
            .download_url
            .clone()
            .unwrap_or_else(|| format!("/crm/bulk/v2/read/{}/result", page.job_id));
        let url = match Url::parse(&path) {
            Ok(absolute) => absolute,
            Err(_) => self.url(&path),
        };
        let mut file = tempfile::tempfile().map_err(SourceError::setting(
            "a temporary file for a Zoho bulk result",
        ))?;
        match self
            .client
            .download_to(|c| c.get(url.clone()), &mut file)
            .await
        {
            Ok(_) => {
                use std::io::Seek;
                file.rewind().map_err(SourceError::setting(
                    "a temporary file for a Zoho bulk result",
                ))?;
                Ok(Some(file))
            }
            Err(HttpError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(call_error(module, e)),
        }
    }

    /// Polls `export`'s pending jobs and creates the next page's job where a completed
    /// page has more records. Stops at the first job still pending or failed.
    pub async fn advance(&self, export: &mut Export) -> Result<(), SourceError> {
        let module = export.module.clone();
        let mut i = 0;
        while i < export.pages.len() {
            let last = i + 1 == export.pages.len();
            let page = &mut export.pages[i];
            let state = JobState::parse(&page.state);
            if state.pending() {
                let job = match self.poll(&module, &page.job_id).await {
                    Ok(job) => job,
                    // Zoho keeps jobs a while; one it no longer knows cannot complete.
                    Err(SourceError::Http {
                        source: HttpError::Status { status: 404, .. },
                        ..
                    }) => {
                        page.state = NOT_FOUND.into();
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                page.state = job.state.as_str().to_string();
                if let Some(result) = &job.result {
                    page.count = Some(result.count);
                    page.more_records = Some(result.more_records);
                    page.download_url = Some(result.download_url.clone());
                }
                if job.state.pending() {
                    return Ok(());
                }
            }
            match JobState::parse(&page.state) {
                JobState::Completed => {}
                _ => return Ok(()),
            }
            if last && page.more_records == Some(true) {
                let next = page.page + 1;
                let job = self.create(&module, next).await?;
                export.pages.push(PageJob {
                    page: next,
                    job_id: job.id,
                    state: job.state.as_str().to_string(),
                    count: None,
                    more_records: None,
                    download_url: None,
                });
            }
            i += 1;
        }
        Ok(())
    }

    /// A new export of `module`: page 1's job.
    pub async fn start(&self, module: &str) -> Result<Export, SourceError> {
        let job = self.create(module, 1).await?;
        Ok(Export {
            module: module.to_string(),
            created_at: format_time(Utc::now()),
            pages: vec![PageJob {
                page: 1,
                job_id: job.id,
                state: job.state.as_str().to_string(),
                count: None,
                more_records: None,
                download_url: None,
            }],
            loaded_at: None,
        })
    }
}

/// What prepare did for a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Prepared {
    /// A new export was started.
    Started {
        /// Page 1's job.
        job_id: String,
    },
    /// The export recorded is still usable (pending, or complete and fresh).
    Kept {
        /// Page 1's job.
        job_id: String,
        /// Its state now: the first page not complete, or `COMPLETED`.
        state: String,
    },
    /// Prepare failed for this module.
    Failed {
        /// Why, with its causes.
        error: String,
    },
}

/// Prepares `module`: keeps its export if usable (polling it on), else starts a new one;
/// records it.
pub async fn prepare_module(
    api: &BulkApi,
    exports: &Exports,
    settings: &BulkSettings,
    module: &str,
) -> Result<Prepared, SourceError> {
    let now = Utc::now();
    if let Some(mut export) = exports.load(module).await? {
        if export.usable(now, settings) {
            api.advance(&mut export).await?;
            exports.save(&export).await?;
            let state = match export.status(Utc::now(), settings) {
                Status::Pending { state, .. } => Some(state),
                Status::Ready => Some("COMPLETED".into()),
                // Lost since it was last recorded: a new export replaces it.
                Status::Failed { .. } | Status::Expired => None,
            };
            if let Some(state) = state {
                return Ok(Prepared::Kept {
                    job_id: export.id().to_string(),
                    state,
                });
            }
        }
    }
    let export = api.start(module).await?;
    exports.save(&export).await?;
    Ok(Prepared::Started {
        job_id: export.id().to_string(),
    })
}

/// Waits (polling every `poll_seconds`, at most `wait_minutes`) until `export` is ready,
/// failed or expired, recording each change. Returns its last status.
pub async fn wait_for(
    api: &BulkApi,
    exports: &Exports,
    settings: &BulkSettings,
    export: &mut Export,
) -> Result<Status, SourceError> {
    let deadline =
        std::time::Instant::now() + Duration::from_secs_f64(settings.wait_minutes.max(0.0) * 60.0);
    loop {
        let before = export.clone();
        api.advance(export).await?;
        if *export != before {
            exports.save(export).await?;
        }
        let status = export.status(Utc::now(), settings);
        if !matches!(status, Status::Pending { .. }) || std::time::Instant::now() >= deadline {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_secs_f64(settings.poll_seconds.max(0.0))).await;
    }
}

/// A bookmark naming the export a module was loaded from.
pub fn bookmark(export: &Export) -> Value {
    json!({"export": export.id(), "created_at": export.created_at, "rows": export.rows()})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(states: &[(&str, Option<bool>)], age_hours: i64) -> Export {
        Export {
            module: "Leads".into(),
            created_at: format_time(Utc::now() - chrono::Duration::hours(age_hours)),
            pages: states
                .iter()
                .enumerate()
                .map(|(i, (state, more))| PageJob {
                    page: i as u32 + 1,
                    job_id: format!("j{}", i + 1),
                    state: state.to_string(),
                    count: more.map(|_| 10),
                    more_records: *more,
                    download_url: None,
                })
                .collect(),
            loaded_at: None,
        }
    }

    #[test]
    fn an_export_is_ready_only_when_every_page_is_complete_and_fresh() {
        let s = BulkSettings::default();
        let now = Utc::now();
        assert_eq!(
            export(&[("COMPLETED", Some(false))], 1).status(now, &s),
            Status::Ready
        );
        assert_eq!(
            export(&[("COMPLETED", Some(true)), ("IN PROGRESS", None)], 1).status(now, &s),
            Status::Pending {
                page: 2,
                job_id: "j2".into(),
                state: "IN PROGRESS".into()
            }
        );
        // A completed last page with more records: the next page's job is still to come.
        assert!(matches!(
            export(&[("COMPLETED", Some(true))], 1).status(now, &s),
            Status::Pending { page: 2, .. }
        ));
        assert_eq!(
            export(&[("COMPLETED", Some(true)), ("FAILED", None)], 1).status(now, &s),
            Status::Failed {
                page: 2,
                job_id: "j2".into(),
                state: "FAILED".into()
            }
        );
        assert_eq!(
            export(&[("COMPLETED", Some(false))], 25).status(now, &s),
            Status::Expired
        );
        let mut bad = export(&[("COMPLETED", Some(false))], 1);
        bad.created_at = "yesterday".into();
        assert_eq!(bad.status(now, &s), Status::Expired);
    }

    #[test]
    fn prepare_keeps_pending_and_fresh_unloaded_exports_only() {
        let s = BulkSettings::default();
        let now = Utc::now();
        assert!(export(&[("QUEUED", None)], 1).usable(now, &s));
        assert!(export(&[("COMPLETED", Some(false))], 11).usable(now, &s));
        assert!(!export(&[("COMPLETED", Some(false))], 13).usable(now, &s));
        let mut loaded = export(&[("COMPLETED", Some(false))], 1);
        loaded.loaded_at = Some(format_time(now));
        assert!(!loaded.usable(now, &s));
        assert!(!export(&[("FAILED", None)], 1).usable(now, &s));
        // A record survives a round trip through its JSON.
        let e = export(&[("COMPLETED", Some(true)), ("ADDED", None)], 1);
        let back: Export = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
