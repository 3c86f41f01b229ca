//! The state store: where pipelines keep their bookmarks between runs, and the lock that
//! keeps two runs of one pipeline apart.
//!
//! One interface over a local folder (the default) and S3 (`s3://bucket/prefix`), through
//! the `object_store` crate. Keys look like `<pipeline>/state.json` and `<pipeline>/lock`.
//!
//! The warehouse holds the authoritative copy of a pipeline's state (written in the same
//! transaction as its data); this store receives it after the commit, for tools and for
//! pipelines whose source reads its bookmark from here.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use observes_state::StateStore;
//! let dir = tempfile::tempdir().unwrap();
//! let store = StateStore::open(dir.path().to_str().unwrap()).unwrap();
//! store.put("gitlab", &serde_json::json!({"bookmark": 3})).await.unwrap();
//! assert_eq!(store.get("gitlab").await.unwrap(), Some(serde_json::json!({"bookmark": 3})));
//! # });
//! ```

#![warn(missing_docs, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the state store (or object storage) failed with; every variant names the store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The URL is not one the store opens (a folder or `s3://bucket/prefix`).
    #[error("state store URL {url:?}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it, or what opening it failed with.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Reading or writing one key failed.
    #[error("state store {url}: {key}")]
    Store {
        /// The store's URL.
        url: String,
        /// The key under it.
        key: String,
        /// The storage's error.
        #[source]
        source: object_store::Error,
    },
    /// A state file that is not JSON (written by hand, or cut short).
    #[error("state store {url}: {key} is not valid JSON")]
    Corrupt {
        /// The store's URL.
        url: String,
        /// The key under it.
        key: String,
        /// serde_json's reading of it, with its position.
        #[source]
        source: serde_json::Error,
    },
    /// Another run holds the pipeline's lock.
    #[error("pipeline {pipeline:?} is locked by {owner} until {expires_at} (another run is in progress; the lock expires by itself if that run died)")]
    Locked {
        /// The pipeline whose lock is held.
        pipeline: String,
        /// Who holds it (process and start time).
        owner: String,
        /// When it lapses if its holder never releases it.
        expires_at: DateTime<Utc>,
    },
    /// The async runtime the blocking calls wait on could not start.
    #[error(transparent)]
    Runtime(#[from] observes_runtime::RuntimeError),
}

pub use observes_runtime::{block_on, runtime, RuntimeError};

/// A state store call's result.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

impl StateStore {
    /// The blocking form of the store's calls, for sync code: `store.wait(store.get(p))`.
    pub fn wait<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        observes_runtime::block_on(call)?
    }
}

/// A state store rooted at a URL; also the object storage jobs publish to (bills,
/// mirrored repositories), with the same keys: `<folder…>/<name>`.
#[derive(Clone)]
pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("url", &self.url)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct LockFile {
    owner: String,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    pid: Option<u32>,
}

impl LockFile {
    fn mine(owner: &str, ttl: Duration) -> LockFile {
        LockFile {
            owner: owner.to_string(),
            expires_at: Utc::now()
                + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1)),
            host: this_host(),
            pid: Some(std::process::id()),
        }
    }

    /// Expired, or held by a process of this host that no longer exists (a killed run).
    fn is_stale(&self) -> bool {
        if self.expires_at <= Utc::now() {
            return true;
        }
        match (&self.host, self.pid) {
            (Some(host), Some(pid)) if Some(host) == this_host().as_ref() => {
                pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            }
            _ => false,
        }
    }
}

fn this_host() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// An object of the store, as [`StateStore::list_all`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its path below the folder listed, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its entity tag, where the store has one.
    pub e_tag: Option<String>,
}

/// A held pipeline lock. Release it with [`StateStore::unlock`]; if the holder dies, it
/// expires at `expires_at`.
#[derive(Debug)]
pub struct Lock {
    pipeline: String,
    owner: String,
}

