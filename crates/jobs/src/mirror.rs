//! The repository mirror: every configured repository cloned (or fetched) into a local
//! work folder and published to object storage as a git bundle that plain git restores
//! (`git clone repo.bundle`), beside a `metadata.json` with its refs, head and sync time.
//!
//! ```toml
//! [mirror]
//! work_dir = "mirror"       # local clones, <work_dir>/<group>/<repository>.git (the code ETL's root)
//! prefix = "mirror"         # keys <prefix>/<group>/<repository>/{repo.bundle,metadata.json}
//! parallel = 4
//! [mirror.groups.acme]
//! web = { url = "https://gitlab.com/acme/web.git", credential = "acme" }
//! [mirror.credentials.acme]
//! username = "oauth2"
//! token = { env = "ACME_GITLAB_TOKEN" }      # or password = …, or ssh_key = { file = "id_ed25519" }
//! # a secret is { env = "VAR" }, { file = "secrets.toml", key = "name" } or { file = "path" }
//! ```
//!
//! A repository whose remote refs (`git ls-remote`) equal the published ones is skipped
//! without fetching or uploading. Credentials reach git through its environment only:
//! `GIT_ASKPASS` names a fixed script that answers from variables set on that one git
//! process, and an SSH key goes to a 0600 file read by a fixed `GIT_SSH` wrapper; nothing
//! secret is in an argument, a log line, the metadata or an error. The bundle is uploaded
//! before the metadata, so a reader that trusts `metadata.json` never sees a half-publish.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use observes_sources::code::git::{git, output};
use observes_state::StateStore;
use serde::{Deserialize, Serialize};

use crate::JobError;

/// `[mirror]` of `observes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Where repositories are cloned and fetched between runs.
    #[serde(default = "default_work_dir")]
    pub work_dir: PathBuf,
    /// The key prefix in object storage.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Repositories synced at the same time.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Group → repository name → where it is.
    #[serde(default)]
    pub groups: BTreeMap<String, BTreeMap<String, RemoteRepository>>,
    /// Named credentials, referred to by repositories.
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
}

fn default_work_dir() -> PathBuf {
    "mirror".into()
}
fn default_prefix() -> String {
    "mirror".into()
}
fn default_parallel() -> usize {
    4
}

/// A repository to mirror.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteRepository {
    /// Its clone URL.
    pub url: String,
    /// A name in `[mirror.credentials]`; none for public repositories.
    pub credential: Option<String>,
}

/// How to authenticate: a token (user `oauth2` unless given), a user and password, or an
/// SSH private key.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The user name (`oauth2` with a token, if not given).
    pub username: Option<String>,
    /// A token.
    pub token: Option<SecretRef>,
    /// A password.
    pub password: Option<SecretRef>,
    /// An SSH private key.
    pub ssh_key: Option<SecretRef>,
}

/// Where a secret is: an environment variable, a key of a TOML secrets file, or a whole
/// file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// An environment variable holding the secret.
    pub env: Option<String>,
    /// A file holding the secret (whole, or a TOML table holding `key`).
    pub file: Option<PathBuf>,
    /// The key in that TOML file.
    pub key: Option<String>,
}

impl SecretRef {
    fn read(&self, what: &str) -> Result<String, String> {
        match (&self.env, &self.file, &self.key) {
            (Some(var), None, None) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{what}: the environment variable {var} is not set")),
            (None, Some(file), key) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("{what}: reading {}: {e}", file.display()))?;
                let Some(key) = key else {
                    return Ok(text.trim_end_matches(['\n', '\r']).to_string());
                };
                let table: toml::Table = toml::from_str(&text).map_err(|e| {
                    format!("{what}: {} is not a TOML table: {}", file.display(), e.message())
                })?;
                table
                    .get(key)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what}: {} has no string {key:?}", file.display()))
            }
            _ => Err(format!(
                "{what}: give {{ env = \"VAR\" }}, {{ file = \"secrets.toml\", key = \"name\" }} or {{ file = \"path\" }}"
            )),
        }
    }
}

