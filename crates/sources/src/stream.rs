//! The stream model every source shares: stream definitions, the Singer messages a run
//! emits, and bookmarks kept in the `STATE` it checkpoints.
//!
//! State has the Singer shape `{"bookmarks": {stream: bookmark}}`; a partitioned stream
//! (per project, per check) keeps one bookmark per partition:
//! `{"bookmarks": {stream: {partition: bookmark}}}`. Every `STATE` carries the whole
//! state, so the last one committed is all a run needs to resume.

use std::collections::HashSet;

use observes_singer::{Message, RecordMessage, SchemaMessage, StateMessage};
use serde_json::{json, Map, Value};

use crate::SourceError;

/// What a stream is: its name, key, replication key and JSON Schema.
#[derive(Debug, Clone)]
pub struct StreamDef {
    /// The stream's name.
    pub name: &'static str,
    /// Its primary key's properties.
    pub key_properties: &'static [&'static str],
    /// The property incremental extraction follows, if any.
    pub replication_key: Option<&'static str>,
    /// Its JSON Schema.
    pub schema: Value,
}

/// Where a source's messages go. `false` means the consumer has stopped.
pub trait Sink {
    /// Sends a message on; `false` once the consumer stopped.
    fn send(&mut self, message: Message) -> bool;

    /// Takes a notice for the run's report: something the user must know that is not a
    /// failure (data the API no longer serves, say). Dropped by default (a Singer tap
    /// logs it).
    fn notice(&mut self, _notice: Notice) {}
}

/// Something a run reports beside its counts, about one stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    /// The stream.
    pub stream: String,
    /// What happened and what it means.
    pub message: String,
}

impl<F: FnMut(Message) -> bool> Sink for F {
    fn send(&mut self, message: Message) -> bool {
        self(message)
    }
}

/// Emits a run's messages and keeps its state.
pub struct Emitter<'a> {
    sink: &'a mut dyn Sink,
    state: Map<String, Value>,
    described: HashSet<&'static str>,
    extracted_at: String,
    records: u64,
    /// The state last sent, while nothing else was sent after it.
    last_checkpoint: Option<Map<String, Value>>,
}

impl<'a> Emitter<'a> {
    /// Starts from the state of the last committed run (anything but an object with a
    /// `bookmarks` object starts afresh).
    pub fn new(sink: &'a mut dyn Sink, state: Option<&Value>) -> Emitter<'a> {
        let mut state = state
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if !state.get("bookmarks").is_some_and(Value::is_object) {
            state.insert("bookmarks".into(), json!({}));
        }
        Emitter {
            sink,
            state,
            described: HashSet::new(),
            extracted_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            records: 0,
            last_checkpoint: None,
        }
    }

    fn send(&mut self, message: Message) -> Result<(), SourceError> {
        self.last_checkpoint = match &message {
            Message::State(state) => state.value.as_object().cloned(),
            _ => None,
        };
        if self.sink.send(message) {
            Ok(())
        } else {
            Err(SourceError::Stopped)
        }
    }

    /// Sends the stream's `SCHEMA` once per run, before its first record.
    pub fn describe(&mut self, stream: &StreamDef) -> Result<(), SourceError> {
        if !self.described.insert(stream.name) {
            return Ok(());
        }
        self.send(Message::Schema(SchemaMessage {
            stream: stream.name.to_string(),
            schema: stream.schema.clone(),
            key_properties: stream
                .key_properties
                .iter()
                .map(|k| k.to_string())
                .collect(),
            bookmark_properties: stream
                .replication_key
                .iter()
                .map(|k| k.to_string())
                .collect(),
        }))
    }

    /// Sends a record of `stream` (its `SCHEMA` first, once).
    pub fn record(
        &mut self,
        stream: &StreamDef,
        record: Map<String, Value>,
    ) -> Result<(), SourceError> {
        self.describe(stream)?;
        self.records += 1;
        let time_extracted = Some(self.extracted_at.clone());
        self.send(Message::Record(RecordMessage {
            stream: stream.name.to_string(),
            record: record.into(),
            version: None,
            time_extracted,
        }))
    }

    /// Says that everything `stream` holds was sent since its last version: rows of its
    /// earlier loads may go (`ACTIVATE_VERSION`, a full-table sync completed).
    pub fn activate_version(&mut self, stream: &StreamDef) -> Result<(), SourceError> {
        self.describe(stream)?;
        let version = chrono::Utc::now().timestamp_millis();
        self.send(Message::ActivateVersion(
            observes_singer::ActivateVersionMessage {
                stream: stream.name.to_string(),
                version,
            },
        ))
    }

    /// Reports `message` about `stream` to the run's report (and the log).
    pub fn notice(&mut self, stream: &str, message: String) {
        tracing::warn!(stream, "{message}");
        self.sink.notice(Notice {
            stream: stream.to_string(),
            message,
        });
    }

    /// Records emitted so far in this run.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn bookmarks(&mut self) -> &mut Map<String, Value> {
        match self.state.get_mut("bookmarks") {
            Some(Value::Object(map)) => map,
            _ => unreachable!("Emitter::new makes bookmarks an object"),
        }
    }

