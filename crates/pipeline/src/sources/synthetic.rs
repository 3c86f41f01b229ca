//! A deterministic generator of CI-job-like records (objects, arrays of objects and of
//! scalars, nulls, timestamps), resumable from a bookmark like a real tap. It feeds the
//! crash-safety tests, the benchmark and the demo. Two shapes: [`Shape::Narrow`], short
//! strings, and [`Shape::Wide`], shaped like GitLab's own job records.

use observes_singer::{Message, RecordMessage, SchemaMessage, StateMessage};
use serde_json::{json, Map, Value};

/// Generator settings.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Jobs to emit in all (the bookmark says how many were already emitted).
    pub records: u64,
    /// The generator's seed: the same seed makes the same records.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A STATE message after every this many jobs.
    #[serde(default = "default_checkpoint")]
    pub checkpoint_every: u64,
    /// What the records look like.
    #[serde(default)]
    pub shape: Shape,
}

/// What the records look like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// About 800 bytes of short strings: 26 columns, two child tables.
    #[default]
    Narrow,
    /// A job as GitLab's API gives it: about 1.3 KB, 37 columns after flattening (nested
    /// `user`, `commit`, `pipeline` and `runner`), a multi-line commit message with `\n`,
    /// `\"`, `\\` and non-ASCII, 1.5 artifacts and 1.5 tags on average.
    Wide,
}

impl std::str::FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Shape, String> {
        match s {
            "narrow" => Ok(Shape::Narrow),
            "wide" => Ok(Shape::Wide),
            _ => Err(format!("{s:?}: the shape is narrow or wide")),
        }
    }
}

impl Shape {
    /// The stream's JSON Schema.
    pub fn schema(self) -> Value {
        match self {
            Shape::Narrow => jobs_schema(),
            Shape::Wide => wide::schema(),
        }
    }

