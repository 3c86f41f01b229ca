//! AWS Batch job definitions from the catalogue: one per job, so each carries its own
//! size, retry strategy, timeout, tags and secrets. Secrets can only reach a Batch job
//! through its definition (`SubmitJob`'s overrides cannot carry them), as `valueFrom`
//! references Batch resolves with the execution role; no value passes through Observes.
//!
//! A definition is named after its job (`/observes/etl/checkly` → `observes-etl-checkly`,
//! after `[queue] definition_prefix`) and tagged with a digest of everything it says. The
//! scheduler's tick gets one too ([`TICK_JOB`]), for an EventBridge rule to start.
//! [`apply`] registers a definition only when its latest active revision carries another
//! digest (or none exists), so a second apply registers nothing. The scheduler submits a
//! job to its definition's name, which Batch resolves to the latest active revision.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::batch::{BatchError, BatchQueue, BatchSettings};
use crate::catalogue::{Catalogue, Job};

/// The tag holding a definition's digest.
pub const DIGEST_TAG: &str = "observes:definition";

/// The path of the image's entrypoint: a job's command starts with `observes`, which the
/// image runs, so the definition's command is the rest.
const ENTRYPOINT: &str = "observes";

/// The image's working directory (scripts/image), where jobs run.
pub const IMAGE_WORKDIR: &str = "/home/observes";

/// A job definition as `RegisterJobDefinition` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The job it is for.
    pub job: String,
    /// The definition's name.
    pub name: String,
    /// The digest of `request` (without the digest tag), also in its tags.
    pub digest: String,
    /// The request body, the digest tag included.
    pub request: Value,
}

/// The job that runs the scheduler's tick on Batch itself, started by an EventBridge
/// rule (docs/deploy-aws.md); a catalogue may declare its own under this name.
pub const TICK_JOB: &str = "/observes/scheduler/tick";

/// The scheduler's tick as a job: small, one attempt, ten minutes at most.
fn tick_job() -> Job {
    Job {
        name: TICK_JOB.to_string(),
        command: vec!["observes".into(), "scheduler".into(), "tick".into()],
        schedule: None,
        catch_up: Default::default(),
        attempts: 1,
        timeout_seconds: 600,
        size_name: "nano".into(),
        size: crate::catalogue::builtin_sizes()["nano"],
        queue: "default".into(),
        environment: BTreeMap::new(),
        secrets: BTreeMap::new(),
        tags: BTreeMap::new(),
    }
}

/// The jobs that get a definition: the catalogue's, and the scheduler's tick.
pub fn defined_jobs(catalogue: &Catalogue) -> Vec<std::borrow::Cow<'_, Job>> {
    let mut jobs: Vec<std::borrow::Cow<'_, Job>> = catalogue
        .jobs
        .values()
        .map(std::borrow::Cow::Borrowed)
        .collect();
    if !catalogue.jobs.contains_key(TICK_JOB) {
        jobs.push(std::borrow::Cow::Owned(tick_job()));
    }
    jobs.sort_by(|a, b| a.name.cmp(&b.name));
    jobs
}

/// What `apply` did with a definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// The job.
    pub job: String,
    /// The definition's name.
    pub name: String,
    /// Its revision now active.
    pub revision: u64,
    /// Whether it was registered now (else it was up to date).
    pub registered: bool,
}

/// A definition's name for a job: its path's parts joined by `-`, after the prefix;
/// letters, digits, `-` and `_`, at most 128 (Batch's rule).
pub fn definition_name(prefix: &str, job: &str) -> String {
    let parts: Vec<&str> = job.split('/').filter(|p| !p.is_empty()).collect();
    let mut name: String = format!("{prefix}{}", parts.join("-"))
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(128);
    name
}

/// A job's command as the image runs it: without its leading `observes`.
pub fn image_command(job: &str, command: &[String]) -> Result<Vec<String>, String> {
    match command.split_first() {
        Some((first, rest)) if first == ENTRYPOINT => Ok(rest.to_vec()),
        _ => Err(format!(
            "job {job:?}: the image's entrypoint is observes, so its command must start with \"observes\" (it starts with {:?})",
            command.first().map(String::as_str).unwrap_or("")
        )),
    }
}

/// The secrets a Batch job can carry: every reference but `env:`, which names a variable
/// of a process that does not exist there.
pub fn batch_secrets(job: &Job) -> Result<Vec<Value>, String> {
    job.secrets
        .iter()
        .map(|(name, reference)| match reference.value_from() {
            Some(from) => Ok(json!({"name": name, "valueFrom": from})),
            None => Err(format!(
                "job {:?}: secret {name}: {reference} cannot reach an AWS Batch job (write aws-sm:… or aws-ssm:…)",
                job.name
            )),
        })
        .collect()
}

