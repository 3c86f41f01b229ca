//! Zoho CRM (API v2): the records of chosen modules (the 16 of [`export::DEFAULT_MODULES`]
//! by default) and the users.
//!
//! Settings: [`SOURCE`]`.example` shows them all.
//!
//! Each module is read one of two ways (`read`, and `module_read` per module):
//! `incremental`, described below, or `bulk`: the whole module from the bulk read export
//! that `observes job zoho-prepare` started ([`export`]), for big modules, at a fraction
//! of the API credits.
//!
//! A run trades the refresh token for an access token through the shared OAuth2 client
//! (the answer's `api_domain` is where the API lives), sends it as
//! `Authorization: Zoho-oauthtoken …`, and renews it before it expires or when refused. Each module's
//! columns come from its field metadata (`/settings/fields`), so custom fields load with
//! their types. Records are read oldest change first, and walked by moving
//! `If-Modified-Since` to the last `Modified_Time` seen, not by page numbers: a record
//! changed mid-run moves to the end of the order, which would make a page walk skip the
//! record that slid into its place. The bookmark per module is that time. Users are read
//! whole, page by page.

pub mod bulk;
pub mod export;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::Duration;
use observes_http::{Auth, GrantParams, HttpClient, HttpError, OAuth2Refresh, OAuth2Tokens};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use crate::stream::{object, Emitter, Sink, StreamDef};
use crate::window::{format_time, parse_time, Time};
use crate::{HttpSettings, NotLoaded, SourceError};
use export::{BulkApi, BulkSettings, Exports, ReadMode, Status};

crate::registry::register!(
    ZohoConfig,
    "zoho",
    "Zoho CRM: the records of chosen modules (16 by default), incrementally or by bulk read, and the users.",
    "Settings (TOML): accounts_url, client_id_env, client_secret_env, refresh_token_env, modules, read, bulk, …",
    r#"accounts_url = "https://accounts.zoho.com"   # the data centre's accounts host
client_id_env = "ZOHO_CLIENT_ID"
client_secret_env = "ZOHO_CLIENT_SECRET"
refresh_token_env = "ZOHO_REFRESH_TOKEN"
modules = ["Leads", "Accounts", "Contacts", "Deals"]  # default: the 16 modules
start_date = "2024-01-01T00:00:00Z"          # optional: records modified since (incremental)
read = "bulk"                                # "incremental" (the default) or "bulk"
module_read = { Deals = "incremental" }      # per module, where it differs from `read`

[bulk]                                       # the exports of `observes job zoho-prepare`
jobs = "s3://bucket/observes/zoho/bulk"      # where they are recorded (or a folder)
calls_per_minute = 10                        # bulk calls: create, poll, download
fresh_hours = 12                             # prepare reuses a complete export this young
expires_hours = 24                           # results can be downloaded this long
wait_minutes = 10                            # the pipeline waits this long for a pending one
poll_seconds = 30
"#,
    crate::registry::Demo {
        about: "The Zoho CRM source (16 modules by bulk read, deals incrementally, and users) against a fake Zoho (settings in data/zoho.toml).",
        pipeline: "zoho",
        settings: None,
        job: "/observes/etl/zoho-crm",
        schedule: "cron(0 5 * * ? *)",
        size: "nano",
        attempts: 2,
        timeout: "1h",
        settings_extra: "# Deals page by page, the other modules from the exports of zoho-prepare.\n\
                         read = \"bulk\"\n\
                         module_read = { Deals = \"incremental\" }\n\
                         bulk = { jobs = \"../state/zoho-bulk\", calls_per_minute = 6000, poll_seconds = 0.05, wait_minutes = 1 }\n",
        more_jobs: r#"
# Bulk read jobs for the Zoho modules read in bulk, an hour before the ETL loads them.
[jobs."/observes/etl/zoho-crm/prepare"]
command = ["observes", "job", "zoho-prepare"]
schedule = "cron(0 4 * * ? *)"
size = "nano"
attempts = 2
timeout = "1h"
tags = { source = "zoho" }
"#,
    },
    |mut settings: ZohoConfig, dir: &std::path::Path| {
        settings.bulk.jobs = settings
            .bulk
            .jobs
            .map(|url| crate::resolve_location(&url, dir));
        settings
    }
);

