//! The normalizer: records of one stream into rows of its tables, as Arrow batches.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field as ArrowField, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use crate::layout::{Accepts, Field, Layout, Table};
use crate::time;
use crate::types::ColumnType;

/// Hands out `_observes_id`s: unique within a warehouse because the high bits are the load's
/// number, which the warehouse assigns.
#[derive(Debug, Clone)]
pub struct IdAllocator {
    load_id: i64,
    next: i64,
}

impl IdAllocator {
    /// Bits for the row counter: 2^36 rows per load.
    const ROW_BITS: u32 = 36;

    pub fn new(load_id: i64) -> Self {
        IdAllocator {
            load_id,
            next: load_id << Self::ROW_BITS,
        }
    }

    pub fn load_id(&self) -> i64 {
        self.load_id
    }

    fn next(&mut self) -> i64 {
        self.next += 1;
        self.next
    }
}

/// A record that contradicts its schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field {field:?}: {reason}")]
pub struct InvalidRecord {
    /// Where in the record (`user.created_at`, `artifacts[2].size`).
    pub field: String,
    pub reason: String,
}

impl InvalidRecord {
    fn new(reason: String) -> Self {
        InvalidRecord {
            field: String::new(),
            reason,
        }
    }

    /// Prefixes the field path with an enclosing property (`user` + `name` → `user.name`).
    fn within(self, property: &str) -> Self {
        self.prefixed(property)
    }

    /// Prefixes the field path with an array index (`[2]` + `size` → `[2].size`).
    fn at_index(self, i: usize) -> Self {
        self.prefixed(&format!("[{i}]"))
    }

    fn prefixed(mut self, segment: &str) -> Self {
        if !(self.field.is_empty() || self.field.starts_with('[')) {
            self.field.insert(0, '.');
        }
        self.field.insert_str(0, segment);
        self
    }
}

/// One value on its way into a column, already converted to the column's type.
#[derive(Debug, Clone, PartialEq)]
enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Owned(String),
    Micros(i64),
    Days(i32),
}

/// Accumulates the rows of every table of one stream.
pub struct Normalizer {
    layout: Arc<Layout>,
    buffers: Vec<TableBuffer>,
    /// Rows of the record being normalized, row-major per table; committed to the buffers
    /// only when the whole record is valid, so a bad record leaves nothing behind.
    scratch: Vec<Vec<Cell<'static>>>,
}

impl fmt::Debug for Normalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Normalizer")
            .field("stream", &self.layout.stream)
            .field("rows", &self.buffered_rows())
            .finish()
    }
}

impl Normalizer {
    pub fn new(layout: Arc<Layout>) -> Self {
        let buffers = layout.tables.iter().map(TableBuffer::new).collect();
        let scratch = layout.tables.iter().map(|_| Vec::new()).collect();
        Normalizer {
            layout,
            buffers,
            scratch,
        }
    }

    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// Rows buffered across all tables.
    pub fn buffered_rows(&self) -> usize {
        self.buffers.iter().map(|b| b.rows).sum()
    }

    /// Root rows buffered.
    pub fn buffered_records(&self) -> usize {
        self.buffers[0].rows
    }

    /// Normalizes one record into the buffers. On error nothing is buffered.
    pub fn push(
        &mut self,
        record: &Map<String, Value>,
        ids: &mut IdAllocator,
    ) -> Result<(), InvalidRecord> {
        // The scratch rows borrow from `record` only for the duration of this call; they
        // are emptied before it returns, so reusing the allocation is sound.
        let mut scratch: Vec<Vec<Cell<'_>>> = std::mem::take(&mut self.scratch)
            .into_iter()
            .map(|mut v| {
                v.clear();
                v.into_iter().map(|_| Cell::Null).collect()
            })
            .collect();
        let result = self.fill(record, ids, &mut scratch);
        if result.is_ok() {
            for (table, rows) in scratch.iter_mut().enumerate() {
                let width = self.layout.tables[table].columns.len();
                self.buffers[table].append_rows(rows, width);
            }
        }
        self.scratch = scratch
            .into_iter()
            .map(|mut v| {
                v.clear();
                v.into_iter().map(|_| Cell::Null).collect()
            })
            .collect();
        result
    }

