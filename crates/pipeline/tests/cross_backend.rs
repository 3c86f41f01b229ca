//! The same Singer input yields the same tables and rows in every warehouse.

use std::io::Cursor;

use observes_load::{inspect, LoadConfig, LoadError, Loader, WriteMode};
use observes_pipeline::sources::synthetic::{self, SyntheticConfig};
use observes_pipeline::MessageStream;

/// The demo's bundled GitLab-shaped Singer file.
const GITLAB_SAMPLE: &str = include_str!("../../app/demo/gitlab.singer");
use observes_warehouse::Warehouse;

fn load(wh: &mut dyn Warehouse, schema: &str, mode: WriteMode, stream: MessageStream) {
    let config = LoadConfig {
        write_mode: mode,
        batch_rows: Some(2_000),
        ..LoadConfig::new(schema, schema)
    };
    let mut loader = Loader::begin(wh, config).unwrap();
    let mut stream = stream;
    loader
        .drive(&mut stream, |_| Ok::<(), LoadError>(()))
        .unwrap();
    loader.finish().unwrap();
}

fn load_everything(wh: &mut dyn Warehouse) -> String {
    let jobs = SyntheticConfig {
        records: 3_000,
        seed: 7,
        checkpoint_every: 700,
        shape: Default::default(),
    };
    load(
        wh,
        "ci",
        WriteMode::Merge,
        MessageStream::from_messages(synthetic::messages(&jobs, 0)),
    );
    // Again from the middle: merge must leave the same rows.
    load(
        wh,
        "ci",
        WriteMode::Merge,
        MessageStream::from_messages(synthetic::messages(&jobs, 1_500)),
    );
    load(
        wh,
        "gitlab",
        WriteMode::Append,
        MessageStream::from_reader(Cursor::new(GITLAB_SAMPLE.as_bytes().to_vec())),
    );
    inspect::dump_schema(wh, "ci").unwrap() + &inspect::dump_schema(wh, "gitlab").unwrap()
}

#[test]
fn duckdb_postgres_and_redshift_mode_hold_the_same_rows() {
    let mut duck = observes_warehouse::connect("duckdb://:memory:").unwrap();
    let pg_db = observes_testkit::TestDatabase::create();
    let mut pg = observes_warehouse::connect(&pg_db.url).unwrap();
    let rs_db = observes_testkit::TestDatabase::create();
    let mut rs = observes_warehouse::connect(&rs_db.redshift_url(500)).unwrap();
    let in_duckdb = load_everything(duck.as_mut());
    assert!(in_duckdb.contains("== jobs__artifacts\n"));
    for (name, other) in [
        ("postgres", load_everything(pg.as_mut())),
        ("redshift", load_everything(rs.as_mut())),
    ] {
        assert_eq!(in_duckdb.lines().count(), other.lines().count(), "{name}");
        for (d, o) in in_duckdb.lines().zip(other.lines()) {
            assert_eq!(d, o, "{name}");
        }
    }
}
