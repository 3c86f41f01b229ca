//! The code ETL end to end: real git repositories → `code` source → DuckDB, with exact
//! rows, re-runs that add nothing, incremental runs that walk only new commits, and
//! rewritten history (a force-push, then garbage collection) that duplicates nothing.

use std::path::Path;

use observes_app::{run_pipeline, Config};
use observes_pipeline::RunSummary;
use observes_sources::code::sample::{self, SampleRepo};
use observes_testkit::git::{TestRepo, Who};
use observes_warehouse::SqlValue;

fn config(dir: &Path, settings: &str) -> Config {
    let text = format!(
        "warehouse = \"duckdb://wh.duckdb\"\nstate = \"state\"\n\n[pipelines.code]\nsource = \"code\"\nschema = \"code\"\nwrite = \"merge\"\n\n[pipelines.code.settings]\n{settings}\n"
    );
    let path = dir.join("observes.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

fn query(config: &Config, sql: &str) -> Vec<Vec<SqlValue>> {
    let mut wh = observes_warehouse::connect(&config.warehouse).unwrap();
    wh.query(sql, &[]).unwrap()
}

fn texts(rows: Vec<Vec<SqlValue>>) -> Vec<String> {
    rows.into_iter()
        .map(|r| {
            r.iter()
                .map(|v| match v {
                    SqlValue::Null => "NULL".to_string(),
                    SqlValue::Text(s) => s.clone(),
                    SqlValue::Int(i) => i.to_string(),
                    SqlValue::Bool(b) => b.to_string(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

fn commits_walked(summary: &RunSummary) -> u64 {
    summary.load.streams.get("commits").map_or(0, |c| c.rows)
}

fn who<'a>(name: &'a [u8], email: &'a str, date: &'a str) -> Who<'a> {
    Who { name, email, date }
}

#[test]
fn handmade_repository_gives_exact_rows_and_survives_a_force_push() {
    let dir = tempfile::tempdir().unwrap();
    let repo = TestRepo::init(&dir.path().join("repos/acme/web"));
    let ana_old = who(b"Ana", "ana@old.example.com", "2026-09-30T23:30:00Z");
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00binary";
    repo.commit(
        &ana_old,
        "Start\n\nWith a logo.",
        &[
            ("README.md", b"# Web\nhello\n"),
            ("logo.png", png),
            (
                ".mailmap",
                b"Ana Silva <ana@example.com> <ana@old.example.com>\n",
            ),
        ],
    );
    let ana = who(b"Ana Silva", "ana@example.com", "2026-10-01T08:00:00Z");
    std::fs::create_dir_all(repo.path.join("docs")).unwrap();
    repo.git(["mv", "README.md", "docs/README.md"]);
    repo.commit(&ana, "Move the readme", &[]);
    repo.commit(&ana, "Nothing changed", &[]);
    repo.git(["checkout", "-q", "-b", "feature"]);
    let bob = who(b"Bob", "bob@example.com", "2026-10-02T09:00:00Z");
    repo.commit(&bob, "Feature", &[("src/app.js", b"a\nb\nc\n")]);
    repo.git(["checkout", "-q", "main"]);
    repo.git(["merge", "-q", "--no-ff", "-m", "Merge feature", "feature"]);
    // Latin-1 names: declared as the commit's encoding, and undeclared (git records the
    // invalid UTF-8 as Latin-1); both read back as UTF-8.
    repo.commit_with(
        &who(b"Jos\xe9", "jose@example.com", "2026-10-03T10:00:00Z"),
        "Vendor update",
        &[("vendor/lib.js", b"x\n")],
        &["-c", "i18n.commitEncoding=ISO-8859-1"],
    );
    repo.commit(
        &who(b"Ren\xe9e", "renee@example.com", "2026-10-04T11:00:00Z"),
        "Edit app",
        &[("src/app.js", b"a\nB\nc\nd\n")],
    );

    let config = config(
        dir.path(),
        "root = \"repos\"\n[pipelines.code.settings.ignore]\n\"acme/web\" = [\"vendor/**\"]\n",
    );
    let first = run_pipeline(&config, "code").unwrap();
    assert_eq!(commits_walked(&first), 6);
    let commits =
        "SELECT namespace, repository, author_name, author_email, CAST(authored_at AS VARCHAR), \
                   summary, insertions, deletions, files_changed, billable \
                   FROM code.commits ORDER BY authored_at";
    let expected = [
        "acme | web | Ana Silva | ana@example.com | 2026-09-30 23:30:00+00 | Start | 3 | 0 | 3 | true",
        "acme | web | Ana Silva | ana@example.com | 2026-10-01 08:00:00+00 | Move the readme | 0 | 0 | 1 | true",
        "acme | web | Ana Silva | ana@example.com | 2026-10-01 08:00:00+00 | Nothing changed | 0 | 0 | 0 | true",
        "acme | web | Bob | bob@example.com | 2026-10-02 09:00:00+00 | Feature | 3 | 0 | 1 | true",
        "acme | web | José | jose@example.com | 2026-10-03 10:00:00+00 | Vendor update | 1 | 0 | 1 | false",
        "acme | web | Renée | renee@example.com | 2026-10-04 11:00:00+00 | Edit app | 2 | 1 | 1 | true",
    ];
    let got = texts(query(&config, commits));
    // Two commits share a second; order them as git does not guarantee.
    let mut sorted_got = got.clone();
    sorted_got.sort();
    let mut sorted_expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    sorted_expected.sort();
    assert_eq!(sorted_got, sorted_expected);

    let files = texts(query(
        &config,
        "SELECT c.summary, f.path, coalesce(f.old_path, '-'), f.insertions, f.deletions, f.binary \
         FROM code.files f JOIN code.commits c USING (namespace, repository, hash) ORDER BY c.authored_at, f.path",
    ));
    assert_eq!(
        files,
        vec![
            "Start | .mailmap | - | 1 | 0 | false",
            "Start | README.md | - | 2 | 0 | false",
            "Start | logo.png | - | NULL | NULL | true",
            "Move the readme | docs/README.md | README.md | 0 | 0 | false",
            "Feature | src/app.js | - | 3 | 0 | false",
            "Vendor update | vendor/lib.js | - | 1 | 0 | false",
            "Edit app | src/app.js | - | 2 | 1 | false",
        ]
    );
    // Hashes are git's; the merge commit is not there; messages are whole.
    let hashes = texts(query(
        &config,
        "SELECT hash FROM code.commits ORDER BY hash",
    ));
    let mut git_hashes: Vec<String> = repo
        .git(["rev-list", "--no-merges", "--all"])
        .lines()
        .map(str::to_string)
        .collect();
    git_hashes.sort();
    assert_eq!(hashes, git_hashes);
    assert_eq!(
        texts(query(
            &config,
            "SELECT message FROM code.commits WHERE summary = 'Start'"
        )),
        vec!["Start\n\nWith a logo.\n"]
    );
    assert_eq!(
        query(
            &config,
            "SELECT COUNT(DISTINCT content_hash) FROM code.commits"
        )[0][0],
        SqlValue::Int(6)
    );

    // Nothing new: nothing walked, nothing changed.
    let again = run_pipeline(&config, "code").unwrap();
    assert_eq!(commits_walked(&again), 0);
    assert_eq!(texts(query(&config, commits)).len(), 6);

    // A force-push: the last commit is replaced by another. Only the new one is walked;
    // the replaced one stays loaded.
    let edit_hash = repo.git(["rev-parse", "HEAD"]).trim().to_string();
    repo.git(["reset", "-q", "--hard", "HEAD~1"]);
    let new_hash = repo.commit(
        &who(b"Bob", "bob@example.com", "2026-10-05T12:00:00Z"),
        "Edit app again",
        &[("src/app.js", b"a\nb\nc\ne\n")],
    );
    let third = run_pipeline(&config, "code").unwrap();
    assert_eq!(commits_walked(&third), 1);
    let present = texts(query(
        &config,
        "SELECT hash FROM code.commits WHERE summary LIKE 'Edit app%' ORDER BY authored_at",
    ));
    assert_eq!(present, vec![edit_hash, new_hash]);

    // Another force-push, and the replaced commit collected as garbage before the next
    // run: the bookmark's tip is gone and proves nothing, so the run walks everything not
    // reachable from the tips that remain (the feature branch) — the vendor commit again
    // and the new one — and the merge keeps one row per commit.
    repo.git(["reset", "-q", "--hard", "HEAD~1"]);
    repo.commit(
        &who(b"Bob", "bob@example.com", "2026-10-06T12:00:00Z"),
        "Later",
        &[("later.txt", b"1\n")],
    );
    repo.git(["reflog", "expire", "--expire=now", "--all"]);
    repo.git(["gc", "-q", "--prune=now"]);
    let vendor = "(SELECT hash FROM code.commits WHERE summary = 'Vendor update')";
    let first_seen = texts(query(
        &config,
        &format!("SELECT CAST(seen_at AS VARCHAR) FROM code.sightings WHERE hash = {vendor}"),
    ));
    assert_eq!(first_seen.len(), 1);
    let fourth = run_pipeline(&config, "code").unwrap();
    assert_eq!(commits_walked(&fourth), 2);
    // Walked again, the vendor commit has a second sighting; its first one stays, so
    // billing still counts it in the month it was first seen.
    assert_eq!(
        texts(query(
            &config,
            &format!("SELECT COUNT(*), CAST(MIN(seen_at) AS VARCHAR) FROM code.sightings WHERE hash = {vendor}"),
        )),
        vec![format!("2 | {}", first_seen[0])]
    );
    assert_eq!(
        query(
            &config,
            "SELECT COUNT(*), COUNT(DISTINCT hash) FROM code.commits"
        )[0],
        vec![SqlValue::Int(8), SqlValue::Int(8)]
    );
    assert_eq!(
        query(&config, "SELECT COUNT(*) FROM code.files")[0][0],
        SqlValue::Int(9)
    );

    // A fork in another group with the feature commit cherry-picked onto another base:
    // another hash, the same content hash.
    let fork = TestRepo::init(&dir.path().join("repos/forks/web-fork"));
    fork.git(["pull", "-q", repo.path.to_str().unwrap(), "main"]);
    fork.git(["reset", "-q", "--hard", "HEAD~5"]);
    let feature = repo.git(["rev-parse", "feature"]).trim().to_string();
    fork.git(["fetch", "-q", repo.path.to_str().unwrap(), "feature"]);
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C")
        .arg(&fork.path)
        .args(["cherry-pick", &feature]);
    cmd.env("GIT_COMMITTER_DATE", "2026-11-01T00:00:00Z");
    observes_testkit::git::run(cmd);
    run_pipeline(&config, "code").unwrap();
    let hashes = texts(query(
        &config,
        "SELECT COUNT(DISTINCT hash), COUNT(DISTINCT content_hash) FROM code.commits WHERE summary = 'Feature'",
    ));
    assert_eq!(hashes, vec!["2 | 1"]);
}

#[test]
fn a_sample_history_matches_git_log_and_shortlog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repos/big/history");
    sample::build(
        &path,
        &SampleRepo {
            commits: 3000,
            merge_every: 25,
            ..SampleRepo::default()
        },
    )
    .unwrap();
    let repo = TestRepo { path };
    let config = config(dir.path(), "root = \"repos\"\n");
    let summary = run_pipeline(&config, "code").unwrap();

    let git_count = repo
        .git(["log", "--no-merges", "--format=%H"])
        .lines()
        .count();
    assert!(git_count > 2900, "{git_count}");
    assert_eq!(commits_walked(&summary), git_count as u64);
    assert_eq!(
        query(&config, "SELECT COUNT(*) FROM code.commits")[0][0],
        SqlValue::Int(git_count as i64)
    );

    // Per author, after .mailmap: `git shortlog -sne --no-merges`.
    let mut shortlog: Vec<String> = repo
        .git(["shortlog", "-sne", "--no-merges", "HEAD"])
        .lines()
        .map(|l| {
            let (n, who) = l.trim().split_once('\t').unwrap();
            format!("{who} | {n}")
        })
        .collect();
    shortlog.sort();
    let ours = texts(query(
        &config,
        "SELECT author_name || ' <' || author_email || '>', COUNT(*) FROM code.commits GROUP BY 1 ORDER BY 1",
    ));
    assert_eq!(ours, shortlog);
    assert_eq!(ours.len(), sample::AUTHORS.len() - 1, "the alias is mapped");

    // Line counts: the sums of `git log --numstat`.
    let (mut added, mut deleted) = (0i64, 0i64);
    for line in repo
        .git(["log", "--no-merges", "--numstat", "--format="])
        .lines()
    {
        let mut parts = line.split('\t');
        if let (Some(a), Some(d)) = (parts.next(), parts.next()) {
            added += a.parse::<i64>().unwrap_or(0);
            deleted += d.parse::<i64>().unwrap_or(0);
        }
    }
    assert_eq!(
        query(
            &config,
            "SELECT CAST(SUM(insertions) AS BIGINT), CAST(SUM(deletions) AS BIGINT) FROM code.commits"
        )[0],
        vec![SqlValue::Int(added), SqlValue::Int(deleted)]
    );
}

#[test]
fn bad_settings_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plain")).unwrap();
    let config = config(
        dir.path(),
        "[pipelines.code.settings.groups]\nacme = [\"plain\"]\n",
    );
    let err = observes_runtime::chain(&run_pipeline(&config, "code").unwrap_err()).to_string();
    assert_eq!(
        err,
        format!(
            "source code: code: group \"acme\": {} is not a git repository",
            dir.path().join("plain").display()
        )
    );
}
