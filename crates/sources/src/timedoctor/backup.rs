//! Time Doctor's backups: each month of the streams the API forgets, kept in storage while
//! the API still serves it (about a year of worklogs, `reference/timedoctor.md`).
//!
//! Under the `backup` URL, per stream and month:
//!
//! - `<stream>/<YYYY-MM>.<sha12>.singer.gz`: the month's `SCHEMA` and `RECORD` lines,
//!   without `time_extracted`, so the same data makes the same bytes and the same name;
//! - `<stream>/<YYYY-MM>.json`: the manifest (rows, first and last `start_time`, the data
//!   file's name and sha256).
//!
//! The data file is uploaded first under its own name, the manifest last: each is one
//! atomic write, so a month is complete exactly when its manifest exists, and a manifest
//! never names a file that is being replaced. A backup killed before its manifest leaves
//! the month as it was (at most an unnamed file, removed by the next backup of the month).

use std::io::{BufReader, Write};

use bytes::Bytes;
use chrono::Utc;
use observes_singer::{Message, MessageReader, MessageWriter, Record};
use observes_state::StateStore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::TimeDoctorConfig;
use crate::window::{format_time, Month};
use crate::SourceError;

/// The streams a backup keeps: those whose history the API expires. Users and projects
/// are read whole at every run.
pub const STREAMS: [&str; 1] = ["worklogs"];

/// A month's manifest, `<stream>/<YYYY-MM>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The stream.
    pub stream: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The data file's name, beside the manifest.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The sha256 of its bytes, in hex.
    pub sha256: String,
    /// Records in it.
    pub rows: u64,
    /// The earliest `start_time` in it.
    pub first: Option<String>,
    /// The latest `start_time` in it.
    pub last: Option<String>,
    /// When it was written.
    pub backed_up_at: String,
}

/// What backing up one month did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Backed {
    /// Written (or rewritten with the same bytes: the same name and manifest).
    Published {
        /// Its manifest.
        manifest: Manifest,
    },
    /// The existing backup was kept: the API now serves fewer rows for the month than it
    /// holds, so part of the month has expired since.
    Kept {
        /// The manifest kept.
        manifest: Manifest,
        /// Rows the API served this time.
        served: u64,
    },
}

/// The backups under one URL.
#[derive(Debug, Clone)]
pub struct Backups {
    store: StateStore,
}

fn storage_error(e: observes_state::StateError) -> SourceError {
    SourceError::Setting {
        setting: "Time Doctor backup".into(),
        source: Box::new(e),
    }
}

fn data_error(stream: &str, message: String) -> SourceError {
    SourceError::Data {
        stream: stream.into(),
        message,
    }
}

impl Backups {
    /// Opens the backups at `url` (an `s3://bucket/prefix`, or a folder).
    pub fn open(url: &str) -> Result<Backups, SourceError> {
        Ok(Backups {
            store: StateStore::open(url).map_err(storage_error)?,
        })
    }

    /// Where they are.
    pub fn url(&self) -> &str {
        self.store.url()
    }

    /// The complete months of a stream (those with a manifest), oldest first.
    pub async fn manifests(&self, stream: &str) -> Result<Vec<Manifest>, SourceError> {
        let mut manifests = Vec::new();
        for name in self.store.list(stream).await.map_err(storage_error)? {
            let Some(month) = name.strip_suffix(".json") else {
                continue;
            };
            if month.parse::<Month>().is_err() {
                continue;
            }
            if let Some(manifest) = self.manifest(stream, month).await? {
                manifests.push(manifest);
            }
        }
        manifests.sort_by(|a, b| a.month.cmp(&b.month));
        Ok(manifests)
    }