fn digest(request: &Value) -> String {
    let hash = Sha256::digest(request.to_string().as_bytes());
    hash.iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// The definitions of every job of the catalogue, by job name. `config_url` is where the
/// containers read `observes.toml` from (`OBSERVES_CONFIG`), when it is not in the image.
pub fn definitions(
    catalogue: &Catalogue,
    settings: &BatchSettings,
    config_url: Option<&str>,
) -> Result<Vec<Definition>, String> {
    let image = settings
        .image
        .as_deref()
        .filter(|i| !i.is_empty())
        .ok_or("[queue] image is not set: the job definitions need the image they run")?;
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for job in defined_jobs(catalogue) {
        let job = job.as_ref();
        let name = definition_name(&settings.definition_prefix, &job.name);
        if let Some(other) = by_name.insert(name.clone(), job.name.clone()) {
            return Err(format!(
                "jobs {other:?} and {:?} would share the job definition {name:?}; rename one",
                job.name
            ));
        }
        let secrets = batch_secrets(job)?;
        if !secrets.is_empty() && settings.execution_role_arn.is_none() {
            return Err(format!(
                "job {:?} has secrets, which Batch reads with the execution role: set [queue] execution_role_arn",
                job.name
            ));
        }
        let mut environment: Vec<Value> = job
            .environment
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        if let Some(url) = config_url {
            // The config's folder is copied into the working directory, so the relative
            // paths of a job's command resolve as they do beside a local config.
            environment.push(json!({"name": "OBSERVES_CONFIG", "value": url}));
            environment.push(json!({"name": "OBSERVES_CONFIG_CACHE", "value": IMAGE_WORKDIR}));
        }
        let mut container = json!({
            "image": image,
            "command": image_command(&job.name, &job.command)?,
            "resourceRequirements": [
                {"type": "VCPU", "value": job.size.vcpus.to_string()},
                {"type": "MEMORY", "value": job.size.memory_mb.to_string()},
            ],
            "environment": environment,
            "secrets": secrets,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": settings.log_group,
                    "awslogs-stream-prefix": name,
                },
            },
        });
        if let Some(role) = &settings.execution_role_arn {
            container["executionRoleArn"] = role.as_str().into();
        }
        if let Some(role) = &settings.job_role_arn {
            container["jobRoleArn"] = role.as_str().into();
        }
        let mut tags: BTreeMap<String, String> = job.tags.clone();
        tags.insert("observes:job".into(), job.name.clone());
        let mut request = json!({
            "jobDefinitionName": name,
            "type": "container",
            "platformCapabilities": ["EC2"],
            "containerProperties": container,
            "retryStrategy": {"attempts": job.attempts.clamp(1, 10)},
            "timeout": {"attemptDurationSeconds": job.timeout_seconds.max(60)},
            "propagateTags": true,
            "tags": tags,
        });
        let digest = digest(&request);
        request["tags"][DIGEST_TAG] = digest.clone().into();
        out.push(Definition {
            job: job.name.clone(),
            name,
            digest,
            request,
        });
    }
    Ok(out)
}

/// The latest active revision of a definition: its number and its digest tag.
fn latest_active(queue: &BatchQueue, name: &str) -> Result<Option<(u64, String)>, BatchError> {
    let mut token: Option<String> = None;
    let mut latest: Option<(u64, String)> = None;
    loop {
        let mut request = json!({"jobDefinitionName": name, "status": "ACTIVE"});
        if let Some(t) = token {
            request["nextToken"] = t.into();
        }
        let page = queue.call("describejobdefinitions", &request)?;
        for d in page["jobDefinitions"].as_array().into_iter().flatten() {
            let revision = d["revision"].as_u64().unwrap_or(0);
            if latest.as_ref().is_none_or(|(r, _)| revision > *r) {
                let tag = d["tags"][DIGEST_TAG].as_str().unwrap_or("").to_string();
                latest = Some((revision, tag));
            }
        }
        token = page["nextToken"].as_str().map(str::to_string);
        if token.is_none() {
            return Ok(latest);
        }
    }
}

/// Registers the definitions whose latest active revision differs (or is missing).
pub fn apply(queue: &BatchQueue, definitions: &[Definition]) -> Result<Vec<Applied>, BatchError> {
    let mut applied = Vec::new();
    for d in definitions {
        let (revision, registered) = match latest_active(queue, &d.name)? {
            Some((revision, digest)) if digest == d.digest => (revision, false),
            _ => {
                let answer = queue.call("registerjobdefinition", &d.request)?;
                let revision = answer["revision"]
                    .as_u64()
                    .ok_or_else(|| BatchError::Shape {
                        operation: "registerjobdefinition".into(),
                        source: serde::de::Error::custom("no revision in the answer"),
                    })?;
                tracing::info!(job = %d.job, definition = %d.name, revision, "registered a job definition");
                (revision, true)
            }
        };
        applied.push(Applied {
            job: d.job.clone(),
            name: d.name.clone(),
            revision,
            registered,
        });
    }
    Ok(applied)
}

