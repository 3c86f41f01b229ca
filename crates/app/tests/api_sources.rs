//! The GitLab and Checkly sources end to end: fake API → source → loader → DuckDB, with
//! exact row counts, idempotent re-runs, incremental changes merged by key, faults, and
//! page caps that resume without gaps or duplicates.

mod common;

use std::path::{Path, PathBuf};

use common::*;

use observes_app::{run_pipeline, Config};
use observes_fakes::checkly::{ChecklyOptions, FakeCheckly};
use observes_fakes::gitlab::{FakeGitlab, GitlabOptions};
use observes_fakes::Fault;
use serde_json::Value;

fn gitlab_settings(fake: &FakeGitlab, extra: &str) -> String {
    let projects: Vec<String> = fake
        .project_paths()
        .iter()
        .map(|p| format!("{p:?}"))
        .collect();
    format!(
        "api_url = \"{}\"\nprojects = [{}]\ntoken = \"{}\"\n{extra}\n[pipelines.gitlab.settings.http]\nbackoff_ms = 5\nmax_backoff_ms = 50\nrequests_per_second = 1000\n",
        fake.api_url(),
        projects.join(", "),
        fake.token
    )
}

fn distinct_ids(warehouse: &str, table: &str) -> i64 {
    query(
        warehouse,
        &format!("SELECT COUNT(DISTINCT id) FROM {table}"),
    )[0][0]
        .as_i64()
        .unwrap()
}

/// Rows per GitLab table, as the fake holds them.
fn gitlab_expected(fake: &FakeGitlab) -> Vec<(&'static str, i64)> {
    let w = fake.world();
    vec![
        ("gitlab.projects", w.projects.len() as i64),
        ("gitlab.project_members", w.members.len() as i64),
        ("gitlab.pipelines", w.pipelines.len() as i64),
        ("gitlab.jobs", w.jobs.len() as i64),
        ("gitlab.merge_requests", w.merge_requests.len() as i64),
        ("gitlab.issues", w.issues.len() as i64),
    ]
}