impl StateStore {
    /// Opens a store: `s3://bucket/prefix`, `file:///abs/path`, a plain folder path, or
    /// `memory://` (in this process only, for tests).
    /// S3 settings come from the standard `AWS_*` environment variables (including
    /// `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP` for S3-compatible servers).
    pub fn open(url: &str) -> Result<Self> {
        let bad = |source: Box<dyn std::error::Error + Send + Sync + 'static>| StateError::Url {
            url: url.to_string(),
            source,
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name".into()));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                builder = builder
                    .with_endpoint(&endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            let store = builder.build().map_err(|e| bad(e.into()))?;
            return Ok(StateStore {
                store: Arc::new(store),
                prefix: Path::from(prefix),
                url: url.to_string(),
            });
        }
        if url == "memory://" {
            // For tests and simulations: gone when the last clone is dropped.
            return Ok(StateStore {
                store: Arc::new(object_store::memory::InMemory::new()),
                prefix: Path::default(),
                url: url.to_string(),
            });
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        std::fs::create_dir_all(path).map_err(|e| bad(e.into()))?;
        let store = LocalFileSystem::new_with_prefix(path).map_err(|e| bad(e.into()))?;
        Ok(StateStore {
            store: Arc::new(store),
            prefix: Path::default(),
            url: url.to_string(),
        })
    }

    /// The URL the store was opened at.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, pipeline: &str, name: &str) -> Path {
        let mut parts: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        parts.extend(
            pipeline
                .split('/')
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        );
        parts.push(name.to_string());
        Path::from_iter(parts)
    }

    fn store_err(&self, key: &Path, source: object_store::Error) -> StateError {
        StateError::Store {
            url: self.url.clone(),
            key: key.to_string(),
            source,
        }
    }

    /// Reads an object under the store, `None` when absent.
    pub async fn get_bytes(
        &self,
        pipeline: &str,
        name: &str,
    ) -> Result<Option<(Bytes, Option<String>)>> {
        let key = self.key(pipeline, name);
        match self.store.get(&key).await {
            Ok(result) => {
                let e_tag = result.meta.e_tag.clone();
                let bytes = result.bytes().await.map_err(|e| self.store_err(&key, e))?;
                Ok(Some((bytes, e_tag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_err(&key, e)),
        }
    }

    /// Downloads an object into `out` as it arrives (never whole in memory); `None` when
    /// absent, else its size.
    pub async fn get_into(
        &self,
        pipeline: &str,
        name: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<Option<u64>> {
        use futures::StreamExt;
        let key = self.key(pipeline, name);
        let result = match self.store.get(&key).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_err(&key, e)),
        };
        let mut chunks = result.into_stream();
        let mut total = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| self.store_err(&key, e))?;
            out.write_all(&chunk).map_err(|e| {
                self.store_err(
                    &key,
                    object_store::Error::Generic {
                        store: "file",
                        source: Box::new(e),
                    },
                )
            })?;
            total += chunk.len() as u64;
        }
        Ok(Some(total))
    }

    /// Writes an object atomically (readers see the old or the new content, never a mix).
    pub async fn put_bytes(&self, pipeline: &str, name: &str, bytes: Bytes) -> Result<()> {
        let key = self.key(pipeline, name);
        self.store
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(|e| self.store_err(&key, e))?;
        Ok(())
    }

