//! Column types and how they widen.

use std::fmt;

use arrow_schema::{DataType, TimeUnit};

/// The type of a warehouse column, independent of the warehouse's dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `BOOLEAN`.
    Boolean,
    /// A 64-bit integer.
    BigInt,
    /// A double.
    Double,
    /// Text of any length.
    Text,
    /// An instant, stored in UTC.
    Timestamp,
    /// A calendar date (`format: date`).
    Date,
    /// A time of day (`format: time`).
    Time,
    /// Any JSON value, kept as JSON.
    Json,
}

impl ColumnType {
    /// The narrowest type that holds values of both types without loss, or `None` when
    /// no such type exists (a change the schema-change policy must decide).
    ///
    /// ```
    /// use observes_model::ColumnType::*;
    /// assert_eq!(BigInt.widen(Double), Some(Double));
    /// assert_eq!(Double.widen(Text), Some(Text));
    /// assert_eq!(Date.widen(Timestamp), Some(Timestamp));
    /// assert_eq!(Boolean.widen(Timestamp), None);
    /// ```
    pub fn widen(self, other: ColumnType) -> Option<ColumnType> {
        use ColumnType::*;
        if self == other {
            return Some(self);
        }
        match (self, other) {
            (BigInt, Double) | (Double, BigInt) => Some(Double),
            (Date, Timestamp) | (Timestamp, Date) => Some(Timestamp),
            (Json, _) | (_, Json) => None,
            (Text, _) | (_, Text) => Some(Text),
            _ => None,
        }
    }

    /// The Arrow type the normalizer builds for this column.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Text | ColumnType::Json => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
        }
    }

    /// A stable lowercase name, used in `_observes_schema_versions` and messages.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Boolean => "boolean",
            ColumnType::BigInt => "bigint",
            ColumnType::Double => "double",
            ColumnType::Text => "text",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
            ColumnType::Time => "time",
            ColumnType::Json => "json",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
