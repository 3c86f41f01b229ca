//! A fake of any API a REST definition describes (`observes fake-api rest --definition
//! DEF.toml`): generated records for each stream, served under the definition's paths
//! with its auth, its paginator and where its records, totals, cursors and next URLs
//! are; a child stream's records per parent record; a `{bookmark}` parameter filters by
//! the replication key, and `{start}`/`{end}` by a window on it (or on the field the
//! records are keyed by, answered as an object of them). OAuth2 definitions get a token
//! endpoint whose access tokens expire after a number of requests; an API whose errors
//! come in a 200 body gets them so. Faults come from the shared layer, so a
//! definition-driven source meets the same 429s, 5xx, resets and truncated bodies as the
//! built-in ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use observes_sources::rest::definition::{
    placeholders, AuthDef, PaginatorDef, StreamDefinition, TimeFormat,
};
use observes_sources::rest::Definition;

use crate::{lock, Faults, Server};

/// The records of every stream, which tests change between runs.
#[derive(Debug, Clone, Default)]
pub struct RestWorld {
    /// Per stream, its records; a child's carry `_of`, their parent's path values.
    pub records: BTreeMap<String, Vec<Map<String, Value>>>,
    clock: i64,
    /// Where a windowed stream's times start: two days ago, so every run's window
    /// reaches them.
    recent: i64,
    /// OAuth2: access tokens issued, with the requests each has left.
    tokens: Vec<(String, u32)>,
    /// OAuth2: the requests each new access token answers (default: unlimited).
    pub token_uses: Option<u32>,
    /// OAuth2: token requests answered.
    pub tokens_issued: u32,
}

/// A running fake of a definition's API.
#[derive(Debug)]
pub struct FakeRest {
    /// The server.
    pub server: Server,
    /// Its data.
    pub world: Arc<Mutex<RestWorld>>,
    /// The values it gives the definition's settings (and accepts as credentials).
    pub values: BTreeMap<String, String>,
    definition: Arc<Definition>,
}

struct Shared {
    world: Arc<Mutex<RestWorld>>,
    definition: Arc<Definition>,
    values: BTreeMap<String, String>,
    base_path: String,
}

