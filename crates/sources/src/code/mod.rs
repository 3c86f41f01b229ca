//! Code: the commits of git repositories, grouped (a group owns repositories).
//!
//! Settings: [`SOURCE`]`.example` shows them all.
//!
//! Streams: `commits` (no merges; after `.mailmap`), `files` (each commit's changed
//! paths) and `sightings` (each extraction of a commit, for "first seen"). Each repository's bookmark is the set of commits its branches and tags pointed
//! at when it was last read; a run walks only what is reachable from the current tips and
//! not from those, so history rewritten by a force-push adds its new commits, keeps the
//! old ones loaded, and duplicates nothing. When an old tip is gone from the repository
//! (garbage-collected), the run walks the repository whole and the merge dedups it.

pub mod git;
pub mod sample;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::stream::{Emitter, Sink, StreamDef};
use crate::SourceError;
use git::{CommitWalk, LogEntry};

/// This source in the registry ([`crate::registry::SOURCES`]). Its paths are relative to
/// the settings' folder.
pub const SOURCE: crate::registry::SourceKind = crate::registry::SourceKind {
    name: "code",
    about: "Code: the commits (no merges, after .mailmap) and changed files of git repositories.",
    settings_help: "Settings (TOML): root (a folder of groups of repositories), groups, ignore.",
    example: r#"root = "mirror"                  # <root>/<group>/<repository>: every repository two levels down
[groups]                         # and/or repositories listed per group
acme = ["/srv/git/acme/web", "/srv/git/acme/api.git"]
[ignore]                         # per repository: commits touching only these paths are not billed
"acme/web" = ["vendor/**", "*.lock"]
"#,
    demo: crate::registry::Demo {
        about: "The commits of the repositories the mirror job keeps in mirror/ (one folder per group).",
        pipeline: "code",
        settings: Some(r#"{ root = "mirror", ignore = { "acme/web" = ["src/m7/**"] } }"#),
        job: "/observes/etl/code",
        schedule: "cron(0 3 * * ? *)",
        size: "medium",
        attempts: 1,
        timeout: "6h",
        settings_extra: "",
        more_jobs: "",
    },
    reads_api: false,
    build: |settings, dir| Ok(Box::new(settings.parse::<CodeConfig>()?.resolve(dir))),
};

impl crate::registry::Source for CodeConfig {
    fn name(&self) -> &'static str {
        "code"
    }

    fn run<'a>(
        &'a self,
        state: Option<&'a Value>,
        sink: &'a mut dyn Sink,
    ) -> crate::registry::Running<'a> {
        // Git runs as child processes: nothing here awaits.
        Box::pin(std::future::ready(run(self, state, sink).map(|_| ())))
    }

    fn settings(&self) -> &dyn std::any::Any {
        self
    }
}

/// The code source's settings: which repositories to read.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CodeConfig {
    /// A folder of groups, each a folder of repositories (a mirror's layout).
    pub root: Option<PathBuf>,
    /// Repositories per group, as paths.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<PathBuf>>,
    /// Per `group/repository`: glob patterns of paths whose changes are not billed.
    #[serde(default)]
    pub ignore: BTreeMap<String, Vec<String>>,
}

/// One repository to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// The group.
    pub group: String,
    /// The repository's name.
    pub name: String,
    /// Its working copy or bare repository.
    pub path: PathBuf,
}

impl Repository {
    /// `group/name`, the repository's key in bookmarks and rows.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }
}

/// A repository's name: its folder's name without `.git`.
pub fn repository_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".git").unwrap_or(&name).to_string()
}

impl CodeConfig {
    /// Relative paths taken from `base` (the folder of the file that declared them).
    pub fn resolve(mut self, base: &Path) -> CodeConfig {
        self.root = self.root.map(|r| base.join(r));
        for paths in self.groups.values_mut() {
            for p in paths.iter_mut() {
                *p = base.join(&*p);
            }
        }
        self
    }

