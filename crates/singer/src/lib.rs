//! Singer messages: the lingua franca between taps (sources) and targets (loaders).
//!
//! A Singer stream is JSON lines, one message per line: `SCHEMA`, `RECORD`, `STATE` and
//! `ACTIVATE_VERSION`. This crate reads them ([`MessageReader`], streaming, constant memory)
//! and writes them ([`MessageWriter`]). It checks the shape of each message, and nothing
//! more: whether a record matches its schema is the normalizer's business.
//!
//! ```
//! use observes_singer::{Message, MessageReader};
//!
//! let input = br#"{"type":"SCHEMA","stream":"users","schema":{"type":"object"},"key_properties":["id"]}
//! {"type":"RECORD","stream":"users","record":{"id":1}}
//! {"type":"STATE","value":{"users":1}}
//! "#;
//! let mut reader = MessageReader::new(&input[..]);
//! let mut kinds = Vec::new();
//! while let Some(line) = reader.next_message().unwrap() {
//!     kinds.push(line.message.kind());
//! }
//! assert_eq!(kinds, ["SCHEMA", "RECORD", "STATE"]);
//! ```

#![warn(unreachable_pub)]

pub mod json;

use std::io::{BufRead, BufReader, Read, Write};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One Singer message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Schema(SchemaMessage),
    Record(RecordMessage),
    State(StateMessage),
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

#[derive(Debug, Clone, PartialEq)]
pub struct SchemaMessage {
    pub stream: String,
    /// A JSON Schema (an object).
    pub schema: Value,
    pub key_properties: Vec<String>,
    pub bookmark_properties: Vec<String>,
}

/// A record's data: as read (raw JSON text of an object, checked for syntax only, so the
/// normalizer can deserialize it straight into columns) or built in-process.
#[derive(Debug, Clone)]
pub enum Record {
    Raw(RawRecord),
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
    fn within(line: &[u8], part: &str) -> RawRecord {
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

#[derive(Debug, Clone, PartialEq)]
pub struct RecordMessage {
    pub stream: String,
    pub record: Record,
    pub version: Option<i64>,
    pub time_extracted: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateMessage {
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActivateVersionMessage {
    pub stream: String,
    pub version: i64,
}

/// A message with the line it was read from (1-based), for errors that point at the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub number: u64,
    pub message: Message,
}

/// What is wrong with a line of Singer input. The line number is carried by [`ReadError`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LineError {
    #[error("malformed JSON at column {column}: {message}")]
    MalformedJson { column: usize, message: String },
    #[error("a message must be a JSON object with a \"type\"")]
    MissingType,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("{kind} message{stream} has no {field:?}")]
    MissingField {
        kind: &'static str,
        stream: String,
        field: &'static str,
    },
    #[error("{kind} message{stream}: {field:?} {problem}")]
    BadField {
        kind: &'static str,
        stream: String,
        field: &'static str,
        problem: &'static str,
    },
}

/// A Singer reading error, located.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line {line}: {source}")]
    Line {
        line: u64,
        #[source]
        source: LineError,
    },
    #[error("reading line {line}: {source}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
}

impl ReadError {
    /// The 1-based line the error is on.
    pub fn line(&self) -> u64 {
        match self {
            ReadError::Line { line, .. } | ReadError::Io { line, .. } => *line,
        }
    }

