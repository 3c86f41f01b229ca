//! The Time Doctor source end to end: fake TD2 API → source → loader → DuckDB, with exact
//! rows, an idempotent re-run, new work merged, faults and a wrong password.

use observes_app::run_pipeline;
use observes_fakes::timedoctor::{FakeTimeDoctor, TimeDoctorOptions};
use observes_fakes::Fault;
use observes_warehouse::SqlValue;
use serde_json::json;

mod common;

use common::*;

/// A Time Doctor pipeline reading the fake up to a few hours after its last worklog.
fn setup(fake: &FakeTimeDoctor, password: &str) -> Setup {
    let last = fake
        .world()
        .worklogs
        .last()
        .map(|w| w["start"].as_str().unwrap().to_string());
    let end =
        chrono::DateTime::parse_from_rfc3339(&last.unwrap()).unwrap() + chrono::Duration::hours(6);
    let settings = format!(
        "api_url = \"{}\"\nemail = \"{}\"\npassword = \"{password}\"\nstart_date = \"{}\"\nend_date = \"{}\"\n{}",
        fake.api_url(),
        fake.email,
        (end - chrono::Duration::days(30)).to_rfc3339(),
        end.to_rfc3339(),
        quick_http("timedoctor"),
    );
    common::setup("timedoctor", "timedoctor", "timedoctor", &settings)
}

#[test]
fn timedoctor_loads_users_projects_and_every_worklog_then_only_changes() {
    let fake = FakeTimeDoctor::start(TimeDoctorOptions::default()).unwrap();
    let (users, projects, worklogs, seconds) = {
        let w = fake.world();
        let seconds: i64 = w.worklogs.iter().map(|l| l["time"].as_i64().unwrap()).sum();
        (
            w.users.len() as i64,
            w.projects.len() as i64,
            w.worklogs.len() as i64,
            seconds,
        )
    };
    assert!(worklogs > 100, "{worklogs}");
    let setup = setup(&fake, &fake.password);
    run_pipeline(&setup.config, "timedoctor").unwrap();
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM timedoctor.users"),
        users
    );
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM timedoctor.projects"),
        projects
    );
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM timedoctor.worklogs"),
        worklogs
    );
    assert_eq!(
        one(
            &setup.warehouse,
            "SELECT CAST(SUM(seconds) AS BIGINT) FROM timedoctor.worklogs"
        ),
        seconds
    );
    // One worklog, exactly as the API gave it, with the classic labels.
    let first = fake.world().worklogs[0].clone();
    let row = query(
        &setup.warehouse,
        &format!(
            "SELECT user_id, project_name, task_name, seconds, CAST(epoch(end_time) - epoch(start_time) AS BIGINT), mode, work_mode, edited \
             FROM timedoctor.worklogs WHERE user_id = '{}' AND start_time = TIMESTAMPTZ '{}'",
            first["userId"].as_str().unwrap(),
            first["start"].as_str().unwrap()
        ),
    );
    assert_eq!(row.len(), 1);
    let text = |v: &SqlValue| v.as_str().map(String::from);
    assert_eq!(text(&row[0][0]).as_deref(), first["userId"].as_str());
    assert_eq!(text(&row[0][1]).as_deref(), first["projectName"].as_str());
    assert_eq!(text(&row[0][2]).as_deref(), first["taskName"].as_str());
    assert_eq!(row[0][3].as_i64(), first["time"].as_i64());
    assert_eq!(row[0][4].as_i64(), first["time"].as_i64());
    let mode = first["mode"].as_str().unwrap();
    assert_eq!(text(&row[0][5]).as_deref(), Some(mode));
    assert_eq!(
        text(&row[0][6]).as_deref(),
        Some(observes_sources::timedoctor::work_mode(mode))
    );
    assert_eq!(row[0][7], SqlValue::Bool(mode == "manual"));
    // The password and the session token never reach the state or the warehouse.
    let state = query(
        &setup.warehouse,
        "SELECT CAST(state AS VARCHAR) FROM timedoctor._observes_state",
    );
    let state = text(&state[0][0]).unwrap();
    assert!(state.contains("done_until"), "{state}");
    assert!(!state.contains(&fake.password) && !state.contains(&fake.world().token));

    // A second run re-reads only the lookback, and merging it changes nothing.
    let before = fake.server.requests();
    run_pipeline(&setup.config, "timedoctor").unwrap();
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM timedoctor.worklogs"),
        worklogs
    );
    let second = fake.server.requests() - before;
    assert!(second < 10, "the second run made {second} requests");

    // New work inside the lookback, and an edit of a logged stretch: merged by key.
    let last = fake.world().worklogs.last().unwrap().clone();
    let mut edited = last.clone();
    edited["time"] = json!(60);
    {
        let mut world = fake.world();
        world.worklogs.pop();
        world.add_worklog(edited);
        let mut new = last.clone();
        new["start"] = json!("2000-01-01T00:00:00Z"); // before the range: never read
        world.add_worklog(new);
    }
    run_pipeline(&setup.config, "timedoctor").unwrap();
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM timedoctor.worklogs"),
        worklogs
    );
    assert_eq!(
        one(
            &setup.warehouse,
            "SELECT CAST(SUM(seconds) AS BIGINT) FROM timedoctor.worklogs"
        ),
        seconds - last["time"].as_i64().unwrap() + 60
    );
}

#[test]
fn timedoctor_retries_faults_and_refuses_a_wrong_password_clearly() {
    let fake = FakeTimeDoctor::start(TimeDoctorOptions::default()).unwrap();
    let worklogs = fake.world().worklogs.len() as i64;
    let setup = setup(&fake, &fake.password);
    fake.server
        .inject("/activity/worklog", Fault::too_many_requests("0"), 2);
    fake.server.inject("/users", Fault::status(503), 1);
    fake.server
        .inject_after("/activity/worklog", 2, Fault::TruncatedBody, 1);
    run_pipeline(&setup.config, "timedoctor").unwrap();
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM timedoctor.worklogs"),
        worklogs
    );

    let wrong = setup_wrong(&fake);
    let err = run_pipeline(&wrong.config, "timedoctor").unwrap_err();
    let message = chain(&err).to_string();
    assert_eq!(
        message,
        format!(
            "source timedoctor: stream login: POST {}/api/1.0/login: HTTP 401: {{\"message\":\"Invalid email or password\"}}",
            fake.api_url()
        )
    );
    assert!(!message.contains("wrong-password-123"));
}

fn setup_wrong(fake: &FakeTimeDoctor) -> Setup {
    setup(fake, "wrong-password-123")
}

#[test]
fn timedoctor_refuses_to_cut_a_list_short() {
    let fake = FakeTimeDoctor::start(TimeDoctorOptions {
        users: observes_sources::timedoctor::LIST_LIMIT,
        history_days: 1,
        ..Default::default()
    })
    .unwrap();
    let setup = setup(&fake, &fake.password);
    let message = chain(&run_pipeline(&setup.config, "timedoctor").unwrap_err()).to_string();
    assert_eq!(
        message,
        "source timedoctor: stream users: the company has 1000 or more users, more than one call reads; nothing was loaded"
    );
}