    /// Every configured repository, sorted by group and name.
    pub fn repositories(&self) -> Result<Vec<Repository>, SourceError> {
        let mut found = BTreeMap::new();
        if let Some(root) = &self.root {
            let listing = |dir: &Path| -> Result<Vec<PathBuf>, SourceError> {
                let entries = std::fs::read_dir(dir).map_err(SourceError::setting(format!(
                    "code: reading {}",
                    dir.display()
                )))?;
                let mut dirs: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect();
                dirs.sort();
                Ok(dirs)
            };
            for group_dir in listing(root)? {
                let group = group_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                for path in listing(&group_dir)? {
                    if git::is_repository(&path) {
                        let repo = Repository {
                            group: group.clone(),
                            name: repository_name(&path),
                            path,
                        };
                        found.insert(repo.key(), repo);
                    }
                }
            }
        }
        for (group, paths) in &self.groups {
            for path in paths {
                if !git::is_repository(path) {
                    return Err(SourceError::Config(format!(
                        "code: group {group:?}: {} is not a git repository",
                        path.display()
                    )));
                }
                let repo = Repository {
                    group: group.clone(),
                    name: repository_name(path),
                    path: path.clone(),
                };
                if let Some(other) = found.get(&repo.key()) {
                    if other.path != repo.path {
                        return Err(SourceError::Config(format!(
                            "code: two repositories are named {:?}: {} and {}",
                            repo.key(),
                            other.path.display(),
                            repo.path.display()
                        )));
                    }
                }
                found.insert(repo.key(), repo);
            }
        }
        if self.root.is_none() && self.groups.is_empty() {
            return Err(SourceError::Config(
                "code: give a \"root\" folder or a [groups] table".into(),
            ));
        }
        Ok(found.into_values().collect())
    }

    fn ignore_set(&self, repo: &Repository) -> Result<globset::GlobSet, SourceError> {
        let mut builder = globset::GlobSetBuilder::new();
        for pattern in self.ignore.get(&repo.key()).into_iter().flatten() {
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(false)
                .build()
                .map_err(SourceError::setting(format!(
                    "code: ignore pattern {pattern:?} of {}",
                    repo.key()
                )))?;
            builder.add(glob);
        }
        builder.build().map_err(SourceError::setting(format!(
            "code: ignore list of {}",
            repo.key()
        )))
    }
}

/// One row per commit.
pub const COMMITS: &str = "commits";
/// One row per file a commit changed.
pub const FILES: &str = "files";
/// One row per (repository, commit) in which a commit was seen.
pub const SIGHTINGS: &str = "sightings";

/// `commits`, `files` and `sightings`. A sighting is one run's extraction of a commit,
/// keyed by its time, so a commit walked again (after its bookmark's tip was
/// garbage-collected) adds a row instead of moving its first sighting: billing reads
/// "first seen" as the earliest sighting of a content hash.
pub fn streams() -> [StreamDef; 3] {
    let text = json!({"type": "string"});
    let opt_text = json!({"type": ["string", "null"]});
    let int = json!({"type": "integer"});
    let opt_int = json!({"type": ["integer", "null"]});
    let time = json!({"type": "string", "format": "date-time"});
    [
        StreamDef {
            name: COMMITS,
            key_properties: &["namespace", "repository", "hash"],
            replication_key: None,
            schema: json!({
                "type": "object",
                "properties": {
                    "namespace": text, "repository": text, "hash": text,
                    "author_name": text, "author_email": text, "authored_at": time,
                    "committer_name": text, "committer_email": text, "committed_at": time,
                    "summary": text, "message": text,
                    "insertions": int, "deletions": int, "files_changed": int,
                    "billable": {"type": "boolean"},
                    "content_hash": text, "seen_at": time,
                }
            }),
        },
        StreamDef {
            name: FILES,
            key_properties: &["namespace", "repository", "hash", "path"],
            replication_key: None,
            schema: json!({
                "type": "object",
                "properties": {
                    "namespace": text, "repository": text, "hash": text,
                    "path": text, "old_path": opt_text,
                    "insertions": opt_int, "deletions": opt_int,
                    "binary": {"type": "boolean"},
                }
            }),
        },
        StreamDef {
            name: SIGHTINGS,
            key_properties: &["namespace", "repository", "hash", "seen_at"],
            replication_key: None,
            schema: json!({
                "type": "object",
                "properties": {
                    "namespace": text, "repository": text, "hash": text,
                    "content_hash": text, "seen_at": time,
                }
            }),
        },
    ]
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Repositories read.
    pub repositories: usize,
    /// Commits sent.
    pub commits: u64,
}

fn time_text(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Identifies a commit's content whatever its hash (rebased onto another parent, pushed
/// to a fork): the author as written, the author time, the message and the change counts.
pub fn content_hash(entry: &LogEntry, insertions: u64, deletions: u64) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [
        entry.raw_author_name.as_bytes(),
        entry.raw_author_email.as_bytes(),
        entry.author_time.to_string().as_bytes(),
        entry.message.as_bytes(),
        insertions.to_string().as_bytes(),
        deletions.to_string().as_bytes(),
        entry.files.len().to_string().as_bytes(),
    ] {
        h.update(part);
        h.update(&[0]);
    }
    format!("{:032x}", h.digest128())
}