    fn fill<'a>(
        &self,
        record: &'a Map<String, Value>,
        ids: &mut IdAllocator,
        scratch: &mut [Vec<Cell<'a>>],
    ) -> Result<(), InvalidRecord> {
        let id = ids.next();
        let row = new_row(&self.layout, scratch, 0, ids.load_id, id, None);
        walk_object(
            &self.layout,
            &self.layout.properties,
            record,
            0,
            row,
            id,
            id,
            ids,
            scratch,
        )?;
        for (&col, key) in self
            .layout
            .key_columns
            .iter()
            .zip(&self.layout.key_properties)
        {
            if scratch[0][row + col] == Cell::Null {
                return Err(InvalidRecord {
                    field: key.clone(),
                    reason: "key property is missing or null".into(),
                });
            }
        }
        Ok(())
    }

    /// Takes the buffered rows of every table that has any, as Arrow batches, in table
    /// order (parents before children).
    pub fn take_batches(&mut self) -> Vec<(usize, RecordBatch)> {
        let mut out = Vec::new();
        for (i, buffer) in self.buffers.iter_mut().enumerate() {
            if buffer.rows > 0 {
                out.push((i, buffer.finish(&self.layout.tables[i])));
            }
        }
        out
    }
}

/// Appends an all-null row for `table` with its metadata set; returns its offset.
fn new_row<'a>(
    layout: &Layout,
    scratch: &mut [Vec<Cell<'a>>],
    table: usize,
    load_id: i64,
    id: i64,
    child: Option<(i64, i64, usize)>,
) -> usize {
    let width = layout.tables[table].columns.len();
    let rows = &mut scratch[table];
    let offset = rows.len();
    rows.resize(offset + width, Cell::Null);
    let meta = &layout.meta[table];
    rows[offset + meta.load_id] = Cell::Int(load_id);
    rows[offset + meta.id] = Cell::Int(id);
    if let Some((parent_id, root_id, idx)) = child {
        if let Some(c) = meta.parent_id {
            rows[offset + c] = Cell::Int(parent_id);
        }
        if let Some(c) = meta.root_id {
            rows[offset + c] = Cell::Int(root_id);
        }
        if let Some(c) = meta.list_idx {
            rows[offset + c] = Cell::Int(idx as i64);
        }
    }
    offset
}

