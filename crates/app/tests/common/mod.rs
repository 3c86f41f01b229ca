//! Helpers shared by the API sources' tests: a DuckDB warehouse with one pipeline, queries
//! on it, and a run error with its causes.
#![allow(dead_code)]

use observes_app::Config;
pub use observes_runtime::chain;
use observes_warehouse::SqlValue;

pub struct Setup {
    _dir: tempfile::TempDir,
    pub config: Config,
    pub warehouse: String,
}

/// A DuckDB warehouse and state folder, and one pipeline `name` with these settings
/// (`[pipelines.NAME.settings.http]` tables included). Every STATE commits, so a failed
/// run keeps each bookmark the source reached.
pub fn setup(source: &str, name: &str, schema: &str, settings: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "warehouse = \"duckdb://wh.duckdb\"\nstate = \"state\"\n\n[pipelines.{name}]\nsource = \"{source}\"\nschema = \"{schema}\"\nwrite = \"merge\"\ncommit_records = 0\n\n[pipelines.{name}.settings]\n{settings}\n"
    );
    let path = dir.path().join("observes.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let warehouse = config.warehouse.clone();
    Setup {
        _dir: dir,
        config,
        warehouse,
    }
}

/// Fast retries and no rate limit, for a pipeline's settings against a fake.
pub fn quick_http(pipeline: &str) -> String {
    format!("[pipelines.{pipeline}.settings.http]\nbackoff_ms = 5\nmax_backoff_ms = 50\nrequests_per_second = 1000\n")
}

pub fn query(warehouse: &str, sql: &str) -> Vec<Vec<SqlValue>> {
    let mut wh = observes_warehouse::connect(warehouse).unwrap();
    wh.query(sql, &[]).unwrap()
}

/// The one integer a query answers.
pub fn one(warehouse: &str, sql: &str) -> i64 {
    query(warehouse, sql)[0][0].as_i64().unwrap()
}

pub fn count(warehouse: &str, table: &str) -> i64 {
    one(warehouse, &format!("SELECT COUNT(*) FROM {table}"))
}
