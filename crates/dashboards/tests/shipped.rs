//! The shipped dashboards' queries on DuckDB and PostgreSQL: the same fixture (the
//! columns the dashboards read, shaped as the sources load them) in both, every panel run
//! with its mapping checked, every chart non-empty; the server's pages, CSV and a slow
//! query's message; parameters that change what a page shows.

use chrono::{Duration, Utc};
use observes_dashboards::data::{run_panel, Params};
use observes_dashboards::spec::{Dashboard, Kind};
use observes_warehouse::{SqlValue, Warehouse};

fn shipped() -> Vec<Dashboard> {
    observes_dashboards::SHIPPED
        .iter()
        .map(|(name, text)| Dashboard::parse(name, std::path::Path::new(name), text).unwrap())
        .collect()
}

fn ts(hours_ago: i64) -> SqlValue {
    SqlValue::Timestamp((Utc::now() - Duration::hours(hours_ago)).timestamp_micros())
}

fn fixture(wh: &mut dyn Warehouse) {
    let run = |wh: &mut dyn Warehouse, sql: &str, params: &[SqlValue]| {
        wh.execute(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    };
    for schema in [
        "gitlab_api",
        "checkly",
        "code",
        "ci",
        "gitlab",
        "timedoctor",
        "zoho",
    ] {
        run(wh, &format!("CREATE SCHEMA {schema}"), &[]);
        run(
            wh,
            &format!("CREATE TABLE {schema}._observes_loads (load_id BIGINT, pipeline TEXT, stream TEXT, \"rows\" BIGINT, rejected BIGINT, status TEXT, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, error TEXT)"),
            &[],
        );
        run(
            wh,
            &format!("INSERT INTO {schema}._observes_loads VALUES (1, $1, 's', 10, 0, 'completed', $2, $2, NULL), (2, $1, 's', 0, 0, 'failed', $3, $3, 'boom')"),
            &[SqlValue::Text(schema.into()), ts(5), ts(2)],
        );
    }
    run(
        wh,
        "CREATE TABLE gitlab_api.projects (id BIGINT, path_with_namespace TEXT)",
        &[],
    );
    run(
        wh,
        "INSERT INTO gitlab_api.projects VALUES (1, 'acme/web'), (2, 'acme/api')",
        &[],
    );
    run(wh, "CREATE TABLE gitlab_api.pipelines (id BIGINT, project_id BIGINT, status TEXT, created_at TIMESTAMPTZ)", &[]);
    run(wh, "CREATE TABLE gitlab_api.jobs (id BIGINT, project_id BIGINT, stage TEXT, status TEXT, created_at TIMESTAMPTZ, duration DOUBLE PRECISION, queued_duration DOUBLE PRECISION)", &[]);
    for i in 0..40i64 {
        let status = ["success", "failed", "canceled", "success"][(i % 4) as usize];
        run(
            wh,
            "INSERT INTO gitlab_api.pipelines VALUES ($1, $2, $3, $4)",
            &[
                SqlValue::Int(i),
                SqlValue::Int(1 + i % 2),
                SqlValue::Text(status.into()),
                ts(i * 13),
            ],
        );
        run(
            wh,
            "INSERT INTO gitlab_api.jobs VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                SqlValue::Int(i),
                SqlValue::Int(1 + i % 2),
                SqlValue::Text(["build", "test", "deploy"][(i % 3) as usize].into()),
                SqlValue::Text(status.into()),
                ts(i * 13),
                SqlValue::Float(30.0 + i as f64),
                SqlValue::Float(2.5 * (i % 5) as f64),
            ],
        );
    }
    run(wh, "CREATE TABLE timedoctor.worklogs (id TEXT, user_id TEXT, user_name TEXT, project_name TEXT, start_time TIMESTAMPTZ, seconds BIGINT, work_mode TEXT, edited BOOLEAN)", &[]);
    for i in 0..40i64 {
        run(
            wh,
            "INSERT INTO timedoctor.worklogs VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                SqlValue::Text(format!("w{i}")),
                SqlValue::Text(format!("U{}", i % 3)),
                SqlValue::Text(["Ada", "Alan", "Grace"][(i % 3) as usize].into()),
                SqlValue::Text(if i % 2 == 0 { "Platform" } else { "Data" }.into()),
                ts(i * 5),
                SqlValue::Int(900 + i * 60),
                SqlValue::Text(if i % 9 == 0 { "on break" } else { "online" }.into()),
                SqlValue::Bool(i % 4 == 0),
            ],
        );
    }
    run(wh, "CREATE TABLE zoho.deals (id TEXT, deal_name TEXT, stage TEXT, amount DOUBLE PRECISION, owner__name TEXT, created_time TIMESTAMPTZ)", &[]);
    let stages = [
        "Qualification",
        "Proposal/Price Quote",
        "Closed Won",
        "Closed Lost",
    ];
    for i in 0..40i64 {
        run(
            wh,
            "INSERT INTO zoho.deals VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                SqlValue::Text(format!("d{i}")),
                SqlValue::Text(format!("Deal {i}")),
                SqlValue::Text(stages[(i % 4) as usize].into()),
                SqlValue::Float(1000.0 + i as f64 * 250.0),
                SqlValue::Text(if i % 3 == 0 { "Mei Chen" } else { "Tom Baker" }.into()),
                ts(i * 30),
            ],
        );
    }
    run(wh, "CREATE TABLE checkly.checks (id TEXT, name TEXT)", &[]);
    run(
        wh,
        "INSERT INTO checkly.checks VALUES ('c1', 'Home page'), ('c2', 'API health')",
        &[],
    );
    run(wh, "CREATE TABLE checkly.check_results (id TEXT, check_id TEXT, has_failures BOOLEAN, has_errors BOOLEAN, is_degraded BOOLEAN, run_location TEXT, started_at TIMESTAMPTZ, response_time BIGINT)", &[]);
    for i in 0..60i64 {
        run(
            wh,
            "INSERT INTO checkly.check_results VALUES ($1, $2, $3, false, $4, 'eu-west-1', $5, $6)",
            &[
                SqlValue::Text(format!("r{i}")),
                SqlValue::Text(if i % 2 == 0 { "c1" } else { "c2" }.into()),
                SqlValue::Bool(i % 7 == 0),
                SqlValue::Bool(i % 5 == 0),
                ts(i * 2),
                SqlValue::Int(100 + i * 3),
            ],
        );
    }
    run(wh, "CREATE TABLE code.commits (namespace TEXT, repository TEXT, hash TEXT, author_name TEXT, author_email TEXT, authored_at TIMESTAMPTZ, insertions BIGINT, deletions BIGINT, billable BOOLEAN, content_hash TEXT, seen_at TIMESTAMPTZ)", &[]);
    run(wh, "CREATE TABLE code.sightings (namespace TEXT, repository TEXT, hash TEXT, content_hash TEXT, seen_at TIMESTAMPTZ)", &[]);
    for i in 0..30i64 {
        run(
            wh,
            "INSERT INTO code.commits VALUES ($1, 'repo', $2, $3, $4, $5, 10, 2, true, $2, $6)",
            &[
                SqlValue::Text(if i % 3 == 0 { "beta" } else { "acme" }.into()),
                SqlValue::Text(format!("h{i}")),
                SqlValue::Text(format!("Author {}", i % 4)),
                SqlValue::Text(format!("a{}@x.com", i % 4)),
                ts(i * 24 * 9),
                ts(i),
            ],
        );
    }
    run(wh, "INSERT INTO code.sightings SELECT namespace, repository, hash, content_hash, seen_at FROM code.commits", &[]);
    job_runs(wh);
}

