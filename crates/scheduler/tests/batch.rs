//! The AWS Batch queue against an AWS-compatible endpoint (moto's server, started by
//! ./scripts/test): submitted jobs carry the queue, definition, overrides, retry strategy,
//! timeout and tags; the scheduler's tick submits to it exactly once; batch-stability
//! reads its jobs back — failed ones (no Docker: moto fails them) and, with moto told not
//! to use Docker, succeeded ones.

use std::collections::BTreeMap;

use observes_scheduler::batch::{BatchQueue, BatchSettings, JobDetail};
use observes_scheduler::catalogue::{Catalogue, RawJob, SchedulerSettings};
use observes_scheduler::queue::Run;
use observes_scheduler::stability::{self, Failure};
use observes_scheduler::tick::Submit;

fn catalogue() -> Catalogue {
    let raw: BTreeMap<String, RawJob> = toml::from_str(
        r#"
["/observes/etl/checkly"]
command = ["observes", "run", "checkly"]
attempts = 3
timeout = "1h"
size = "nano"
tags = { team = "data" }
environment = { OBSERVES_LOG = "info" }
"#,
    )
    .unwrap();
    Catalogue::build(&SchedulerSettings::default(), &BTreeMap::new(), &raw).unwrap()
}

/// Sets moto's Batch to run jobs without Docker (they succeed) or with it (they fail here).
fn moto_use_docker(endpoint: &str, use_docker: bool) {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = format!("{{\"batch\": {{\"use_docker\": {use_docker}}}}}");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST /moto-api/config HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 20"), "{response}");
}

/// Creates an IAM role on moto (Batch wants a service role that exists) and returns its ARN.
fn moto_role(endpoint: &str, name: &str) -> String {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let policy = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
    let body = format!(
        "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument={policy}"
    );
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    // moto routes by the signature's service; it does not check the signature itself.
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=observes-test/20261125/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let start = response.find("<Arn>").unwrap() + 5;
    let end = response[start..].find("</Arn>").unwrap() + start;
    response[start..end].to_string()
}

/// A job queue named `name` on an unmanaged compute environment; returns the role's ARN.
fn moto_queue(queue: &BatchQueue, endpoint: &str, name: &str) -> String {
    let role = moto_role(endpoint, name);
    let env = queue
        .call(
            "createcomputeenvironment",
            &serde_json::json!({
                "computeEnvironmentName": name, "serviceRole": role,
                "type": "UNMANAGED", "state": "ENABLED",
            }),
        )
        .unwrap();
    queue
        .call(
            "createjobqueue",
            &serde_json::json!({
                "jobQueueName": name, "state": "ENABLED", "priority": 1,
                "computeEnvironmentOrder": [
                    {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}
                ],
            }),
        )
        .unwrap();
    role
}

