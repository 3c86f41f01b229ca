//! A shipped REST definition (Bugsnag) loaded into DuckDB from its fake, through the real
//! binary: a re-run adds nothing, changed items load exactly the changes, the faults the
//! GitLab source survives (429 with Retry-After, a burst of 5xx, a reset mid-page, a
//! truncated body) change nothing in what is loaded, a refused token fails naming the
//! stream and never showing the token, and a page cap resumes with no gap and no
//! duplicate, under append. The same for the windowed (Delighted) and keyed-by-day
//! (Matomo) definitions; OAuth2 tokens expiring mid-run; SIGKILL anywhere in a load; and
//! a stream's own JSON Schema.

mod common;
use common::*;

use observes_fakes::rest::FakeRest;
use observes_fakes::Fault;
use observes_sources::rest::{Definition, SHIPPED};

struct Setup {
    dir: tempfile::TempDir,
    fake: FakeRest,
}

fn shipped(name: &str) -> &'static str {
    SHIPPED.iter().find(|(n, _)| *n == name).unwrap().1
}

fn bugsnag() -> &'static str {
    shipped("bugsnag")
}

/// A folder with the Bugsnag definition, a config for its fake and an observes.toml.
fn setup(write: &str, extra: &str) -> Setup {
    setup_of("bugsnag", bugsnag(), write, extra)
}

/// A folder with a definition `name`, a config for its fake, and an observes.toml
/// loading it into the schema `name`.
fn setup_of(name: &str, text: &str, write: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let definition = Definition::parse(&file, text).unwrap();
    let fake = FakeRest::start(definition, 1, 0, 3).unwrap();
    std::fs::write(
        dir.path().join(format!("{name}-config.toml")),
        format!("{extra}{}", fake.settings(&format!("{name}.toml"))),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("observes.toml"),
        format!(
            "warehouse = \"duckdb://wh.duckdb\"\n[pipelines.{name}]\nsource = \"rest\"\nconfig = \"{name}-config.toml\"\nschema = \"{name}\"\nwrite = \"{write}\"\n"
        ),
    )
    .unwrap();
    Setup { dir, fake }
}

impl Setup {
    fn run(&self) -> std::process::Output {
        self.run_pipeline("bugsnag")
    }

    fn run_pipeline(&self, name: &str) -> std::process::Output {
        observes()
            .args(["run", name, "--json", "--config"])
            .arg(self.dir.path().join("observes.toml"))
            .output()
            .unwrap()
    }

    fn ok(&self) -> serde_json::Value {
        let out = self.run();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        query(&self.dir.path().join("wh.duckdb"), sql)
    }

    /// The tables' `id` and `name` in a fixed order, with `more` columns.
    fn tables(&self, schema: &str, tables: &[&str], more: &str) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        for table in tables {
            all.extend(self.rows(&format!(
                "SELECT '{table}', CAST(id AS VARCHAR), name{more} FROM {schema}.{table} ORDER BY id{more}"
            )));
        }
        all
    }

    /// The pipeline's committed state.
    fn state(&self, schema: &str) -> serde_json::Value {
        let rows = self.rows(&format!(
            "SELECT CAST(state AS VARCHAR) FROM {schema}._observes_state"
        ));
        serde_json::from_str(&rows[0][0]).unwrap()
    }

    /// Replaces a setting in a service's config (the fake wrote it), as a user edits it.
    fn edit_config(&self, service: &str, from: &str, to: &str) {
        let file = self.dir.path().join(format!("{service}-config.toml"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(from), "{from} in {text}");
        std::fs::write(&file, text.replace(from, to)).unwrap();
    }

    /// Adds lines to the pipeline's section of observes.toml (the file's last).
    fn pipeline_settings(&self, lines: &str) {
        let file = self.dir.path().join("observes.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{text}{lines}")).unwrap();
    }

    /// Every table's rows, in a fixed order (what must not change).
    fn everything(&self) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        for table in ["organizations", "projects", "errors", "events"] {
            all.extend(self.rows(&format!(
                "SELECT '{table}', CAST(id AS VARCHAR), name FROM bugsnag.{table} ORDER BY id"
            )));
        }
        all
    }
}