/// The Zoho CRM source's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZohoConfig {
    /// Zoho's accounts server (the OAuth2 token endpoint's host).
    #[serde(default = "default_accounts_url")]
    pub accounts_url: String,
    /// Where the API lives; by default the token answer's `api_domain`.
    pub api_url: Option<String>,
    /// The client id itself; prefer `client_id_env`.
    pub client_id: Option<String>,
    /// The environment variable holding the client id.
    pub client_id_env: Option<String>,
    /// The client secret itself; prefer `client_secret_env`.
    pub client_secret: Option<String>,
    /// The environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// The refresh token itself; prefer `refresh_token_env`.
    pub refresh_token: Option<String>,
    /// The environment variable holding the refresh token.
    pub refresh_token_env: Option<String>,
    /// The CRM modules to extract.
    #[serde(default = "default_modules")]
    pub modules: Vec<String>,
    /// How modules are read, unless `module_read` says otherwise.
    #[serde(default)]
    pub read: ReadMode,
    /// How particular modules are read.
    #[serde(default)]
    pub module_read: BTreeMap<String, ReadMode>,
    /// Bulk read: where exports are recorded, limits and waits.
    #[serde(default)]
    pub bulk: BulkSettings,
    /// Also load the CRM's users (stream `users`).
    #[serde(default = "default_true")]
    pub users: bool,
    /// The earliest modification time extracted (default: everything).
    pub start_date: Option<String>,
    /// How it talks HTTP.
    #[serde(default)]
    pub http: HttpSettings,
}

fn default_accounts_url() -> String {
    "https://accounts.zoho.com".into()
}
fn default_modules() -> Vec<String> {
    export::DEFAULT_MODULES
        .iter()
        .map(|m| m.to_string())
        .collect()
}
fn default_true() -> bool {
    true
}

/// The API's largest page.
const PER_PAGE: u64 = 200;

impl ZohoConfig {
    /// Settings for the fake Zoho CRM at `url`.
    pub fn for_fake(
        url: &str,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) -> ZohoConfig {
        ZohoConfig {
            accounts_url: url.to_string(),
            api_url: None,
            client_id: Some(client_id.to_string()),
            client_id_env: None,
            client_secret: Some(client_secret.to_string()),
            client_secret_env: None,
            refresh_token: Some(refresh_token.to_string()),
            refresh_token_env: None,
            modules: default_modules(),
            read: ReadMode::default(),
            module_read: BTreeMap::new(),
            bulk: BulkSettings::default(),
            users: true,
            start_date: None,
            http: HttpSettings::default(),
        }
    }

    /// How `module` is read.
    pub fn read_mode(&self, module: &str) -> ReadMode {
        self.module_read.get(module).copied().unwrap_or(self.read)
    }

    /// The modules read in bulk, in order.
    pub fn bulk_modules(&self) -> Vec<&str> {
        self.modules
            .iter()
            .map(String::as_str)
            .filter(|m| self.read_mode(m) == ReadMode::Bulk)
            .collect()
    }

    /// Where exports are recorded, when a module is read in bulk.
    pub fn exports(&self) -> Result<Option<Exports>, SourceError> {
        if self.bulk_modules().is_empty() {
            return Ok(None);
        }
        if let Some(unknown) = self.module_read.keys().find(|m| !self.modules.contains(m)) {
            return Err(SourceError::Config(format!(
                "Zoho module_read names {unknown:?}, which is not in modules"
            )));
        }
        match &self.bulk.jobs {
            Some(url) => Exports::open(url).map(Some),
            None => Err(SourceError::Config(format!(
                "Zoho modules {} are read in bulk, but the settings have no bulk.jobs location (bulk = {{ jobs = \"s3://bucket/prefix\" }} or a folder) where `observes job zoho-prepare` records the exports",
                self.bulk_modules().join(", ")
            ))),
        }
    }
}

/// The users stream (the API's shape, lookups as objects).
pub static USERS: LazyLock<StreamDef> = LazyLock::new(|| {
    let text = json!({"type": ["null", "string"]});
    let lookup = json!({"type": ["null", "object"], "properties": {
        "id": {"type": ["null", "string"]}, "name": {"type": ["null", "string"]}}});
    StreamDef {
        name: "users",
        key_properties: &["id"],
        replication_key: None,
        schema: json!({"type": "object", "properties": {
            "id": {"type": "string"}, "full_name": text, "first_name": text, "last_name": text,
            "email": text, "status": text, "confirm": {"type": ["null", "boolean"]},
            "role": lookup, "profile": lookup, "time_zone": text, "country": text,
            "created_time": {"type": ["null", "string"], "format": "date-time"},
            "Modified_Time": {"type": ["null", "string"], "format": "date-time"}
        }}),
    }
});