fn time(minutes: i64) -> String {
    at(1_767_225_600 + minutes * 60, TimeFormat::Rfc3339)
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `seconds` since 1970 written as a windowed stream's API writes its times.
fn at(seconds: i64, format: TimeFormat) -> Value {
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp(seconds, 0).unwrap_or_default();
    match format {
        TimeFormat::Rfc3339 => json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        TimeFormat::Unix => json!(seconds),
        TimeFormat::UnixMs => json!(seconds * 1000),
        TimeFormat::Date => json!(t.format("%Y-%m-%d").to_string()),
    }
}

/// A time as sent or stored, in seconds since 1970.
fn seconds_of(value: &Value, format: TimeFormat) -> Option<i64> {
    let text = match value {
        Value::Number(n) => {
            return n.as_i64().map(|n| {
                if format == TimeFormat::UnixMs {
                    n / 1000
                } else {
                    n
                }
            })
        }
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    match format {
        TimeFormat::Unix => text.parse().ok(),
        TimeFormat::UnixMs => text.parse::<i64>().ok().map(|n| n / 1000),
        _ => observes_sources::rest::definition::parse_start(text).map(|t| t.timestamp()),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The parent fields a stream's path and parameters use (`{parent.id}` → `id`).
fn path_fields(stream: &StreamDefinition) -> Vec<String> {
    let mut fields: Vec<String> = std::iter::once(stream.path.get_ref())
        .chain(stream.params.values().map(|v| v.get_ref()))
        .flat_map(|t| placeholders(t).unwrap_or_default())
        .filter_map(|(_, n)| n.strip_prefix("parent.").map(str::to_string))
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// The field a windowed stream's windows filter on, and how it is written.
fn window_field(stream: &StreamDefinition) -> Option<(String, TimeFormat)> {
    let window = stream.window.as_ref()?.get_ref();
    let field = stream
        .keyed_by
        .as_ref()
        .or(stream.replication_key.as_ref())?
        .get_ref()
        .clone();
    Some((field, window.format))
}

impl RestWorld {
    /// `per_parent` records for each stream (per parent record for a child), from `seed`.
    pub fn generate(definition: &Definition, seed: u64, per_parent: usize) -> RestWorld {
        let mut world = RestWorld::default();
        let mut next_id = seed * 1000 + 1;
        for stream in &definition.streams {
            let parents: Vec<Map<String, Value>> = match &stream.parent {
                None => vec![Map::new()],
                Some(p) => world.records.get(p.get_ref()).cloned().unwrap_or_default(),
            };
            let fields = path_fields(stream);
            let mut rows = Vec::new();
            for parent in &parents {
                for n in 0..per_parent {
                    let mut row = world.row(stream, next_id);
                    next_id += 1;
                    if let Some(keyed) = &stream.keyed_by {
                        let day = now() - (per_parent - 1 - n) as i64 * 86_400;
                        row.insert(keyed.get_ref().clone(), at(day, TimeFormat::Date));
                    }
                    if stream.parent.is_some() {
                        let of: Map<String, Value> = fields
                            .iter()
                            .map(|f| (f.clone(), parent.get(f).cloned().unwrap_or(Value::Null)))
                            .collect();
                        row.insert("_of".into(), Value::Object(of));
                    }
                    rows.push(row);
                }
            }
            world.records.insert(stream.name.get_ref().clone(), rows);
        }
        world
    }

    fn row(&mut self, stream: &StreamDefinition, id: u64) -> Map<String, Value> {
        self.clock += 1;
        if self.recent == 0 {
            self.recent = now() - 2 * 86_400;
        }
        let mut row = Map::new();
        let keyed = stream.keyed_by.as_ref().map(|k| k.get_ref().as_str());
        for key in &stream.key {
            if !key.starts_with("_parent_") && Some(key.as_str()) != keyed {
                row.insert(key.clone(), json!(id));
            }
        }
        row.insert("id".into(), json!(id));
        row.insert(
            "name".into(),
            json!(format!("{} {id}", stream.name.get_ref())),
        );
        if let Some(rk) = &stream.replication_key {
            let value = match window_field(stream) {
                Some((_, format)) => at(self.recent + self.clock * 60, format),
                None => json!(time(self.clock)),
            };
            row.insert(rk.get_ref().clone(), value);
        }
        row
    }

    /// Adds `n` records to a top-level stream, newer than every other.
    pub fn add(&mut self, definition: &Definition, stream: &str, n: usize) {
        let Some(def) = definition
            .streams
            .iter()
            .find(|s| s.name.get_ref() == stream)
        else {
            return;
        };
        let start = self
            .records
            .values()
            .flatten()
            .filter_map(|r| r.get("id")?.as_u64())
            .max()
            .unwrap_or(0)
            + 1;
        for i in 0..n as u64 {
            let row = self.row(def, start + i);
            self.records
                .entry(stream.to_string())
                .or_default()
                .push(row);
        }
    }

    /// Changes the first `n` records of a stream (the last `n`, the latest days, of one
    /// keyed by a date): a new name, and a replication key newer than every other (a
    /// windowed stream's: a second ago).
    pub fn touch(&mut self, definition: &Definition, stream: &str, n: usize) {
        let Some(def) = definition
            .streams
            .iter()
            .find(|s| s.name.get_ref() == stream)
        else {
            return;
        };
        let rk = def.replication_key.as_ref().map(|r| r.get_ref().clone());
        let window = window_field(def);
        let mut clock = self.clock;
        let rows = self.records.entry(stream.to_string()).or_default();
        let chosen: Vec<&mut Map<String, Value>> = if def.keyed_by.is_some() {
            rows.iter_mut().rev().take(n).collect()
        } else {
            rows.iter_mut().take(n).collect()
        };
        for row in chosen {
            clock += 1;
            row.insert("name".into(), json!(format!("changed {clock}")));
            if let Some(rk) = &rk {
                let value = match window {
                    Some((_, format)) => at(now() - 1, format),
                    None => json!(time(clock)),
                };
                row.insert(rk.clone(), value);
            }
        }
        self.clock = clock;
    }

    /// The next OAuth2 access token expires after this many more requests.
    pub fn expire_tokens_after(&mut self, uses: u32) {
        self.token_uses = Some(uses);
        for token in &mut self.tokens {
            token.1 = token.1.min(uses);
        }
    }
}

fn fill(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{config.{k}}}"), v);
    }
    out
}

fn unauthorized(shared: &Shared) -> Response {
    // An API that says errors in its body says this one there too, with a 200.
    if let Some(error) = &shared.definition.client.error {
        let error = error.get_ref();
        let mut body = json!({});
        put(&mut body, &error.pointer, json!(error.value));
        if let Some(m) = &error.message {
            put(
                &mut body,
                m,
                json!("You can't access this resource as it requires view access."),
            );
        }
        return Json(body).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "Unauthorized"})),
    )
        .into_response()
}

