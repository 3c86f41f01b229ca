//! The Time Doctor backup's purpose, for real: months backed up while the fake still
//! serves them are loaded after it has forgotten them, every worklog exactly once; a
//! backup that does not match its manifest is refused by name; re-running a month changes
//! nothing, and never shrinks a month the API has partly forgotten since.

use chrono::{DateTime, Duration, Utc};
use observes_app::{run_pipeline, Config};
use observes_fakes::timedoctor::{FakeTimeDoctor, TimeDoctorOptions};
use observes_jobs::timedoctor::back_up;
use observes_sources::timedoctor::backup::{Backed, Backups, Manifest};
use observes_sources::timedoctor::TimeDoctorConfig;
use observes_sources::window::Month;

mod common;

use common::*;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn month(text: &str) -> Month {
    text.parse().unwrap()
}

/// A fake with worklogs from late July to 2026-11-10, serving 120 days back.
fn fake() -> FakeTimeDoctor {
    FakeTimeDoctor::start(TimeDoctorOptions {
        now: at("2026-11-10T12:00:00Z"),
        history_days: 110,
        retention_days: Some(120),
        ..Default::default()
    })
    .unwrap()
}

/// A timedoctor pipeline from 2026-08-01, backed up to `backup/` beside observes.toml
/// (or not at all).
fn setup(fake: &FakeTimeDoctor, backup: bool) -> Setup {
    let settings = format!(
        "api_url = \"{}\"\nemail = \"{}\"\npassword = \"{}\"\nstart_date = \"2026-08-01T00:00:00Z\"\nretention_days = 120\n{}{}",
        fake.api_url(),
        fake.email,
        fake.password,
        if backup { "backup = \"backup\"\n" } else { "" },
        quick_http("timedoctor"),
    );
    common::setup("timedoctor", "timedoctor", "timedoctor", &settings)
}

fn settings(config: &Config) -> TimeDoctorConfig {
    config
        .pipeline("timedoctor")
        .unwrap()
        .source
        .settings::<TimeDoctorConfig>()
        .unwrap()
        .clone()
}

/// The fake's worklogs that started in `[from, to)`.
fn worklogs_between(fake: &FakeTimeDoctor, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    fake.world()
        .worklogs
        .iter()
        .filter(|w| {
            let start = at(w["start"].as_str().unwrap());
            start >= from && start < to
        })
        .count() as i64
}

fn published(backed: &Backed) -> &Manifest {
    match backed {
        Backed::Published { manifest } => manifest,
        Backed::Kept { .. } => panic!("kept, not published: {backed:?}"),
    }
}

fn backup_files(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(config.dir.join("backup/worklogs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn backed_up_months_are_loaded_after_the_api_forgot_them_each_worklog_once() {
    let fake = fake();
    let setup = setup(&fake, true);
    let config = settings(&setup.config);
    let months = [month("2026-08"), month("2026-09"), month("2026-10")];
    let report = back_up(&config, &months).unwrap();
    assert_eq!(report.months.len(), 3);
    for (entry, m) in report.months.iter().zip(months) {
        let manifest = published(&entry.backed);
        assert_eq!(manifest.month, m.to_string());
        assert_eq!(
            manifest.rows as i64,
            worklogs_between(&fake, m.start(), m.end()),
            "{m}"
        );
        assert!(manifest.file.starts_with(&format!("{m}.")), "{manifest:?}");
        let first = manifest.first.as_deref().unwrap();
        assert!(first >= m.start().to_rfc3339().as_str(), "{first}");
    }
    assert_eq!(
        backup_files(&setup.config).len(),
        6,
        "a file and a manifest per month"
    );

    // Forty days on, the fake no longer serves what started before 2026-08-22.
    fake.world().now = at("2026-11-10T12:00:00Z") + Duration::days(40);
    let everything = worklogs_between(
        &fake,
        at("2026-08-01T00:00:00Z"),
        at("2027-01-01T00:00:00Z"),
    );
    let forgotten = worklogs_between(
        &fake,
        at("2026-08-01T00:00:00Z"),
        at("2026-08-22T00:00:00Z"),
    );
    assert!(forgotten > 50, "{forgotten}");

    // Without the backup, the API alone has lost them...
    let api_only = self::setup(&fake, false);
    let summary = run_pipeline(&api_only.config, "timedoctor").unwrap();
    // The run says which months are lost, by month.
    assert_eq!(summary.notices.len(), 1, "{:?}", summary.notices);
    assert_eq!(summary.notices[0].stream, "worklogs");
    let notice = &summary.notices[0].message;
    assert!(
        notice.starts_with("months 2026-08")
            && notice.ends_with(" were never backed up and are older than retention_days (120): only what the API still serves of them is loaded"),
        "{notice}"
    );
    assert_eq!(
        count(&api_only.warehouse, "timedoctor.worklogs"),
        everything - forgotten
    );
    // ...with it, every worklog is there once: the backed-up months, then November
    // from the API.
    let summary = run_pipeline(&setup.config, "timedoctor").unwrap();
    assert!(
        summary
            .notices
            .iter()
            .all(|n| !n.message.contains("2026-08")),
        "August is backed up: {:?}",
        summary.notices
    );
    assert_eq!(count(&setup.warehouse, "timedoctor.worklogs"), everything);
    assert_eq!(
        one(
            &setup.warehouse,
            "SELECT COUNT(DISTINCT id) FROM timedoctor.worklogs"
        ),
        everything
    );
    assert_eq!(
        one(
            &setup.warehouse,
            "SELECT COUNT(*) FROM timedoctor.worklogs WHERE start_time < TIMESTAMPTZ '2026-08-22T00:00:00Z'"
        ),
        forgotten
    );
    // A second run re-reads from its bookmark and adds nothing.
    run_pipeline(&setup.config, "timedoctor").unwrap();
    assert_eq!(count(&setup.warehouse, "timedoctor.worklogs"), everything);
}

#[test]
fn a_backup_that_does_not_match_its_manifest_is_refused_by_name_and_not_loaded() {
    let fake = fake();
    let setup = setup(&fake, true);
    let config = settings(&setup.config);
    let report = back_up(&config, &[month("2026-08"), month("2026-09")]).unwrap();
    let september = published(&report.months[1].backed).clone();
    let path = setup
        .config
        .dir
        .join("backup/worklogs")
        .join(&september.file);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let err = chain(&run_pipeline(&setup.config, "timedoctor").unwrap_err()).to_string();
    let backup_dir = setup.config.dir.join("backup");
    assert!(
        err.contains(&format!(
            "stream worklogs: backup {}/worklogs/{}: its sha256 is ",
            backup_dir.display(),
            september.file
        )),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "its manifest says {} ({} bytes); nothing of 2026-09 was loaded",
            september.sha256, september.bytes
        )),
        "{err}"
    );
    // August was committed before September was read; nothing of September is there.
    let august = worklogs_between(&fake, month("2026-08").start(), month("2026-08").end());
    assert_eq!(count(&setup.warehouse, "timedoctor.worklogs"), august);
    assert_eq!(
        one(
            &setup.warehouse,
            "SELECT COUNT(*) FROM timedoctor.worklogs WHERE start_time >= TIMESTAMPTZ '2026-09-01T00:00:00Z'"
        ),
        0
    );
}

