//! Running a REST definition: its client through the shared toolkit (retries, 429 and
//! `Retry-After`, rate limit, redaction, the [`Pager`]), its streams through the stream
//! model, with exactly-once bookmarks.
//!
//! State, per stream (and per parent record for a child stream, keyed `FIELD=VALUE,…`):
//! `{"replication_key_value": …, "at_bookmark": […], "position": …, "pending": …,
//! "at_pending": […]}`, `at_…` the keys of the records at that value, which an API's
//! inclusive `since` answers again and which are not emitted twice. A page's records are
//! followed by a `STATE` holding where the next page starts (`position`) and the greatest
//! replication key seen in the listing so far (`pending`); a run stopped anywhere resumes
//! at the next page. When a listing ends, `pending` becomes `replication_key_value`, the
//! value `{bookmark}` sends next time; records older than it are not emitted again.
//! A page cap (`max_pages`) stops the run at a page boundary; the next run starts with
//! the stream it stopped in, and the parent records it had left (bookmark `_resume`).
//! While a parent stream's listing is under way, its bookmark keeps the fields its
//! children need of the records listed so far (`parents`), so a run stopped mid-listing
//! loses no child.
//!
//! A windowed stream (`window`) is read in windows from its start to now, `{start}` and
//! `{end}` filled per window; its bookmark is `{"window_end": …}`, the end of the last
//! window read (plus `window_start`, and `position` inside one, while the run is under
//! way). A new run starts `lookback` before `window_end`; a run taking up what a crash
//! or a page cap stopped starts at `window_start`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use observes_http::{
    Auth, BodyError, GrantParams, HttpClient, OAuth2Refresh, OAuth2Tokens, PageBudget,
    PagePosition, PageStyle, Pager,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use super::definition::{
    parse_span, parse_start, AuthDef, Definition, PaginatorDef, StreamDefinition, TimeFormat,
    WindowDef,
};
use crate::stream::{object, Emitter, Sink, StreamDef};
use crate::window::{parse_time, resume_from, windows, Time};
use crate::{HttpSettings, SourceError};

/// The bookmark saying where a run a page cap stopped goes on: `{"stream", "parents"}`.
const RESUME: &str = "_resume";

/// A setting's value in a REST source's config: the text, or an environment variable.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// The value itself.
    Text(String),
    /// `{ env = "VAR" }`: read from the environment when the source is built.
    Env {
        /// The variable.
        env: String,
    },
}

/// A REST source's config (`observes tap rest --config CFG.toml`).
///
/// ```toml
/// definition = "bugsnag.toml"          # relative to this file
/// [values]                             # the definition's [settings]
/// token = { env = "BUGSNAG_TOKEN" }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// The definition file.
    pub definition: PathBuf,
    /// The API's root instead of the definition's `base_url` (a fake, a proxy, a region).
    pub base_url: Option<String>,
    /// The values of the definition's settings.
    #[serde(default)]
    pub values: BTreeMap<String, SettingValue>,
    /// The streams to read (default: all, with the parents they need).
    pub streams: Option<Vec<String>>,
    /// Pages one run fetches at most; a capped stream resumes at the next run.
    pub max_pages: Option<u64>,
    /// With OAuth2: where a refresh token the server rotates is kept (read first if it
    /// exists, written mode 0600), so the next run can still refresh.
    pub refresh_token_file: Option<PathBuf>,
    /// HTTP settings.
    #[serde(default)]
    pub http: HttpSettings,
}

/// A definition with its values, ready to run.
#[derive(Debug)]
pub struct RestSource {
    definition: Definition,
    values: BTreeMap<String, String>,
    config: RestConfig,
    streams: Vec<StreamDef>,
    /// The config's folder, which its relative paths start from.
    dir: PathBuf,
}

/// What a text's placeholders are filled with.
#[derive(Clone, Copy, Default)]
struct Context<'a> {
    parent: Option<&'a Map<String, Value>>,
    bookmark: Option<&'a str>,
    window: Option<(&'a str, &'a str)>,
}

