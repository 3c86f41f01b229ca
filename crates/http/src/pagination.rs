//! Pagination: reading the headers, and one [`Pager`] for every style.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::{HttpClient, HttpError};

/// How an API says where the next page is. Where the page's items are is the pager's
/// [`Pager::with_records`] (default: the body is their array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStyle {
    /// `page=N` with the next number in `X-Next-Page`, empty on the last page (GitLab's
    /// offset pagination; its totals are not trusted, GitLab drops them above 10,000 rows).
    NextPageHeader,
    /// The `rel="next"` URL of the `Link` header, followed verbatim (GitLab keyset).
    LinkHeader,
    /// `page_param=1,2,…` with `limit_param=limit`; the last page is a short one, or the
    /// one that reaches the total at the JSON pointer `total` when given (Checkly v1).
    PageNumbers {
        /// The page-number parameter.
        page_param: String,
        /// The page-size parameter.
        limit_param: String,
        /// The page size.
        limit: u64,
        /// Where the body says how many items there are in all, if it does.
        total: Option<String>,
    },
    /// `offset_param=0,limit,2·limit,…`; the last page is a short one, or the one that
    /// reaches the total at the JSON pointer `total` when given.
    Offset {
        /// The offset parameter.
        offset_param: String,
        /// The page-size parameter.
        limit_param: String,
        /// The page size.
        limit: u64,
        /// Where the body says how many items there are in all, if it does.
        total: Option<String>,
    },
    /// A cursor read from the body (a JSON pointer) and sent back as a parameter; a null,
    /// empty or missing cursor ends it (Checkly v2 `nextId`).
    BodyCursor {
        /// Where the body holds the next cursor.
        cursor: String,
        /// The parameter the cursor is sent back as.
        cursor_param: String,
    },
    /// The next page's URL read from the body (a JSON pointer), followed verbatim (or
    /// joined to the page's URL when relative); a null or missing one ends it.
    BodyNextUrl {
        /// Where the body holds the next URL.
        next: String,
    },
}

/// Where the next page of a listing starts: what a bookmark keeps when a run stops early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PagePosition {
    /// A page number.
    Page(u64),
    /// An offset.
    Offset(u64),
    /// A URL to follow as it is.
    Url(String),
    /// A cursor to send back.
    Cursor(String),
}

/// A cap on the pages fetched in one run, shared by every pager of the run. Reaching it
/// stops the pagers where they are, so their positions can be saved and resumed.
#[derive(Debug, Clone)]
pub struct PageBudget {
    left: Arc<AtomicU64>,
}

impl PageBudget {
    /// At most `pages` pages.
    pub fn new(pages: u64) -> PageBudget {
        PageBudget {
            left: Arc::new(AtomicU64::new(pages)),
        }
    }

    /// As many pages as the listing has.
    pub fn unlimited() -> PageBudget {
        PageBudget::new(u64::MAX)
    }

    /// Takes one page from the budget; false when none is left.
    pub fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Whether no page is left in the budget.
    pub fn exhausted(&self) -> bool {
        self.left.load(Ordering::SeqCst) == 0
    }
}

/// One page of items.
#[derive(Debug)]
pub struct Page {
    /// The page's items.
    pub items: Vec<Value>,
    /// The page's response headers.
    pub headers: HeaderMap,
}

/// Walks a listing page by page, in any [`PageStyle`]; [`Pager::position`] says where
/// it would continue.
#[derive(Debug)]
pub struct Pager {
    style: PageStyle,
    url: Url,
    next: Option<PagePosition>,
    budget: PageBudget,
    records: Option<String>,
    keyed_by: Option<String>,
    error: Option<BodyError>,
}

/// An answer that is an error whatever its status (Matomo's `200 {"result": "error"}`).
#[derive(Debug, Clone, PartialEq)]
pub struct BodyError {
    /// Where the body says it is an error, a JSON pointer.
    pub pointer: String,
    /// The value there that means an error.
    pub value: String,
    /// Where the body gives the error's message, a JSON pointer.
    pub message: Option<String>,
}

