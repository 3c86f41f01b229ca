//! A running query is stopped from another thread (as the dashboards' server stops a
//! panel whose page went away): PostgreSQL over TLS and without it, and DuckDB.

use std::time::{Duration, Instant};

use observes_warehouse::Warehouse;

/// Runs `sql`, interrupts it from another thread once it has started, and returns its
/// error; the query must stop long before it would have finished by itself.
fn interrupted(mut wh: Box<dyn Warehouse>, sql: &str) -> String {
    let interrupt = wh.interrupt_handle().expect("an interrupt handle");
    let started = Instant::now();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        interrupt.interrupt();
    });
    let err = observes_runtime::chain(&wh.query(sql, &[]).expect_err("the query is interrupted"))
        .to_string();
    stopper.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the query ran to its end"
    );
    err
}

#[test]
fn a_postgres_query_stops_when_interrupted_with_and_without_tls() {
    let db = observes_testkit::TestDatabase::create();
    for sslmode in ["require", "disable"] {
        let wh = observes_warehouse::connect(&format!("{}?sslmode={sslmode}", db.url)).unwrap();
        let err = interrupted(wh, "SELECT pg_sleep(60)");
        assert!(
            err.contains("canceling statement due to user request"),
            "sslmode={sslmode}: {err}"
        );
    }
}

#[test]
fn a_duckdb_query_stops_when_interrupted() {
    let wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
    let err = interrupted(
        wh,
        "SELECT count(*) FROM range(100000000000) a WHERE a.range % 7 = 3",
    );
    assert!(err.contains("Interrupted"), "{err}");
}
