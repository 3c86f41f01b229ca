//! Running a REST definition: its client through the shared toolkit (retries, 429 and
//! `Retry-After`, rate limit, redaction, the [`Pager`]), its streams through the stream
//! model, with exactly-once bookmarks.
//!
//! State, per stream (and per parent record for a child stream, keyed `FIELD=VALUE,…`):
//! `{"replication_key_value": …, "position": …, "pending": …}`. A page's records are
//! followed by a `STATE` holding where the next page starts (`position`) and the greatest
//! replication key seen in the listing so far (`pending`); a run stopped anywhere resumes
//! at the next page. When a listing ends, `pending` becomes `replication_key_value`, the
//! value `{bookmark}` sends next time; records older than it are not emitted again.
//! A page cap (`max_pages`) stops the run at a page boundary; the next run starts with
//! the stream it stopped in, and the parent records it had left (bookmark `_resume`).
//! While a parent stream's listing is under way, its bookmark keeps the fields its
//! children need of the records listed so far (`parents`), so a run stopped mid-listing
//! loses no child.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use observes_http::{Auth, HttpClient, PageBudget, PagePosition, PageStyle, Pager};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use super::definition::{AuthDef, Definition, PaginatorDef, StreamDefinition};
use crate::stream::{object, Emitter, Sink, StreamDef};
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
}

/// Text with its placeholders filled.
fn fill(
    text: &str,
    values: &BTreeMap<String, String>,
    parent: Option<&Map<String, Value>>,
    bookmark: Option<&str>,
) -> String {
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
            parent.and_then(|p| p.get(field)).map(scalar)
        } else if name == "bookmark" {
            bookmark.map(str::to_string)
        } else {
            None
        };
        out.push_str(&value.unwrap_or_default());
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
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
            .map(|s| StreamDef {
                name: leak(s.name.get_ref()),
                key_properties: Box::leak(
                    s.key
                        .iter()
                        .map(|k| leak(k))
                        .collect::<Vec<_>>()
                        .into_boxed_slice(),
                ),
                replication_key: s.replication_key.as_ref().map(|r| leak(r.get_ref())),
                schema: json!({"type": "object", "properties": {}}),
            })
            .collect();
        Ok(RestSource {
            definition,
            values,
            config,
            streams,
        })
    }

    /// The definition.
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    fn client(&self) -> Result<HttpClient, SourceError> {
        let client = &self.definition.client;
        let mut http = self.config.http.client(client.rate_limit.unwrap_or(5.0))?;
        let filled = |t: &str| fill(t, &self.values, None, None);
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
        let def = &self.streams[index];
        let name = def.name;
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
        let floor = mark
            .get("replication_key_value")
            .cloned()
            .filter(|v| !v.is_null());
        let mut pending = mark.get("pending").cloned().filter(|v| !v.is_null());
        let position: Option<PagePosition> = mark
            .get("position")
            .cloned()
            .and_then(|p| serde_json::from_value(p).ok());
        let bookmark = floor.as_ref().map(scalar);

        let client = &self.definition.client;
        let base = match &self.config.base_url {
            Some(base) => base.clone(),
            None => fill(client.base_url.get_ref(), &self.values, None, None),
        };
        let path = fill(
            stream.path.get_ref(),
            &self.values,
            parent,
            bookmark.as_deref(),
        );
        let mut url = Url::parse(&format!("{}{path}", base.trim_end_matches('/'))).map_err(
            SourceError::setting(format!("stream {name}: the URL {base}{path}")),
        )?;
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in client.params.iter().chain(stream.params.iter()) {
                // A parameter that is only {bookmark} is left out until there is one.
                if v.get_ref().trim() == "{bookmark}" && bookmark.is_none() {
                    continue;
                }
                query.append_pair(
                    k,
                    &fill(v.get_ref(), &self.values, parent, bookmark.as_deref()),
                );
            }
            if let Some(auth) = &client.auth {
                if let AuthDef::Query { name, value } = auth.get_ref() {
                    query.append_pair(name, &fill(value, &self.values, None, None));
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
        let mut pager =
            Pager::resume(page_style, url, position, budget.clone()).with_records(records);
        let replication_key = def.replication_key;
        loop {
            let Some(page) = pager
                .next_page(http)
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
                if let Some(p) = parent {
                    for f in parent_fields {
                        record.insert(
                            format!("_parent_{f}"),
                            p.get(f).cloned().unwrap_or(Value::Null),
                        );
                    }
                }
                if let Some(rk) = replication_key {
                    let value = record.get(rk).cloned().unwrap_or(Value::Null);
                    if let Some(floor) = &floor {
                        if !value.is_null() && later(floor, &value) {
                            continue;
                        }
                    }
                    if !value.is_null() && pending.as_ref().is_none_or(|p| later(&value, p)) {
                        pending = Some(value);
                    }
                }
                if !keep_for_children.is_empty() {
                    let fields: Map<String, Value> = keep_for_children
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
            let mut mark = match &next {
                Some(position) => {
                    json!({"replication_key_value": floor, "position": position, "pending": pending})
                }
                None => json!({"replication_key_value": pending.clone().or(floor.clone())}),
            };
            if next.is_some() && !keep_for_children.is_empty() && partition.is_none() {
                // The children of the records listed so far are read once the listing
                // ends; a run stopped before then (a cap, a crash) must not lose them.
                mark["parents"] = Value::Array(kept.iter().cloned().map(Value::Object).collect());
            }
            em.set_bookmark(name, partition.as_deref(), mark);
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
