//! What is wrong with a line of input, located.

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
