//! The catalogue, the scheduler and the local queue through the real binary: ticks at
//! chosen instants submit what fell due, the queue runs it (a pipeline, a failing job),
//! runs land in the warehouse's observes._observes_job_runs, and batch-stability reports
//! the failure.

mod common;

use common::*;

const CONFIG: &str = r#"
warehouse = "duckdb://wh.duckdb"

[pipelines.jobs]
source = "synthetic"
records = 20
schema = "ci"

[scheduler]
timezone = "America/Bogota"

[jobs."/observes/etl/ci-jobs"]
command = ["observes", "run", "jobs"]
schedule = "*/15 * * * *"
size = "nano"

[jobs."/observes/job/broken"]
command = ["sh", "-c", "echo about to fail; exit 4"]
schedule = "cron(0 6 ? * MON-FRI *)"
catch_up = "all"
attempts = 2
"#;

fn run(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = observes().current_dir(dir).args(args).output().unwrap();
    (out.status.success(), stdout(&out), stderr(&out))
}

#[test]
fn ticks_submit_the_queue_runs_and_stability_reports() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("observes.toml"), CONFIG).unwrap();

    let (ok, text, err) = run(root, &["job", "list"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("/observes/etl/ci-jobs "), "{text}");
    assert!(lines[0].contains("*/15 * * * *") && lines[0].ends_with("observes run jobs"));

    let (ok, text, _) = run(
        root,
        &[
            "schedule",
            "next",
            "/observes/job/broken",
            "-n",
            "3",
            "--after",
            "2026-11-27T12:00:00Z",
        ],
    );
    assert!(ok);
    assert_eq!(
        text,
        "/observes/job/broken cron(0 6 ? * MON-FRI *) (America/Bogota):\n  2026-11-30T06:00:00-05:00\n  2026-12-01T06:00:00-05:00\n  2026-12-02T06:00:00-05:00\n"
    );

    // Friday 2026-11-27 05:50 in Bogotá: the first tick starts the schedules.
    let (ok, text, err) = run(
        root,
        &["scheduler", "tick", "--now", "2026-11-27T10:50:00Z"],
    );
    assert!(ok, "{err}");
    assert_eq!(text, "0 runs submitted\n");
    let (ok, text, _) = run(
        root,
        &[
            "scheduler",
            "tick",
            "--dry-run",
            "--now",
            "2026-11-27T11:20:00Z",
        ],
    );
    assert!(ok);
    assert_eq!(
        text,
        "would submit /observes/etl/ci-jobs@2026-11-27T11:15:00Z\nwould submit /observes/job/broken@2026-11-27T11:00:00Z\n"
    );
    let (ok, text, _) = run(
        root,
        &["scheduler", "tick", "--now", "2026-11-27T11:20:00Z"],
    );
    assert!(ok);
    assert_eq!(
        text,
        "submitted /observes/etl/ci-jobs@2026-11-27T11:15:00Z\nsubmitted /observes/job/broken@2026-11-27T11:00:00Z\n2 runs submitted\n"
    );
    // The same tick again, and an earlier one: nothing.
    for now in ["2026-11-27T11:20:00Z", "2026-11-27T11:19:00Z"] {
        let (ok, text, _) = run(root, &["scheduler", "tick", "--now", now]);
        assert!(ok);
        assert_eq!(text, "0 runs submitted\n");
    }

    let (ok, _, err) = run(root, &["queue", "work"]);
    assert!(ok, "{err}");
    let (ok, text, _) = run(root, &["queue", "list", "--json"]);
    assert!(ok);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let summary: Vec<(String, String, usize)> = runs
        .iter()
        .map(|r| {
            (
                r["job"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
                r["attempts"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "/observes/etl/ci-jobs".to_string(),
                "succeeded".to_string(),
                1
            ),
            ("/observes/job/broken".to_string(), "failed".to_string(), 2),
        ]
    );
    let broken_id = runs[1]["id"].as_str().unwrap();
    let (ok, text, _) = run(root, &["queue", "logs", broken_id]);
    assert!(ok);
    assert_eq!(
        text,
        "== attempt 1\nabout to fail\n== attempt 2\nabout to fail\n"
    );

    // The pipeline ran, and both runs are in the warehouse.
    let db = root.join("wh.duckdb");
    assert_eq!(query(&db, "SELECT COUNT(*) FROM ci.jobs"), rows(&[&["20"]]));
    assert_eq!(
        query(
            &db,
            "SELECT job, status, attempts, coalesce(CAST(exit_code AS VARCHAR), '-') FROM observes._observes_job_runs ORDER BY job"
        ),
        rows(&[
            &["/observes/etl/ci-jobs", "succeeded", "1", "0"],
            &["/observes/job/broken", "failed", "2", "4"]
        ])
    );

    // The report also goes to a webhook, whose URL comes from the environment.
    let (hook, received) = webhook("/hooks/T0K3N");
    let out = observes()
        .current_dir(root)
        .env("OBSERVES_STABILITY_WEBHOOK", &hook)
        .args(["job", "batch-stability", "--hours", "1", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (first, posted) = received.join().unwrap();
    let posted: serde_json::Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(first, "POST /hooks/T0K3N HTTP/1.1\r\n");
    assert_eq!(
        posted,
        serde_json::from_str::<serde_json::Value>(stdout(&out).trim()).unwrap()
    );
    assert_eq!(
        posted["failures"]["/observes/job/broken"][0]["kind"],
        "failed"
    );
    assert_eq!(
        posted["failures"]["/observes/job/broken"][0]["exit_code"],
        4
    );
    assert!(
        !stderr(&out).contains("T0K3N"),
        "the webhook URL is a secret"
    );

    let (ok, text, err) = run(root, &["job", "batch-stability", "--hours", "1"]);
    assert!(!ok, "a failure makes the exit status non-zero");
    assert!(text.contains("2 runs since "), "{text}");
    assert!(
        text.ends_with(&format!(
            "/observes/job/broken: 1 failed\n  {broken_id} failed with exit code 4\n"
        )),
        "{text}"
    );
    assert!(err.contains("1 runs failed in the last 1 hours"), "{err}");

    // Run here and now: recorded too.
    let (ok, _, err) = run(root, &["job", "run", "/observes/etl/ci-jobs"]);
    assert!(ok, "{err}");
    assert_eq!(
        query(
            &db,
            "SELECT COUNT(*) FROM observes._observes_job_runs WHERE status = 'succeeded'"
        ),
        rows(&[&["2"]])
    );
    let (ok, _, err) = run(root, &["job", "run", "/nope"]);
    assert!(!ok);
    assert!(
        err.contains("no job named \"/nope\" (known: /observes/etl/ci-jobs, /observes/job/broken)"),
        "{err}"
    );
}

#[test]
fn the_shipped_catalogue_schedules_every_job() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("observes.toml"),
        observes_app::demo::demo_config(),
    )
    .unwrap();
    // The settings files the demo writes for its fakes.
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/gitlab.toml"),
        "projects = [\"a/b\"]\ntoken = \"t\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("data/checkly.toml"),
        "account_id = \"a\"\napi_key = \"k\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("data/timedoctor.toml"),
        "email = \"e\"\npassword = \"p\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("data/zoho.toml"),
        "client_id = \"c\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\n",
    )
    .unwrap();
    // And the shipped REST definitions with configs for them.
    std::fs::create_dir_all(dir.path().join("rest")).unwrap();
    for (name, text) in observes_sources::rest::SHIPPED {
        std::fs::write(dir.path().join(format!("rest/{name}.toml")), text).unwrap();
        let values: String =
            observes_sources::rest::Definition::parse(std::path::Path::new("x"), text)
                .unwrap()
                .settings
                .keys()
                .map(|k| format!("{k} = \"v\"\n"))
                .collect();
        std::fs::write(
            dir.path().join(format!("data/{name}.toml")),
            format!("definition = \"../rest/{name}.toml\"\n[values]\n{values}"),
        )
        .unwrap();
    }
    let (ok, text, err) = run(dir.path(), &["job", "list", "--json"]);
    assert!(ok, "{err}");
    let jobs: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    for wanted in [
        "/observes/etl/gitlab/product",
        "/observes/etl/checkly",
        "/observes/etl/code",
        "/observes/etl/code/compute-bills",
        "/observes/etl/code/mirror",
        "/observes/etl/timedoctor",
        "/observes/etl/zoho-crm",
        "/observes/etl/zoho-crm/prepare",
        "/observes/etl/timedoctor/backup",
        "/observes/job/cancel-ci-jobs",
        "/observes/job/batch-stability",
        "/observes/dashboard/alert/ci_health",
        "/observes/dashboard/alert/uptime",
        "/observes/dashboard/send/ci_health",
        "/observes/etl/bugsnag",
        "/observes/etl/mailchimp",
        "/observes/etl/delighted",
        "/observes/etl/matomo",
    ] {
        assert!(names.contains(&wanted), "{wanted} is not in {names:?}");
    }
    assert!(
        jobs.iter().all(|j| j["schedule"].is_string()),
        "every job is scheduled"
    );
    let (ok, text, _) = run(
        dir.path(),
        &[
            "schedule",
            "next",
            "-n",
            "2",
            "--after",
            "2026-11-25T00:00:00Z",
        ],
    );
    assert!(ok);
    assert_eq!(text.lines().count(), jobs.len() * 3);
    assert!(text.contains(
        "/observes/etl/code/compute-bills cron(0 6 1 * ? *) (America/Bogota):\n  2026-12-01T06:00:00-05:00\n  2027-01-01T06:00:00-05:00\n"
    ), "{text}");
}
