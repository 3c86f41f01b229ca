//! The job catalogue: every runnable thing by name, with what it runs, how often it may
//! try, how long it may take, its size, queue, environment, tags and schedule.
//!
//! ```toml
//! [scheduler]
//! timezone = "America/Bogota"          # IANA name; schedules are read in it (default UTC)
//!
//! [jobs."/observes/etl/checkly"]
//! command = ["observes", "run", "checkly"]
//! schedule = "cron(0 * * * ? *)"       # AWS form, or the classic five fields
//! catch_up = "latest"                  # after missed ticks: latest | all
//! attempts = 3
//! timeout = "1h"                       # s, m, h or d
//! size = "nano"                        # nano | small | medium | large, or one of [sizes]
//! queue = "soon"
//! environment = { OBSERVES_LOG = "info" }
//! secrets = { CHECKLY_API_KEY = "env:CHECKLY_API_KEY" }   # references, never values
//! tags = { team = "data" }
//! ```
//!
//! A secret's reference is one of (see [`SecretRef`]):
//! - `env:NAME`: the environment of the process that runs the job (the local queue's worker);
//! - `aws-sm:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME` (optionally followed by
//!   `:json-key:version-stage:version-id`, as Batch reads it): AWS Secrets Manager;
//! - `aws-ssm:/path/name` or `aws-ssm:arn:aws:ssm:REGION:ACCOUNT:parameter/path/name`: an
//!   SSM Parameter Store parameter.
//!
//! On AWS Batch the last two go into the job's definition as `secrets` (`valueFrom`), where
//! Batch reads them with the definition's execution role; no value passes through Observes.

use std::collections::BTreeMap;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::cron::Cron;

/// vCPUs and memory of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    /// vCPUs.
    pub vcpus: u32,
    /// Memory, in MiB.
    pub memory_mb: u32,
}

/// The named sizes every catalogue knows.
pub fn builtin_sizes() -> BTreeMap<String, Size> {
    [
        ("nano", 1, 1900),
        ("small", 2, 3800),
        ("medium", 4, 7600),
        ("large", 8, 15200),
    ]
    .into_iter()
    .map(|(n, vcpus, memory_mb)| (n.to_string(), Size { vcpus, memory_mb }))
    .collect()
}

/// What to do with runs missed while no tick came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Submit only the most recent missed run.
    #[default]
    Latest,
    /// Submit every missed run.
    All,
}

/// A job as written in the catalogue, before it is checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// A cron expression; none for a job run by hand only.
    pub schedule: Option<String>,
    /// What a scheduler that was down does about the runs it missed.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Attempts, the first included.
    #[serde(default = "one")]
    pub attempts: u32,
    /// How long an attempt may run (`30m`, `1h`).
    #[serde(default = "an_hour")]
    pub timeout: String,
    /// A size name of `[sizes]`.
    #[serde(default = "small")]
    pub size: String,
    /// The queue it runs on.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Environment variables whose values are read from secrets, by reference.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Tags for the queue's jobs.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Where a secret's value is: never the value itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretRef {
    /// `env:NAME`: an environment variable of the process that starts the job.
    Env(String),
    /// `aws-sm:ARN`: a Secrets Manager secret (its ARN, with Batch's optional
    /// `:json-key:version-stage:version-id` suffix).
    SecretsManager(String),
    /// `aws-ssm:NAME` or `aws-ssm:ARN`: an SSM Parameter Store parameter.
    Ssm(String),
}

