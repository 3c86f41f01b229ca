//! Reading pagination headers.

use reqwest::header::HeaderMap;

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
