//! Crash safety: `observes run` killed with SIGKILL anywhere in a load, then run again,
//! ends with exactly the tables and state of a run that was never interrupted: no row
//! lost, none duplicated, in `append` mode too.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

const RECORDS: u64 = 3000;
const CHECKPOINT_EVERY: u64 = 500;

struct Setup {
    _dir: tempfile::TempDir,
    _db: Option<observes_testkit::TestDatabase>,
    root: PathBuf,
    url: String,
}

impl Setup {
    fn new(backend: Backend, mode: &str, records: u64) -> Setup {
        Setup::committing_every(backend, mode, records, 0)
    }

    /// A STATE commits once `commit_records` records wait (0: every STATE commits).
    fn committing_every(backend: Backend, mode: &str, records: u64, commit_records: u64) -> Setup {
        Setup::committing(
            backend,
            mode,
            records,
            &format!("commit_records = {commit_records}"),
        )
    }

    /// A STATE commits as the pipeline's `commit` lines say.
    fn committing(backend: Backend, mode: &str, records: u64, commit: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (url, db) = fresh_warehouse(backend, &root);
        // Small batches: several sends (and so several kill points) per checkpoint.
        let config = format!(
            "warehouse = \"{url}\"\nstate = \"state\"\n\n[pipelines.crash]\nsource = \"synthetic\"\nrecords = {records}\ncheckpoint_every = {CHECKPOINT_EVERY}\nschema = \"ci\"\nwrite = \"{mode}\"\nbatch_rows = 700\n{commit}\n"
        );
        std::fs::write(root.join("observes.toml"), config).unwrap();
        Setup {
            _dir: dir,
            _db: db,
            root,
            url,
        }
    }

    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        query_url(&self.url, sql)
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = observes();
        cmd.current_dir(&self.root)
            .args(["run", "crash", "--config", "observes.toml"]);
        cmd
    }

    fn run(&self) {
        let out = self.command().output().unwrap();
        assert!(out.status.success(), "run failed: {}", stderr(&out));
    }

    /// Runs with a failpoint; the process must die by SIGKILL there.
    fn run_killed_at(&self, point: &str) {
        common::run_killed_at(self.command(), point);
    }

    fn warehouse_position(&self) -> Option<u64> {
        let rows = self.query(
            "SELECT CAST(state AS VARCHAR) FROM ci._observes_state WHERE pipeline = 'crash'",
        );
        rows.first().map(|r| position(&r[0]))
    }

    fn store_position(&self) -> Option<u64> {
        std::fs::read_to_string(self.root.join("state/crash/state.json"))
            .ok()
            .map(|s| position(&s))
    }

    /// What survived a kill is exactly a committed checkpoint (a multiple of `every`
    /// records, or all of them), and the rows are the records its state covers.
    fn committed_after_kill(&self, every: u64, label: &str) -> Option<u64> {
        let committed = self.warehouse_position();
        if let Some(p) = committed {
            assert!(
                p % every == 0 || p == RECORDS,
                "{label}: committed position {p}"
            );
            let n = self.query("SELECT COUNT(*) FROM ci.jobs")[0][0]
                .parse::<u64>()
                .unwrap();
            assert_eq!(
                n, p,
                "{label}: rows committed = records covered by the committed state"
            );
        }
        committed
    }

    /// Runs again: the tables equal an uninterrupted run's, and the warehouse and the
    /// (repaired) store hold the last state.
    fn rerun_ends_as_uninterrupted(&self, expected: &[Vec<Vec<String>>], label: &str) {
        self.run();
        assert_eq!(
            self.snapshot(),
            expected,
            "{label}: tables differ from an uninterrupted run"
        );
        assert_eq!(self.warehouse_position(), Some(RECORDS), "{label}");
        assert_eq!(
            self.store_position(),
            Some(RECORDS),
            "{label}: the store was repaired"
        );
    }

    /// The data as a user compares it: every column but the load-specific ids, children
    /// tied to their parent's key.
    fn snapshot(&self) -> Vec<Vec<Vec<String>>> {
        let meta = [
            "_observes_load_id",
            "_observes_id",
            "_observes_parent_id",
            "_observes_root_id",
            "_observes_list_idx",
        ];
        let list = |table: &str, alias: &str| {
            columns_except(&self.url, "ci", table, &meta)
                .iter()
                .map(|c| format!("{alias}.\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            self.query(&format!("SELECT {} FROM ci.jobs j ORDER BY j.id", list("jobs", "j"))),
            self.query(&format!(
                "SELECT j.id, a._observes_list_idx, {} FROM ci.jobs__artifacts a JOIN ci.jobs j ON a._observes_parent_id = j._observes_id ORDER BY 1, 2",
                list("jobs__artifacts", "a")
            )),
            self.query(
                "SELECT j.id, t._observes_list_idx, t.value FROM ci.jobs__tag_list t JOIN ci.jobs j ON t._observes_root_id = j._observes_id ORDER BY 1, 2",
            ),
            // Orphans would mean a child committed without its parent (or the reverse).
            self.query(
                "SELECT (SELECT COUNT(*) FROM ci.jobs__artifacts WHERE _observes_parent_id NOT IN (SELECT _observes_id FROM ci.jobs)), \
                        (SELECT COUNT(*) FROM ci.jobs__tag_list WHERE _observes_root_id NOT IN (SELECT _observes_id FROM ci.jobs))",
            ),
        ]
    }
}

fn position(state: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(state).unwrap();
    v.pointer("/synthetic/position")
        .and_then(|p| p.as_u64())
        .unwrap()
}

fn reference(backend: Backend, mode: &str) -> Vec<Vec<Vec<String>>> {
    let setup = Setup::new(backend, mode, RECORDS);
    setup.run();
    let snapshot = setup.snapshot();
    assert_eq!(snapshot[0].len(), RECORDS as usize);
    assert_eq!(snapshot[3], rows(&[&["0", "0"]]));
    snapshot
}

fn crash_points() -> Vec<String> {
    // Sends happen about every 200 records.
    let mut points = Vec::new();
    for n in [1, 2, 5, 9, 14] {
        points.push(format!("flushed:{n}"));
    }
    // Seven commits (six checkpoints and the final one); the last checkpoint's state is
    // confirmed by the final commit, so six states reach the store.
    for n in [1, 3, 7] {
        points.push(format!("before-commit:{n}"));
    }
    for n in [1, 3, 6] {
        points.push(format!("after-commit:{n}"));
    }
    points
}

fn check_mode(backend: Backend, mode: &str) {
    let expected = reference(backend, mode);
    for point in crash_points() {
        let setup = Setup::new(backend, mode, RECORDS);
        setup.run_killed_at(&point);
        let committed = setup.committed_after_kill(CHECKPOINT_EVERY, &point);
        let (name, n) = point.split_once(':').unwrap();
        let n: u64 = n.parse().unwrap();
        match name {
            "before-commit" => {
                assert_eq!(
                    committed,
                    (n > 1).then(|| (n - 1) * CHECKPOINT_EVERY),
                    "{point}"
                );
                // Commits run while loading goes on, so the last confirmed state may not
                // have reached the store yet: it is at most one checkpoint behind (and the
                // re-run repairs it from the warehouse, asserted below).
                let store = setup.store_position();
                let one_behind = committed
                    .and_then(|c| c.checked_sub(CHECKPOINT_EVERY))
                    .filter(|c| *c > 0);
                assert!(
                    store == committed || store == one_behind,
                    "{point}: the store has {store:?}, the warehouse {committed:?}"
                );
            }
            "after-commit" => {
                // Killed while handing out checkpoint n's state: the next checkpoint's
                // commit was already sent, so it may have landed too.
                let this = (n * CHECKPOINT_EVERY).min(RECORDS);
                let next = ((n + 1) * CHECKPOINT_EVERY).min(RECORDS);
                assert!(
                    committed == Some(this) || committed == Some(next),
                    "{point}: the warehouse has {committed:?}"
                );
                assert_eq!(
                    setup.store_position(),
                    (n > 1).then(|| (n - 1) * CHECKPOINT_EVERY),
                    "{point}: the store is one behind"
                );
            }
            _ => {}
        }
        setup.rerun_ends_as_uninterrupted(
            &expected,
            &format!("{backend:?} {mode}, killed at {point}"),
        );
        let loads = setup.query("SELECT status FROM ci._observes_loads ORDER BY load_id");
        assert_eq!(loads.last().unwrap()[0], "completed", "{point}");
        // The killed load is marked aborted by the re-run, unless its final commit (which
        // marks it completed) had landed.
        if committed.is_some() {
            match loads[0][0].as_str() {
                "completed" => assert_eq!(
                    committed,
                    Some(RECORDS),
                    "{point}: completed, yet not all committed"
                ),
                status => assert_eq!(status, "aborted", "{point}"),
            }
        }
    }
}

#[test]
fn append_survives_sigkill_anywhere_duckdb() {
    check_mode(Backend::DuckDb, "append");
}

#[test]
fn merge_survives_sigkill_anywhere_duckdb() {
    check_mode(Backend::DuckDb, "merge");
}

#[test]
fn append_survives_sigkill_anywhere_postgres() {
    check_mode(Backend::Postgres, "append");
}

#[test]
fn merge_survives_sigkill_anywhere_postgres() {
    check_mode(Backend::Postgres, "merge");
}

#[test]
fn append_survives_sigkill_anywhere_redshift() {
    check_mode(Backend::Redshift, "append");
}

#[test]
fn merge_survives_sigkill_anywhere_redshift() {
    check_mode(Backend::Redshift, "merge");
}

/// Under batched commits (the default policy) only whole batches commit: a kill leaves
/// exactly the last committed batch, and the re-run ends as an uninterrupted run does.
#[test]
fn batched_commits_survive_sigkill_anywhere() {
    // Checkpoints every 500 records, a commit once 1,000 wait: at 1,000, 2,000, 3,000.
    batches_of_1000_survive_sigkill_anywhere("commit_records = 1000");
}

/// A commit bounded by bytes: the same, when the record count never bounds it.
#[test]
fn commits_bounded_by_bytes_survive_sigkill_anywhere() {
    // 500 synthetic records normalize to 259,000-269,000 bytes of rows, so a STATE
    // commits once two checkpoints wait: at 1,000, 2,000, 3,000 again.
    batches_of_1000_survive_sigkill_anywhere("commit_records = 1000000\ncommit_bytes = \"400KB\"");
}

fn batches_of_1000_survive_sigkill_anywhere(commit: &str) {
    const COMMIT_RECORDS: u64 = 1000;
    for backend in [Backend::DuckDb, Backend::Postgres] {
        let expected = reference(backend, "append");
        for point in [
            "flushed:2",
            "flushed:9",
            "before-commit:1",
            "before-commit:2",
            "before-commit:3",
            "after-commit:1",
            "after-commit:2",
        ] {
            let setup = Setup::committing(backend, "append", RECORDS, commit);
            setup.run_killed_at(point);
            let committed =
                setup.committed_after_kill(COMMIT_RECORDS, &format!("{backend:?} {point}"));
            let (name, n) = point.split_once(':').unwrap();
            let n: u64 = n.parse().unwrap();
            match name {
                "before-commit" => assert_eq!(
                    committed,
                    (n > 1).then(|| (n - 1) * COMMIT_RECORDS),
                    "{backend:?} {point}"
                ),
                "after-commit" => assert!(
                    committed == Some(n * COMMIT_RECORDS)
                        || committed == Some((n + 1) * COMMIT_RECORDS),
                    "{backend:?} {point}: the warehouse has {committed:?}"
                ),
                _ => {}
            }
            setup.rerun_ends_as_uninterrupted(
                &expected,
                &format!("{backend:?}, {commit}, killed at {point}"),
            );
        }
    }
}

#[test]
fn repeated_crashes_then_a_clean_run() {
    let expected = reference(Backend::DuckDb, "append");
    let setup = Setup::new(Backend::DuckDb, "append", RECORDS);
    for point in [
        "flushed:3",
        "before-commit:2",
        "after-commit:1",
        "flushed:8",
    ] {
        setup.run_killed_at(point);
    }
    setup.run();
    assert_eq!(setup.snapshot(), expected);
}

#[test]
fn sigkill_at_arbitrary_moments() {
    for backend in [Backend::DuckDb, Backend::Postgres] {
        sigkill_at_arbitrary_moments_on(backend);
    }
}

fn sigkill_at_arbitrary_moments_on(backend: Backend) {
    let records = 20_000;
    let expected = {
        let s = Setup::new(backend, "append", records);
        s.run();
        s.snapshot()
    };
    let setup = Setup::new(backend, "append", records);
    // Delays spread over a run's life; whatever they hit, the outcome is the same.
    for delay_ms in [40, 150, 90, 300, 220] {
        let mut child = setup.command().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    setup.run();
    assert_eq!(setup.snapshot(), expected);
    assert_eq!(setup.warehouse_position(), Some(records));
}

/// Commits large enough that DuckDB writes whole row groups into the file while the
/// transaction is still open (each row group as the next one starts): a kill before the
/// commit must leave none of them visible, and one after it exactly the committed ones.
#[test]
fn row_groups_written_before_the_commit_survive_sigkill() {
    // 300,000 records, a commit once 250,000 wait: two row groups per table are written
    // before the first COMMIT.
    const BIG: u64 = 300_000;
    const COMMIT_RECORDS: u64 = 250_000;
    let summary = |setup: &Setup| {
        setup.query(
            "SELECT (SELECT COUNT(*) FROM ci.jobs), (SELECT COUNT(DISTINCT id) FROM ci.jobs), \
             (SELECT SUM(id) FROM ci.jobs), (SELECT COUNT(*) FROM ci.jobs__artifacts), \
             (SELECT COUNT(*) FROM ci.jobs__tag_list)",
        )
    };
    let uninterrupted = Setup::committing_every(Backend::DuckDb, "append", BIG, COMMIT_RECORDS);
    uninterrupted.run();
    let expected = summary(&uninterrupted);
    assert_eq!(expected[0][0], BIG.to_string());
    for (point, committed) in [
        ("before-commit:1", None),
        ("after-commit:1", Some(COMMIT_RECORDS)),
    ] {
        let setup = Setup::committing_every(Backend::DuckDb, "append", BIG, COMMIT_RECORDS);
        setup.run_killed_at(point);
        assert_eq!(setup.warehouse_position(), committed, "{point}");
        // The table itself is created in the first data transaction.
        let rows = match committed {
            None => setup.query(
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = 'ci' AND table_name = 'jobs'",
            ),
            Some(_) => setup.query("SELECT COUNT(*) FROM ci.jobs"),
        };
        assert_eq!(
            rows[0][0],
            committed.unwrap_or(0).to_string(),
            "{point}: rows = the committed state's"
        );
        setup.run();
        assert_eq!(summary(&setup), expected, "{point}");
        assert_eq!(setup.warehouse_position(), Some(BIG), "{point}");
        assert_eq!(setup.store_position(), Some(BIG), "{point}");
    }
}

/// Rows too wide to gather are streamed into an insert that runs while they come
/// (DuckDB's threads write row groups into the file as they fill): a kill while it runs or
/// before its commit leaves exactly the rows of the commits before, and feeding the rest
/// ends with every record once.
#[test]
fn streamed_wide_rows_survive_sigkill_before_their_commit() {
    const RECORDS: u64 = 12_000;
    const COMMIT_RECORDS: u64 = 4_000;
    let schema = r#"{"type":"SCHEMA","stream":"w","key_properties":["id"],"schema":{"type":"object","properties":{"id":{"type":"integer"},"pad":{"type":"string"}}}}"#;
    // 2,600 bytes a record, a function of its id; a STATE every 1,000.
    let lines = |from: u64| -> String {
        let mut text = format!("{schema}\n");
        for id in from + 1..=RECORDS {
            let pad = format!("{id:>12}-").repeat(200);
            text.push_str(&format!(
                "{{\"type\":\"RECORD\",\"stream\":\"w\",\"record\":{{\"id\":{id},\"pad\":\"{pad}\"}}}}\n"
            ));
            if id % 1_000 == 0 {
                text.push_str(&format!(
                    "{{\"type\":\"STATE\",\"value\":{{\"done\":{id}}}}}\n"
                ));
            }
        }
        text
    };
    let target = |dir: &tempfile::TempDir, input: &str| {
        let file = dir.path().join("input.singer");
        std::fs::write(&file, input).unwrap();
        let mut cmd = observes();
        cmd.env("OBSERVES_LOG", "observes_warehouse=debug")
            .args([
                "target",
                &format!("duckdb://{}", dir.path().join("wh.duckdb").display()),
            ])
            .args(["--schema", "s", "--write", "append"])
            .args(["--commit-records", &COMMIT_RECORDS.to_string()])
            .stdin(std::fs::File::open(file).unwrap());
        cmd
    };
    // Rows, distinct ids, and rows whose pad is not their id's.
    let check = |dir: &tempfile::TempDir| -> (u64, u64, u64) {
        let rows = query(
            &dir.path().join("wh.duckdb"),
            "SELECT COUNT(*), COUNT(DISTINCT id), \
               COUNT(*) FILTER (WHERE pad IS DISTINCT FROM repeat(lpad(id::VARCHAR, 12, ' ') || '-', 200)) \
             FROM s.w",
        );
        let n = |i: usize| rows[0][i].parse::<u64>().unwrap();
        (n(0), n(1), n(2))
    };

    let clean = tempfile::tempdir().unwrap();
    let out = target(&clean, &lines(0)).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The rows went the streaming way, which this test is about.
    assert!(stderr(&out).contains("streamed"), "{}", stderr(&out));
    assert_eq!(check(&clean), (RECORDS, RECORDS, 0));

    for (point, committed) in [
        ("flushed:1", None),
        ("flushed:3", None),
        ("before-commit:1", Some(0)),
        ("before-commit:2", Some(COMMIT_RECORDS)),
        ("before-commit:3", Some(2 * COMMIT_RECORDS)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        run_killed_at(target(&dir, &lines(0)), point);
        let exists = !query(
            &dir.path().join("wh.duckdb"),
            "SELECT 1 FROM information_schema.tables WHERE table_schema = 's' AND table_name = 'w'",
        )
        .is_empty();
        let (rows, distinct, wrong) = if exists { check(&dir) } else { (0, 0, 0) };
        assert_eq!((distinct, wrong), (rows, 0), "{point}");
        assert_eq!(
            rows % COMMIT_RECORDS,
            0,
            "{point}: {rows} rows, not whole commits"
        );
        if let Some(committed) = committed {
            assert_eq!(rows, committed, "{point}");
        }
        let out = target(&dir, &lines(rows)).output().unwrap();
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        assert_eq!(check(&dir), (RECORDS, RECORDS, 0), "{point}");
    }
}
