//! `replace`: readers never see a half-loaded table, and the previous version is kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use observes_load::{LoadConfig, LoadError, Loader, WriteMode};
use observes_pipeline::sources::synthetic::{self, SyntheticConfig};
use observes_pipeline::MessageStream;
use observes_warehouse::duckdb::DuckDbWarehouse;
use observes_warehouse::{SqlValue, Warehouse};

fn load(wh: &mut dyn Warehouse, records: u64, seed: u64) {
    let config = LoadConfig {
        write_mode: WriteMode::Replace,
        batch_rows: Some(1000),
        ..LoadConfig::new("catalog", "raw")
    };
    let mut loader = Loader::begin(wh, config).unwrap();
    let source = SyntheticConfig {
        records,
        seed,
        checkpoint_every: 500,
        shape: Default::default(),
    };
    let mut stream = MessageStream::from_messages(synthetic::messages(&source, 0));
    loader
        .drive(&mut stream, |_| Ok::<(), LoadError>(()))
        .unwrap();
    loader.finish().unwrap();
}

fn count(wh: &mut dyn Warehouse, table: &str) -> i64 {
    wh.query(&format!("SELECT COUNT(*) FROM raw.{table}"), &[])
        .unwrap()[0][0]
        .as_i64()
        .unwrap()
}

#[test]
fn readers_see_the_old_or_the_new_table_never_a_mix_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wh.duckdb");
    let wh = DuckDbWarehouse::open(path.to_str().unwrap()).unwrap();
    let reader = wh.try_clone().unwrap();
    check_replace(Box::new(wh), Box::new(reader));
}

#[test]
fn readers_see_the_old_or_the_new_table_never_a_mix_postgres() {
    let db = observes_testkit::TestDatabase::create();
    let wh = observes_warehouse::connect(&db.url).unwrap();
    let reader = observes_warehouse::connect(&db.url).unwrap();
    check_replace(wh, reader);
}

#[test]
fn readers_see_the_old_or_the_new_table_never_a_mix_redshift_mode() {
    let db = observes_testkit::TestDatabase::create();
    let url = db.redshift_url(500);
    let wh = observes_warehouse::connect(&url).unwrap();
    let reader = observes_warehouse::connect(&url).unwrap();
    check_replace(wh, reader);
}

fn check_replace(mut wh: Box<dyn Warehouse>, mut reader: Box<dyn Warehouse>) {
    let wh = wh.as_mut();
    load(wh, 3_000, 1);
    assert_eq!(count(wh, "jobs"), 3_000);

    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let watcher = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !flag.load(Ordering::SeqCst) {
            // Parent and child counts from one snapshot must belong to one version.
            let row = reader
                .query(
                    "SELECT (SELECT COUNT(*) FROM raw.jobs), (SELECT COUNT(DISTINCT _observes_load_id) FROM raw.jobs__artifacts)",
                    &[],
                )
                .unwrap();
            seen.push((row[0][0].clone(), row[0][1].clone()));
        }
        seen
    });
    load(wh, 7_000, 2);
    done.store(true, Ordering::SeqCst);
    let seen = watcher.join().unwrap();
    assert!(!seen.is_empty());
    for (jobs, loads) in &seen {
        assert!(
            *jobs == SqlValue::Int(3_000) || *jobs == SqlValue::Int(7_000),
            "a reader saw {jobs:?} jobs: a half-loaded table"
        );
        assert_eq!(*loads, SqlValue::Int(1), "children from one load only");
    }
    assert_eq!(count(wh, "jobs"), 7_000);
    assert_eq!(
        count(wh, "jobs__observes_backup"),
        3_000,
        "the previous version is kept"
    );
    // A third reload replaces the backup with the second version.
    load(wh, 10, 3);
    assert_eq!(count(wh, "jobs"), 10);
    assert_eq!(count(wh, "jobs__observes_backup"), 7_000);
}
