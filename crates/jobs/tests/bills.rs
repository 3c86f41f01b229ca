//! compute-bills on a hand-computed fixture: authors across months, years, groups and
//! organizations, the same commit pushed to two groups, an ignored commit, a group with
//! no organization, and a CSV value that needs quoting.

use std::path::Path;

use observes_jobs::bills::{compute_bills, BillsConfig, Month};
use observes_load::{LoadConfig, Loader, WriteMode};
use observes_singer::MessageReader;
use observes_state::StateStore;
use serde_json::json;

/// (group, repository, hash, author, email, content hash, seen at, billable)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
);

const FIXTURE: &[Row] = &[
    (
        "web",
        "site",
        "h01",
        "Ana",
        "ana@x.com",
        "c1",
        "2026-10-03T00:00:00Z",
        true,
    ),
    (
        "api",
        "core",
        "h02",
        "Ana",
        "ana@x.com",
        "c2",
        "2026-10-10T00:00:00Z",
        true,
    ),
    (
        "api",
        "core",
        "h03",
        "Bob",
        "bob@x.com",
        "c3",
        "2026-09-28T23:59:59Z",
        true,
    ),
    (
        "web",
        "site",
        "h04",
        "Bob",
        "bob@x.com",
        "c4",
        "2025-10-05T00:00:00Z",
        true,
    ),
    // h03's content, pushed to another group later: first seen in September.
    (
        "tools",
        "cli",
        "h05",
        "Bob",
        "bob@x.com",
        "c3",
        "2026-10-02T00:00:00Z",
        true,
    ),
    // One commit pushed to two groups in October: it counts for both.
    (
        "web",
        "site",
        "h06",
        "Cy",
        "cy@x.com",
        "c6",
        "2026-10-20T00:00:00Z",
        true,
    ),
    (
        "tools",
        "cli",
        "h06",
        "Cy",
        "cy@x.com",
        "c6",
        "2026-10-21T00:00:00Z",
        true,
    ),
    // Only ignored paths: not billed.
    (
        "web",
        "site",
        "h07",
        "Dee",
        "dee@x.com",
        "c7",
        "2026-10-05T00:00:00Z",
        false,
    ),
    (
        "orphan",
        "x",
        "h08",
        "Eve",
        "eve@x.com",
        "c8",
        "2026-10-15T00:00:00Z",
        true,
    ),
    (
        "api",
        "core",
        "h09",
        "Ana",
        "ana@x.com",
        "c9",
        "2026-10-25T00:00:00Z",
        true,
    ),
    (
        "web",
        "site",
        "h10",
        "O\"Neil, Fay",
        "fay@x.com",
        "c10",
        "2026-10-31T23:59:59Z",
        true,
    ),
    (
        "web",
        "site",
        "h11",
        "Gus",
        "gus@x.com",
        "c11",
        "2026-11-01T00:00:00Z",
        true,
    ),
];

fn load_fixture(dir: &Path, warehouse: &str) -> String {
    let [commits, _, sightings] = observes_sources::code::streams();
    let mut lines = vec![
        json!({
            "type": "SCHEMA", "stream": "commits", "schema": commits.schema,
            "key_properties": ["namespace", "repository", "hash"],
        })
        .to_string(),
        json!({
            "type": "SCHEMA", "stream": "sightings", "schema": sightings.schema,
            "key_properties": ["namespace", "repository", "hash", "seen_at"],
        })
        .to_string(),
    ];
    for (group, repo, hash, name, email, content, seen, billable) in FIXTURE {
        lines.push(
            json!({"type": "RECORD", "stream": "commits", "record": {
                "namespace": group, "repository": repo, "hash": hash,
                "author_name": name, "author_email": email, "authored_at": seen,
                "committer_name": name, "committer_email": email, "committed_at": seen,
                "summary": "s", "message": "s", "insertions": 1, "deletions": 0, "files_changed": 1,
                "billable": billable, "content_hash": content, "seen_at": seen,
            }})
            .to_string(),
        );
        lines.push(
            json!({"type": "RECORD", "stream": "sightings", "record": {
                "namespace": group, "repository": repo, "hash": hash,
                "content_hash": content, "seen_at": seen,
            }})
            .to_string(),
        );
    }
    // h01 walked again a month later (its bookmark's tip collected): a second sighting,
    // and its commit row re-extracted with the later time. First seen stays October.
    let again = "2026-11-20T00:00:00Z";
    lines.push(
        json!({"type": "RECORD", "stream": "commits", "record": {
            "namespace": "web", "repository": "site", "hash": "h01",
            "author_name": "Ana", "author_email": "ana@x.com", "authored_at": "2026-10-03T00:00:00Z",
            "committer_name": "Ana", "committer_email": "ana@x.com", "committed_at": "2026-10-03T00:00:00Z",
            "summary": "s", "message": "s", "insertions": 1, "deletions": 0, "files_changed": 1,
            "billable": true, "content_hash": "c1", "seen_at": again,
        }})
        .to_string(),
    );
    lines.push(
        json!({"type": "RECORD", "stream": "sightings", "record": {
            "namespace": "web", "repository": "site", "hash": "h01",
            "content_hash": "c1", "seen_at": again,
        }})
        .to_string(),
    );
    // Loaded as the code pipeline loads it: merged by key into schema `code`.
    let warehouse = match warehouse.strip_prefix("duckdb://") {
        Some(file) => format!("duckdb://{}", dir.join(file).display()),
        None => warehouse.to_string(),
    };
    let mut wh = observes_warehouse::connect(&warehouse).unwrap();
    let mut config = LoadConfig::new("fixture", "code");
    config.write_mode = WriteMode::Merge;
    let mut loader = Loader::begin(wh.as_mut(), config).unwrap();
    let text = lines.join("\n") + "\n";
    for line in MessageReader::new(text.as_bytes()) {
        let line = line.unwrap();
        loader.handle(line.number, line.message).unwrap();
    }
    loader.finish().unwrap();
    warehouse
}