/// `observes._observes_job_runs` as the scheduler writes it.
fn job_runs(wh: &mut dyn Warehouse) {
    wh.execute("CREATE SCHEMA observes", &[]).unwrap();
    wh.execute("CREATE TABLE observes._observes_job_runs (run_id TEXT, job TEXT, status TEXT, scheduled_for TIMESTAMPTZ, started_at TIMESTAMPTZ, stopped_at TIMESTAMPTZ, attempts BIGINT, exit_code BIGINT, status_reason TEXT)", &[]).unwrap();
    wh.execute(
        "INSERT INTO observes._observes_job_runs VALUES ('r1', '/observes/etl/checkly', 'succeeded', NULL, $1, $1, 1, 0, NULL), ('r2', '/observes/etl/code', 'failed', NULL, $2, $2, 2, 1, 'exit 1')",
        &[ts(3), ts(1)],
    )
    .unwrap();
}

fn every_panel_renders(wh: &mut dyn Warehouse) {
    fixture(wh);
    let today = Utc::now().date_naive();
    for d in shipped() {
        let params = Params::default_for(&d, today);
        for panel in &d.panels {
            let data = run_panel(wh, panel, &params)
                .unwrap_or_else(|e| panic!("{} / {}: {e}", d.name, panel.title));
            assert!(
                !data.table.rows.is_empty(),
                "{} / {}: no rows",
                d.name,
                panel.title
            );
            if matches!(panel.kind, Kind::Line | Kind::Bar | Kind::StackedBar) {
                let svg = observes_dashboards::chart::svg(panel, &data);
                assert!(
                    svg.contains("class=\"bar\"") || svg.contains("class=\"series\""),
                    "{} / {}: an empty chart",
                    d.name,
                    panel.title
                );
                assert_eq!(
                    observes_dashboards::chart::draws_nothing(panel, &data),
                    None,
                    "{} / {}",
                    d.name,
                    panel.title
                );
            }
        }
    }
}

