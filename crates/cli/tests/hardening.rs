//! Defects found by an adversarial pass, each pinned: names that would collide, exact
//! numbers, errors that point where the problem is, and a file re-read after a crash.

mod common;

use common::*;
use observes_model::ident::short_hash;

fn schema(stream: &str, properties: &str) -> String {
    format!(
        r#"{{"type":"SCHEMA","stream":"{stream}","schema":{{"properties":{{"id":{{"type":"integer"}}{properties}}}}},"key_properties":["id"]}}"#
    )
}

fn record(stream: &str, body: &str) -> String {
    format!(r#"{{"type":"RECORD","stream":"{stream}","record":{body}}}"#)
}

const STATE: &str = r#"{"type":"STATE","value":{"at":1}}"#;

fn target(db: &std::path::Path, mode: &str, lines: &[String]) -> std::process::Output {
    let url = format!("duckdb://{}", db.display());
    run_with_input(
        &["target", &url, "--schema", "s", "--write", mode],
        &(lines.join("\n") + "\n"),
    )
}

fn tables_of(db: &std::path::Path) -> Vec<Vec<String>> {
    query(
        db,
        "SELECT stream, json_extract_string(tables, '$[*].table')::VARCHAR FROM s._observes_schema_versions \
         QUALIFY version = MAX(version) OVER (PARTITION BY stream) ORDER BY stream",
    )
}

#[test]
fn streams_whose_names_normalize_alike_never_share_a_table() {
    let v = r#","v":{"type":"string"}"#;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    // Across loads, under merge: `foo_bar` once overwrote `fooBar`'s rows.
    let out = target(
        &db,
        "merge",
        &[
            schema("fooBar", v),
            record("fooBar", r#"{"id":1,"v":"camel"}"#),
            STATE.into(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let hashed = format!("foo_bar_{}", short_hash("foo_bar"));
    for _ in 0..2 {
        let out = target(
            &db,
            "merge",
            &[
                schema("foo_bar", v),
                record("foo_bar", r#"{"id":1,"v":"snake"}"#),
                STATE.into(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(
        query(&db, "SELECT id, v FROM s.foo_bar"),
        rows(&[&["1", "camel"]])
    );
    assert_eq!(
        query(&db, &format!("SELECT id, v FROM s.{hashed}")),
        rows(&[&["1", "snake"]]),
        "the second stream keeps its own table on every load"
    );
    assert_eq!(
        tables_of(&db),
        rows(&[
            &["fooBar", "[foo_bar]"],
            &["foo_bar", &format!("[{hashed}]")]
        ])
    );

    // In one load, in every mode: `Jobs` and `jobs`, `a.b` and `a_b`, and a stream named
    // like another's child table, in both orders.
    let artifacts = r#","artifacts":{"type":"array","items":{"type":"object","properties":{"n":{"type":"integer"}}}}"#;
    for mode in ["append", "merge", "replace"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wh.duckdb");
        let out = target(
            &db,
            mode,
            &[
                schema("Jobs", ""),
                schema("jobs", ""),
                schema("a.b", ""),
                schema("a_b", ""),
                schema("runs", artifacts),
                schema("runs__artifacts", ""),
                schema("builds__artifacts", ""),
                schema("builds", artifacts),
                record("Jobs", r#"{"id":1}"#),
                record("jobs", r#"{"id":2}"#),
                record("a.b", r#"{"id":3}"#),
                record("a_b", r#"{"id":4}"#),
                record("runs", r#"{"id":5,"artifacts":[{"n":50}]}"#),
                record("runs__artifacts", r#"{"id":6}"#),
                record("builds__artifacts", r#"{"id":7}"#),
                record("builds", r#"{"id":8,"artifacts":[{"n":80}]}"#),
                STATE.into(),
            ],
        );
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        let h = |s: &str| {
            format!(
                "{}_{}",
                observes_model::ident::normalize(s, 200),
                short_hash(s)
            )
        };
        let expected: Vec<(String, String)> = vec![
            ("jobs".into(), "SELECT id FROM s.jobs".into()),
            ("2".into(), format!("SELECT id FROM s.{}", h("jobs"))),
            ("3".into(), "SELECT id FROM s.a_b".into()),
            ("4".into(), format!("SELECT id FROM s.{}", h("a_b"))),
            ("50".into(), "SELECT n FROM s.runs__artifacts".into()),
            (
                "6".into(),
                format!("SELECT id FROM s.{}", h("runs__artifacts")),
            ),
            ("7".into(), "SELECT id FROM s.builds__artifacts".into()),
            (
                "80".into(),
                format!("SELECT n FROM s.{}__artifacts", h("builds")),
            ),
        ];
        for (want, sql) in expected {
            let want = if want == "jobs" {
                "1".to_string()
            } else {
                want
            };
            assert_eq!(query(&db, &sql), rows(&[&[want.as_str()]]), "{mode}: {sql}");
        }
    }
}

#[test]
fn a_stream_named_like_observes_own_tables_gets_a_table_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let out = target(
        &db,
        "append",
        &[
            schema("_observes_loads", ""),
            record("_observes_loads", r#"{"id":1}"#),
            schema("jobs__observes_stage", ""),
            record("jobs__observes_stage", r#"{"id":2}"#),
            STATE.into(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for (stream, id) in [("_observes_loads", "1"), ("jobs__observes_stage", "2")] {
        assert_eq!(
            query(
                &db,
                &format!("SELECT id FROM s.{stream}_{}", short_hash(stream))
            ),
            rows(&[&[id]]),
            "{stream}"
        );
    }
    assert_eq!(
        query(
            &db,
            "SELECT stream, rows FROM s._observes_loads ORDER BY stream"
        ),
        rows(&[&["_observes_loads", "1"], &["jobs__observes_stage", "1"]])
    );
}

#[test]
fn a_dotted_property_beside_a_nested_object_gets_its_own_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let both =
        r#","a.b":{"type":"string"},"a":{"type":"object","properties":{"b":{"type":"string"}}}"#;
    let out = target(
        &db,
        "merge",
        &[
            schema("t", both),
            record("t", r#"{"id":1,"a.b":"dotted","a":{"b":"nested"}}"#),
            STATE.into(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query(&db, "SELECT a_b, a__b FROM s.t"),
        rows(&[&["dotted", "nested"]])
    );
    // The same through schema evolution.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let out = target(
        &db,
        "merge",
        &[
            schema("t", r#","a.b":{"type":"string"}"#),
            record("t", r#"{"id":1,"a.b":"dotted"}"#),
            schema("t", both),
            record("t", r#"{"id":2,"a.b":"x","a":{"b":"y"}}"#),
            STATE.into(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query(&db, "SELECT id, a_b, a__b FROM s.t ORDER BY id"),
        rows(&[&["1", "dotted", "NULL"], &["2", "x", "y"]])
    );
}

fn last_line(out: &std::process::Output) -> String {
    stderr(out).lines().last().unwrap_or("").to_string()
}

#[test]
fn numbers_are_exact_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let n = r#","n":{"type":"integer"}"#;
    let out = target(
        &db,
        "append",
        &[
            schema("t", n),
            record("t", r#"{"id":1,"n":3.0}"#),
            record("t", r#"{"id":2,"n":9007199254740991.0}"#),
            record("t", r#"{"id":3,"n":9223372036854775807}"#),
            STATE.into(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query(&db, "SELECT id, n FROM s.t ORDER BY id"),
        rows(&[
            &["1", "3"],
            &["2", "9007199254740991"],
            &["3", "9223372036854775807"]
        ])
    );
    let out = target(
        &db,
        "append",
        &[
            schema("t", n),
            record("t", r#"{"id":4,"n":9007199254740993.0}"#),
            STATE.into(),
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        last_line(&out),
        "error: line 2, stream \"t\": field \"n\": number 9007199254740992.0 cannot be read exactly as an integer: written with a fraction or an exponent, only integers below 2^53 are (write it without \".0\")"
    );
    assert_eq!(query(&db, "SELECT COUNT(*) FROM s.t"), rows(&[&["3"]]));
}

#[test]
fn unreadable_values_are_located_in_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let bad = record("t", r#"{"id":2,"n":1e400}"#);
    let out = target(
        &db,
        "append",
        &[schema("t", r#","n":{"type":"number"}"#), bad.clone()],
    );
    assert!(!out.status.success());
    // serde_json stops just past the number; the column counts from the line's start.
    let column = bad.find("1e400").unwrap() + "1e400".len();
    assert_eq!(
        last_line(&out),
        format!("error: line 2, stream \"t\": field \"n\": number out of range at column {column}")
    );

    let deep = format!(
        r#"{{"id":1,"a":{}1{}}}"#,
        r#"{"a":"#.repeat(5000),
        "}".repeat(5000)
    );
    let out = target(
        &db,
        "append",
        &[schema("t", r#","a":{"type":"object"}"#), record("t", &deep)],
    );
    assert!(!out.status.success());
    let last = last_line(&out);
    assert!(
        last.starts_with(
            "error: line 2, stream \"t\": field \"a\": recursion limit exceeded at column "
        ),
        "{last}"
    );

    let bom = format!("\u{feff}{}", schema("t", ""));
    let out = target(
        &db,
        "append",
        &[bom, record("t", r#"{"id":9}"#), STATE.into()],
    );
    assert!(
        out.status.success(),
        "a byte order mark is skipped: {}",
        stderr(&out)
    );

    let leap = schema("leap", r#","ts":{"type":"string","format":"date-time"}"#);
    let out = target(
        &db,
        "append",
        &[
            leap,
            record("leap", r#"{"id":1,"ts":"2016-12-31T23:59:60Z"}"#),
            STATE.into(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query(
            &db,
            "SELECT strftime(ts, '%Y-%m-%d %H:%M:%S.%f') FROM s.leap"
        ),
        rows(&[&["2016-12-31 23:59:59.999999"]])
    );
}

/// A `singer-file` pipeline killed mid-file and run again ends as one uninterrupted run,
/// under append too; a run of the finished file adds nothing; a changed file starts over.
#[test]
fn a_file_is_read_on_from_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut lines = vec![schema("t", r#","v":{"type":"string"}"#)];
    for i in 1..=60 {
        lines.push(record("t", &format!(r#"{{"id":{i},"v":"r{i}"}}"#)));
        if i % 10 == 0 {
            lines.push(format!(r#"{{"type":"STATE","value":{{"at":{i}}}}}"#));
        }
    }
    // Records after the last STATE: the end of the file is a checkpoint too.
    lines.push(record("t", r#"{"id":61,"v":"tail"}"#));
    std::fs::write(root.join("in.singer"), lines.join("\n") + "\n").unwrap();
    std::fs::write(
        root.join("observes.toml"),
        "warehouse = \"duckdb://wh.duckdb\"\n[pipelines.file]\nsource = \"singer-file\"\npath = \"in.singer\"\nschema = \"s\"\nwrite = \"append\"\ncommit_records = 0\n",
    )
    .unwrap();
    let db = root.join("wh.duckdb");
    let run = |failpoint: Option<&str>| {
        let mut cmd = observes();
        cmd.current_dir(root)
            .args(["run", "file", "--config", "observes.toml"]);
        if let Some(point) = failpoint {
            cmd.env("OBSERVES_FAILPOINT", point);
        }
        cmd.output().unwrap()
    };
    // Killed right after the third commit, before the state store heard of it.
    let out = run(Some("after-commit:3"));
    assert!(!out.status.success(), "killed");
    assert_eq!(query(&db, "SELECT COUNT(*) FROM s.t"), rows(&[&["30"]]));
    let out = run(None);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = query(
        &db,
        "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM s.t",
    );
    assert_eq!(
        all,
        rows(&[&["61", "61", "1", "61"]]),
        "no row twice, none lost"
    );
    let out = run(None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query(&db, "SELECT COUNT(*) FROM s.t"),
        rows(&[&["61"]]),
        "nothing new"
    );
    let state: serde_json::Value = serde_json::from_str(
        &query(&db, "SELECT CAST(state AS VARCHAR) FROM s._observes_state")[0][0],
    )
    .unwrap();
    assert_eq!(state["state"], serde_json::json!({"at": 60}));
    assert_eq!(state["singer_file"]["line"], serde_json::json!(lines.len()));

    // A changed file is read from the start, with a warning.
    std::fs::write(root.join("in.singer"), lines[..3].join("\n") + "\n").unwrap();
    let out = observes()
        .current_dir(root)
        .env("OBSERVES_LOG", "warn")
        .args(["run", "file", "--config", "observes.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the file changed since its last run"),
        "{}",
        stderr(&out)
    );
    assert_eq!(query(&db, "SELECT COUNT(*) FROM s.t"), rows(&[&["63"]]));
}

/// `replace` reloads in full: its source starts over every run (handed the last state, a
/// file or a tap would send only what is new, and an empty table would be swapped in).
#[test]
fn a_full_reload_reads_its_source_from_the_start_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let lines = [
        schema("t", ""),
        record("t", r#"{"id":1}"#),
        record("t", r#"{"id":2}"#),
        STATE.to_string(),
    ];
    std::fs::write(root.join("in.singer"), lines.join("\n") + "\n").unwrap();
    std::fs::write(
        root.join("observes.toml"),
        "warehouse = \"duckdb://wh.duckdb\"\n\
         [pipelines.file]\nsource = \"singer-file\"\npath = \"in.singer\"\nschema = \"s\"\nwrite = \"replace\"\n\
         [pipelines.tap]\nsource = \"synthetic\"\nrecords = 50\ncheckpoint_every = 10\nschema = \"ci\"\nwrite = \"replace\"\n",
    )
    .unwrap();
    let db = root.join("wh.duckdb");
    for _ in 0..2 {
        for pipeline in ["file", "tap"] {
            let out = observes()
                .current_dir(root)
                .args(["run", pipeline, "--config", "observes.toml"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        }
        assert_eq!(
            query(
                &db,
                "SELECT (SELECT COUNT(*) FROM s.t), (SELECT COUNT(*) FROM ci.jobs)"
            ),
            rows(&[&["2", "50"]])
        );
    }
}

/// A token in the API URL's query reaches no log line (at debug), no error, no metadata
/// table and no state file, whatever fails.
#[test]
fn a_token_in_the_api_url_reaches_no_sink() {
    let secret = "glpat-SECRET-in-the-query";
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for api_url in [
        format!("http://{closed}/api/v4?private_token={secret}"),
        format!("http://[::1/api/v4?private_token={secret}"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("observes.toml"),
            format!(
                "warehouse = \"duckdb://wh.duckdb\"\n[pipelines.gl]\nsource = \"gitlab\"\nschema = \"gitlab\"\nwrite = \"merge\"\n\
                 [pipelines.gl.settings]\napi_url = {api_url:?}\nprojects = [\"acme/web\"]\ntoken_env = \"TEST_GITLAB_TOKEN\"\n\
                 [pipelines.gl.settings.http]\nmax_attempts = 2\nbackoff_ms = 1\nmax_backoff_ms = 2\n"
            ),
        )
        .unwrap();
        let out = observes()
            .current_dir(root)
            .env("OBSERVES_LOG", "debug")
            .env("TEST_GITLAB_TOKEN", "other")
            .args(["run", "gl", "--config", "observes.toml"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("error"), "{err}");
        assert!(!err.contains(secret), "{err}");
        assert!(!stdout(&out).contains(secret));
        let db = root.join("wh.duckdb");
        if db.exists() {
            for row in query(
                &db,
                "SELECT COALESCE(error, '') FROM gitlab._observes_loads",
            ) {
                assert!(!row[0].contains(secret), "{}", row[0]);
            }
        }
        for entry in walk(root) {
            if entry
                .extension()
                .is_some_and(|e| e == "json" || e == "toml")
                && !entry.ends_with("observes.toml")
            {
                let text = std::fs::read_to_string(&entry).unwrap_or_default();
                assert!(!text.contains(secret), "{}", entry.display());
            }
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The token in the API URL's query, on a run that loads (its fake takes the token from the
/// query, and GitLab's `Link` headers repeat it) and on one that fails, both run by the
/// local queue: no quarantined record, metadata row, queue log, queue file, state file or
/// batch-stability report (webhook included) carries it.
#[test]
fn a_token_in_the_api_url_reaches_no_sink_through_the_queue() {
    use observes_fakes::gitlab::{FakeGitlab, GitlabOptions};
    let secret = "glpat-SECRET-in-the-query";
    let fake = FakeGitlab::start(GitlabOptions {
        projects: 1,
        pipelines_per_project: 3,
        token: secret.into(),
        ..GitlabOptions::default()
    })
    .unwrap();
    // One job the JSON Schema refuses (a duration that is not a number): quarantined.
    let quarantined = {
        let mut world = fake.world();
        world.jobs[0]["duration"] = serde_json::json!("forever");
        world.jobs[0]["id"].as_i64().unwrap()
    };
    let project = fake.project_paths()[0].clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pipeline = |name: &str, api_url: &str| {
        format!(
            "[pipelines.{name}]\nsource = \"gitlab\"\nschema = \"{name}\"\nwrite = \"merge\"\non_invalid = \"quarantine\"\n\
             [pipelines.{name}.settings]\napi_url = {api_url:?}\nprojects = [{project:?}]\ntoken_env = \"TEST_GITLAB_TOKEN\"\n\
             [pipelines.{name}.settings.http]\nmax_attempts = 2\nbackoff_ms = 1\nmax_backoff_ms = 2\n\
             [jobs.\"/observes/etl/{name}\"]\ncommand = [\"observes\", \"run\", \"{name}\"]\nschedule = \"*/15 * * * *\"\n"
        )
    };
    std::fs::write(
        root.join("observes.toml"),
        format!(
            "warehouse = \"duckdb://wh.duckdb\"\n{}{}",
            pipeline("gl", &format!("{}?private_token={secret}", fake.api_url())),
            pipeline(
                "broken",
                &format!("http://{closed}/api/v4?private_token={secret}")
            ),
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = observes()
            .current_dir(root)
            .env("OBSERVES_LOG", "debug")
            // The header's token is wrong: only the query's gets the data.
            .env("TEST_GITLAB_TOKEN", "not-the-token")
            .args(args)
            .output()
            .unwrap();
        assert!(!stderr(&out).contains(secret), "{}", stderr(&out));
        assert!(!stdout(&out).contains(secret), "{}", stdout(&out));
        out
    };
    for now in ["2026-11-27T10:50:00Z", "2026-11-27T11:20:00Z"] {
        assert!(run(&["scheduler", "tick", "--now", now]).status.success());
    }
    run(&["queue", "work"]);
    let out = run(&["queue", "list", "--json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut logs = String::new();
    for r in &runs {
        let out = run(&["queue", "logs", r["id"].as_str().unwrap()]);
        logs.push_str(&stdout(&out));
    }
    let status: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r["job"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        status,
        [
            ("/observes/etl/broken", "failed"),
            ("/observes/etl/gl", "succeeded")
        ],
        "{logs}"
    );
    // The debug logs were written (the failing run's error among them), without the token.
    assert!(logs.contains("DEBUG"), "{logs}");
    assert!(
        logs.contains(
            "error: pipeline \"broken\" failed: source gitlab: stream projects: GET http://"
        ),
        "{logs}"
    );
    assert!(!logs.contains(secret));

    let db = root.join("wh.duckdb");
    assert_eq!(
        query(
            &db,
            "SELECT stream, CAST(record::JSON->>'id' AS BIGINT), reason FROM gl._observes_rejects"
        ),
        rows(&[&[
            "jobs",
            &quarantined.to_string(),
            "field \"duration\": expected number or null, got string \"forever\""
        ]])
    );
    assert_eq!(
        query(&db, "SELECT COUNT(*) > 0 FROM gl.jobs"),
        rows(&[&["true"]])
    );
    for sql in [
        "SELECT reason || record FROM gl._observes_rejects",
        "SELECT COALESCE(error, '') FROM gl._observes_loads",
        "SELECT COALESCE(error, '') FROM broken._observes_loads",
        "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM observes._observes_job_runs",
    ] {
        for row in query(&db, sql) {
            assert!(row.iter().all(|v| !v.contains(secret)), "{sql}: {row:?}");
        }
    }

    // batch-stability, to a webhook: the failure is there, the token is not.
    let (hook, received) = webhook("/hook");
    let out = observes()
        .current_dir(root)
        .env("OBSERVES_STABILITY_WEBHOOK", &hook)
        .args(["job", "batch-stability", "--hours", "100000", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (_, body) = received.join().unwrap();
    let posted: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        posted["failures"]["/observes/etl/broken"][0]["kind"],
        "failed"
    );
    assert!(!body.contains(secret), "{body}");

    // Every file the runs left (queue runs and logs, state, the warehouse's bytes).
    for entry in walk(root) {
        if entry.ends_with("observes.toml") {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{}",
            entry.display()
        );
    }
}

/// A DuckDB file has one writing process at a time: a second load (another pipeline's run
/// on the queue, say) waits for the first one's lock, says so, and then loads; with
/// `lock_wait=0` it fails at once with DuckDB's own message.
#[test]
fn two_loads_into_one_duckdb_file_take_turns() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let url = format!("duckdb://{}", db.display());
    let input = |n: i64| {
        format!(
            "{}\n{}\n{STATE}\n",
            schema("t", ""),
            record("t", &format!(r#"{{"id":{n}}}"#))
        )
    };
    let load = |schema: &str, url: &str| {
        observes()
            .env("OBSERVES_LOG", "info")
            .args(["target", url, "--schema", schema, "--write", "append"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The first load holds the file while its input stays open.
    let mut first = load("first", &url);
    let mut first_in = first.stdin.take().unwrap();
    first_in
        .write_all(format!("{}\n", schema("t", "")).as_bytes())
        .unwrap();
    first_in.flush().unwrap();
    let refused = (0..200)
        .find_map(|_| {
            let out = run_with_input(
                &["target", &format!("{url}?lock_wait=0"), "--schema", "probe"],
                &input(0),
            );
            let err = stderr(&out);
            if err.contains("Could not set lock on file") {
                return Some(err);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            None
        })
        .expect("the first load never took the file");
    assert!(refused.contains("error: "), "{refused}");
    assert!(!refused.contains("waited"), "{refused}");

    let mut second = load("second", &url);
    let mut second_in = second.stdin.take().unwrap();
    second_in.write_all(input(2).as_bytes()).unwrap();
    drop(second_in);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        second.try_wait().unwrap().is_none(),
        "the second load waits for the file"
    );
    first_in
        .write_all(format!("{}\n{STATE}\n", record("t", r#"{"id":1}"#)).as_bytes())
        .unwrap();
    drop(first_in);
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{:?} {}",
        first.status,
        stderr(&first)
    );
    let second = second.wait_with_output().unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("waiting for another process's lock on the warehouse file"),
        "{}",
        stderr(&second)
    );
    assert_eq!(
        query(
            &db,
            "SELECT (SELECT string_agg(id::VARCHAR, ',') FROM first.t), (SELECT string_agg(id::VARCHAR, ',') FROM second.t)"
        ),
        rows(&[&["1", "2"]])
    );
}

#[test]
fn dashboards_on_an_open_address_need_access_control() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("dashboards")).unwrap();
    std::fs::write(
        dir.path().join("dashboards/ci.toml"),
        "title = \"CI\"\n[[panels]]\ntitle = \"N\"\nkind = \"number\"\nsql = \"SELECT 7 AS n\"\n",
    )
    .unwrap();
    let config = dir.path().join("observes.toml");
    let write_config = |access: &str| {
        std::fs::write(
            &config,
            format!("warehouse = \"duckdb://w.duckdb\"\n{access}"),
        )
        .unwrap();
    };
    let serve = |addr: &str, extra: &[&str]| {
        let mut cmd = observes();
        cmd.args(["dashboard", "serve", "--addr", addr])
            .args(extra)
            .arg("--config")
            .arg(&config);
        cmd
    };

    // Access off: loopback only, unless told so.
    write_config("");
    let out = serve("0.0.0.0:0", &[]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        last_line(&out),
        format!(
            "error: refusing to serve dashboards on 0.0.0.0:0 with access off: anyone who reaches it would read every dashboard and CSV. Set [dashboards.access] mode (token, basic or proxy) in {}, serve on 127.0.0.1, or pass --insecure",
            config.display()
        )
    );
    write_config("[dashboards.access]\nmode = \"token\"\n");
    let out = serve("127.0.0.1:0", &[]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("[dashboards.access]: mode token has no users"),
        "{}",
        stderr(&out)
    );

    // A hash made from standard input lets its token in, on any address.
    let token = "obs-3f9c-dashboard-token";
    let hashed = run_with_input(&["dashboard", "hash"], &format!("{token}\n"));
    assert!(hashed.status.success(), "{}", stderr(&hashed));
    let hash = stdout(&hashed).trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    write_config(&format!(
        "[dashboards.access]\nmode = \"token\"\n[[dashboards.access.users]]\nname = \"ci\"\nhash = {hash:?}\n"
    ));
    for extra in [&[][..], &["--insecure"][..]] {
        let (_server, line) = Running::until_line(serve("0.0.0.0:0", extra), "dashboards at ");
        let port = line
            .strip_prefix("dashboards at http://0.0.0.0:")
            .and_then(|rest| rest.strip_suffix(" (access: token)"))
            .unwrap_or_else(|| panic!("{line}"));
        let get = |auth: Option<&str>| {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("Authorization", a)).into_iter().collect();
            observes_testkit::http_get(&format!("127.0.0.1:{port}"), "/d/ci/panel/0.csv", &headers)
        };
        assert_eq!(get(None).status, 401);
        assert_eq!(get(Some("Bearer obs-guess")).status, 401);
        let ok = get(Some(&format!("Bearer {token}")));
        assert_eq!((ok.status, ok.body.as_str()), (200, "n\n7\n"), "{ok:?}");
    }
    let empty = run_with_input(&["dashboard", "hash"], "");
    assert!(!empty.status.success());
    assert_eq!(
        last_line(&empty),
        "error: no secret on standard input (printf %s \"$TOKEN\" | observes dashboard hash)"
    );
}
