//! The messages, and the JSON form Singer spells them in.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One Singer message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Declares a stream's JSON Schema and keys.
    Schema(SchemaMessage),
    /// One record of a stream.
    Record(RecordMessage),
    /// A checkpoint: the tap's bookmark.
    State(StateMessage),
    /// Marks a new version of a stream (full-table replication).
    ActivateVersion(ActivateVersionMessage),
}

impl Message {
    /// The message's `type` as Singer spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Schema(_) => "SCHEMA",
            Message::Record(_) => "RECORD",
            Message::State(_) => "STATE",
            Message::ActivateVersion(_) => "ACTIVATE_VERSION",
        }
    }

    /// The stream the message is about (`STATE` is about none).
    pub fn stream(&self) -> Option<&str> {
        match self {
            Message::Schema(m) => Some(&m.stream),
            Message::Record(m) => Some(&m.stream),
            Message::ActivateVersion(m) => Some(&m.stream),
            Message::State(_) => None,
        }
    }
}

/// A `SCHEMA` message.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaMessage {
    /// The stream.
    pub stream: String,
    /// A JSON Schema (an object).
    pub schema: Value,
    /// The primary key's fields.
    pub key_properties: Vec<String>,
    /// The fields the tap bookmarks on.
    pub bookmark_properties: Vec<String>,
}

/// A record's data: as read (raw JSON text of an object, checked for syntax only, so the
/// normalizer can deserialize it straight into columns) or built in-process.
#[derive(Debug, Clone)]
pub enum Record {
    /// The record's JSON text, parsed later (or never, on the fast path).
    Raw(RawRecord),
    /// The record, parsed.
    Parsed(Map<String, Value>),
}

/// The JSON text of a record object, as it was read: syntax checked, nothing parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    text: Box<str>,
    /// Where the text starts in its input line, in bytes.
    offset: usize,
}

impl RawRecord {
    /// Checks that `text` is one JSON object.
    pub fn parse(text: &str) -> Result<RawRecord, serde_json::Error> {
        let raw: Box<RawValue> = serde_json::from_str(text)?;
        if !raw.get().starts_with('{') {
            return Err(serde::de::Error::custom("a record must be a JSON object"));
        }
        Ok(RawRecord {
            text: raw.into(),
            offset: 0,
        })
    }

    /// `part` of `line`, remembering where it starts (for columns in errors).
    pub(crate) fn within(line: &[u8], part: &str) -> RawRecord {
        let start = line.as_ptr() as usize;
        let at = part.as_ptr() as usize;
        let offset = if at >= start && at + part.len() <= start + line.len() {
            at - start
        } else {
            0
        };
        RawRecord {
            text: part.into(),
            offset,
        }
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.text
    }

    /// Where the record's text starts in its input line, in bytes (0 if it was not read
    /// from a line): a column within the record plus this is a column of the line.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl Record {
    /// The record as JSON text.
    pub fn to_json_string(&self) -> String {
        match self {
            Record::Raw(raw) => raw.get().to_string(),
            Record::Parsed(map) => Value::Object(map.clone()).to_string(),
        }
    }

    /// The record as a JSON value (parsing it if it is raw).
    pub fn to_value(&self) -> Value {
        match self {
            Record::Raw(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            Record::Parsed(map) => Value::Object(map.clone()),
        }
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

impl From<Map<String, Value>> for Record {
    fn from(map: Map<String, Value>) -> Self {
        Record::Parsed(map)
    }
}

/// A `RECORD` message.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordMessage {
    /// The stream.
    pub stream: String,
    /// The record.
    pub record: Record,
    /// The stream's version (`ACTIVATE_VERSION`), if any.
    pub version: Option<i64>,
    /// When the tap extracted it, as the tap wrote it.
    pub time_extracted: Option<String>,
}

/// A `STATE` message.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMessage {
    /// The state, as the tap sent it.
    pub value: Value,
}

/// An `ACTIVATE_VERSION` message.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivateVersionMessage {
    /// The stream.
    pub stream: String,
    /// The version now active.
    pub version: i64,
}

/// A message with the line it was read from (1-based), for errors that point at the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The line, from 1.
    pub number: u64,
    /// The message on it.
    pub message: Message,
}

/// The JSON form of a message, as Singer spells it.
pub fn to_json(message: &Message) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::from(message.kind()));
    match message {
        Message::Schema(s) => {
            m.insert("stream".into(), Value::from(s.stream.clone()));
            m.insert("schema".into(), s.schema.clone());
            m.insert(
                "key_properties".into(),
                Value::from(s.key_properties.clone()),
            );
            if !s.bookmark_properties.is_empty() {
                m.insert(
                    "bookmark_properties".into(),
                    Value::from(s.bookmark_properties.clone()),
                );
            }
        }
        Message::Record(r) => {
            m.insert("stream".into(), Value::from(r.stream.clone()));
            m.insert("record".into(), r.record.to_value());
            if let Some(v) = r.version {
                m.insert("version".into(), Value::from(v));
            }
            if let Some(t) = &r.time_extracted {
                m.insert("time_extracted".into(), Value::from(t.clone()));
            }
        }
        Message::State(s) => {
            m.insert("value".into(), s.value.clone());
        }
        Message::ActivateVersion(a) => {
            m.insert("stream".into(), Value::from(a.stream.clone()));
            m.insert("version".into(), Value::from(a.version));
        }
    }
    Value::Object(m)
}