/// A module's JSON Schema from its field metadata. Lookups are `{id, name}` objects,
/// multi-select picklists arrays of text, and anything unknown text (never dropped).
pub fn module_schema(fields: &[Value]) -> Result<Value, String> {
    let mut properties = Map::new();
    properties.insert("id".into(), json!({"type": "string"}));
    for field in fields {
        let Some(name) = field.get("api_name").and_then(Value::as_str) else {
            return Err(format!(
                "a field without api_name: {}",
                crate::truncate(&field.to_string(), 200)
            ));
        };
        if name.eq_ignore_ascii_case("id") {
            continue;
        }
        let data_type = field.get("data_type").and_then(Value::as_str).unwrap_or("");
        let json_type = field.get("json_type").and_then(Value::as_str).unwrap_or("");
        let schema = match (data_type, json_type) {
            ("integer" | "bigint", _) | (_, "integer") => json!({"type": ["null", "integer"]}),
            ("double" | "currency" | "decimal" | "percent", _) | (_, "double") => {
                json!({"type": ["null", "number"]})
            }
            ("boolean", _) | (_, "boolean") => json!({"type": ["null", "boolean"]}),
            ("date", _) => json!({"type": ["null", "string"], "format": "date"}),
            ("datetime", _) => json!({"type": ["null", "string"], "format": "date-time"}),
            ("lookup" | "ownerlookup" | "userlookup", _) => {
                json!({"type": ["null", "object"], "properties": {
                "id": {"type": ["null", "string"]}, "name": {"type": ["null", "string"]},
                "email": {"type": ["null", "string"]}}})
            }
            ("multiselectpicklist", _) | (_, "jsonarray") => {
                json!({"type": ["null", "array"], "items": {"type": ["null", "string"]}})
            }
            (_, "jsonobject") => json!({"type": ["null", "object"]}),
            _ => json!({"type": ["null", "string"]}),
        };
        properties.insert(name.to_string(), schema);
    }
    Ok(json!({"type": "object", "properties": properties}))
}

/// `path` under the API's base URL (which may have a path of its own).
fn api_url(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url
}

/// A module's stream name: `Sales_Orders` → `sales_orders`.
pub fn stream_name(module: &str) -> String {
    module.to_lowercase()
}

/// A connection to an org's API: the access token obtained, the API domain known.
pub struct Zoho {
    client: HttpClient,
    base: Url,
    bulk: BulkApi,
}

/// Connects: trades the refresh token for an access token and learns the API's domain.
pub async fn connect(config: &ZohoConfig) -> Result<Zoho, SourceError> {
    let client_id = crate::secret(
        &config.client_id,
        &config.client_id_env,
        "ZOHO_CLIENT_ID",
        "Zoho client id",
    )?;
    let client_secret = crate::secret(
        &config.client_secret,
        &config.client_secret_env,
        "ZOHO_CLIENT_SECRET",
        "Zoho client secret",
    )?;
    let refresh_token = crate::secret(
        &config.refresh_token,
        &config.refresh_token_env,
        "ZOHO_REFRESH_TOKEN",
        "Zoho refresh token",
    )?;
    let parse_url = |what: &str, text: &str| {
        Url::parse(text).map_err(SourceError::setting(format!("Zoho {what} {text:?}")))
    };
    let accounts = parse_url("accounts_url", &config.accounts_url)?;
    let mut token_url = accounts.clone();
    token_url.set_path(&format!(
        "{}/oauth/v2/token",
        accounts.path().trim_end_matches('/')
    ));
    let tokens = OAuth2Tokens::new(OAuth2Refresh {
        token_url: token_url.to_string(),
        client_id,
        client_secret,
        refresh_token,
        // Zoho does not rotate refresh tokens.
        rotated_token_file: None,
        grant_params: GrantParams::Query,
        scheme: "Zoho-oauthtoken".into(),
    });
    // Zoho counts API credits per day and limits concurrency, not requests per second.
    // Access tokens live an hour: the client renews one before it expires or when refused.
    let client = config
        .http
        .client(5.0)?
        .with_auth(Auth::OAuth2(tokens.clone()));
    client.authenticate().await.map_err(|e| match e {
        // Zoho answers a refused grant with 200 and an error.
        HttpError::Refresh(inner) if matches!(*inner, HttpError::Request { .. }) => {
            SourceError::Config(format!(
                "Zoho refused the refresh token ({}): check client id, secret and refresh token, and the accounts_url of your data centre",
                match *inner {
                    HttpError::Request { message, .. } => message,
                    other => other.to_string(),
                }
            ))
        }
        other => SourceError::Http {
            stream: "token".into(),
            source: other,
        },
    })?;
    let api = match (&config.api_url, tokens.api_domain().await) {
        (Some(url), _) => url.clone(),
        (None, Some(domain)) => domain,
        (None, None) => "https://www.zohoapis.com".into(),
    };
    let base = parse_url("api_domain", &api)?;
    Ok(Zoho {
        bulk: BulkApi::new(&client, base.clone(), config.bulk.calls_per_minute),
        client,
        base,
    })
}