/// Rows per table; a table not created yet has none.
fn table_counts(warehouse: &str, expected: &[(&'static str, i64)]) -> Vec<(&'static str, i64)> {
    let mut wh = observes_warehouse::connect(warehouse).unwrap();
    expected
        .iter()
        .map(|(table, _)| {
            let rows = wh
                .query(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .map_or(0, |r| r[0][0].as_i64().unwrap());
            (*table, rows)
        })
        .collect()
}

fn state_file(setup: &Setup, pipeline: &str) -> Value {
    let path = PathBuf::from(&setup.config.state).join(format!("{pipeline}.json"));
    let text = std::fs::read_to_string(&path)
        .or_else(|_| {
            // The store's file layout is its own; find the pipeline's file.
            let found = walk(Path::new(&setup.config.state))
                .into_iter()
                .find(|p| {
                    p.to_string_lossy().contains(pipeline) && !p.to_string_lossy().contains("lock")
                })
                .expect("a state file");
            std::fs::read_to_string(found)
        })
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn gitlab_loads_every_stream_then_only_the_changes() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let setup = setup("gitlab", "gitlab", "gitlab", &gitlab_settings(&fake, ""));
    let expected = gitlab_expected(&fake);
    assert_eq!(
        expected,
        vec![
            ("gitlab.projects", 2),
            ("gitlab.project_members", 12),
            ("gitlab.pipelines", 60),
            ("gitlab.jobs", 240),
            ("gitlab.merge_requests", 90),
            ("gitlab.issues", 70),
        ],
        "the fake's default world"
    );

    run_pipeline(&setup.config, "gitlab").unwrap();
    assert_eq!(table_counts(&setup.warehouse, &expected), expected);
    // Flattened ids and list rewrites, as the reference schemas describe them.
    let mr = query(
        &setup.warehouse,
        "SELECT author_id, project_id FROM gitlab.merge_requests ORDER BY id LIMIT 1",
    );
    assert_eq!(mr[0][0].as_i64(), Some(4412));
    assert_eq!(mr[0][1].as_i64(), Some(20_741_933));

    // Nothing new: the same rows.
    run_pipeline(&setup.config, "gitlab").unwrap();
    assert_eq!(table_counts(&setup.warehouse, &expected), expected);

    // New and changed items arrive; exactly those changes are merged.
    let (edited, open_job) = {
        let mut w = fake.world();
        let project = w.project_ids()[1];
        let edited = w.touch_merge_request(project, 3);
        w.add_merge_request(project);
        w.add_issue(project);
        w.add_pipeline(project, 3);
        let open_job = w
            .jobs
            .iter()
            .find(|j| j["status"] == "running")
            .and_then(|j| j["id"].as_i64())
            .unwrap();
        w.set_job_status(open_job, "success");
        (edited, open_job)
    };
    let summary = run_pipeline(&setup.config, "gitlab").unwrap();
    let expected_after = gitlab_expected(&fake);
    assert_eq!(
        table_counts(&setup.warehouse, &expected_after),
        expected_after
    );
    assert_eq!(
        expected_after
            .iter()
            .zip(&expected)
            .map(|(a, b)| a.1 - b.1)
            .collect::<Vec<_>>(),
        vec![0, 0, 1, 3, 1, 1]
    );
    let title = query(
        &setup.warehouse,
        &format!("SELECT title FROM gitlab.merge_requests WHERE id = {edited}"),
    );
    assert!(title[0][0].as_str().unwrap().ends_with("(edited)"));
    let status = query(
        &setup.warehouse,
        &format!("SELECT status FROM gitlab.jobs WHERE id = {open_job}"),
    );
    assert_eq!(status[0][0].as_str(), Some("success"));
    // Incremental: the third run did not re-read all 90 merge requests.
    let mrs_read = summary
        .load
        .streams
        .get("merge_requests")
        .map_or(0, |c| c.rows);
    assert!(mrs_read < 20, "re-read {mrs_read} merge requests");

    // Per-project bookmarks in the state.
    let state = state_file(&setup, "gitlab");
    for project in fake.project_paths() {
        assert!(state["bookmarks"]["merge_requests"][&project]["updated_after"].is_string());
        assert!(state["bookmarks"]["jobs"][&project]["floor"].is_i64());
    }
}

#[test]
fn gitlab_recovers_from_faults_without_loss() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let setup = setup(
        "gitlab",
        "gitlab",
        "gitlab",
        &gitlab_settings(&fake, "per_page = 20"),
    );
    fake.server
        .inject("/jobs", Fault::too_many_requests("0"), 2);
    fake.server
        .inject("/merge_requests", Fault::too_many_requests("1"), 1);
    fake.server.inject("/pipelines", Fault::status(500), 1);
    fake.server.inject("/pipelines", Fault::status(502), 1);
    fake.server.inject("/pipelines", Fault::status(503), 1);
    fake.server.inject("/issues", Fault::ResetMidBody, 2);
    fake.server.inject("/members", Fault::TruncatedBody, 1);
    run_pipeline(&setup.config, "gitlab").unwrap();
    let expected = gitlab_expected(&fake);
    assert_eq!(table_counts(&setup.warehouse, &expected), expected);
    assert_eq!(
        fake.server.faults.lock().unwrap().pending(),
        0,
        "every fault was served"
    );
    for (table, rows) in &expected[2..] {
        assert_eq!(
            distinct_ids(&setup.warehouse, table),
            *rows,
            "{table}: no duplicates"
        );
    }
}

#[test]
fn gitlab_fails_clearly_and_the_next_run_resumes_from_the_last_bookmark() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let settings = gitlab_settings(&fake, "per_page = 10\n")
        .replace("\nbackoff_ms = 5\n", "\nbackoff_ms = 1\nmax_attempts = 3\n");
    let setup = setup("gitlab", "gitlab", "gitlab", &settings);
    // The second project's issues: two pages go through, then more 500s than the
    // retries allow.
    let second = fake.project_paths()[1].replace('/', "%2F");
    fake.server
        .inject_after(&format!("{second}/issues"), 2, Fault::status(500), 3);
    let err = run_pipeline(&setup.config, "gitlab").unwrap_err();
    let message = chain(&err).to_string();
    assert!(
        message.starts_with("source gitlab: stream issues: GET http://")
            && message.contains(&format!("/api/v4/projects/{second}/issues?order_by=updated_at&sort=asc&per_page=10&page=1&scope=all&updated_after="))
            && message.ends_with(r#"gave up after 3 attempts: HTTP 500: {"message":"500 fault injected"}"#),
        "{message}"
    );
    // Everything before the failure is committed: all of the first project, and the
    // second project's first two pages of issues (the second page starts again at the
    // first page's last timestamp, so it brings nine new ones).
    assert_eq!(count(&setup.warehouse, "gitlab.issues"), 35 + 10 + 9);
    assert_eq!(count(&setup.warehouse, "gitlab.jobs"), 240);

    // The API recovers; the next run picks up where the committed bookmark says.
    run_pipeline(&setup.config, "gitlab").unwrap();
    let expected = gitlab_expected(&fake);
    assert_eq!(table_counts(&setup.warehouse, &expected), expected);
    assert_eq!(distinct_ids(&setup.warehouse, "gitlab.issues"), 70);
}

#[test]
fn gitlab_rejects_a_bad_token_with_a_clear_error() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let settings = gitlab_settings(&fake, "").replace(&fake.token, "glpat-expired-0000");
    let setup = setup("gitlab", "gitlab", "gitlab", &settings);
    let err = run_pipeline(&setup.config, "gitlab").unwrap_err();
    let message = chain(&err).to_string();
    let first = fake.project_paths()[0].replace('/', "%2F");
    assert_eq!(
        message,
        format!(
            "source gitlab: stream projects: GET {}/projects/{first}: HTTP 401: {{\"message\":\"401 Unauthorized\"}}",
            fake.api_url()
        )
    );
    assert!(!message.contains("glpat-expired-0000"));
    assert_eq!(fake.server.requests(), 1, "a 401 is not retried");
}

#[test]
fn gitlab_page_cap_leaves_a_bookmark_and_later_runs_finish_without_gaps() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let setup = setup(
        "gitlab",
        "gitlab",
        "gitlab",
        &gitlab_settings(&fake, "per_page = 10\nmax_pages = 12\n"),
    );
    let mut runs = 0;
    loop {
        runs += 1;
        run_pipeline(&setup.config, "gitlab").unwrap();
        let expected = gitlab_expected(&fake);
        let counts = table_counts(&setup.warehouse, &expected);
        if counts == expected || runs > 60 {
            break;
        }
        // New work keeps arriving while the backlog is worked off.
        if runs == 3 {
            let mut w = fake.world();
            let project = w.project_ids()[0];
            w.add_pipeline(project, 2);
            w.add_merge_request(project);
        }
    }
    let expected = gitlab_expected(&fake);
    assert!(
        runs > 5,
        "the cap split the work over several runs ({runs})"
    );
    // One more run picks up anything added after the walk passed it.
    run_pipeline(&setup.config, "gitlab").unwrap();
    assert_eq!(table_counts(&setup.warehouse, &expected), expected);
    for (table, rows) in &expected[2..] {
        assert_eq!(distinct_ids(&setup.warehouse, table), *rows, "{table}");
    }
}