#[test]
fn shipped_dashboards_render_on_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("duckdb://{}", dir.path().join("wh.duckdb").display());
    let mut wh = observes_warehouse::connect(&url).unwrap();
    every_panel_renders(wh.as_mut());
}

#[test]
fn shipped_dashboards_render_on_postgres() {
    let db = observes_testkit::TestDatabase::create();
    let mut wh = observes_warehouse::connect(&db.url).unwrap();
    every_panel_renders(wh.as_mut());
}

#[test]
fn a_bad_mapping_or_query_names_the_panel() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("duckdb://{}", dir.path().join("wh.duckdb").display());
    let mut wh = observes_warehouse::connect(&url).unwrap();
    let d = Dashboard::parse(
        "t",
        std::path::Path::new("t.toml"),
        "title = \"T\"\n[[panels]]\ntitle = \"Days\"\nkind = \"bar\"\nsql = \"SELECT 1 AS day, 2 AS n\"\nx = \"dayz\"\ny = [\"n\"]\n",
    )
    .unwrap();
    let params = Params::default_for(&d, Utc::now().date_naive());
    let err = observes_dashboards::data::validate(wh.as_mut(), &d, &params)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "dashboard t, panel \"Days\": no column \"dayz\" in the result (columns: day, n)"
    );
    let d = Dashboard::parse(
        "t",
        std::path::Path::new("t.toml"),
        "title = \"T\"\n[[panels]]\ntitle = \"Broken\"\nkind = \"table\"\nsql = \"SELECT * FROM nowhere\"\n",
    )
    .unwrap();
    let err = observes_dashboards::data::validate(wh.as_mut(), &d, &params)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "dashboard t, panel \"Broken\": running SELECT * FROM nowhere: Catalog Error: Table with name nowhere does not exist"
        ),
        "{err}"
    );
}