impl MirrorConfig {
    /// Relative paths taken from `base` (the folder of the configuration file).
    /// A repository URL that is a relative path (no scheme, no `host:`) is taken from
    /// `base` too.
    pub fn resolve(mut self, base: &Path) -> MirrorConfig {
        self.work_dir = base.join(&self.work_dir);
        for repos in self.groups.values_mut() {
            for remote in repos.values_mut() {
                if !remote.url.contains(':') && Path::new(&remote.url).is_relative() {
                    remote.url = base.join(&remote.url).display().to_string();
                }
            }
        }
        for c in self.credentials.values_mut() {
            for s in [&mut c.token, &mut c.password, &mut c.ssh_key]
                .into_iter()
                .flatten()
            {
                s.file = s.file.as_ref().map(|f| base.join(f));
            }
        }
        self
    }

    /// The repositories to mirror (of one group, or all), checked.
    fn selected(&self, group: Option<&str>) -> Result<Vec<Target>, JobError> {
        if let Some(g) = group {
            if !self.groups.contains_key(g) {
                return Err(JobError::Config(format!(
                    "mirror: no group {g:?} (known: {})",
                    self.groups.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let mut out = Vec::new();
        for (g, repos) in &self.groups {
            if group.is_some_and(|only| only != g) {
                continue;
            }
            for (name, remote) in repos {
                let key = format!("{g}/{name}");
                if let Ok(url) = url::Url::parse(&remote.url) {
                    if url.password().is_some() {
                        return Err(JobError::Config(format!(
                            "mirror: {key}: the URL holds a password; put it in [mirror.credentials]"
                        )));
                    }
                }
                if let Some(c) = &remote.credential {
                    if !self.credentials.contains_key(c) {
                        return Err(JobError::Config(format!(
                            "mirror: {key}: no credential {c:?} in [mirror.credentials]"
                        )));
                    }
                }
                out.push(Target {
                    group: g.clone(),
                    name: name.clone(),
                    remote: remote.clone(),
                });
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone)]
struct Target {
    group: String,
    name: String,
    remote: RemoteRepository,
}

/// What `metadata.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The group.
    pub group: String,
    /// The repository.
    pub repository: String,
    /// Its URL, credentials removed.
    pub url: String,
    /// The commit `HEAD` names.
    pub head: Option<String>,
    /// Every ref and the commit it names.
    pub refs: BTreeMap<String, String>,
    /// When it was synced (RFC 3339).
    pub synced_at: String,
    /// The bundle's name beside this file (none for a repository without refs).
    pub bundle: Option<String>,
    /// The bundle's size in bytes.
    pub bundle_bytes: u64,
}

/// What happened to one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new bundle was published.
    Published,
    /// Nothing changed since the last publication.
    Unchanged,
    /// It could not be synced (the others go on).
    Failed,
}

/// One repository in a mirror run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryReport {
    /// The group.
    pub group: String,
    /// The repository.
    pub repository: String,
    /// What happened.
    pub outcome: Outcome,
    /// The commit `HEAD` names, if any.
    pub head: Option<String>,
    /// Bytes published.
    pub bytes: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What a mirror run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorReport {
    /// Each repository.
    pub repositories: Vec<RepositoryReport>,
}

impl MirrorReport {
    /// Repositories with this outcome.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.repositories
            .iter()
            .filter(|r| r.outcome == outcome)
            .count()
    }
}

/// The fixed helper scripts git runs; secrets come from the git process's environment.
const ASKPASS: &str = "#!/bin/sh\n# Answers git's credential prompts from its environment.\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$OBSERVES_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$OBSERVES_GIT_PASSWORD\" ;;\nesac\n";
const SSH: &str = "#!/bin/sh\nexec ssh -i \"$OBSERVES_GIT_SSH_KEY\" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new \"$@\"\n";

/// A run's private folder: the helper scripts and SSH keys (0600), removed at the end.
struct Helpers {
    dir: tempfile::TempDir,
}

impl Helpers {
    fn new() -> Result<Helpers, JobError> {
        use std::os::unix::fs::PermissionsExt;
        let io = JobError::Helpers;
        let dir = tempfile::Builder::new()
            .prefix("observes-mirror-")
            .tempdir()
            .map_err(io)?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        for (name, text) in [("askpass", ASKPASS), ("ssh", SSH)] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).map_err(io)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        Ok(Helpers { dir })
    }

    /// Sets a git command's credentials for `target`.
    fn apply(
        &self,
        cmd: &mut Command,
        config: &MirrorConfig,
        target: &Target,
    ) -> Result<(), String> {
        // No stored credential helper may answer, or remember what we give.
        cmd.env("GIT_ASKPASS", self.dir.path().join("askpass"))
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "credential.helper")
            .env("GIT_CONFIG_VALUE_0", "")
            .env_remove("OBSERVES_GIT_USERNAME")
            .env_remove("OBSERVES_GIT_PASSWORD");
        let Some(name) = &target.remote.credential else {
            return Ok(());
        };
        let Some(c) = config.credentials.get(name) else {
            return Err(format!("no credential {name:?}"));
        };
        let what = format!("credential {name:?}");
        if let Some(key) = &c.ssh_key {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let mut text = key.read(&what)?;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let path = self
                .dir
                .path()
                .join(format!("key-{}", target.group_repo_id()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("{what}: writing the key file: {e}"))?;
            std::io::Write::write_all(&mut file, text.as_bytes())
                .map_err(|e| format!("{what}: writing the key file: {e}"))?;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            cmd.env("GIT_SSH", self.dir.path().join("ssh"))
                .env("GIT_SSH_VARIANT", "ssh")
                .env("OBSERVES_GIT_SSH_KEY", path);
        }
        let secret = match (&c.token, &c.password) {
            (Some(t), _) => Some(t.read(&what)?),
            (None, Some(p)) => Some(p.read(&what)?),
            (None, None) => None,
        };
        if let Some(secret) = secret {
            let username = c.username.clone().unwrap_or_else(|| {
                if c.token.is_some() {
                    "oauth2".into()
                } else {
                    String::new()
                }
            });
            cmd.env("OBSERVES_GIT_USERNAME", username)
                .env("OBSERVES_GIT_PASSWORD", secret);
        }
        Ok(())
    }
}

impl Target {
    fn key(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }

    /// A file-name-safe id of the repository.
    fn group_repo_id(&self) -> String {
        self.key()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }
}

/// `hash\tref` lines (from `ls-remote` or `for-each-ref`) as a map, without `HEAD` and
/// peeled tags.
fn parse_refs(text: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|line| {
            let (hash, name) = line.split_once(['\t', ' '])?;
            (name != "HEAD" && !name.ends_with("^{}")).then(|| (name.to_string(), hash.to_string()))
        })
        .collect()
}

struct Mirror<'a> {
    config: &'a MirrorConfig,
    storage: &'a StateStore,
    runtime: &'a tokio::runtime::Runtime,
    helpers: Helpers,
}

impl Mirror<'_> {
    fn folder(&self, target: &Target) -> String {
        [self.config.prefix.as_str(), &target.group, &target.name]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    }