    async fn manifest(&self, stream: &str, month: &str) -> Result<Option<Manifest>, SourceError> {
        let name = format!("{month}.json");
        let Some((bytes, _)) = self
            .store
            .get_bytes(stream, &name)
            .await
            .map_err(storage_error)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            data_error(
                stream,
                format!(
                    "backup {}/{stream}/{name} is not a manifest: {e}",
                    self.url()
                ),
            )
        })
    }

    /// Hands the month's records to `each`, in order, once its file has been checked
    /// against its manifest: a file that does not match is an error naming it, and then
    /// nothing of the month is handed on. The file is downloaded to a temporary file and
    /// read from there, a record at a time.
    pub async fn each_record(
        &self,
        manifest: &Manifest,
        mut each: impl FnMut(Map<String, Value>) -> Result<(), SourceError>,
    ) -> Result<u64, SourceError> {
        let stream = manifest.stream.as_str();
        let shown = format!("backup {}/{stream}/{}", self.url(), manifest.file);
        let work = tempfile::NamedTempFile::new()
            .map_err(SourceError::setting("a temporary file for the backup"))?;
        let io = |e: std::io::Error| data_error(stream, format!("{shown}: {e}"));
        let mut hashing = Hashing {
            out: std::io::BufWriter::new(work.as_file()),
            hash: Sha256::new(),
            bytes: 0,
        };
        let found = self
            .store
            .get_into(stream, &manifest.file, &mut hashing)
            .await
            .map_err(storage_error)?;
        if found.is_none() {
            return Err(data_error(
                stream,
                format!("{shown} is missing; its manifest names it"),
            ));
        }
        hashing.flush().map_err(io)?;
        let Hashing { hash, bytes, .. } = hashing;
        let sha256 = hex(&hash.finalize());
        if sha256 != manifest.sha256 || bytes != manifest.bytes {
            return Err(data_error(
                stream,
                format!(
                    "{shown}: its sha256 is {sha256} ({bytes} bytes), its manifest says {} ({} bytes); \
                     nothing of {} was loaded",
                    manifest.sha256, manifest.bytes, manifest.month
                ),
            ));
        }
        let file = work.reopen().map_err(io)?;
        let reader = BufReader::new(flate2::read::GzDecoder::new(BufReader::new(file)));
        let mut read = 0u64;
        for message in MessageReader::new(reader) {
            let message = message.map_err(|e| {
                data_error(stream, format!("{shown}: {}", observes_runtime::chain(&e)))
            })?;
            if let Message::Record(record) = message.message {
                let record = record_object(record.record).map_err(|e| {
                    data_error(
                        stream,
                        format!("{shown}: a record that is not an object: {e}"),
                    )
                })?;
                each(record)?;
                read += 1;
            }
        }
        if read != manifest.rows {
            // Cannot happen to a file that matches its checksum, unless the manifest was
            // written by hand.
            return Err(data_error(
                stream,
                format!(
                    "{shown} holds {read} records, its manifest says {}",
                    manifest.rows
                ),
            ));
        }
        Ok(read)
    }

    /// Backs up one month of one stream from the API, and publishes it unless the
    /// backup already there holds more rows (the API has since forgotten part of it).
    pub async fn back_up(
        &self,
        config: &TimeDoctorConfig,
        stream: &'static str,
        month: Month,
    ) -> Result<Backed, SourceError> {
        let work = tempfile::NamedTempFile::new()
            .map_err(SourceError::setting("a temporary file for the backup"))?;
        let written = write_month(config, stream, month, work.as_file()).await?;
        let existing = self.manifest(stream, &month.to_string()).await?;
        if let Some(existing) = existing {
            if existing.rows > written.rows {
                return Ok(Backed::Kept {
                    manifest: existing,
                    served: written.rows,
                });
            }
        }
        let file = format!("{month}.{}.singer.gz", &written.sha256[..12]);
        self.store
            .put_file(stream, &file, work.path())
            .await
            .map_err(storage_error)?;
        let manifest = Manifest {
            stream: stream.to_string(),
            month: month.to_string(),
            file,
            bytes: written.bytes,
            sha256: written.sha256,
            rows: written.rows,
            first: written.first,
            last: written.last,
            backed_up_at: format_time(Utc::now()),
        };
        let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        self.store
            .put_bytes(stream, &format!("{month}.json"), Bytes::from(json))
            .await
            .map_err(storage_error)?;
        // Files of the month that the manifest does not name: earlier contents, or a
        // backup killed before its manifest.
        let prefix = format!("{month}.");
        for name in self.store.list(stream).await.map_err(storage_error)? {
            if name.starts_with(&prefix) && name.ends_with(".singer.gz") && name != manifest.file {
                self.store
                    .delete(stream, &name)
                    .await
                    .map_err(storage_error)?;
            }
        }
        Ok(Backed::Published { manifest })
    }
}

/// A record's fields.
fn record_object(record: Record) -> Result<Map<String, Value>, serde_json::Error> {
    match record {
        Record::Parsed(map) => Ok(map),
        Record::Raw(raw) => serde_json::from_str(raw.get()),
    }
}

/// What [`write_month`] wrote.
struct Written {
    rows: u64,
    bytes: u64,
    sha256: String,
    first: Option<String>,
    last: Option<String>,
}

/// The file being written, hashed and counted as it goes.
struct Hashing<W> {
    out: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads one month of `stream` from the API into `file`, gzipped Singer.
async fn write_month(
    config: &TimeDoctorConfig,
    stream: &'static str,
    month: Month,
    file: &std::fs::File,
) -> Result<Written, SourceError> {
    let mut month_config = config.clone();
    month_config.streams = Some(vec![stream.to_string()]);
    month_config.start_date = Some(format_time(month.start()));
    month_config.end_date = Some(format_time(month.end().min(Utc::now())));
    month_config.lookback_days = 0;
    // What the month is read from is the API alone.
    month_config.backup = None;
    let hashing = Hashing {
        out: std::io::BufWriter::new(file),
        hash: Sha256::new(),
        bytes: 0,
    };
    let gz = flate2::GzBuilder::new().write(hashing, flate2::Compression::default());
    let mut writer = MessageWriter::new(gz);
    let mut failed: Option<std::io::Error> = None;
    let (mut rows, mut first, mut last) = (0u64, None::<String>, None::<String>);
    let mut sink = |message: Message| {
        let message = match message {
            Message::Record(mut record) => {
                record.time_extracted = None;
                if let Record::Parsed(map) = &record.record {
                    if let Some(start) = map.get("start_time").and_then(Value::as_str) {
                        if first.as_deref().is_none_or(|f| start < f) {
                            first = Some(start.to_string());
                        }
                        if last.as_deref().is_none_or(|l| start > l) {
                            last = Some(start.to_string());
                        }
                    }
                }
                rows += 1;
                Message::Record(record)
            }
            Message::Schema(schema) => Message::Schema(schema),
            // Bookmarks of the month's own read: nothing a replay needs.
            _ => return true,
        };
        match writer.write(&message) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    };
    let ran = super::run(&month_config, None, &mut sink).await;
    let io = |e: std::io::Error| SourceError::Setting {
        setting: "writing the backup's temporary file".into(),
        source: Box::new(e),
    };
    if let Some(e) = failed {
        return Err(io(e));
    }
    ran?;
    let hashing = writer.into_inner().finish().map_err(io)?;
    let Hashing {
        mut out,
        hash,
        bytes,
    } = hashing;
    out.flush().map_err(io)?;
    Ok(Written {
        rows,
        bytes,
        sha256: hex(&hash.finalize()),
        first,
        last,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
