//! The README's first command, and `observes state`.

mod common;

use common::*;

/// The rows the demo's summary prints for `table`.
fn table_rows(text: &str, table: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("  ")?.strip_prefix(table)?;
        rest.strip_prefix(' ')?
            .trim()
            .strip_suffix(" rows")?
            .parse()
            .ok()
    })
}

#[test]
fn run_demo_builds_the_warehouse_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let demo_arg = demo.to_str().unwrap();
    let out = observes()
        .args(["run", "demo", "--dir", demo_arg])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "ci_jobs: load 1 committed 5000 records in 1 streams (0 rejected, 1 commits)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "gitlab_sample: load 1 committed 81 records in 3 streams (0 rejected, 1 commits)"
        ),
        "{text}"
    );
    assert!(table_rows(&text, "ci.jobs") == Some(5000), "{text}");
    assert!(demo.join("observes.toml").exists() && demo.join("state/ci_jobs/state.json").exists());
    // The API sources against their fakes.
    assert!(table_rows(&text, "gitlab_api.jobs") == Some(240), "{text}");
    assert!(
        table_rows(&text, "checkly.check_results") == Some(480),
        "{text}"
    );

    // Git: the sample repositories mirrored, their commits loaded, this month billed.
    assert!(
        text.contains("Mirror: 3 published, 0 unchanged, 0 failed"),
        "{text}"
    );
    assert!(table_rows(&text, "code.commits") == Some(420), "{text}");
    let month = chrono::Utc::now().format("%Y/%m").to_string();
    assert!(
        text.contains(&format!(
            "  {:<40} {:>3} active authors",
            format!("bills/{month}/acme.csv"),
            4
        )),
        "{text}"
    );
    assert!(demo.join("storage/mirror/beta/tools/repo.bundle").exists());

    let db = demo.join("warehouse.duckdb");
    let counts = |db: &std::path::Path| {
        query(
            db,
            "SELECT (SELECT COUNT(*) FROM ci.jobs), (SELECT COUNT(*) FROM ci.jobs__artifacts), (SELECT COUNT(*) FROM gitlab.pipelines), \
             (SELECT COUNT(*) FROM gitlab.projects__topics), (SELECT COUNT(*) FROM gitlab.merge_requests__reviewers)",
        )
    };
    let first = counts(&db);
    assert_eq!(first, rows(&[&["5000", "7539", "54", "5", "24"]]));

    let out = observes()
        .args(["run", "demo", "--dir", demo_arg, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summaries: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = summaries
        .iter()
        .find(|s| s["pipeline"] == "ci_jobs")
        .unwrap();
    assert_eq!(
        summary["streams"]["jobs"]["rows"], 0,
        "resumed from its bookmark: nothing new"
    );
    assert_eq!(counts(&db), first, "merge by key: a re-run adds nothing");
    let api_counts = |db: &std::path::Path| {
        query(
            db,
            "SELECT (SELECT COUNT(*) FROM gitlab_api.jobs), (SELECT COUNT(*) FROM gitlab_api.merge_requests), \
             (SELECT COUNT(*) FROM checkly.check_results), (SELECT COUNT(*) FROM checkly.checks)",
        )
    };
    assert_eq!(api_counts(&db), rows(&[&["240", "90", "480", "5"]]));
    let code = summaries.iter().find(|s| s["pipeline"] == "code").unwrap();
    assert_eq!(code["streams"]["commits"]["rows"], 0, "no new commits");
    let last = summaries.last().unwrap();
    let outcomes: Vec<&str> = last["mirror"]["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["unchanged"; 3]);

    // The shipped dashboards on the demo's data: every panel runs; charts are not empty.
    let out = observes()
        .args(["dashboard", "check", "--config"])
        .arg(demo.join("observes.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "billing: 3 panels ok\nci_health: 6 panels ok\nengineering: 5 panels ok\nfreshness: 4 panels ok\nsales_pipeline: 4 panels ok\ntime_tracking: 4 panels ok\nuptime: 4 panels ok\n"
    );
    let out = observes()
        .args(["dashboard", "list", "--config"])
        .arg(demo.join("observes.toml"))
        .output()
        .unwrap();
    assert!(stdout(&out).starts_with("billing\tBilling\nci_health\tCI health\n"));
    let exported = dir.path().join("exported");
    for name in [
        "billing",
        "ci_health",
        "engineering",
        "freshness",
        "sales_pipeline",
        "time_tracking",
        "uptime",
    ] {
        let out = observes()
            .args(["dashboard", "export", name, "--format", "svg", "--out"])
            .arg(&exported)
            .arg("--config")
            .arg(demo.join("observes.toml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        for file in stdout(&out).lines() {
            let svg = std::fs::read_to_string(file).unwrap();
            assert!(
                svg.contains("class=\"bar\"") || svg.contains("class=\"series\""),
                "{file} has no marks"
            );
        }
        let out = observes()
            .args(["dashboard", "export", name, "--format", "html", "--out"])
            .arg(&exported)
            .arg("--config")
            .arg(demo.join("observes.toml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    }
    // A PNG is the whole page at the window's width: a phone's page is longer than its
    // screen.
    for width in ["1400", "390"] {
        let out = observes()
            .args([
                "dashboard",
                "export",
                "uptime",
                "--format",
                "png",
                "--width",
                width,
            ])
            .arg("--out")
            .arg(&exported)
            .arg("--config")
            .arg(demo.join("observes.toml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let png = std::fs::read(exported.join("uptime.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
        let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        assert_eq!(size(16).to_string(), width, "the PNG's width");
        assert!(size(20) > 900, "the whole page, {} px high", size(20));
    }
    let html = std::fs::read_to_string(exported.join("ci_health.html")).unwrap();
    let svg = std::fs::read_to_string(exported.join("ci_health-2.svg")).unwrap();
    let marks = |doc: &str| -> Vec<String> {
        doc.split("<rect class=\"bar\"")
            .skip(1)
            .map(|r| r.split("</rect>").next().unwrap().to_string())
            .collect()
    };
    let panel = html
        .split("id=\"panel-2\"")
        .nth(1)
        .and_then(|p| p.split("</section>").next())
        .unwrap();
    assert!(!marks(&svg).is_empty());
    assert_eq!(
        marks(panel),
        marks(&svg),
        "the export's page draws the same bars as its SVG"
    );

    // `observes dashboard serve` on the demo, in headless Chromium: every page loads with
    // no console output and no failed request.
    let mut serve = observes();
    serve
        .args(["dashboard", "serve", "--addr", "127.0.0.1:0", "--config"])
        .arg(demo.join("observes.toml"));
    let (server, line) = Running::until_line(serve, "dashboards at ");
    let rest = line.trim_start_matches("dashboards at ");
    assert!(rest.ends_with(" (access: off)"), "{line}");
    let base = rest.split(' ').next().unwrap().to_string();
    let pages = std::iter::once("/".to_string()).chain(
        observes_dashboards::SHIPPED
            .iter()
            .map(|(name, _)| format!("/d/{name}")),
    );
    let measured = tempfile::tempdir().unwrap();
    for page in pages {
        let page = page.as_str();
        let loaded =
            observes_dashboards::export::load_page(&format!("{base}{page}"), (1280, 1600), None)
                .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            loaded.complaints.is_empty(),
            "{page}: {:?}",
            loaded.complaints
        );
        let dom = loaded.dom;
        assert!(!dom.contains("class=\"error\""), "{page}: a panel failed");
        for fetch in [" src=", "<link", "url(", "@import"] {
            assert!(
                !dom.contains(fetch),
                "{page}: the page fetches something ({fetch})"
            );
        }
        if page != "/" {
            assert!(
                dom.contains("<svg") || dom.contains("<table>"),
                "{page}: nothing drawn"
            );
            // As a reader sees the demo's own data, on a laptop and on a phone.
            let html = served_page(&base, page);
            for size in [(1400, 900), (390, 844)] {
                let m = observes_dashboards::inspect::measure(&html, size, measured.path())
                    .unwrap_or_else(|e| panic!("{page} at {size:?}: {e}"));
                assert_eq!(m.problems(11.0), Vec::<String>::new(), "{page} at {size:?}");
            }
        }
    }
    drop(server);

    // A threshold crossed on the demo's data posts once to the webhook; evaluated again
    // for the same range, it does not post again.
    let config = demo.join("observes.toml");
    let (url, received) = webhook("/hooks/alerts");
    let out = observes()
        .args(["dashboard", "alert", "ci_health", "--json", "--config"])
        .arg(&config)
        .env("OBSERVES_ALERT_WEBHOOK", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["posted"], serde_json::json!(["Failed pipelines"]));
    let (request, body) = received.join().unwrap();
    assert_eq!(request, "POST /hooks/alerts HTTP/1.1\r\n");
    let message: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = message["text"].as_str().unwrap();
    let failed = report["checked"][0]["shown"].as_str().unwrap();
    assert!(
        text.starts_with(":rotating_light: *CI health* (")
            && text.ends_with(&format!("\n• Failed pipelines is {failed}, above 20%")),
        "{text}"
    );
    let quiet = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    quiet.set_nonblocking(true).unwrap();
    let out = observes()
        .args(["dashboard", "alert", "ci_health", "--config"])
        .arg(&config)
        .env(
            "OBSERVES_ALERT_WEBHOOK",
            format!("http://{}/hooks/alerts", quiet.local_addr().unwrap()),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let period = report["period"].as_str().unwrap();
    assert_eq!(
        stdout(&out),
        format!(
            "ci_health: Failed pipelines is {failed} (above 20%: already posted for {period})\n"
        )
    );
    assert_eq!(
        quiet.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing posted the second time"
    );
    let out = observes()
        .args(["dashboard", "alert", "uptime", "--config"])
        .arg(&config)
        .env_remove("OBSERVES_ALERT_WEBHOOK")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "uptime's good runs are below 95% in the demo"
    );
    assert_eq!(
        stderr(&out).lines().last().unwrap(),
        "error: uptime: 1 breach to post and no webhook: set OBSERVES_ALERT_WEBHOOK"
    );
    let (url, received) = webhook("/hooks/summary");
    let out = observes()
        .args([
            "dashboard",
            "send",
            "ci_health",
            "--link",
            "http://dash.example.com",
            "--config",
        ])
        .arg(&config)
        .env("OBSERVES_SEND_WEBHOOK", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ci_health: sent (2 figures)\n");
    let (_, body) = received.join().unwrap();
    let message: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("\n• Failed pipelines: *{failed}* (")),
        "{text}"
    );
    assert!(text.contains("\n• Pipelines: *"), "{text}");
    assert!(
        text.ends_with("\nAlso on the page: Pipelines per day, by status, Average job duration and queue time per day, Failed jobs per stage, Per stage and project\n<http://dash.example.com/d/ci_health|Open the dashboard>"),
        "{text}"
    );

    // The jobs on their own, from the demo's config.
    let out = observes()
        .args(["job", "mirror", "--group", "beta", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "beta/tools: unchanged\n0 published, 1 unchanged, 0 failed\n"
    );
    let out = observes()
        .args([
            "job",
            "compute-bills",
            "--month",
            "2026-01",
            "--json",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["month"], "2026-01");
    assert_eq!(
        report["groups"][0]["actors"], 0,
        "nothing was first seen then"
    );
    assert_eq!(
        std::fs::read_to_string(demo.join("storage/bills/2026/01/acme.csv")).unwrap(),
        "actor,commit,groups,repository\n"
    );
    let out = observes()
        .args(["job", "compute-bills", "--month", "2026-13", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("\"2026-13\" is not a month like 2026-10"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn state_get_set_clear() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("observes.toml"),
        "warehouse = \"duckdb://wh.duckdb\"\n[pipelines.jobs]\nsource = \"synthetic\"\nrecords = 30\ncheckpoint_every = 10\nschema = \"ci\"\n",
    )
    .unwrap();
    let state = |args: &[&str]| {
        let out = observes()
            .current_dir(root)
            .arg("state")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(state(&["get", "jobs"]), "null\n");
    let out = observes()
        .current_dir(root)
        .args(["run", "jobs"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        state(&["get", "jobs"]),
        "{\n  \"synthetic\": {\n    \"position\": 30\n  }\n}\n"
    );

    // Rewind to 20 and re-run in append mode: exactly the last 10 records load again.
    state(&["set", "jobs", r#"{"synthetic":{"position":20}}"#]);
    assert_eq!(
        std::fs::read_to_string(root.join("state/jobs/state.json")).unwrap(),
        "{\n  \"synthetic\": {\n    \"position\": 20\n  }\n}"
    );
    let out = observes()
        .current_dir(root)
        .args(["run", "jobs"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).starts_with("jobs: load 2 committed 10 records"),
        "{}",
        stdout(&out)
    );

    state(&["clear", "jobs"]);
    assert_eq!(state(&["get", "jobs"]), "null\n");
    assert!(!root.join("state/jobs/state.json").exists());

    let out = observes()
        .current_dir(root)
        .args(["state", "set", "jobs", "[1]"])
        .output()
        .unwrap();
    assert_eq!(stderr(&out), "error: the state must be a JSON object\n");
}

#[test]
fn a_second_run_of_a_locked_pipeline_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("observes.toml"),
        "warehouse = \"duckdb://wh.duckdb\"\n[pipelines.jobs]\nsource = \"synthetic\"\nrecords = 1\nschema = \"ci\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("state/jobs")).unwrap();
    // A live holder: this test process.
    let lock = serde_json::json!({
        "owner": "the other run",
        "expires_at": "2099-01-01T00:00:00Z",
        "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "pid": std::process::id(),
    });
    std::fs::write(root.join("state/jobs/lock"), lock.to_string()).unwrap();
    let out = observes()
        .current_dir(root)
        .args(["run", "jobs"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: pipeline \"jobs\" failed: pipeline \"jobs\" is locked by the other run until 2099-01-01 00:00:00 UTC (another run is in progress; the lock expires by itself if that run died)\n"
    );
}

#[test]
fn a_run_stores_a_committed_state_while_its_source_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let go = root.join("go");
    // A tap that checkpoints, then waits (as an API source waits on a slow page) until told.
    let tap = format!(
        r#"
printf '%s\n' '{{"type":"SCHEMA","stream":"jobs","schema":{{"properties":{{"id":{{"type":"integer"}}}}}},"key_properties":["id"]}}' \
  '{{"type":"RECORD","stream":"jobs","record":{{"id":1}}}}' '{{"type":"RECORD","stream":"jobs","record":{{"id":2}}}}' \
  '{{"type":"STATE","value":{{"n":1}}}}'
while [ ! -f '{go}' ]; do sleep 0.05; done
printf '%s\n' '{{"type":"RECORD","stream":"jobs","record":{{"id":3}}}}' '{{"type":"STATE","value":{{"n":2}}}}'
"#,
        go = go.display()
    );
    let config = format!(
        "warehouse = \"duckdb://wh.duckdb\"\n[pipelines.jobs]\nsource = \"command\"\nschema = \"ci\"\ncommit_records = 2\ncommand = [\"sh\", \"-c\", '''{tap}''']\n"
    );
    std::fs::write(root.join("observes.toml"), config).unwrap();
    let mut run = observes()
        .current_dir(root)
        .args(["run", "jobs"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let stored = root.join("state/jobs/state.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !stored.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the committed state is stored while the tap is quiet"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(&stored).unwrap(),
        "{\n  \"n\": 1\n}"
    );
    // The run holds the DuckDB file, so its rows are checked once it ends.
    assert!(run.try_wait().unwrap().is_none(), "the tap still runs");

    std::fs::write(&go, "").unwrap();
    assert!(run.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(&stored).unwrap(),
        "{\n  \"n\": 2\n}"
    );
    assert_eq!(
        query(
            &root.join("wh.duckdb"),
            "SELECT id FROM ci.jobs ORDER BY id"
        ),
        [["1"], ["2"], ["3"]]
    );
}

/// The body of a GET on the dashboards' server (the page as the server sends it, before
/// a browser touches it).
fn served_page(base: &str, path: &str) -> String {
    let r = observes_testkit::http_get(base, path, &[]);
    assert_eq!(r.status, 200, "{path}: {}", r.head);
    r.body
}