    /// Job number `i` (0-based) of a seed: always the same record.
    pub fn job(self, seed: u64, i: u64) -> Map<String, Value> {
        match self {
            Shape::Narrow => job(seed, i),
            Shape::Wide => wide::job(seed, i),
        }
    }
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

/// The JSON Schema of the generated jobs.
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

/// A job's `created_at`, `started_at`, `finished_at` and `duration`, in that order.
fn insert_times(
    m: &mut Map<String, Value>,
    created: i64,
    started: Option<i64>,
    duration: Option<f64>,
) {
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
    insert_times(&mut m, created, started, duration);
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
    let shape = config.shape;
    let schema = std::iter::once(Message::Schema(SchemaMessage {
        stream: "jobs".into(),
        schema: shape.schema(),
        key_properties: vec!["id".into()],
        bookmark_properties: vec![],
    }));
    let every = config.checkpoint_every.max(1);
    let body = (start..config.records).flat_map(move |i| {
        let record = Message::Record(RecordMessage {
            stream: "jobs".into(),
            record: shape.job(config.seed, i).into(),
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

/// GitLab's job records (`GET /projects/:id/jobs`), as the API shapes them.
mod wide {
    use super::{insert_times, mix, timestamp, STAGES, STATUSES, TAGS, USERS};
    use serde_json::{json, Map, Value};

    pub(super) fn schema() -> Value {
        let string = json!({"type": "string"});
        let nullable = json!({"type": ["null", "string"]});
        let time = json!({"type": "string", "format": "date-time"});
        let nullable_time = json!({"type": ["null", "string"], "format": "date-time"});
        json!({
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": string,
                "stage": string,
                "status": string,
                "ref": string,
                "tag": {"type": "boolean"},
                "coverage": {"type": ["null", "number"]},
                "allow_failure": {"type": "boolean"},
                "created_at": time,
                "started_at": nullable_time,
                "finished_at": nullable_time,
                "duration": {"type": ["null", "number"]},
                "queued_duration": {"type": ["null", "number"]},
                "web_url": string,
                "failure_reason": nullable,
                "user": {"type": ["null", "object"], "properties": {
                    "id": {"type": "integer"},
                    "username": string,
                    "name": string,
                    "state": string,
                    "web_url": string
                }},
                "commit": {"type": "object", "properties": {
                    "id": string,
                    "short_id": string,
                    "title": string,
                    "message": string,
                    "author_name": string,
                    "author_email": string,
                    "created_at": time
                }},
                "pipeline": {"type": "object", "properties": {
                    "id": {"type": "integer"},
                    "project_id": {"type": "integer"},
                    "sha": string,
                    "ref": string,
                    "status": string
                }},
                "runner": {"type": ["null", "object"], "properties": {
                    "id": {"type": "integer"},
                    "description": string,
                    "active": {"type": "boolean"},
                    "is_shared": {"type": "boolean"},
                    "runner_type": string
                }},
                "artifacts": {"type": "array", "items": {"type": "object", "properties": {
                    "file_type": string,
                    "size": {"type": "integer"},
                    "filename": string,
                    "file_format": nullable
                }}},
                "tag_list": {"type": "array", "items": string}
            }
        })
    }

    const NAMES: [&str; 7] = [
        "Alice Émond",
        "Bob Müller",
        "Carol Ñúñez",
        "Dave O'Brien",
        "Erin Zhāng",
        "Frank Søren",
        "Grace Hopper",
    ];
    const SUBJECTS: [&str; 6] = [
        "Fix flaky \"retry\" test in the scheduler",
        "Bump dependencies — security release",
        "Refactor C:\\build\\out path handling on Windows",
        "Add naïve café benchmark (日本語 input)",
        "Revert \"Speed up the merge path\"",
        "Document the loader's commit policy",
    ];
    const BODIES: [&str; 4] = [
        "The test waited 100 ms for a lock it never got.\nIt now polls until the deadline.\n\nCloses #4211",
        "Updates:\n- tokio 1.48 → 1.49\n- serde_json 1.0.145\n\nSee the advisory: \"RUSTSEC-2026-0001\".",
        "Paths like C:\\Users\\ci\\cache were split on '/' only.\n\tBoth separators are handled now.",
        "Änderungen: Größe, Übersicht; 変更点: 速度。\n\nCo-authored-by: Zoë Ŝmith <zoe@example.com>",
    ];

    pub(super) fn job(seed: u64, i: u64) -> Map<String, Value> {
        let r = mix(seed ^ mix(i));
        let s = mix(r);
        let pick = |shift: u32, n: usize| ((r >> shift) as usize) % n;
        let id = 7_000_000_000 + i as i64;
        let created = 1_767_225_600 + (i as i64) * 23;
        let status = STATUSES[pick(3, STATUSES.len())];
        let started = (status != "skipped").then(|| created + (r % 300) as i64);
        let duration = started.map(|_| ((r >> 8) % 5400) as f64 + (s % 1000) as f64 / 1000.0);
        let who = pick(12, USERS.len());
        let user = USERS[who];
        let sha = format!("{:016x}{:016x}{:08x}", mix(i ^ seed), s, (r >> 32) as u32);
        let subject = SUBJECTS[pick(16, SUBJECTS.len())];
        let body = BODIES[((s >> 4) % BODIES.len() as u64) as usize];
        let branch = if r.is_multiple_of(4) {
            "main".to_string()
        } else {
            format!("feature/{}-{}", user, i % 97)
        };
        let project = 278_964 + (i % 5) as i64;
        // 0 to 3 artifacts and tags: 1.5 of each on average.
        let artifacts: Vec<Value> = (0..((s >> 20) % 4) as usize)
            .map(|a| {
                let file_type = ["archive", "metadata", "trace", "junit"][a];
                json!({
                    "file_type": file_type,
                    "size": ((s >> (a * 7)) % 50_000_000) as i64,
                    "filename": if a == 2 { "job.log".to_string() } else { format!("{file_type}.zip") },
                    "file_format": if a == 2 { Value::Null } else { json!("zip") },
                })
            })
            .collect();
        let tags: Vec<Value> = (0..((s >> 24) % 4) as usize)
            .map(|t| json!(TAGS[(pick(28, 5) + t) % 5]))
            .collect();
        let stage = STAGES[pick(0, 4)];
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("status".into(), json!(status));
        m.insert("stage".into(), json!(stage));
        m.insert(
            "name".into(),
            json!(format!("{stage}-{} {}/4", i % 23, 1 + i % 4)),
        );
        m.insert("ref".into(), json!(branch));
        m.insert("tag".into(), json!(r.is_multiple_of(29)));
        m.insert(
            "coverage".into(),
            if r.is_multiple_of(3) {
                Value::Null
            } else {
                json!((s % 10_000) as f64 / 100.0)
            },
        );
        m.insert("allow_failure".into(), json!(r.is_multiple_of(13)));
        insert_times(&mut m, created, started, duration);
        m.insert(
            "queued_duration".into(),
            json!(((r >> 40) % 9000) as f64 / 10.0 + 0.125),
        );
        m.insert(
            "user".into(),
            if r.is_multiple_of(19) {
                Value::Null
            } else {
                json!({
                    "id": 1_160_142 + who as i64,
                    "username": user,
                    "name": NAMES[who],
                    "state": "active",
                    "web_url": format!("https://gitlab.com/{user}"),
                })
            },
        );
        m.insert(
            "commit".into(),
            json!({
                "id": sha,
                "short_id": &sha[..8],
                "title": subject,
                "message": format!("{subject}\n\n{body}\n"),
                "author_name": NAMES[(who + 1) % NAMES.len()],
                "author_email": format!("{}@example.com", USERS[(who + 1) % USERS.len()]),
                "created_at": timestamp(created - 600),
            }),
        );
        m.insert(
            "pipeline".into(),
            json!({
                "id": 1_980_000_000 + (i / 7) as i64,
                "project_id": project,
                "sha": sha,
                "ref": branch,
                "status": status,
            }),
        );
        m.insert(
            "web_url".into(),
            json!(format!(
                "https://gitlab.com/acme-corp/platform/services/api-gateway/-/jobs/{id}"
            )),
        );
        m.insert("artifacts".into(), Value::Array(artifacts));
        m.insert(
            "runner".into(),
            if started.is_some() {
                let n = pick(33, 6);
                json!({
                    "id": 12_270_000 + n as i64,
                    "description": format!("{}-runner-manager-{n}.gitlab.internal", ["shared", "saas-linux-medium-amd64", "private"][n % 3]),
                    "active": true,
                    "is_shared": n % 3 != 2,
                    "runner_type": if n % 3 == 2 { "project_type" } else { "instance_type" },
                })
            } else {
                Value::Null
            },
        );
        m.insert(
            "failure_reason".into(),
            if status == "failed" {
                json!(
                    [
                        "script_failure",
                        "runner_system_failure",
                        "stuck_or_timeout_failure"
                    ][pick(44, 3)]
                )
            } else {
                Value::Null
            },
        );
        m.insert("tag_list".into(), Value::Array(tags));
        m
    }
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
            shape: Shape::Narrow,
        };
        let all: Vec<Message> = messages(&config, 0).collect();
        let resumed: Vec<Message> = messages(&config, 10).collect();
        // SCHEMA + 25 records + states at 10, 20, 25.
        assert_eq!(all.len(), 1 + 25 + 3);
        assert_eq!(&all[12..], &resumed[1..]);
        assert_eq!(position(Some(&json!({"synthetic": {"position": 20}}))), 20);
    }

    /// The wide shape is what the benchmark says it is: about 1.3 KB a record, 37 columns
    /// after flattening, escapes and non-ASCII in its text, 1.5 artifacts and tags.
    #[test]
    fn the_wide_shape_is_gitlab_sized() {
        let n = 2000;
        let (mut bytes, mut artifacts, mut tags, mut escaped) = (0, 0, 0, 0);
        for i in 0..n {
            let job = Shape::Wide.job(7, i);
            let text = serde_json::to_string(&job).unwrap();
            bytes += text.len();
            artifacts += job["artifacts"].as_array().unwrap().len();
            tags += job["tag_list"].as_array().unwrap().len();
            escaped +=
                usize::from(text.contains("\\n") && text.contains("\\\"") && !text.is_ascii());
        }
        let per_record = bytes as f64 / n as f64;
        assert!(
            (1150.0..1450.0).contains(&per_record),
            "{per_record} bytes a record"
        );
        let (artifacts, tags) = (artifacts as f64 / n as f64, tags as f64 / n as f64);
        assert!(
            (1.3..1.7).contains(&artifacts),
            "{artifacts} artifacts a record"
        );
        assert!((1.3..1.7).contains(&tags), "{tags} tags a record");
        assert!(
            escaped > n as usize / 4,
            "{escaped} records with escapes and non-ASCII"
        );
        let layout =
            observes_model::Layout::compile("jobs", &Shape::Wide.schema(), &["id".into()], 255)
                .unwrap();
        // The root table: 37 data columns, plus Observes' own.
        let root = &layout.tables[0];
        let data = root.columns.iter().filter(|c| !c.metadata).count();
        assert_eq!(data, 37);
        assert_eq!(layout.tables.len(), 3);
        assert_eq!(Shape::Wide.job(7, 5), Shape::Wide.job(7, 5));
        assert_eq!("wide".parse::<Shape>(), Ok(Shape::Wide));
        assert!("square".parse::<Shape>().is_err());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(1_767_225_600), "2026-01-01T00:00:00.200Z");
    }
}