/// Extracts every chosen module and the users, resuming from `state`. A module read in
/// bulk whose export is not ready is left out and named by the
/// [`SourceError::Incomplete`] returned at the end, after everything else is emitted.
pub async fn run(
    config: &ZohoConfig,
    state: Option<&Value>,
    sink: &mut dyn Sink,
) -> Result<u64, SourceError> {
    let start = match &config.start_date {
        Some(t) => Some(parse_time(t).ok_or_else(|| {
            SourceError::Config(format!(
                "Zoho start_date {t:?} is not an RFC 3339 timestamp"
            ))
        })?),
        None => None,
    };
    let exports = config.exports()?;
    let zoho = connect(config).await?;
    let mut em = Emitter::new(sink, state);
    let mut not_loaded = Vec::new();
    for module in &config.modules {
        match (&exports, config.read_mode(module)) {
            (Some(exports), ReadMode::Bulk) => {
                if let Some(missing) = zoho
                    .bulk_module(&mut em, module, exports, &config.bulk)
                    .await?
                {
                    tracing::warn!(stream = %missing.stream, reason = %missing.reason, "zoho: module not loaded");
                    not_loaded.push(missing);
                }
            }
            _ => zoho.module(&mut em, module, start).await?,
        }
    }
    if config.users {
        zoho.users(&mut em).await?;
    }
    if !not_loaded.is_empty() {
        return Err(SourceError::Incomplete { not_loaded });
    }
    Ok(em.records())
}

impl Zoho {
    /// The bulk read API of this connection.
    pub fn bulk(&self) -> &BulkApi {
        &self.bulk
    }

    fn url(&self, path: &str) -> Url {
        api_url(&self.base, path)
    }

    /// `(items, more_records)` of one page of a `{"<list>": [...], "info": {...}}`
    /// answer; a 204 is an empty last page.
    async fn page(
        &self,
        stream: &str,
        url: Url,
        list: &str,
        since: Option<&str>,
    ) -> Result<(Vec<Value>, bool), SourceError> {
        // Decoded inside the client's retries, so a body cut short is fetched again.
        let body = self
            .client
            .send_decoded(
                |c| {
                    let request = c.get(url.clone());
                    match since {
                        Some(since) => request.header("If-Modified-Since", since),
                        None => request,
                    }
                },
                |response| {
                    if response.status == 204 || response.body.is_empty() {
                        return Ok(None);
                    }
                    serde_json::from_slice::<Value>(&response.body)
                        .map(Some)
                        .map_err(|e| format!("the body is not valid JSON ({e})"))
                },
            )
            .await
            .map_err(SourceError::http(stream))?;
        let Some(body) = body else {
            return Ok((Vec::new(), false));
        };
        let bad = |message: String| SourceError::Data {
            stream: stream.into(),
            message: format!("GET {}: {message}", self.client.redact(url.as_str())),
        };
        let Some(Value::Array(items)) = body.get(list) else {
            return Err(bad(format!("expected {{\"{list}\": [...]}}")));
        };
        let more = body
            .pointer("/info/more_records")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok((items.clone(), more))
    }

