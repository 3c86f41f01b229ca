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

mod auth;
mod pagination;
mod rate;
mod retry;

use std::time::Duration;

pub use auth::Auth;
pub use pagination::{next_link, next_page};
pub use rate::RateLimiter;
pub use retry::{parse_retry_after, RetryPolicy};

/// What went wrong with a request, after retries where they apply.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        method: String,
        url: String,
        status: u16,
        /// The start of the response body, secrets redacted.
        body: String,
    },
    #[error("{method} {url}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        method: String,
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("{method} {url}: {message}")]
    Request {
        method: String,
        url: String,
        message: String,
    },
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// For one whole request, body included.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Values that must never appear in errors or logs (tokens, passwords).
    pub secrets: Vec<String>,
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
}

/// The longest part of a body kept in an error.
const BODY_IN_ERRORS: usize = 2_000;

impl HttpClient {
    pub fn new(config: HttpConfig) -> Result<HttpClient, HttpError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(&config.user_agent)
            .build()
            .map_err(|e| HttpError::Request {
                method: String::new(),
                url: String::new(),
                message: e.to_string(),
            })?;
        Ok(HttpClient {
            client,
            config,
            limiter: None,
            auth: Auth::None,
        })
    }

    /// Authenticates every request with `auth`, whose secrets are then redacted too.
    pub fn with_auth(mut self, auth: Auth) -> HttpClient {
        self.config.secrets.extend(auth.secrets());
        self.auth = auth;
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
        let mut out = text.to_string();
        for secret in self.config.secrets.iter().filter(|s| !s.is_empty()) {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }

    /// Sends the request `build` makes, again for each retry; returns a successful
    /// response with its body read (so a connection reset mid-body is retried too).
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Response, HttpError> {
        let policy = &self.config.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(limiter) = &self.limiter {
                limiter.acquire().await;
            }
            let request =
                self.auth
                    .apply(build(&self.client))
                    .build()
                    .map_err(|e| HttpError::Request {
                        method: String::new(),
                        url: String::new(),
                        message: self.redact(&e.to_string()),
                    })?;
            let method = request.method().to_string();
            let url = self.redact(&redact_query(request.url()));
            // Each arm returns, or gives the retryable failure and any Retry-After.
            let (last, retry_after) = match self.client.execute(request).await {
                Err(e) => (describe(&e), None),
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Err(e) => (format!("reading the body: {e}"), None),
                        Ok(body) if status.is_success() => {
                            return Ok(Response {
                                status: status.as_u16(),
                                headers,
                                body: body.to_vec(),
                            })
                        }
                        Ok(_) if status.as_u16() == 429 || status.is_server_error() => {
                            let wait = headers
                                .get(reqwest::header::RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                            (format!("HTTP {}", status.as_u16()), wait)
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

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message
}

/// A URL with its query values hidden (they often carry tokens).
fn redact_query(url: &url::Url) -> String {
    let mut shown = url.clone();
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, _)| (k.into_owned(), "***".to_string()))
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

/// A successful response, body read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}