#[test]
fn a_shipped_definition_loads_from_its_fake_and_reruns_load_only_changes() {
    let s = setup("merge", "");
    s.ok();
    assert_eq!(
        s.rows("SELECT (SELECT count(*) FROM bugsnag.organizations), (SELECT count(*) FROM bugsnag.projects), (SELECT count(*) FROM bugsnag.errors), (SELECT count(*) FROM bugsnag.events)"),
        rows(&[&["3", "9", "27", "27"]])
    );
    // The project's notifier key is dropped; the parent's id comes along.
    let columns = columns_except(
        &format!("duckdb://{}", s.dir.path().join("wh.duckdb").display()),
        "bugsnag",
        "projects",
        &[],
    );
    assert!(!columns.iter().any(|c| c == "api_key"), "{columns:?}");
    assert!(columns.iter().any(|c| c == "_parent_id"), "{columns:?}");
    let before = s.everything();
    s.ok();
    assert_eq!(s.everything(), before, "a re-run changes nothing");

    // Two errors change (name, last_seen): exactly those rows change.
    s.fake.world().touch(s.fake.definition(), "errors", 2);
    s.ok();
    let changed = s.rows("SELECT count(*) FROM bugsnag.errors WHERE name LIKE 'changed %'");
    assert_eq!(changed, rows(&[&["2"]]));
    let after = s.everything();
    let differing = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 2);
}

#[test]
fn the_toolkits_faults_change_nothing_in_what_a_definition_loads() {
    let clean = setup("merge", "");
    clean.ok();
    let expected = clean.everything();

    let s = setup("merge", "");
    {
        let mut faults = s.fake.server.faults.lock().unwrap();
        faults.inject("/organizations", Fault::too_many_requests("1"), 1);
        faults.inject("/errors", Fault::status(503), 3);
        faults.inject("/events", Fault::ResetMidBody, 1);
        faults.inject("/projects?", Fault::TruncatedBody, 1);
    }
    s.ok();
    assert_eq!(s.everything(), expected);
    assert_eq!(
        s.fake.server.faults.lock().unwrap().pending(),
        0,
        "every fault was served"
    );

    // A token the API refuses: the run fails naming the stream, never the token, and
    // what was committed stays.
    s.edit_config(
        "bugsnag",
        "token = \"fake-token-1\"",
        "token = \"expired-t0ken\"",
    );
    let out = s.run();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("stream organizations") && err.contains("401"),
        "{err}"
    );
    assert!(
        !err.contains("expired-t0ken") && !stdout(&out).contains("expired-t0ken"),
        "{err}"
    );
    assert_eq!(s.everything(), expected);
}

#[test]
fn a_page_cap_resumes_next_run_with_no_gap_and_no_duplicate() {
    let s = setup("append", "max_pages = 4\n");
    let mut runs = 0;
    loop {
        s.ok();
        runs += 1;
        let state = s.rows("SELECT state FROM bugsnag._observes_state");
        let done = !state[0][0].contains("\"stream\"");
        if done || runs == 30 {
            break;
        }
    }
    assert!(runs > 1, "the cap stopped the first run");
    // Under append every record loaded once is one row: the child streams, read once per
    // parent, have exactly their records.
    assert_eq!(
        s.rows("SELECT (SELECT count(*) FROM bugsnag.errors), (SELECT count(DISTINCT id) FROM bugsnag.errors), (SELECT count(*) FROM bugsnag.events), (SELECT count(DISTINCT id) FROM bugsnag.events)"),
        rows(&[&["27", "27", "27", "27"]])
    );
}

/// The README's "fifth service" is one file: it passes the checks and loads from its fake.
#[test]
fn the_readmes_fifth_service_is_one_file_that_loads() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("```toml\n# sources/rest/acme.toml\n")
        .expect("the README's example");
    let body = &readme[start + "```toml\n".len()..];
    let text = &body[..body.find("```").unwrap()];
    let s = setup_of("acme", text, "merge", "");
    let out = s.run_pipeline("acme");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        s.rows("SELECT (SELECT count(*) FROM acme.teams), (SELECT count(*) FROM acme.tickets), (SELECT count(DISTINCT _parent_id) FROM acme.tickets)"),
        rows(&[&["3", "9", "3"]])
    );
}

const DELIGHTED: [&str; 4] = ["survey_responses", "people", "unsubscribes", "bounces"];