    async fn module(
        &self,
        em: &mut Emitter<'_>,
        module: &str,
        start: Option<Time>,
    ) -> Result<(), SourceError> {
        let name = stream_name(module);
        let def = &self.module_def(module).await?;
        let bookmark = em
            .bookmark(&name, None)
            .and_then(|b| b.get("modified_since"))
            .and_then(Value::as_str)
            .and_then(parse_time);
        let mut since: Option<Time> = bookmark.or(start);
        let mut page = 1u64;
        loop {
            let mut url = self.url(&format!("/crm/v2/{module}"));
            url.query_pairs_mut()
                .append_pair("page", &page.to_string())
                .append_pair("per_page", &PER_PAGE.to_string())
                .append_pair("sort_by", "Modified_Time")
                .append_pair("sort_order", "asc");
            // A second back: whether the API reads the header as "after" or "since", no
            // record changed in the same second as the last one seen is missed.
            let header = since.map(|t| format_time(t - Duration::seconds(1)));
            let (items, more) = self.page(&name, url, "data", header.as_deref()).await?;
            let mut latest = since;
            for item in items {
                let record = object(&name, item)?;
                if !matches!(record.get("id"), Some(Value::String(_))) {
                    return Err(SourceError::Data {
                        stream: name.clone(),
                        message: format!(
                            "a record without a text id: {}",
                            crate::truncate(&Value::Object(record).to_string(), 200)
                        ),
                    });
                }
                let modified = record
                    .get("Modified_Time")
                    .and_then(Value::as_str)
                    .and_then(parse_time)
                    .ok_or_else(|| SourceError::Data {
                        stream: name.clone(),
                        message: format!("record {}: no valid Modified_Time", record["id"]),
                    })?;
                latest = latest.max(Some(modified));
                em.record(def, record)?;
            }
            if let Some(t) = latest {
                em.set_bookmark(&name, None, json!({ "modified_since": format_time(t) }));
            }
            em.checkpoint()?;
            if !more {
                break;
            }
            // The next page of the same moment, or the first page after the new one.
            if latest == since {
                page += 1;
            } else {
                since = latest;
                page = 1;
            }
        }
        em.describe(def)?;
        Ok(())
    }

    /// A module's stream, its schema from the module's field metadata.
    async fn module_def(&self, module: &str) -> Result<StreamDef, SourceError> {
        let name = stream_name(module);
        let mut fields_url = self.url("/crm/v2/settings/fields");
        fields_url.query_pairs_mut().append_pair("module", module);
        let (fields, _) = self.page(&name, fields_url, "fields", None).await?;
        let schema = module_schema(&fields).map_err(|message| SourceError::Data {
            stream: name.clone(),
            message,
        })?;
        // Stream names are static in the stream model; a module name lives as long as
        // the process (a few bytes per module and run).
        Ok(StreamDef {
            name: Box::leak(name.into_boxed_str()),
            key_properties: &["id"],
            replication_key: Some("Modified_Time"),
            schema,
        })
    }