#[test]
fn gitlab_oauth_refreshes_an_expired_token_and_saves_the_rotated_refresh_token() {
    let fake = FakeGitlab::start(GitlabOptions {
        oauth: Some(("app-id".into(), "app-secret".into(), "refresh-0".into())),
        // Access tokens die after five requests: several expire mid-run.
        oauth_token_uses: Some(5),
        ..GitlabOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("refresh-token");
    std::fs::write(&token_file, "refresh-0").unwrap();
    let projects: Vec<String> = fake
        .project_paths()
        .iter()
        .map(|p| format!("{p:?}"))
        .collect();
    let settings = format!(
        "api_url = \"{}\"\nprojects = [{}]\nstreams = [\"projects\", \"merge_requests\"]\nper_page = 10\n\
         [pipelines.gl.settings.oauth]\ntoken_url = \"{}\"\nclient_id = \"app-id\"\nclient_secret_env = \"OBSERVES_TEST_GL_SECRET\"\nrefresh_token_file = {:?}\n",
        fake.api_url(),
        projects.join(", "),
        fake.oauth_token_url(),
        token_file.display().to_string()
    );
    // SAFETY: only this test reads or writes this variable.
    unsafe { std::env::set_var("OBSERVES_TEST_GL_SECRET", "app-secret") };
    let setup = setup("gitlab", "gl", "gitlab", &settings);
    run_pipeline(&setup.config, "gl").unwrap();
    assert_eq!(count(&setup.warehouse, "gitlab.merge_requests"), 90);
    let issued = fake.world().tokens_issued();
    assert!(issued >= 3, "tokens were renewed mid-run ({issued})");
    let rotated = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(
        Some(rotated),
        fake.world().refresh_token(),
        "the rotated token was saved"
    );
    // Tokens expire between runs too: the next run refreshes with the saved token.
    fake.world().expire_access_tokens();
    run_pipeline(&setup.config, "gl").unwrap();
    assert_eq!(count(&setup.warehouse, "gitlab.merge_requests"), 90);
}

fn checkly_settings(fake: &FakeCheckly, pipeline: &str, extra: &str) -> String {
    format!(
        "api_url = \"{}\"\naccount_id = \"{}\"\napi_key = \"{}\"\nresults_requests_per_second = 1000\n{extra}\n[pipelines.{pipeline}.settings.http]\nbackoff_ms = 5\nmax_backoff_ms = 50\nrequests_per_second = 1000\n",
        fake.api_url(),
        fake.account_id,
        fake.api_key
    )
}

fn checkly_expected(fake: &FakeCheckly) -> Vec<(&'static str, i64)> {
    let w = fake.world();
    vec![
        ("checkly.checks", w.checks.len() as i64),
        ("checkly.check_groups", w.groups.len() as i64),
        ("checkly.check_statuses", w.checks.len() as i64),
        ("checkly.alert_channels", w.alert_channels.len() as i64),
        ("checkly.dashboards", w.dashboards.len() as i64),
        ("checkly.variables", w.variables.len() as i64),
        (
            "checkly.maintenance_windows",
            w.maintenance_windows.len() as i64,
        ),
        ("checkly.snippets", w.snippets.len() as i64),
        ("checkly.check_results", w.results.len() as i64),
        ("checkly.check_alerts", w.alerts.len() as i64),
    ]
}

#[test]
fn checkly_loads_every_stream_all_results_and_only_new_ones_later() {
    let fake = FakeCheckly::start(ChecklyOptions::default()).unwrap();
    let clock = fake.world().clock;
    let start = clock - chrono::Duration::days(3);
    // The source reads up to `end_date`: the fake's clock stands in for the real one.
    let settings = |end: chrono::DateTime<chrono::Utc>| {
        checkly_settings(
            &fake,
            "checkly",
            &format!(
                "start_date = \"{}\"\nend_date = \"{}\"",
                start.to_rfc3339(),
                end.to_rfc3339()
            ),
        )
    };
    let mut setup = setup("checkly", "checkly", "checkly", &settings(clock));
    let expected = checkly_expected(&fake);
    // 5 checks every 30 minutes for 2 days.
    assert_eq!(expected[8], ("checkly.check_results", 480));
    run_pipeline(&setup.config, "checkly").unwrap();
    let counts = table_counts(&setup.warehouse, &expected);
    assert_eq!(counts, expected);
    // Reporting: one row per check per finished day since the start date.
    let days = (clock.date_naive() - start.date_naive()).num_days();
    assert_eq!(count(&setup.warehouse, "checkly.reporting"), 5 * days);
    // Secret variables' values are never stored; the others are.
    let hidden = query(
        &setup.warehouse,
        "SELECT COUNT(*) FILTER (WHERE value IS NULL), COUNT(*) FILTER (WHERE locked) FROM checkly.variables",
    );
    assert_eq!(hidden[0][0].as_i64(), Some(2));
    assert_eq!(hidden[0][1].as_i64(), Some(2));
    let leaked = query(
        &setup.warehouse,
        "SELECT COUNT(*) FILTER (WHERE value LIKE 'hunter%'), COUNT(*) FILTER (WHERE value = 'bot') FROM checkly.checks__environment_variables",
    );
    assert_eq!(
        leaked[0][0].as_i64(),
        Some(0),
        "secret check variables are nulled"
    );
    assert_eq!(leaked[0][1].as_i64(), Some(5), "the others are kept");

    // Nothing new.
    run_pipeline(&setup.config, "checkly").unwrap();
    let counts = table_counts(&setup.warehouse, &expected);
    assert_eq!(counts, expected);

    // Two more hours of runs: exactly those results are added.
    let later = clock + chrono::Duration::hours(2);
    fake.world().run_until(later);
    let expected = checkly_expected(&fake);
    assert_eq!(expected[8], ("checkly.check_results", 500));
    std::fs::write(
        &setup.config.path,
        std::fs::read_to_string(&setup.config.path)
            .unwrap()
            .replace(&clock.to_rfc3339(), &later.to_rfc3339()),
    )
    .unwrap();
    setup.config = Config::load(&setup.config.path).unwrap();
    let summary = run_pipeline(&setup.config, "checkly").unwrap();
    let counts = table_counts(&setup.warehouse, &expected);
    assert_eq!(counts, expected);
    assert_eq!(distinct_ids(&setup.warehouse, "checkly.check_results"), 500);
    let results_read = summary
        .load
        .streams
        .get("check_results")
        .map_or(0, |c| c.rows);
    assert!(
        results_read < 60,
        "only the new windows were read ({results_read})"
    );
}

#[test]
fn checkly_faults_and_page_caps_lose_nothing() {
    let fake = FakeCheckly::start(ChecklyOptions::default()).unwrap();
    let start = fake.world().clock - chrono::Duration::days(3);
    let setup = setup(
        "checkly",
        "ck",
        "checkly",
        &checkly_settings(
            &fake,
            "ck",
            &format!("start_date = \"{}\"\nmax_pages = 25", start.to_rfc3339()),
        ),
    );
    fake.server
        .inject("/v1/check-results/", Fault::too_many_requests("0"), 3);
    fake.server
        .inject("/v1/check-results/", Fault::status(503), 2);
    fake.server.inject("/v1/checks", Fault::ResetMidBody, 1);
    fake.server
        .inject("/v1/check-alerts", Fault::TruncatedBody, 1);
    let expected = checkly_expected(&fake);
    let mut runs = 0;
    while runs < 40 {
        runs += 1;
        run_pipeline(&setup.config, "ck").unwrap();
        let results = count(&setup.warehouse, "checkly.check_results");
        if results == expected[8].1
            && count(&setup.warehouse, "checkly.check_alerts") == expected[9].1
        {
            break;
        }
    }
    assert!(runs > 1, "the cap split the work");
    let counts = table_counts(&setup.warehouse, &expected);
    assert_eq!(counts, expected);
    assert_eq!(distinct_ids(&setup.warehouse, "checkly.check_results"), 480);
}
