//! Why a load stopped.

use observes_model::{IncompatibleChange, InvalidRecord, SchemaError};
use observes_warehouse::WarehouseError;

/// Why a load stopped: every variant names the line (and stream) of the input it stopped at.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A record contradicts its stream's schema.
    #[error("line {line}, stream {stream:?}")]
    InvalidRecord {
        /// The input line, from 1.
        line: u64,
        /// The stream.
        stream: String,
        /// What is wrong, and where in the record.
        #[source]
        source: InvalidRecord,
    },
    /// A `SCHEMA` cannot be turned into tables.
    #[error("line {line}")]
    Schema {
        /// The input line, from 1.
        line: u64,
        /// Why.
        #[source]
        source: SchemaError,
    },
    /// A type change the schema-change policy does not absorb.
    #[error("line {line}")]
    Incompatible {
        /// The input line, from 1.
        line: u64,
        /// The column and the change.
        #[source]
        source: IncompatibleChange,
    },
    /// A `RECORD` came before any `SCHEMA` of its stream.
    #[error("line {line}, stream {stream:?}: RECORD before the stream's SCHEMA")]
    RecordBeforeSchema {
        /// The input line, from 1.
        line: u64,
        /// The stream.
        stream: String,
    },
    /// Merge needs key properties, and the stream's `SCHEMA` declares none.
    #[error("line {line}, stream {stream:?}: write mode \"merge\" needs key_properties, and the SCHEMA has none")]
    MergeWithoutKeys {
        /// The input line, from 1.
        line: u64,
        /// The stream.
        stream: String,
    },
    /// A warehouse schema name that cannot be used.
    #[error("schema {schema:?}: {reason}")]
    SchemaName {
        /// The name.
        schema: String,
        /// Why not.
        reason: String,
    },
    /// Two streams map to one table (their names normalize alike, or metadata's).
    #[error(
        "line {line}, stream {stream:?}: table {table:?} {holder}; two streams never share a table"
    )]
    TableTaken {
        /// The input line, from 1.
        line: u64,
        /// The stream that came second.
        stream: String,
        /// The table.
        table: String,
        /// Who holds it, in words.
        holder: String,
    },
    /// The warehouse failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// A line that is not a Singer message.
    #[error(transparent)]
    Read(#[from] observes_singer::ReadError),
}
