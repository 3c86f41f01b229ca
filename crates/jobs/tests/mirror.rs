//! The repository mirror against a real git server (`git http-backend` with Basic auth)
//! and the S3 test server: first run publishes, an unchanged run uploads nothing, a new
//! commit re-publishes only its repository, the published bundle restores with plain git,
//! and a repository with bad credentials fails alone without its secret leaking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use observes_fakes::git::GitServer;
use observes_jobs::mirror::{
    mirror, Credential, MirrorConfig, MirrorReport, Outcome, RemoteRepository, SecretRef,
};
use observes_state::StateStore;
use observes_testkit::git::{run, TestRepo, Who};

const GOOD_PASSWORD: &str = "correct-horse-battery";
const BAD_PASSWORD: &str = "wrong-staple-0042";

fn who() -> Who<'static> {
    Who {
        name: b"Ana",
        email: "ana@example.com",
        date: "2026-10-01T10:00:00Z",
    }
}

/// A work repository and its bare copy served under `srv/<group>/<name>.git`.
fn served_repo(root: &Path, group: &str, name: &str) -> TestRepo {
    let work = TestRepo::init(&root.join("work").join(group).join(name));
    work.commit(
        &who(),
        "First",
        &[("README.md", format!("# {name}\n").as_bytes())],
    );
    work.git(["tag", "-a", "v1", "-m", "v1"]);
    let bare = root.join("srv").join(group).join(format!("{name}.git"));
    let mut cmd = std::process::Command::new("git");
    cmd.args(["clone", "-q", "--bare"])
        .arg(&work.path)
        .arg(&bare);
    run(cmd);
    work.git(["remote", "add", "served", bare.to_str().unwrap()]);
    work
}

fn outcomes(report: &MirrorReport) -> Vec<(String, Outcome)> {
    report
        .repositories
        .iter()
        .map(|r| (format!("{}/{}", r.group, r.repository), r.outcome.clone()))
        .collect()
}

fn refs(repo: &Path) -> String {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args(["for-each-ref", "--format=%(objectname) %(refname)"]);
    run(cmd)
}