/// Checks that every job's secrets can reach a Batch job (at config load, naming the job).
pub fn check_secrets(catalogue: &Catalogue) -> Result<(), String> {
    for job in catalogue.jobs.values() {
        batch_secrets(job)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{RawJob, SchedulerSettings};

    fn catalogue(text: &str) -> Catalogue {
        let raw: BTreeMap<String, RawJob> = toml::from_str(text).unwrap();
        Catalogue::build(&SchedulerSettings::default(), &BTreeMap::new(), &raw).unwrap()
    }

    fn settings() -> BatchSettings {
        BatchSettings {
            job_queue: "q".into(),
            image: Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/observes:1".into()),
            execution_role_arn: Some("arn:aws:iam::123456789012:role/exec".into()),
            log_group: "/aws/batch/job".into(),
            ..BatchSettings::default()
        }
    }

    #[test]
    fn names_commands_and_mistakes() {
        assert_eq!(
            definition_name("", "/observes/etl/checkly"),
            "observes-etl-checkly"
        );
        assert_eq!(definition_name("prod-", "/a.b/c d"), "prod-a_b-c_d");
        assert_eq!(
            definition_name("", &format!("/{}", "x".repeat(200))).len(),
            128
        );
        assert_eq!(
            image_command("/a", &["observes".into(), "run".into(), "a".into()]).unwrap(),
            vec!["run", "a"]
        );
        assert_eq!(
            image_command("/a", &["sh".into(), "-c".into()]).unwrap_err(),
            "job \"/a\": the image's entrypoint is observes, so its command must start with \"observes\" (it starts with \"sh\")"
        );
        let env = catalogue("[\"/a\"]\ncommand = [\"observes\"]\nsecrets = { T = \"env:T\" }\n");
        assert_eq!(
            check_secrets(&env).unwrap_err(),
            "job \"/a\": secret T: env:T cannot reach an AWS Batch job (write aws-sm:… or aws-ssm:…)"
        );
        let clash = catalogue(
            "[\"/a/b\"]\ncommand = [\"observes\"]\n[\"/a-b\"]\ncommand = [\"observes\"]\n",
        );
        assert_eq!(
            definitions(&clash, &settings(), None).unwrap_err(),
            "jobs \"/a-b\" and \"/a/b\" would share the job definition \"a-b\"; rename one"
        );
        let secret =
            catalogue("[\"/a\"]\ncommand = [\"observes\"]\nsecrets = { T = \"aws-ssm:/t\" }\n");
        let no_role = BatchSettings {
            execution_role_arn: None,
            ..settings()
        };
        assert_eq!(
            definitions(&secret, &no_role, None).unwrap_err(),
            "job \"/a\" has secrets, which Batch reads with the execution role: set [queue] execution_role_arn"
        );
        let no_image = BatchSettings {
            image: None,
            ..settings()
        };
        assert_eq!(
            definitions(&secret, &no_image, None).unwrap_err(),
            "[queue] image is not set: the job definitions need the image they run"
        );
    }

    #[test]
    fn a_definition_carries_everything_and_its_digest_follows_it() {
        let text = "[\"/observes/etl/checkly\"]\ncommand = [\"observes\", \"run\", \"checkly\"]\nsize = \"nano\"\nattempts = 3\ntimeout = \"30m\"\nenvironment = { OBSERVES_LOG = \"info\" }\nsecrets = { CHECKLY_API_KEY = \"aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:checkly-AbCdEf\" }\ntags = { team = \"data\" }\n";
        let d = definitions(
            &catalogue(text),
            &settings(),
            Some("s3://cfg/prod/observes.toml"),
        )
        .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].name, "observes-scheduler-tick");
        assert_eq!(
            d[1].request["containerProperties"]["command"],
            json!(["scheduler", "tick"])
        );
        assert_eq!(d[1].request["timeout"]["attemptDurationSeconds"], 600);
        let mut expected = json!({
            "jobDefinitionName": "observes-etl-checkly",
            "type": "container",
            "platformCapabilities": ["EC2"],
            "containerProperties": {
                "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/observes:1",
                "command": ["run", "checkly"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1900"}],
                "environment": [
                    {"name": "OBSERVES_LOG", "value": "info"},
                    {"name": "OBSERVES_CONFIG", "value": "s3://cfg/prod/observes.toml"},
                    {"name": "OBSERVES_CONFIG_CACHE", "value": "/home/observes"},
                ],
                "secrets": [{"name": "CHECKLY_API_KEY", "valueFrom": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:checkly-AbCdEf"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/aws/batch/job", "awslogs-stream-prefix": "observes-etl-checkly"}},
                "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
            },
            "retryStrategy": {"attempts": 3},
            "timeout": {"attemptDurationSeconds": 1800},
            "propagateTags": true,
            "tags": {"observes:job": "/observes/etl/checkly", "team": "data"},
        });
        assert_eq!(d[0].digest, digest(&expected));
        expected["tags"][DIGEST_TAG] = d[0].digest.clone().into();
        assert_eq!(d[0].request, expected);
        // Any change moves the digest; the same catalogue gives the same one.
        let again = definitions(
            &catalogue(text),
            &settings(),
            Some("s3://cfg/prod/observes.toml"),
        )
        .unwrap();
        assert_eq!(again[0].digest, d[0].digest);
        let bigger = definitions(
            &catalogue(&text.replace("nano", "small")),
            &settings(),
            Some("s3://cfg/prod/observes.toml"),
        )
        .unwrap();
        assert_ne!(bigger[0].digest, d[0].digest);
    }
}