#[test]
fn submits_with_every_setting_and_reads_jobs_back_for_stability() {
    let endpoint = observes_testkit::s3_endpoint();
    let name = format!("observes-test-{}", std::process::id());
    let mut queue = BatchQueue::connect(BatchSettings {
        job_queue: name.clone(),
        job_definition: "observes-test".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.clone()),
        ..BatchSettings::default()
    })
    .unwrap();
    moto_queue(&queue, &endpoint, &name);
    queue
        .call(
            "registerjobdefinition",
            &serde_json::json!({
                "jobDefinitionName": "observes-test", "type": "container",
                "containerProperties": {
                    "image": "ghcr.io/example/observes:latest",
                    "resourceRequirements": [
                        {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}
                    ],
                    "command": ["true"],
                },
            }),
        )
        .unwrap();
    let catalogue = catalogue();
    let job = catalogue.job("/observes/etl/checkly").unwrap();
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);

    moto_use_docker(&endpoint, true);
    let failing = Run::new(
        job,
        std::path::Path::new("."),
        Some("2026-11-25T10:00:00Z".parse().unwrap()),
    );
    assert!(!queue.exists(&failing.key).unwrap());
    queue.submit(&failing).unwrap();
    assert!(
        queue.exists(&failing.key).unwrap(),
        "found again by its key"
    );

    let listed = queue
        .call(
            "listjobs",
            &serde_json::json!({
                "jobQueue": name,
                "filters": [{"name": "JOB_NAME", "values": ["observes-etl-checkly-20261125T100000Z"]}],
            }),
        )
        .unwrap();
    let ids: Vec<&str> = listed["jobSummaryList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    let described = JobDetail::list(
        queue
            .call("describejobs", &serde_json::json!({ "jobs": ids }))
            .unwrap(),
    )
    .unwrap();
    let detail = &described[0];
    assert_eq!(detail.job_name, "observes-etl-checkly-20261125T100000Z");
    assert!(
        detail.job_queue.ends_with(&format!("job-queue/{name}")),
        "{:?}",
        detail.job_queue
    );
    assert!(
        detail
            .job_definition
            .contains("job-definition/observes-test"),
        "{:?}",
        detail.job_definition
    );
    // moto keeps the timeout, tags and command overrides (retry strategy and resource
    // overrides it drops: the wire test below checks those as sent).
    assert_eq!(
        detail
            .timeout
            .as_ref()
            .and_then(|t| t.attempt_duration_seconds),
        Some(3600)
    );
    let tags = &detail.tags;
    assert_eq!(tags.get("team").map(String::as_str), Some("data"));
    assert_eq!(
        tags.get("observes:job").map(String::as_str),
        Some("/observes/etl/checkly")
    );
    assert_eq!(
        tags.get("observes:run_key").map(String::as_str),
        Some("/observes/etl/checkly@2026-11-25T10:00:00Z")
    );
    let container = detail.container.as_ref().unwrap();
    assert_eq!(container.command, ["observes", "run", "checkly"]);
    let env: Vec<(String, String)> = container
        .environment
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert!(
        env.contains(&("OBSERVES_LOG".to_string(), "info".to_string())),
        "{env:?}"
    );
    assert!(
        env.contains(&("OBSERVES_RUN_ID".to_string(), failing.key.clone())),
        "{env:?}"
    );

    // Without Docker the job fails; then moto runs jobs without it and they succeed.
    let wait_for = |queue: &BatchQueue, key: &str| {
        for _ in 0..300 {
            let runs = queue.recent(since).unwrap();
            if let Some(r) = runs.iter().find(|r| r.key == key) {
                if r.status.finished() {
                    return r.clone();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{key} did not finish");
    };
    let failed = wait_for(&queue, &failing.key);
    assert_eq!(
        failed.status,
        observes_scheduler::RunStatus::Failed,
        "{failed:?}"
    );
    moto_use_docker(&endpoint, false);
    let ok = Run::new(
        job,
        std::path::Path::new("."),
        Some("2026-11-25T11:00:00Z".parse().unwrap()),
    );
    queue.submit(&ok).unwrap();
    let succeeded = wait_for(&queue, &ok.key);
    assert_eq!(
        succeeded.status,
        observes_scheduler::RunStatus::Succeeded,
        "{succeeded:?}"
    );

    let report = stability::report(&queue.recent(since).unwrap(), since);
    assert_eq!((report.runs, report.succeeded, report.failed()), (2, 1, 1));
    // moto without Docker starts the job and stops it with no exit code.
    let failures = &report.failures["/observes/etl/checkly"];
    assert_eq!(failures[0].failure, Failure::Failed { exit_code: None });
    assert_eq!(failures[0].id, failed.id);
}

/// SubmitJob as it goes on the wire, read by a one-request HTTP listener.
#[test]
fn submit_job_sends_overrides_retry_strategy_timeout_and_tags() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0;
        let mut authorized = false;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            // SigV4 for Batch in the region, over the headers that matter.
            authorized |= lower.starts_with("authorization: aws4-hmac-sha256 credential=observes-test/")
                && lower.contains("/us-east-1/batch/aws4_request, signedheaders=content-type;host;x-amz-content-sha256;x-amz-date, signature=");
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let reply =
            r#"{"jobArn":"arn:aws:batch:us-east-1:123456789012:job/1","jobName":"x","jobId":"1"}"#;
        write!(
            reader.get_mut(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
        (
            request_line,
            authorized,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        )
    });
    observes_testkit::s3_endpoint(); // the AWS_* credentials the chain reads
    let mut queue = BatchQueue::connect(BatchSettings {
        job_queue: "observes_soon".into(),
        job_definition: "observes:12".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
        ..BatchSettings::default()
    })
    .unwrap();
    let catalogue = catalogue();
    let run = Run::new(
        catalogue.job("/observes/etl/checkly").unwrap(),
        std::path::Path::new("."),
        Some("2026-11-25T10:00:00Z".parse().unwrap()),
    );
    queue.submit(&run).unwrap();
    let (request_line, authorized, body) = server.join().unwrap();
    assert_eq!(request_line, "POST /v1/submitjob HTTP/1.1\r\n");
    assert!(authorized, "signed with SigV4");
    assert_eq!(
        body,
        serde_json::json!({
            "jobName": "observes-etl-checkly-20261125T100000Z",
            "jobQueue": "observes_soon",
            "jobDefinition": "observes:12",
            "containerOverrides": {
                "command": ["observes", "run", "checkly"],
                "environment": [
                    {"name": "OBSERVES_LOG", "value": "info"},
                    {"name": "OBSERVES_RUN_ID", "value": "/observes/etl/checkly@2026-11-25T10:00:00Z"}
                ],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "1900"}
                ]
            },
            "retryStrategy": {"attempts": 3},
            "timeout": {"attemptDurationSeconds": 3600},
            "tags": {
                "team": "data",
                "observes:job": "/observes/etl/checkly",
                "observes:run_key": "/observes/etl/checkly@2026-11-25T10:00:00Z"
            },
            "propagateTags": true
        })
    );
}