#[test]
fn publishes_skips_unchanged_republishes_changed_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let web = served_repo(root, "acme", "web");
    let api = served_repo(root, "acme", "api");
    let _tools = served_repo(root, "beta", "tools");
    let server = GitServer::start(
        root.join("srv"),
        &[
            ("acme/api.git", "alice", GOOD_PASSWORD),
            ("beta/tools.git", "bob", GOOD_PASSWORD),
        ],
    )
    .unwrap();
    std::fs::write(
        root.join("secrets.toml"),
        format!("acme = \"{GOOD_PASSWORD}\"\nbeta = \"{BAD_PASSWORD}\"\n"),
    )
    .unwrap();
    let secret = |key: &str| SecretRef {
        env: None,
        file: Some(root.join("secrets.toml")),
        key: Some(key.into()),
    };
    let repo = |path: &str, credential: Option<&str>| RemoteRepository {
        url: server.url(path),
        credential: credential.map(str::to_string),
    };
    let mut groups = BTreeMap::new();
    groups.insert(
        "acme".to_string(),
        BTreeMap::from([
            ("web".to_string(), repo("acme/web.git", None)),
            ("api".to_string(), repo("acme/api.git", Some("acme"))),
        ]),
    );
    groups.insert(
        "beta".to_string(),
        BTreeMap::from([("tools".to_string(), repo("beta/tools.git", Some("beta")))]),
    );
    let config = MirrorConfig {
        work_dir: root.join("mirror"),
        prefix: "mirror".into(),
        parallel: 2,
        groups,
        credentials: BTreeMap::from([
            (
                "acme".to_string(),
                Credential {
                    username: Some("alice".into()),
                    password: Some(secret("acme")),
                    ..Credential::default()
                },
            ),
            (
                "beta".to_string(),
                Credential {
                    username: Some("bob".into()),
                    password: Some(secret("beta")),
                    ..Credential::default()
                },
            ),
        ]),
    };
    let bucket = observes_testkit::s3_bucket();
    let storage = StateStore::open(&format!("s3://{bucket}/published")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etag = |repo: &str, name: &str| {
        rt.block_on(storage.get_bytes(&format!("mirror/{repo}"), name))
            .unwrap()
            .map(|(_, tag)| tag)
    };

    // First run: the two reachable repositories are published; the one with a wrong
    // password fails alone, saying why, without its password.
    let first = mirror(&config, &storage, None).unwrap();
    assert_eq!(
        outcomes(&first),
        vec![
            ("acme/api".to_string(), Outcome::Published),
            ("acme/web".to_string(), Outcome::Published),
            ("beta/tools".to_string(), Outcome::Failed),
        ]
    );
    let error = first.repositories[2].error.clone().unwrap();
    assert_eq!(
        error,
        format!(
            "git ls-remote: remote: authentication required fatal: Authentication failed for '{}/'",
            server.url("beta/tools.git")
        )
    );
    let everything = format!(
        "{}{}",
        serde_json::to_string(&first).unwrap(),
        String::from_utf8_lossy(
            &rt.block_on(storage.get_bytes("mirror/acme/api", "metadata.json"))
                .unwrap()
                .unwrap()
                .0
        )
    );
    for secret in [GOOD_PASSWORD, BAD_PASSWORD] {
        assert!(!everything.contains(secret));
        let clone_config =
            std::fs::read_to_string(root.join("mirror/acme/api.git/config")).unwrap();
        assert!(!clone_config.contains(secret), "{clone_config}");
    }
    assert_eq!(etag("beta/tools", "metadata.json"), None);
    let web_bundle = etag("acme/web", "repo.bundle");
    let api_bundle = etag("acme/api", "repo.bundle");
    assert!(web_bundle.is_some() && api_bundle.is_some());

    // Unchanged remotes: nothing fetched, nothing uploaded.
    let second = mirror(&config, &storage, Some("acme")).unwrap();
    assert_eq!(
        outcomes(&second),
        vec![
            ("acme/api".to_string(), Outcome::Unchanged),
            ("acme/web".to_string(), Outcome::Unchanged),
        ]
    );
    assert!(second.repositories.iter().all(|r| r.bytes == 0));
    assert_eq!(etag("acme/web", "repo.bundle"), web_bundle);
    assert_eq!(etag("acme/api", "repo.bundle"), api_bundle);

    // A new commit in web: web alone is published again.
    web.commit(&who(), "Second", &[("b.txt", b"b\n")]);
    web.git(["push", "-q", "served", "main"]);
    let third = mirror(&config, &storage, Some("acme")).unwrap();
    assert_eq!(
        outcomes(&third),
        vec![
            ("acme/api".to_string(), Outcome::Unchanged),
            ("acme/web".to_string(), Outcome::Published),
        ]
    );
    assert_ne!(etag("acme/web", "repo.bundle"), web_bundle);
    assert_eq!(etag("acme/api", "repo.bundle"), api_bundle);
    let head = web.git(["rev-parse", "HEAD"]).trim().to_string();
    assert_eq!(third.repositories[1].head.as_deref(), Some(head.as_str()));

    // Restore with plain git from what was published: the same refs as the source.
    for (repo, served) in [
        ("acme/web", "srv/acme/web.git"),
        ("acme/api", "srv/acme/api.git"),
    ] {
        let (bundle, _) = rt
            .block_on(storage.get_bytes(&format!("mirror/{repo}"), "repo.bundle"))
            .unwrap()
            .unwrap();
        let bundle_path: PathBuf = root.join(format!("{}.bundle", repo.replace('/', "-")));
        std::fs::write(&bundle_path, &bundle).unwrap();
        let restored = root.join("restored").join(repo);
        let mut cmd = std::process::Command::new("git");
        cmd.args(["clone", "-q", "--mirror"])
            .arg(&bundle_path)
            .arg(&restored);
        run(cmd);
        assert_eq!(refs(&restored), refs(&root.join(served)), "{repo}");
    }
    let _ = api;
}

#[test]
fn configuration_mistakes_are_named() {
    let mut config = MirrorConfig {
        work_dir: "mirror".into(),
        prefix: "mirror".into(),
        parallel: 1,
        groups: BTreeMap::from([(
            "acme".to_string(),
            BTreeMap::from([(
                "web".to_string(),
                RemoteRepository {
                    url: "https://user:hunter2@git.example.com/web.git".into(),
                    credential: None,
                },
            )]),
        )]),
        credentials: BTreeMap::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = StateStore::open(dir.path().to_str().unwrap()).unwrap();
    let err = mirror(&config, &storage, None).unwrap_err().to_string();
    assert_eq!(
        err,
        "mirror: acme/web: the URL holds a password; put it in [mirror.credentials]"
    );
    config
        .groups
        .get_mut("acme")
        .unwrap()
        .get_mut("web")
        .unwrap()
        .url = "https://git.example.com/web.git".into();
    config
        .groups
        .get_mut("acme")
        .unwrap()
        .get_mut("web")
        .unwrap()
        .credential = Some("nope".into());
    let err = mirror(&config, &storage, None).unwrap_err().to_string();
    assert_eq!(
        err,
        "mirror: acme/web: no credential \"nope\" in [mirror.credentials]"
    );
    let err = mirror(&config, &storage, Some("zeta"))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "mirror: no group \"zeta\" (known: acme)");
}