/// A server on the fixture with the shipped dashboards (and `extra` files), on its own
/// runtime: the runtime, the base URL, and the folder that holds it all.
fn serve_fixture(
    extra: &[(&str, &str)],
    timeout: std::time::Duration,
) -> (tokio::runtime::Runtime, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("duckdb://{}", dir.path().join("wh.duckdb").display());
    {
        let mut wh = observes_warehouse::connect(&url).unwrap();
        fixture(wh.as_mut());
    }
    let boards = dir.path().join("dashboards");
    std::fs::create_dir_all(&boards).unwrap();
    for (name, text) in observes_dashboards::SHIPPED.iter().chain(extra) {
        std::fs::write(boards.join(format!("{name}.toml")), text).unwrap();
    }
    let config = observes_dashboards::server::ServeConfig {
        dashboards: boards,
        warehouse: url,
        query_timeout: timeout,
        access: std::sync::Arc::new(observes_dashboards::access::Access::off()),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(observes_dashboards::server::serve(listener, config));
    (rt, base, dir)
}

#[test]
fn the_server_serves_pages_csv_parameters_and_slow_panels() {
    // Two panels that never finish, then one that does: the page's queries run side by
    // side, so the quick one is not held past the time limit behind the others.
    let slow = "title = \"Slow\"\n[[panels]]\ntitle = \"Heavy\"\nkind = \"number\"\nsql = \"SELECT COUNT(*) FROM range(100000000000) a\"\n[[panels]]\ntitle = \"Heavier\"\nkind = \"number\"\nsql = \"SELECT COUNT(*) FROM range(200000000000) a\"\n[[panels]]\ntitle = \"Quick\"\nkind = \"number\"\nsql = \"SELECT 7 AS n\"\n";
    let (rt, base, _dir) = serve_fixture(&[("slow", slow)], std::time::Duration::from_millis(500));
    let get = |path: &str| http_get(&base, path);
    let (status, index) = get("/");
    assert_eq!(status, 200);
    for (name, _) in observes_dashboards::SHIPPED {
        assert!(index.contains(&format!("href=\"/d/{name}\"")), "{index}");
    }
    let (status, page) = get("/d/ci_health");
    assert_eq!(status, 200);
    assert!(page.contains("<meta name=\"viewport\""));
    assert!(
        page.contains("<option value=\"acme/api\">acme/api</option>"),
        "the group choices"
    );
    assert!(page.contains("class=\"bar\""));
    assert_eq!(page.matches("Download CSV").count(), 6);
    // One project: fewer pipelines than all.
    let count = |page: &str| -> i64 {
        let at = page.find("<span class=\"value\" title=\"").unwrap() + 27;
        page[at..].split('"').next().unwrap().parse().unwrap()
    };
    let (_, one) = get("/d/ci_health?group=acme%2Fweb");
    assert!(one.contains("<option selected value=\"acme/web\">"));
    assert!(
        count(&one) < count(&page),
        "{} vs {}",
        count(&one),
        count(&page)
    );
    assert!(count(&one) > 0);
    let (status, csv) = get("/d/ci_health/panel/2.csv?group=acme%2Fweb");
    assert_eq!(status, 200);
    assert!(csv.starts_with("day,status,pipelines\n"), "{csv}");
    // A chart to share is the SVG the page draws for it; a table has none.
    let (status, svg) = get("/d/ci_health/panel/2.svg?group=acme%2Fweb");
    assert_eq!(status, 200);
    let bars = |doc: &str| doc.matches("<rect class=\"bar\"").count();
    let panel_2 = one
        .split("id=\"panel-2\"")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    assert!(
        svg.starts_with("<svg") && bars(&svg) > 0 && bars(&svg) == bars(panel_2),
        "{svg}"
    );
    assert!(
        one.contains("href=\"/d/ci_health/panel/2.svg?"),
        "the page links it"
    );
    let (status, message) = get("/d/ci_health/panel/5.svg");
    assert_eq!(
        (status, message.as_str()),
        (404, "panel 5 of ci_health is not a chart: it has no SVG")
    );
    let (status, html) = get("/d/ci_health/export.html?group=acme%2Fweb");
    assert_eq!(status, 200);
    assert!(html.contains("<h2>Pipelines per day, by status</h2>") && !html.contains("<form"));
    let (status, message) = get("/d/ci_health?start=yesterday");
    assert_eq!(
        (status, message.as_str()),
        (400, "start=\"yesterday\" is not a date like 2026-11-25")
    );
    // A page is streamed: its top first, then each panel as its query ends.
    let streamed = observes_testkit::http_get(&base, "/d/ci_health", &[]);
    assert!(
        streamed.head.contains("transfer-encoding: chunked"),
        "{}",
        streamed.head
    );
    assert!(streamed.body.starts_with("<!doctype html>") && streamed.body.ends_with("</html>"));
    let (status, _) = get("/d/nope");
    assert_eq!(status, 404);
    let (status, slow) = get("/d/slow");
    assert_eq!(status, 200, "a slow panel is a message, not a failed page");
    assert_eq!(
        slow.matches("the query took longer than 0.5 s and was given up")
            .count(),
        2,
        "{slow}"
    );
    assert!(
        slow.contains("<span class=\"value\" title=\"7\">7</span>"),
        "the quick panel has its value: {slow}"
    );
    // The given-up query was interrupted on the warehouse: its thread ends, so the
    // runtime (which waits for it) shuts down soon rather than after the full count.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(rt);
        let _ = done_tx.send(());
    });
    assert!(
        done_rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .is_ok(),
        "the given-up query is still running"
    );
}