/// Text with its placeholders filled.
fn fill(text: &str, values: &BTreeMap<String, String>, context: Context<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..open + close];
        let value = if let Some(setting) = name.strip_prefix("config.") {
            values.get(setting).cloned()
        } else if let Some(field) = name.strip_prefix("parent.") {
            context.parent.and_then(|p| p.get(field)).map(scalar)
        } else {
            match name {
                "bookmark" => context.bookmark.map(str::to_string),
                "start" => context.window.map(|w| w.0.to_string()),
                "end" => context.window.map(|w| w.1.to_string()),
                _ => None,
            }
        };
        out.push_str(&value.unwrap_or_default());
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A window's bound as the API takes it.
fn write_time(time: Time, format: TimeFormat) -> String {
    match format {
        TimeFormat::Rfc3339 => time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        TimeFormat::Unix => time.timestamp().to_string(),
        TimeFormat::UnixMs => time.timestamp_millis().to_string(),
        TimeFormat::Date => time.format("%Y-%m-%d").to_string(),
    }
}

/// Where a listing's page state goes: a plain listing's replication key, or a window.
enum Listing {
    /// Records older than `floor`, and those at it already emitted (`at_floor`, their
    /// keys), are skipped; the greatest seen becomes the bookmark, with the keys of the
    /// records at it.
    Plain {
        floor: Option<Value>,
        at_floor: Vec<Value>,
        pending: Option<Value>,
        at_pending: Vec<Value>,
    },
    /// The window `[start, end)` of a stream read up to `done`.
    Window {
        done: Option<String>,
        start: Time,
        end: Time,
        last: bool,
    },
}

/// Records kept in the state (an array of objects).
fn rows_of(value: &Value) -> Vec<Map<String, Value>> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_object().cloned()).collect())
        .unwrap_or_default()
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The parent fields a stream's texts use (`{parent.FIELD}`).
fn parent_fields(stream: &StreamDefinition) -> Vec<String> {
    let mut fields: Vec<String> = std::iter::once(stream.path.get_ref())
        .chain(stream.params.values().map(|v| v.get_ref()))
        .flat_map(|t| super::definition::placeholders(t).unwrap_or_default())
        .filter_map(|(_, name)| name.strip_prefix("parent.").map(str::to_string))
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

fn style(paginator: Option<&PaginatorDef>) -> Option<PageStyle> {
    Some(match paginator? {
        PaginatorDef::None => return None,
        PaginatorDef::PageNumber {
            page_param,
            limit_param,
            limit,
            total,
        } => PageStyle::PageNumbers {
            page_param: page_param.clone(),
            limit_param: limit_param.clone(),
            limit: *limit,
            total: total.clone(),
        },
        PaginatorDef::LinkHeader => PageStyle::LinkHeader,
        PaginatorDef::Offset {
            offset_param,
            limit_param,
            limit,
            total,
        } => PageStyle::Offset {
            offset_param: offset_param.clone(),
            limit_param: limit_param.clone(),
            limit: *limit,
            total: total.clone(),
        },
        PaginatorDef::Cursor {
            cursor,
            cursor_param,
        } => PageStyle::BodyCursor {
            cursor: cursor.clone(),
            cursor_param: cursor_param.clone(),
        },
        PaginatorDef::NextUrl { next } => PageStyle::BodyNextUrl { next: next.clone() },
    })
}

/// Whether `a` comes after `b` as replication keys: numbers by value, text as text
/// (ISO 8601 times sort so).
fn later(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x > y,
        _ => scalar(a) > scalar(b),
    }
}