const REFERENCE_FORMS: &str =
    "env:NAME, aws-sm:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or aws-ssm:/path/name";

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` with the given service and resource
/// start; its partition, region and account checked for shape.
fn is_arn(text: &str, service: &str, resource: &str) -> bool {
    let mut parts = text.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(s), Some(region), Some(account), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    partition.starts_with("aws")
        && s == service
        && !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && rest.len() > resource.len()
        && rest.starts_with(resource)
}

impl std::str::FromStr for SecretRef {
    type Err = String;

    fn from_str(text: &str) -> Result<SecretRef, String> {
        let wrong = |what: &str| format!("{text:?} {what} (write {REFERENCE_FORMS})");
        if let Some(name) = text.strip_prefix("env:") {
            return if is_env_name(name) {
                Ok(SecretRef::Env(name.to_string()))
            } else {
                Err(wrong("does not name an environment variable"))
            };
        }
        if let Some(arn) = text.strip_prefix("aws-sm:") {
            return if is_arn(arn, "secretsmanager", "secret:") {
                Ok(SecretRef::SecretsManager(arn.to_string()))
            } else {
                Err(wrong("is not a Secrets Manager secret's ARN"))
            };
        }
        if let Some(parameter) = text.strip_prefix("aws-ssm:") {
            let name_ok = |name: &str| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
                    && !name.contains("//")
            };
            let ok = if parameter.starts_with("arn:") {
                is_arn(parameter, "ssm", "parameter/")
                    && name_ok(parameter.split_once(":parameter").map_or("", |(_, n)| n))
            } else {
                parameter.starts_with('/') && name_ok(parameter)
            };
            return if ok {
                Ok(SecretRef::Ssm(parameter.to_string()))
            } else {
                Err(wrong("is not an SSM parameter's /path/name or ARN"))
            };
        }
        Err(wrong("is not a reference"))
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::SecretsManager(arn) => write!(f, "aws-sm:{arn}"),
            SecretRef::Ssm(parameter) => write!(f, "aws-ssm:{parameter}"),
        }
    }
}

impl SecretRef {
    /// What AWS Batch's `secrets[].valueFrom` takes; none for `env:`, which Batch cannot read.
    pub fn value_from(&self) -> Option<&str> {
        match self {
            SecretRef::Env(_) => None,
            SecretRef::SecretsManager(arn) => Some(arn),
            SecretRef::Ssm(parameter) => Some(parameter),
        }
    }
}

fn one() -> u32 {
    1
}
fn an_hour() -> String {
    "1h".into()
}
fn small() -> String {
    "small".into()
}
fn default_queue() -> String {
    "default".into()
}

/// `[scheduler]` of `observes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// The timezone schedules are read in (default UTC).
    pub timezone: Option<String>,
}

/// A job as the catalogue holds it, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Its name (`/observes/etl/gitlab`).
    pub name: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// When it runs; none for a job run by hand only.
    #[serde(serialize_with = "as_text")]
    pub schedule: Option<Cron>,
    /// What a scheduler that was down does about the runs it missed.
    pub catch_up: CatchUp,
    /// Attempts, the first included.
    pub attempts: u32,
    /// How long an attempt may run, in seconds.
    pub timeout_seconds: u64,
    /// The size's name.
    pub size_name: String,
    /// The size.
    pub size: Size,
    /// The queue it runs on.
    pub queue: String,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Environment variables whose values are read from secrets, by reference.
    #[serde(serialize_with = "references")]
    pub secrets: BTreeMap<String, SecretRef>,
    /// Tags for the queue's jobs.
    pub tags: BTreeMap<String, String>,
}

fn references<S: serde::Serializer>(
    secrets: &BTreeMap<String, SecretRef>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(secrets.iter().map(|(k, v)| (k, v.to_string())))
}

fn as_text<S: serde::Serializer>(cron: &Option<Cron>, s: S) -> Result<S::Ok, S::Error> {
    match cron {
        Some(c) => s.serialize_str(&c.to_string()),
        None => s.serialize_none(),
    }
}

/// The jobs Observes runs, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    /// The timezone schedules are read in.
    pub timezone: Tz,
    /// The jobs, by name.
    pub jobs: BTreeMap<String, Job>,
}

/// `90`, `90s`, `15m`, `8h`, `2d` as seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 8h or 2d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    Ok(n * scale)
}

