//! `observes job timedoctor-backup` killed with SIGKILL at random points: what storage
//! holds is always whole months (every manifest names a file that matches it), and a run
//! after the kills ends with exactly the backups of a run never interrupted.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use observes_fakes::timedoctor::{FakeTimeDoctor, TimeDoctorOptions};
use serde_json::Value;
use sha2::{Digest, Sha256};

const MONTHS: [&str; 4] = ["--from", "2026-02", "--to", "2026-10"];

fn folder(fake: &FakeTimeDoctor) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "warehouse = \"duckdb://wh.duckdb\"\n\n[pipelines.timedoctor]\nsource = \"timedoctor\"\nschema = \"timedoctor\"\n\
         [pipelines.timedoctor.settings]\napi_url = \"{}\"\nemail = \"{}\"\npassword = \"{}\"\nbackup = \"backup\"\n\
         [pipelines.timedoctor.settings.http]\nbackoff_ms = 5\nmax_backoff_ms = 50\nrequests_per_second = 1000\n",
        fake.api_url(),
        fake.email,
        fake.password
    );
    std::fs::write(dir.path().join("observes.toml"), config).unwrap();
    dir
}

fn backup(dir: &Path) -> std::process::Command {
    let mut cmd = observes();
    cmd.current_dir(dir)
        .args(["job", "timedoctor-backup", "--json"])
        .args(MONTHS);
    cmd
}

/// Month → (data file, sha256, rows), checked: every manifest's file exists and matches
/// it, byte for byte; a data file without a manifest is allowed (a kill before it), and so
/// is the folder store's own staging file of an upload cut short (`name#N`, which no
/// reader sees, as S3 shows no incomplete multipart upload).
fn complete_months(dir: &Path, label: &str) -> BTreeMap<String, (String, String, u64)> {
    let worklogs: PathBuf = dir.join("backup/worklogs");
    let mut months = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&worklogs) else {
        return months;
    };
    for entry in entries {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if staging(&name) {
            continue;
        }
        let Some(month) = name.strip_suffix(".json") else {
            assert!(name.ends_with(".singer.gz"), "{label}: stray {name}");
            continue;
        };
        let manifest: Value = serde_json::from_slice(&std::fs::read(worklogs.join(&name)).unwrap())
            .unwrap_or_else(|e| panic!("{label}: {name} is not whole JSON: {e}"));
        let file = manifest["file"].as_str().unwrap().to_string();
        let bytes = std::fs::read(worklogs.join(&file))
            .unwrap_or_else(|e| panic!("{label}: {name} names {file}, which is missing: {e}"));
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(manifest["sha256"], sha.as_str(), "{label}: {file}");
        assert_eq!(manifest["bytes"], bytes.len() as u64, "{label}: {file}");
        let rows = manifest["rows"].as_u64().unwrap();
        months.insert(month.to_string(), (file, sha, rows));
    }
    months
}

fn staging(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn a_backup_killed_anywhere_leaves_whole_months_and_a_rerun_completes_it() {
    let fake = FakeTimeDoctor::start(TimeDoctorOptions {
        now: "2026-11-10T12:00:00Z".parse().unwrap(),
        history_days: 300,
        users: 6,
        ..Default::default()
    })
    .unwrap();

    let reference = folder(&fake);
    let started = Instant::now();
    let out = backup(reference.path()).output().unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcomes: Vec<(&str, &str)> = report["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["month"].as_str().unwrap(), m["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes.len(), 9, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|(_, o)| *o == "published"),
        "{outcomes:?}"
    );
    let expected = complete_months(reference.path(), "uninterrupted");
    assert_eq!(expected.len(), 9);
    assert!(
        expected.values().all(|(_, _, rows)| *rows > 100),
        "{expected:?}"
    );

    // Each kill in a folder that already holds the first three months (as a backup
    // interrupted on the fourth would), at deterministic "random" points of the run.
    let seeded = || {
        let dir = folder(&fake);
        let to = dir.path().join("backup/worklogs");
        std::fs::create_dir_all(&to).unwrap();
        for (month, (file, _, _)) in expected.iter().take(3) {
            for name in [format!("{month}.json"), file.clone()] {
                let from = reference.path().join("backup/worklogs").join(&name);
                std::fs::copy(from, to.join(&name)).unwrap();
            }
        }
        dir
    };
    let first_three: BTreeMap<_, _> = expected
        .iter()
        .take(3)
        .map(|(m, b)| (m.clone(), b.clone()))
        .collect();
    let mut seed: u64 = 0x5eed;
    let (mut partial, mut running) = (0, 0);
    let mut last = None;
    for kill in 0..12 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = took.mul_f64((seed >> 33) as f64 / (1u64 << 31) as f64);
        let dir = seeded();
        let mut child = backup(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_none() {
            running += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let label = format!("kill {kill} after {wait:?}");
        let now = complete_months(dir.path(), &label);
        for (month, backed) in &now {
            assert_eq!(Some(backed), expected.get(month), "{label}: {month}");
        }
        for (month, backed) in &first_three {
            assert_eq!(
                now.get(month),
                Some(backed),
                "{label}: {month} was complete before"
            );
        }
        if now.len() < expected.len() {
            partial += 1;
        }
        last = Some(dir);
    }
    // The kills fell inside the runs, most before the last month was published.
    assert!(
        running >= 6,
        "only {running} of 12 kills found the backup running"
    );
    assert!(partial >= 3, "only {partial} kills left months to do");

    let killed = last.unwrap();
    let out = backup(killed.path()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(complete_months(killed.path(), "after the re-run"), expected);
    let files = std::fs::read_dir(killed.path().join("backup/worklogs"))
        .unwrap()
        .filter(|e| !staging(&e.as_ref().unwrap().file_name().to_string_lossy()))
        .count();
    assert_eq!(
        files, 18,
        "a data file and a manifest per month, nothing else"
    );
}

#[test]
fn bad_arguments_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("observes.toml"),
        "warehouse = \"duckdb://wh.duckdb\"\n\n[pipelines.ci]\nsource = \"synthetic\"\nrecords = 1\nschema = \"ci\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = observes()
            .current_dir(dir.path())
            .args(["job", "timedoctor-backup"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        stderr(&out)
    };
    assert_eq!(
        run(&["--pipeline", "ci", "--month", "2026-10"]),
        "error: pipeline \"ci\" in observes.toml is not a timedoctor pipeline\n"
    );
    assert!(run(&["--month", "2026-13"])
        .contains("\"2026-13\" is not a month like 2026-10 (or current, previous)"),);
    assert_eq!(
        run(&["--from", "2026-10", "--to", "2026-08"]),
        "error: --from 2026-10 comes after --to 2026-08\n"
    );
}
