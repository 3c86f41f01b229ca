//! Each kind of bad input stops `observes target` with an error naming where it is, and
//! what earlier checkpoints committed stays.

mod common;

use common::*;

const SCHEMA: &str = r#"{"type":"SCHEMA","stream":"jobs","schema":{"properties":{"id":{"type":"integer"},"status":{"type":"string"}}},"key_properties":["id"]}"#;
const GOOD: &str = r#"{"type":"RECORD","stream":"jobs","record":{"id":1,"status":"ok"}}"#;
const STATE: &str = r#"{"type":"STATE","value":{"jobs":1}}"#;

/// A good `jobs` record with key `id`.
fn record(id: u32) -> String {
    format!(r#"{{"type":"RECORD","stream":"jobs","record":{{"id":{id},"status":"ok"}}}}"#)
}

/// A STATE holding `n`.
fn state(n: u32) -> String {
    format!(r#"{{"type":"STATE","value":{{"jobs":{n}}}}}"#)
}

/// Loads SCHEMA, one committed record, then `bad` followed by a record that must not land.
fn load_with(bad: &str) -> (std::process::Output, Vec<Vec<String>>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let url = format!("duckdb://{}", db.display());
    let after = r#"{"type":"RECORD","stream":"jobs","record":{"id":99,"status":"after"}}"#;
    let input = format!("{SCHEMA}\n{GOOD}\n{STATE}\n{bad}\n{after}\n");
    let out = run_with_input(
        &[
            "target",
            &url,
            "--schema",
            "raw",
            "--write",
            "merge",
            "--commit-records",
            "0",
        ],
        &input,
    );
    let ids = query(&db, "SELECT id, status FROM raw.jobs ORDER BY id");
    (out, ids)
}

/// By default checkpoints are batched: a STATE commits once enough records wait, and a
/// failure keeps exactly what the last commit covered.
#[test]
fn batched_checkpoints_commit_together_and_a_failure_keeps_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let url = format!("duckdb://{}", db.display());
    let bad = r#"{"type":"RECORD","stream":"jobs","record":{"id":"x"}}"#;
    let input = [
        SCHEMA.to_string(),
        record(1),
        state(1), // one record waits: not committed yet
        record(2),
        state(2), // two: committed, with state 1's rows
        record(3),
        state(3), // one since the commit: waits
        bad.to_string(),
    ]
    .join("\n");
    let out = run_with_input(
        &[
            "target",
            &url,
            "--schema",
            "raw",
            "--commit-records",
            "2",
            "--commit-seconds",
            "3600",
        ],
        &input,
    );
    assert!(!out.status.success());
    assert_eq!(stdout(&out), format!("{}\n", state(2)));
    assert_eq!(
        query(&db, "SELECT id FROM raw.jobs ORDER BY id"),
        rows(&[&["1"], &["2"]])
    );
    assert_eq!(
        query(&db, "SELECT state FROM raw._observes_state"),
        rows(&[&["{\"jobs\":2}"]])
    );
}

/// The other trigger: a STATE also commits once `--commit-seconds` passed since the last
/// commit, however few records wait (a slow tap still checkpoints). And a commit's state
/// is echoed once it is durable, while the tap is quiet, not with the tap's next message.
#[test]
fn a_state_commits_once_the_commit_interval_passed() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let url = format!("duckdb://{}", db.display());
    let mut child = observes()
        .args([
            "target",
            &url,
            "--schema",
            "raw",
            "--commit-records",
            "2",
            "--commit-seconds",
            "3",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (echoed, echoes) = std::sync::mpsc::channel();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            let _ = echoed.send(line.unwrap());
        }
    });
    let next_echo = || {
        echoes
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a committed state is echoed while the tap is quiet")
    };

    // Two records: state 1 commits on the count, and is echoed with stdin still open.
    writeln!(
        stdin,
        "{SCHEMA}\n{}\n{}\n{}",
        record(1),
        record(2),
        state(1)
    )
    .unwrap();
    stdin.flush().unwrap();
    assert_eq!(next_echo(), state(1));
    // One record, but the interval passed since that commit: state 2 commits.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    writeln!(stdin, "{}\n{}", record(3), state(2)).unwrap();
    stdin.flush().unwrap();
    assert_eq!(next_echo(), state(2));
    // One record, right after that commit: state 3 waits, and bad input stops the load.
    let bad = r#"{"type":"RECORD","stream":"jobs","record":{"id":"x"}}"#;
    writeln!(stdin, "{}\n{}\n{bad}", record(4), state(3)).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    assert!(!out.status.success());
    assert_eq!(echoes.try_iter().collect::<Vec<_>>(), Vec::<String>::new());
    assert_eq!(
        query(&db, "SELECT id FROM raw.jobs ORDER BY id"),
        rows(&[&["1"], &["2"], &["3"]])
    );
    assert_eq!(
        query(&db, "SELECT state FROM raw._observes_state"),
        rows(&[&["{\"jobs\":2}"]])
    );
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn each_bad_input_has_a_located_error_and_keeps_committed_rows() {
    let cases = [
        ("{\"type\":\"RECORD\",\"stream\":\"jobs\",\"record\":{\"id\":", "error: line 4: malformed JSON at column 48: EOF while parsing a value"),
        ("{\"type\":\"RECORDZ\",\"stream\":\"jobs\"}", "error: line 4: unknown message type \"RECORDZ\""),
        ("{\"type\":\"RECORD\",\"stream\":\"builds\",\"record\":{\"id\":2}}", "error: line 4, stream \"builds\": RECORD before the stream's SCHEMA"),
        ("{\"type\":\"RECORD\",\"stream\":\"jobs\",\"record\":{\"status\":\"no key\"}}", "error: line 4, stream \"jobs\": field \"id\": key property is missing or null"),
        ("{\"type\":\"RECORD\",\"stream\":\"jobs\",\"record\":{\"id\":\"two\"}}", "error: line 4, stream \"jobs\": field \"id\": expected integer or null, got string \"two\""),
        ("{\"type\":\"SCHEMA\",\"stream\":\"jobs\",\"schema\":{\"properties\":{\"id\":{\"type\":\"integr\"}}},\"key_properties\":[\"id\"]}", "error: line 4: stream \"jobs\": invalid schema at properties.id.type: unknown type \"integr\""),
        ("{\"type\":\"SCHEMA\",\"stream\":\"jobs\",\"schema\":{\"properties\":{\"id\":{\"type\":\"integer\"}}},\"key_properties\":[\"uuid\"]}", "error: line 4: stream \"jobs\": invalid schema at key_properties: key property \"uuid\" is not in the schema"),
        ("{\"type\":\"SCHEMA\",\"stream\":\"jobs\",\"schema\":{\"properties\":{\"id\":{\"type\":\"boolean\"},\"status\":{\"type\":\"string\"}}},\"key_properties\":[\"id\"]}", "error: line 4: stream \"jobs\": column \"id\" of table \"jobs\" cannot change from bigint to boolean (the schema-change policy is \"fail\")"),
    ];
    for (bad, expected) in cases {
        let (out, ids) = load_with(bad);
        assert!(!out.status.success(), "{bad}: should fail");
        assert_eq!(last_line(&stderr(&out)), expected, "{bad}");
        assert_eq!(
            ids,
            rows(&[&["1", "ok"]]),
            "{bad}: the committed checkpoint stays, nothing after it lands"
        );
        // The checkpoint's state was echoed to stdout before the failure.
        assert_eq!(
            stdout(&out),
            "{\"type\":\"STATE\",\"value\":{\"jobs\":1}}\n",
            "{bad}"
        );
    }
}