impl Pager {
    /// A pager at the first page of `url` (which carries the listing's own parameters).
    pub fn new(style: PageStyle, url: Url, budget: PageBudget) -> Pager {
        Pager::resume(style, url, None, budget)
    }

    /// A pager continuing at a saved position (`None`: the first page).
    pub fn resume(
        style: PageStyle,
        url: Url,
        position: Option<PagePosition>,
        budget: PageBudget,
    ) -> Pager {
        let first = || match &style {
            PageStyle::NextPageHeader | PageStyle::PageNumbers { .. } => PagePosition::Page(1),
            PageStyle::Offset { .. } => PagePosition::Offset(0),
            PageStyle::LinkHeader | PageStyle::BodyNextUrl { .. } => {
                PagePosition::Url(url.to_string())
            }
            PageStyle::BodyCursor { .. } => PagePosition::Cursor(String::new()),
        };
        let next = Some(position.unwrap_or_else(first));
        Pager {
            style,
            url,
            next,
            budget,
            records: None,
            keyed_by: None,
            error: None,
        }
    }

    /// Reads each page's items at a JSON pointer of the body (`/data`, `/lists`; `""`
    /// or none: the body is their array).
    pub fn with_records(mut self, pointer: Option<String>) -> Pager {
        self.records = pointer.filter(|p| !p.is_empty());
        self
    }

    /// Reads the records as an object keyed by `field`'s values (`{"2026-03-05": {…},
    /// "2026-03-06": [{…}, …]}`): each key goes into the records of its value, an object
    /// or an array of them; a scalar value becomes `{field: key, "value": value}`.
    pub fn with_keyed_by(mut self, field: Option<String>) -> Pager {
        self.keyed_by = field;
        self
    }

    /// Fails on answers that say they are errors, whatever their status.
    pub fn with_error(mut self, error: Option<BodyError>) -> Pager {
        self.error = error;
        self
    }

    /// Where the next page starts; `None` once the listing is exhausted.
    pub fn position(&self) -> Option<&PagePosition> {
        self.next.as_ref()
    }

    /// True when the page budget, not the end of the listing, stopped this pager.
    pub fn capped(&self) -> bool {
        self.next.is_some() && self.budget.exhausted()
    }

