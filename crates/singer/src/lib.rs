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

#![warn(missing_docs, unreachable_pub)]

mod error;
pub mod json;
mod message;
mod parse;
mod read;
mod write;

pub use error::{LineError, ReadError};
pub use message::{
    to_json, ActivateVersionMessage, Line, Message, RawRecord, Record, RecordMessage,
    SchemaMessage, StateMessage,
};
pub use parse::{parse_message, scan_record_line, RecordLine};
pub use read::{LineBlock, LineBlocks, MessageReader};
pub use write::MessageWriter;

#[cfg(test)]
mod tests;
