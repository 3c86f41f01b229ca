//! Golden tests: Singer files → exact tables and rows in DuckDB.
//!
//! Each folder under `tests/golden/` holds `input.singer` (and `input2.singer`, … loaded
//! as later runs), an optional `options` file (`merge`, `replace`, `quarantine`, one per
//! line) and `expected.txt`, the warehouse afterwards, the same for every backend (an
//! `expected.<backend>.txt` records where a dialect must differ). Regenerate expectations with
//! `UPDATE_GOLDEN=1 cargo test -p observes-pipeline --test golden` and review the diff.

use std::path::{Path, PathBuf};

use observes_load::{LoadConfig, LoadError, Loader, OnInvalid, WriteMode};
use observes_pipeline::MessageStream;
use observes_warehouse::{Dialect, SqlValue, Warehouse};

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Loads every input of a case into a fresh warehouse and returns the dump.
fn run_case(dir: &Path, url: &str, block_bytes: usize) -> String {
    let mut wh = observes_warehouse::connect_pipelined(url).unwrap();
    run_case_on(dir, wh.as_mut(), block_bytes)
}

/// How the input is read: in blocks of about this many bytes.
const BLOCK_BYTES: usize = 1 << 20;

fn run_case_on(dir: &Path, wh: &mut dyn Warehouse, block_bytes: usize) -> String {
    let options = std::fs::read_to_string(dir.join("options")).unwrap_or_default();
    let mut config = LoadConfig::new("golden", "raw");
    for option in options.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match option {
            "quarantine" => config.on_invalid = OnInvalid::Quarantine,
            "variant" => config.on_schema_change = observes_model::SchemaChangePolicy::Variant,
            mode => config.write_mode = mode.parse::<WriteMode>().unwrap(),
        }
    }
    // Tiny batches, so every case also crosses batch boundaries; every STATE a commit, so
    // the cases show each checkpoint's transaction.
    config.batch_rows = Some(3);
    config.commit = observes_load::CommitPolicy::every_checkpoint();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("input")
        })
        .collect();
    inputs.sort();
    let mut log = String::new();
    for (run, input) in inputs.iter().enumerate() {
        let mut loader = Loader::begin(wh, config.clone()).unwrap();
        let file = std::fs::File::open(input).unwrap();
        let mut stream = MessageStream::from_reader_in_blocks(file, block_bytes);
        if block_bytes < BLOCK_BYTES {
            // Time for the reader to get ahead, so blocks reach the helpers before the
            // loader has read a SCHEMA before them (their records must be read again).
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut committed = Vec::new();
        match loader.drive(&mut stream, |s| {
            committed.push(s.to_string());
            Ok::<(), LoadError>(())
        }) {
            Ok(()) => {
                let summary = loader.finish().unwrap();
                committed.extend(summary.unreported_state.as_ref().map(|s| s.to_string()));
                log.push_str(&format!(
                    "run {}: ok, {} commits, states {:?}\n",
                    run + 1,
                    summary.commits,
                    committed
                ));
            }
            Err(e) => {
                if let Some(state) = loader.abort(&e) {
                    committed.push(state.to_string());
                }
                log.push_str(&format!(
                    "run {}: error: {}, states {committed:?}\n",
                    run + 1,
                    observes_runtime::chain(&e)
                ));
            }
        }
    }
    log.push('\n');
    log + &observes_load::inspect::dump_schema(wh, "raw").unwrap()
}

