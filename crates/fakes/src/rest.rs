//! A fake of any API a REST definition describes (`observes fake-api rest --definition
//! DEF.toml`): generated records for each stream, served under the definition's paths
//! with its auth, its paginator and where its records, totals, cursors and next URLs
//! are; a child stream's records per parent record; a `{bookmark}` parameter filters by
//! the replication key. Faults come from the shared layer, so a definition-driven source
//! meets the same 429s, 5xx, resets and truncated bodies as the built-in ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use observes_sources::rest::definition::{AuthDef, PaginatorDef, StreamDefinition};
use observes_sources::rest::Definition;

use crate::{lock, Faults, Server};

/// The records of every stream, which tests change between runs.
#[derive(Debug, Clone, Default)]
pub struct RestWorld {
    /// Per stream, its records; a child's carry `_of`, their parent's path values.
    pub records: BTreeMap<String, Vec<Map<String, Value>>>,
    clock: i64,
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
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600 + minutes * 60, 0)
        .unwrap_or_default();
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The parent fields a stream's path uses, in order (`{parent.id}` → `id`).
fn path_fields(stream: &StreamDefinition) -> Vec<String> {
    observes_sources::rest::definition::placeholders(stream.path.get_ref())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, n)| n.strip_prefix("parent.").map(str::to_string))
        .collect()
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
                for _ in 0..per_parent {
                    let mut row = world.row(stream, next_id);
                    next_id += 1;
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
        let mut row = Map::new();
        for key in &stream.key {
            row.insert(key.clone(), json!(id));
        }
        row.insert("id".into(), json!(id));
        row.insert(
            "name".into(),
            json!(format!("{} {id}", stream.name.get_ref())),
        );
        if let Some(rk) = &stream.replication_key {
            row.insert(rk.get_ref().clone(), json!(time(self.clock)));
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

    /// Changes the first `n` records of a stream: a new name, and a replication key
    /// newer than every other.
    pub fn touch(&mut self, definition: &Definition, stream: &str, n: usize) {
        let rk = definition
            .streams
            .iter()
            .find(|s| s.name.get_ref() == stream)
            .and_then(|s| s.replication_key.as_ref().map(|r| r.get_ref().clone()));
        let mut clock = self.clock;
        for row in self
            .records
            .entry(stream.to_string())
            .or_default()
            .iter_mut()
            .take(n)
        {
            clock += 1;
            row.insert("name".into(), json!(format!("changed {clock}")));
            if let Some(rk) = &rk {
                row.insert(rk.clone(), json!(time(clock)));
            }
        }
        self.clock = clock;
    }
}

fn fill(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{config.{k}}}"), v);
    }
    out
}

fn unauthorized() -> Response {
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
    }
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

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let uri = request.uri().clone();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if !authorized(&shared, request.headers(), &query) {
        return unauthorized();
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
        let matches = want.iter().zip(&got).all(|(w, g)| {
            match w.strip_prefix("{parent.").and_then(|f| f.strip_suffix('}')) {
                Some(field) => {
                    of.insert(field.to_string(), json!(g));
                    true
                }
                None => w == g,
            }
        });
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
        let values: BTreeMap<String, String> = definition
            .settings
            .keys()
            .map(|k| (k.clone(), format!("fake-{k}-{seed}")))
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