/// Whether a request carries the definition's credentials.
fn authorized(shared: &Shared, headers: &HeaderMap, query: &BTreeMap<String, String>) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let Some(auth) = &shared.definition.client.auth else {
        return true;
    };
    let filled = |t: &str| fill(t, &shared.values);
    match auth.get_ref() {
        AuthDef::Bearer { token } => header("authorization") == format!("Bearer {}", filled(token)),
        AuthDef::Header { name, value } => header(name) == filled(value),
        AuthDef::Basic { username, password } => {
            use base64::Engine;
            let expected = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                filled(username),
                filled(password)
            ));
            header("authorization") == format!("Basic {expected}")
        }
        AuthDef::Query { name, value } => query.get(name) == Some(&filled(value)),
        AuthDef::OAuth2 { scheme, .. } => {
            let mut world = lock(&shared.world);
            let given = header("authorization");
            match world
                .tokens
                .iter_mut()
                .find(|(t, _)| given == format!("{scheme} {t}"))
            {
                Some((_, left)) if *left > 0 => {
                    *left -= 1;
                    true
                }
                _ => false,
            }
        }
    }
}

/// The OAuth2 refresh grant: a new access token for the definition's client.
fn grant(shared: &Shared, form: &BTreeMap<String, String>) -> Response {
    let Some(AuthDef::OAuth2 {
        client_id,
        client_secret,
        refresh_token,
        ..
    }) = shared.definition.client.auth.as_ref().map(|a| a.get_ref())
    else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "Not Found"}))).into_response();
    };
    let field = |k: &str| form.get(k).map(String::as_str);
    let filled = |t: &str| fill(t, &shared.values);
    if field("grant_type") != Some("refresh_token")
        || field("client_id") != Some(filled(client_id).as_str())
        || field("client_secret") != Some(filled(client_secret).as_str())
        || field("refresh_token") != Some(filled(refresh_token).as_str())
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let mut world = lock(&shared.world);
    world.tokens_issued += 1;
    let token = format!("fake-access-{}", world.tokens_issued);
    let uses = world.token_uses.unwrap_or(u32::MAX);
    world.tokens.push((token.clone(), uses));
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600})).into_response()
}

/// Puts `value` at a JSON pointer of `body`, making the objects on the way.
fn put(body: &mut Value, pointer: &str, value: Value) {
    let mut at = body;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let map = at.as_object_mut().expect("an object");
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return;
        }
        at = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

