//! A deterministic generator of CI-job-like records (objects, arrays of objects and of
//! scalars, nulls, timestamps), resumable from a bookmark like a real tap. It feeds the
//! crash-safety tests, the benchmark and the demo.

use observes_singer::{Message, RecordMessage, SchemaMessage, StateMessage};
use serde_json::{json, Map, Value};

/// Generator settings.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Jobs to emit in all (the bookmark says how many were already emitted).
    pub records: u64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A STATE message after every this many jobs.
    #[serde(default = "default_checkpoint")]
    pub checkpoint_every: u64,
}

fn default_seed() -> u64 {
    1
}

fn default_checkpoint() -> u64 {
    10_000
}

/// The bookmark this source writes: `{"synthetic": {"position": N}}`.
pub fn position(state: Option<&Value>) -> u64 {
    state
        .and_then(|s| s.pointer("/synthetic/position"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: cheap, well distributed, stable forever.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn jobs_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "stage": {"type": "string"},
            "status": {"type": "string"},
            "ref": {"type": "string"},
            "tag": {"type": "boolean"},
            "coverage": {"type": ["null", "number"]},
            "allow_failure": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["null", "string"], "format": "date-time"},
            "finished_at": {"type": ["null", "string"], "format": "date-time"},
            "duration": {"type": ["null", "number"]},
            "queued_duration": {"type": ["null", "number"]},
            "web_url": {"type": "string"},
            "failure_reason": {"type": ["null", "string"]},
            "user": {"type": ["null", "object"], "properties": {
                "id": {"type": "integer"},
                "username": {"type": "string"},
                "name": {"type": "string"},
                "state": {"type": "string"}
            }},
            "pipeline": {"type": "object", "properties": {
                "id": {"type": "integer"},
                "project_id": {"type": "integer"},
                "sha": {"type": "string"},
                "status": {"type": "string"}
            }},
            "runner": {"type": ["null", "object"], "properties": {
                "id": {"type": "integer"},
                "description": {"type": "string"},
                "is_shared": {"type": "boolean"}
            }},
            "artifacts": {"type": "array", "items": {"type": "object", "properties": {
                "file_type": {"type": "string"},
                "size": {"type": "integer"},
                "filename": {"type": "string"},
                "file_format": {"type": ["null", "string"]}
            }}},
            "tag_list": {"type": "array", "items": {"type": "string"}}
        }
    })
}

const STAGES: [&str; 4] = ["build", "test", "lint", "deploy"];
const STATUSES: [&str; 6] = [
    "success", "success", "success", "failed", "canceled", "skipped",
];
const USERS: [&str; 7] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
const TAGS: [&str; 5] = ["docker", "linux", "large", "gpu", "arm64"];

fn timestamp(secs: i64) -> String {
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = observes_model::time::civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        (secs.unsigned_abs() * 7) % 1000
    )
}