fn dir_for_bad_page() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.html"),
        "<html><body><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    dir
}

/// Headless Chromium (Debian's `chromium`; `./scripts/test` installs it) loads the index
/// and every shipped dashboard from the server: no console errors, no failed requests,
/// a screenshot of each; a parameter changes the data the page shows.
#[test]
fn a_browser_loads_every_page_without_errors() {
    use observes_dashboards::export::load_page;
    let (rt, base, _dir) = serve_fixture(
        &[("extremes", EXTREMES)],
        std::time::Duration::from_secs(30),
    );
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let load = |path: &str, screenshot: Option<&std::path::Path>| -> String {
        let page = load_page(&format!("{base}{path}"), (1280, 1600), screenshot)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(page.complaints.is_empty(), "{path}: {:?}", page.complaints);
        // Nothing else to fetch: no scripts, images, styles or fonts from anywhere.
        for fetch in [" src=", "<link", "url(", "@import"] {
            assert!(
                !page.dom.contains(fetch),
                "{path}: the page fetches something ({fetch})"
            );
        }
        page.dom
    };
    // The detector itself: a page that logs an error is caught.
    let bad = dir_for_bad_page();
    let bad_page = load_page(
        &format!("file://{}", bad.path().join("bad.html").display()),
        (1280, 1600),
        None,
    )
    .unwrap();
    assert_eq!(bad_page.complaints.len(), 1);
    let index = load("/", None);
    assert!(index.contains("href=\"/d/ci_health\""));
    load("/", Some(&shots.join("index.png")));
    for (name, _) in observes_dashboards::SHIPPED {
        let dom = load(&format!("/d/{name}"), None);
        assert!(
            !dom.contains("class=\"error\""),
            "{name}: a panel failed:\n{dom}"
        );
        let png = shots.join(format!("{name}.png"));
        load(&format!("/d/{name}"), Some(&png));
        assert!(
            std::fs::metadata(&png).unwrap().len() > 10_000,
            "{name}: an empty screenshot"
        );
    }
    let value = |dom: &str| -> String {
        let at = dom.find("<span class=\"value\"").unwrap();
        let at = at + dom[at..].find('>').unwrap() + 1;
        dom[at..].split('<').next().unwrap().to_string()
    };
    let all = load("/d/ci_health", None);
    let one = load("/d/ci_health?group=acme%2Fweb", None);
    assert_ne!(
        value(&all),
        value(&one),
        "the project filter changes the numbers"
    );
    let narrow = load("/d/ci_health?start=2000-01-01&end=2000-01-31", None);
    assert_eq!(value(&narrow), "0");
    assert!(
        narrow.contains("No data between Jan 1, 2000 and Jan 31, 2000"),
        "an empty range says so instead of drawing empty axes"
    );

    // As a reader sees them, on a laptop and on a phone. First the detector itself: small
    // text, overlapping labels, a series without a mark, text past its panel and a page too
    // wide are caught.
    let measured = tempfile::tempdir().unwrap();
    let flawed = "<html><body><p style=\"font-size:8px\">tiny</p><div style=\"width:600px\">wide</div><svg class=\"chart\" aria-label=\"T\" data-series='[\"a\",\"b\"]' width=\"300\" height=\"100\"><text class=\"tick x\" x=\"10\" y=\"50\">Nov 1</text><text class=\"tick x\" x=\"20\" y=\"50\">Nov 2</text><rect data-series=\"a\" width=\"10\" height=\"10\"/><rect data-series=\"b\" width=\"0\" height=\"0\"/></svg><section class=\"panel\" style=\"width:100px\"><h2>P</h2><p style=\"white-space:nowrap\">a label far too long for its panel</p></section></body></html>";
    let m = observes_dashboards::inspect::measure(flawed, (390, 844), measured.path()).unwrap();
    assert_eq!(
        m.problems(11.0),
        vec![
            "text at 8.0 px (under 11 px): \"tiny\"".to_string(),
            "labels overlap: T: Nov 1 / Nov 2".into(),
            "no visible mark: T: b".into(),
            "past its panel: P: a label far too long for its panel".into(),
            "the page is 608 px wide in a 390 px window".into(),
        ]
    );
    let names = observes_dashboards::SHIPPED
        .iter()
        .map(|(name, _)| *name)
        .chain(["extremes"]);
    for name in names {
        let (status, html) = http_get(&base, &format!("/d/{name}"));
        assert_eq!(status, 200);
        for size in [(1400, 900), (390, 844)] {
            let m = observes_dashboards::inspect::measure(&html, size, measured.path())
                .unwrap_or_else(|e| panic!("{name} at {size:?}: {e}"));
            assert_eq!(m.viewport, f64::from(size.0), "{name}: the window's width");
            assert!(m.charts > 0 && m.texts > 20, "{name} at {size:?}: {m:?}");
            assert_eq!(m.problems(11.0), Vec::<String>::new(), "{name} at {size:?}");
        }
    }
    rt.shutdown_background();
}

