//! A declarative REST source's definition: a TOML file naming the API's client (base URL,
//! auth, headers, rate limit, paginator) and its streams (path, parameters, where the
//! records are, key, replication key, parent), checked whole before anything runs.
//!
//! ```toml
//! about = "Bugsnag (Data Access API v2): organizations and their projects."
//!
//! [settings]                      # what a config file gives; {config.NAME} uses one
//! token = "a personal auth token"
//!
//! [client]
//! base_url = "https://api.bugsnag.com"
//! headers = { "X-Version" = "2" }
//! auth = { type = "header", name = "Authorization", value = "token {config.token}" }
//! rate_limit = 1.0                # requests per second
//! paginator = { type = "link_header" }
//!
//! [[streams]]
//! name = "organizations"
//! path = "/user/organizations"
//! params = { per_page = "100" }
//! key = ["id"]
//!
//! [[streams]]
//! name = "projects"
//! parent = "organizations"        # read once per organization
//! path = "/organizations/{parent.id}/projects"
//! key = ["id"]
//! ```
//!
//! Placeholders: `{config.NAME}` (a declared setting), `{parent.FIELD}` (a field of the
//! parent's record, in a stream with a `parent`), `{bookmark}` (in a stream with a
//! `replication_key`), `{start}` and `{end}` (in a stream with a `window`, formatted as
//! it says). A stream may also give `keyed_by` (records in an object keyed by a field, as
//! Matomo answers), and a `schema` (inline or a `.json` file beside the definition);
//! auth may be `oauth2` (the refresh grant), and `[client] error` says how an API
//! reports an error in a 2xx body. Every error names the file, the line and what to
//! write instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// What is wrong with a definition, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct DefinitionError {
    /// The definition's file.
    pub file: PathBuf,
    /// The line (from 1).
    pub line: usize,
    /// The column (from 1).
    pub column: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// How the API is authenticated; every value may hold `{config.NAME}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthDef {
    /// `Authorization: Bearer TOKEN`.
    Bearer {
        /// The token.
        token: String,
    },
    /// A header of its own (`Authorization: token …`, `X-Api-Key: …`).
    Header {
        /// The header's name.
        name: String,
        /// Its value.
        value: String,
    },
    /// HTTP basic.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A key in the query string (`token_auth=…`); redacted from every error and log.
    Query {
        /// The parameter.
        name: String,
        /// Its value.
        value: String,
    },
    /// A bearer token from the OAuth2 refresh grant (RFC 6749 §6), fetched at the first
    /// request and again before it expires or when the API answers 401.
    #[serde(rename = "oauth2")]
    OAuth2 {
        /// The token endpoint: a URL, or a path under the base URL.
        token_url: String,
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
        /// The refresh token.
        refresh_token: String,
        /// The access token's `Authorization` scheme (default `Bearer`).
        #[serde(default = "bearer")]
        scheme: String,
    },
}

fn bearer() -> String {
    "Bearer".into()
}

/// How `{start}` and `{end}` are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// `2026-03-05T14:02:11Z`.
    #[default]
    Rfc3339,
    /// Seconds since 1970 (`1772719331`).
    Unix,
    /// Milliseconds since 1970.
    UnixMs,
    /// `2026-03-05`; windows are whole days.
    Date,
}

/// `[streams.window]`: a time-windowed API, read in consecutive windows from `start` to
/// now, each request carrying its window as `{start}` and `{end}`. The bookmark is the
/// end of the last window read; the next run starts `lookback` before it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDef {
    /// Where the first run starts: RFC 3339 or `YYYY-MM-DD`, or `{config.NAME}`.
    pub start: String,
    /// Each window's span: `30d`, `12h`, `15m`, `1w`.
    pub size: String,
    /// How far before the bookmark a run starts again, for late and changed data.
    #[serde(default)]
    pub lookback: Option<String>,
    /// How `{start}` and `{end}` are written (default RFC 3339).
    #[serde(default)]
    pub format: TimeFormat,
    /// `{end}` is the window's last second (or day) instead of the next one's first,
    /// for APIs whose ranges include their end.
    #[serde(default)]
    pub inclusive_end: bool,
}