fn read(storage: &Path, key: &str) -> String {
    std::fs::read_to_string(storage.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[test]
fn a_hand_computed_fixture_gives_exactly_the_expected_csvs_on_duckdb() {
    hand_computed_fixture("duckdb://wh.duckdb");
}

#[test]
fn a_hand_computed_fixture_gives_exactly_the_expected_csvs_on_postgres() {
    let db = observes_testkit::TestDatabase::create();
    hand_computed_fixture(&db.url);
}

fn hand_computed_fixture(warehouse: &str) {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = load_fixture(dir.path(), warehouse);
    let storage_dir = dir.path().join("storage");
    let storage = StateStore::open(storage_dir.to_str().unwrap()).unwrap();
    let config = BillsConfig {
        schema: "code".into(),
        groups: [("web", "acme"), ("api", "acme"), ("tools", "beta")]
            .into_iter()
            .map(|(g, o)| (g.to_string(), o.to_string()))
            .collect(),
    };
    // A file left by an earlier computation for a group that has none now.
    std::fs::create_dir_all(storage_dir.join("bills/2026/10")).unwrap();
    std::fs::write(storage_dir.join("bills/2026/10/gone.csv"), "old").unwrap();

    let mut wh = observes_warehouse::connect(&warehouse).unwrap();
    let october: Month = "2026-10".parse().unwrap();
    let report = compute_bills(wh.as_mut(), &storage, &config, october).unwrap();

    assert_eq!(
        read(&storage_dir, "bills/2026/10/web.csv"),
        "actor,commit,groups,repository\n\
         Ana <ana@x.com>,h01,\"api,web\",site\n\
         Cy <cy@x.com>,h06,web,site\n\
         \"O\"\"Neil, Fay <fay@x.com>\",h10,web,site\n"
    );
    assert_eq!(
        read(&storage_dir, "bills/2026/10/api.csv"),
        "actor,commit,groups,repository\nAna <ana@x.com>,h02,\"api,web\",core\n"
    );
    assert_eq!(
        read(&storage_dir, "bills/2026/10/tools.csv"),
        "actor,commit,groups,repository\nCy <cy@x.com>,h06,tools,cli\n"
    );
    assert_eq!(
        read(&storage_dir, "bills/2026/10/orphan.csv"),
        "actor,commit,groups,repository\nEve <eve@x.com>,h08,orphan,x\n"
    );
    assert_eq!(report.unmapped_groups, vec!["orphan".to_string()]);
    assert_eq!(report.removed, vec!["bills/2026/10/gone.csv".to_string()]);
    assert!(!storage_dir.join("bills/2026/10/gone.csv").exists());
    let actors: Vec<(String, usize)> = report
        .groups
        .iter()
        .map(|g| (g.group.clone(), g.actors))
        .collect();
    assert_eq!(
        actors,
        vec![
            ("api".to_string(), 1),
            ("orphan".to_string(), 1),
            ("tools".to_string(), 1),
            ("web".to_string(), 3)
        ]
    );

    // September: Bob's commit counts where its content was first seen, and again in the
    // other group it was pushed to (the same content, first seen in September).
    let september: Month = "2026-09".parse().unwrap();
    compute_bills(wh.as_mut(), &storage, &config, september).unwrap();
    assert_eq!(
        read(&storage_dir, "bills/2026/09/api.csv"),
        "actor,commit,groups,repository\nBob <bob@x.com>,h03,api,core\n"
    );
    assert_eq!(
        read(&storage_dir, "bills/2026/09/tools.csv"),
        "actor,commit,groups,repository\nBob <bob@x.com>,h05,tools,cli\n"
    );
    // Configured groups without activity get a file with the header alone.
    assert_eq!(
        read(&storage_dir, "bills/2026/09/web.csv"),
        "actor,commit,groups,repository\n"
    );
    // November: Ana's re-extracted commit is not billed again; Gus's first commit is.
    compute_bills(wh.as_mut(), &storage, &config, "2026-11".parse().unwrap()).unwrap();
    assert_eq!(
        read(&storage_dir, "bills/2026/11/web.csv"),
        "actor,commit,groups,repository\nGus <gus@x.com>,h11,web,site\n"
    );
    // October of the year before is its own month.
    compute_bills(wh.as_mut(), &storage, &config, "2025-10".parse().unwrap()).unwrap();
    assert_eq!(
        read(&storage_dir, "bills/2025/10/web.csv"),
        "actor,commit,groups,repository\nBob <bob@x.com>,h04,web,site\n"
    );
}
