//! The relational model: how a stream's JSON Schema becomes tables, and how its records
//! become rows of them.
//!
//! - [`Layout::compile`] turns a SCHEMA into a root table and one child table per array;
//!   nested objects are flattened into `parent__child` columns; names are normalized by
//!   [`ident::normalize`] within a dialect's length limit.
//! - [`Normalizer`] turns records into Arrow [`RecordBatch`](arrow_array::RecordBatch)es,
//!   one per table, checking each value against its schema.
//! - [`Layout::reconcile`] fits a layout to the columns a table already has (schema
//!   evolution: new columns added, compatible types widened).
//!
//! It knows nothing of warehouses or SQL: the loader and the warehouses take it from here.
//!
//! ```
//! use std::sync::Arc;
//! use observes_model::{IdAllocator, Layout, Normalizer};
//! use serde_json::json;
//!
//! let schema = json!({"properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}});
//! let layout = Arc::new(Layout::compile("jobs", &schema, &["id".into()], 63).unwrap());
//! let mut normalizer = Normalizer::new(layout);
//! let record = json!({"id": 1, "tags": ["a", "b"]});
//! let record = observes_singer::Record::Parsed(record.as_object().unwrap().clone());
//! normalizer.push(&record, &mut IdAllocator::new(1)).unwrap();
//! let batches = normalizer.take_batches();
//! assert_eq!(batches[0].1.num_rows(), 1); // jobs
//! assert_eq!(batches[1].1.num_rows(), 2); // jobs__tags
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod ident;
pub mod infer;
pub mod layout;
pub mod normalize;
pub mod time;
pub mod types;

pub use layout::{
    Column, IncompatibleChange, Layout, SchemaChangePolicy, SchemaError, Table, TableChange,
};
pub use normalize::{arrow_schema, push_line, IdAllocator, InvalidRecord, Normalizer, NotFast};
pub use types::ColumnType;