/// A span written `30d`, `12h`, `15m`, `45s`, `1w`.
pub fn parse_span(text: &str) -> Option<chrono::Duration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    if n < 0 {
        return None;
    }
    Some(match unit {
        's' => chrono::Duration::seconds(n),
        'm' => chrono::Duration::minutes(n),
        'h' => chrono::Duration::hours(n),
        'd' => chrono::Duration::days(n),
        'w' => chrono::Duration::weeks(n),
        _ => return None,
    })
}

/// A window's start written in a definition or a config: RFC 3339, or a date (its
/// midnight, UTC).
pub fn parse_start(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    crate::window::parse_time(text).or_else(|| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
    })
}

/// An answer that is an error whatever its status: Matomo answers a refused token with
/// 200 and `{"result": "error", "message": …}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDef {
    /// Where the body says it is an error, a JSON pointer.
    pub pointer: String,
    /// The value there that means an error.
    pub value: String,
    /// Where the body gives the error's message, a JSON pointer.
    pub message: Option<String>,
}

/// A stream's JSON Schema: inline, or a `.json` file beside the definition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SchemaDef {
    /// A file, relative to the definition's folder.
    File(String),
    /// The schema itself, written in TOML.
    Inline(toml::Table),
}

/// How the API pages its listings: one of the toolkit's paginators
/// ([`observes_http::PageStyle`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaginatorDef {
    /// One request, no pages.
    None,
    /// `page=1,2,…`; the last page is short, or reaches the total at `total`.
    PageNumber {
        /// The page parameter (default `page`).
        #[serde(default = "page")]
        page_param: String,
        /// The page-size parameter (default `per_page`).
        #[serde(default = "per_page")]
        limit_param: String,
        /// The page size.
        limit: u64,
        /// Where the body gives the total, a JSON pointer.
        total: Option<String>,
    },
    /// The `rel="next"` URL of the `Link` header.
    LinkHeader,
    /// `offset=0,limit,…`; the last page is short, or reaches the total at `total`.
    Offset {
        /// The offset parameter (default `offset`).
        #[serde(default = "offset")]
        offset_param: String,
        /// The page-size parameter (default `limit`).
        #[serde(default = "limit")]
        limit_param: String,
        /// The page size.
        limit: u64,
        /// Where the body gives the total, a JSON pointer.
        total: Option<String>,
    },
    /// A cursor from the body (a JSON pointer), sent back as `cursor_param`.
    Cursor {
        /// Where the body holds the next cursor.
        cursor: String,
        /// The parameter it is sent back as.
        cursor_param: String,
    },
    /// The next page's URL from the body (a JSON pointer).
    NextUrl {
        /// Where the body holds the next URL.
        next: String,
    },
}

fn page() -> String {
    "page".into()
}
fn per_page() -> String {
    "per_page".into()
}
fn offset() -> String {
    "offset".into()
}
fn limit() -> String {
    "limit".into()
}

/// `[client]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientDef {
    /// The API's root; paths are appended to it.
    pub base_url: Spanned<String>,
    /// How requests are authenticated.
    pub auth: Option<Spanned<AuthDef>>,
    /// Headers of every request.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// Query parameters of every request.
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<String>>,
    /// Requests per second at most.
    pub rate_limit: Option<f64>,
    /// How listings are paged (default: none).
    pub paginator: Option<Spanned<PaginatorDef>>,
    /// An answer that is an error even with a 2xx status.
    pub error: Option<Spanned<ErrorDef>>,
}

