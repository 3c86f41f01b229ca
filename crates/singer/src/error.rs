//! What is wrong with a line of input, located.

/// What is wrong with a line of Singer input. The line number is carried by [`ReadError`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LineError {
    /// Not valid JSON.
    #[error("malformed JSON at column {column}: {message}")]
    MalformedJson {
        /// Where reading stopped: the byte column on the line, from 1.
        column: usize,
        /// What is wrong, in serde_json's words.
        message: String,
    },
    /// No `type` field.
    #[error("a message must be a JSON object with a \"type\"")]
    MissingType,
    /// A `type` that is not a Singer message type.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A field a message of this type needs is missing.
    #[error("{kind} message{stream} has no {field:?}")]
    MissingField {
        /// The message type.
        kind: &'static str,
        /// The stream, if the message names one.
        stream: String,
        /// The missing field.
        field: &'static str,
    },
    /// A field has the wrong shape.
    #[error("{kind} message{stream}: {field:?} {problem}")]
    BadField {
        /// The message type.
        kind: &'static str,
        /// The stream, if the message names one.
        stream: String,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// A Singer reading error, located.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A line is not a Singer message.
    #[error("line {line}")]
    Line {
        /// The line, from 1.
        line: u64,
        /// Why.
        #[source]
        source: LineError,
    },
    /// The input could not be read.
    #[error("reading line {line}")]
    Io {
        /// The line being read, from 1.
        line: u64,
        /// The I/O error.
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
