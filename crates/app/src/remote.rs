//! A config in S3: `--config s3://bucket/prefix/observes.toml`, for a container whose
//! image has no config of its own.
//!
//! The file's folder (`s3://bucket/prefix/`) is the config's folder: it is copied to a
//! local folder (`$OBSERVES_CONFIG_CACHE`, else `~/.cache/observes/config/BUCKET/PREFIX`),
//! then the config is read there, so dashboards, settings files, Singer files and every
//! other relative path resolve under the prefix as they would beside a local file. Only
//! objects that changed since the last copy are fetched (by entity tag), streamed to disk,
//! and files removed from the prefix are removed from the copy. The state store and the
//! storage, when relative, stay in S3 under the prefix (`s3://bucket/prefix/state`) and are
//! not copied. What is written locally (a relative DuckDB file, the local queue) lands in
//! the local folder.
//!
//! Credentials come from the standard AWS chain, as for the S3 state store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use observes_state::StateStore;

use crate::config::ConfigError;

/// A config fetched from S3.
pub(crate) struct Fetched {
    /// The local copy of the file.
    pub(crate) file: PathBuf,
    /// The file's text.
    pub(crate) text: String,
    /// The file's folder in S3, `s3://bucket/prefix` (no trailing `/`).
    pub(crate) remote_dir: String,
}

const MANIFEST: &str = ".observes-config-sync.json";

fn remote_error(url: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Remote {
        url: url.to_string(),
        message: message.into(),
        source: None,
    }
}

/// A config path that is an S3 URL, as text.
pub(crate) fn s3_url(path: &Path) -> Option<&str> {
    path.to_str().filter(|p| p.starts_with("s3://"))
}

/// Where the copy of `s3://bucket/prefix` goes.
fn cache_dir(bucket_and_prefix: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("OBSERVES_CONFIG_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/observes/config").join(bucket_and_prefix)
}

/// A folder of the config that is relative (so under the prefix, and not copied).
fn relative_folder(value: Option<&toml::Value>, default: &str) -> Option<String> {
    let value = value.and_then(toml::Value::as_str).unwrap_or(default);
    let relative = !value.contains("://") && !Path::new(value).is_absolute();
    relative.then(|| {
        value
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string()
    })
}

/// Fetches the config at `url` and copies its folder.
pub(crate) fn fetch(url: &str) -> Result<Fetched, ConfigError> {
    let rest = url.strip_prefix("s3://").unwrap_or(url);
    let (dir, file_name) = rest
        .rsplit_once('/')
        .filter(|(dir, name)| !dir.is_empty() && !name.is_empty())
        .ok_or_else(|| remote_error(url, "name the file: s3://bucket/prefix/observes.toml"))?;
    let remote_dir = format!("s3://{dir}");
    let store = StateStore::open(&remote_dir).map_err(|e| ConfigError::Remote {
        url: url.to_string(),
        message: "opening its folder".into(),
        source: Some(Box::new(e)),
    })?;
    let failed = |what: &str| {
        let what = what.to_string();
        move |e: observes_state::StateError| ConfigError::Remote {
            url: url.to_string(),
            message: what,
            source: Some(Box::new(e)),
        }
    };
    let (bytes, _) = store
        .wait(store.get_bytes("", file_name))
        .map_err(failed("reading it"))?
        .ok_or_else(|| remote_error(url, "no such object"))?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| remote_error(url, "the file is not UTF-8 text"))?;

    // The state and storage folders stay in S3; the rest of the folder is the config's.
    let table: Option<toml::Table> = text.parse().ok();
    let skipped: Vec<String> = [("state", "state"), ("storage", "storage")]
        .iter()
        .filter_map(|(key, default)| {
            relative_folder(table.as_ref().and_then(|t| t.get(*key)), default)
        })
        .collect();
    let local = cache_dir(dir);
    std::fs::create_dir_all(&local).map_err(|e| ConfigError::Read {
        path: local.clone(),
        source: e,
    })?;
    let objects = store
        .wait(store.list_all(""))
        .map_err(failed("listing its folder"))?;
    let manifest_path = local.join(MANIFEST);
    let before: BTreeMap<String, String> = std::fs::read(&manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut after = BTreeMap::new();
    for object in &objects {
        let under_skipped = skipped
            .iter()
            .any(|s| object.path == *s || object.path.starts_with(&format!("{s}/")));
        if under_skipped || object.path == MANIFEST {
            continue;
        }
        if object
            .path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(remote_error(
                url,
                format!(
                    "the object {:?} has a path a folder cannot hold",
                    object.path
                ),
            ));
        }
        let tag = object
            .e_tag
            .clone()
            .unwrap_or_else(|| format!("size:{}", object.size));
        let target = local.join(&object.path);
        let unchanged = before.get(&object.path) == Some(&tag)
            && std::fs::metadata(&target).is_ok_and(|m| m.len() == object.size);
        if !unchanged {
            download(&store, url, &object.path, &target)?;
        }
        after.insert(object.path.clone(), tag);
    }
    // What was copied before and is gone from the prefix now.
    for gone in before.keys().filter(|p| !after.contains_key(*p)) {
        let _ = std::fs::remove_file(local.join(gone));
    }
    let manifest = serde_json::to_vec_pretty(&after).unwrap_or_default();
    std::fs::write(&manifest_path, manifest).map_err(|e| ConfigError::Read {
        path: manifest_path.clone(),
        source: e,
    })?;
    tracing::info!(config = url, copy = %local.display(), objects = after.len(), "read the config from S3");
    Ok(Fetched {
        file: local.join(file_name),
        text,
        remote_dir,
    })
}

/// Streams one object to `target`, atomically (a partial file never takes its place).
fn download(store: &StateStore, url: &str, path: &str, target: &Path) -> Result<(), ConfigError> {
    let io = |e: std::io::Error| ConfigError::Read {
        path: target.to_path_buf(),
        source: e,
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    // Beside the target, named for this process: two processes copying the same config
    // never write into one partial file.
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let partial = target.with_file_name(format!(".{name}.{}.observes-partial", std::process::id()));
    let mut out = std::fs::File::create(&partial).map_err(io)?;
    let (folder, name) = path.rsplit_once('/').unwrap_or(("", path));
    let got = store
        .wait(store.get_into(folder, name, &mut out))
        .map_err(|e| ConfigError::Remote {
            url: url.to_string(),
            message: format!("copying {path}"),
            source: Some(Box::new(e)),
        })?;
    drop(out);
    if got.is_none() {
        let _ = std::fs::remove_file(&partial);
        return Err(remote_error(
            url,
            format!("{path} vanished while it was copied"),
        ));
    }
    std::fs::rename(&partial, target).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_state_and_storage_stay_in_s3() {
        let table: toml::Table = "state = \"./st/\"\nstorage = \"s3://other/x\"\n"
            .parse()
            .unwrap();
        assert_eq!(
            relative_folder(table.get("state"), "state"),
            Some("st".into())
        );
        assert_eq!(relative_folder(table.get("storage"), "storage"), None);
        assert_eq!(relative_folder(None, "storage"), Some("storage".into()));
        assert_eq!(relative_folder(Some(&"/abs".into()), "state"), None);
    }

    #[test]
    fn a_url_without_a_file_is_refused() {
        for url in ["s3://bucket", "s3://bucket/", "s3:///x.toml"] {
            let e = fetch(url).err().unwrap().to_string();
            assert_eq!(
                e,
                format!("{url}: name the file: s3://bucket/prefix/observes.toml"),
                "{url}"
            );
        }
    }
}
