//! A definition-driven source against a loopback API: offset pages with a total, records
//! under a pointer, a bearer token, a 429 with Retry-After, a child stream per parent
//! record paged by Link headers, a replication key sent back as `{bookmark}`, a dropped
//! secret field, and a page cap that the next run resumes with no gap and no duplicate.

use std::sync::{Arc, Mutex};

use observes_singer::Message;
use observes_sources::rest::{RestConfig, RestSource};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DEFINITION: &str = r#"about = "Example: organizations and their projects."

[settings]
host = "the API's host and port"
token = "an API token"

[client]
base_url = "http://{config.host}/v2"
auth = { type = "bearer", token = "{config.token}" }
paginator = { type = "offset", limit = 2, total = "/meta/total" }

[[streams]]
name = "organizations"
path = "/organizations"
records = "/data"
key = ["id"]

[[streams]]
name = "projects"
parent = "organizations"
path = "/organizations/{parent.id}/projects"
params = { per_page = "2", since = "{bookmark}" }
paginator = { type = "link_header" }
key = ["id"]
replication_key = "updated_at"
drop = ["deploy_key"]
"#;

fn project(id: u64, org: u64, updated: &str) -> Value {
    json!({"id": id, "org": org, "name": format!("p{id}"), "updated_at": updated, "deploy_key": "s3cr3t"})
}

/// The API: requests are logged; the first one is refused with 429.
fn answer(target: &str, authorized: bool, host: &str, first: bool) -> (String, String, Value) {
    if !authorized {
        return (
            "401 Unauthorized".into(),
            String::new(),
            json!({"error": "no token"}),
        );
    }
    if first {
        return (
            "429 Too Many Requests".into(),
            "retry-after: 0\r\n".into(),
            json!({"error": "slow down"}),
        );
    }
    let url = url::Url::parse(&format!("http://x{target}")).unwrap();
    let q = |k: &str| {
        url.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
    };
    let path: Vec<&str> = url.path().split('/').filter(|p| !p.is_empty()).collect();
    match path.as_slice() {
        ["v2", "organizations"] => {
            let offset: usize = q("offset").unwrap().parse().unwrap();
            let limit: usize = q("limit").unwrap().parse().unwrap();
            let all: Vec<Value> = (1..=3)
                .map(|i| json!({"id": i, "name": format!("org{i}")}))
                .collect();
            let page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
            (
                "200 OK".into(),
                String::new(),
                json!({"data": page, "meta": {"total": 3}}),
            )
        }
        ["v2", "organizations", org, "projects"] => {
            let org: u64 = org.parse().unwrap();
            let all: Vec<Value> = match org {
                1 => vec![
                    project(10, 1, "2026-01-01"),
                    project(11, 1, "2026-01-03"),
                    project(12, 1, "2026-01-02"),
                ],
                2 => vec![project(20, 2, "2026-02-01")],
                _ => vec![],
            };
            let since = q("since");
            let all: Vec<Value> = all
                .into_iter()
                .filter(|p| {
                    since
                        .as_deref()
                        .is_none_or(|s| p["updated_at"].as_str().unwrap() >= s)
                })
                .collect();
            let after: usize = q("after").map_or(0, |a| a.parse().unwrap());
            let page: Vec<Value> = all.iter().skip(after).take(2).cloned().collect();
            let link = if after + 2 < all.len() {
                let mut next = url::Url::parse(&format!("http://{host}{target}")).unwrap();
                let keep: Vec<(String, String)> = next
                    .query_pairs()
                    .filter(|(k, _)| k != "after")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                next.query_pairs_mut()
                    .clear()
                    .extend_pairs(keep)
                    .append_pair("after", &(after + 2).to_string());
                format!("link: <{next}>; rel=\"next\"\r\n")
            } else {
                String::new()
            };
            ("200 OK".into(), link, json!(page))
        }
        _ => (
            "404 Not Found".into(),
            String::new(),
            json!({"error": "no such path"}),
        ),
    }
}

