//! Helpers shared by the CLI tests: run the real binary, read the real DuckDB file.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use observes_warehouse::SqlValue;

pub fn observes() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_observes"));
    cmd.env("OBSERVES_LOG", "warn")
        .env_remove("OBSERVES_FAILPOINT")
        .env_remove("OBSERVES_CONFIG")
        .env_remove("OBSERVES_LOG_FORMAT");
    cmd
}

/// Runs `observes ARGS` with `stdin` as its input.
pub fn run_with_input(args: &[&str], stdin: &str) -> Output {
    let mut cmd = observes();
    cmd.args(args);
    run_command_with_input(cmd, stdin)
}

/// Runs a prepared command (arguments, environment) with `stdin` as its input.
pub fn run_command_with_input(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn observes");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs a prepared command with the crash point `point` armed; it must die by SIGKILL there.
pub fn run_killed_at(mut cmd: Command, point: &str) {
    use std::os::unix::process::ExitStatusExt;
    let out = cmd.env("OBSERVES_FAILPOINT", point).output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: expected SIGKILL, got {:?}: {}",
        out.status,
        stderr(&out)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Query results of a DuckDB file as text rows.
pub fn query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    query_url(&format!("duckdb://{}", db.display()), sql)
}

/// Query results of any warehouse as text rows.
pub fn query_url(url: &str, sql: &str) -> Vec<Vec<String>> {
    let mut wh = observes_warehouse::connect(url).unwrap();
    wh.query(sql, &[])
        .unwrap()
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| match v {
                    SqlValue::Null => "NULL".to_string(),
                    SqlValue::Text(s) => s,
                    SqlValue::Int(i) => i.to_string(),
                    SqlValue::Float(f) => f.to_string(),
                    SqlValue::Bool(b) => b.to_string(),
                    SqlValue::Timestamp(t) => t.to_string(),
                    SqlValue::Date(d) => d.to_string(),
                    SqlValue::Time(t) => t.to_string(),
                })
                .collect()
        })
        .collect()
}

/// Column names of a table, without the given ones.
pub fn columns_except(url: &str, schema: &str, table: &str, except: &[&str]) -> Vec<String> {
    let mut wh = observes_warehouse::connect(url).unwrap();
    wh.table_columns(schema, table)
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !except.contains(&name.as_str()))
        .collect()
}

pub fn rows(items: &[&[&str]]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// The warehouses the crash tests run on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    DuckDb,
    Postgres,
    /// Redshift mode on PostgreSQL: batches of 200 rows and more are staged in S3.
    Redshift,
}

/// A fresh, empty warehouse of `backend` (a DuckDB file in `dir`, or a throwaway
/// PostgreSQL database, dropped with the guard): its URL and the guard.
pub fn fresh_warehouse(
    backend: Backend,
    dir: &Path,
) -> (String, Option<observes_testkit::TestDatabase>) {
    match backend {
        Backend::DuckDb => (
            format!("duckdb://{}", dir.join("wh.duckdb").display()),
            None,
        ),
        Backend::Postgres => {
            let db = observes_testkit::TestDatabase::create();
            (db.url.clone(), Some(db))
        }
        Backend::Redshift => {
            let db = observes_testkit::TestDatabase::create();
            (db.redshift_url(200), Some(db))
        }
    }
}

/// A one-request HTTP server on loopback that answers 200: its URL (at `path`), and a handle
/// that gives the request line and body it received.
pub fn webhook(path: &str) -> (String, std::thread::JoinHandle<(String, String)>) {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let received = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        (first, String::from_utf8(body).unwrap())
    });
    (url, received)
}

/// A child process killed (and reaped) however the test ends.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Starts `cmd` with its stderr piped; returns it and the first stderr line that
    /// starts with `prefix` (later lines are read and dropped).
    pub fn until_line(mut cmd: Command, prefix: &str) -> (Running, String) {
        use std::io::BufRead;
        let mut running = Running(cmd.stderr(Stdio::piped()).spawn().expect("spawn observes"));
        let stderr = running.0.stderr.take().expect("a piped stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("no line starting {prefix:?}"))
                .unwrap();
            if line.starts_with(prefix) {
                // The rest is read on and dropped: a full pipe would stop the child.
                std::thread::spawn(move || lines.for_each(drop));
                return (running, line);
            }
        }
    }
}
