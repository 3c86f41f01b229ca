//! A `singer-file` source resumes where its last committed checkpoint left the file.
//!
//! Reading a file again in full would append its rows twice (and under `merge` redo the
//! work): a run killed mid-file then re-run must end as one uninterrupted run. So the
//! pipeline's state keeps, beside the file's own `STATE` value, where in the file that
//! checkpoint was and which file it was:
//!
//! ```json
//! {"singer_file": {"size": 1234, "modified": "1764871234.123456789", "head": "9f3c…",
//!                  "offset": 812, "line": 9},
//!  "state": {"the": "file's own STATE value"}}
//! ```
//!
//! A run of the same file (same size, modification time and first 64 KiB) reads on from
//! `offset`; a changed file is read from the start, with a warning. The end of the file is
//! a checkpoint too, so a file without `STATE` lines is not read twice either. A resumed
//! run first reads the part it skips for its `SCHEMA` lines only: the loader needs each
//! stream's schema before its records.

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// The key of the position in the pipeline's state.
const KEY: &str = "singer_file";
/// How much of the file's start identifies it.
const HEAD_BYTES: u64 = 64 << 10;

/// What tells one version of a file from another.
#[derive(Debug, Clone, PartialEq)]
struct Identity {
    size: u64,
    modified: String,
    head: String,
}

impl Identity {
    fn of(file: &mut std::fs::File) -> std::io::Result<Identity> {
        let meta = file.metadata()?;
        let modified = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
            .unwrap_or_default();
        let mut head = Vec::new();
        file.by_ref().take(HEAD_BYTES).read_to_end(&mut head)?;
        file.seek(SeekFrom::Start(0))?;
        let head = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&head));
        Ok(Identity {
            size: meta.len(),
            modified,
            head,
        })
    }
}

/// Where a run of a file stands: the last checkpoint's place and the file's own state.
pub struct FileCursor {
    identity: Identity,
    /// The file's last `STATE` value seen (`null` before the first).
    last_state: Value,
    /// Where the file ended (bytes, lines), once the reader got there.
    end: Arc<Mutex<Option<(u64, u64)>>>,
}

/// An opened file (at its start) and where the last run of it stopped.
pub struct Opened {
    /// The file, at its start.
    pub file: std::fs::File,
    /// Where the last run stopped: bytes into the file.
    pub offset: u64,
    /// And the line it stopped after.
    pub line: u64,
    /// The cursor that wraps this run's states.
    pub cursor: FileCursor,
}

/// Opens `path` and positions it after the checkpoint `state` records, if `state` is of
/// this very file.
pub fn open(path: &Path, state: Option<&Value>) -> std::io::Result<Opened> {
    let mut file = std::fs::File::open(path)?;
    let identity = Identity::of(&mut file)?;
    let recorded = state.and_then(|s| Some((s.get(KEY)?, s.get("state").cloned()?)));
    let (offset, line, last_state) = match recorded {
        Some((position, inner)) => {
            let same = position["size"] == json!(identity.size)
                && position["modified"] == json!(identity.modified)
                && position["head"] == json!(identity.head);
            match (same, position["offset"].as_u64(), position["line"].as_u64()) {
                (true, Some(offset), Some(line)) if offset <= identity.size => {
                    (offset, line, inner)
                }
                _ => {
                    tracing::warn!(
                        path = %path.display(),
                        "the file changed since its last run (size, modification time or first 64 KiB): reading it from the start"
                    );
                    (0, 0, Value::Null)
                }
            }
        }
        None => (0, 0, Value::Null),
    };
    if offset > 0 {
        tracing::info!(path = %path.display(), offset, line, "resuming the file after its last committed line");
    }
    Ok(Opened {
        file,
        offset,
        line,
        cursor: FileCursor {
            identity,
            last_state,
            end: Arc::new(Mutex::new(None)),
        },
    })
}

