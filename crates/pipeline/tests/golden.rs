//! Golden tests: Singer files → exact tables and rows in DuckDB.
//!
//! Each folder under `tests/golden/` holds `input.singer` (and `input2.singer`, … loaded
//! as later runs), an optional `options` file (`merge`, `replace`, `quarantine`, one per
//! line) and `expected.txt`, the warehouse afterwards, the same for every backend (an
//! `expected.<backend>.txt` records where a dialect must differ). Regenerate expectations with
//! `UPDATE_GOLDEN=1 cargo test -p observes-pipeline --test golden` and review the diff.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use observes_load::{LoadConfig, Loader, OnInvalid, WriteMode};
use observes_pipeline::{drive, MessageStream};

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
fn run_case(dir: &Path, url: &str) -> String {
    let options = std::fs::read_to_string(dir.join("options")).unwrap_or_default();
    let mut config = LoadConfig::new("golden", "raw");
    for option in options.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match option {
            "quarantine" => config.on_invalid = OnInvalid::Quarantine,
            mode => config.write_mode = mode.parse::<WriteMode>().unwrap(),
        }
    }
    // Tiny batches, so every case also crosses batch boundaries.
    config.batch_rows = 3;
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
    let mut wh = observes_warehouse::connect_pipelined(url).unwrap();
    let mut log = String::new();
    for (run, input) in inputs.iter().enumerate() {
        let mut loader = Loader::begin(wh.as_mut(), config.clone()).unwrap();
        let file = std::fs::File::open(input).unwrap();
        let mut stream = MessageStream::from_reader(BufReader::new(file));
        let mut committed = Vec::new();
        match drive(&mut loader, &mut stream, |s| {
            committed.push(s.to_string());
            Ok(())
        }) {
            Ok(()) => {
                let summary = loader.finish().unwrap();
                log.push_str(&format!(
                    "run {}: ok, {} commits, states {:?}\n",
                    run + 1,
                    summary.commits,
                    committed
                ));
            }
            Err(e) => {
                log.push_str(&format!("run {}: error: {e}\n", run + 1));
                loader.abort(&e.to_string());
            }
        }
    }
    log.push('\n');
    log + &observes_load::inspect::dump_schema(wh.as_mut(), "raw").unwrap()
}

/// Runs every case with a fresh warehouse from `warehouse` and compares with (or, under
/// `UPDATE_GOLDEN`, writes) the expected dumps.
fn check_all(
    backend: &str,
    warehouse: impl Fn() -> (String, Box<dyn std::any::Any>),
    update: bool,
) {
    let mut failures = Vec::new();
    for dir in case_dirs() {
        let (url, _guard) = warehouse();
        let got = run_case(&dir, &url);
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
    );
}
