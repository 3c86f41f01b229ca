//! `observes job cancel-ci-jobs` and `observes tap gitlab|checkly` against the fakes.

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use common::{observes, stderr, stdout};
use observes_fakes::checkly::{ChecklyOptions, FakeCheckly};
use observes_fakes::gitlab::{FakeGitlab, GitlabOptions};
use observes_fakes::Fault;
use serde_json::Value;

fn gitlab_toml(dir: &std::path::Path, fake: &FakeGitlab) -> std::path::PathBuf {
    let path = dir.join("gitlab.toml");
    let projects: Vec<String> = fake
        .project_paths()
        .iter()
        .map(|p| format!("{p:?}"))
        .collect();
    std::fs::write(
        &path,
        format!(
            "api_url = \"{}\"\nprojects = [{}]\ntoken_env = \"TEST_GITLAB_TOKEN\"\n[http]\nbackoff_ms = 5\nmax_backoff_ms = 20\nrequests_per_second = 1000\n",
            fake.api_url(),
            projects.join(", ")
        ),
    )
    .unwrap();
    path
}

/// Queued jobs (created, pending, running) created before `cutoff`, per the fake.
fn stuck_jobs(fake: &FakeGitlab, cutoff: DateTime<Utc>) -> BTreeSet<i64> {
    fake.world()
        .jobs
        .iter()
        .filter(|j| ["created", "pending", "running"].contains(&j["status"].as_str().unwrap()))
        .filter(|j| {
            DateTime::parse_from_rfc3339(j["created_at"].as_str().unwrap()).unwrap() < cutoff
        })
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

fn statuses(fake: &FakeGitlab) -> Vec<(i64, String)> {
    fake.world()
        .jobs
        .iter()
        .map(|j| {
            (
                j["id"].as_i64().unwrap(),
                j["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn cancel_ci_jobs_cancels_exactly_the_old_queued_jobs_and_dry_run_changes_nothing() {
    // Queued work spans the last three days: some of it is older than 36 hours.
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = gitlab_toml(dir.path(), &fake);
    let stuck = stuck_jobs(&fake, Utc::now() - Duration::hours(36));
    let all_queued = stuck_jobs(&fake, Utc::now() + Duration::hours(1));
    assert!(
        !stuck.is_empty() && stuck.len() < all_queued.len(),
        "{stuck:?} of {all_queued:?}"
    );

    let before = statuses(&fake);
    let out = observes()
        .env("TEST_GITLAB_TOKEN", &fake.token)
        .args(["job", "cancel-ci-jobs", "--config"])
        .arg(&config)
        .args(["--older-than", "36h", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let listed: BTreeSet<i64> = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, stuck);
    assert_eq!(report["would_cancel"], stuck.len());
    assert_eq!(statuses(&fake), before, "a dry run changes nothing");

    // One cancel fails for good; the rest go on.
    let first = *stuck.iter().next().unwrap();
    fake.server
        .inject(&format!("/jobs/{first}/cancel"), Fault::status(403), 1);
    let out = observes()
        .env("TEST_GITLAB_TOKEN", &fake.token)
        .args(["job", "cancel-ci-jobs", "--config"])
        .arg(&config)
        .args(["--older-than", "36h"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        text.ends_with(&format!(
            "{} cancelled, 0 already finished, 1 failed\n",
            stuck.len() - 1
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("job {first} ")) && text.contains("FAILED: POST"),
        "{text}"
    );
    assert!(
        stderr(&out).contains(&format!("1 of {} jobs could not be cancelled", stuck.len())),
        "{}",
        stderr(&out)
    );
    let after = statuses(&fake);
    for ((id, old), (_, new)) in before.iter().zip(&after) {
        let expected = if stuck.contains(id) && *id != first {
            "canceled"
        } else {
            old.as_str()
        };
        assert_eq!(new, expected, "job {id}");
    }
}

#[test]
fn tap_gitlab_writes_singer_messages_and_resumes_from_a_state_file() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = gitlab_toml(dir.path(), &fake);
    let out = observes()
        .env("TEST_GITLAB_TOKEN", &fake.token)
        .args(["tap", "gitlab", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let messages: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let records = |stream: &str| {
        messages
            .iter()
            .filter(|m| m["type"] == "RECORD" && m["stream"] == stream)
            .count()
    };
    assert_eq!(records("jobs"), 240);
    assert_eq!(records("merge_requests"), 90);
    let schema = messages
        .iter()
        .find(|m| m["type"] == "SCHEMA" && m["stream"] == "jobs")
        .unwrap();
    assert_eq!(schema["key_properties"], serde_json::json!(["id"]));
    let state = messages
        .iter()
        .rev()
        .find(|m| m["type"] == "STATE")
        .unwrap();
    assert!(!stdout(&out).contains(&fake.token));

    // From the final state, only what changed comes out.
    let state_path = dir.path().join("state.json");
    std::fs::write(&state_path, state["value"].to_string()).unwrap();
    {
        let mut world = fake.world();
        let project = world.project_ids()[0];
        world.add_issue(project);
    }
    let out = observes()
        .env("TEST_GITLAB_TOKEN", &fake.token)
        .args(["tap", "gitlab", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let issues: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|m| m["type"] == "RECORD" && m["stream"] == "issues")
        .collect();
    // The new issue, plus each project's newest known one (the walk restarts at its
    // bookmark's timestamp, inclusive).
    assert_eq!(issues.len(), 3);
    let newest = fake.world().issues.last().unwrap()["id"].clone();
    assert!(issues.iter().any(|m| m["record"]["id"] == newest));
}

#[test]
fn tap_reports_a_missing_token_by_its_variable_name() {
    let fake = FakeGitlab::start(GitlabOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = gitlab_toml(dir.path(), &fake);
    let out = observes()
        .env_remove("TEST_GITLAB_TOKEN")
        .args(["tap", "gitlab", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("GitLab token: set the environment variable TEST_GITLAB_TOKEN (or give it in the config)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.server.requests(), 0);
}

#[test]
fn tap_checkly_emits_every_stream() {
    let fake = FakeCheckly::start(ChecklyOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkly.toml");
    std::fs::write(
        &path,
        format!(
            "api_url = \"{}\"\naccount_id = \"{}\"\napi_key_env = \"TEST_CHECKLY_KEY\"\nresults_requests_per_second = 1000\n[http]\nrequests_per_second = 1000\n",
            fake.api_url(),
            fake.account_id
        ),
    )
    .unwrap();
    let out = observes()
        .env("TEST_CHECKLY_KEY", &fake.api_key)
        .args(["tap", "checkly", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let streams: BTreeSet<String> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|m| m["type"] == "SCHEMA")
        .map(|m| m["stream"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streams.len(), 11, "{streams:?}");
    assert!(!stdout(&out).contains(&fake.api_key));
}

#[test]
fn sample_repo_and_tap_code_emit_every_commit_then_nothing_from_the_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repos/acme/web");
    let out = observes()
        .args(["sample-repo", "--commits", "50", "--merge-every", "5"])
        .arg(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let again = observes()
        .args(["sample-repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    std::fs::write(dir.path().join("code.toml"), "root = \"repos\"\n").unwrap();
    let tap = |state: Option<&std::path::Path>| {
        let mut cmd = observes();
        cmd.args(["tap", "code", "--config"])
            .arg(dir.path().join("code.toml"));
        if let Some(s) = state {
            cmd.arg("--state").arg(s);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let messages = tap(None);
    let commits = messages
        .iter()
        .filter(|m| m["type"] == "RECORD" && m["stream"] == "commits")
        .count();
    assert_eq!(commits, 50, "merges are left out");
    let state = messages
        .iter()
        .rev()
        .find(|m| m["type"] == "STATE")
        .unwrap()["value"]
        .clone();
    let tips = state["bookmarks"]["commits"]["acme/web"]["tips"]
        .as_array()
        .unwrap();
    assert_eq!(tips.len(), 2, "main and side");
    let state_file = dir.path().join("state.json");
    std::fs::write(&state_file, state.to_string()).unwrap();
    let records = tap(Some(&state_file))
        .iter()
        .filter(|m| m["type"] == "RECORD")
        .count();
    assert_eq!(records, 0);
}

#[test]
fn source_check_describes_a_definition_or_names_the_line_of_its_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.toml");
    let good = "about = \"Example: organizations and their projects.\"\n\
        [settings]\ntoken = \"an API token\"\n\
        [client]\nbase_url = \"https://api.example.com/v2\"\n\
        auth = { type = \"bearer\", token = \"{config.token}\" }\n\
        paginator = { type = \"link_header\" }\n\
        [[streams]]\nname = \"organizations\"\npath = \"/organizations\"\nkey = [\"id\"]\n\
        [[streams]]\nname = \"projects\"\nparent = \"organizations\"\npath = \"/organizations/{parent.id}/projects\"\nkey = [\"id\"]\n";
    std::fs::write(&file, good).unwrap();
    let out = observes()
        .args(["source", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "{}: Example: organizations and their projects.\nstreams: organizations, projects (per organizations)\nsettings: token (an API token)\n",
            file.display()
        )
    );
    std::fs::write(
        &file,
        good.replace("parent = \"organizations\"", "parent = \"orgs\""),
    )
    .unwrap();
    let out = observes()
        .args(["source", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}:14:10: no stream named \"orgs\" to be the parent (streams: organizations, projects)\n",
            file.display()
        )
    );
}

#[test]
fn tap_rest_runs_a_definition_as_a_singer_tap() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"items": [{"id": 1, "name": "a", "token": "hidden"}, {"id": 2, "name": "b", "token": "hidden"}]}"#;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("things.toml"),
        "about = \"Things\"\n[settings]\nhost = \"host:port\"\nkey = \"an API key\"\n\
         [client]\nbase_url = \"http://{config.host}/api\"\nauth = { type = \"query\", name = \"api_key\", value = \"{config.key}\" }\n\
         [[streams]]\nname = \"things\"\npath = \"/things\"\nrecords = \"/items\"\nkey = [\"id\"]\ndrop = [\"token\"]\n",
    )
    .unwrap();
    let config = dir.path().join("things-config.toml");
    std::fs::write(
        &config,
        format!("definition = \"things.toml\"\n[values]\nhost = \"{host}\"\nkey = {{ env = \"OBSERVES_TEST_THINGS_KEY\" }}\n"),
    )
    .unwrap();
    let out = observes()
        .env("OBSERVES_TEST_THINGS_KEY", "k3y-s3cret")
        .args(["tap", "rest", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /api/things?api_key=k3y-s3cret HTTP/1.1\r\n"),
        "{request}"
    );
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|m| m["type"].as_str().unwrap()).collect();
    // A STATE after the page, which is also the run's last (not sent twice).
    assert_eq!(kinds, ["SCHEMA", "RECORD", "RECORD", "STATE"]);
    assert_eq!(lines[0]["key_properties"], serde_json::json!(["id"]));
    assert_eq!(
        lines[1]["record"],
        serde_json::json!({"id": 1, "name": "a"})
    );
    assert!(!stdout(&out).contains("k3y-s3cret") && !stderr(&out).contains("k3y-s3cret"));
}
