//! A served dashboard page over a large warehouse: the shipped `ci_health` over ten
//! million CI jobs (and 2.5 million pipelines) in a DuckDB file, its panels' queries run
//! side by side. Reports the time to the first byte (the page's top) and to the full
//! page, over real HTTP on loopback, as a browser would wait for them.
//!
//!   cargo bench -p observes-dashboards --bench page            # 10,000,000 jobs
//!   OBSERVES_BENCH_JOBS=1000000 cargo bench -p observes-dashboards --bench page
//!
//! The DuckDB file is built once, beside the cargo target dir, and reused.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use observes_dashboards::access::Access;
use observes_dashboards::server::{serve, ServeConfig};

/// The range the page shows (30 days) and the 30 before it (the number panels' comparison).
const START: &str = "2026-11-07";
const END: &str = "2026-12-06";
const RUNS: usize = 7;

fn main() {
    let jobs: u64 = std::env::var("OBSERVES_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("observes-bench-dashboards");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join(format!("ci-jobs-{jobs}.duckdb"));
    let url = format!("duckdb://{}", file.display());
    if !file.exists() {
        let started = Instant::now();
        build(&format!("duckdb://{}.tmp", file.display()), jobs);
        std::fs::rename(format!("{}.tmp", file.display()), &file).unwrap();
        eprintln!(
            "built {} ({jobs} jobs) in {:.1} s",
            file.display(),
            started.elapsed().as_secs_f64()
        );
    }

    let boards = root.join("dashboards");
    std::fs::create_dir_all(&boards).unwrap();
    let (_, ci_health) = observes_dashboards::SHIPPED
        .iter()
        .find(|(name, _)| *name == "ci_health")
        .unwrap();
    std::fs::write(boards.join("ci_health.toml"), ci_health).unwrap();
    let config = ServeConfig {
        dashboards: boards,
        warehouse: url,
        query_timeout: Duration::from_secs(120),
        access: Arc::new(Access::off()),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(serve(listener, config));

    let path = format!("/d/ci_health?start={START}&end={END}");
    let (first_ttfb, first_full, bytes) = fetch(addr, &path);
    let mut ttfb = Vec::new();
    let mut full = Vec::new();
    for _ in 0..RUNS {
        let (t, f, _) = fetch(addr, &path);
        ttfb.push(t);
        full.push(f);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ci_health over {jobs} jobs, {cores} cores, {} KiB page, {RUNS} runs after the first",
        bytes / 1024
    );
    println!("| | first byte (ms) | full page (ms) |");
    println!("| --- | ---: | ---: |");
    println!("| first request | {first_ttfb:.0} | {first_full:.0} |");
    println!(
        "| median | {:.0} | {:.0} |",
        median(&mut ttfb),
        median(&mut full)
    );
    println!(
        "| slowest | {:.0} | {:.0} |",
        ttfb.last().unwrap(),
        full.last().unwrap()
    );
}

/// One GET: milliseconds to the first byte and to the last, and the bytes read.
fn fetch(addr: std::net::SocketAddr, path: &str) -> (f64, f64, usize) {
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 1];
    s.read_exact(&mut first).unwrap();
    let ttfb = started.elapsed().as_secs_f64() * 1000.0;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let full = started.elapsed().as_secs_f64() * 1000.0;
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.starts_with("TTP/1.1 200"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(!text.contains("class=\"error\""), "a panel failed");
    (ttfb, full, rest.len() + 1)
}

/// GitLab-shaped projects, pipelines and jobs over 60 days (30 shown, 30 before), with
/// failure shares, stages and spread durations.
fn build(url: &str, jobs: u64) {
    let mut wh = observes_warehouse::connect(url).unwrap();
    let pipelines = (jobs / 4).max(1);
    let span_us: u64 = 60 * 86_400 * 1_000_000;
    for sql in [
        "CREATE SCHEMA IF NOT EXISTS gitlab_api".to_string(),
        "CREATE TABLE gitlab_api.projects AS SELECT 20741933 + i * 1000 AS id, 'acme/service-' || (i + 1) AS path_with_namespace FROM range(40) t(i)".to_string(),
        format!(
            "CREATE TABLE gitlab_api.pipelines AS SELECT i AS id, 20741933 + (i % 40) * 1000 AS project_id, \
             CASE WHEN hash(i, 1) % 100 < 9 THEN 'failed' WHEN hash(i, 1) % 100 < 11 THEN 'canceled' ELSE 'success' END AS status, \
             TIMESTAMPTZ '2026-10-08 00:00:00+00' + to_microseconds(CAST(i * {} AS BIGINT)) AS created_at \
             FROM range({pipelines}) t(i)",
            span_us / pipelines
        ),
        format!(
            "CREATE TABLE gitlab_api.jobs AS SELECT i AS id, 20741933 + ((i // 4) % 40) * 1000 AS project_id, \
             ['build', 'test', 'deploy'][CAST(i % 3 AS INTEGER) + 1] AS stage, \
             CASE WHEN hash(i, 2) % 100 < 4 THEN 'failed' WHEN hash(i, 2) % 100 < 6 THEN 'skipped' ELSE 'success' END AS status, \
             TIMESTAMPTZ '2026-10-08 00:00:00+00' + to_microseconds(CAST(i * {} AS BIGINT)) AS created_at, \
             60.0 + CAST(hash(i, 3) % 600 AS DOUBLE) AS duration, CAST(hash(i, 4) % 120 AS DOUBLE) AS queued_duration \
             FROM range({jobs}) t(i)",
            span_us / jobs.max(1)
        ),
    ] {
        wh.execute(&sql, &[]).unwrap();
    }
}