#[allow(clippy::too_many_arguments)]
fn walk_object<'a>(
    layout: &Layout,
    properties: &[(String, Field)],
    object: &'a Map<String, Value>,
    table: usize,
    row: usize,
    row_id: i64,
    root_id: i64,
    ids: &mut IdAllocator,
    scratch: &mut [Vec<Cell<'a>>],
) -> Result<(), InvalidRecord> {
    for (key, field) in properties {
        let Some(value) = object.get(key) else {
            continue;
        };
        walk_value(
            layout, field, value, table, row, row_id, root_id, ids, scratch,
        )
        .map_err(|e| e.within(key))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn walk_value<'a>(
    layout: &Layout,
    field: &Field,
    value: &'a Value,
    table: usize,
    row: usize,
    row_id: i64,
    root_id: i64,
    ids: &mut IdAllocator,
    scratch: &mut [Vec<Cell<'a>>],
) -> Result<(), InvalidRecord> {
    if value.is_null() {
        return Ok(());
    }
    match field {
        Field::Scalar { column, accepts } => {
            let ty = layout.tables[table].columns[*column].ty;
            scratch[table][row + column] = convert(value, *accepts, ty)?;
        }
        Field::Json { column } => {
            scratch[table][row + column] = Cell::Owned(value.to_string());
        }
        Field::Object { properties } => match value {
            Value::Object(object) => walk_object(
                layout, properties, object, table, row, row_id, root_id, ids, scratch,
            )?,
            other => {
                return Err(InvalidRecord::new(format!(
                    "expected object or null, got {}",
                    describe(other)
                )))
            }
        },
        Field::Array { table: child, item } => match value {
            Value::Array(items) => {
                for (i, element) in items.iter().enumerate() {
                    let id = ids.next();
                    let child_row = new_row(
                        layout,
                        scratch,
                        *child,
                        ids.load_id,
                        id,
                        Some((row_id, root_id, i)),
                    );
                    walk_value(
                        layout, item, element, *child, child_row, id, root_id, ids, scratch,
                    )
                    .map_err(|e| e.at_index(i))?;
                }
            }
            other => {
                return Err(InvalidRecord::new(format!(
                    "expected array or null, got {}",
                    describe(other)
                )))
            }
        },
    }
    Ok(())
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".into(),
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => return "an array".into(),
        Value::Object(_) => return "an object".into(),
    };
    let mut text = value.to_string();
    if text.len() > 60 {
        let mut cut = 57;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{kind} {text}")
}

fn mismatch(accepts: Accepts, value: &Value) -> InvalidRecord {
    InvalidRecord::new(format!(
        "expected {}, got {}",
        accepts.describe(),
        describe(value)
    ))
}

/// Checks a value against the types its schema allows and converts it to the column's
/// storage type (which may be wider than the schema's after schema evolution).
fn convert<'a>(
    value: &'a Value,
    accepts: Accepts,
    ty: ColumnType,
) -> Result<Cell<'a>, InvalidRecord> {
    match value {
        Value::Null => Ok(Cell::Null),
        Value::Bool(b) => {
            if !accepts.has(Accepts::BOOL) {
                return Err(mismatch(accepts, value));
            }
            Ok(match ty {
                ColumnType::Boolean => Cell::Bool(*b),
                _ => Cell::Owned(b.to_string()),
            })
        }
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if !accepts.has(Accepts::INT) {
                    return Err(mismatch(accepts, value));
                }
                return Ok(match ty {
                    ColumnType::BigInt => Cell::Int(i),
                    ColumnType::Double => Cell::Float(i as f64),
                    _ => Cell::Owned(i.to_string()),
                });
            }
            if n.is_u64() {
                if !accepts.has(Accepts::INT) {
                    return Err(mismatch(accepts, value));
                }
                return match ty {
                    ColumnType::BigInt => Err(InvalidRecord::new(format!(
                        "integer {n} is out of range for a 64-bit integer column"
                    ))),
                    ColumnType::Double => Ok(Cell::Float(n.as_f64().unwrap_or(f64::NAN))),
                    _ => Ok(Cell::Owned(n.to_string())),
                };
            }
            let f = n.as_f64().unwrap_or(f64::NAN);
            let integral = f.fract() == 0.0 && f.abs() < 9.2e18;
            if !(accepts.has(Accepts::NUM) || (accepts.has(Accepts::INT) && integral)) {
                return Err(mismatch(accepts, value));
            }
            Ok(match ty {
                ColumnType::BigInt if integral => Cell::Int(f as i64),
                ColumnType::BigInt => return Err(mismatch(accepts, value)),
                ColumnType::Double => Cell::Float(f),
                _ => Cell::Owned(n.to_string()),
            })
        }
        Value::String(s) => {
            if !accepts.has(Accepts::STR) {
                return Err(mismatch(accepts, value));
            }
            match ty {
                ColumnType::Timestamp => time::parse_timestamp_micros(s)
                    .map(Cell::Micros)
                    .ok_or_else(|| {
                        InvalidRecord::new(format!(
                            "expected a date-time (RFC 3339), got {}",
                            describe(value)
                        ))
                    }),
                ColumnType::Date => time::parse_date_days(s).map(Cell::Days).ok_or_else(|| {
                    InvalidRecord::new(format!(
                        "expected a date (YYYY-MM-DD), got {}",
                        describe(value)
                    ))
                }),
                ColumnType::Time => time::parse_time_micros(s).map(Cell::Micros).ok_or_else(|| {
                    InvalidRecord::new(format!(
                        "expected a time (HH:MM:SS), got {}",
                        describe(value)
                    ))
                }),
                ColumnType::Json => Ok(Cell::Owned(value.to_string())),
                _ => Ok(Cell::Str(s)),
            }
        }
        Value::Array(_) | Value::Object(_) => {
            if ty != ColumnType::Json {
                return Err(mismatch(accepts, value));
            }
            Ok(Cell::Owned(value.to_string()))
        }
    }
}