/// `[[streams]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDefinition {
    /// The stream's name (its table).
    pub name: Spanned<String>,
    /// The path under the base URL; may hold placeholders.
    pub path: Spanned<String>,
    /// Query parameters; values may hold placeholders.
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<String>>,
    /// Where a page's records are: a JSON pointer (default: the body is their array).
    pub records: Option<Spanned<String>>,
    /// The records are an object keyed by this field's values (Matomo's
    /// `{"2026-03-05": {…}, "2026-03-06": [{…}, …]}`): each key becomes the field, in
    /// each record of its value (an object, or an array of them).
    pub keyed_by: Option<Spanned<String>>,
    /// The primary key's fields.
    #[serde(default)]
    pub key: Vec<String>,
    /// The field incremental reads follow; its greatest value is the bookmark.
    pub replication_key: Option<Spanned<String>>,
    /// The stream read once per record of this one (`{parent.FIELD}` in its path).
    pub parent: Option<Spanned<String>>,
    /// This stream's paginator, if not the client's.
    pub paginator: Option<Spanned<PaginatorDef>>,
    /// Fields renamed (`old = "new"`).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Fields dropped (secrets the API returns).
    #[serde(default)]
    pub drop: Vec<String>,
    /// Read in time windows (`{start}`, `{end}`).
    pub window: Option<Spanned<WindowDef>>,
    /// The records' JSON Schema (default: inferred by the loader).
    pub schema: Option<Spanned<SchemaDef>>,
}

/// A whole definition file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// One line on what it reads.
    pub about: String,
    /// The settings a config file gives, with what each is.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The client.
    pub client: ClientDef,
    /// The streams, in the order they are read.
    pub streams: Vec<StreamDefinition>,
}

/// Where a placeholder is used: what it may name.
struct Scope<'a> {
    settings: &'a BTreeMap<String, String>,
    parent: Option<&'a str>,
    bookmark: bool,
    window: bool,
}

/// The placeholders of a text (`{…}`), with their offsets in it.
pub fn placeholders(text: &str) -> Result<Vec<(usize, &str)>, usize> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut at = 0;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or(at + open)?;
        out.push((at + open, &rest[open + 1..open + close]));
        at += open + close + 1;
        rest = &text[at..];
    }
    Ok(out)
}

