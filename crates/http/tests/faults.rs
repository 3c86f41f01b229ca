//! The client against a scripted server on 127.0.0.1: each connection gets the next
//! scripted reply, so every fault is exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use observes_http::{HttpClient, HttpConfig, HttpError, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone)]
enum Reply {
    Status(u16, &'static str, &'static str),
    /// 200 when the request carries this header line, else 401.
    RequireHeader(&'static str),
    /// Close the connection without answering.
    Reset,
    /// Promise a longer body than is sent, then close.
    Truncated,
}

/// Serves the replies in order (the last one forever); returns the base URL and a counter
/// of requests seen.
async fn serve(replies: Vec<Reply>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let reply = replies[n.min(replies.len() - 1)].clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                let reply = match reply {
                    Reply::RequireHeader(line) => {
                        let head = String::from_utf8_lossy(&head).to_lowercase();
                        if head.contains(&line.to_lowercase()) {
                            Reply::Status(200, "", "ok")
                        } else {
                            Reply::Status(401, "", "no credentials")
                        }
                    }
                    other => other,
                };
                let text = match reply {
                    Reply::RequireHeader(_) => unreachable!("resolved above"),
                    Reply::Reset => return,
                    Reply::Truncated => "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"partial\":".to_string(),
                    Reply::Status(code, headers, body) => format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
                        body.len()
                    ),
                };
                let _ = socket.write_all(text.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, seen)
}

fn client() -> HttpClient {
    HttpClient::new(HttpConfig {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        secrets: vec!["glpat-s3cret".into()],
        ..HttpConfig::default()
    })
    .unwrap()
}

const OK: Reply = Reply::Status(200, "", "[1,2]");

#[tokio::test]
async fn a_429_with_retry_after_zero_waits_and_recovers() {
    let (url, seen) = serve(vec![
        Reply::Status(429, "Retry-After: 0\r\n", "slow down"),
        OK,
    ])
    .await;
    let start = Instant::now();
    let response = client()
        .send(|c| c.get(format!("{url}/jobs")))
        .await
        .unwrap();
    assert_eq!(response.body, b"[1,2]");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "waited the minimum, did not spin"
    );
}

#[tokio::test]
async fn bursts_of_5xx_resets_and_truncated_bodies_are_retried() {
    let (url, seen) = serve(vec![
        Reply::Status(500, "", ""),
        Reply::Status(502, "", ""),
        Reply::Reset,
        OK,
    ])
    .await;
    assert_eq!(client().send(|c| c.get(&url)).await.unwrap().body, b"[1,2]");
    assert_eq!(seen.load(Ordering::SeqCst), 4);

    let (url, seen) = serve(vec![Reply::Truncated, Reply::Status(503, "", ""), OK]).await;
    assert_eq!(client().send(|c| c.get(&url)).await.unwrap().body, b"[1,2]");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn other_4xx_fail_at_once_with_the_body_redacted() {
    let (url, seen) = serve(vec![
        Reply::Status(
            401,
            "",
            "{\"message\":\"401 Unauthorized: token glpat-s3cret expired\"}",
        ),
        OK,
    ])
    .await;
    let err = client()
        .send(|c| c.get(format!("{url}/projects?private_token=glpat-s3cret")))
        .await
        .unwrap_err();
    assert_eq!(seen.load(Ordering::SeqCst), 1, "not retried");
    assert!(matches!(err, HttpError::Status { status: 401, .. }));
    assert_eq!(
        err.to_string(),
        format!("GET {url}/projects?private_token=***: HTTP 401: {{\"message\":\"401 Unauthorized: token *** expired\"}}")
    );
}

#[tokio::test]
async fn it_gives_up_after_the_attempts_with_a_clear_error() {
    let (url, seen) = serve(vec![Reply::Status(503, "", "down")]).await;
    let err = client()
        .send(|c| c.get(format!("{url}/x")))
        .await
        .unwrap_err();
    assert_eq!(seen.load(Ordering::SeqCst), 4);
    assert_eq!(
        err.to_string(),
        format!("GET {url}/x: gave up after 4 attempts: HTTP 503: down")
    );
}

#[tokio::test]
async fn every_request_carries_its_credentials_and_they_are_redacted() {
    use observes_http::Auth;
    let (url, _) = serve(vec![Reply::RequireHeader("private-token: tok-123")]).await;
    let gitlab = client().with_auth(Auth::Header {
        name: "PRIVATE-TOKEN".into(),
        value: "tok-123".into(),
    });
    assert_eq!(gitlab.send(|c| c.get(&url)).await.unwrap().body, b"ok");

    // user:password base64-encoded, as the Basic scheme sends it.
    let (url, _) = serve(vec![Reply::RequireHeader(
        "authorization: basic Ym90OnB3LTQ1Ng==",
    )])
    .await;
    let basic = client().with_auth(Auth::Basic {
        user: "bot".into(),
        password: "pw-456".into(),
    });
    assert_eq!(basic.send(|c| c.get(&url)).await.unwrap().body, b"ok");

    let (url, _) = serve(vec![Reply::RequireHeader("authorization: bearer tok-789")]).await;
    let bearer = client().with_auth(Auth::Bearer("tok-789".into()));
    assert_eq!(bearer.send(|c| c.get(&url)).await.unwrap().body, b"ok");
    assert_eq!(bearer.redact("token tok-789 leaked"), "token *** leaked");

    // Without them the server says 401, which is not retried.
    let (url, seen) = serve(vec![Reply::RequireHeader("authorization: bearer tok-789")]).await;
    let err = client().send(|c| c.get(&url)).await.unwrap_err();
    assert!(
        matches!(err, observes_http::HttpError::Status { status: 401, .. }),
        "{err}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

/// reqwest's own error text names the URL whole, query included: a token passed in the
/// query (`?private_token=…`) must not come back in any error, whatever failed.
#[tokio::test]
async fn a_token_in_the_query_never_reaches_an_error() {
    let token = "tok-in-the-query-1234";
    let plain = HttpClient::new(HttpConfig {
        timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
        ..HttpConfig::default()
    })
    .unwrap();
    // Nothing listens there: every attempt fails to connect.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let err = plain
        .send(|c| {
            c.get(format!(
                "http://{closed}/api/v4/projects?private_token={token}&page=2"
            ))
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains(token), "{err}");
    assert!(err.contains("private_token=***"), "{err}");
    assert!(err.contains("page=2"), "paging stays readable: {err}");
    assert!(err.contains("could not connect"), "{err}");

    // A truncated body fails while reading it: that error names the URL too.
    let (url, _) = serve(vec![Reply::Truncated]).await;
    let err = plain
        .send(|c| c.get(format!("{url}/x?api_key={token}")))
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains(token), "{err}");
}

#[tokio::test]
async fn a_token_with_a_newline_says_what_is_wrong() {
    let err = client()
        .send(|c| {
            c.get("http://127.0.0.1:9/")
                .header("PRIVATE-TOKEN", "glpat-s3cret\nx")
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("s3cret"), "{err}");
    assert!(
        err.starts_with("building the request: invalid request: builder error"),
        "{err}"
    );
    assert!(
        err.ends_with("(a header value may not contain a newline or other control character: check the token and header settings)"),
        "{err}"
    );
}