    /// What is wrong, without the line number (for places that store the line apart).
    pub fn reason(&self) -> String {
        match self {
            ReadError::Line { source, .. } => source.to_string(),
            ReadError::Io { source, .. } => source.to_string(),
        }
    }
}

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
fn parse_message_by_serde(line: &[u8]) -> Result<Message, LineError> {
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
    pub stream: &'a str,
    /// The record object's JSON text.
    pub record: &'a str,
    pub version: Option<i64>,
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
    let text = std::str::from_utf8(line).map_err(|_| Bail)?;
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
fn fast_record(bytes: &[u8]) -> Option<Message> {
    let line = scan_record_line(bytes, |_, c| c.skip_value(0).map(|_| ())).ok()?;
    Some(Message::Record(RecordMessage {
        stream: line.stream.to_string(),
        record: Record::Raw(RawRecord::within(bytes, line.record)),
        version: line.version,
        time_extracted: line.time_extracted,
    }))
}

/// Lines of Singer input read in blocks (for readers that parse each line where it is
/// used): each line with its 1-based number, trimmed, blank lines left out.
#[derive(Debug, Default)]
pub struct LineBlock {
    bytes: Vec<u8>,
    /// (line number, start, end, next) in `bytes`: the text, and where the next line
    /// starts (past this one's newline).
    lines: Vec<(u64, usize, usize, usize)>,
    /// Where `bytes` starts in the input.
    offset: u64,
}

impl LineBlock {
    /// The lines with where each ends in the input (past its newline): reading resumed
    /// from there goes on with the next line.
    pub fn lines_with_end(&self) -> impl Iterator<Item = (u64, &[u8], u64)> + '_ {
        self.lines.iter().map(move |&(number, start, end, next)| {
            (number, &self.bytes[start..end], self.offset + next as u64)
        })
    }

    pub fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.lines
            .iter()
            .map(|&(number, start, end, _)| (number, &self.bytes[start..end]))
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Splits input into [`LineBlock`]s of about `block_bytes` each, in constant memory (a
/// block holds whole lines; one longer line makes its block longer).
///
/// A block also ends where the input has nothing more at hand, so lines reach the loader
/// when they are written, not once a block fills: a slow tap's `STATE` is committed (and
/// its rows made visible) on time. A fast source fills whole blocks, since its reads rarely
/// end exactly at a line's end.
pub struct LineBlocks<R> {
    input: BufReader<R>,
    block_bytes: usize,
    line: u64,
    /// Bytes of the input read so far (from where reading started, see `resume`).
    offset: u64,
    done: bool,
}

impl<R: Read> LineBlocks<R> {
    pub fn new(input: R, block_bytes: usize) -> Self {
        LineBlocks::resume(input, block_bytes, 0, 0)
    }

    /// Blocks of an input positioned at byte `offset`, right after line `line` of the
    /// whole (for a file read again from where a run stopped): offsets and line numbers
    /// go on from there.
    pub fn resume(input: R, block_bytes: usize, offset: u64, line: u64) -> Self {
        let block_bytes = block_bytes.max(1);
        LineBlocks {
            input: BufReader::with_capacity(block_bytes.max(8 << 10), input),
            block_bytes,
            line,
            offset,
            done: false,
        }
    }

    /// Bytes and lines read so far (where the input ends, once it has).
    pub fn position(&self) -> (u64, u64) {
        (self.offset, self.line)
    }

    /// The next block; `Ok(None)` at the end of the input.
    pub fn next_block(&mut self) -> Result<Option<LineBlock>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let mut block = LineBlock {
            bytes: Vec::with_capacity(self.block_bytes + 4096),
            lines: Vec::new(),
            offset: self.offset,
        };
        while block.bytes.len() < self.block_bytes {
            let start = block.bytes.len();
            let n = self
                .input
                .read_until(b'\n', &mut block.bytes)
                .map_err(|source| ReadError::Io {
                    line: self.line + 1,
                    source,
                })?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.line += 1;
            self.offset += n as u64;
            let text = line_text(&block.bytes[start..], self.line);
            if !text.is_empty() {
                let offset = text.as_ptr() as usize - block.bytes.as_ptr() as usize;
                block
                    .lines
                    .push((self.line, offset, offset + text.len(), block.bytes.len()));
            }
            if self.input.buffer().is_empty() && !block.lines.is_empty() {
                // The next read may wait for the source: hand over what came so far.
                break;
            }
        }
        if block.lines.is_empty() && self.done {
            return Ok(None);
        }
        Ok(Some(block))
    }
}

/// Reads Singer messages from JSON lines, one at a time, in constant memory.
/// Blank lines are skipped (they still count for line numbers).
pub struct MessageReader<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
}