impl Definition {
    /// Reads and checks the definition at `file`, and the schema files its streams name.
    pub fn load(file: &Path) -> Result<Definition, DefinitionError> {
        let text = std::fs::read_to_string(file).map_err(|e| DefinitionError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot be read: {e}"),
        })?;
        let definition = Definition::parse(file, &text)?;
        for stream in &definition.streams {
            definition.schema(stream, file, &text)?;
        }
        Ok(definition)
    }

    /// A stream's JSON Schema, if it has one; `file` is the definition's (a schema
    /// file is beside it) and `text` its content (for the line of an error).
    pub fn schema(
        &self,
        stream: &StreamDefinition,
        file: &Path,
        text: &str,
    ) -> Result<Option<serde_json::Value>, DefinitionError> {
        let Some(schema) = &stream.schema else {
            return Ok(None);
        };
        let path = match schema.get_ref() {
            SchemaDef::Inline(table) => {
                return Ok(Some(serde_json::to_value(table).unwrap_or_default()))
            }
            SchemaDef::File(path) => file.parent().unwrap_or(Path::new(".")).join(path),
        };
        let before = &text[..schema.span().start.min(text.len())];
        let wrong = |message: String| DefinitionError {
            file: file.to_path_buf(),
            line: before.matches('\n').count() + 1,
            column: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
            message,
        };
        let json = std::fs::read_to_string(&path)
            .map_err(|e| wrong(format!("the schema {} cannot be read: {e}", path.display())))?;
        let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
            wrong(format!(
                "the schema {} is not JSON: line {}, column {}: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        if value.get("type").and_then(|t| t.as_str()) != Some("object") {
            return Err(wrong(format!(
                "the schema {} describes no record: its \"type\" must be \"object\"",
                path.display()
            )));
        }
        Ok(Some(value))
    }

    /// Checks `text`, the definition at `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Definition, DefinitionError> {
        let at = |offset: usize, message: String| {
            let before = &text[..offset.min(text.len())];
            DefinitionError {
                file: file.to_path_buf(),
                line: before.matches('\n').count() + 1,
                column: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                message,
            }
        };
        let definition: Definition = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().trim().to_string())
        })?;
        let spanned = |s: &Spanned<String>, message: String| at(s.span().start, message);

        let pointer_at = |value: &str, what: &str, offset: usize| -> Result<(), DefinitionError> {
            if value.is_empty() || value.starts_with('/') {
                Ok(())
            } else {
                Err(at(
                    offset,
                    format!(
                        "{what} {value:?} is not a JSON pointer: write \"/{}\"",
                        value.replace('.', "/")
                    ),
                ))
            }
        };
        let pointer =
            |p: &Spanned<String>, what: &str| pointer_at(p.get_ref(), what, p.span().start);
        let paginator = |p: &Spanned<PaginatorDef>| -> Result<(), DefinitionError> {
            let start = p.span().start;
            let pointer = |value: &str, what: &str| pointer_at(value, what, start);
            match p.get_ref() {
                PaginatorDef::PageNumber { total, limit, .. }
                | PaginatorDef::Offset { total, limit, .. } => {
                    if *limit == 0 {
                        return Err(at(start, "limit must be more than 0".into()));
                    }
                    total.iter().try_for_each(|t| pointer(t, "total"))
                }
                PaginatorDef::Cursor { cursor, .. } => pointer(cursor, "cursor"),
                PaginatorDef::NextUrl { next } => pointer(next, "next"),
                PaginatorDef::None | PaginatorDef::LinkHeader => Ok(()),
            }
        };
        // A text's placeholders; `start` is where the text's first character is (the
        // opening quote's next), `within` false when only its table's start is known.
        let check_in = |value: &str,
                        start: usize,
                        within: bool,
                        scope: &Scope<'_>|
         -> Result<(), DefinitionError> {
            let offset = |i: usize| if within { start + i } else { start };
            let found = placeholders(value).map_err(|i| {
                at(
                    offset(i),
                    "a { without its }: write {config.NAME}, {parent.FIELD}, {bookmark}, {start} or {end}".into(),
                )
            })?;
            for (i, name) in found {
                let wrong = |m: String| Err(at(offset(i), m));
                if let Some(setting) = name.strip_prefix("config.") {
                    if !scope.settings.contains_key(setting) {
                        let known = scope
                            .settings
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ");
                        return wrong(format!(
                            "{{{name}}} has no value: declare {setting:?} under [settings]{}",
                            if known.is_empty() {
                                String::new()
                            } else {
                                format!(" (declared: {known})")
                            }
                        ));
                    }
                } else if let Some(field) = name.strip_prefix("parent.") {
                    if scope.parent.is_none() || field.is_empty() {
                        return wrong(format!(
                            "{{{name}}} has no value: only a stream with a parent = \"…\" reads its parent's fields"
                        ));
                    }
                } else if name == "bookmark" {
                    if !scope.bookmark {
                        return wrong(
                            "{bookmark} has no value: give the stream a replication_key".into(),
                        );
                    }
                } else if name == "start" || name == "end" {
                    if !scope.window {
                        return wrong(format!(
                            "{{{name}}} has no value: give the stream a window = {{ start = \"…\", size = \"30d\" }}"
                        ));
                    }
                } else {
                    return wrong(format!(
                        "{{{name}}} is not a placeholder: write {{config.NAME}}, {{parent.FIELD}}, {{bookmark}}, {{start}} or {{end}}"
                    ));
                }
            }
            Ok(())
        };
        let check_text = |s: &Spanned<String>, scope: &Scope<'_>| {
            check_in(s.get_ref(), s.span().start + 1, true, scope)
        };

        let client_scope = Scope {
            settings: &definition.settings,
            parent: None,
            bookmark: false,
            window: false,
        };
        check_text(&definition.client.base_url, &client_scope)?;
        // A base URL that is a setting (a self-hosted server's) is checked when given.
        let base_url = definition.client.base_url.get_ref();
        if !base_url.starts_with('{') && url::Url::parse(&base_url.replace(['{', '}'], "")).is_err()
        {
            return Err(spanned(
                &definition.client.base_url,
                "base_url is not a URL: write https://api.example.com/v1".into(),
            ));
        }
        for value in definition
            .client
            .headers
            .values()
            .chain(definition.client.params.values())
        {
            check_text(value, &client_scope)?;
        }
        if let Some(auth) = &definition.client.auth {
            let start = auth.span().start;
            let values: Vec<&str> = match auth.get_ref() {
                AuthDef::Bearer { token } => vec![token],
                AuthDef::Header { value, .. } | AuthDef::Query { value, .. } => vec![value],
                AuthDef::Basic { username, password } => vec![username, password],
                AuthDef::OAuth2 {
                    token_url,
                    client_id,
                    client_secret,
                    refresh_token,
                    ..
                } => vec![token_url, client_id, client_secret, refresh_token],
            };
            for value in values {
                check_in(value, start, false, &client_scope)?;
            }
        }
        if let Some(p) = &definition.client.paginator {
            paginator(p)?;
        }
        if let Some(error) = &definition.client.error {
            let start = error.span().start;
            let e = error.get_ref();
            pointer_at(&e.pointer, "pointer", start)?;
            if let Some(m) = &e.message {
                pointer_at(m, "message", start)?;
            }
        }
        if definition.streams.is_empty() {
            return Err(at(
                0,
                "no streams: add [[streams]] with a name and a path".into(),
            ));
        }
        let names: Vec<&str> = definition
            .streams
            .iter()
            .map(|s| s.name.get_ref().as_str())
            .collect();
        for (i, stream) in definition.streams.iter().enumerate() {
            let name = stream.name.get_ref();
            if names[..i].contains(&name.as_str()) {
                return Err(spanned(
                    &stream.name,
                    format!("a second stream named {name:?}: give each stream its own name"),
                ));
            }
            if let Some(parent) = &stream.parent {
                let p = parent.get_ref();
                match names.iter().position(|n| n == p) {
                    Some(j) if j < i => {}
                    Some(_) => {
                        return Err(spanned(parent, format!(
                            "the parent {p:?} comes after this stream (or is it): list a parent before its children"
                        )))
                    }
                    None => {
                        return Err(spanned(parent, format!(
                            "no stream named {p:?} to be the parent (streams: {})",
                            names.join(", ")
                        )))
                    }
                }
            }
            let scope = Scope {
                settings: &definition.settings,
                parent: stream.parent.as_ref().map(|p| p.get_ref().as_str()),
                bookmark: stream.replication_key.is_some(),
                window: stream.window.is_some(),
            };
            if let Some(window) = &stream.window {
                let start = window.span().start;
                let w = window.get_ref();
                let span = |text: &str, what: &str| {
                    parse_span(text).ok_or_else(|| {
                        at(
                            start,
                            format!(
                                "{what} {text:?} is not a span: write 30d, 12h, 15m, 45s or 1w"
                            ),
                        )
                    })
                };
                let size = span(&w.size, "size")?;
                if size < chrono::Duration::seconds(1) {
                    return Err(at(start, "size must be at least 1s".into()));
                }
                if let Some(lookback) = &w.lookback {
                    span(lookback, "lookback")?;
                }
                if w.format == TimeFormat::Date && size.num_seconds() % 86_400 != 0 {
                    return Err(at(
                        start,
                        format!("size {:?} is not whole days, which format = \"date\" needs: write 1d, 7d, 30d", w.size),
                    ));
                }
                check_in(&w.start, start, false, &scope)?;
                if !w.start.contains('{') && parse_start(&w.start).is_none() {
                    return Err(at(
                        start,
                        format!(
                            "start {:?} is not a time: write 2026-01-01, 2026-01-01T00:00:00Z or {{config.NAME}}",
                            w.start
                        ),
                    ));
                }
                let uses = |p: &str| {
                    std::iter::once(stream.path.get_ref())
                        .chain(stream.params.values().map(|v| v.get_ref()))
                        .any(|t| t.contains(p))
                };
                if !uses("{start}") {
                    return Err(at(
                        start,
                        "a window no request carries: put {start} (and {end}) in the path or params".into(),
                    ));
                }
            }
            if let Some(keyed) = &stream.keyed_by {
                if keyed.get_ref().is_empty() {
                    return Err(spanned(
                        keyed,
                        "keyed_by is empty: write the field the keys become, e.g. \"date\"".into(),
                    ));
                }
            }
            if let Some(schema) = &stream.schema {
                if let SchemaDef::Inline(table) = schema.get_ref() {
                    if table.get("type").and_then(|t| t.as_str()) != Some("object") {
                        return Err(at(
                            schema.span().start,
                            "a stream's schema describes its records: write type = \"object\" and its properties".into(),
                        ));
                    }
                }
            }
            check_text(&stream.path, &scope)?;
            for value in stream.params.values() {
                check_text(value, &scope)?;
            }
            if let Some(records) = &stream.records {
                pointer(records, "records")?;
            }
            if let Some(p) = &stream.paginator {
                paginator(p)?;
            }
        }
        Ok(definition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"about = "Example: organizations and their projects."

[settings]
token = "an API token"

[client]
base_url = "https://api.example.com/v2"
auth = { type = "bearer", token = "{config.token}" }
paginator = { type = "offset", limit = 100, total = "/meta/total" }

[[streams]]
name = "organizations"
path = "/organizations"
records = "/data"
key = ["id"]

[[streams]]
name = "projects"
parent = "organizations"
path = "/organizations/{parent.id}/projects"
params = { since = "{bookmark}" }
records = "/data"
key = ["id"]
replication_key = "updated_at"
"#;

    fn error(text: &str) -> String {
        Definition::parse(Path::new("defs/example.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_good_definition_reads() {
        let d = Definition::parse(Path::new("x.toml"), GOOD).unwrap();
        assert_eq!(d.streams.len(), 2);
        assert_eq!(
            d.streams[1].parent.as_ref().unwrap().get_ref(),
            "organizations"
        );
        assert_eq!(
            placeholders("/a/{parent.id}/b/{bookmark}").unwrap(),
            vec![(3, "parent.id"), (17, "bookmark")]
        );
        assert_eq!(placeholders("/a/{oops").unwrap_err(), 3);
    }

    #[test]
    fn every_mistake_names_its_line_and_what_to_write() {
        let cases = [
            (
                GOOD.replace("type = \"offset\"", "type = \"pages\""),
                "defs/example.toml:9:22: unknown variant `pages`, expected one of `none`, `page_number`, `link_header`, `offset`, `cursor`, `next_url`",
            ),
            (
                GOOD.replacen("records = \"/data\"", "records = \"data.items\"", 1),
                "defs/example.toml:14:11: records \"data.items\" is not a JSON pointer: write \"/data/items\"",
            ),
            (
                GOOD.replace("{config.token}", "{config.api_key}"),
                "defs/example.toml:8:8: {config.api_key} has no value: declare \"api_key\" under [settings] (declared: token)",
            ),
            (
                GOOD.replace("parent = \"organizations\"\n", ""),
                "defs/example.toml:19:24: {parent.id} has no value: only a stream with a parent = \"…\" reads its parent's fields",
            ),
            (
                GOOD.replace("parent = \"organizations\"", "parent = \"orgs\""),
                "defs/example.toml:19:10: no stream named \"orgs\" to be the parent (streams: organizations, projects)",
            ),
            (
                GOOD.replace("replication_key = \"updated_at\"\n", ""),
                "defs/example.toml:21:21: {bookmark} has no value: give the stream a replication_key",
            ),
            (
                GOOD.replace("{bookmark}", "{start}"),
                "defs/example.toml:21:21: {start} has no value: give the stream a window = { start = \"…\", size = \"30d\" }",
            ),
            (
                GOOD.replace("{bookmark}", "{since}"),
                "defs/example.toml:21:21: {since} is not a placeholder: write {config.NAME}, {parent.FIELD}, {bookmark}, {start} or {end}",
            ),
            (
                GOOD.replace("name = \"projects\"", "name = \"organizations\""),
                "defs/example.toml:18:8: a second stream named \"organizations\": give each stream its own name",
            ),
            (
                GOOD.replace("total = \"/meta/total\"", "total = \"meta\""),
                "defs/example.toml:9:13: total \"meta\" is not a JSON pointer: write \"/meta\"",
            ),
            (
                GOOD.replace("key = [\"id\"]\n\n", "key = [\"id\"]\nurl = \"/x\"\n\n"),
                "defs/example.toml:16:1: unknown field `url`, expected one of `name`, `path`, `params`, `records`, `keyed_by`, `key`, `replication_key`, `parent`, `paginator`, `rename`, `drop`, `window`, `schema`",
            ),
        ];
        let got: Vec<String> = cases.iter().map(|(text, _)| error(text)).collect();
        let expected: Vec<&str> = cases.iter().map(|(_, e)| *e).collect();
        assert_eq!(got, expected);
    }

    const WINDOWED: &str = r#"about = "Example: responses in time windows."

[settings]
start_date = "the first day"

[client]
base_url = "https://api.example.com"
auth = { type = "oauth2", token_url = "/oauth/token", client_id = "id", client_secret = "s", refresh_token = "r" }
error = { pointer = "/result", value = "error", message = "/message" }

[[streams]]
name = "responses"
path = "/responses"
params = { since = "{start}", until = "{end}" }
key = ["id"]
window = { start = "{config.start_date}", size = "30d", lookback = "1h", format = "unix" }
schema = { type = "object", properties = { id = { type = "integer" } } }

[[streams]]
name = "days"
path = "/days"
params = { date = "{start},{end}" }
keyed_by = "date"
window = { start = "2026-01-01", size = "7d", format = "date", inclusive_end = true }
"#;

    #[test]
    fn windows_keyed_records_oauth2_and_schemas_read_and_are_checked() {
        let d = Definition::parse(Path::new("x.toml"), WINDOWED).unwrap();
        let w = d.streams[0].window.as_ref().unwrap().get_ref();
        assert_eq!((w.format, w.inclusive_end), (TimeFormat::Unix, false));
        assert_eq!(parse_span(&w.size), Some(chrono::Duration::days(30)));
        assert!(matches!(
            d.client.auth.as_ref().unwrap().get_ref(),
            AuthDef::OAuth2 { scheme, .. } if scheme == "Bearer"
        ));
        assert_eq!(
            d.schema(&d.streams[0], Path::new("x.toml"), WINDOWED)
                .unwrap(),
            Some(serde_json::json!({"type": "object", "properties": {"id": {"type": "integer"}}}))
        );
        assert_eq!(d.streams[1].keyed_by.as_ref().unwrap().get_ref(), "date");
        for (span, seconds) in [("45s", 45), ("15m", 900), ("12h", 43_200), ("1w", 604_800)] {
            assert_eq!(parse_span(span).map(|d| d.num_seconds()), Some(seconds));
        }
        for bad in ["", "30", "d", "3x", "-1d", "1.5h"] {
            assert_eq!(parse_span(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_start("2026-03-05").map(|t| t.to_rfc3339()),
            Some("2026-03-05T00:00:00+00:00".into())
        );

        let cases = [
            (
                WINDOWED.replace("size = \"30d\"", "size = \"a month\""),
                "defs/example.toml:16:10: size \"a month\" is not a span: write 30d, 12h, 15m, 45s or 1w",
            ),
            (
                WINDOWED.replace("lookback = \"1h\"", "lookback = \"1 hour\""),
                "defs/example.toml:16:10: lookback \"1 hour\" is not a span: write 30d, 12h, 15m, 45s or 1w",
            ),
            (
                WINDOWED.replace("size = \"7d\"", "size = \"36h\""),
                "defs/example.toml:24:10: size \"36h\" is not whole days, which format = \"date\" needs: write 1d, 7d, 30d",
            ),
            (
                WINDOWED.replace("start = \"2026-01-01\"", "start = \"January\""),
                "defs/example.toml:24:10: start \"January\" is not a time: write 2026-01-01, 2026-01-01T00:00:00Z or {config.NAME}",
            ),
            (
                WINDOWED.replace("{config.start_date}", "{config.since}"),
                "defs/example.toml:16:10: {config.since} has no value: declare \"since\" under [settings] (declared: start_date)",
            ),
            (
                WINDOWED.replace("params = { date = \"{start},{end}\" }\n", ""),
                "defs/example.toml:23:10: a window no request carries: put {start} (and {end}) in the path or params",
            ),
            (
                WINDOWED.replace("format = \"unix\"", "format = \"epoch\""),
                "defs/example.toml:16:83: unknown variant `epoch`, expected one of `rfc3339`, `unix`, `unix_ms`, `date`",
            ),
            (
                WINDOWED.replace("{ type = \"object\", properties", "{ type = \"array\", properties"),
                "defs/example.toml:17:10: a stream's schema describes its records: write type = \"object\" and its properties",
            ),
            (
                WINDOWED.replace("keyed_by = \"date\"", "keyed_by = \"\""),
                "defs/example.toml:23:12: keyed_by is empty: write the field the keys become, e.g. \"date\"",
            ),
            (
                WINDOWED.replace("message = \"/message\"", "message = \"message\""),
                "defs/example.toml:9:9: message \"message\" is not a JSON pointer: write \"/message\"",
            ),
            (
                WINDOWED.replace("refresh_token = \"r\"", "refresh_token = \"{config.refresh}\""),
                "defs/example.toml:8:8: {config.refresh} has no value: declare \"refresh\" under [settings] (declared: start_date)",
            ),
        ];
        let got: Vec<String> = cases.iter().map(|(text, _)| error(text)).collect();
        let expected: Vec<&str> = cases.iter().map(|(_, e)| *e).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_schema_file_is_read_beside_the_definition_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("api.toml");
        let text = WINDOWED.replace(
            "schema = { type = \"object\", properties = { id = { type = \"integer\" } } }",
            "schema = \"schemas/responses.json\"",
        );
        std::fs::write(&file, &text).unwrap();
        let err = Definition::load(&file).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}:17:10: the schema {} cannot be read: ",
                file.display(),
                dir.path().join("schemas/responses.json").display()
            )),
            "{err}"
        );
        std::fs::create_dir(dir.path().join("schemas")).unwrap();
        std::fs::write(
            dir.path().join("schemas/responses.json"),
            "{\"type\": \"object\",\n \"properties\": {",
        )
        .unwrap();
        assert_eq!(
            Definition::load(&file).unwrap_err().to_string(),
            format!(
                "{}:17:10: the schema {} is not JSON: line 2, column 16: EOF while parsing an object at line 2 column 16",
                file.display(),
                dir.path().join("schemas/responses.json").display()
            )
        );
        std::fs::write(
            dir.path().join("schemas/responses.json"),
            r#"{"type": "object", "properties": {"id": {"type": "integer"}}}"#,
        )
        .unwrap();
        let d = Definition::load(&file).unwrap();
        assert_eq!(
            d.schema(&d.streams[0], &file, &text).unwrap().unwrap()["properties"]["id"]["type"],
            "integer"
        );
    }
}