/// Reads the first `offset` bytes of `file` (from where it is, its start) and hands on
/// the `SCHEMA` messages among them, numbered by line, until `schema` returns false. The
/// file is left at `offset`.
pub fn replay_schemas(
    file: &mut std::fs::File,
    offset: u64,
    mut schema: impl FnMut(observes_singer::Line) -> bool,
) -> std::io::Result<()> {
    let mut prefix = std::io::BufReader::with_capacity(1 << 20, file.by_ref().take(offset));
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        if prefix.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        number += 1;
        if !buf.windows(6).any(|w| w == b"SCHEMA") {
            continue;
        }
        let mut text = buf.trim_ascii();
        if number == 1 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        // Lines that are not a SCHEMA (or not valid) were dealt with by the earlier run.
        if let Ok(message @ observes_singer::Message::Schema(_)) =
            observes_singer::parse_message(text)
        {
            if !schema(observes_singer::Line { number, message }) {
                return Ok(());
            }
        }
    }
}

impl FileCursor {
    /// Where the reader records the end of the file.
    pub fn end_slot(&self) -> Arc<Mutex<Option<(u64, u64)>>> {
        self.end.clone()
    }

    /// The pipeline's state for the file's `STATE` value `value` on line `line`, which
    /// ends at byte `offset`.
    pub fn wrap(&mut self, value: Value, offset: u64, line: u64) -> Value {
        self.last_state = value;
        self.position(offset, line)
    }

    /// The checkpoint at the end of the file, once it was read to the end.
    pub fn at_end(&self) -> Option<(Value, u64)> {
        let (offset, line) = (*self.end.lock().ok()?)?;
        Some((self.position(offset, line), line))
    }

    fn position(&self, offset: u64, line: u64) -> Value {
        json!({
            KEY: {
                "size": self.identity.size,
                "modified": self.identity.modified,
                "head": self.identity.head,
                "offset": offset,
                "line": line,
            },
            "state": self.last_state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skipped_part_is_read_for_its_schemas_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.singer");
        let schema =
            r#"{"type":"SCHEMA","stream":"a","schema":{"properties":{}},"key_properties":[]}"#;
        let text = format!(
            "\u{feff}{schema}\n{{\"type\":\"RECORD\",\"stream\":\"a\",\"record\":{{\"note\":\"SCHEMA\"}}}}\n\n{}\nnot json SCHEMA\n{{\"type\":\"STATE\",\"value\":1}}\n",
            schema.replace("\"a\"", "\"b\"")
        );
        std::fs::write(&path, &text).unwrap();
        let offset = text.find("{\"type\":\"STATE\"").unwrap() as u64;
        let mut file = std::fs::File::open(&path).unwrap();
        let mut seen = Vec::new();
        replay_schemas(&mut file, offset, |line| {
            seen.push(line.number);
            true
        })
        .unwrap();
        assert_eq!(seen, [1, 4]);
        let mut rest = String::new();
        file.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "{\"type\":\"STATE\",\"value\":1}\n");
    }

    #[test]
    fn a_position_of_the_same_file_resumes_and_of_a_changed_one_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.singer");
        std::fs::write(&path, "line one\nline two\n").unwrap();
        let first = open(&path, None).unwrap();
        assert_eq!((first.offset, first.line), (0, 0));
        let mut cursor = first.cursor;
        let state = cursor.wrap(json!({"at": 1}), 9, 1);
        assert_eq!(state["state"], json!({"at": 1}));
        assert_eq!(state[KEY]["offset"], json!(9));

        let mut again = open(&path, Some(&state)).unwrap();
        assert_eq!((again.offset, again.line), (9, 1));
        replay_schemas(&mut again.file, again.offset, |_| true).unwrap();
        let mut rest = String::new();
        again.file.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "line two\n");
        assert_eq!(again.cursor.last_state, json!({"at": 1}));

        // Another file at the same path, or a state of another shape: from the start.
        std::fs::write(&path, "line ONE\nline two\n").unwrap();
        let changed = open(&path, Some(&state)).unwrap();
        assert_eq!((changed.offset, changed.line), (0, 0));
        let plain = open(&path, Some(&json!({"at": 1}))).unwrap();
        assert_eq!(plain.offset, 0);
    }
}