impl<R: BufRead> MessageReader<R> {
    pub fn new(input: R) -> Self {
        MessageReader {
            input,
            buf: Vec::with_capacity(64 * 1024),
            line: 0,
        }
    }

    /// The next message, `Ok(None)` at the end of the input.
    pub fn next_message(&mut self) -> Result<Option<Line>, ReadError> {
        loop {
            self.buf.clear();
            self.line += 1;
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| ReadError::Io {
                    line: self.line,
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            let text = line_text(&self.buf, self.line);
            if text.is_empty() {
                continue;
            }
            return parse_message(text)
                .map(|message| {
                    Some(Line {
                        number: self.line,
                        message,
                    })
                })
                .map_err(|source| ReadError::Line {
                    line: self.line,
                    source,
                });
        }
    }

    /// The raw bytes of the last line read (without surrounding white space), for
    /// quarantining input that could not be parsed.
    pub fn last_line(&self) -> &[u8] {
        line_text(&self.buf, self.line)
    }
}

impl<R: BufRead> Iterator for MessageReader<R> {
    type Item = Result<Line, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_message().transpose()
    }
}

/// A line without surrounding white space and, on the first line, without a UTF-8 byte
/// order mark (files saved by some Windows editors and tools start with one).
fn line_text(bytes: &[u8], line: u64) -> &[u8] {
    let text = bytes.trim_ascii();
    match text.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) if line == 1 => rest.trim_ascii(),
        _ => text,
    }
}

/// Writes Singer messages as JSON lines.
pub struct MessageWriter<W> {
    out: W,
}

impl<W: Write> MessageWriter<W> {
    pub fn new(out: W) -> Self {
        MessageWriter { out }
    }