/// Delighted's streams are read in time windows: the first run reads from the start date
/// to now, the state says where it got to, a re-run reads only the last hour again (and
/// changes nothing), and new and changed responses load exactly.
#[test]
fn a_windowed_definition_loads_exactly_the_changes() {
    let s = setup_of("delighted", shipped("delighted"), "merge", "");
    let before_run = chrono::Utc::now();
    let out = s.run_pipeline("delighted");
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = s.rows(
        "SELECT (SELECT count(*) FROM delighted.survey_responses), (SELECT count(*) FROM delighted.people), (SELECT count(*) FROM delighted.unsubscribes), (SELECT count(*) FROM delighted.bounces)",
    );
    assert_eq!(counts, rows(&[&["3", "3", "3", "3"]]));
    // Every stream's bookmark is the end of its last window: now, when the run read.
    let state = s.state("delighted");
    for stream in DELIGHTED {
        let mark = &state["bookmarks"][stream];
        assert_eq!(mark.as_object().unwrap().len(), 1, "{stream}: {mark}");
        let end =
            chrono::DateTime::parse_from_rfc3339(mark["window_end"].as_str().unwrap()).unwrap();
        let lag = end.with_timezone(&chrono::Utc) - before_run;
        assert!(lag.num_seconds().abs() < 60, "{stream}: {mark}");
    }
    // Times are Unix seconds, as the API writes them.
    let types = s.rows(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'delighted' AND table_name = 'survey_responses' AND column_name = 'updated_at'",
    );
    assert_eq!(types, rows(&[&["BIGINT"]]));
    let before = s.tables("delighted", &DELIGHTED, "");
    let out = s.run_pipeline("delighted");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        s.tables("delighted", &DELIGHTED, ""),
        before,
        "a re-run changes nothing"
    );

    // Two responses change (a second ago) and one is new: exactly those rows.
    {
        let mut world = s.fake.world();
        world.touch(s.fake.definition(), "survey_responses", 2);
    }
    let out = s.run_pipeline("delighted");
    assert!(out.status.success(), "{}", stderr(&out));
    let after = s.tables("delighted", &DELIGHTED, "");
    assert_eq!(after.len(), before.len());
    let differing: Vec<_> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert_eq!(differing.len(), 2, "{differing:?}");
    assert!(differing
        .iter()
        .all(|(_, b)| b[0] == "survey_responses" && b[2].starts_with("changed ")));
}

/// A page cap inside a window: each run goes on at the window and page it stopped at, and
/// under append every record is one row.
#[test]
fn a_page_cap_inside_a_window_resumes_with_no_gap_and_no_duplicate() {
    let s = setup_of(
        "delighted",
        shipped("delighted"),
        "append",
        "max_pages = 1\n",
    );
    let mut runs = 0;
    loop {
        let out = s.run_pipeline("delighted");
        assert!(out.status.success(), "{}", stderr(&out));
        runs += 1;
        let state = s.state("delighted");
        if runs == 1 {
            // The first window (from the start date, 30 days ago) is read; the run stopped
            // before the next, and goes on there (not a lookback before it).
            let midnight = format!("{}T00:00:00Z", chrono::Utc::now().date_naive());
            assert_eq!(
                state["bookmarks"]["survey_responses"],
                serde_json::json!({"window_end": midnight, "window_start": midnight})
            );
        }
        let done = state["bookmarks"]["_resume"].is_null();
        if done || runs == 40 {
            break;
        }
    }
    // Two windows a stream (the start date's month, and today), one page each.
    assert_eq!(runs, 8);
    for stream in DELIGHTED {
        assert_eq!(
            s.rows(&format!(
                "SELECT count(*), count(DISTINCT id) FROM delighted.{stream}"
            )),
            rows(&[&["3", "3"]]),
            "{stream}"
        );
    }
}

const MATOMO: [&str; 2] = ["visits_summary", "page_urls"];