    fn git_for(&self, target: &Target, dir: &Path) -> Result<Command, String> {
        let mut cmd = git(dir);
        self.helpers.apply(&mut cmd, self.config, target)?;
        Ok(cmd)
    }

    fn published(&self, target: &Target) -> Result<Option<Published>, String> {
        let folder = self.folder(target);
        let found = self
            .runtime
            .block_on(self.storage.get_bytes(&folder, "metadata.json"))
            .map_err(|e| observes_runtime::chain(&e).to_string())?;
        Ok(found.and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok()))
    }

    fn one(&self, target: &Target) -> Result<(Outcome, Option<String>, u64), String> {
        let group_dir = self.config.work_dir.join(&target.group);
        std::fs::create_dir_all(&group_dir)
            .map_err(|e| format!("creating {}: {e}", group_dir.display()))?;
        let mut ls = self.git_for(target, &group_dir)?;
        ls.args(["ls-remote", "--", &target.remote.url]);
        let remote_refs = parse_refs(&output(ls).map_err(|e| format!("git ls-remote: {e}"))?);
        let previous = self.published(target)?;
        if let Some(p) = &previous {
            if p.refs == remote_refs && p.url == target.remote.url {
                return Ok((Outcome::Unchanged, p.head.clone(), 0));
            }
        }
        let clone = group_dir.join(format!("{}.git", target.name));
        if clone.join("HEAD").is_file() {
            let mut set_url = git(&clone);
            set_url.args(["remote", "set-url", "origin", &target.remote.url]);
            output(set_url)?;
            let mut fetch = self.git_for(target, &clone)?;
            fetch.args(["fetch", "--quiet", "--prune", "origin"]);
            output(fetch).map_err(|e| format!("git fetch: {e}"))?;
        } else {
            // Cloned aside and renamed, so a failed clone leaves nothing half-made.
            let partial = group_dir.join(format!(".{}.git.partial", target.name));
            let _ = std::fs::remove_dir_all(&partial);
            let mut cmd = self.git_for(target, &group_dir)?;
            cmd.args(["clone", "--quiet", "--mirror", "--", &target.remote.url])
                .arg(&partial);
            if let Err(e) = output(cmd) {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(format!("git clone: {e}"));
            }
            std::fs::rename(&partial, &clone)
                .map_err(|e| format!("moving the clone into place: {e}"))?;
        }
        let mut refs_cmd = git(&clone);
        refs_cmd.args(["for-each-ref", "--format=%(objectname)\t%(refname)"]);
        let refs = parse_refs(&output(refs_cmd)?);
        let head = {
            let mut cmd = git(&clone);
            cmd.args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]);
            output(cmd)
                .ok()
                .map(|o| String::from_utf8_lossy(&o).trim().to_string())
                .filter(|h| !h.is_empty())
        };
        let folder = self.folder(target);
        let mut bundle = None;
        let mut bytes = 0;
        if !refs.is_empty() {
            let path = self
                .helpers
                .dir
                .path()
                .join(format!("{}.bundle", target.group_repo_id()));
            let mut cmd = git(&clone);
            cmd.args(["bundle", "create", "--quiet"])
                .arg(&path)
                .arg("--all");
            output(cmd).map_err(|e| format!("git bundle: {e}"))?;
            bytes = self
                .runtime
                .block_on(self.storage.put_file(&folder, "repo.bundle", &path))
                .map_err(|e| observes_runtime::chain(&e).to_string())?;
            let _ = std::fs::remove_file(&path);
            bundle = Some("repo.bundle".to_string());
        }
        let metadata = Published {
            group: target.group.clone(),
            repository: target.name.clone(),
            url: target.remote.url.clone(),
            head: head.clone(),
            refs,
            synced_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            bundle,
            bundle_bytes: bytes,
        };
        let json = serde_json::to_vec_pretty(&metadata).unwrap_or_default();
        self.runtime
            .block_on(
                self.storage
                    .put_bytes(&folder, "metadata.json", Bytes::from(json)),
            )
            .map_err(|e| observes_runtime::chain(&e).to_string())?;
        Ok((Outcome::Published, head, bytes))
    }
}

