//! Fakes of the external APIs observes reads, served on 127.0.0.1 by axum.
//!
//! Each fake holds a generated, mutable world (tests add and update items between runs)
//! and follows the real API's documented behaviour: pagination headers, auth, error
//! bodies. Faults are injected per request path: an HTTP status with or without
//! `Retry-After`, a connection reset mid-body, a truncated JSON body.
//!
//! [`git`] is not a fake but real `git http-backend` behind the same server, with Basic
//! authentication, for the repository mirror's tests.

#![warn(missing_docs, unreachable_pub)]
// Handlers return early with the API's error response; boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod checkly;
pub mod git;
pub mod gitlab;
pub mod rest;
pub mod shape;
pub mod timedoctor;
pub mod zoho;

use std::net::SocketAddr;

/// A fake, started: what `observes fake-api NAME` prints, and the settings its source reads
/// to reach it (the demo writes them beside its config).
pub trait RunningFake {
    /// Where it listens and how to sign in, one line each.
    fn describe(&self) -> Vec<String>;
    /// The settings (TOML) of the source of the same name, pointed at this fake.
    fn settings(&self) -> String;
    /// Serves until the process is stopped.
    fn wait(self: Box<Self>);
    /// Its server, where faults are injected.
    fn server(&self) -> &Server;
}

/// A registered fake: one per source that reads an API, under the source's name.
pub struct FakeKind {
    /// The source's name.
    pub name: &'static str,
    /// Starts it on 127.0.0.1 (`port` 0: any free one), its world generated from `seed`.
    pub start: fn(seed: u64, port: u16) -> std::io::Result<Box<dyn RunningFake>>,
}

impl FakeKind {
    /// The registry entry of `F`, under `name`.
    pub(crate) const fn of<F: SeededFake>(name: &'static str) -> FakeKind {
        FakeKind {
            name,
            start: start_boxed::<F>,
        }
    }
}

/// A fake the registry can start: from a seed, every other option at its default.
pub(crate) trait SeededFake: RunningFake + Sized + 'static {
    fn start_seeded(seed: u64, port: u16) -> std::io::Result<Self>;
}

fn start_boxed<F: SeededFake>(seed: u64, port: u16) -> std::io::Result<Box<dyn RunningFake>> {
    Ok(Box::new(F::start_seeded(seed, port)?))
}

/// Every fake.
pub const FAKES: &[FakeKind] = &[gitlab::FAKE, checkly::FAKE, timedoctor::FAKE, zoho::FAKE];

/// The fake of this name.
pub fn find(name: &str) -> Option<&'static FakeKind> {
    FAKES.iter().find(|k| k.name == name)
}
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

/// A fault served instead of the real answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This status, with a `Retry-After` header if given, and this body.
    Status {
        /// The status.
        code: u16,
        /// The `Retry-After` header's value, if any.
        retry_after: Option<String>,
        /// The body.
        body: String,
    },
    /// The real answer's headers and first bytes, then the connection drops.
    ResetMidBody,
    /// A 200 whose JSON body is cut short (its length header matches the cut body).
    TruncatedBody,
    /// A 200 with this body instead of the real one (malformed records, wrong shapes).
    Body(String),
}

impl Fault {
    /// This status, with a JSON body saying it was injected.
    pub fn status(code: u16) -> Fault {
        Fault::Status {
            code,
            retry_after: None,
            body: format!("{{\"message\":\"{code} fault injected\"}}"),
        }
    }

    /// A 429 with this `Retry-After`.
    pub fn too_many_requests(retry_after: &str) -> Fault {
        Fault::Status {
            code: 429,
            retry_after: Some(retry_after.to_string()),
            body: "Retry later".into(),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Status {
                code,
                retry_after: Some(after),
                ..
            } => write!(f, "status {code} with Retry-After: {after}"),
            Fault::Status { code, .. } => write!(f, "status {code}"),
            Fault::ResetMidBody => f.write_str("a connection reset mid-body"),
            Fault::TruncatedBody => f.write_str("a truncated body"),
            Fault::Body(_) => f.write_str("a replaced body"),
        }
    }
}