impl Catalogue {
    /// Checks the raw tables; errors name the job and the field.
    pub fn build(
        settings: &SchedulerSettings,
        sizes: &BTreeMap<String, Size>,
        raw: &BTreeMap<String, RawJob>,
    ) -> Result<Catalogue, String> {
        let timezone: Tz = match &settings.timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse()
                .map_err(|_| format!("[scheduler] timezone {name:?} is not an IANA time zone"))?,
        };
        let mut all_sizes = builtin_sizes();
        all_sizes.extend(sizes.iter().map(|(k, v)| (k.clone(), *v)));
        let mut jobs = BTreeMap::new();
        for (name, r) in raw {
            let bad = |m: String| format!("job {name:?}: {m}");
            if !name.starts_with('/') {
                return Err(bad(
                    "a job's name is a path like /observes/etl/checkly".into()
                ));
            }
            if r.command.is_empty() {
                return Err(bad("command is empty".into()));
            }
            if !(1..=10).contains(&r.attempts) {
                return Err(bad(format!(
                    "attempts {} is not between 1 and 10",
                    r.attempts
                )));
            }
            let size = *all_sizes.get(&r.size).ok_or_else(|| {
                bad(format!(
                    "unknown size {:?} (known: {})",
                    r.size,
                    all_sizes.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            let schedule = match &r.schedule {
                None => None,
                Some(s) => Some(Cron::parse(s).map_err(|e| bad(e.to_string()))?),
            };
            let timeout_seconds =
                parse_duration(&r.timeout).map_err(|e| bad(format!("timeout {e}")))?;
            let mut secrets = BTreeMap::new();
            for (variable, reference) in &r.secrets {
                if !is_env_name(variable) {
                    return Err(bad(format!(
                        "secret {variable:?} is not an environment variable's name"
                    )));
                }
                let reference = reference
                    .parse()
                    .map_err(|e| bad(format!("secret {variable}: {e}")))?;
                secrets.insert(variable.clone(), reference);
            }
            jobs.insert(
                name.clone(),
                Job {
                    name: name.clone(),
                    command: r.command.clone(),
                    schedule,
                    catch_up: r.catch_up,
                    attempts: r.attempts,
                    timeout_seconds,
                    size_name: r.size.clone(),
                    size,
                    queue: r.queue.clone(),
                    environment: r.environment.clone(),
                    secrets,
                    tags: r.tags.clone(),
                },
            );
        }
        Ok(Catalogue { timezone, jobs })
    }

    /// A job by name, or an error listing the names there are.
    pub fn job(&self, name: &str) -> Result<&Job, String> {
        self.jobs.get(name).ok_or_else(|| {
            format!(
                "no job named {name:?} (known: {})",
                self.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> BTreeMap<String, RawJob> {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn builds_and_names_mistakes() {
        let jobs = raw(
            "[\"/observes/etl/checkly\"]\ncommand = [\"observes\", \"run\", \"checkly\"]\nschedule = \"cron(0 * * * ? *)\"\nsize = \"nano\"\ntimeout = \"15m\"\n",
        );
        let c = Catalogue::build(&SchedulerSettings::default(), &BTreeMap::new(), &jobs).unwrap();
        let job = c.job("/observes/etl/checkly").unwrap();
        assert_eq!(
            job.size,
            Size {
                vcpus: 1,
                memory_mb: 1900
            }
        );
        assert_eq!(job.timeout_seconds, 900);
        assert_eq!(job.attempts, 1);
        assert_eq!(
            c.job("/nope").unwrap_err(),
            "no job named \"/nope\" (known: /observes/etl/checkly)"
        );
        let cases = [
            ("[\"/a\"]\ncommand = [\"x\"]\nsize = \"huge\"\n", "job \"/a\": unknown size \"huge\" (known: large, medium, nano, small)"),
            ("[\"/a\"]\ncommand = []\n", "job \"/a\": command is empty"),
            ("[\"/a\"]\ncommand = [\"x\"]\nattempts = 11\n", "job \"/a\": attempts 11 is not between 1 and 10"),
            ("[\"/a\"]\ncommand = [\"x\"]\ntimeout = \"soon\"\n", "job \"/a\": timeout \"soon\" is not a duration like 90s, 15m, 8h or 2d"),
            ("[\"/a\"]\ncommand = [\"x\"]\nschedule = \"cron(0 10 * * * *)\"\n", "job \"/a\": schedule \"cron(0 10 * * * *)\": one of day-of-month and day-of-week must be ? (and not both)"),
            ("[\"a\"]\ncommand = [\"x\"]\n", "job \"a\": a job's name is a path like /observes/etl/checkly"),
            ("[\"/a\"]\ncommand = [\"x\"]\nsecrets = { TOKEN = \"TOKEN\" }\n", "job \"/a\": secret TOKEN: \"TOKEN\" is not a reference (write env:NAME, aws-sm:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or aws-ssm:/path/name)"),
            ("[\"/a\"]\ncommand = [\"x\"]\nsecrets = { TOKEN = \"aws-sm:my-secret\" }\n", "job \"/a\": secret TOKEN: \"aws-sm:my-secret\" is not a Secrets Manager secret's ARN (write env:NAME, aws-sm:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or aws-ssm:/path/name)"),
            ("[\"/a\"]\ncommand = [\"x\"]\nsecrets = { TOKEN = \"aws-ssm:path/name\" }\n", "job \"/a\": secret TOKEN: \"aws-ssm:path/name\" is not an SSM parameter's /path/name or ARN (write env:NAME, aws-sm:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or aws-ssm:/path/name)"),
            ("[\"/a\"]\ncommand = [\"x\"]\nsecrets = { TOKEN = \"env:1X\" }\n", "job \"/a\": secret TOKEN: \"env:1X\" does not name an environment variable (write env:NAME, aws-sm:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or aws-ssm:/path/name)"),
            ("[\"/a\"]\ncommand = [\"x\"]\nsecrets = { \"MY-TOKEN\" = \"env:X\" }\n", "job \"/a\": secret \"MY-TOKEN\" is not an environment variable's name"),
        ];
        for (text, message) in cases {
            assert_eq!(
                Catalogue::build(&SchedulerSettings::default(), &BTreeMap::new(), &raw(text))
                    .unwrap_err(),
                message
            );
        }
        let ok = raw(
            "[\"/a\"]\ncommand = [\"x\"]\n[\"/a\".secrets]\nA = \"env:A_1\"\nB = \"aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab-AbCdEf:token::\"\nC = \"aws-ssm:/observes/checkly/key\"\nD = \"aws-ssm:arn:aws:ssm:eu-west-1:123456789012:parameter/observes/x\"\n",
        );
        let c = Catalogue::build(&SchedulerSettings::default(), &BTreeMap::new(), &ok).unwrap();
        let secrets = &c.job("/a").unwrap().secrets;
        assert_eq!(secrets["A"], SecretRef::Env("A_1".into()));
        assert_eq!(
            secrets["B"].value_from(),
            Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab-AbCdEf:token::")
        );
        assert_eq!(secrets["C"].value_from(), Some("/observes/checkly/key"));
        assert_eq!(
            secrets["D"].to_string(),
            "aws-ssm:arn:aws:ssm:eu-west-1:123456789012:parameter/observes/x"
        );
        assert_eq!(secrets["A"].value_from(), None);
        for wrong in [
            "aws-sm:arn:aws:secretsmanager:eu-west-1:1234:secret:x",
            "aws-sm:arn:aws:ssm:eu-west-1:123456789012:secret:x",
            "aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
            "aws-ssm:/a//b",
            "aws-ssm:/a b",
            "aws-ssm:arn:aws:ssm:eu-west-1:123456789012:secret/x",
            "env:",
        ] {
            assert!(wrong.parse::<SecretRef>().is_err(), "{wrong}");
        }
        let tz = SchedulerSettings {
            timezone: Some("Mars/Olympus".into()),
        };
        assert_eq!(
            Catalogue::build(&tz, &BTreeMap::new(), &BTreeMap::new()).unwrap_err(),
            "[scheduler] timezone \"Mars/Olympus\" is not an IANA time zone"
        );
    }
}