async fn serve() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (h, l) = (host.clone(), log.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (host, log) = (h.clone(), l.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let authorized = text
                    .to_ascii_lowercase()
                    .contains("authorization: bearer t0k3n\r\n");
                let first = {
                    let mut log = log.lock().unwrap();
                    log.push(target.clone());
                    log.len() == 1
                };
                let (status, headers, body) = answer(&target, authorized, &host, first);
                let body = body.to_string();
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (host, log)
}

struct Run {
    records: Vec<(String, Value)>,
    state: Value,
}

async fn run(source: &RestSource, state: Option<&Value>) -> Run {
    let mut messages = Vec::new();
    let mut sink = |m: Message| {
        messages.push(m);
        true
    };
    source.run(state, &mut sink).await.unwrap();
    let mut records = Vec::new();
    let mut state = Value::Null;
    for m in messages {
        match m {
            Message::Record(r) => records.push((r.stream.clone(), r.record.to_value())),
            Message::State(s) => state = s.value,
            _ => {}
        }
    }
    Run { records, state }
}

fn ids(run: &Run, stream: &str) -> Vec<u64> {
    run.records
        .iter()
        .filter(|(s, _)| s == stream)
        .map(|(_, r)| r["id"].as_u64().unwrap())
        .collect()
}

fn source(dir: &std::path::Path, host: &str, max_pages: Option<u64>) -> RestSource {
    std::fs::write(dir.join("example.toml"), DEFINITION).unwrap();
    let mut config = format!(
        "definition = \"example.toml\"\n[values]\nhost = \"{host}\"\ntoken = \"t0k3n\"\n[http]\nbackoff_ms = 1\nmax_backoff_ms = 5\n"
    );
    if let Some(n) = max_pages {
        config = format!("max_pages = {n}\n{config}");
    }
    let config: RestConfig = toml::from_str(&config).unwrap();
    RestSource::new(config, dir).unwrap()
}

#[tokio::test]
async fn a_definition_reads_parents_children_and_bookmarks_through_the_toolkit() {
    let (host, log) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path(), &host, None);
    let first = run(&source, None).await;
    assert_eq!(ids(&first, "organizations"), [1, 2, 3]);
    assert_eq!(ids(&first, "projects"), [10, 11, 12, 20]);
    let p10 = &first
        .records
        .iter()
        .find(|(s, r)| s == "projects" && r["id"] == 10)
        .unwrap()
        .1;
    assert_eq!(
        p10,
        &json!({"id": 10, "org": 1, "name": "p10", "updated_at": "2026-01-01", "_parent_id": 1}),
        "the secret field dropped, the parent's id added"
    );
    assert_eq!(
        first.state["bookmarks"]["projects"],
        json!({"id=1": {"replication_key_value": "2026-01-03", "at_bookmark": [[11]]}, "id=2": {"replication_key_value": "2026-02-01", "at_bookmark": [[20]]}, "id=3": {"replication_key_value": null}})
    );
    {
        let log = log.lock().unwrap();
        // The 429 was retried; the offset pager stopped at the total (no empty page).
        assert_eq!(log[0], log[1], "{log:?}");
        assert_eq!(
            log.iter()
                .filter(|t| t.starts_with("/v2/organizations?"))
                .count(),
            3,
            "{log:?}"
        );
        assert!(
            log.iter()
                .any(|t| t == "/v2/organizations/1/projects?per_page=2"),
            "{log:?}"
        );
        assert!(
            log.iter()
                .any(|t| t == "/v2/organizations/1/projects?per_page=2&after=2"),
            "{log:?}"
        );
    }

    // Again from the committed state: the bookmark goes back as since=…; what is at it
    // comes again from the API, and is known by its key, so nothing is emitted twice.
    log.lock().unwrap().clear();
    let second = run(&source, Some(&first.state)).await;
    assert!(
        ids(&second, "projects").is_empty(),
        "{:?}",
        ids(&second, "projects")
    );
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|t| t == "/v2/organizations/1/projects?per_page=2&since=2026-01-03"),
        "{:?}",
        log.lock().unwrap()
    );
    assert_eq!(
        second.state["bookmarks"]["projects"],
        first.state["bookmarks"]["projects"]
    );
}

#[tokio::test]
async fn a_page_cap_stops_at_a_page_and_the_next_run_goes_on_without_gap_or_duplicate() {
    let (host, _log) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let capped = run(&source(dir.path(), &host, Some(1)), None).await;
    // The 429 takes no page of the budget: one page of organizations, then the cap.
    assert_eq!(ids(&capped, "organizations"), [1, 2]);
    assert!(ids(&capped, "projects").is_empty());
    assert_eq!(
        capped.state["bookmarks"]["organizations"],
        json!({"replication_key_value": null, "position": {"offset": 2}, "pending": null, "parents": [{"id": 1}, {"id": 2}]})
    );
    let mut all_orgs = ids(&capped, "organizations");
    let mut all_projects = Vec::new();
    let mut state = capped.state;
    for _ in 0..10 {
        let next = run(&source(dir.path(), &host, Some(2)), Some(&state)).await;
        all_orgs.extend(ids(&next, "organizations"));
        all_projects.extend(ids(&next, "projects"));
        let done = next.state["bookmarks"]["projects"]["id=3"].is_object();
        state = next.state;
        if done {
            break;
        }
    }
    // Organizations are re-read whole once their listing finished (no replication key);
    // no project is skipped, and none comes twice.
    assert_eq!(&all_orgs[..3], [1, 2, 3]);
    all_projects.sort();
    assert_eq!(all_projects, [10, 11, 12, 20]);
}
