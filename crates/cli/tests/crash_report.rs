//! The fault-injection report (`scripts/crash-report N`): `observes run` killed with
//! SIGKILL at random moments, for every backend, write mode and kind of source (a resuming
//! tap, a `singer-file`, a built-in API source against its fake), then run again to the
//! end. Each trial must end with the tables of a run that was never interrupted. Ignored
//! by `cargo test` (it is long); the script runs it with the number of kills wanted.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;
use observes_fakes::gitlab::{FakeGitlab, GitlabOptions};

#[derive(Clone, Copy, Debug)]
enum Source {
    /// The built-in generator, resuming from its bookmark like any Singer tap.
    Tap,
    SingerFile,
    /// The GitLab source against the fake GitLab.
    Api,
}

const ID_COLUMNS: [&str; 4] = [
    "_observes_load_id",
    "_observes_id",
    "_observes_parent_id",
    "_observes_root_id",
];

struct Trial {
    _dir: tempfile::TempDir,
    _db: Option<observes_testkit::TestDatabase>,
    root: std::path::PathBuf,
    url: String,
}

impl Trial {
    fn new(backend: Backend, mode: &str, source: Source, fixtures: &Fixtures) -> Trial {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (url, db) = fresh_warehouse(backend, &root);
        let source = match source {
            Source::Tap => {
                "source = \"synthetic\"\nrecords = 6000\ncheckpoint_every = 500\n".to_string()
            }
            Source::SingerFile => format!("source = \"singer-file\"\npath = {:?}\n", fixtures.file),
            Source::Api => format!("source = \"gitlab\"\nconfig = {:?}\n", fixtures.gitlab_toml),
        };
        std::fs::write(
            root.join("observes.toml"),
            format!(
                "warehouse = \"{url}\"\nstate = \"state\"\n\n[pipelines.p]\n{source}schema = \"s\"\nwrite = \"{mode}\"\nbatch_rows = 700\ncommit_records = 0\n"
            ),
        )
        .unwrap();
        Trial {
            _dir: dir,
            _db: db,
            root,
            url,
        }
    }

    fn command(&self) -> std::process::Command {
        // scripts/crash-report points this at the release build: thousands of runs.
        let mut cmd = match std::env::var_os("OBSERVES_CRASH_BIN") {
            Some(bin) => {
                let mut cmd = std::process::Command::new(bin);
                cmd.env("OBSERVES_LOG", "warn")
                    .env_remove("OBSERVES_FAILPOINT");
                cmd
            }
            None => observes(),
        };
        cmd.current_dir(&self.root)
            .env("TEST_GITLAB_TOKEN", "glpat-fake-token")
            .args(["run", "p", "--config", "observes.toml"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    fn run(&self) -> Duration {
        let started = Instant::now();
        let out = self.command().output().unwrap();
        assert!(out.status.success(), "run failed: {}", stderr(&out));
        started.elapsed()
    }

    /// Runs and kills the run after `after`; whether the kill landed before it finished.
    fn run_killed_after(&self, after: Duration) -> bool {
        let mut child = self.command().spawn().unwrap();
        let deadline = Instant::now() + after;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "a run failed on its own: {status:?}");
                return false;
            }
            if Instant::now() >= deadline {
                child.kill().unwrap();
                let status = child.wait().unwrap();
                return status.signal() == Some(9);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Every data table's rows without their load-specific ids, sorted, and the state.
    fn dump(&self) -> Vec<(String, Vec<Vec<String>>)> {
        let mut tables: Vec<String> = query_url(
            &self.url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 's'",
        )
        .into_iter()
        .map(|r| r[0].clone())
        .filter(|t| !t.starts_with("_observes_") && !t.contains("__observes_"))
        .collect();
        tables.sort();
        let mut dump: Vec<(String, Vec<Vec<String>>)> = tables
            .into_iter()
            .map(|table| {
                let columns = columns_except(&self.url, "s", &table, &ID_COLUMNS)
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut rows =
                    query_url(&self.url, &format!("SELECT {columns} FROM s.\"{table}\""));
                rows.sort();
                (table, rows)
            })
            .collect();
        dump.push((
            "_observes_state".into(),
            query_url(
                &self.url,
                "SELECT CAST(state AS VARCHAR) FROM s._observes_state",
            ),
        ));
        dump
    }
}

struct Fixtures {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
    gitlab_toml: std::path::PathBuf,
    _fake: FakeGitlab,
}

fn fixtures() -> Fixtures {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.singer");
    let out = observes()
        .args([
            "tap",
            "synthetic",
            "--records",
            "6000",
            "--checkpoint-every",
            "500",
            "--seed",
            "7",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&file, out.stdout).unwrap();
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let projects: Vec<String> = fake
        .project_paths()
        .iter()
        .map(|p| format!("{p:?}"))
        .collect();
    let gitlab_toml = dir.path().join("gitlab.toml");
    std::fs::write(
        &gitlab_toml,
        format!(
            "api_url = \"{}\"\nprojects = [{}]\ntoken_env = \"TEST_GITLAB_TOKEN\"\n[http]\nrequests_per_second = 1000\n",
            fake.api_url(),
            projects.join(", ")
        ),
    )
    .unwrap();
    Fixtures {
        _dir: dir,
        file,
        gitlab_toml,
        _fake: fake,
    }
}

/// A cheap, seeded generator of kill moments (no dependency for one number a trial).
struct Moments(u64);

impl Moments {
    fn next_fraction(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
#[ignore = "long: scripts/crash-report runs it"]
fn crash_report() {
    let kills_wanted: usize = std::env::var("OBSERVES_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("OBSERVES_CRASH_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5eed);
    let fixtures = fixtures();
    let mut moments = Moments(seed | 1);
    let mut divergences = Vec::new();
    println!("backend   mode     source       runs  kills  divergences");
    let mut total = (0, 0);
    for backend in [Backend::DuckDb, Backend::Postgres, Backend::Redshift] {
        for mode in ["append", "merge", "replace"] {
            // The kills of one mode and backend go round the sources.
            // An API source re-reads a lookback window when it resumes (edited items are
            // caught that way), which append keeps twice by design: it is loaded with
            // merge or replace, and so is tried with those.
            let sources: &[Source] = match mode {
                "append" => &[Source::Tap, Source::SingerFile],
                _ => &[Source::Tap, Source::SingerFile, Source::Api],
            };
            for (s, &source) in sources.iter().enumerate() {
                let reference = Trial::new(backend, mode, source, &fixtures);
                let took = reference.run();
                let expected = reference.dump();
                let wanted =
                    kills_wanted / sources.len() + usize::from(s < kills_wanted % sources.len());
                let (mut runs, mut kills, mut diverged) = (1, 0, 0);
                while kills < wanted {
                    let trial = Trial::new(backend, mode, source, &fixtures);
                    let after = took.mul_f64(moments.next_fraction());
                    runs += 1;
                    if trial.run_killed_after(after) {
                        kills += 1;
                    }
                    trial.run();
                    runs += 1;
                    if trial.dump() != expected {
                        diverged += 1;
                        divergences.push(format!(
                            "{backend:?} {mode} {source:?} killed after {after:?}"
                        ));
                    }
                }
                total = (total.0 + runs, total.1 + kills);
                println!(
                    "{:<9} {mode:<8} {:<12} {runs:>4} {kills:>6} {diverged:>12}",
                    format!("{backend:?}"),
                    format!("{source:?}")
                );
            }
        }
    }
    println!(
        "total: {} runs, {} kills, {} divergences",
        total.0,
        total.1,
        divergences.len()
    );
    assert!(divergences.is_empty(), "{divergences:#?}");
}
