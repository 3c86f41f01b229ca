//! Bad input from an API or a config: a clear error naming the stream, the record and the
//! problem, and no state moved past what was read correctly.

use observes_fakes::checkly::{ChecklyOptions, FakeCheckly};
use observes_fakes::gitlab::{FakeGitlab, GitlabOptions};
use observes_fakes::Fault;
use observes_singer::Message;
use observes_sources::checkly::{self, ChecklyConfig};
use observes_sources::gitlab::{self, GitlabConfig};
use observes_sources::HttpSettings;
use serde_json::Value;

fn quick_http() -> HttpSettings {
    HttpSettings {
        max_attempts: 2,
        backoff_ms: 1,
        max_backoff_ms: 5,
        requests_per_second: Some(1000.0),
        ..HttpSettings::default()
    }
}

fn gitlab_config(fake: &FakeGitlab, streams: &[&str]) -> GitlabConfig {
    let mut config = GitlabConfig::for_fake(
        &fake.api_url(),
        &fake.token,
        fake.project_paths()[..1].to_vec(),
    );
    config.streams = Some(streams.iter().map(|s| s.to_string()).collect());
    config.http = quick_http();
    config
}

/// Runs the GitLab source; returns its messages and its error text.
fn run_gitlab(config: &GitlabConfig) -> (Vec<Message>, Option<String>) {
    let mut messages = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(gitlab::run(config, None, &mut |m: Message| {
        messages.push(m);
        true
    }));
    (
        messages,
        result
            .err()
            .map(|e| observes_runtime::chain(&e).to_string()),
    )
}

fn states(messages: &[Message]) -> Vec<Value> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::State(s) => Some(s.value.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_record_without_its_replication_key_is_named() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    fake.server.inject(
        "/merge_requests",
        Fault::Body(r#"[{"id": 5001, "title": "no timestamp"}]"#.into()),
        1,
    );
    let (messages, error) = run_gitlab(&gitlab_config(&fake, &["merge_requests"]));
    assert_eq!(
        error.as_deref(),
        Some("stream merge_requests: record 5001 has no valid \"updated_at\"")
    );
    assert!(
        states(&messages)
            .iter()
            .all(|s| s["bookmarks"]["merge_requests"].is_null()),
        "no bookmark moved"
    );
}

#[test]
fn a_list_item_that_is_not_an_object_is_named() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    fake.server
        .inject("/members/all", Fault::Body("[1, 2]".into()), 1);
    let (_, error) = run_gitlab(&gitlab_config(&fake, &["project_members"]));
    assert_eq!(
        error.as_deref(),
        Some("stream project_members: expected an object, got 1")
    );
}

#[test]
fn a_listing_that_is_not_a_list_is_named() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    fake.server.inject(
        "/issues",
        Fault::Body(r#"{"message": "maintenance"}"#.into()),
        1,
    );
    let (_, error) = run_gitlab(&gitlab_config(&fake, &["issues"]));
    let error = error.unwrap();
    assert!(
        error.starts_with("stream issues: /api/v4/projects/")
            && error.ends_with("/issues: expected a JSON array"),
        "{error}"
    );
}

#[test]
fn a_job_without_an_id_is_named() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    fake.server.inject(
        "/jobs",
        Fault::Body(r#"[{"name": "lint", "status": "running"}]"#.into()),
        1,
    );
    let (_, error) = run_gitlab(&gitlab_config(&fake, &["jobs"]));
    assert_eq!(
        error.as_deref(),
        Some("stream jobs: a job has no numeric \"id\"")
    );
}

#[test]
fn json_that_stays_broken_gives_up_with_the_parse_error() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    fake.server
        .inject("/pipelines", Fault::Body("[{\"id\": ".into()), 5);
    let (_, error) = run_gitlab(&gitlab_config(&fake, &["pipelines"]));
    let error = error.unwrap();
    assert!(
        error.starts_with("stream pipelines: GET http://")
            && error.ends_with("gave up after 2 attempts: the body is not valid JSON (EOF while parsing a value at line 1 column 8)"),
        "{error}"
    );
}

#[test]
fn bad_settings_are_named() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let mut config = gitlab_config(&fake, &["pipelines", "wikis"]);
    assert_eq!(
        run_gitlab(&config).1.as_deref(),
        Some("unknown GitLab stream \"wikis\" (known: projects, project_members, pipelines, jobs, merge_requests, issues)")
    );
    config.streams = None;
    config.start_date = Some("last tuesday".into());
    assert_eq!(
        run_gitlab(&config).1.as_deref(),
        Some("GitLab start_date \"last tuesday\" is not an RFC 3339 timestamp")
    );
    config.start_date = None;
    config.api_url = "not a url".into();
    assert_eq!(
        run_gitlab(&config).1.as_deref(),
        Some("GitLab api_url \"not a url\": relative URL without a base")
    );
    assert_eq!(fake.server.requests(), 0);

    let dir = std::env::temp_dir().join(format!("observes-bad-config-{}", std::process::id()));
    std::fs::write(
        &dir,
        "api_url = \"x\"\nprojects = [\"a\"]\ntokn = \"typo\"\n",
    )
    .unwrap();
    let err = observes_sources::read_config::<GitlabConfig>(&dir)
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_file(&dir);
    assert!(err.contains("unknown field `tokn`"), "{err}");
}

#[test]
fn checkly_wrong_shapes_are_named() {
    let fake = FakeCheckly::start(ChecklyOptions::default()).unwrap();
    fake.server
        .inject("/v1/reporting", Fault::Body(r#"{"rows": []}"#.into()), 1);
    let mut config = ChecklyConfig::for_fake(&fake.api_url(), &fake.account_id, &fake.api_key);
    config.streams = Some(vec!["reporting".into()]);
    config.http = quick_http();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(checkly::run(&config, None, &mut |_: Message| true));
    assert_eq!(
        result.unwrap_err().to_string(),
        "stream reporting: expected a JSON array"
    );

    config.streams = Some(vec!["checks".into()]);
    fake.server
        .inject("/v1/checks", Fault::Body("[\"5d6e\"]".into()), 1);
    let result = rt.block_on(checkly::run(&config, None, &mut |_: Message| true));
    assert_eq!(
        result.unwrap_err().to_string(),
        "stream checks: expected an object, got \"5d6e\""
    );
}