    pub fn write(&mut self, message: &Message) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &to_json(message))?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Input that arrives in the given pieces, one per read, as from a pipe.
    struct Pieces(std::collections::VecDeque<&'static str>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some(piece) = self.0.pop_front() else {
                return Ok(0);
            };
            buf[..piece.len()].copy_from_slice(piece.as_bytes());
            Ok(piece.len())
        }
    }

    fn block_lines(block: &LineBlock) -> Vec<(u64, String)> {
        block
            .lines()
            .map(|(n, l)| (n, String::from_utf8_lossy(l).into_owned()))
            .collect()
    }

    /// A block ends where the input has nothing more at hand after a whole line (a read
    /// would wait for the tap), never inside a line, and at its size otherwise.
    #[test]
    fn blocks_end_where_the_input_pauses_or_fills() {
        let pieces = Pieces(["a\nb\n", "c", "c\n\nd\n", "e\nf", "\n"].into());
        let mut blocks = LineBlocks::new(pieces, 1 << 20);
        let mut seen = Vec::new();
        while let Some(block) = blocks.next_block().unwrap() {
            seen.push(block_lines(&block));
        }
        let line = |n: u64, s: &str| (n, s.to_string());
        assert_eq!(
            seen,
            vec![
                vec![line(1, "a"), line(2, "b")],
                vec![line(3, "cc"), line(5, "d")],
                vec![line(6, "e"), line(7, "f")],
            ]
        );

        // All at hand: blocks of about the size asked for.
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        let mut blocks = LineBlocks::new(std::io::Cursor::new(text), 90);
        let mut sizes = Vec::new();
        while let Some(block) = blocks.next_block().unwrap() {
            sizes.push(block.lines().count());
        }
        assert_eq!(sizes, vec![10; 10]);
    }

    /// The one-pass `RECORD` reader must read a line exactly as `serde_json` does, or
    /// leave it to `serde_json`.
    #[test]
    fn the_fast_record_path_reads_lines_as_serde_does() {
        let good = r#"{"type":"RECORD","stream":"jobs","record":{"id":1,"a":[1,{"b":"c\n"}]},"version":2,"time_extracted":"2026-01-01T00:00:00Z"}"#;
        let mut lines: Vec<String> = vec![
            good.into(),
            r#" { "stream" : "s" , "type" : "RECORD" , "record" : { } } "#.into(),
            r#"{"type":"RECORD","stream":"s","record":{},"version":null,"time_extracted":null}"#
                .into(),
            r#"{"type":"RECORD","stream":"s","record":{},"extra":[1,2]}"#.into(),
            r#"{"type":"RECORD","stream":"s","record":{},"type":"RECORD"}"#.into(),
            r#"{"type":"RECORD","stream":"s","record":[]}"#.into(),
            r#"{"type":"RECORD","stream":"s","record":{},"version":1.5}"#.into(),
            r#"{"type":"RECORD","stream":"s","record":{},"version":"1"}"#.into(),
            r#"{"type":"RECORD","stream":"s","record":{},"time_extracted":5}"#.into(),
            r#"{"type":"RECORD","stream":"s\u0041","record":{}}"#.into(),
            r#"{"type":"RECORD","record":{}}"#.into(),
            r#"{"type":"STATE","value":{}}"#.into(),
            r#"{"type":"RECORD","stream":"s","record":{"a":1},"schema":{}}"#.into(),
            r#"{"type":"RECORD","stream":"s","record":{"a":1}} x"#.into(),
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"a\":\"\u{1}\"}}".into(),
        ];
        // Every prefix of a good line, and the line with each byte dropped.
        for end in 0..good.len() {
            lines.push(good[..end].to_string());
            lines.push(format!("{}{}", &good[..end], &good[end + 1..]));
        }
        let mut fast = 0;
        for line in &lines {
            let want = parse_message_by_serde(line.as_bytes()).map_err(|e| e.to_string());
            if let Some(got) = fast_record(line.as_bytes()) {
                fast += 1;
                let want = want.unwrap_or_else(|e| panic!("{line}: fast read, serde refused: {e}"));
                let (Message::Record(got), Message::Record(want)) = (got, want) else {
                    panic!("{line}: not a record both ways");
                };
                assert_eq!(got.stream, want.stream, "{line}");
                assert_eq!(got.version, want.version, "{line}");
                assert_eq!(got.time_extracted, want.time_extracted, "{line}");
                assert_eq!(
                    got.record.to_json_string(),
                    want.record.to_json_string(),
                    "{line}"
                );
            }
            // Whichever way a line goes, parse_message answers what serde answers.
            let ours = parse_message(line.as_bytes()).map_err(|e| e.to_string());
            match (
                &ours,
                parse_message_by_serde(line.as_bytes()).map_err(|e| e.to_string()),
            ) {
                (Ok(_), Ok(_)) => {}
                (Err(a), Err(b)) => assert_eq!(a, &b, "{line}"),
                (a, b) => panic!("{line}: {a:?} vs {b:?}"),
            }
        }
        assert!(fast >= 5, "the fast path took only {fast} lines");
    }

    fn read_all(input: &str) -> Vec<Result<Line, String>> {
        MessageReader::new(input.as_bytes())
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn reads_every_message_kind_with_optional_fields() {
        let input = r#"{"type":"SCHEMA","stream":"s","schema":{"type":"object"},"key_properties":["id"],"bookmark_properties":["updated_at"]}

{"type":"RECORD","stream":"s","record":{"id":1},"version":3,"time_extracted":"2026-01-01T00:00:00Z"}
{"type":"STATE","value":{"bookmarks":{"s":1}}}
{"type":"ACTIVATE_VERSION","stream":"s","version":3}
"#;
        let lines: Vec<Line> = read_all(input).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1].number, 3, "blank lines still count");
        assert_eq!(
            lines[0].message,
            Message::Schema(SchemaMessage {
                stream: "s".into(),
                schema: json!({"type":"object"}),
                key_properties: vec!["id".into()],
                bookmark_properties: vec!["updated_at".into()],
            })
        );
        match &lines[1].message {
            Message::Record(r) => {
                assert_eq!(r.version, Some(3));
                assert_eq!(r.time_extracted.as_deref(), Some("2026-01-01T00:00:00Z"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            lines[3].message,
            Message::ActivateVersion(ActivateVersionMessage {
                stream: "s".into(),
                version: 3
            })
        );
    }

    #[test]
    fn round_trips_through_the_writer() {
        let input = r#"{"type":"SCHEMA","stream":"s","schema":{"type":"object"},"key_properties":["id"]}
{"type":"RECORD","stream":"s","record":{"id":1,"name":"a"}}
{"type":"STATE","value":{"x":1}}
{"type":"ACTIVATE_VERSION","stream":"s","version":2}
"#;
        let mut writer = MessageWriter::new(Vec::new());
        for line in read_all(input) {
            writer.write(&line.unwrap().message).unwrap();
        }
        assert_eq!(String::from_utf8(writer.into_inner()).unwrap(), input);
    }

    #[test]
    fn malformed_input_is_located() {
        let cases = [
            ("{\"type\":\"RECORD\",", "line 1: malformed JSON at column 17: EOF while parsing a value"),
            ("[1,2]", "line 1: a message must be a JSON object with a \"type\""),
            ("{\"stream\":\"s\"}", "line 1: a message must be a JSON object with a \"type\""),
            ("{\"type\":\"RECORDS\",\"stream\":\"s\"}", "line 1: unknown message type \"RECORDS\""),
            ("{\"type\":\"RECORD\",\"stream\":\"s\"}", "line 1: RECORD message for stream \"s\" has no \"record\""),
            ("{\"type\":\"RECORD\",\"record\":{}}", "line 1: RECORD message has no \"stream\""),
            ("{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":[1]}", "line 1: RECORD message for stream \"s\": \"record\" must be a JSON object"),
            ("{\"type\":\"SCHEMA\",\"stream\":\"s\"}", "line 1: SCHEMA message for stream \"s\" has no \"schema\""),
            ("{\"type\":\"SCHEMA\",\"stream\":\"s\",\"schema\":true}", "line 1: SCHEMA message for stream \"s\": \"schema\" must be a JSON object"),
            ("{\"type\":\"SCHEMA\",\"stream\":\"s\",\"schema\":{},\"key_properties\":\"id\"}", "line 1: SCHEMA message for stream \"s\": \"key_properties\" must be a list of strings"),
            ("{\"type\":\"STATE\"}", "line 1: STATE message has no \"value\""),
            ("{\"type\":\"ACTIVATE_VERSION\",\"stream\":\"s\",\"version\":\"x\"}", "line 1: ACTIVATE_VERSION message for stream \"s\": \"version\" must be an integer"),
            ("{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{}} trailing", "line 1: malformed JSON at column 44: trailing characters"),
        ];
        for (input, expected) in cases {
            let got = read_all(input);
            assert_eq!(got.len(), 1, "{input}");
            assert_eq!(got[0].as_ref().unwrap_err(), expected, "{input}");
        }
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped_on_the_first_line_only() {
        let state = "{\"type\":\"STATE\",\"value\":1}";
        let input = format!("\u{feff}{state}\n\u{feff}{state}\n");
        let got = read_all(&input);
        assert!(got[0].is_ok(), "{:?}", got[0]);
        assert_eq!(
            got[1].as_ref().unwrap_err(),
            "line 2: malformed JSON at column 1: expected value"
        );
        let mut blocks = LineBlocks::new(input.as_bytes(), 1 << 20);
        let block = blocks.next_block().unwrap().unwrap();
        let lines: Vec<_> = block.lines().map(|(n, text)| (n, text.to_vec())).collect();
        assert_eq!(lines[0], (1, state.as_bytes().to_vec()));
        assert!(lines[1].1.starts_with(b"\xEF\xBB\xBF"));
    }

    #[test]
    fn errors_name_the_right_line() {
        let input = "{\"type\":\"STATE\",\"value\":1}\n\n{oops\n";
        let got = read_all(input);
        assert!(got[0].is_ok());
        assert!(got[1]
            .as_ref()
            .unwrap_err()
            .starts_with("line 3: malformed JSON at column 2: "));
    }
}