/// Matomo answers a range of days as an object keyed by day: each day's report becomes
/// records with its date and site; recent days are read again and only what changed
/// changes; a refused token (a 200 with "result": "error") fails the run with Matomo's
/// message, never the token.
#[test]
fn a_definition_keyed_by_day_loads_each_days_report() {
    let s = setup_of("matomo", shipped("matomo"), "merge", "");
    let out = s.run_pipeline("matomo");
    assert!(out.status.success(), "{}", stderr(&out));
    let today = chrono::Utc::now().date_naive();
    let day = |back: i64| (today - chrono::Duration::days(back)).to_string();
    // Three sites, each with the last three days.
    assert_eq!(s.rows("SELECT count(*) FROM matomo.sites"), rows(&[&["3"]]));
    for table in MATOMO {
        let days = s.rows(&format!(
            "SELECT CAST(date AS VARCHAR), count(*), count(DISTINCT _parent_idsite) FROM matomo.{table} GROUP BY date ORDER BY date"
        ));
        assert_eq!(
            days,
            vec![
                vec![day(2), "3".into(), "3".into()],
                vec![day(1), "3".into(), "3".into()],
                vec![day(0), "3".into(), "3".into()],
            ],
            "{table}"
        );
    }
    let more = ", CAST(date AS VARCHAR), CAST(_parent_idsite AS VARCHAR)";
    let before = s.tables("matomo", &MATOMO, more);
    let out = s.run_pipeline("matomo");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        s.tables("matomo", &MATOMO, more),
        before,
        "a re-run changes nothing"
    );

    // Today's and yesterday's figures of the last site change: exactly those rows.
    s.fake
        .world()
        .touch(s.fake.definition(), "visits_summary", 2);
    let out = s.run_pipeline("matomo");
    assert!(out.status.success(), "{}", stderr(&out));
    let after = s.tables("matomo", &MATOMO, more);
    let differing: Vec<_> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert_eq!(differing.len(), 2, "{differing:?}");
    let mut dates: Vec<&str> = differing.iter().map(|(_, b)| b[3].as_str()).collect();
    dates.sort();
    assert_eq!(dates, [day(1), day(0)]);

    s.edit_config(
        "matomo",
        "token = \"fake-token-1\"",
        "token = \"revoked-t0ken\"",
    );
    let out = s.run_pipeline("matomo");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("stream sites")
            && err.contains("the answer is an error: You can't access this resource as it requires view access."),
        "{err}"
    );
    assert!(
        !err.contains("revoked-t0ken") && !stdout(&out).contains("revoked-t0ken"),
        "{err}"
    );
    assert_eq!(s.tables("matomo", &MATOMO, more), after);
}

const OAUTH: &str = r#"about = "Example: teams and their members, behind OAuth2."

[settings]
client_id = "the OAuth client's id"
client_secret = "its secret"
refresh_token = "a refresh token"

[client]
base_url = "https://api.example.com/v1"
auth = { type = "oauth2", token_url = "/oauth/token", client_id = "{config.client_id}", client_secret = "{config.client_secret}", refresh_token = "{config.refresh_token}" }
paginator = { type = "page_number", limit = 2 }

[[streams]]
name = "teams"
path = "/teams"
key = ["id"]
schema = { type = "object", properties = { id = { type = "integer" }, name = { type = "string" }, region = { type = ["string", "null"] } } }

[[streams]]
name = "members"
parent = "teams"
path = "/teams/{parent.id}/members"
key = ["id"]
"#;

/// An OAuth2 definition: access tokens that expire every two requests are renewed with
/// the refresh grant and the load is the same as with tokens that never expire; a refresh
/// token the server refuses fails the run without printing a secret. The stream with a
/// JSON Schema gets its declared columns and types.
#[test]
fn oauth2_tokens_expiring_mid_run_change_nothing_in_what_loads() {
    let clean = setup_of("team", OAUTH, "merge", "");
    let out = clean.run_pipeline("team");
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = clean.tables("team", &["teams", "members"], "");
    assert_eq!(expected.len(), 3 + 9);
    assert_eq!(clean.fake.world().tokens_issued, 1);

    let s = setup_of("team", OAUTH, "merge", "");
    s.fake.world().expire_tokens_after(2);
    let out = s.run_pipeline("team");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.tables("team", &["teams", "members"], ""), expected);
    // 2 pages of teams and 2 of each team's members: 8 requests, 2 a token.
    assert_eq!(s.fake.world().tokens_issued, 4);

    // The schema's columns, the one no record has included.
    let columns = s.rows(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'team' AND table_name = 'teams' AND column_name NOT LIKE '\\_observes%' ESCAPE '\\' ORDER BY column_name",
    );
    assert_eq!(
        columns,
        rows(&[
            &["id", "BIGINT"],
            &["name", "VARCHAR"],
            &["region", "VARCHAR"]
        ])
    );

    s.edit_config(
        "team",
        "refresh_token = \"fake-refresh_token-1\"",
        "refresh_token = \"stale-r3fresh\"",
    );
    let out = s.run_pipeline("team");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("refreshing the OAuth2 access token") && err.contains("400"),
        "{err}"
    );
    for secret in ["stale-r3fresh", "fake-client_secret-1"] {
        assert!(
            !err.contains(secret) && !stdout(&out).contains(secret),
            "{err}"
        );
    }
}