#[test]
fn a_failed_load_is_recorded_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let url = format!("duckdb://{}", db.display());
    let input = format!("{SCHEMA}\n{GOOD}\n{STATE}\n{{\"type\":\"RECORD\",\"stream\":\"jobs\",\"record\":{{\"id\":\"x\"}}}}\n");
    let out = run_with_input(
        &[
            "target",
            &url,
            "--schema",
            "raw",
            "--pipeline",
            "p",
            "--commit-records",
            "0",
        ],
        &input,
    );
    assert!(!out.status.success());
    let loads = query(
        &db,
        "SELECT load_id, stream, rows, status, error FROM raw._observes_loads",
    );
    assert_eq!(
        loads,
        rows(&[&[
            "1",
            "jobs",
            "1",
            "failed",
            "line 4, stream \"jobs\": field \"id\": expected integer or null, got string \"x\""
        ]])
    );
    let state = query(
        &db,
        "SELECT pipeline, CAST(state AS VARCHAR) FROM raw._observes_state",
    );
    assert_eq!(state, rows(&[&["p", "{\"jobs\":1}"]]));
}

#[test]
fn quarantine_loads_the_rest_and_keeps_the_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let url = format!("duckdb://{}", db.display());
    let input = format!(
        "{SCHEMA}\n{GOOD}\nnot json\n{{\"type\":\"RECORD\",\"stream\":\"jobs\",\"record\":{{\"id\":\"x\"}}}}\n{{\"type\":\"RECORD\",\"stream\":\"ghost\",\"record\":{{\"a\":1}}}}\n{{\"type\":\"RECORD\",\"stream\":\"jobs\",\"record\":{{\"id\":3,\"status\":\"fine\"}}}}\n{STATE}\n"
    );
    let out = run_with_input(
        &[
            "target",
            &url,
            "--schema",
            "raw",
            "--on-invalid",
            "quarantine",
        ],
        &input,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query(&db, "SELECT id FROM raw.jobs ORDER BY id"),
        rows(&[&["1"], &["3"]])
    );
    assert_eq!(
        query(
            &db,
            "SELECT stream, line, reason, record FROM raw._observes_rejects ORDER BY line"
        ),
        rows(&[
            &[
                "",
                "3",
                "malformed JSON at column 2: expected ident",
                "not json"
            ],
            &[
                "jobs",
                "4",
                "field \"id\": expected integer or null, got string \"x\"",
                "{\"id\":\"x\"}"
            ],
            // A stream with no SCHEMA is quarantined too, not a failed load.
            &[
                "ghost",
                "5",
                "RECORD before the stream's SCHEMA",
                "{\"a\":1}"
            ],
        ])
    );
    assert_eq!(
        query(
            &db,
            "SELECT stream, rows, rejected, status FROM raw._observes_loads"
        ),
        rows(&[&["jobs", "2", "1", "completed"]])
    );
}