/// Runs every case with a fresh warehouse from `warehouse` and compares with (or, under
/// `UPDATE_GOLDEN`, writes) the expected dumps.
fn check_all(
    backend: &str,
    warehouse: impl Fn() -> (String, Box<dyn std::any::Any>),
    update: bool,
    block_bytes: usize,
) {
    let mut failures = Vec::new();
    for dir in case_dirs() {
        let (url, _guard) = warehouse();
        let got = run_case(&dir, &url, block_bytes);
        // A backend may differ where its dialect must (Redshift widens a column by moving
        // it to the end of the table): then `expected.<backend>.txt` says how.
        let specific = dir.join(format!("expected.{backend}.txt"));
        let expected_path = if specific.exists() {
            specific
        } else {
            dir.join("expected.txt")
        };
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "--- {backend}: {} differs. got:\n{got}\n--- expected:\n{expected}",
                dir.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_cases_duckdb() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    check_all(
        "duckdb",
        || ("duckdb://:memory:".to_string(), Box::new(())),
        update,
        BLOCK_BYTES,
    );
}

/// Read a line or two per block, most records are normalized ahead on helper threads
/// (a file's single block starts with its `SCHEMA`, which the helpers leave to the
/// loader), and blocks handed out before a `SCHEMA` changed their stream are read again by
/// the loader: the tables, ids and states are still exactly the expected ones.
#[test]
fn golden_cases_duckdb_read_in_small_blocks() {
    check_all(
        "duckdb",
        || ("duckdb://:memory:".to_string(), Box::new(())),
        false,
        1,
    );
}

/// The same cases, the same expected tables, on PostgreSQL.
#[test]
fn golden_cases_postgres() {
    check_all(
        "postgres",
        || {
            let db = observes_testkit::TestDatabase::create();
            (db.url.clone(), Box::new(db))
        },
        false,
        BLOCK_BYTES,
    );
}

/// And in Redshift mode (its dialect and S3 staging, on PostgreSQL): batches of three rows go
/// through S3, smaller ones through bound INSERTs, so both load paths are covered.
#[test]
fn golden_cases_redshift() {
    check_all(
        "redshift",
        || {
            let db = observes_testkit::TestDatabase::create();
            (db.redshift_url(3), Box::new(db))
        },
        false,
        BLOCK_BYTES,
    );
}

/// Passes everything to a warehouse and keeps the SQL it was sent.
struct Recording {
    inner: Box<dyn Warehouse>,
    sql: Vec<String>,
}

impl Warehouse for Recording {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }
    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> observes_warehouse::Result<u64> {
        self.sql.push(sql.to_string());
        self.inner.execute(sql, params)
    }
    fn query_with_columns(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> observes_warehouse::Result<(Vec<String>, Vec<Vec<SqlValue>>)> {
        self.sql.push(sql.to_string());
        self.inner.query_with_columns(sql, params)
    }
    fn begin(&mut self) -> observes_warehouse::Result<()> {
        self.inner.begin()
    }
    fn commit(&mut self) -> observes_warehouse::Result<()> {
        self.inner.commit()
    }
    fn rollback(&mut self) -> observes_warehouse::Result<()> {
        self.inner.rollback()
    }
    fn table_columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> observes_warehouse::Result<Option<Vec<(String, observes_model::ColumnType)>>> {
        self.inner.table_columns(schema, table)
    }
    fn bulk_append(
        &mut self,
        schema: &str,
        table: &str,
        batch: &arrow_array::RecordBatch,
    ) -> observes_warehouse::Result<()> {
        self.inner.bulk_append(schema, table, batch)
    }
}

/// What Redshift does not have, as it would appear in SQL text.
const NOT_IN_REDSHIFT: &[&str] = &[
    "ON CONFLICT",
    "RETURNING",
    "JSONB",
    " SERIAL",
    "GENERATED ",
    "CREATE INDEX",
    "FORMAT BINARY",
    "FROM STDIN",
    "WITH (FORCE)",
    "ARRAY[",
    "UNNEST(",
    "DISTINCT ON",
    "FILTER (WHERE",
    "LATERAL",
    " UUID",
    "CREATE DOMAIN",
    "ALTER COLUMN",
    "INSERT OR REPLACE",
    "QUALIFY",
    "EXCLUDE (",
    "TRY_CAST",
    " TEXT",
    "JSON ",
    "::",
    "ILIKE ANY",
    "MERGE INTO",
    "CREATE TEMP",
    "LIMIT 0",
];

/// Every statement the loader sends in Redshift mode, over all golden cases, is SQL
/// Redshift accepts: nothing from the list above, identifiers within 127 bytes, VARCHAR
/// within 65,535 bytes.
#[test]
fn the_sql_sent_in_redshift_mode_is_redshift_sql() {
    let mut sql = Vec::new();
    for dir in case_dirs() {
        let db = observes_testkit::TestDatabase::create();
        let inner = observes_warehouse::connect(&db.redshift_url(3)).unwrap();
        let mut wh = Recording {
            inner,
            sql: Vec::new(),
        };
        run_case_on(&dir, &mut wh, BLOCK_BYTES);
        // The dump at the end is the test's, not the loader's.
        let dump_start = wh
            .sql
            .iter()
            .rposition(|s| s.contains("information_schema.tables"))
            .unwrap_or(wh.sql.len());
        sql.extend(wh.sql.drain(..dump_start));
    }
    assert!(sql.len() > 100, "recorded {} statements", sql.len());
    assert!(
        sql.iter()
            .any(|s| s.starts_with("DELETE FROM") && s.contains(" USING ")),
        "merge was exercised"
    );
    for statement in &sql {
        let upper = statement.to_uppercase();
        for banned in NOT_IN_REDSHIFT {
            assert!(
                !upper.contains(banned),
                "{banned:?} is not Redshift SQL: {statement}"
            );
        }
        for identifier in statement.split('"').skip(1).step_by(2) {
            assert!(
                identifier.len() <= 127,
                "identifier over 127 bytes: {identifier}"
            );
        }
        for width in upper.split("VARCHAR(").skip(1) {
            let n: usize = width.split(')').next().unwrap().parse().unwrap();
            assert!(n <= 65_535, "VARCHAR({n}) in {statement}");
        }
    }
}

/// A text longer than Redshift stores is bad input: quarantined (or failing the load),
/// never cut.
#[test]
fn text_over_65535_bytes_is_bad_input_in_redshift_mode() {
    let db = observes_testkit::TestDatabase::create();
    let mut wh = observes_warehouse::connect(&db.redshift_url(1_000)).unwrap();
    let long = "x".repeat(70_000);
    let input = format!(
        "{{\"type\":\"SCHEMA\",\"stream\":\"notes\",\"schema\":{{\"properties\":{{\"id\":{{\"type\":\"integer\"}},\"body\":{{\"type\":\"string\"}}}}}},\"key_properties\":[\"id\"]}}\n\
         {{\"type\":\"RECORD\",\"stream\":\"notes\",\"record\":{{\"id\":1,\"body\":\"{long}\"}}}}\n\
         {{\"type\":\"RECORD\",\"stream\":\"notes\",\"record\":{{\"id\":2,\"body\":\"fits\"}}}}\n"
    );
    let config = LoadConfig {
        on_invalid: OnInvalid::Quarantine,
        ..LoadConfig::new("notes", "raw")
    };
    let mut loader = Loader::begin(wh.as_mut(), config).unwrap();
    let mut stream = MessageStream::from_reader(std::io::Cursor::new(input.into_bytes()));
    loader
        .drive(&mut stream, |_| Ok::<(), LoadError>(()))
        .unwrap();
    loader.finish().unwrap();
    let rows = wh.query("SELECT id FROM raw.notes", &[]).unwrap();
    assert_eq!(rows, vec![vec![SqlValue::Int(2)]]);
    let rejects = wh
        .query(
            "SELECT line, reason, LENGTH(record) FROM raw._observes_rejects",
            &[],
        )
        .unwrap();
    assert_eq!(
        rejects,
        vec![vec![
            SqlValue::Int(2),
            SqlValue::Text("field \"body\": a text of 70000 bytes is longer than the warehouse stores (65535 bytes)".into()),
            // The rejected record is kept, cut to what the table holds, with a marker.
            SqlValue::Int(65_535),
        ]]
    );
}