    fn request_url(&self, position: &PagePosition) -> Result<Url, String> {
        let mut url = self.url.clone();
        let set = |url: &mut Url, pairs: &[(&str, String)]| {
            let keep: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| !pairs.iter().any(|(p, _)| p == k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let mut query = url.query_pairs_mut();
            query.clear().extend_pairs(keep);
            for (k, v) in pairs {
                query.append_pair(k, v);
            }
        };
        match (&self.style, position) {
            (PageStyle::NextPageHeader, PagePosition::Page(n)) => {
                set(&mut url, &[("page", n.to_string())])
            }
            (
                PageStyle::PageNumbers {
                    page_param,
                    limit_param,
                    limit,
                    ..
                },
                PagePosition::Page(n),
            ) => set(
                &mut url,
                &[
                    (limit_param, limit.to_string()),
                    (page_param, n.to_string()),
                ],
            ),
            (
                PageStyle::Offset {
                    offset_param,
                    limit_param,
                    limit,
                    ..
                },
                PagePosition::Offset(n),
            ) => set(
                &mut url,
                &[
                    (limit_param, limit.to_string()),
                    (offset_param, n.to_string()),
                ],
            ),
            (PageStyle::LinkHeader | PageStyle::BodyNextUrl { .. }, PagePosition::Url(next)) => {
                url = self
                    .url
                    .join(next)
                    .map_err(|e| format!("bad next-page URL: {e}"))?
            }
            (PageStyle::BodyCursor { cursor_param, .. }, PagePosition::Cursor(c)) => {
                if !c.is_empty() {
                    set(&mut url, &[(cursor_param, c.clone())])
                }
            }
            (style, position) => {
                return Err(format!(
                    "a saved position {position:?} does not fit pagination {style:?}"
                ))
            }
        }
        Ok(url)
    }

    /// The next page, or `None` when the listing is exhausted or the budget spent.
    pub async fn next_page(&mut self, client: &HttpClient) -> Result<Option<Page>, HttpError> {
        let Some(position) = self.next.clone() else {
            return Ok(None);
        };
        let url = self
            .request_url(&position)
            .map_err(|message| HttpError::Shape {
                method: "GET".into(),
                url: client.redact(self.url.as_str()),
                message,
            })?;
        if !self.budget.take() {
            return Ok(None);
        }
        let response = client.get_json(|c| c.get(url.clone())).await?;
        let shape = |message: String| HttpError::Shape {
            method: "GET".into(),
            url: client.redact(&crate::redact_query(&url)),
            message,
        };
        let mut body = response.body;
        // What the body says of the next page, read before its items are taken out.
        let at = |body: &Value, pointer: &str| match body.pointer(pointer) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let total = |pointer: &Option<String>| -> Result<Option<u64>, HttpError> {
            match pointer {
                None => Ok(None),
                Some(p) => match body.pointer(p) {
                    Some(Value::Number(n)) => n
                        .as_u64()
                        .map(Some)
                        .ok_or_else(|| shape(format!("the total at {p:?} is not a count: {n}"))),
                    other => Err(shape(format!(
                        "expected the total, a number, at {p:?}, found {}",
                        other.map_or("nothing", kind)
                    ))),
                },
            }
        };
        let cursor = match &self.style {
            PageStyle::BodyCursor { cursor, .. } => at(&body, cursor),
            PageStyle::BodyNextUrl { next } => at(&body, next),
            _ => None,
        };
        let total = match &self.style {
            PageStyle::PageNumbers { total: t, .. } | PageStyle::Offset { total: t, .. } => {
                total(t)?
            }
            _ => None,
        };
        if let Some(error) = &self.error {
            let said = match body.pointer(&error.pointer) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(other @ (Value::Number(_) | Value::Bool(_))) => Some(other.to_string()),
                _ => None,
            };
            if said.as_deref() == Some(error.value.as_str()) {
                let message = error
                    .message
                    .as_ref()
                    .and_then(|m| body.pointer(m))
                    .map(|m| match m {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| body.to_string());
                return Err(shape(format!(
                    "the answer is an error: {}",
                    client.redact(&message)
                )));
            }
        }
        let items = match &self.records {
            None => body.take(),
            Some(p) => match body.pointer_mut(p) {
                Some(found) => found.take(),
                None => {
                    return Err(shape(format!(
                        "expected an array of items at {p:?}, found nothing"
                    )))
                }
            },
        };
        let items = match (items, &self.keyed_by) {
            (Value::Object(keyed), Some(field)) => keyed_records(keyed, field),
            // An empty range: PHP writes an empty object as [].
            (Value::Array(list), Some(_)) if list.is_empty() => list,
            (other, Some(field)) => {
                return Err(shape(format!(
                    "expected an object keyed by {field}, got {}",
                    kind(&other)
                )))
            }
            (Value::Array(list), None) => list,
            (other, None) => {
                return Err(shape(match &self.records {
                    None => format!("expected a JSON array of items, got {}", kind(&other)),
                    Some(p) => format!("expected an array of items at {p:?}, got {}", kind(&other)),
                }))
            }
        };
        let more = |seen: u64| total.is_none_or(|t| seen < t);
        self.next = match (&self.style, position) {
            (PageStyle::NextPageHeader, _) => next_page(&response.headers).map(PagePosition::Page),
            (PageStyle::LinkHeader, _) => next_link(&response.headers).map(PagePosition::Url),
            (PageStyle::PageNumbers { limit, .. }, PagePosition::Page(n)) => {
                (items.len() as u64 >= *limit && more(n * limit))
                    .then_some(PagePosition::Page(n + 1))
            }
            (PageStyle::Offset { limit, .. }, PagePosition::Offset(n)) => {
                let seen = n + items.len() as u64;
                (items.len() as u64 >= *limit && more(seen)).then_some(PagePosition::Offset(seen))
            }
            (PageStyle::BodyCursor { .. }, _) => cursor.map(PagePosition::Cursor),
            (PageStyle::BodyNextUrl { .. }, _) => cursor.map(PagePosition::Url),
            _ => None,
        };
        // An empty page ends any listing, whatever the headers claim.
        if items.is_empty() {
            self.next = None;
        }
        Ok(Some(Page {
            items,
            headers: response.headers,
        }))
    }
}

/// The records of an object keyed by `field`'s values.
fn keyed_records(keyed: serde_json::Map<String, Value>, field: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (key, value) in keyed {
        let with_key = |mut record: serde_json::Map<String, Value>| {
            record.insert(field.to_string(), Value::String(key.clone()));
            Value::Object(record)
        };
        match value {
            Value::Object(record) => out.push(with_key(record)),
            Value::Array(list) => {
                for item in list {
                    match item {
                        Value::Object(record) => out.push(with_key(record)),
                        other => {
                            let mut record = serde_json::Map::new();
                            record.insert("value".into(), other);
                            out.push(with_key(record));
                        }
                    }
                }
            }
            other => {
                let mut record = serde_json::Map::new();
                record.insert("value".into(), other);
                out.push(with_key(record));
            }
        }
    }
    out
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `rel="next"` URL of a `Link` header (RFC 8288), as GitHub, GitLab and others send.
///
/// ```
/// use reqwest::header::{HeaderMap, HeaderValue};
/// let mut h = HeaderMap::new();
/// h.insert("link", HeaderValue::from_static(r#"<https://x/api?page=2>; rel="next", <https://x/api?page=9>; rel="last""#));
/// assert_eq!(observes_http::next_link(&h).as_deref(), Some("https://x/api?page=2"));
/// ```
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=").is_some_and(|rel| {
                    rel.trim_matches('"')
                        .split_whitespace()
                        .any(|r| r == "next")
                })
            });
            if is_next {
                if let Some(url) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
                    return Some(url.to_string());
                }
            }
        }
    }
    None
}