impl std::str::FromStr for FaultRule {
    type Err = String;

    /// `PATH=FAULT[*TIMES]`, as `observes fake-api --fault` takes it: the next TIMES
    /// (default 1) requests whose path and query contain PATH get FAULT, one of a status
    /// code (`429` comes with `Retry-After: 1`), `reset` (the connection drops mid-body)
    /// or `truncated` (a JSON body cut short).
    fn from_str(spec: &str) -> Result<FaultRule, String> {
        const FORM: &str = "write PATH=FAULT[*TIMES], FAULT a status such as 503, reset or truncated: /errors=503*3";
        let (path, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("fault {spec:?} has no '=': {FORM}"))?;
        let (kind, times) = match rest.split_once('*') {
            Some((kind, times)) => (
                kind,
                times
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("fault {spec:?}: {times:?} is not a count of requests (1 or more): {FORM}"))?,
            ),
            None => (rest, 1),
        };
        let fault = match kind {
            "reset" => Fault::ResetMidBody,
            "truncated" => Fault::TruncatedBody,
            "429" => Fault::too_many_requests("1"),
            code => match code.parse::<u16>() {
                Ok(code) if (400..=599).contains(&code) => Fault::status(code),
                _ => return Err(format!("fault {spec:?}: {code:?} is not a fault: {FORM}")),
            },
        };
        if path.is_empty() {
            return Err(format!("fault {spec:?} matches no path: {FORM}"));
        }
        Ok(FaultRule {
            path_contains: path.to_string(),
            fault,
            times,
        })
    }
}

/// A fault for the requests whose path and query contain `path_contains`, `times` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Part of the path and query the requests must contain.
    pub path_contains: String,
    /// What they get.
    pub fault: Fault,
    /// How many of them.
    pub times: u32,
}

#[derive(Debug)]
struct Rule {
    path_contains: String,
    fault: Fault,
    /// Matching requests let through before the fault starts.
    skip: u32,
    remaining: u32,
}

/// Faults waiting for the requests they match, and a count of requests seen.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<Rule>,
    /// Requests seen.
    pub requests: u64,
    /// Faults served.
    pub faults_served: u64,
}

impl Faults {
    /// The next `times` requests whose path and query contain `path_contains` get `fault`.
    pub fn inject(&mut self, path_contains: &str, fault: Fault, times: u32) {
        self.inject_after(path_contains, 0, fault, times);
    }

    /// Like [`Faults::inject`], after letting `skip` matching requests through.
    pub fn inject_after(&mut self, path_contains: &str, skip: u32, fault: Fault, times: u32) {
        self.rules.push(Rule {
            path_contains: path_contains.to_string(),
            fault,
            skip,
            remaining: times,
        });
    }

    fn take(&mut self, path: &str) -> Option<Fault> {
        self.requests += 1;
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && path.contains(&r.path_contains))?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.remaining -= 1;
        self.faults_served += 1;
        Some(rule.fault.clone())
    }

    /// Faults injected but not yet served.
    pub fn pending(&self) -> u32 {
        self.rules.iter().map(|r| r.remaining).sum()
    }
}

/// The faults of a fake, shared with its handlers.
pub type SharedFaults = Arc<Mutex<Faults>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not wedge the fake for the rest of a test.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves a fault where one is due, else the real handler.
async fn faults_layer(
    State(faults): State<SharedFaults>,
    request: Request,
    next: Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let fault = lock(&faults).take(&target);
    match fault {
        None => next.run(request).await,
        Some(Fault::Status {
            code,
            retry_after,
            body,
        }) => {
            let mut response = (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            )
                .into_response();
            if let Some(wait) = retry_after.and_then(|w| HeaderValue::from_str(&w).ok()) {
                response.headers_mut().insert("retry-after", wait);
            }
            response
        }
        Some(Fault::ResetMidBody) => {
            let real = next.run(request).await;
            let (parts, body) = real.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let half = bytes.slice(..bytes.len() / 2);
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fault: reset",
                )),
            ];
            let mut response =
                Response::from_parts(parts, Body::from_stream(futures::stream::iter(chunks)));
            response.headers_mut().remove("content-length");
            response
        }
        Some(Fault::Body(body)) => {
            let mut response = body.into_response();
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
        Some(Fault::TruncatedBody) => {
            let real = next.run(request).await;
            let (mut parts, body) = real.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let cut = bytes.slice(..bytes.len().saturating_sub(1) / 2);
            parts.headers.remove("content-length");
            Response::from_parts(parts, Body::from(cut))
        }
    }
}

