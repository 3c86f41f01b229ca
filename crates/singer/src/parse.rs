//! One line into one message: by `serde_json` (the reference, which words every error),
//! or by the one-pass scanner for the common `RECORD` line.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::*;

/// All fields any message may have, parsed in one pass (an internally tagged enum would
/// buffer every record through serde's `Content` first, which is much slower).
#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    stream: Option<String>,
    /// Borrowed from the line, so an error inside it can be placed in the line.
    #[serde(borrow)]
    record: Option<&'a RawValue>,
    schema: Option<Value>,
    key_properties: Option<Value>,
    bookmark_properties: Option<Value>,
    value: Option<Value>,
    version: Option<Value>,
    time_extracted: Option<Value>,
}

fn stream_suffix(stream: &Option<String>) -> String {
    match stream {
        Some(s) => format!(" for stream {s:?}"),
        None => String::new(),
    }
}

fn string_list(
    kind: &'static str,
    stream: &Option<String>,
    field: &'static str,
    value: Option<Value>,
) -> Result<Vec<String>, LineError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(LineError::BadField {
                    kind,
                    stream: stream_suffix(stream),
                    field,
                    problem: "must be a list of strings",
                }),
            })
            .collect(),
        Some(_) => Err(LineError::BadField {
            kind,
            stream: stream_suffix(stream),
            field,
            problem: "must be a list of strings",
        }),
    }
}

/// Parse one line of Singer JSON into a message.
pub fn parse_message(line: &[u8]) -> Result<Message, LineError> {
    match fast_record(line) {
        Some(record) => Ok(record),
        None => parse_message_by_serde(line),
    }
}

/// [`parse_message`] by `serde_json` alone: the reference the fast path follows, and the
/// one that words every error.
pub(crate) fn parse_message_by_serde(line: &[u8]) -> Result<Message, LineError> {
    let raw: RawMessage = match serde_json::from_slice(line) {
        Ok(raw) => raw,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(LineError::MissingType)
        }
        Err(e) => {
            // serde_json counts lines within this one line; only its column means anything.
            let text = e.to_string();
            let message = text.split(" at line ").next().unwrap_or(&text).to_string();
            return Err(LineError::MalformedJson {
                column: e.column(),
                message,
            });
        }
    };
    let kind = raw.kind.ok_or(LineError::MissingType)?;
    let need_stream = |kind: &'static str, stream: Option<String>| {
        stream.ok_or(LineError::MissingField {
            kind,
            stream: String::new(),
            field: "stream",
        })
    };
    match kind.as_str() {
        "RECORD" => {
            let record = match raw.record {
                Some(record) if record.get().starts_with('{') => record,
                Some(_) => {
                    return Err(LineError::BadField {
                        kind: "RECORD",
                        stream: stream_suffix(&raw.stream),
                        field: "record",
                        problem: "must be a JSON object",
                    })
                }
                None => {
                    return Err(LineError::MissingField {
                        kind: "RECORD",
                        stream: stream_suffix(&raw.stream),
                        field: "record",
                    })
                }
            };
            let version = match raw.version {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().ok_or(LineError::BadField {
                    kind: "RECORD",
                    stream: stream_suffix(&raw.stream),
                    field: "version",
                    problem: "must be an integer",
                })?),
            };
            let time_extracted = match raw.time_extracted {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            Ok(Message::Record(RecordMessage {
                stream: need_stream("RECORD", raw.stream)?,
                record: Record::Raw(RawRecord::within(line, record.get())),
                version,
                time_extracted,
            }))
        }
        "SCHEMA" => {
            let schema = match raw.schema {
                Some(schema @ Value::Object(_)) => schema,
                Some(_) => {
                    return Err(LineError::BadField {
                        kind: "SCHEMA",
                        stream: stream_suffix(&raw.stream),
                        field: "schema",
                        problem: "must be a JSON object",
                    })
                }
                None => {
                    return Err(LineError::MissingField {
                        kind: "SCHEMA",
                        stream: stream_suffix(&raw.stream),
                        field: "schema",
                    })
                }
            };
            let key_properties =
                string_list("SCHEMA", &raw.stream, "key_properties", raw.key_properties)?;
            let bookmark_properties = string_list(
                "SCHEMA",
                &raw.stream,
                "bookmark_properties",
                raw.bookmark_properties,
            )?;
            Ok(Message::Schema(SchemaMessage {
                stream: need_stream("SCHEMA", raw.stream)?,
                schema,
                key_properties,
                bookmark_properties,
            }))
        }
        "STATE" => Ok(Message::State(StateMessage {
            value: raw.value.ok_or(LineError::MissingField {
                kind: "STATE",
                stream: String::new(),
                field: "value",
            })?,
        })),
        "ACTIVATE_VERSION" => {
            let version = raw
                .version
                .ok_or(LineError::MissingField {
                    kind: "ACTIVATE_VERSION",
                    stream: stream_suffix(&raw.stream),
                    field: "version",
                })?
                .as_i64()
                .ok_or(LineError::BadField {
                    kind: "ACTIVATE_VERSION",
                    stream: stream_suffix(&raw.stream),
                    field: "version",
                    problem: "must be an integer",
                })?;
            Ok(Message::ActivateVersion(ActivateVersionMessage {
                stream: need_stream("ACTIVATE_VERSION", raw.stream)?,
                version,
            }))
        }
        other => Err(LineError::UnknownType(other.to_string())),
    }
}

