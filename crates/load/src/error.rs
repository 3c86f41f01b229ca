//! Why a load stopped.

use observes_model::{IncompatibleChange, InvalidRecord, SchemaError};
use observes_warehouse::WarehouseError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("line {line}, stream {stream:?}: {source}")]
    InvalidRecord {
        line: u64,
        stream: String,
        #[source]
        source: InvalidRecord,
    },
    #[error("line {line}: {source}")]
    Schema {
        line: u64,
        #[source]
        source: SchemaError,
    },
    #[error("line {line}: {source}")]
    Incompatible {
        line: u64,
        #[source]
        source: IncompatibleChange,
    },
    #[error("line {line}, stream {stream:?}: RECORD before the stream's SCHEMA")]
    RecordBeforeSchema { line: u64, stream: String },
    #[error("line {line}, stream {stream:?}: write mode \"merge\" needs key_properties, and the SCHEMA has none")]
    MergeWithoutKeys { line: u64, stream: String },
    #[error("schema {schema:?}: {reason}")]
    SchemaName { schema: String, reason: String },
    #[error(
        "line {line}, stream {stream:?}: table {table:?} {holder}; two streams never share a table"
    )]
    TableTaken {
        line: u64,
        stream: String,
        table: String,
        /// Who holds it, in words.
        holder: String,
    },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// A line that is not a Singer message.
    #[error(transparent)]
    Read(#[from] observes_singer::ReadError),
}