/// `observes run` of a definition killed with SIGKILL anywhere in a load, then run again.
/// Under merge the tables are those of a run never interrupted. Under append the
/// incremental streams (errors, events) hold each record exactly once; the full-table
/// streams (organizations, projects) are read whole by every run, so a second run adds
/// their rows again, interrupted or not.
#[test]
fn a_rest_pipeline_survives_sigkill_anywhere() {
    let incremental = |s: &Setup| {
        let mut all = Vec::new();
        for table in ["errors", "events"] {
            all.extend(s.rows(&format!(
                "SELECT '{table}', CAST(id AS VARCHAR), name FROM bugsnag.{table} ORDER BY id"
            )));
        }
        all
    };
    for mode in ["merge", "append"] {
        let clean = setup(mode, "");
        clean.ok();
        let expected = clean.everything();
        for point in [
            "flushed:3",
            "before-commit:5",
            "after-commit:8",
            "before-commit:15",
            "after-commit:20",
        ] {
            let s = setup(mode, "");
            s.pipeline_settings("commit_records = 0\nbatch_rows = 5\n");
            let mut run = observes();
            run.args(["run", "bugsnag", "--json", "--config"])
                .arg(s.dir.path().join("observes.toml"));
            run_killed_at(run, point);
            s.ok();
            if mode == "merge" {
                assert_eq!(s.everything(), expected, "{mode} {point}");
            } else {
                assert_eq!(incremental(&s), incremental(&clean), "{mode} {point}");
            }
        }
    }
}

/// `observes fake-api rest --definition DEF --fault …` from the command line, as a user
/// tries a definition against faults: the fake says what it armed, and `observes tap
/// rest` against it emits the same records as against a fake without faults.
#[test]
fn the_fake_api_commands_faults_change_nothing_in_what_the_tap_emits() {
    use std::io::BufRead;
    let definition =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sources/rest/bugsnag.toml");
    let dir = tempfile::tempdir().unwrap();
    let records_through = |faults: &[&str]| -> (Vec<String>, Vec<String>, usize) {
        let mut cmd = observes();
        cmd.args(["fake-api", "rest", "--port", "0", "--definition"])
            .arg(&definition);
        for fault in faults {
            cmd.args(["--fault", fault]);
        }
        let mut fake = Running(
            cmd.stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn observes"),
        );
        let (lines_tx, lines) = std::sync::mpsc::channel();
        let piped = fake.0.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(piped).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Everything is printed before it serves; the settings end when the lines stop.
        let mut printed = vec![lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the fake starts")];
        while let Ok(line) = lines.recv_timeout(std::time::Duration::from_millis(500)) {
            printed.push(line);
        }
        let settings_at = printed
            .iter()
            .position(|l| l.starts_with("a config for"))
            .expect("the fake prints its settings")
            + 1;
        let config = dir.path().join(format!("config-{}.toml", faults.len()));
        std::fs::write(&config, printed[settings_at..].join("\n")).unwrap();
        let out = observes()
            .args(["tap", "rest", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let mut records: Vec<String> = stdout(&out)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["type"] == "RECORD")
            .map(|m| format!("{} {}", m["stream"], m["record"]))
            .collect();
        records.sort();
        let retries = stderr(&out).matches("WARN observes_http: retrying").count();
        (printed[..settings_at].to_vec(), records, retries)
    };
    let (_, clean, retries) = records_through(&[]);
    assert_eq!(retries, 0);
    assert!(clean.len() > 20, "{clean:?}");
    let (said, faulty, retries) = records_through(&[
        "/organizations=429",
        "/errors=503*3",
        "/events=reset",
        "/projects?=truncated",
    ]);
    assert_eq!(faulty, clean);
    // Each fault was served, and retried once it was.
    assert_eq!(retries, 6);
    let armed: Vec<&String> = said.iter().filter(|l| l.starts_with("fault:")).collect();
    assert_eq!(
        armed,
        [
            r#"fault: the next 1 request(s) with "/organizations" get status 429 with Retry-After: 1"#,
            r#"fault: the next 3 request(s) with "/errors" get status 503"#,
            r#"fault: the next 1 request(s) with "/events" get a connection reset mid-body"#,
            r#"fault: the next 1 request(s) with "/projects?" get a truncated body"#,
        ]
    );

    let out = observes()
        .args(["fake-api", "rest", "--port", "0", "--fault", "/errors=5O3"])
        .arg("--definition")
        .arg(&definition)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"fault "/errors=5O3": "5O3" is not a fault: write PATH=FAULT[*TIMES], FAULT a status such as 503, reset or truncated: /errors=503*3"#),
        "{}",
        stderr(&out)
    );
}