    /// Loads a module from its bulk export, if ready; else says why not (nothing of it
    /// is emitted then). An export already loaded is not loaded again.
    async fn bulk_module(
        &self,
        em: &mut Emitter<'_>,
        module: &str,
        exports: &Exports,
        settings: &BulkSettings,
    ) -> Result<Option<NotLoaded>, SourceError> {
        let name = stream_name(module);
        let missing = |reason: String| {
            Ok(Some(NotLoaded {
                stream: name.clone(),
                reason,
            }))
        };
        let Some(mut export) = exports.load(module).await? else {
            return missing(format!(
                "no bulk export of {module} in {}: run `observes job zoho-prepare` first",
                exports.url()
            ));
        };
        let loaded = em
            .bookmark(&name, None)
            .and_then(|b| b.get("export"))
            .and_then(Value::as_str);
        if loaded == Some(export.id()) {
            tracing::info!(
                module,
                export = export.id(),
                "zoho: this export is loaded already"
            );
            return Ok(None);
        }
        // A call that fails names this module; the others still load.
        let status = match export::wait_for(&self.bulk, exports, settings, &mut export).await {
            Ok(status) => status,
            Err(e) => return missing(observes_runtime::chain(&e).to_string()),
        };
        match status {
            Status::Ready => {}
            Status::Failed {
                page,
                job_id,
                state,
            } => {
                return missing(format!(
                    "bulk read job {job_id} (page {page}) is {state}; `observes job zoho-prepare` starts a new export"
                ))
            }
            Status::Expired => {
                return missing(format!(
                    "the export started {} has expired before it was loaded; `observes job zoho-prepare` starts a new one",
                    export.created_at
                ))
            }
            Status::Pending { page, job_id, state } => {
                return missing(format!(
                    "bulk read job {job_id} (page {page}) is still {state} after waiting {} minutes; a later run loads it",
                    settings.wait_minutes
                ))
            }
        }
        let def = self.module_def(module).await?;
        // Every page is downloaded before a record is sent, so a download that fails
        // leaves the module's table as it was.
        let mut files = Vec::new();
        for page in &export.pages {
            match self.bulk.download(module, page).await {
                Ok(Some(file)) => files.push((page.page, file)),
                Ok(None) => {
                    return missing(format!(
                        "the result of bulk read job {} (page {}) is gone (expired); `observes job zoho-prepare` starts a new export",
                        page.job_id, page.page
                    ))
                }
                Err(e) => return missing(observes_runtime::chain(&e).to_string()),
            }
        }
        em.describe(&def)?;
        for (page, file) in files {
            bulk::read_result(file, module, page, &def.schema, |record| {
                em.record(&def, record)
            })
            .map_err(|e| match e {
                bulk::ResultError::Emit { source, .. }
                    if matches!(*source, SourceError::Stopped) =>
                {
                    SourceError::Stopped
                }
                other => SourceError::Data {
                    stream: name.clone(),
                    message: observes_runtime::chain(&other).to_string(),
                },
            })?;
        }
        em.activate_version(&def)?;
        em.set_bookmark(&name, None, export::bookmark(&export));
        em.checkpoint()?;
        export.loaded_at = Some(format_time(chrono::Utc::now()));
        if let Err(e) = exports.save(&export).await {
            // Only prepare's choice depends on it: it starts a new export a little later.
            tracing::warn!(module, error = %observes_runtime::chain(&e), "zoho: could not record the export as loaded");
        }
        Ok(None)
    }

    async fn users(&self, em: &mut Emitter<'_>) -> Result<(), SourceError> {
        let mut page = 1u64;
        loop {
            let mut url = self.url("/crm/v2/users");
            url.query_pairs_mut()
                .append_pair("type", "AllUsers")
                .append_pair("page", &page.to_string())
                .append_pair("per_page", &PER_PAGE.to_string());
            let (items, more) = self.page("users", url, "users", None).await?;
            for item in items {
                em.record(&USERS, object("users", item)?)?;
            }
            if !more {
                break;
            }
            page += 1;
        }
        em.describe(&USERS)?;
        em.checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_metadata_becomes_a_schema() {
        let fields = vec![
            json!({"api_name": "Deal_Name", "data_type": "text", "json_type": "string"}),
            json!({"api_name": "Amount", "data_type": "currency", "json_type": "double"}),
            json!({"api_name": "Probability", "data_type": "integer", "json_type": "integer"}),
            json!({"api_name": "Closing_Date", "data_type": "date", "json_type": "string"}),
            json!({"api_name": "Modified_Time", "data_type": "datetime", "json_type": "string"}),
            json!({"api_name": "Owner", "data_type": "ownerlookup", "json_type": "jsonobject"}),
            json!({"api_name": "Tags", "data_type": "multiselectpicklist", "json_type": "jsonarray"}),
            json!({"api_name": "Odd", "data_type": "profileimage"}),
        ];
        let schema = module_schema(&fields).unwrap();
        let p = &schema["properties"];
        assert_eq!(p["id"], json!({"type": "string"}));
        assert_eq!(p["Amount"]["type"], json!(["null", "number"]));
        assert_eq!(p["Probability"]["type"], json!(["null", "integer"]));
        assert_eq!(p["Closing_Date"]["format"], json!("date"));
        assert_eq!(p["Modified_Time"]["format"], json!("date-time"));
        assert_eq!(
            p["Owner"]["properties"]["name"]["type"],
            json!(["null", "string"])
        );
        assert_eq!(p["Tags"]["items"]["type"], json!(["null", "string"]));
        assert_eq!(p["Odd"]["type"], json!(["null", "string"]));
        let layout =
            observes_model::Layout::compile("deals", &schema, &["id".into()], 127).unwrap();
        assert_eq!(layout.tables.len(), 2, "deals and deals__tags");
        assert_eq!(
            module_schema(&[json!({"data_type": "text"})]).unwrap_err(),
            r#"a field without api_name: {"data_type":"text"}"#
        );
    }
}
