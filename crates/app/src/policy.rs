//! `observes aws policy`: the IAM policy documents the configured jobs need, derived from
//! the config, each statement limited to what the config names:
//!
//! - `job`: the role the jobs run with (`[queue] job_role_arn`): the state store's and the
//!   storage's S3 prefixes (read and write), the config's prefix (read), the Redshift
//!   staging prefix (write, for the loader), and, where the queue is AWS Batch, submitting
//!   to and reading the configured queue (the scheduler's tick runs as a job too) and
//!   registering the jobs' definitions;
//! - `execution`: the role Batch starts containers with (`[queue] execution_role_arn`):
//!   pulling the image from ECR, writing its log group, reading exactly the secrets the
//!   catalogue references;
//! - `redshift_copy`: the role Redshift's `COPY` assumes (the warehouse URL's `iam_role`):
//!   reading the staging prefix.
//!
//! A document is left out when the config needs nothing of it. The account and region
//! are `--account` and `[queue] region` (else `AWS_REGION`); `*` where unknown.

use std::collections::BTreeSet;

use observes_scheduler::catalogue::SecretRef;
use serde_json::{json, Value};

use crate::Config;

/// Bucket and key prefix of an `s3://bucket/prefix` URL (prefix without slashes at its ends).
fn s3_parts(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// Statements for objects under a prefix: the listed actions on its objects, and listing
/// the bucket below it.
fn prefix_statements(sid: &str, url: &str, actions: &[&str]) -> Vec<Value> {
    let Some((bucket, prefix)) = s3_parts(url) else {
        return Vec::new();
    };
    let objects = if prefix.is_empty() {
        format!("arn:aws:s3:::{bucket}/*")
    } else {
        format!("arn:aws:s3:::{bucket}/{prefix}/*")
    };
    let listed = if prefix.is_empty() {
        json!({})
    } else {
        json!({"StringLike": {"s3:prefix": [prefix.clone(), format!("{prefix}/*")]}})
    };
    let mut list = json!({
        "Sid": format!("{sid}List"),
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [format!("arn:aws:s3:::{bucket}")],
    });
    if !prefix.is_empty() {
        list["Condition"] = listed;
    }
    vec![
        json!({
            "Sid": format!("{sid}Objects"),
            "Effect": "Allow",
            "Action": actions,
            "Resource": [objects],
        }),
        list,
    ]
}

fn document(statements: Vec<Value>) -> Option<Value> {
    (!statements.is_empty()).then(|| json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The folder of a config URL (`s3://bucket/prefix/observes.toml` → `s3://bucket/prefix`).
fn config_folder(url: &str) -> Option<&str> {
    url.rsplit_once('/').map(|(dir, _)| dir)
}

/// A Secrets Manager ARN without Batch's `:json-key:version-stage:version-id` suffix.
fn secret_arn(reference: &str) -> String {
    reference
        .splitn(8, ':')
        .take(7)
        .collect::<Vec<_>>()
        .join(":")
}

/// `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO[:tag|@digest]` as the repository's ARN.
fn ecr_repository(image: &str) -> Option<String> {
    let (host, path) = image.split_once('/')?;
    let mut parts = host.split('.');
    let account = parts.next()?;
    let (Some("dkr"), Some("ecr"), Some(region)) = (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let repository = path.split(['@', ':']).next()?;
    Some(format!(
        "arn:aws:ecr:{region}:{account}:repository/{repository}"
    ))
}

/// The policy documents, by role, as one JSON object.
pub fn policies(config: &Config, account: Option<&str>) -> Value {
    let account = account.unwrap_or("*");
    let region = config
        .queue
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| "*".into());
    let read_write = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"];

    let mut job = Vec::new();
    job.extend(prefix_statements("State", &config.state, &read_write));
    job.extend(prefix_statements("Storage", &config.storage, &read_write));
    if let Some(folder) = config.url.as_deref().and_then(config_folder) {
        job.extend(prefix_statements("Config", folder, &["s3:GetObject"]));
    }
    let mut redshift_copy = Vec::new();
    if config.warehouse.starts_with("redshift://") {
        if let Ok(options) = observes_warehouse::redshift::RedshiftOptions::parse(&config.warehouse)
        {
            if let Some((bucket, prefix)) = &options.staging {
                let url = format!("s3://{bucket}/{prefix}");
                job.extend(prefix_statements("Staging", &url, &read_write));
                if options.iam_role.is_some() {
                    redshift_copy.extend(prefix_statements("Staging", &url, &["s3:GetObject"]));
                }
            }
        }
    }

    let mut execution = Vec::new();
    if config.queue.backend == "aws-batch" {
        let batch = config.queue.batch();
        let queues: BTreeSet<String> = config
            .catalogue
            .jobs
            .values()
            .map(|j| match j.queue.as_str() {
                "" | "default" => batch.job_queue.clone(),
                other => other.to_string(),
            })
            .map(|q| {
                if q.starts_with("arn:") {
                    q
                } else {
                    format!("arn:aws:batch:{region}:{account}:job-queue/{q}")
                }
            })
            .chain(std::iter::once(format!(
                "arn:aws:batch:{region}:{account}:job-queue/{}",
                batch.job_queue
            )))
            .collect();
        let definitions: Vec<String> = if batch.job_definition.is_empty() {
            observes_scheduler::definitions::defined_jobs(&config.catalogue)
                .iter()
                .map(|job| {
                    let d = observes_scheduler::definitions::definition_name(
                        &batch.definition_prefix,
                        &job.name,
                    );
                    format!("arn:aws:batch:{region}:{account}:job-definition/{d}:*")
                })
                .collect()
        } else if batch.job_definition.starts_with("arn:") {
            vec![batch.job_definition.clone()]
        } else {
            let name = batch.job_definition.split(':').next().unwrap_or_default();
            vec![format!(
                "arn:aws:batch:{region}:{account}:job-definition/{name}:*"
            )]
        };
        let mut submit: Vec<String> = queues.into_iter().collect();
        submit.extend(definitions.iter().cloned());
        job.push(json!({
            "Sid": "BatchSubmit",
            "Effect": "Allow",
            "Action": ["batch:SubmitJob", "batch:TagResource"],
            "Resource": submit,
        }));
        job.push(json!({
            "Sid": "BatchRead",
            "Effect": "Allow",
            "Action": ["batch:ListJobs", "batch:DescribeJobs", "batch:DescribeJobDefinitions"],
            "Resource": ["*"],
        }));
        if batch.job_definition.is_empty() {
            job.push(json!({
                "Sid": "BatchDefinitions",
                "Effect": "Allow",
                "Action": ["batch:RegisterJobDefinition", "batch:TagResource"],
                "Resource": definitions,
            }));
            let roles: Vec<&String> = [&batch.execution_role_arn, &batch.job_role_arn]
                .into_iter()
                .flatten()
                .collect();
            if !roles.is_empty() {
                job.push(json!({
                    "Sid": "PassJobRoles",
                    "Effect": "Allow",
                    "Action": ["iam:PassRole"],
                    "Resource": roles,
                }));
            }
        }

        if let Some(repository) = batch.image.as_deref().and_then(ecr_repository) {
            execution.push(json!({
                "Sid": "PullImage",
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Resource": [repository],
            }));
            execution.push(json!({
                "Sid": "EcrToken",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": ["*"],
            }));
        }
        if batch.image.is_some() {
            execution.push(json!({
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [format!(
                    "arn:aws:logs:{region}:{account}:log-group:{}:*",
                    batch.log_group
                )],
            }));
        }
        let mut secrets = BTreeSet::new();
        let mut parameters = BTreeSet::new();
        for reference in config
            .catalogue
            .jobs
            .values()
            .flat_map(|j| j.secrets.values())
        {
            match reference {
                SecretRef::SecretsManager(arn) => {
                    secrets.insert(secret_arn(arn));
                }
                SecretRef::Ssm(p) if p.starts_with("arn:") => {
                    parameters.insert(p.clone());
                }
                SecretRef::Ssm(p) => {
                    parameters.insert(format!("arn:aws:ssm:{region}:{account}:parameter{p}"));
                }
                SecretRef::Env(_) => {}
            }
        }
        if !secrets.is_empty() {
            execution.push(json!({
                "Sid": "Secrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": secrets.into_iter().collect::<Vec<_>>(),
            }));
        }
        if !parameters.is_empty() {
            execution.push(json!({
                "Sid": "Parameters",
                "Effect": "Allow",
                "Action": ["ssm:GetParameters"],
                "Resource": parameters.into_iter().collect::<Vec<_>>(),
            }));
        }
    }

    let mut out = serde_json::Map::new();
    for (role, statements) in [
        ("job", job),
        ("execution", execution),
        ("redshift_copy", redshift_copy),
    ] {
        if let Some(d) = document(statements) {
            out.insert(role.to_string(), d);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_from_references_and_images() {
        assert_eq!(
            secret_arn(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab-AbCdEf:token::"
            ),
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab-AbCdEf"
        );
        assert_eq!(
            secret_arn("arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab-AbCdEf"),
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab-AbCdEf"
        );
        assert_eq!(
            ecr_repository("123456789012.dkr.ecr.eu-west-1.amazonaws.com/data/observes:1.2"),
            Some("arn:aws:ecr:eu-west-1:123456789012:repository/data/observes".into())
        );
        assert_eq!(ecr_repository("ghcr.io/acme/observes:1"), None);
        assert_eq!(s3_parts("s3://b/p/q/"), Some(("b".into(), "p/q".into())));
        assert_eq!(s3_parts("/local/state"), None);
    }
}