/// Batch's own error, said plainly; a 400 is not retried.
#[test]
fn batch_errors_name_the_operation_and_batchs_message() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0; 65536];
        let _ = stream.read(&mut buf).unwrap();
        let reply =
            r#"{"__type":"ClientException","message":"Job queue observes_soon does not exist."}"#;
        write!(
            stream,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nx-amzn-ErrorType: ClientException\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
        // A retry would be refused here: the listener is gone.
        drop(listener);
    });
    observes_testkit::s3_endpoint();
    let queue = BatchQueue::connect(BatchSettings {
        job_queue: "observes_soon".into(),
        job_definition: "observes:12".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
        ..BatchSettings::default()
    })
    .unwrap();
    let err = queue
        .call(
            "listjobs",
            &serde_json::json!({"jobQueue": "observes_soon"}),
        )
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(
        err.to_string(),
        "Batch listjobs: HTTP 400: ClientException: Job queue observes_soon does not exist."
    );
    let err = BatchQueue::connect(BatchSettings {
        job_queue: "q".into(),
        job_definition: "d".into(),
        region: Some("us-east-1".into()),
        endpoint: Some("batch.example.com".into()),
        ..BatchSettings::default()
    })
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "[queue] endpoint \"batch.example.com\" is not an http(s) URL"
    );
}

/// The definitions of a catalogue, registered once, again only where a job changed; the
/// tick then submits each job to its own definition's latest revision.
#[test]
fn definitions_register_once_and_each_job_runs_on_its_own() {
    use observes_scheduler::definitions::{self, DIGEST_TAG};
    let endpoint = observes_testkit::s3_endpoint();
    let name = format!("observes-defs-{}", std::process::id());
    let prefix = format!("t{}-", std::process::id());
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/observes:1";
    let mut settings = BatchSettings {
        job_queue: name.clone(),
        image: Some(image.into()),
        definition_prefix: prefix.clone(),
        log_group: "/aws/batch/job".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.clone()),
        ..BatchSettings::default()
    };
    let setup = BatchQueue::connect(settings.clone()).unwrap();
    let role = moto_queue(&setup, &endpoint, &name);
    settings.execution_role_arn = Some(role.clone());
    settings.job_role_arn = Some(role.clone());
    let queue = BatchQueue::connect(settings.clone()).unwrap();
    let text = r#"
["/observes/etl/checkly"]
command = ["observes", "run", "checkly"]
schedule = "cron(0 * * * ? *)"
attempts = 3
timeout = "30m"
size = "nano"
tags = { team = "data" }
secrets = { CHECKLY_API_KEY = "aws-sm:arn:aws:secretsmanager:us-east-1:123456789012:secret:checkly-AbCdEf" }