    /// Uploads a file of any size in parts (never whole in memory), atomically: the object
    /// appears complete or not at all.
    pub async fn put_file(
        &self,
        pipeline: &str,
        name: &str,
        file: &std::path::Path,
    ) -> Result<u64> {
        use tokio::io::AsyncReadExt;
        const PART: usize = 8 << 20;
        let key = self.key(pipeline, name);
        let io_err = |e: std::io::Error| {
            self.store_err(
                &key,
                object_store::Error::Generic {
                    store: "file",
                    source: Box::new(e),
                },
            )
        };
        let mut input = tokio::fs::File::open(file).await.map_err(io_err)?;
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.store_err(&key, e))?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match input.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    writer.abort().await.ok();
                    return Err(io_err(e));
                }
            };
            if n == 0 {
                break;
            }
            total += n as u64;
            writer
                .wait_for_capacity(4)
                .await
                .map_err(|e| self.store_err(&key, e))?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(|e| self.store_err(&key, e))?;
        Ok(total)
    }

    /// The names of the objects directly under `pipeline/`, sorted.
    pub async fn list(&self, pipeline: &str) -> Result<Vec<String>> {
        let prefix = self.key(pipeline, "");
        let prefix = Path::from_iter(prefix.parts());
        let listing = match self.store.list_with_delimiter(Some(&prefix)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.store_err(&prefix, e)),
        };
        let mut names: Vec<String> = listing
            .objects
            .iter()
            .filter_map(|o| o.location.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every object under `folder/` at any depth, as its path below `folder` with its
    /// size and entity tag, sorted by path.
    pub async fn list_all(&self, folder: &str) -> Result<Vec<StoredObject>> {
        use futures::TryStreamExt;
        let prefix = Path::from_iter(self.key(folder, "").parts());
        let base: Vec<String> = prefix.parts().map(|p| p.as_ref().to_string()).collect();
        let listed: Vec<object_store::ObjectMeta> =
            match self.store.list(Some(&prefix)).try_collect().await {
                Ok(listed) => listed,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(self.store_err(&prefix, e)),
            };
        let mut objects: Vec<StoredObject> = listed
            .into_iter()
            .filter_map(|meta| {
                let parts: Vec<String> = meta
                    .location
                    .parts()
                    .map(|p| p.as_ref().to_string())
                    .collect();
                let below = parts.strip_prefix(base.as_slice())?;
                Some(StoredObject {
                    path: below.join("/"),
                    size: meta.size,
                    e_tag: meta.e_tag,
                })
            })
            .filter(|o| !o.path.is_empty())
            .collect();
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(objects)
    }

    /// Removes `<pipeline>/<name>`; a missing one is no error.
    pub async fn delete(&self, pipeline: &str, name: &str) -> Result<()> {
        let key = self.key(pipeline, name);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_err(&key, e)),
        }
    }

    /// The pipeline's last state, `None` when it has none.
    pub async fn get(&self, pipeline: &str) -> Result<Option<Value>> {
        match self.get_bytes(pipeline, "state.json").await? {
            None => Ok(None),
            Some((bytes, _)) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        url: self.url.clone(),
                        key: self.key(pipeline, "state.json").to_string(),
                        source: e,
                    })
            }
        }
    }

    /// Replaces the pipeline's state.
    pub async fn put(&self, pipeline: &str, state: &Value) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        self.put_bytes(pipeline, "state.json", Bytes::from(bytes))
            .await
    }

    /// Forgets the pipeline's state.
    pub async fn clear(&self, pipeline: &str) -> Result<()> {
        self.delete(pipeline, "state.json").await
    }

    /// Takes the pipeline's lock for `ttl` (a conditional create). A stale lock (expired, or
    /// left by a process of this host that has died) is taken over with a conditional
    /// update where the store supports it.
    pub async fn lock(&self, pipeline: &str, owner: &str, ttl: Duration) -> Result<Lock> {
        let key = self.key(pipeline, "lock");
        let body = |owner: &str| {
            PutPayload::from(serde_json::to_vec(&LockFile::mine(owner, ttl)).unwrap_or_default())
        };
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&key, body(owner), create.clone()).await {
            Ok(_) => {
                return Ok(Lock {
                    pipeline: pipeline.to_string(),
                    owner: owner.to_string(),
                })
            }
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(self.store_err(&key, e)),
        }
        let Some((bytes, e_tag)) = self.get_bytes(pipeline, "lock").await? else {
            // Released between our two calls: try once more.
            return Box::pin(self.lock(pipeline, owner, ttl)).await;
        };
        let held: Option<LockFile> = serde_json::from_slice(&bytes).ok();
        if let Some(held) = &held {
            if !held.is_stale() {
                return Err(StateError::Locked {
                    pipeline: pipeline.to_string(),
                    owner: held.owner.clone(),
                    expires_at: held.expires_at,
                });
            }
        }
        // Stale (or unreadable): take it over.
        let update = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag,
                version: None,
            }),
            ..Default::default()
        };
        match self.store.put_opts(&key, body(owner), update).await {
            Ok(_) => Ok(Lock {
                pipeline: pipeline.to_string(),
                owner: owner.to_string(),
            }),
            Err(object_store::Error::NotImplemented) => {
                // A local folder has no conditional update: delete and create again; the
                // create is still exclusive, so at most one contender wins.
                self.delete(pipeline, "lock").await?;
                match self.store.put_opts(&key, body(owner), create).await {
                    Ok(_) => Ok(Lock {
                        pipeline: pipeline.to_string(),
                        owner: owner.to_string(),
                    }),
                    Err(object_store::Error::AlreadyExists { .. }) => {
                        Err(self.locked_by_other(pipeline).await)
                    }
                    Err(e) => Err(self.store_err(&key, e)),
                }
            }
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => {
                Err(self.locked_by_other(pipeline).await)
            }
            Err(e) => Err(self.store_err(&key, e)),
        }
    }

    async fn locked_by_other(&self, pipeline: &str) -> StateError {
        let held = match self.get_bytes(pipeline, "lock").await {
            Ok(Some((bytes, _))) => serde_json::from_slice::<LockFile>(&bytes).ok(),
            _ => None,
        };
        StateError::Locked {
            pipeline: pipeline.to_string(),
            owner: held
                .as_ref()
                .map_or_else(|| "another run".into(), |h| h.owner.clone()),
            expires_at: held.map_or_else(Utc::now, |h| h.expires_at),
        }
    }

    /// Releases a lock if it is still ours.
    pub async fn unlock(&self, lock: Lock) -> Result<()> {
        if let Some((bytes, _)) = self.get_bytes(&lock.pipeline, "lock").await? {
            let held: Option<LockFile> = serde_json::from_slice(&bytes).ok();
            if held.is_some_and(|h| h.owner == lock.owner) {
                self.delete(&lock.pipeline, "lock").await?;
            }
        }
        Ok(())
    }
}

