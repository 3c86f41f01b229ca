//! GitLab's two pagination styles: offset pages with `x-*` headers and `Link`, and keyset
//! pages by `Link` alone.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::{param, Query};

/// `http://host/path?query` with `changes` applied to the query.
fn absolute(headers: &HeaderMap, path: &str, query: &Query, changes: &[(&str, String)]) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut url = url::Url::parse(&format!("http://{host}{path}")).unwrap_or_else(|_| {
        url::Url::parse("http://127.0.0.1/").unwrap_or_else(|e| unreachable!("{e}"))
    });
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in query
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
        {
            pairs.append_pair(k, v);
        }
        for (k, v) in changes {
            pairs.append_pair(k, v);
        }
    }
    url.to_string()
}

/// GitLab's offset pagination: a page of `list` with its headers.
pub(super) fn offset_page(
    list: Vec<Value>,
    query: &Query,
    headers: &HeaderMap,
    path: &str,
) -> Response {
    let per_page = param(query, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page = param(query, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = list.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = list
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    let mut response = Json(items).into_response();
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    };
    set(h, "x-page", page.to_string());
    set(h, "x-per-page", per_page.to_string());
    set(h, "x-next-page", next.clone());
    set(h, "x-prev-page", prev.clone());
    let link_to = |p: usize| {
        absolute(
            headers,
            path,
            query,
            &[("page", p.to_string()), ("per_page", per_page.to_string())],
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_to(page - 1)));
    }
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", link_to(page + 1)));
    }
    links.push(format!("<{}>; rel=\"first\"", link_to(1)));
    // Above 10,000 rows GitLab stops counting.
    if total <= 10_000 {
        set(h, "x-total", total.to_string());
        set(h, "x-total-pages", pages.to_string());
        links.push(format!("<{}>; rel=\"last\"", link_to(pages)));
    }
    set(h, "link", links.join(", "));
    response
}

/// GitLab's keyset pagination (jobs by id, newest first): only a `Link: rel="next"`,
/// carrying an opaque `cursor`.
pub(super) fn keyset_page(
    list: Vec<Value>,
    query: &Query,
    headers: &HeaderMap,
    path: &str,
) -> Response {
    let per_page = param(query, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let before = param(query, "cursor")
        .and_then(|c| c.strip_prefix("eyJpZCI6"))
        .and_then(|c| i64::from_str_radix(c, 16).ok());
    let items: Vec<Value> = list
        .into_iter()
        .filter(|j| before.is_none_or(|b| j["id"].as_i64().is_some_and(|id| id < b)))
        .take(per_page + 1)
        .collect();
    let more = items.len() > per_page;
    let items: Vec<Value> = items.into_iter().take(per_page).collect();
    let mut response = Json(&items).into_response();
    if more {
        if let Some(last) = items.last().and_then(|j| j["id"].as_i64()) {
            let next = absolute(
                headers,
                path,
                query,
                &[("cursor", format!("eyJpZCI6{last:x}"))],
            );
            if let Ok(v) = format!("<{next}>; rel=\"next\"").parse() {
                response.headers_mut().insert("link", v);
            }
        }
    }
    response
}