/// Arrow builders for one table.
struct TableBuffer {
    columns: Vec<ColumnBuffer>,
    rows: usize,
}

enum ColumnBuffer {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
}

impl ColumnBuffer {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Boolean => ColumnBuffer::Bool(BooleanBuilder::new()),
            ColumnType::BigInt => ColumnBuffer::Int(Int64Builder::new()),
            ColumnType::Double => ColumnBuffer::Float(Float64Builder::new()),
            ColumnType::Text | ColumnType::Json => ColumnBuffer::Str(StringBuilder::new()),
            ColumnType::Timestamp => {
                ColumnBuffer::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            ColumnType::Date => ColumnBuffer::Date(Date32Builder::new()),
            ColumnType::Time => ColumnBuffer::Time(Time64MicrosecondBuilder::new()),
        }
    }

    fn push(&mut self, cell: &Cell<'_>) {
        // `convert` produces exactly the cell kind of the column's type; Null fits all.
        match (self, cell) {
            (ColumnBuffer::Bool(b), Cell::Bool(v)) => b.append_value(*v),
            (ColumnBuffer::Int(b), Cell::Int(v)) => b.append_value(*v),
            (ColumnBuffer::Float(b), Cell::Float(v)) => b.append_value(*v),
            (ColumnBuffer::Str(b), Cell::Str(v)) => b.append_value(v),
            (ColumnBuffer::Str(b), Cell::Owned(v)) => b.append_value(v),
            (ColumnBuffer::Timestamp(b), Cell::Micros(v)) => b.append_value(*v),
            (ColumnBuffer::Date(b), Cell::Days(v)) => b.append_value(*v),
            (ColumnBuffer::Time(b), Cell::Micros(v)) => b.append_value(*v),
            (ColumnBuffer::Bool(b), _) => b.append_null(),
            (ColumnBuffer::Int(b), _) => b.append_null(),
            (ColumnBuffer::Float(b), _) => b.append_null(),
            (ColumnBuffer::Str(b), _) => b.append_null(),
            (ColumnBuffer::Timestamp(b), _) => b.append_null(),
            (ColumnBuffer::Date(b), _) => b.append_null(),
            (ColumnBuffer::Time(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuffer::Bool(b) => Arc::new(b.finish()),
            ColumnBuffer::Int(b) => Arc::new(b.finish()),
            ColumnBuffer::Float(b) => Arc::new(b.finish()),
            ColumnBuffer::Str(b) => Arc::new(b.finish()),
            ColumnBuffer::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuffer::Date(b) => Arc::new(b.finish()),
            ColumnBuffer::Time(b) => Arc::new(b.finish()),
        }
    }
}

impl TableBuffer {
    fn new(table: &Table) -> Self {
        TableBuffer {
            columns: table
                .columns
                .iter()
                .map(|c| ColumnBuffer::new(c.ty))
                .collect(),
            rows: 0,
        }
    }

    fn append_rows(&mut self, cells: &[Cell<'_>], width: usize) {
        if width == 0 {
            return;
        }
        for row in cells.chunks_exact(width) {
            for (column, cell) in self.columns.iter_mut().zip(row) {
                column.push(cell);
            }
            self.rows += 1;
        }
    }

    fn finish(&mut self, table: &Table) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnBuffer::finish).collect();
        self.rows = 0;
        // Building from the table's own columns cannot fail: lengths and types match.
        RecordBatch::try_new(arrow_schema(table), arrays)
            .unwrap_or_else(|e| panic!("normalizer built an inconsistent batch: {e}"))
    }
}

/// The Arrow schema of a table's batches.
pub fn arrow_schema(table: &Table) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .columns
            .iter()
            .map(|c| ArrowField::new(&c.name, c.ty.arrow_type(), !c.metadata))
            .collect::<Vec<_>>(),
    ))
}
