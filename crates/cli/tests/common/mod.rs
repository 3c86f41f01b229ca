//! Helpers shared by the CLI tests: run the real binary, read the real DuckDB file.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use observes_warehouse::SqlValue;

pub fn observes() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_observes"));
    cmd.env("OBSERVES_LOG", "warn")
        .env_remove("OBSERVES_FAILPOINT");
    cmd
}

/// Runs `observes ARGS` with `stdin` as its input.
pub fn run_with_input(args: &[&str], stdin: &str) -> Output {
    let mut child = observes()
        .args(args)
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

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Query results as text rows.
pub fn query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let mut wh = observes_warehouse::connect(&format!("duckdb://{}", db.display())).unwrap();
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
                })
                .collect()
        })
        .collect()
}

pub fn rows(items: &[&[&str]]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}