/// A GET of `path` on the server: its status and body.
fn http_get(base: &str, path: &str) -> (u16, String) {
    let r = observes_testkit::http_get(base, path, &[]);
    (r.status, r.body)
}

/// Shapes none of the shipped dashboards has: a year of days, twelve series (more than the
/// palette's colours), long category names, huge and negative values, a tiny share, a
/// table of many columns, and a single point.
const EXTREMES: &str = r#"title = "Extremes"
description = "Data the shipped dashboards' fixtures are not shaped like."

[[panels]]
title = "A very large number"
kind = "number"
sql = "SELECT 123456789012.5 AS v"

[[panels]]
title = "A tiny share"
kind = "number"
format = "percent"
sql = "SELECT 0.004 AS v"

[[panels]]
title = "Twelve series over a year of days"
kind = "line"
sql = """SELECT CAST(DATE '2025-12-01' + CAST(d AS INTEGER) AS DATE) AS day, 'series number ' || s AS name,
          (s - 6) * 1000000000.0 + d * 12345.0 AS v
         FROM range(365) t(d), range(12) u(s)"""
x = "day"
y = ["v"]
series = "name"

[[panels]]
title = "Long category names"
kind = "bar"
format = "bytes"
sql = """SELECT 'an extraordinarily long category name number ' || i AS category, i * 1073741824.0 AS size
         FROM range(25) t(i)"""
x = "category"
y = ["size"]

[[panels]]
title = "A single point"
kind = "line"
format = "duration"
sql = "SELECT TIMESTAMPTZ '2026-11-05 14:00:00+00' AS at, 93784.0 AS took"
x = "at"
y = ["took"]

[[panels]]
title = "Many columns"
kind = "table"
sql = """SELECT i AS c1, i * 2 AS c2, i * 3 AS c3, i * 4 AS c4, i * 5 AS c5, i * 6 AS c6,
          'a rather long text value in a cell ' || i AS c7, i * 1000000 AS c8, i / 7.0 AS c9
         FROM range(30) t(i)"""
"#;