impl RestSource {
    /// Reads the definition (relative to `dir`, the config's folder) and the values.
    pub fn new(config: RestConfig, dir: &Path) -> Result<RestSource, SourceError> {
        let file = dir.join(&config.definition);
        let definition = Definition::load(&file).map_err(|e| SourceError::Config(e.to_string()))?;
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let mut schemas = Vec::new();
        for stream in &definition.streams {
            let schema = definition
                .schema(stream, &file, &text)
                .map_err(|e| SourceError::Config(e.to_string()))?;
            schemas.push(schema.unwrap_or_else(|| json!({"type": "object", "properties": {}})));
        }
        let mut values = BTreeMap::new();
        for (name, what) in &definition.settings {
            let value = match config.values.get(name) {
                Some(SettingValue::Text(text)) => text.clone(),
                Some(SettingValue::Env { env }) => match std::env::var(env) {
                    Ok(v) if !v.is_empty() => v,
                    _ => {
                        return Err(SourceError::Config(format!(
                            "values.{name} ({what}): set the environment variable {env}"
                        )))
                    }
                },
                None => {
                    return Err(SourceError::Config(format!(
                        "values.{name} ({what}) is not given: {} needs it",
                        file.display()
                    )))
                }
            };
            values.insert(name.clone(), value);
        }
        if let Some(unknown) = config
            .values
            .keys()
            .find(|k| !definition.settings.contains_key(*k))
        {
            return Err(SourceError::Config(format!(
                "values.{unknown}: {} declares no such setting (it declares: {})",
                file.display(),
                definition
                    .settings
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let Some(chosen) = &config.streams {
            let known: Vec<&str> = definition
                .streams
                .iter()
                .map(|s| s.name.get_ref().as_str())
                .collect();
            if let Some(unknown) = chosen.iter().find(|c| !known.contains(&c.as_str())) {
                return Err(SourceError::Config(format!(
                    "unknown stream {unknown:?} (the definition has: {})",
                    known.join(", ")
                )));
            }
        }
        // Stream names are static in the stream model; a definition is read once a process.
        let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
        let streams = definition
            .streams
            .iter()
            .zip(schemas)
            .map(|(s, schema)| StreamDef {
                name: leak(s.name.get_ref()),
                key_properties: Box::leak(
                    s.key
                        .iter()
                        .map(|k| leak(k))
                        .collect::<Vec<_>>()
                        .into_boxed_slice(),
                ),
                replication_key: s.replication_key.as_ref().map(|r| leak(r.get_ref())),
                schema,
            })
            .collect();
        Ok(RestSource {
            definition,
            values,
            config,
            streams,
            dir: dir.to_path_buf(),
        })
    }

    /// The definition.
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    /// The API's root: the config's, else the definition's.
    fn base_url(&self) -> String {
        match &self.config.base_url {
            Some(base) => base.clone(),
            None => fill(
                self.definition.client.base_url.get_ref(),
                &self.values,
                Context::default(),
            ),
        }
    }

    fn client(&self) -> Result<HttpClient, SourceError> {
        let client = &self.definition.client;
        let mut http = self.config.http.client(client.rate_limit.unwrap_or(5.0))?;
        let filled = |t: &str| fill(t, &self.values, Context::default());
        if let Some(auth) = &client.auth {
            http = match auth.get_ref() {
                AuthDef::Bearer { token } => http.with_auth(Auth::Bearer(filled(token))),
                AuthDef::Header { name, value } => http.with_auth(Auth::Header {
                    name: name.clone(),
                    value: filled(value),
                }),
                AuthDef::Basic { username, password } => http.with_auth(Auth::Basic {
                    user: filled(username),
                    password: filled(password),
                }),
                AuthDef::Query { value, .. } => http.with_secret(&filled(value)),
                AuthDef::OAuth2 {
                    token_url,
                    client_id,
                    client_secret,
                    refresh_token,
                    scheme,
                } => {
                    let token_url = filled(token_url);
                    // A path is under the base URL, so a fake or a proxy serves it too.
                    let token_url = if token_url.starts_with('/') {
                        format!("{}{token_url}", self.base_url().trim_end_matches('/'))
                    } else {
                        token_url
                    };
                    let rotated = self
                        .config
                        .refresh_token_file
                        .as_ref()
                        .map(|f| self.dir.join(f));
                    let saved = rotated
                        .as_ref()
                        .and_then(|f| std::fs::read_to_string(f).ok())
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty());
                    http.with_auth(Auth::OAuth2(OAuth2Tokens::new(OAuth2Refresh {
                        token_url,
                        client_id: filled(client_id),
                        client_secret: filled(client_secret),
                        refresh_token: saved.unwrap_or_else(|| filled(refresh_token)),
                        rotated_token_file: rotated,
                        grant_params: GrantParams::Form,
                        scheme: scheme.clone(),
                    })))
                }
            };
        }
        for (name, value) in &client.headers {
            http = http.with_header(name, &filled(value.get_ref()));
        }
        Ok(http)
    }

    fn wanted(&self) -> Vec<usize> {
        let defs = &self.definition.streams;
        let Some(chosen) = &self.config.streams else {
            return (0..defs.len()).collect();
        };
        // A chosen stream with the parents it needs, in the definition's order.
        let mut keep = vec![false; defs.len()];
        for (i, s) in defs.iter().enumerate() {
            if chosen.iter().any(|c| c == s.name.get_ref()) {
                let mut at = Some(i);
                while let Some(j) = at {
                    keep[j] = true;
                    at = defs[j]
                        .parent
                        .as_ref()
                        .and_then(|p| defs.iter().position(|d| d.name.get_ref() == p.get_ref()));
                }
            }
        }
        (0..defs.len()).filter(|i| keep[*i]).collect()
    }

    /// Extracts everything new since `state`, into `sink`.
    pub async fn run(&self, state: Option<&Value>, sink: &mut dyn Sink) -> Result<(), SourceError> {
        let http = self.client()?;
        let budget = self
            .config
            .max_pages
            .map_or_else(PageBudget::unlimited, PageBudget::new);
        let mut em = Emitter::new(sink, state);
        let defs = &self.definition.streams;
        // What children read of their parents' records: the fields they use, per parent.
        let mut kept: BTreeMap<usize, Vec<Map<String, Value>>> = BTreeMap::new();
        let needs: Vec<Vec<String>> = defs.iter().map(parent_fields).collect();
        // A run a page cap stopped is taken up at the stream it stopped in (so the cap
        // cannot be spent on the streams before it every time), with the parent records
        // that stream had left.
        let resume = em.bookmark(RESUME, None).cloned();
        em.set_bookmark(RESUME, None, Value::Null);
        let mut wanted = self.wanted();
        let mut resumed_parents: Option<Vec<Map<String, Value>>> = None;
        if let Some(resume) = &resume {
            if let Some(at) = wanted
                .iter()
                .position(|i| Some(defs[*i].name.get_ref().as_str()) == resume["stream"].as_str())
            {
                wanted.drain(..at);
                resumed_parents = resume.get("parents").map(rows_of);
                // The parents the streams after it read, from the run that listed them.
                for (name, listed) in resume["kept"].as_object().into_iter().flatten() {
                    if let Some(j) = defs.iter().position(|d| d.name.get_ref() == name) {
                        kept.insert(j, rows_of(listed));
                    }
                }
            }
        }
        for i in wanted {
            let stream = &defs[i];
            let parent = stream
                .parent
                .as_ref()
                .and_then(|p| defs.iter().position(|d| d.name.get_ref() == p.get_ref()));
            let keep_for: Vec<String> = defs
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    d.parent
                        .as_ref()
                        .is_some_and(|p| p.get_ref() == stream.name.get_ref())
                })
                .flat_map(|(j, _)| needs[j].clone())
                .collect();
            let partitions: Vec<Map<String, Value>> = match parent {
                None => Vec::new(),
                Some(p) => resumed_parents
                    .take()
                    .unwrap_or_else(|| kept.get(&p).cloned().unwrap_or_default()),
            };
            // The records of a parent listing stopped last run, kept for its children.
            let mut rows: Vec<Map<String, Value>> = match em.bookmark(self.streams[i].name, None) {
                Some(mark) if parent.is_none() => {
                    mark.get("parents").map(rows_of).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            let stopped =
                |em: &mut Emitter<'_>,
                 left: &[Map<String, Value>],
                 kept: &BTreeMap<usize, Vec<Map<String, Value>>>| {
                    let left: Vec<Value> = left.iter().cloned().map(Value::Object).collect();
                    let kept: Map<String, Value> = kept
                        .iter()
                        .map(|(j, rows)| {
                            let rows = rows.iter().cloned().map(Value::Object).collect();
                            (defs[*j].name.get_ref().clone(), Value::Array(rows))
                        })
                        .collect();
                    em.set_bookmark(
                        RESUME,
                        None,
                        json!({"stream": stream.name.get_ref(), "parents": left, "kept": kept}),
                    );
                    em.checkpoint()
                };
            if parent.is_none()
                && !self
                    .read(
                        &http, &budget, &mut em, i, None, &needs[i], &keep_for, &mut rows,
                    )
                    .await?
            {
                return stopped(&mut em, &[], &kept);
            }
            for (n, partition) in partitions.iter().enumerate() {
                if !self
                    .read(
                        &http,
                        &budget,
                        &mut em,
                        i,
                        Some(partition),
                        &needs[i],
                        &keep_for,
                        &mut rows,
                    )
                    .await?
                {
                    return stopped(&mut em, &partitions[n..], &kept);
                }
            }
            if !keep_for.is_empty() {
                kept.insert(i, rows);
            }
        }
        em.checkpoint()
    }

    /// The windows a windowed stream reads this run, from its bookmark `mark`.
    fn windows_of(
        &self,
        name: &str,
        window: &WindowDef,
        mark: &Value,
    ) -> Result<Vec<(Time, Time)>, SourceError> {
        let wrong = |m: String| SourceError::Config(format!("stream {name}: {m}"));
        let start_text = fill(&window.start, &self.values, Context::default());
        let start = parse_start(&start_text).ok_or_else(|| {
            wrong(format!(
                "the window's start {start_text:?} is not a time: write 2026-01-01 or 2026-01-01T00:00:00Z"
            ))
        })?;
        // The definition's check has read both spans.
        let size = parse_span(&window.size).unwrap_or_else(|| chrono::Duration::days(1));
        let lookback = window
            .lookback
            .as_deref()
            .and_then(parse_span)
            .unwrap_or_default();
        let stopped_in = mark.get("window_start").and_then(Value::as_str);
        let done = mark.get("window_end").and_then(Value::as_str);
        let mut from = match stopped_in.and_then(parse_time) {
            Some(at) => at,
            None => resume_from(done.and_then(parse_time), lookback, Some(start), start),
        };
        let now = chrono::Utc::now();
        let mut end = now - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
        if window.format == TimeFormat::Date {
            // Whole days, today's included.
            let midnight = |t: Time| t.date_naive().and_hms_opt(0, 0, 0).map(|d| d.and_utc());
            from = midnight(from).unwrap_or(from);
            end = midnight(end).unwrap_or(end) + chrono::Duration::days(1);
        }
        Ok(windows(from, end, size).collect())
    }

    /// Reads one stream (for one parent record); false when the page cap stopped it.
    #[allow(clippy::too_many_arguments)]
    async fn read(
        &self,
        http: &HttpClient,
        budget: &PageBudget,
        em: &mut Emitter<'_>,
        index: usize,
        parent: Option<&Map<String, Value>>,
        parent_fields: &[String],
        keep_for_children: &[String],
        kept: &mut Vec<Map<String, Value>>,
    ) -> Result<bool, SourceError> {
        let stream = &self.definition.streams[index];
        let name = self.streams[index].name;
        let partition: Option<String> = parent.map(|p| {
            parent_fields
                .iter()
                .map(|f| format!("{f}={}", p.get(f).map(scalar).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        });
        let mark = em
            .bookmark(name, partition.as_deref())
            .cloned()
            .unwrap_or(Value::Null);
        let position: Option<PagePosition> = mark
            .get("position")
            .cloned()
            .and_then(|p| serde_json::from_value(p).ok());
        let reading = Reading {
            http,
            budget,
            index,
            parent,
            parent_fields,
            keep_for_children,
            partition: partition.as_deref(),
        };
        let Some(window) = &stream.window else {
            let floor = mark
                .get("replication_key_value")
                .cloned()
                .filter(|v| !v.is_null());
            let pending = mark.get("pending").cloned().filter(|v| !v.is_null());
            let keys = |field: &str| {
                mark.get(field)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let (at_floor, at_pending) = (keys("at_bookmark"), keys("at_pending"));
            let bookmark = floor.as_ref().map(scalar);
            let context = Context {
                parent,
                bookmark: bookmark.as_deref(),
                window: None,
            };
            let listing = Listing::Plain {
                floor,
                at_floor,
                pending,
                at_pending,
            };
            return self
                .listing(&reading, em, context, position, listing, kept)
                .await;
        };
        let window = window.get_ref();
        let mut done = mark
            .get("window_end")
            .and_then(Value::as_str)
            .map(str::to_string);
        let resumed = mark.get("window_start").is_some();
        let all = self.windows_of(name, window, &mark)?;
        let count = all.len();
        for (n, (start, end)) in all.into_iter().enumerate() {
            let shown_end = if window.inclusive_end {
                end - match window.format {
                    TimeFormat::Date => chrono::Duration::days(1),
                    TimeFormat::UnixMs => chrono::Duration::milliseconds(1),
                    _ => chrono::Duration::seconds(1),
                }
            } else {
                end
            };
            let (a, b) = (
                write_time(start, window.format),
                write_time(shown_end, window.format),
            );
            let context = Context {
                parent,
                bookmark: None,
                window: Some((&a, &b)),
            };
            let listing = Listing::Window {
                done: done.clone(),
                start,
                end,
                last: n + 1 == count,
            };
            let from = if n == 0 && resumed {
                position.clone()
            } else {
                None
            };
            if !self
                .listing(&reading, em, context, from, listing, kept)
                .await?
            {
                return Ok(false);
            }
            done = Some(end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        Ok(true)
    }

    /// Reads one listing (one URL's pages) of a stream; false when the page cap stopped it.
    async fn listing(
        &self,
        reading: &Reading<'_>,
        em: &mut Emitter<'_>,
        context: Context<'_>,
        position: Option<PagePosition>,
        mut listing: Listing,
        kept: &mut Vec<Map<String, Value>>,
    ) -> Result<bool, SourceError> {
        let stream = &self.definition.streams[reading.index];
        let def = &self.streams[reading.index];
        let name = def.name;
        let client = &self.definition.client;
        let base = self.base_url();
        let path = fill(stream.path.get_ref(), &self.values, context);
        let mut url = Url::parse(&format!("{}{path}", base.trim_end_matches('/'))).map_err(
            SourceError::setting(format!("stream {name}: the URL {base}{path}")),
        )?;
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in client.params.iter().chain(stream.params.iter()) {
                // A parameter that is only {bookmark} is left out until there is one.
                if v.get_ref().trim() == "{bookmark}" && context.bookmark.is_none() {
                    continue;
                }
                query.append_pair(k, &fill(v.get_ref(), &self.values, context));
            }
            if let Some(auth) = &client.auth {
                if let AuthDef::Query { name, value } = auth.get_ref() {
                    query.append_pair(name, &fill(value, &self.values, Context::default()));
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let paginator = stream
            .paginator
            .as_ref()
            .or(client.paginator.as_ref())
            .map(|p| p.get_ref());
        let records = stream.records.as_ref().map(|r| r.get_ref().clone());
        let single = style(paginator).is_none();
        // One request is a listing of one page: a Link style that finds no next link.
        let page_style = style(paginator).unwrap_or(PageStyle::LinkHeader);
        let error = client.error.as_ref().map(|e| {
            let e = e.get_ref();
            BodyError {
                pointer: e.pointer.clone(),
                value: e.value.clone(),
                message: e.message.clone(),
            }
        });
        let mut pager = Pager::resume(page_style, url, position, reading.budget.clone())
            .with_records(records)
            .with_keyed_by(stream.keyed_by.as_ref().map(|k| k.get_ref().clone()))
            .with_error(error);
        let replication_key = def.replication_key;
        loop {
            let Some(page) = pager
                .next_page(reading.http)
                .await
                .map_err(SourceError::http(name))?
            else {
                break;
            };
            for item in page.items {
                let mut record = object(name, item)?;
                for field in &stream.drop {
                    record.remove(field);
                }
                for (from, to) in &stream.rename {
                    if let Some(v) = record.remove(from) {
                        record.insert(to.clone(), v);
                    }
                }
                if let Some(p) = reading.parent {
                    for f in reading.parent_fields {
                        record.insert(
                            format!("_parent_{f}"),
                            p.get(f).cloned().unwrap_or(Value::Null),
                        );
                    }
                }
                if let (
                    Some(rk),
                    Listing::Plain {
                        floor,
                        at_floor,
                        pending,
                        at_pending,
                    },
                ) = (replication_key, &mut listing)
                {
                    let value = record.get(rk).cloned().unwrap_or(Value::Null);
                    // An API filtering with `since` answers the records at the bookmark
                    // again: those already emitted are known by their keys. Without a key
                    // they are emitted again (at least once, never lost).
                    let key: Option<Value> = (!def.key_properties.is_empty()).then(|| {
                        Value::Array(
                            def.key_properties
                                .iter()
                                .map(|k| record.get(*k).cloned().unwrap_or(Value::Null))
                                .collect(),
                        )
                    });
                    if let (Some(floor), false) = (&floor, value.is_null()) {
                        if later(floor, &value)
                            || (!later(&value, floor)
                                && key.as_ref().is_some_and(|k| at_floor.contains(k)))
                        {
                            continue;
                        }
                    }
                    if !value.is_null() {
                        if pending.as_ref().is_none_or(|p| later(&value, p)) {
                            *pending = Some(value);
                            at_pending.clear();
                        }
                        if pending.as_ref().is_some_and(|p| !later(p, &record[rk])) {
                            at_pending.extend(key);
                        }
                    }
                }
                if !reading.keep_for_children.is_empty() {
                    let fields: Map<String, Value> = reading
                        .keep_for_children
                        .iter()
                        .filter_map(|f| record.get(f).map(|v| (f.clone(), v.clone())))
                        .collect();
                    kept.push(fields);
                }
                em.record(def, record)?;
            }
            let next = if single {
                None
            } else {
                pager.position().cloned()
            };
            let time = |t: &Time| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let (mut mark, finished) = match (&listing, &next) {
                (
                    Listing::Plain {
                        floor,
                        at_floor,
                        pending,
                        at_pending,
                    },
                    Some(position),
                ) => (
                    json!({"replication_key_value": floor, "at_bookmark": at_floor, "position": position, "pending": pending, "at_pending": at_pending}),
                    false,
                ),
                (
                    Listing::Plain {
                        floor,
                        at_floor,
                        pending,
                        at_pending,
                    },
                    None,
                ) => {
                    let (value, mut keys) = match (pending, floor) {
                        // Nothing newer than the bookmark: the keys at it grow.
                        (Some(p), Some(f)) if !later(p, f) => (
                            Some(f.clone()),
                            [at_floor.clone(), at_pending.clone()].concat(),
                        ),
                        (Some(p), _) => (Some(p.clone()), at_pending.clone()),
                        (None, f) => (f.clone(), at_floor.clone()),
                    };
                    keys.dedup();
                    (
                        json!({"replication_key_value": value, "at_bookmark": keys}),
                        true,
                    )
                }
                (Listing::Window { done, start, .. }, Some(position)) => (
                    json!({"window_end": done, "window_start": time(start), "position": position}),
                    false,
                ),
                // Between windows the run is still under way: a run stopped here (a
                // crash) goes on at the next window, without the lookback.
                (
                    Listing::Window {
                        end, last: false, ..
                    },
                    None,
                ) => (
                    json!({"window_end": time(end), "window_start": time(end)}),
                    false,
                ),
                (
                    Listing::Window {
                        end, last: true, ..
                    },
                    None,
                ) => (json!({"window_end": time(end)}), true),
            };
            if let Some(mark) = mark.as_object_mut() {
                mark.retain(|k, v| {
                    !(k.starts_with("at_") && v.as_array().is_some_and(Vec::is_empty))
                });
            }
            if !finished && !reading.keep_for_children.is_empty() && reading.partition.is_none() {
                // The children of the records listed so far are read once the listing
                // ends; a run stopped before then (a cap, a crash) must not lose them.
                mark["parents"] = Value::Array(kept.iter().cloned().map(Value::Object).collect());
            }
            em.set_bookmark(name, reading.partition, mark);
            em.checkpoint()?;
            if single {
                break;
            }
        }
        if pager.capped() {
            em.notice(
                name,
                "the page cap stopped this run; the next run goes on from here".into(),
            );
            return Ok(false);
        }
        Ok(true)
    }
}

/// What every listing of one stream read (for one parent record) shares.
struct Reading<'a> {
    http: &'a HttpClient,
    budget: &'a PageBudget,
    index: usize,
    parent: Option<&'a Map<String, Value>>,
    parent_fields: &'a [String],
    keep_for_children: &'a [String],
    partition: Option<&'a str>,
}
