//! A git server over smart HTTP for tests: real `git http-backend` (the CGI program that
//! ships with git) behind axum, serving every repository under a root folder, with HTTP
//! Basic authentication on the repositories that are given a user and password.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;

use crate::{Server, SharedFaults};

struct GitState {
    root: PathBuf,
    /// Repository path under the root (`group/name.git`) → expected `Authorization`.
    protected: BTreeMap<String, String>,
}

/// `git http-backend` serving `root` on 127.0.0.1 until dropped.
pub struct GitServer {
    /// The server.
    pub server: Server,
}

impl GitServer {
    /// `protected`: (repository path under `root`, user, password).
    pub fn start(root: PathBuf, protected: &[(&str, &str, &str)]) -> std::io::Result<GitServer> {
        let protected = protected
            .iter()
            .map(|(repo, user, password)| {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                (repo.trim_matches('/').to_string(), format!("Basic {token}"))
            })
            .collect();
        let state = Arc::new(GitState { root, protected });
        let app = Router::new()
            .fallback(serve)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(state);
        let server = Server::spawn(app, SharedFaults::default(), 0)?;
        Ok(GitServer { server })
    }

    /// The clone URL of a repository under the root.
    pub fn url(&self, repo: &str) -> String {
        format!("{}/{}", self.server.base_url(), repo.trim_matches('/'))
    }
}

async fn serve(
    State(state): State<Arc<GitState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let needed = state
        .protected
        .iter()
        .find(|(repo, _)| path.trim_start_matches('/').starts_with(repo.as_str()));
    let mut remote_user = String::new();
    if let Some((_, expected)) = needed {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if given != expected {
            let mut response =
                (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
            response.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Basic realm=\"observes test git\""),
            );
            return response;
        }
        remote_user = "tester".into();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", remote_user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let failed = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e).into_response();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("git http-backend: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let body = body.clone();
        tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
    }
    let out = match child.wait_with_output().await {
        Ok(o) => o,
        Err(e) => return failed(format!("git http-backend: {e}")),
    };
    cgi_response(&out.stdout)
        .unwrap_or_else(|| failed(String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// A CGI program's output (headers, a blank line, the body) as a response.
fn cgi_response(output: &[u8]) -> Option<Response> {
    let (split, gap) = [(b"\r\n\r\n".as_slice(), 4), (b"\n\n".as_slice(), 2)]
        .iter()
        .filter_map(|(sep, gap)| {
            output
                .windows(sep.len())
                .position(|w| w == *sep)
                .map(|p| (p, *gap))
        })
        .min_by_key(|(p, _)| *p)?;
    let head = String::from_utf8_lossy(&output[..split]);
    let mut response = Response::new(axum::body::Body::from(output[split + gap..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next()?.parse().ok()?;
            *response.status_mut() = StatusCode::from_u16(code).ok()?;
        } else if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    Some(response)
}