/// A fake serving on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its faults, which tests inject.
    pub faults: SharedFaults,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// Closed when the server's task has finished (its sender is dropped then).
    stopped: std::sync::mpsc::Receiver<()>,
}

impl Server {
    /// Serves `app` at `port` (0 picks a free one) as a task on the process's one runtime,
    /// so sync and async callers alike can use it.
    pub(crate) fn spawn(app: Router, faults: SharedFaults, port: u16) -> std::io::Result<Server> {
        let runtime = observes_runtime::runtime().map_err(std::io::Error::other)?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let app = app.layer(axum::middleware::from_fn_with_state(
            faults.clone(),
            faults_layer,
        ));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (stopped_tx, stopped) = std::sync::mpsc::channel::<()>();
        runtime.spawn(async move {
            let _stopped = stopped_tx;
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "fake API stopped");
            }
        });
        Ok(Server {
            addr,
            faults,
            shutdown: Some(tx),
            stopped,
        })
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// See [`Faults::inject`].
    pub fn inject(&self, path_contains: &str, fault: Fault, times: u32) {
        lock(&self.faults).inject(path_contains, fault, times);
    }

    /// See [`Faults::inject_after`].
    pub fn inject_after(&self, path_contains: &str, skip: u32, fault: Fault, times: u32) {
        lock(&self.faults).inject_after(path_contains, skip, fault, times);
    }

    /// Requests seen.
    pub fn requests(&self) -> u64 {
        lock(&self.faults).requests
    }

    /// Serves until the process is stopped.
    pub fn wait(self) {
        let _ = self.stopped.recv();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
            // Returns once the task has ended (it never sends; its end drops the sender).
            let _ = self.stopped.recv();
        }
    }
}

/// A small deterministic generator: the same seed makes the same world.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The query parameters of a request, repeated keys kept in order.
pub(crate) type Query = Vec<(String, String)>;

pub(crate) fn param<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn params<'a>(query: &'a Query, key: &str) -> Vec<&'a str> {
    query
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[cfg(test)]
mod fault_rule_tests {
    use super::*;

    #[test]
    fn fault_rules_parse_and_malformed_ones_say_what_to_write() {
        let rule = |s: &str| s.parse::<FaultRule>();
        assert_eq!(
            rule("/errors=503*3"),
            Ok(FaultRule {
                path_contains: "/errors".into(),
                fault: Fault::status(503),
                times: 3
            })
        );
        assert_eq!(rule("/a=429").unwrap().fault, Fault::too_many_requests("1"));
        assert_eq!(rule("/a=reset").unwrap().fault, Fault::ResetMidBody);
        assert_eq!(rule("/a=truncated*2").unwrap().times, 2);
        let form = "write PATH=FAULT[*TIMES], FAULT a status such as 503, reset or truncated: /errors=503*3";
        for (spec, error) in [
            ("/errors", format!(r#"fault "/errors" has no '=': {form}"#)),
            (
                "/a=200",
                format!(r#"fault "/a=200": "200" is not a fault: {form}"#),
            ),
            (
                "/a=slow",
                format!(r#"fault "/a=slow": "slow" is not a fault: {form}"#),
            ),
            (
                "/a=503*0",
                format!(r#"fault "/a=503*0": "0" is not a count of requests (1 or more): {form}"#),
            ),
            (
                "/a=503*x",
                format!(r#"fault "/a=503*x": "x" is not a count of requests (1 or more): {form}"#),
            ),
            ("=503", format!(r#"fault "=503" matches no path: {form}"#)),
        ] {
            assert_eq!(rule(spec), Err(error), "{spec}");
        }
    }
}
