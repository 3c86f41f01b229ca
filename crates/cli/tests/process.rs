//! How the `observes` process sets itself up, seen from outside while it runs.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::*;

#[test]
fn a_load_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("duckdb://{}", dir.path().join("wh.duckdb").display());
    let mut child = observes()
        .args(["target", &url, "--schema", "raw", "--commit-records", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"type":"SCHEMA","stream":"jobs","schema":{{"properties":{{"id":{{"type":"integer"}}}}}},"key_properties":["id"]}}"#
    )
    .unwrap();
    writeln!(stdin, r#"{{"type":"STATE","value":{{"jobs":1}}}}"#).unwrap();
    stdin.flush().unwrap();
    // The committed state comes back on stdout: the load is under way, input still open.
    let mut echoed = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut echoed)
        .unwrap();
    assert_eq!(echoed.trim(), r#"{"type":"STATE","value":{"jobs":1}}"#);

    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    // Kernels before 6.0 do not report it; nothing to check there.
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
}