    /// The bookmark of a stream, or of one partition of it.
    pub fn bookmark(&self, stream: &str, partition: Option<&str>) -> Option<&Value> {
        let at = self.state.get("bookmarks")?.get(stream)?;
        match partition {
            Some(p) => at.get(p),
            None => Some(at),
        }
        .filter(|v| !v.is_null())
    }

    /// Sets a stream's bookmark (per partition, such as a project, if given).
    pub fn set_bookmark(&mut self, stream: &str, partition: Option<&str>, value: Value) {
        let bookmarks = self.bookmarks();
        match partition {
            None => {
                bookmarks.insert(stream.to_string(), value);
            }
            Some(p) => {
                let entry = bookmarks
                    .entry(stream.to_string())
                    .or_insert_with(|| json!({}));
                if !entry.is_object() {
                    *entry = json!({});
                }
                if let Value::Object(map) = entry {
                    map.insert(p.to_string(), value);
                }
            }
        }
    }

    /// Emits the whole state: everything emitted before it may now be committed. The
    /// same state again, with nothing between, is not sent twice.
    pub fn checkpoint(&mut self) -> Result<(), SourceError> {
        if self.last_checkpoint.as_ref() == Some(&self.state) {
            return Ok(());
        }
        let value = Value::Object(self.state.clone());
        self.send(Message::State(StateMessage { value }))
    }

    /// Indexes of `units` (the run's units of work, e.g. stream × project) in the order
    /// this run takes them: from where a capped run last stopped, wrapping around, so a
    /// page cap smaller than a full cycle cannot starve the units at the end.
    pub fn rotation(&self, units: &[String]) -> Vec<usize> {
        let start = self
            .state
            .get("resume_at")
            .and_then(Value::as_str)
            .and_then(|at| units.iter().position(|u| u == at))
            .unwrap_or(0);
        (0..units.len())
            .map(|i| (start + i) % units.len().max(1))
            .collect()
    }

    /// Records the unit a capped run stopped at (`None`: a full cycle finished).
    pub fn set_resume_at(&mut self, unit: Option<&str>) {
        match unit {
            Some(u) => {
                self.state
                    .insert("resume_at".into(), Value::String(u.to_string()));
            }
            None => {
                self.state.remove("resume_at");
            }
        }
    }

    /// The state to send: every bookmark.
    pub fn state(&self) -> Value {
        Value::Object(self.state.clone())
    }
}

/// The record of an API object (an error naming the stream if it is not an object).
pub fn object(stream: &str, value: Value) -> Result<Map<String, Value>, SourceError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(SourceError::Data {
            stream: stream.to_string(),
            message: format!(
                "expected an object, got {}",
                crate::truncate(&other.to_string(), 200)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_per_partition_and_checkpoints() {
        let mut out = Vec::new();
        let mut sink = |m: Message| {
            out.push(m);
            true
        };
        let start = json!({"bookmarks": {"jobs": {"a/b": {"floor": 7}}}});
        let mut emitter = Emitter::new(&mut sink, Some(&start));
        assert_eq!(
            emitter.bookmark("jobs", Some("a/b")),
            Some(&json!({"floor": 7}))
        );
        assert_eq!(emitter.bookmark("jobs", Some("c/d")), None);
        emitter.set_bookmark("jobs", Some("c/d"), json!({"floor": 9}));
        emitter.set_bookmark("checks", None, json!({"page": 2}));
        emitter.checkpoint().unwrap();
        let Some(Message::State(state)) = out.last() else {
            panic!("no state")
        };
        assert_eq!(
            state.value,
            json!({"bookmarks": {"jobs": {"a/b": {"floor": 7}, "c/d": {"floor": 9}}, "checks": {"page": 2}}})
        );
    }

    #[test]
    fn a_state_without_bookmarks_starts_afresh() {
        let mut sink = |_: Message| true;
        let emitter = Emitter::new(&mut sink, Some(&json!([1, 2])));
        assert_eq!(emitter.state(), json!({"bookmarks": {}}));
    }
}
