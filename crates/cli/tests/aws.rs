//! Deploying on AWS, through the real binary: the demo's config set up for AWS gets its
//! IAM policies (a golden file) and one job definition per job, with no secret in any
//! output; a bad secret reference is refused at config load; a config in S3 (moto's
//! server) runs a Singer-file pipeline with its data and state in S3 too.

mod common;
use common::*;

use observes_state::StateStore;

/// The demo's own `observes.toml`, as `observes run demo` writes it, set up for AWS:
/// Redshift (a password in its URL), state and storage in S3, AWS Batch with an image,
/// and two secrets by reference.
fn demo_on_aws(demo: &std::path::Path) -> std::path::PathBuf {
    let out = observes()
        .args(["run", "demo", "--dir"])
        .arg(demo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(demo.join("observes.toml")).unwrap();
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the demo's config has no {from:?}");
        text.replacen(from, to, 1)
    };
    let text = replace(
        text,
        "warehouse = \"duckdb://warehouse.duckdb\"\nstate = \"state\"\n",
        "warehouse = \"redshift://loader:s3cret-pw@analytics.abc123.us-east-1.redshift.amazonaws.com:5439/analytics?staging=s3://acme-observes/staging&iam_role=arn:aws:iam::123456789012:role/observes-redshift-copy\"\n\
         state = \"s3://acme-observes/state\"\nstorage = \"s3://acme-observes/storage\"\n",
    );
    let text = replace(
        text,
        "[queue]\nbackend = \"local\"\ndir = \"queue\"\nconcurrency = 2\n",
        "[queue]\nbackend = \"aws-batch\"\njob_queue = \"observes\"\nregion = \"us-east-1\"\n\
         image = \"123456789012.dkr.ecr.us-east-1.amazonaws.com/observes:1.0\"\n\
         execution_role_arn = \"arn:aws:iam::123456789012:role/observes-execution\"\n\
         job_role_arn = \"arn:aws:iam::123456789012:role/observes-job\"\n",
    );
    let text = replace(
        text,
        "[jobs.\"/observes/job/cancel-ci-jobs\"]\n",
        "[jobs.\"/observes/job/cancel-ci-jobs\"]\nsecrets = { GITLAB_TOKEN = \"aws-sm:arn:aws:secretsmanager:us-east-1:123456789012:secret:observes/gitlab-AbCdEf:token::\" }\n",
    );
    let text = replace(
        text,
        "[jobs.\"/observes/dashboard/alert/ci_health\"]\n",
        "[jobs.\"/observes/dashboard/alert/ci_health\"]\nsecrets = { OBSERVES_ALERT_WEBHOOK = \"aws-ssm:/observes/alert-webhook\" }\n",
    );
    let path = demo.join("aws.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_demos_config_on_aws_gets_its_policies_and_a_definition_per_job() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let config = demo_on_aws(&demo);

    let out = observes()
        .args(["aws", "policy", "--account", "123456789012", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let policy = stdout(&out);
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/aws-policy.json");
    if std::env::var_os("OBSERVES_BLESS").is_some() {
        std::fs::write(&golden, &policy).unwrap();
    }
    assert_eq!(
        policy,
        std::fs::read_to_string(&golden).unwrap(),
        "the policy changed; if on purpose, rerun with OBSERVES_BLESS=1 and review the diff"
    );

    let out = observes()
        .args(["batch", "definitions", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let definitions: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let names: Vec<&str> = definitions
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["jobDefinitionName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "observes-dashboard-alert-ci_health",
            "observes-dashboard-alert-uptime",
            "observes-dashboard-send-ci_health",
            "observes-etl-bugsnag",
            "observes-etl-checkly",
            "observes-etl-ci-jobs",
            "observes-etl-code",
            "observes-etl-code-compute-bills",
            "observes-etl-code-mirror",
            "observes-etl-delighted",
            "observes-etl-gitlab-product",
            "observes-etl-gitlab-sample",
            "observes-etl-mailchimp",
            "observes-etl-matomo",
            "observes-etl-timedoctor",
            "observes-etl-timedoctor-backup",
            "observes-etl-zoho-crm",
            "observes-etl-zoho-crm-prepare",
            "observes-job-batch-stability",
            "observes-job-cancel-ci-jobs",
            "observes-scheduler-tick",
        ],
        "one definition per job of the catalogue, and the scheduler's tick"
    );
    let cancel = definitions
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["jobDefinitionName"] == "observes-job-cancel-ci-jobs")
        .unwrap();
    assert_eq!(
        cancel["containerProperties"]["secrets"],
        serde_json::json!([{"name": "GITLAB_TOKEN", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:observes/gitlab-AbCdEf:token::"}])
    );
    assert_eq!(
        cancel["containerProperties"]["command"],
        serde_json::json!([
            "job",
            "cancel-ci-jobs",
            "--config",
            "data/gitlab.toml",
            "--older-than",
            "8h"
        ])
    );
    for text in [&policy, &printed] {
        assert!(
            !text.contains("s3cret-pw"),
            "a password in the output: {text}"
        );
    }

    // Registered on moto's Batch: every definition once, then nothing.
    observes_testkit::s3_endpoint();
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "job_queue = \"observes\"\n",
        &format!(
            "job_queue = \"observes\"\ndefinition_prefix = \"t{}-\"\n",
            std::process::id()
        ),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let apply = || {
        let out = observes()
            .args(["batch", "definitions", "--apply", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stderr(&out).contains("s3cret-pw"));
        stdout(&out)
    };
    let first = apply();
    assert!(first.ends_with("\n21 registered, 0 unchanged\n"), "{first}");
    assert!(
        first.contains(&format!(
            "registered t{}-observes-job-cancel-ci-jobs:1 (/observes/job/cancel-ci-jobs)\n",
            std::process::id()
        )),
        "{first}"
    );
    let second = apply();
    assert!(
        second.ends_with("\n0 registered, 21 unchanged\n"),
        "{second}"
    );
}

#[test]
fn a_secret_with_a_bad_reference_is_refused_at_config_load_naming_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("observes.toml");
    let write = |secret: &str, backend: &str| {
        std::fs::write(
            &config,
            format!(
                "warehouse = \"duckdb://w.duckdb\"\n[queue]\nbackend = \"{backend}\"\njob_queue = \"q\"\nimage = \"i\"\n\
                 [jobs.\"/observes/etl/x\"]\ncommand = [\"observes\", \"run\", \"x\"]\nsecrets = {{ TOKEN = \"{secret}\" }}\n"
            ),
        )
        .unwrap();
    };
    let job_list = || {
        observes()
            .args(["job", "list", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    write(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
        "local",
    );
    let out = job_list();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "{}: job \"/observes/etl/x\": secret TOKEN: \"arn:aws:secretsmanager:us-east-1:123456789012:secret:x\" is not a reference (write env:NAME, aws-sm:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or aws-ssm:/path/name)",
            config.display()
        )),
        "{}",
        stderr(&out)
    );
    write("env:TOKEN", "aws-batch");
    let out = job_list();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "job \"/observes/etl/x\": secret TOKEN: env:TOKEN cannot reach an AWS Batch job (write aws-sm:… or aws-ssm:…)"
        ),
        "{}",
        stderr(&out)
    );
    write("aws-ssm:/observes/token", "aws-batch");
    let out = job_list();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_config_in_s3_runs_its_singer_file_pipeline_with_data_and_state_in_s3() {
    observes_testkit::s3_endpoint();
    let bucket = observes_testkit::s3_bucket();
    let prefix = format!("s3://{bucket}/prod");
    let store = StateStore::open(&prefix).unwrap();
    let put = |path: &str, text: &str| {
        let (folder, name) = path.rsplit_once('/').unwrap_or(("", path));
        store
            .wait(store.put_bytes(folder, name, text.as_bytes().to_vec().into()))
            .unwrap();
    };
    put(
        "observes.toml",
        "warehouse = \"duckdb://warehouse.duckdb\"\nstate = \"state\"\n\
         [pipelines.gitlab_sample]\nsource = \"singer-file\"\npath = \"data/gitlab.singer\"\nschema = \"gitlab\"\nwrite = \"merge\"\n",
    );
    put("data/gitlab.singer", observes_app::demo::GITLAB_SAMPLE);
    put(
        "dashboards/projects.toml",
        "title = \"Projects\"\n[[panels]]\ntitle = \"Projects\"\nkind = \"table\"\nsql = \"select id from gitlab.projects\"\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let url = format!("{prefix}/observes.toml");
    let run = || {
        let out = observes()
            .env("OBSERVES_CONFIG_CACHE", cache.path())
            .env("OBSERVES_LOG", "info")
            .args(["run", "gitlab_sample", "--json", "--config", &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("read the config from S3"),
            "{}",
            stderr(&out)
        );
        for text in [stdout(&out), stderr(&out)] {
            assert!(
                !text.contains("observes-test-secret"),
                "the AWS secret key in: {text}"
            );
        }
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()
    };
    let first = run();
    assert_eq!(first["commits"], 1, "{first}");
    let records: u64 = first["streams"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(records, 81);
    // The state is in S3 under the config's prefix, and equals the warehouse's copy.
    let state = store
        .wait(store.get("state/gitlab_sample"))
        .unwrap()
        .expect("the state in S3");
    assert_eq!(state, first["state"]);
    let db = cache.path().join("warehouse.duckdb");
    assert_eq!(
        query(&db, "select count(*) from gitlab.projects"),
        rows(&[&["3"]])
    );
    // The dashboards beside it, by the same OBSERVES_CONFIG a container gets.
    let out = observes()
        .env("OBSERVES_CONFIG_CACHE", cache.path())
        .env("OBSERVES_CONFIG", &url)
        .args(["dashboard", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "projects\tProjects\n");

    // A changed data file is fetched again; a removed dashboard leaves the copy.
    let more = format!(
        "{}{}\n{}\n",
        observes_app::demo::GITLAB_SAMPLE,
        r#"{"type":"RECORD","stream":"projects","record":{"id":999,"name":"new","path_with_namespace":"acme/new"}}"#,
        r#"{"type":"STATE","value":{"added":999}}"#
    );
    put("data/gitlab.singer", &more);
    store
        .wait(store.delete("dashboards", "projects.toml"))
        .unwrap();
    let second = run();
    assert_eq!(second["load_id"], 2, "{second}");
    assert_eq!(
        query(&db, "select count(*) from gitlab.projects"),
        rows(&[&["4"]])
    );
    assert!(!cache.path().join("dashboards/projects.toml").exists());
    assert!(
        !cache.path().join("state").exists(),
        "the state folder is not copied"
    );

    let out = observes()
        .args([
            "job",
            "list",
            "--config",
            &format!("s3://{bucket}/nowhere/observes.toml"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "s3://{bucket}/nowhere/observes.toml: no such object"
        )),
        "{}",
        stderr(&out)
    );
}