/// The commit's records: its row in `commits` and one per changed file.
fn records(
    repo: &Repository,
    entry: LogEntry,
    ignored: &globset::GlobSet,
    seen_at: &str,
) -> (Map<String, Value>, Vec<Map<String, Value>>) {
    let insertions: u64 = entry.files.iter().filter_map(|f| f.insertions).sum();
    let deletions: u64 = entry.files.iter().filter_map(|f| f.deletions).sum();
    let billable = entry.files.is_empty()
        || entry.files.iter().any(|f| {
            !ignored.is_match(&f.path) || f.old_path.as_ref().is_some_and(|o| !ignored.is_match(o))
        });
    let content = content_hash(&entry, insertions, deletions);
    let files: Vec<Map<String, Value>> = entry
        .files
        .iter()
        .map(|f| {
            let Value::Object(map) = json!({
                "namespace": repo.group, "repository": repo.name, "hash": entry.hash,
                "path": f.path, "old_path": f.old_path,
                "insertions": f.insertions, "deletions": f.deletions,
                "binary": f.insertions.is_none(),
            }) else {
                unreachable!()
            };
            map
        })
        .collect();
    let summary = entry.message.lines().next().unwrap_or("").to_string();
    let Value::Object(commit) = json!({
        "namespace": repo.group, "repository": repo.name, "hash": entry.hash,
        "author_name": entry.author_name, "author_email": entry.author_email,
        "authored_at": time_text(entry.author_time),
        "committer_name": entry.committer_name, "committer_email": entry.committer_email,
        "committed_at": time_text(entry.committer_time),
        "summary": summary, "message": entry.message,
        "insertions": insertions, "deletions": deletions, "files_changed": entry.files.len(),
        "billable": billable, "content_hash": content, "seen_at": seen_at,
    }) else {
        unreachable!()
    };
    (commit, files)
}

/// Reads every configured repository's new commits, resuming from `state`.
pub fn run(
    config: &CodeConfig,
    state: Option<&Value>,
    sink: &mut dyn Sink,
) -> Result<RunReport, SourceError> {
    let repositories = config.repositories()?;
    let [commits_stream, files_stream, sightings_stream] = streams();
    let mut emitter = Emitter::new(sink, state);
    let seen_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut report = RunReport::default();
    emitter.describe(&commits_stream)?;
    emitter.describe(&files_stream)?;
    emitter.describe(&sightings_stream)?;
    for repo in &repositories {
        let key = repo.key();
        let fail = |message: String| SourceError::Data {
            stream: COMMITS.into(),
            message: format!("repository {key} ({}): {message}", repo.path.display()),
        };
        let ignored = config.ignore_set(repo)?;
        let tips = git::tips(&repo.path).map_err(fail)?;
        let old: Vec<String> = emitter
            .bookmark(COMMITS, Some(&key))
            .and_then(|b| b.get("tips"))
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default();
        // Whatever an old tip still present reaches was loaded; a tip that is gone
        // (garbage-collected after a force-push) proves nothing, so its commits are
        // walked again and the merge on the key dedups them.
        let exclude = git::present(&repo.path, &old).map_err(fail)?;
        if exclude.len() < old.len() {
            tracing::warn!(
                repository = %key,
                missing = old.len() - exclude.len(),
                "commits loaded before are gone from the repository; walking without them"
            );
        }
        let mut walked = 0u64;
        if !tips.is_empty() {
            let mut walk = CommitWalk::start(&repo.path, &tips, &exclude).map_err(fail)?;
            while let Some(entry) = walk.reader.next_entry().map_err(|e| fail(e.to_string()))? {
                let (commit, files) = records(repo, entry, &ignored, &seen_at);
                let sighting = ["namespace", "repository", "hash", "content_hash", "seen_at"]
                    .iter()
                    .filter_map(|k| Some((k.to_string(), commit.get(*k)?.clone())))
                    .collect();
                emitter.record(&commits_stream, commit)?;
                for file in files {
                    emitter.record(&files_stream, file)?;
                }
                emitter.record(&sightings_stream, sighting)?;
                walked += 1;
            }
            walk.finish().map_err(fail)?;
        }
        tracing::info!(repository = %key, commits = walked, "code: repository read");
        report.commits += walked;
        report.repositories += 1;
        emitter.set_bookmark(COMMITS, Some(&key), json!({ "tips": tips }));
        emitter.checkpoint()?;
    }
    if repositories.is_empty() {
        emitter.checkpoint()?;
    }
    Ok(report)
}