/// What a postgres:// URL leaves out comes from the PG* variables (here the database).
#[test]
fn postgres_settings_come_from_pg_variables() {
    let db = observes_testkit::TestDatabase::create();
    let (base, name) = db.url.rsplit_once('/').unwrap();
    let mut cmd = observes();
    cmd.args(["target", base, "--schema", "raw"]);
    cmd.env("PGDATABASE", name);
    let out = run_command_with_input(cmd, &format!("{SCHEMA}\n{GOOD}\n{STATE}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query_url(&db.url, "SELECT id, status FROM raw.jobs"),
        rows(&[&["1", "ok"]])
    );
}

/// Redshift staging without an IAM role or keys fails before staging anything, saying what
/// to set.
#[test]
fn redshift_copy_without_credentials_says_what_to_set() {
    let db = observes_testkit::TestDatabase::create();
    let url = db.redshift_url(1).replace("&copy_via_stdin=true", "");
    let mut cmd = observes();
    cmd.args(["target", &url, "--schema", "raw"]);
    cmd.env_remove("AWS_ACCESS_KEY_ID");
    cmd.env_remove("AWS_SECRET_ACCESS_KEY");
    let out = run_command_with_input(cmd, &format!("{SCHEMA}\n{GOOD}\n{STATE}\n"));
    assert!(!out.status.success());
    assert_eq!(
        last_line(&stderr(&out)),
        "error: bulk load into raw.jobs: COPY from S3 needs credentials: set iam_role in the warehouse URL, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    );
}