/// The next page number from GitLab-style `X-Next-Page` (empty on the last page).
pub fn next_page(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("x-next-page")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn link_headers() {
        assert_eq!(next_link(&headers(&[])), None);
        assert_eq!(
            next_link(&headers(&[("link", "<https://a/b?page=3>; rel=\"prev\"")])),
            None
        );
        assert_eq!(
            next_link(&headers(&[("link", "<https://a/p?page=1>; rel=\"first\", <https://a/p?page=2&per_page=100>; rel=\"next\"")])),
            Some("https://a/p?page=2&per_page=100".into())
        );
        assert_eq!(
            next_link(&headers(&[
                ("link", "<https://a/1>; rel=first"),
                ("link", "<https://a/2>; rel=\"next last\"")
            ])),
            Some("https://a/2".into()),
            "several headers, unquoted and multi-valued rel"
        );
        assert_eq!(
            next_link(&headers(&[("link", "garbage; rel=\"next\"")])),
            None,
            "malformed target"
        );
    }

    #[test]
    fn page_numbers() {
        assert_eq!(next_page(&headers(&[("x-next-page", "3")])), Some(3));
        assert_eq!(
            next_page(&headers(&[("x-next-page", "")])),
            None,
            "the last page"
        );
        assert_eq!(next_page(&headers(&[("x-next-page", "three")])), None);
        assert_eq!(next_page(&headers(&[])), None);
    }
}
