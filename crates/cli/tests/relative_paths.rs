//! Relative paths in `observes.toml` mean "beside this file", whatever folder `observes`
//! runs from, in every section: the warehouse, state, storage, singer-file paths, a tap's
//! command, settings files, the code source's root, the mirror's URLs and work dir, the
//! queue and the dashboards. (The demo's git part once failed from the README's default
//! folder: the mirror's URLs were handed to a `git` running elsewhere.)

mod common;

use common::*;
use observes_testkit::git::{TestRepo, Who};

const SINGER: &str = r#"{"type":"SCHEMA","stream":"jobs","schema":{"properties":{"id":{"type":"integer"}}},"key_properties":["id"]}
{"type":"RECORD","stream":"jobs","record":{"id":1}}
{"type":"RECORD","stream":"jobs","record":{"id":2}}
{"type":"STATE","value":{"at":2}}
"#;

const CONFIG: &str = r#"
warehouse = "duckdb://wh/warehouse.duckdb"
state = "state"
storage = "storage"

[pipelines.file]
source = "singer-file"
path = "data/in.singer"
schema = "from_file"
write = "merge"

[pipelines.tap]
source = "command"
command = ["./bin/tap.sh", "data/in.singer"]
schema = "from_tap"
write = "merge"

[pipelines.code]
source = "code"
config = "settings/code.toml"
schema = "code"
write = "merge"

[mirror]
work_dir = "mirror"
[mirror.groups.acme]
web = { url = "git/acme/web" }

[queue]
backend = "local"
dir = "queue"

[jobs."/observes/etl/file"]
command = ["observes", "run", "file"]
schedule = "cron(0 * * * ? *)"
"#;

const DASHBOARD: &str = r#"title = "Loaded"
[[panels]]
title = "Jobs"
kind = "number"
sql = "SELECT COUNT(*) AS jobs FROM from_file.jobs"
"#;

#[test]
fn every_relative_path_is_beside_the_config_whatever_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(project.join("data")).unwrap();
    std::fs::create_dir_all(project.join("bin")).unwrap();
    std::fs::create_dir_all(project.join("settings")).unwrap();
    std::fs::create_dir_all(project.join("dashboards")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(project.join("observes.toml"), CONFIG).unwrap();
    std::fs::write(project.join("data/in.singer"), SINGER).unwrap();
    std::fs::write(project.join("bin/tap.sh"), "#!/bin/sh\nexec cat \"$1\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        project.join("bin/tap.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    // Relative to the settings file: settings/../mirror.
    std::fs::write(project.join("settings/code.toml"), "root = \"../mirror\"\n").unwrap();
    std::fs::write(project.join("dashboards/loaded.toml"), DASHBOARD).unwrap();
    let repo = TestRepo::init(&project.join("git/acme/web"));
    let who = Who {
        name: b"Ana",
        email: "ana@example.com",
        date: "2026-10-03T10:00:00Z",
    };
    repo.commit(&who, "first", &[("a.txt", b"a\n")]);
    repo.commit(&who, "second", &[("b.txt", b"b\n")]);

    // Run from a sibling folder, naming the config relatively.
    let config = "../project/observes.toml";
    let run = |args: &[&str]| {
        let out = observes()
            .current_dir(&elsewhere)
            .args(args)
            .args(["--config", config])
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("ERROR"),
            "{args:?}: {}",
            stderr(&out)
        );
        stdout(&out)
    };
    let mirrored = run(&["job", "mirror"]);
    assert!(
        mirrored.contains("1 published, 0 unchanged, 0 failed"),
        "{mirrored}"
    );
    run(&["run", "file"]);
    run(&["run", "tap"]);
    run(&["run", "code"]);
    assert_eq!(run(&["dashboard", "check"]), "loaded: 1 panels ok\n");
    run(&["queue", "list"]);
    let state: serde_json::Value = serde_json::from_str(&run(&["state", "get", "file"])).unwrap();
    assert_eq!(state["state"], serde_json::json!({"at": 2}));
    assert_eq!(
        state["singer_file"]["offset"],
        serde_json::json!(SINGER.len()),
        "the file was read to its end"
    );

    let db = project.join("wh/warehouse.duckdb");
    assert_eq!(
        query(
            &db,
            "SELECT (SELECT COUNT(*) FROM from_file.jobs), (SELECT COUNT(*) FROM from_tap.jobs), \
             (SELECT COUNT(*) FROM code.commits)"
        ),
        rows(&[&["2", "2", "2"]])
    );
    for made in [
        "state/file/state.json",
        "storage/mirror/acme/web/repo.bundle",
        "mirror/acme/web.git",
        "queue",
    ] {
        assert!(project.join(made).exists(), "{made} beside the config");
    }
    let strays: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().collect();
    assert!(
        strays.is_empty(),
        "nothing is written where observes runs: {strays:?}"
    );
}
