//! A shipped REST definition (Bugsnag) loaded into DuckDB from its fake, through the real
//! binary: a re-run adds nothing, changed items load exactly the changes, the faults the
//! GitLab source survives (429 with Retry-After, a burst of 5xx, a reset mid-page, a
//! truncated body) change nothing in what is loaded, a refused token fails naming the
//! stream and never showing the token, and a page cap resumes with no gap and no
//! duplicate, under append.

mod common;
use common::*;

use observes_fakes::rest::FakeRest;
use observes_fakes::Fault;
use observes_sources::rest::{Definition, SHIPPED};

struct Setup {
    dir: tempfile::TempDir,
    fake: FakeRest,
}

fn bugsnag() -> &'static str {
    SHIPPED.iter().find(|(n, _)| *n == "bugsnag").unwrap().1
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
    let config = s.dir.path().join("bugsnag-config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("token = \"fake-token-1\"", "token = \"expired-t0ken\""),
    )
    .unwrap();
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
