//! The HTTP toolkit every source shares.
//!
//! One [`HttpClient`] (reqwest, rustls) with timeouts and retries: 429, 5xx, connection
//! errors and timeouts are retried with exponential backoff and full jitter, honouring
//! `Retry-After` (seconds or an HTTP date; `0` waits the minimum backoff, it never spins);
//! any other 4xx fails at once with the response body in the error, secrets redacted. A
//! per-API [`RateLimiter`] spaces requests. [`next_link`] and [`next_page`] read the
//! pagination headers of the `Link` and page-number styles.
//!
//! It is not a source: sources build their requests and streams on top of it.

#![warn(missing_docs, unreachable_pub)]

mod auth;
mod oauth;
mod pagination;
mod rate;
mod retry;

use std::time::Duration;

pub use auth::Auth;
pub use oauth::{GrantParams, OAuth2Refresh, OAuth2Tokens};
pub use pagination::{
    next_link, next_page, BodyError, Page, PageBudget, PagePosition, PageStyle, Pager,
};
pub use rate::RateLimiter;
/// The client library requests are built with (`|c| c.get(url)`).
pub use reqwest;
pub use retry::{parse_retry_after, RetryPolicy};

/// What went wrong with a request, after retries where they apply.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server answered with a status that is not retried, or retries ran out on one.
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        /// The method.
        method: String,
        /// The URL, secrets redacted.
        url: String,
        /// The status.
        status: u16,
        /// The start of the response body, secrets redacted.
        body: String,
    },
    /// Retries ran out on network errors or retried statuses.
    #[error("{method} {url}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// The method.
        method: String,
        /// The URL, secrets redacted.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: String,
    },
    /// The answer is not of the shape the caller reads (not JSON, no pagination field).
    #[error("{method} {url}: unexpected response: {message}")]
    Shape {
        /// The method.
        method: String,
        /// The URL, secrets redacted.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The OAuth2 token could not be refreshed.
    #[error("refreshing the OAuth2 access token")]
    Refresh(#[source] Box<HttpError>),
    /// The request failed before an answer (connection, TLS, timeout) and is not retried.
    #[error("{method} {url}: {message}")]
    Request {
        /// The method.
        method: String,
        /// The URL, secrets redacted.
        url: String,
        /// The transport's error.
        message: String,
    },
    /// The request could not be built from the settings (before anything was sent).
    #[error("building the request: {0}")]
    Build(String),
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// For one whole request, body included.
    pub timeout: Duration,
    /// When and how often requests are retried.
    pub retry: RetryPolicy,
    /// Values that must never appear in errors or logs (tokens, passwords).
    pub secrets: Vec<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            secrets: Vec::new(),
            user_agent: format!("observes/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The one HTTP client of the sources.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    config: HttpConfig,
    limiter: Option<RateLimiter>,
    auth: Auth,
    /// Sent with every request (an account header, say).
    headers: Vec<(String, String)>,
}

/// The longest part of a body kept in an error.
const BODY_IN_ERRORS: usize = 2_000;

impl HttpClient {
    /// A client with these settings (one connection pool for all its requests).
    pub fn new(config: HttpConfig) -> Result<HttpClient, HttpError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(&config.user_agent)
            .build()
            .map_err(|e| HttpError::Build(describe(e)))?;
        Ok(HttpClient {
            client,
            config,
            limiter: None,
            auth: Auth::None,
            headers: Vec::new(),
        })
    }

    /// Authenticates every request with `auth`, whose secrets are then redacted too.
    pub fn with_auth(mut self, auth: Auth) -> HttpClient {
        self.config.secrets.extend(auth.secrets());
        self.auth = auth;
        self
    }

    /// Keeps `secret` out of errors and logs (a password sent in a body, say).
    pub fn with_secret(mut self, secret: &str) -> HttpClient {
        self.config.secrets.push(secret.to_string());
        self
    }

    /// Sends `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> HttpClient {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Spaces this client's requests by `limiter` (shared by its clones).
    pub fn with_rate_limit(mut self, limiter: RateLimiter) -> HttpClient {
        self.limiter = Some(limiter);
        self
    }

    /// The underlying client, to build requests with.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Replaces every secret in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        let live = match &self.auth {
            Auth::OAuth2(tokens) => tokens.live_secrets(),
            _ => Vec::new(),
        };
        let mut out = text.to_string();
        for secret in self.config.secrets.iter().chain(&live) {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    /// Sends a request and parses its body as JSON. A body that is not JSON (truncated by
    /// a proxy, say) is retried like a transient failure.
    pub async fn get_json(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<JsonResponse, HttpError> {
        self.send_decoded(build, |response| {
            serde_json::from_slice(&response.body)
                .map(|body| JsonResponse {
                    headers: response.headers,
                    body,
                })
                .map_err(|e| format!("the body is not valid JSON ({e})"))
        })
        .await
    }

    /// Obtains the OAuth2 access token now, if this client uses one (to read what the
    /// token answer says, such as Zoho's API domain, before the first request).
    pub async fn authenticate(&self) -> Result<(), HttpError> {
        match &self.auth {
            Auth::OAuth2(tokens) => self.access_token(tokens).await.map(|_| ()),
            _ => Ok(()),
        }
    }

    /// A bearer token from the OAuth2 refresh grant: the held one, or a new one.
    async fn access_token(&self, tokens: &OAuth2Tokens) -> Result<String, HttpError> {
        let mut current = tokens.current.lock().await;
        if let Some(token) = OAuth2Tokens::usable(&current) {
            return Ok(token);
        }
        let settings = &tokens.settings;
        let refresh_token = current.refresh_token.clone();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", settings.client_id.as_str()),
            ("client_secret", settings.client_secret.as_str()),
        ];
        let mut plain = self.clone();
        plain.auth = Auth::None;
        plain.config.secrets.extend(tokens.static_secrets());
        plain.config.secrets.push(refresh_token.clone());
        let answer: oauth::TokenAnswer = Box::pin(plain.send_decoded(
            |c| match settings.grant_params {
                oauth::GrantParams::Form => c.post(&settings.token_url).form(&form),
                oauth::GrantParams::Query => c.post(&settings.token_url).query(&form),
            },
            |response| {
                serde_json::from_slice(&response.body)
                    .map_err(|e| format!("the token answer is not valid: {e}"))
            },
        ))
        .await
        .map_err(|e| HttpError::Refresh(Box::new(e)))?;
        tokens.take_answer(&mut current, answer).map_err(|message| {
            HttpError::Refresh(Box::new(HttpError::Request {
                method: "POST".into(),
                url: settings.token_url.clone(),
                message,
            }))
        })
    }

    /// Sends the request `build` makes, again for each retry; returns a successful
    /// response with its body read (so a connection reset mid-body is retried too).
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Response, HttpError> {
        self.send_decoded(build, Ok).await
    }

    /// [`HttpClient::send`], where `decode` turns the response into what the caller
    /// wants; a decode failure is retried like a transient one.
    pub async fn send_decoded<T>(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        decode: impl Fn(Response) -> Result<T, String>,
    ) -> Result<T, HttpError> {
        self.send_with(build, None, decode).await
    }

    /// Sends the request `build` makes and writes a successful answer's body into `file`
    /// as it arrives (a download larger than memory), with the same retries: a body cut
    /// short is fetched again from the start. Returns the bytes written.
    pub async fn download_to(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        file: &mut std::fs::File,
    ) -> Result<u64, HttpError> {
        self.send_with(build, Some(file), |_| Ok(())).await?;
        Ok(file.metadata().map(|m| m.len()).unwrap_or(0))
    }

    /// The request loop: rate limit, auth, retries with backoff, one token renewal on a
    /// 401. A successful answer's body goes to `file` if given (then `decode` sees an
    /// empty body), else to memory; `decode` turns it into the result, and a body that
    /// cannot be read or decoded is retried.
    async fn send_with<T>(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        mut file: Option<&mut std::fs::File>,
        decode: impl Fn(Response) -> Result<T, String>,
    ) -> Result<T, HttpError> {
        let policy = &self.config.retry;
        let mut attempt = 0;
        let mut renewed_token = false;
        loop {
            attempt += 1;
            if let Some(limiter) = &self.limiter {
                limiter.acquire().await;
            }
            let mut builder = self.auth.apply(build(&self.client));
            for (name, value) in &self.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            if let Auth::OAuth2(tokens) = &self.auth {
                let token = self.access_token(tokens).await?;
                builder = builder.header(
                    reqwest::header::AUTHORIZATION,
                    format!("{} {token}", tokens.settings.scheme),
                );
            }
            let request = builder
                .build()
                .map_err(|e| HttpError::Build(self.redact(&describe(e))))?;
            let method = request.method().to_string();
            let url = self.redact(&redact_query(request.url()));
            // Each arm returns, or gives the retryable failure and any Retry-After.
            let (last, retry_after) = match self.client.execute(request).await {
                Err(e) => (describe(e), None),
                Ok(response) if response.status().is_success() => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let body = match file.as_deref_mut() {
                        Some(file) => write_body(response, file).await.map(|()| Vec::new()),
                        None => response
                            .bytes()
                            .await
                            .map(|b| b.to_vec())
                            .map_err(|e| format!("reading the body: {}", describe(e))),
                    };
                    match body.and_then(|body| {
                        decode(Response {
                            status,
                            headers,
                            body,
                        })
                    }) {
                        Ok(decoded) => return Ok(decoded),
                        Err(problem) => (problem, None),
                    }
                }
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Err(e) => (format!("reading the body: {}", describe(e)), None),
                        Ok(_)
                            if status.as_u16() == 401
                                && !renewed_token
                                && matches!(self.auth, Auth::OAuth2(_)) =>
                        {
                            // An access token can expire or be revoked before its time.
                            if let Auth::OAuth2(tokens) = &self.auth {
                                tokens.current.lock().await.access = None;
                            }
                            renewed_token = true;
                            attempt -= 1;
                            tracing::info!(%method, %url, "access token refused; renewing it");
                            continue;
                        }
                        Ok(body) if status.as_u16() == 429 || status.is_server_error() => {
                            let wait = headers
                                .get(reqwest::header::RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                            // The body says why (an API's rate or credit limit, say).
                            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
                            let text = text.trim();
                            let last = if text.is_empty() {
                                format!("HTTP {}", status.as_u16())
                            } else {
                                format!("HTTP {}: {text}", status.as_u16())
                            };
                            (last, wait)
                        }
                        Ok(body) => {
                            let text =
                                String::from_utf8_lossy(&body[..body.len().min(BODY_IN_ERRORS)])
                                    .into_owned();
                            return Err(HttpError::Status {
                                method,
                                url,
                                status: status.as_u16(),
                                body: self.redact(&text),
                            });
                        }
                    }
                }
            };
            if attempt >= policy.max_attempts {
                return Err(HttpError::GaveUp {
                    method,
                    url,
                    attempts: attempt,
                    last: self.redact(&last),
                });
            }
            let wait = policy.delay(attempt, retry_after);
            tracing::warn!(%method, %url, attempt, error = %self.redact(&last), wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// Writes a body into `file` as it arrives, from the file's start.
async fn write_body(
    mut response: reqwest::Response,
    file: &mut std::fs::File,
) -> Result<(), String> {
    use std::io::{Seek, Write};
    let io = |e: std::io::Error| format!("writing the download: {e}");
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the body: {}", describe(e)))?
    {
        file.write_all(&chunk).map_err(io)?;
    }
    file.flush().map_err(io)
}

/// A reqwest error and its causes as one line, without its URL: reqwest's own text names
/// the URL whole, query included, where a token may sit (`?private_token=…`). The caller
/// names the request with its redacted URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_builder() {
        "invalid request"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    let mut header_value = false;
    while let Some(s) = source {
        let text = s.to_string();
        header_value |= text.contains("header value");
        message.push_str(&format!(": {text}"));
        source = s.source();
    }
    if header_value {
        message.push_str(
            " (a header value may not contain a newline or other control character: check the \
             token and header settings)",
        );
    }
    message
}

/// A URL with the values of credential-like query parameters hidden (`private_token=`,
/// `api_key=`, signatures); paging parameters stay readable.
pub(crate) fn redact_query(url: &url::Url) -> String {
    const SECRET_WORDS: [&str; 7] = [
        "token",
        "key",
        "secret",
        "password",
        "signature",
        "credential",
        "auth",
    ];
    let mut shown = url.clone();
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = SECRET_WORDS.iter().any(|w| lower.contains(w));
                let v = if secret { "***".into() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

/// A successful response whose body is JSON.
#[derive(Debug, Clone)]
pub struct JsonResponse {
    /// The response's headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: serde_json::Value,
}

/// A successful response, body read.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}