/// Mirrors the configured repositories (of `group`, or all), `parallel` at a time. One
/// failing repository is reported in its row; the others go on.
pub fn mirror(
    config: &MirrorConfig,
    storage: &StateStore,
    group: Option<&str>,
) -> Result<MirrorReport, JobError> {
    let targets = config.selected(group)?;
    let runtime = observes_state::runtime()?;
    let job = Mirror {
        config,
        storage,
        runtime,
        helpers: Helpers::new()?,
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, RepositoryReport)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..config.parallel.clamp(1, targets.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(target) = targets.get(i) else { return };
                let report = match job.one(target) {
                    Ok((outcome, head, bytes)) => {
                        tracing::info!(repository = %target.key(), ?outcome, bytes, "mirror");
                        RepositoryReport {
                            group: target.group.clone(),
                            repository: target.name.clone(),
                            outcome,
                            head,
                            bytes,
                            error: None,
                        }
                    }
                    Err(error) => {
                        tracing::error!(repository = %target.key(), %error, "mirror: failed");
                        RepositoryReport {
                            group: target.group.clone(),
                            repository: target.name.clone(),
                            outcome: Outcome::Failed,
                            head: None,
                            bytes: 0,
                            error: Some(error),
                        }
                    }
                };
                if let Ok(mut r) = results.lock() {
                    r.push((i, report));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    Ok(MirrorReport {
        repositories: results.into_iter().map(|(_, r)| r).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_reach_git_through_its_environment_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id_ed25519"), "-----KEY-----").unwrap();
        std::fs::write(dir.path().join("secrets.toml"), "web = \"tok3n\"\n").unwrap();
        let config = MirrorConfig {
            work_dir: dir.path().join("mirror"),
            prefix: "mirror".into(),
            parallel: 1,
            groups: BTreeMap::new(),
            credentials: BTreeMap::from([
                (
                    "ssh".to_string(),
                    Credential {
                        ssh_key: Some(SecretRef {
                            env: None,
                            file: Some("id_ed25519".into()),
                            key: None,
                        }),
                        ..Credential::default()
                    },
                ),
                (
                    "token".to_string(),
                    Credential {
                        token: Some(SecretRef {
                            env: None,
                            file: Some("secrets.toml".into()),
                            key: Some("web".into()),
                        }),
                        ..Credential::default()
                    },
                ),
            ]),
        }
        .resolve(dir.path());
        let helpers = Helpers::new().unwrap();
        let target = |credential: &str| Target {
            group: "acme".into(),
            name: "web".into(),
            remote: RemoteRepository {
                url: "git@example.com:acme/web.git".into(),
                credential: Some(credential.into()),
            },
        };
        let env = |cmd: &Command| -> BTreeMap<String, String> {
            cmd.get_envs()
                .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
                .collect()
        };
        let mut cmd = git(dir.path());
        helpers.apply(&mut cmd, &config, &target("ssh")).unwrap();
        let vars = env(&cmd);
        let key = PathBuf::from(&vars["OBSERVES_GIT_SSH_KEY"]);
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "-----KEY-----\n");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(vars["GIT_SSH_VARIANT"], "ssh");
        assert_eq!(
            std::fs::read_to_string(&vars["GIT_SSH"]).unwrap(),
            SSH,
            "a fixed wrapper: the key path comes from the environment"
        );
        assert_eq!(vars["GIT_CONFIG_KEY_0"], "credential.helper");
        assert_eq!(vars["GIT_CONFIG_VALUE_0"], "");
        let mut cmd = git(dir.path());
        helpers.apply(&mut cmd, &config, &target("token")).unwrap();
        let vars = env(&cmd);
        assert_eq!(vars["OBSERVES_GIT_USERNAME"], "oauth2");
        assert_eq!(vars["OBSERVES_GIT_PASSWORD"], "tok3n");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.iter().all(|a| !a.contains("tok3n")), "{args:?}");
        // The askpass script answers from that environment.
        let out = Command::new(&vars["GIT_ASKPASS"])
            .arg("Password for 'https://oauth2@example.com': ")
            .env("OBSERVES_GIT_PASSWORD", "tok3n")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "tok3n\n");
        let out = Command::new(&vars["GIT_ASKPASS"])
            .arg("Username for 'https://example.com': ")
            .env("OBSERVES_GIT_USERNAME", "oauth2")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "oauth2\n");
    }

    #[test]
    fn refs_skip_head_and_peeled_tags() {
        let refs = parse_refs(
            b"aaa\tHEAD\nbbb\trefs/heads/main\nccc\trefs/tags/v1\nddd\trefs/tags/v1^{}\n",
        );
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            vec![
                ("refs/heads/main".to_string(), "bbb".to_string()),
                ("refs/tags/v1".to_string(), "ccc".to_string())
            ]
        );
    }

    #[test]
    fn secrets_come_from_env_or_files_and_name_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.toml");
        std::fs::write(&file, "web = \"s3cr3t\"\n").unwrap();
        let from_file = SecretRef {
            env: None,
            file: Some(file.clone()),
            key: Some("web".into()),
        };
        assert_eq!(from_file.read("credential \"w\"").unwrap(), "s3cr3t");
        let missing_key = SecretRef {
            key: Some("api".into()),
            ..from_file.clone()
        };
        assert_eq!(
            missing_key.read("credential \"w\"").unwrap_err(),
            format!("credential \"w\": {} has no string \"api\"", file.display())
        );
        let unset = SecretRef {
            env: Some("OBSERVES_TEST_UNSET_SECRET".into()),
            file: None,
            key: None,
        };
        assert_eq!(
            unset.read("credential \"w\"").unwrap_err(),
            "credential \"w\": the environment variable OBSERVES_TEST_UNSET_SECRET is not set"
        );
        std::fs::write(&file, "not toml [").unwrap();
        assert!(from_file
            .read("c")
            .unwrap_err()
            .starts_with(&format!("c: {} is not a TOML table", file.display())));
    }
}
