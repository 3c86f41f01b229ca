//! Test support shared by the crates' integration tests: a fresh PostgreSQL database per
//! test (so tests run in parallel), dropped when the test ends.
//!
//! The server comes from `OBSERVES_TEST_POSTGRES_URL` (an admin URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); `./scripts/test` sets it, starting a
//! throwaway cluster when no server runs on 127.0.0.1:5432.

#![warn(missing_docs, unreachable_pub)]

pub mod git;

use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{Client, NoTls};

/// The admin URL tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("OBSERVES_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database that exists for the life of this value.
pub struct TestDatabase {
    /// Its connection URL.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates an empty database; panics with what to do when no server is reachable.
    pub fn create() -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let admin_url = postgres_admin_url();
        let mut admin = Client::connect(&admin_url, NoTls).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url} ({e}). Run ./scripts/test, which finds \
                 or starts a server, or set OBSERVES_TEST_POSTGRES_URL"
            )
        });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "observes_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        TestDatabase {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        }
    }
}

impl TestDatabase {
    /// A `redshift://` URL for this database: Redshift mode against PostgreSQL, staging in
    /// a new bucket of the S3 test server, staged parts fed back through `COPY FROM STDIN`.
    /// The database gets stand-ins for the Redshift names PostgreSQL lacks: the `SUPER`
    /// type (a domain over `jsonb`), `JSON_PARSE` and `JSON_SERIALIZE`.
    pub fn redshift_url(&self, small_load_rows: usize) -> String {
        let mut client = Client::connect(&self.url, NoTls).unwrap();
        client
            .batch_execute(
                "CREATE DOMAIN super AS jsonb; \
                 CREATE FUNCTION json_parse(text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS 'SELECT $1::jsonb'; \
                 CREATE FUNCTION json_serialize(jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text';",
            )
            .unwrap();
        let bucket = s3_bucket();
        let rest = self.url.strip_prefix("postgres://").unwrap_or(&self.url);
        format!(
            "redshift://{rest}?sslmode=disable&staging=s3://{bucket}/staging&slices=2&small_load_rows={small_load_rows}&copy_via_stdin=true"
        )
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The S3-compatible test server (`OBSERVES_TEST_S3_ENDPOINT`, e.g. `http://127.0.0.1:45999`),
/// with the `AWS_*` variables object_store reads set to match. `./scripts/test` starts one.
pub fn s3_endpoint() -> String {
    let endpoint = std::env::var("OBSERVES_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("no S3 test server: run ./scripts/test, which starts one, or set OBSERVES_TEST_S3_ENDPOINT")
    });
    // Process-wide settings, the same for every test.
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "observes-test"),
        ("AWS_SECRET_ACCESS_KEY", "observes-test-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ] {
        // SAFETY: tests set the same values from any thread; nothing reads them concurrently
        // in a way that a torn write could matter (they are identical each time).
        unsafe { std::env::set_var(k, v) };
    }
    endpoint
}

/// A new, empty bucket on the S3 test server; returns its name.
pub fn s3_bucket() -> String {
    use std::io::{Read, Write};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let endpoint = s3_endpoint();
    let name = format!(
        "observes-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = std::net::TcpStream::connect(&host)
        .unwrap_or_else(|e| panic!("S3 test server at {host}: {e}"));
    write!(
        stream,
        "PUT /{name} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "creating bucket {name}: {response}"
    );
    name
}

/// A served response as a test reads it.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The status line and headers, as sent (header names lowercase, as hyper writes them).
    pub head: String,
    /// The body, with a chunked transfer decoded.
    pub body: String,
}

/// A GET of `path` from a server on `base` (`http://127.0.0.1:PORT` or `127.0.0.1:PORT`),
/// over a plain TCP connection, with `headers`.
pub fn http_get(base: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(base.trim_start_matches("http://"))
        .unwrap_or_else(|e| panic!("connecting to {base}: {e}"));
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head[9..12].parse().expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    HttpResponse {
        status,
        head: head.to_string(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    }
}

/// A chunked body's content.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}