/// Checks every state store must pass, run by the tests against each backend (a local
/// folder, an S3-compatible server). Not for use outside tests.
#[doc(hidden)]
pub mod conformance {
    use std::time::Duration;

    use serde_json::json;

    use super::{StateError, StateStore};

    pub async fn round_trip(store: &StateStore) {
        assert_eq!(store.get("etl/gitlab").await.unwrap(), None);
        store.put("etl/gitlab", &json!({"b": 1})).await.unwrap();
        assert_eq!(
            store.get("etl/gitlab").await.unwrap(),
            Some(json!({"b": 1}))
        );
        store.put("etl/gitlab", &json!({"b": 2})).await.unwrap();
        assert_eq!(
            store.get("etl/gitlab").await.unwrap(),
            Some(json!({"b": 2}))
        );
        store.clear("etl/gitlab").await.unwrap();
        assert_eq!(store.get("etl/gitlab").await.unwrap(), None);
    }

    pub async fn lock(store: &StateStore) {
        let lock = store
            .lock("p", "run-1", Duration::from_secs(60))
            .await
            .unwrap();
        let err = store
            .lock("p", "run-2", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StateError::Locked { ref owner, .. } if owner == "run-1"),
            "{err}"
        );
        store.unlock(lock).await.unwrap();
        let stale = store
            .lock("p", "run-2", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // run-2 died without releasing: its lock expires and run-3 takes over.
        let lock3 = store
            .lock("p", "run-3", Duration::from_secs(60))
            .await
            .unwrap();
        // The dead run's late release must not free run-3's lock.
        store.unlock(stale).await.unwrap();
        assert!(store
            .lock("p", "run-4", Duration::from_secs(60))
            .await
            .is_err());
        store.unlock(lock3).await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path().to_str().unwrap()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn state_round_trips_and_clears() {
        let (dir, store) = store();
        conformance::round_trip(&store).await;
        store.put("etl/gitlab", &json!({"b": 1})).await.unwrap();
        assert!(dir.path().join("etl/gitlab/state.json").exists());
    }

    #[tokio::test]
    async fn corrupt_state_is_reported_with_its_key() {
        let (dir, store) = store();
        std::fs::create_dir_all(dir.path().join("p")).unwrap();
        std::fs::write(dir.path().join("p/state.json"), "{nope").unwrap();
        let err = store.get("p").await.unwrap_err().to_string();
        assert!(err.contains("p/state.json is not valid JSON"), "{err}");
    }

    #[tokio::test]
    async fn a_lock_excludes_a_second_run_until_released_or_expired() {
        let (_dir, store) = store();
        conformance::lock(&store).await;
    }

    #[tokio::test]
    async fn a_lock_left_by_a_dead_process_of_this_host_is_taken_over() {
        let (dir, store) = store();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let pid = dead.id();
        dead.wait().unwrap();
        let file = LockFile {
            owner: "killed run".into(),
            expires_at: Utc::now() + chrono::Duration::hours(6),
            host: this_host(),
            pid: Some(pid),
        };
        std::fs::create_dir_all(dir.path().join("p")).unwrap();
        std::fs::write(
            dir.path().join("p/lock"),
            serde_json::to_vec(&file).unwrap(),
        )
        .unwrap();
        let lock = store
            .lock("p", "next run", Duration::from_secs(60))
            .await
            .unwrap();
        store.unlock(lock).await.unwrap();
        // A live holder on another host is respected until it expires.
        let other = LockFile {
            host: Some("elsewhere".into()),
            ..file
        };
        std::fs::write(
            dir.path().join("p/lock"),
            serde_json::to_vec(&other).unwrap(),
        )
        .unwrap();
        assert!(store
            .lock("p", "next run", Duration::from_secs(60))
            .await
            .is_err());
    }
}