#[test]
fn re_running_a_month_changes_nothing_and_a_month_the_api_forgot_part_of_is_kept() {
    let fake = fake();
    let setup = setup(&fake, true);
    let config = settings(&setup.config);
    let first = published(&back_up(&config, &[month("2026-08")]).unwrap().months[0].backed).clone();
    let files = backup_files(&setup.config);
    let again = published(&back_up(&config, &[month("2026-08")]).unwrap().months[0].backed).clone();
    assert_eq!(
        (
            &again.file,
            &again.sha256,
            again.rows,
            &again.first,
            &again.last
        ),
        (
            &first.file,
            &first.sha256,
            first.rows,
            &first.first,
            &first.last
        ),
        "the same data makes the same file"
    );
    assert_eq!(backup_files(&setup.config), files);

    // A file left by a backup killed before its manifest is removed by the next one.
    let stray = setup
        .config
        .dir
        .join("backup/worklogs/2026-08.0123456789ab.singer.gz");
    std::fs::write(&stray, b"partial").unwrap();
    let latest =
        published(&back_up(&config, &[month("2026-08")]).unwrap().months[0].backed).clone();
    assert_eq!(backup_files(&setup.config), files);

    // The API forgets the start of August: a new backup would hold less, so the old one stays.
    fake.world().now = at("2026-11-10T12:00:00Z") + Duration::days(40);
    let report = back_up(&config, &[month("2026-08")]).unwrap();
    match &report.months[0].backed {
        Backed::Kept { manifest, served } => {
            assert_eq!(manifest, &latest);
            assert!(*served < manifest.rows, "{served}");
        }
        other => panic!("expected the backup kept, got {other:?}"),
    }
    assert_eq!(backup_files(&setup.config), files);
    let backups = Backups::open(config.backup.as_deref().unwrap()).unwrap();
    let mut records = 0;
    let read = observes_runtime::block_on(backups.each_record(&latest, |_| {
        records += 1;
        Ok(())
    }))
    .unwrap()
    .unwrap();
    assert_eq!((read, records), (latest.rows, latest.rows));
}

#[test]
fn only_whole_months_are_backed_up_and_a_backup_needs_a_location() {
    let fake = fake();
    let setup = setup(&fake, true);
    let config = settings(&setup.config);
    let err = back_up(&config, &[Month::now()]).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{} is not over yet: a backup holds whole months (the default is the last full month)",
            Month::now()
        )
    );
    let without = settings(&self::setup(&fake, false).config);
    let err = back_up(&without, &[month("2026-08")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the Time Doctor settings have no backup location (backup = \"s3://bucket/prefix\" or a folder)"
    );
}

#[test]
fn a_backed_up_month_between_months_the_api_serves_is_read_from_its_backup() {
    let fake = fake();
    let setup = setup(&fake, true);
    let config = settings(&setup.config);
    back_up(&config, &[month("2026-09")]).unwrap();
    // Work logged into September after its backup: the API has it, the backup does not.
    let mut late = fake.world().worklogs[0].clone();
    late["start"] = serde_json::json!("2026-09-15T20:00:00Z");
    late["deviceId"] = serde_json::json!("late-device");
    fake.world().add_worklog(late);
    fake.world().now = at("2026-11-10T12:00:00Z") + Duration::days(40);
    let served_in_august =
        worklogs_between(&fake, at("2026-08-22T00:00:00Z"), month("2026-08").end());
    let october_on = worklogs_between(&fake, month("2026-10").start(), at("2027-01-01T00:00:00Z"));
    let september = worklogs_between(&fake, month("2026-09").start(), month("2026-09").end()) - 1;

    run_pipeline(&setup.config, "timedoctor").unwrap();
    // August as the API still serves it, September from the backup, then the API again.
    assert_eq!(
        count(&setup.warehouse, "timedoctor.worklogs"),
        served_in_august + september + october_on
    );
    assert_eq!(
        one(
            &setup.warehouse,
            "SELECT COUNT(*) FROM timedoctor.worklogs WHERE device_id = 'late-device'"
        ),
        0
    );
}
