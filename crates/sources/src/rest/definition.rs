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
//! `replication_key`). Every error names the file, the line and what to write instead.

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
    /// Reads and checks the definition at `file`.
    pub fn load(file: &Path) -> Result<Definition, DefinitionError> {
        let text = std::fs::read_to_string(file).map_err(|e| DefinitionError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot be read: {e}"),
        })?;
        Definition::parse(file, &text)
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
                    "a { without its }: write {config.NAME}, {parent.FIELD} or {bookmark}".into(),
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
                } else {
                    return wrong(format!(
                        "{{{name}}} is not a placeholder: write {{config.NAME}}, {{parent.FIELD}} or {{bookmark}}"
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
        };
        check_text(&definition.client.base_url, &client_scope)?;
        if url::Url::parse(&definition.client.base_url.get_ref().replace(['{', '}'], "")).is_err() {
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
            };
            for value in values {
                check_in(value, start, false, &client_scope)?;
            }
        }
        if let Some(p) = &definition.client.paginator {
            paginator(p)?;
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
            };
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
                "defs/example.toml:21:21: {start} is not a placeholder: write {config.NAME}, {parent.FIELD} or {bookmark}",
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
                "defs/example.toml:16:1: unknown field `url`, expected one of `name`, `path`, `params`, `records`, `key`, `replication_key`, `parent`, `paginator`, `rename`, `drop`",
            ),
        ];
        let got: Vec<String> = cases.iter().map(|(text, _)| error(text)).collect();
        let expected: Vec<&str> = cases.iter().map(|(_, e)| *e).collect();
        assert_eq!(got, expected);
    }
}