/// Job number `i` (0-based) of a seed: always the same record.
pub fn job(seed: u64, i: u64) -> Map<String, Value> {
    let r = mix(seed ^ mix(i));
    let pick = |shift: u32, n: usize| ((r >> shift) as usize) % n;
    let id = 1_000_000 + i as i64;
    let created = 1_767_225_600 + (i as i64) * 37; // from 2026-01-01, a job every 37 s
    let status = STATUSES[pick(3, STATUSES.len())];
    let started = (status != "skipped").then(|| created + (r % 120) as i64);
    let duration = started.map(|_| ((r >> 8) % 3600) as f64 + 0.25);
    let user = USERS[pick(12, USERS.len())];
    let n_artifacts = pick(20, 4);
    let artifacts: Vec<Value> = (0..n_artifacts)
        .map(|a| {
            let file_type = ["archive", "metadata", "trace", "junit"][a];
            json!({
                "file_type": file_type,
                "size": ((r >> (a * 5)) % 5_000_000) as i64,
                "filename": format!("artifact-{a}.zip"),
                "file_format": if a == 2 { Value::Null } else { json!("zip") },
            })
        })
        .collect();
    let tags: Vec<Value> = (0..pick(24, 3))
        .map(|t| json!(TAGS[(pick(28, 5) + t) % 5]))
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert(
        "name".into(),
        json!(format!("{}:{}", STAGES[pick(0, 4)], i % 17)),
    );
    m.insert("stage".into(), json!(STAGES[pick(0, 4)]));
    m.insert("status".into(), json!(status));
    m.insert(
        "ref".into(),
        json!(if r.is_multiple_of(5) {
            "main"
        } else {
            "feature/x"
        }),
    );
    m.insert("tag".into(), json!(r.is_multiple_of(11)));
    m.insert(
        "coverage".into(),
        if r.is_multiple_of(3) {
            Value::Null
        } else {
            json!((r % 10_000) as f64 / 100.0)
        },
    );
    m.insert("allow_failure".into(), json!(r.is_multiple_of(13)));
    m.insert("created_at".into(), json!(timestamp(created)));
    m.insert(
        "started_at".into(),
        started.map_or(Value::Null, |s| json!(timestamp(s))),
    );
    m.insert(
        "finished_at".into(),
        match (started, duration) {
            (Some(s), Some(d)) => json!(timestamp(s + d as i64)),
            _ => Value::Null,
        },
    );
    m.insert(
        "duration".into(),
        duration.map_or(Value::Null, |d| json!(d)),
    );
    m.insert(
        "queued_duration".into(),
        json!(((r >> 40) % 600) as f64 / 10.0),
    );
    m.insert(
        "web_url".into(),
        json!(format!("https://gitlab.example.com/acme/app/-/jobs/{id}")),
    );
    m.insert(
        "failure_reason".into(),
        if status == "failed" {
            json!("script_failure")
        } else {
            Value::Null
        },
    );
    m.insert(
        "user".into(),
        if r.is_multiple_of(17) {
            Value::Null
        } else {
            json!({"id": 100 + pick(12, USERS.len()) as i64, "username": user, "name": format!("{user} example"), "state": "active"})
        },
    );
    m.insert(
        "pipeline".into(),
        json!({"id": 50_000 + (i / 6) as i64, "project_id": 7 + (i % 3) as i64, "sha": format!("{:016x}{:016x}", mix(i), r), "status": status}),
    );
    m.insert(
        "runner".into(),
        if started.is_some() {
            json!({"id": 3 + pick(33, 4) as i64, "description": format!("runner-{}", pick(33, 4)), "is_shared": r.is_multiple_of(2)})
        } else {
            Value::Null
        },
    );
    m.insert("artifacts".into(), Value::Array(artifacts));
    m.insert("tag_list".into(), Value::Array(tags));
    m
}

/// The messages from `start` on: SCHEMA, then the jobs, a STATE every `checkpoint_every`
/// jobs and at the end.
pub fn messages(
    config: &SyntheticConfig,
    start: u64,
) -> impl Iterator<Item = Message> + Send + 'static {
    let config = config.clone();
    let schema = std::iter::once(Message::Schema(SchemaMessage {
        stream: "jobs".into(),
        schema: jobs_schema(),
        key_properties: vec!["id".into()],
        bookmark_properties: vec![],
    }));
    let every = config.checkpoint_every.max(1);
    let body = (start..config.records).flat_map(move |i| {
        let record = Message::Record(RecordMessage {
            stream: "jobs".into(),
            record: job(config.seed, i).into(),
            version: None,
            time_extracted: None,
        });
        let done = i + 1;
        let state = (done % every == 0 || done == config.records).then(|| {
            Message::State(StateMessage {
                value: json!({"synthetic": {"position": done}}),
            })
        });
        std::iter::once(record).chain(state)
    });
    schema.chain(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_deterministic_and_resumable() {
        assert_eq!(job(1, 42), job(1, 42));
        assert_ne!(job(1, 42), job(2, 42));
        let config = SyntheticConfig {
            records: 25,
            seed: 1,
            checkpoint_every: 10,
        };
        let all: Vec<Message> = messages(&config, 0).collect();
        let resumed: Vec<Message> = messages(&config, 10).collect();
        // SCHEMA + 25 records + states at 10, 20, 25.
        assert_eq!(all.len(), 1 + 25 + 3);
        assert_eq!(&all[12..], &resumed[1..]);
        assert_eq!(position(Some(&json!({"synthetic": {"position": 20}}))), 20);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(1_767_225_600), "2026-01-01T00:00:00.200Z");
    }
}