/// The path of the definition's OAuth2 token endpoint, if it has one.
fn token_path(shared: &Shared) -> Option<String> {
    let Some(AuthDef::OAuth2 { token_url, .. }) =
        shared.definition.client.auth.as_ref().map(|a| a.get_ref())
    else {
        return None;
    };
    let url = fill(token_url, &shared.values);
    Some(match url::Url::parse(&url) {
        Ok(u) => u.path().to_string(),
        Err(_) => format!("{}{url}", shared.base_path),
    })
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let uri = request.uri().clone();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if request.method() == axum::http::Method::POST
        && token_path(&shared).as_deref() == Some(uri.path())
    {
        let body = axum::body::to_bytes(request.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        let form: BTreeMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        return grant(&shared, &form);
    }
    if !authorized(&shared, request.headers(), &query) {
        return unauthorized(&shared);
    }
    let path = uri
        .path()
        .strip_prefix(shared.base_path.as_str())
        .unwrap_or(uri.path());
    let got: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for stream in &shared.definition.streams {
        let template = fill(stream.path.get_ref(), &shared.values);
        let want: Vec<&str> = template.split('/').filter(|p| !p.is_empty()).collect();
        if want.len() != got.len() {
            continue;
        }
        let mut of = Map::new();
        let mut matches = want.iter().zip(&got).all(|(w, g)| {
            match w.strip_prefix("{parent.").and_then(|f| f.strip_suffix('}')) {
                Some(field) => {
                    of.insert(field.to_string(), json!(g));
                    true
                }
                None => w == g,
            }
        });
        // Streams under one path (Matomo's index.php) differ by their fixed parameters.
        for (param, value) in &stream.params {
            let value = value.get_ref();
            match value
                .strip_prefix("{parent.")
                .and_then(|f| f.strip_suffix('}'))
            {
                Some(field) => match query.get(param) {
                    Some(given) => {
                        of.insert(field.to_string(), json!(given));
                    }
                    None => matches = false,
                },
                None if !value.contains('{') => {
                    matches &= query
                        .get(param)
                        .is_none_or(|given| *given == fill(value, &shared.values));
                }
                None => {}
            }
        }
        if matches {
            return list(&shared, stream, &of, &query, &uri);
        }
    }
    (StatusCode::NOT_FOUND, Json(json!({"error": "Not Found"}))).into_response()
}

fn list(
    shared: &Shared,
    stream: &StreamDefinition,
    of: &Map<String, Value>,
    query: &BTreeMap<String, String>,
    uri: &axum::http::Uri,
) -> Response {
    let world = lock(&shared.world);
    let same =
        |a: &Value, b: &Value| a.to_string().trim_matches('"') == b.to_string().trim_matches('"');
    let mut rows: Vec<Value> = world
        .records
        .get(stream.name.get_ref())
        .into_iter()
        .flatten()
        .filter(|r| {
            let Some(Value::Object(parent)) = r.get("_of") else {
                return of.is_empty();
            };
            of.iter()
                .all(|(k, v)| parent.get(k).is_some_and(|p| same(p, v)))
        })
        .map(|r| {
            let mut r = r.clone();
            r.remove("_of");
            Value::Object(r)
        })
        .collect();
    drop(world);
    // A parameter carrying {bookmark}: only records at or after it.
    if let Some(rk) = &stream.replication_key {
        for (param, value) in &stream.params {
            if value.get_ref().contains("{bookmark}") {
                if let Some(since) = query.get(param) {
                    rows.retain(|r| {
                        r[rk.get_ref()]
                            .as_str()
                            .is_some_and(|t| t >= since.as_str())
                    });
                }
            }
        }
    }
    // {start} and {end}: only records in the window.
    let mut range = None;
    if let (Some((field, format)), Some(window)) = (window_field(stream), &stream.window) {
        let bound = |placeholder: &str| {
            stream.params.iter().find_map(|(param, value)| {
                let value = value.get_ref();
                if !value.contains(placeholder) {
                    return None;
                }
                let given = query.get(param)?;
                // `date=2026-01-01,2026-01-31`: the part where the placeholder is.
                let parts: Vec<&str> = value.split(',').collect();
                let at = parts.iter().position(|p| p.contains(placeholder))?;
                let part = given.split(',').nth(at)?;
                seconds_of(&json!(part), format)
            })
        };
        let inclusive = window.get_ref().inclusive_end;
        let unit = if format == TimeFormat::Date {
            86_400
        } else {
            1
        };
        let from = bound("{start}").unwrap_or(i64::MIN);
        let to = bound("{end}").map_or(i64::MAX, |e| if inclusive { e + unit } else { e });
        rows.retain(|r| {
            r.get(&field)
                .and_then(|v| seconds_of(v, format))
                .is_some_and(|t| from <= t && t < to)
        });
        range = Some((from, to));
    }
    if let Some(keyed) = &stream.keyed_by {
        // An object keyed by the field: each key's value an array of its records, [] for
        // a day with none, as Matomo answers a range of days.
        let keyed = keyed.get_ref();
        let mut by: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        if let Some((from, to)) = range.filter(|(f, t)| *f > i64::MIN && *t < i64::MAX) {
            let mut day = from;
            while day < to {
                if let Some(key) = at(day, TimeFormat::Date).as_str() {
                    by.entry(key.to_string()).or_default();
                }
                day += 86_400;
            }
        }
        for mut row in rows {
            let key = row
                .as_object_mut()
                .and_then(|r| r.remove(keyed))
                .map(|k| {
                    k.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| k.to_string())
                })
                .unwrap_or_default();
            by.entry(key).or_default().push(row);
        }
        let body: Map<String, Value> = by.into_iter().map(|(k, v)| (k, Value::Array(v))).collect();
        return Json(Value::Object(body)).into_response();
    }
    let paginator = stream
        .paginator
        .as_ref()
        .or(shared.definition.client.paginator.as_ref())
        .map(|p| p.get_ref().clone())
        .unwrap_or(PaginatorDef::None);
    let records = stream
        .records
        .as_ref()
        .map(|r| r.get_ref().clone())
        .unwrap_or_default();
    let num = |k: &str, d: u64| query.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let total = rows.len() as u64;
    let (from, size) = match &paginator {
        PaginatorDef::PageNumber {
            page_param,
            limit_param,
            limit,
            ..
        } => {
            let size = num(limit_param, *limit).max(1);
            ((num(page_param, 1).max(1) - 1) * size, size)
        }
        PaginatorDef::Offset {
            offset_param,
            limit_param,
            limit,
            ..
        } => (num(offset_param, 0), num(limit_param, *limit).max(1)),
        PaginatorDef::LinkHeader => (num("after", 0), num("per_page", 10)),
        PaginatorDef::Cursor { cursor_param, .. } => (num(cursor_param, 0), 10),
        PaginatorDef::NextUrl { .. } => (num("after", 0), 10),
        PaginatorDef::None => (0, total.max(1)),
    };
    let page: Vec<Value> = rows
        .iter()
        .skip(from as usize)
        .take(size as usize)
        .cloned()
        .collect();
    let more = from + size < total;
    let next_url = || {
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| *k != "after")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.push(("after".into(), (from + size).to_string()));
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{}?{q}", uri.path())
    };
    let mut body = if records.is_empty() {
        Value::Array(page)
    } else {
        let mut body = json!({});
        put(&mut body, &records, Value::Array(page));
        body
    };
    let mut response_headers = Vec::new();
    match &paginator {
        PaginatorDef::PageNumber { total: Some(t), .. }
        | PaginatorDef::Offset { total: Some(t), .. } => put(&mut body, t, json!(total)),
        PaginatorDef::Cursor { cursor, .. } => put(
            &mut body,
            cursor,
            if more {
                json!((from + size).to_string())
            } else {
                Value::Null
            },
        ),
        PaginatorDef::NextUrl { next } => put(
            &mut body,
            next,
            if more { json!(next_url()) } else { Value::Null },
        ),
        PaginatorDef::LinkHeader if more => {
            response_headers.push(("link", format!("<{}>; rel=\"next\"", next_url())));
        }
        _ => {}
    }
    let mut response = Json(body).into_response();
    for (name, value) in response_headers {
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

impl FakeRest {
    /// Serves `definition` on `port` (0: a free one) with `per_parent` records a stream.
    pub fn start(
        definition: Definition,
        seed: u64,
        port: u16,
        per_parent: usize,
    ) -> std::io::Result<FakeRest> {
        // A setting a window starts at is a date: thirty days ago, so the first run
        // reads every record (they are from the last two days).
        let window_starts: Vec<String> = definition
            .streams
            .iter()
            .filter_map(|s| s.window.as_ref())
            .flat_map(|w| placeholders(&w.get_ref().start).unwrap_or_default())
            .filter_map(|(_, n)| n.strip_prefix("config.").map(str::to_string))
            .collect();
        let month_ago = at(now() - 30 * 86_400, TimeFormat::Date);
        let values: BTreeMap<String, String> = definition
            .settings
            .keys()
            .map(|k| {
                let value = match month_ago.as_str() {
                    Some(date) if window_starts.contains(k) => date.to_string(),
                    _ => format!("fake-{k}-{seed}"),
                };
                (k.clone(), value)
            })
            .collect();
        let base = fill(definition.client.base_url.get_ref(), &values);
        let base_path = url::Url::parse(&base)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let world = Arc::new(Mutex::new(RestWorld::generate(
            &definition,
            seed,
            per_parent,
        )));
        let definition = Arc::new(definition);
        let shared = Arc::new(Shared {
            world: world.clone(),
            definition: definition.clone(),
            values: values.clone(),
            base_path,
        });
        let app = Router::new().fallback(handle).with_state(shared);
        let faults = Arc::new(Mutex::new(Faults::default()));
        let server = Server::spawn(app, faults, port)?;
        Ok(FakeRest {
            server,
            world,
            values,
            definition,
        })
    }

    /// The base URL a source reaches it at (the definition's path kept).
    pub fn base_url(&self) -> String {
        let base = fill(self.definition.client.base_url.get_ref(), &self.values);
        let path = url::Url::parse(&base)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        format!("{}{path}", self.server.base_url())
    }

    /// The definition it serves.
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    /// A REST source's config for this fake: the definition file, the base URL, the values.
    pub fn settings(&self, definition_file: &str) -> String {
        let mut text = format!(
            "# For the fake: a real account gives its own values (or {{ env = \"VAR\" }}).\n\
             definition = \"{definition_file}\"\nbase_url = \"{}\"\n[values]\n",
            self.base_url()
        );
        for (k, v) in &self.values {
            text.push_str(&format!("{k} = \"{v}\"\n"));
        }
        text.push_str("[http]\nrequests_per_second = 200\nbackoff_ms = 1\nmax_backoff_ms = 20\n");
        text
    }

    /// Its data, locked.
    pub fn world(&self) -> std::sync::MutexGuard<'_, RestWorld> {
        lock(&self.world)
    }
}