["/observes/job/compute-bills"]
command = ["observes", "job", "compute-bills"]
schedule = "cron(0 3 * * ? *)"
size = "small"
secrets = { GITLAB_TOKEN = "aws-ssm:/observes/gitlab/token" }
"#;
    let catalogue = |text: &str| {
        let raw: BTreeMap<String, RawJob> = toml::from_str(text).unwrap();
        Catalogue::build(&SchedulerSettings::default(), &BTreeMap::new(), &raw).unwrap()
    };
    let config_url = Some("s3://config/prod/observes.toml");
    let defs = definitions::definitions(&catalogue(text), &settings, config_url).unwrap();
    let checkly = format!("{prefix}observes-etl-checkly");
    let bills = format!("{prefix}observes-job-compute-bills");
    let tick = format!("{prefix}observes-scheduler-tick");
    let applied = |defs: &[definitions::Definition]| -> Vec<(String, u64, bool)> {
        definitions::apply(&queue, defs)
            .unwrap()
            .into_iter()
            .map(|a| (a.name, a.revision, a.registered))
            .collect()
    };
    assert_eq!(
        applied(&defs),
        [
            (checkly.clone(), 1, true),
            (bills.clone(), 1, true),
            (tick.clone(), 1, true)
        ]
    );

    // What Batch holds is what the catalogue says.
    let described = queue
        .call(
            "describejobdefinitions",
            &serde_json::json!({"jobDefinitionName": checkly, "status": "ACTIVE"}),
        )
        .unwrap();
    let d = &described["jobDefinitions"][0];
    let container = &d["containerProperties"];
    assert_eq!(container["image"], image);
    assert_eq!(container["command"], serde_json::json!(["run", "checkly"]));
    assert_eq!(
        container["resourceRequirements"],
        serde_json::json!([{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1900"}])
    );
    assert_eq!(
        container["secrets"],
        serde_json::json!([{"name": "CHECKLY_API_KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:checkly-AbCdEf"}])
    );
    assert_eq!(
        container["environment"],
        serde_json::json!([
            {"name": "OBSERVES_CONFIG", "value": "s3://config/prod/observes.toml"},
            {"name": "OBSERVES_CONFIG_CACHE", "value": "/home/observes"},
        ])
    );
    assert_eq!(container["executionRoleArn"], role.as_str());
    assert_eq!(container["jobRoleArn"], role.as_str());
    assert_eq!(
        container["logConfiguration"],
        serde_json::json!({"logDriver": "awslogs", "options": {"awslogs-group": "/aws/batch/job", "awslogs-stream-prefix": checkly}})
    );
    assert_eq!(d["retryStrategy"]["attempts"], 3);
    assert_eq!(d["timeout"]["attemptDurationSeconds"], 1800);
    assert_eq!(d["propagateTags"], true);
    assert_eq!(d["tags"]["team"], "data");
    assert_eq!(d["tags"]["observes:job"], "/observes/etl/checkly");
    assert_eq!(d["tags"][DIGEST_TAG], defs[0].digest.as_str());
    let ssm = queue
        .call(
            "describejobdefinitions",
            &serde_json::json!({"jobDefinitionName": bills, "status": "ACTIVE"}),
        )
        .unwrap();
    assert_eq!(
        ssm["jobDefinitions"][0]["containerProperties"]["secrets"],
        serde_json::json!([{"name": "GITLAB_TOKEN", "valueFrom": "/observes/gitlab/token"}])
    );

    // Unchanged: nothing registered. One job bigger: only its definition.
    assert_eq!(
        applied(&defs),
        [
            (checkly.clone(), 1, false),
            (bills.clone(), 1, false),
            (tick.clone(), 1, false)
        ]
    );
    let bigger = text.replacen("size = \"nano\"", "size = \"medium\"", 1);
    let defs = definitions::definitions(&catalogue(&bigger), &settings, config_url).unwrap();
    assert_eq!(
        applied(&defs),
        [
            (checkly.clone(), 2, true),
            (bills.clone(), 1, false),
            (tick.clone(), 1, false)
        ]
    );
    assert_eq!(
        applied(&defs),
        [
            (checkly.clone(), 2, false),
            (bills.clone(), 1, false),
            (tick.clone(), 1, false)
        ]
    );

    // The tick submits each job to its own definition, at its latest revision.
    let store = observes_state::StateStore::open("memory://").unwrap();
    let mut submitter = BatchQueue::connect(settings).unwrap();
    let cat = catalogue(&bigger);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let at = |t: &str| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let tick = |submitter: &mut BatchQueue, now| {
        rt.block_on(observes_scheduler::tick::tick(
            &cat,
            &store,
            submitter,
            std::path::Path::new("."),
            now,
        ))
        .unwrap()
        .unwrap()
    };
    assert!(tick(&mut submitter, at("2026-11-25T02:30:00Z")).is_empty());
    let submitted: Vec<String> = tick(&mut submitter, at("2026-11-25T03:00:30Z"))
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(
        submitted,
        [
            "/observes/etl/checkly@2026-11-25T03:00:00Z",
            "/observes/job/compute-bills@2026-11-25T03:00:00Z"
        ]
    );
    let mut ids: Vec<String> = Vec::new();
    for status in [
        "SUBMITTED",
        "PENDING",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
    ] {
        let page = queue
            .call(
                "listjobs",
                &serde_json::json!({"jobQueue": name, "jobStatus": status}),
            )
            .unwrap();
        ids.extend(
            page["jobSummaryList"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["jobId"].as_str().unwrap().to_string()),
        );
    }
    ids.sort();
    ids.dedup();
    let jobs = JobDetail::list(
        queue
            .call("describejobs", &serde_json::json!({ "jobs": ids }))
            .unwrap(),
    )
    .unwrap();
    let mut on: Vec<(String, String, Vec<String>)> = jobs
        .iter()
        .map(|j| {
            let definition = j.job_definition.rsplit('/').next().unwrap().to_string();
            let command = j
                .container
                .as_ref()
                .map(|c| c.command.clone())
                .unwrap_or_default();
            (j.tags["observes:job"].clone(), definition, command)
        })
        .collect();
    on.sort();
    assert_eq!(
        on,
        [
            (
                "/observes/etl/checkly".to_string(),
                format!("{checkly}:2"),
                vec!["run".to_string(), "checkly".to_string()]
            ),
            (
                "/observes/job/compute-bills".to_string(),
                format!("{bills}:1"),
                vec!["job".to_string(), "compute-bills".to_string()]
            ),
        ]
    );
}