/// A `RECORD` line read by [`scan_record_line`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordLine<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The record object's JSON text.
    pub record: &'a str,
    /// The stream's version, if any.
    pub version: Option<i64>,
    /// When the tap extracted it, if it said.
    pub time_extracted: Option<String>,
}

/// Reads a well-formed `RECORD` line with plain keys in one pass, without `serde_json`:
/// the common case of [`parse_message`]. `read_record(stream, cursor)` is called once with
/// the cursor at the record object and must move it past the object (a normalizer reads
/// the record there and then, so its text is scanned once); what it reads it must check
/// as strictly as [`json::Cursor`] does.
///
/// Anything else bails, including every line `parse_message` would refuse: the caller
/// then parses the line the slow way, which decides and words the errors. So both ways
/// read every line alike.
pub fn scan_record_line<'a>(
    line: &'a [u8],
    mut read_record: impl FnMut(&'a str, &mut json::Cursor<'a>) -> json::Fast<()>,
) -> json::Fast<RecordLine<'a>> {
    use json::{Bail, Cursor, Number};
    fn once<T>(slot: &mut Option<T>, value: T) -> json::Fast<()> {
        match slot {
            Some(_) => Err(Bail), // a duplicate field: serde_json's error
            None => {
                *slot = Some(value);
                Ok(())
            }
        }
    }
    // Most of a wide line is string values, often not ASCII, where the standard library's
    // check slows to under 1 GB/s (12% of a 2 KB-record load); the SIMD one keeps pace.
    let text = simdutf8::basic::from_utf8(line).map_err(|_| Bail)?;
    let mut c = Cursor::new(text);
    c.expect(b'{')?;
    let mut kind = None;
    let mut stream = None;
    let mut record = None;
    let mut version = None;
    let mut time_extracted = None;
    let mut read = false;
    if c.eat(b'}') {
        return Err(Bail);
    }
    loop {
        let key = c.plain_string()?;
        c.expect(b':')?;
        match key {
            "type" => once(&mut kind, c.plain_string()?)?,
            "stream" => once(&mut stream, c.plain_string()?)?,
            "record" => {
                if record.is_some() || c.peek() != Some(b'{') {
                    return Err(Bail);
                }
                let start = c.pos();
                match (kind, stream) {
                    (Some("RECORD"), Some(name)) => {
                        read_record(name, &mut c)?;
                        read = true;
                    }
                    _ => {
                        c.skip_value(0)?;
                    }
                }
                record = Some(c.slice(start, c.pos()));
            }
            "version" => {
                let v = if c.literal(b"null") {
                    None
                } else {
                    match c.number()? {
                        Number::I64(v) => Some(v),
                        _ => return Err(Bail),
                    }
                };
                once(&mut version, v)?
            }
            "time_extracted" => {
                let t = if c.peek() == Some(b'"') {
                    Some(c.string()?.into_owned())
                } else {
                    c.skip_value(0)?;
                    None
                };
                once(&mut time_extracted, t)?
            }
            // Fields of other messages: left to the slow path.
            "schema" | "key_properties" | "bookmark_properties" | "value" => return Err(Bail),
            _ => {
                c.skip_value(0)?;
            }
        }
        if !c.eat(b',') {
            c.expect(b'}')?;
            break;
        }
    }
    if !c.at_end() || kind != Some("RECORD") {
        return Err(Bail);
    }
    let (stream, record) = (stream.ok_or(Bail)?, record.ok_or(Bail)?);
    if !read {
        let mut rc = Cursor::new(record);
        read_record(stream, &mut rc)?;
        if !rc.at_end() {
            return Err(Bail);
        }
    }
    Ok(RecordLine {
        stream,
        record,
        version: version.flatten(),
        time_extracted: time_extracted.flatten(),
    })
}

/// [`scan_record_line`] as a message.
pub(crate) fn fast_record(bytes: &[u8]) -> Option<Message> {
    let line = scan_record_line(bytes, |_, c| c.skip_value(0).map(|_| ())).ok()?;
    Some(Message::Record(RecordMessage {
        stream: line.stream.to_string(),
        record: Record::Raw(RawRecord::within(bytes, line.record)),
        version: line.version,
        time_extracted: line.time_extracted,
    }))
}
