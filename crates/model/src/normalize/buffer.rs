//! The column buffers rows are written into, and how they become Arrow arrays.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};

use crate::layout::Table;
use crate::types::ColumnType;

/// One value on its way into a column, already converted to the column's type.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Owned(String),
    Micros(i64),
    Days(i32),
}

/// Empties a scratch buffer and gives it a new lifetime for its cells: sound because an
/// empty vector holds no borrow (and the in-place collect keeps the allocation).
pub(super) fn recycle<'b>(rows: Vec<Vec<Cell<'_>>>) -> Vec<Vec<Cell<'b>>> {
    rows.into_iter()
        .map(|mut v| {
            v.clear();
            v.into_iter().map(|_| Cell::Null).collect()
        })
        .collect()
}

/// The rows of one table, column by column, as they will become Arrow arrays. At most one
/// row is open at a time (rows of a table are made one after another), and rows can be
/// taken back, so an invalid record leaves nothing behind.
pub(super) struct TableBuffer {
    pub(super) columns: Vec<ColumnBuffer>,
    /// Finished rows (an open row is not counted).
    pub(super) rows: usize,
}

pub(super) struct ColumnBuffer {
    values: Values,
    valid: Vec<bool>,
}

enum Values {
    Bool(Vec<bool>),
    /// BIGINT, and TIMESTAMP and TIME as microseconds.
    Int(Vec<i64>),
    Float(Vec<f64>),
    Days(Vec<i32>),
    /// Offsets are pushed when a row finishes (the first one is always 0).
    Text {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
    },
}

impl ColumnBuffer {
    pub(super) fn new(ty: ColumnType) -> Self {
        let values = match ty {
            ColumnType::Boolean => Values::Bool(Vec::new()),
            ColumnType::BigInt | ColumnType::Timestamp | ColumnType::Time => {
                Values::Int(Vec::new())
            }
            ColumnType::Double => Values::Float(Vec::new()),
            ColumnType::Date => Values::Days(Vec::new()),
            ColumnType::Text | ColumnType::Json => Values::Text {
                offsets: vec![0],
                bytes: Vec::new(),
            },
        };
        ColumnBuffer {
            values,
            valid: Vec::new(),
        }
    }

    #[inline]
    pub(super) fn open_row(&mut self) {
        self.valid.push(false);
        match &mut self.values {
            Values::Bool(v) => v.push(false),
            Values::Int(v) => v.push(0),
            Values::Float(v) => v.push(0.0),
            Values::Days(v) => v.push(0),
            Values::Text { .. } => {}
        }
    }

    /// Sets the open row's value. `convert` produces exactly the cell kind of the column's
    /// type (Null fits all and leaves the value null).
    #[inline]
    pub(super) fn set(&mut self, cell: &Cell<'_>) {
        let row = self.valid.len() - 1;
        let set = match (&mut self.values, cell) {
            (Values::Text { offsets, bytes }, Cell::Null) => {
                bytes.truncate(offsets[row] as usize);
                false
            }
            (_, Cell::Null) => false,
            (Values::Bool(v), Cell::Bool(b)) => {
                v[row] = *b;
                true
            }
            (Values::Int(v), Cell::Int(i) | Cell::Micros(i)) => {
                v[row] = *i;
                true
            }
            (Values::Float(v), Cell::Float(f)) => {
                v[row] = *f;
                true
            }
            (Values::Days(v), Cell::Days(d)) => {
                v[row] = *d;
                true
            }
            (Values::Text { offsets, bytes }, Cell::Str(text)) => {
                bytes.truncate(offsets[row] as usize);
                bytes.extend_from_slice(text.as_bytes());
                true
            }
            (Values::Text { offsets, bytes }, Cell::Owned(text)) => {
                bytes.truncate(offsets[row] as usize);
                bytes.extend_from_slice(text.as_bytes());
                true
            }
            (_, other) => unreachable!("convert made {other:?} for another column type"),
        };
        self.valid[row] = set;
    }

    #[inline]
    pub(super) fn close_row(&mut self) {
        if let Values::Text { offsets, bytes } = &mut self.values {
            // The loader takes batches long before a column nears 2 GiB (and `fits`
            // refuses any one value near it), so the offset fits Arrow's i32.
            offsets.push(bytes.len() as i32);
        }
    }

    #[inline]
    pub(super) fn set_int(&mut self, value: i64) {
        if let (Values::Int(v), Some(valid)) = (&mut self.values, self.valid.last_mut()) {
            if let Some(slot) = v.last_mut() {
                *slot = value;
                *valid = true;
            }
        }
    }

    #[inline]
    pub(super) fn set_float(&mut self, value: f64) {
        if let (Values::Float(v), Some(valid)) = (&mut self.values, self.valid.last_mut()) {
            if let Some(slot) = v.last_mut() {
                *slot = value;
                *valid = true;
            }
        }
    }

    #[inline]
    pub(super) fn set_text(&mut self, text: &str) {
        if let (Values::Text { bytes, .. }, Some(valid)) = (&mut self.values, self.valid.last_mut())
        {
            bytes.extend_from_slice(text.as_bytes());
            *valid = true;
        }
    }

    pub(super) fn is_set(&self) -> bool {
        self.valid.last().copied().unwrap_or(false)
    }

    /// Appends the finished rows of `other`, a buffer of the same type, adding `shift` to
    /// integer values (ids); neither may have an open row.
    pub(super) fn extend(&mut self, other: &ColumnBuffer, shift: i64) {
        self.valid.extend_from_slice(&other.valid);
        match (&mut self.values, &other.values) {
            (Values::Bool(v), Values::Bool(w)) => v.extend_from_slice(w),
            (Values::Int(v), Values::Int(w)) if shift == 0 => v.extend_from_slice(w),
            (Values::Int(v), Values::Int(w)) => v.extend(w.iter().map(|i| i + shift)),
            (Values::Float(v), Values::Float(w)) => v.extend_from_slice(w),
            (Values::Days(v), Values::Days(w)) => v.extend_from_slice(w),
            (
                Values::Text { offsets, bytes },
                Values::Text {
                    offsets: more,
                    bytes: text,
                },
            ) => {
                // Offsets stay far below i32::MAX: the loader takes batches long before.
                let base = bytes.len() as i32;
                offsets.extend(more[1..].iter().map(|o| o + base));
                bytes.extend_from_slice(text);
            }
            _ => unreachable!("buffers of one layout's column differ in type"),
        }
    }

    pub(super) fn truncate(&mut self, rows: usize) {
        self.valid.truncate(rows);
        match &mut self.values {
            Values::Bool(v) => v.truncate(rows),
            Values::Int(v) => v.truncate(rows),
            Values::Float(v) => v.truncate(rows),
            Values::Days(v) => v.truncate(rows),
            Values::Text { offsets, bytes } => {
                offsets.truncate(rows + 1);
                bytes.truncate(offsets[rows] as usize);
            }
        }
    }

    pub(super) fn bytes(&self) -> usize {
        self.valid.len()
            * match &self.values {
                Values::Bool(_) => 2,
                Values::Days(_) => 5,
                Values::Int(_) | Values::Float(_) => 9,
                Values::Text { .. } => 5,
            }
            + match &self.values {
                Values::Text { bytes, .. } => bytes.len(),
                _ => 0,
            }
    }

    pub(super) fn finish(&mut self, ty: ColumnType) -> ArrayRef {
        let rows = self.valid.len();
        let valid = std::mem::replace(&mut self.valid, Vec::with_capacity(rows + rows / 4));
        let nulls = if valid.iter().all(|v| *v) {
            None
        } else {
            Some(NullBuffer::from(valid))
        };
        // The next batch is about as big: room for it (and some) up front.
        fn take<T>(v: &mut Vec<T>) -> Vec<T> {
            let capacity = v.len() + v.len() / 4;
            std::mem::replace(v, Vec::with_capacity(capacity))
        }
        match &mut self.values {
            Values::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(take(v)), nulls)),
            Values::Int(v) => {
                let values = ScalarBuffer::from(take(v));
                match ty {
                    ColumnType::Timestamp => {
                        Arc::new(TimestampMicrosecondArray::new(values, nulls).with_timezone("UTC"))
                    }
                    ColumnType::Time => Arc::new(Time64MicrosecondArray::new(values, nulls)),
                    _ => Arc::new(Int64Array::new(values, nulls)),
                }
            }
            Values::Float(v) => Arc::new(Float64Array::new(ScalarBuffer::from(take(v)), nulls)),
            Values::Days(v) => Arc::new(Date32Array::new(ScalarBuffer::from(take(v)), nulls)),
            Values::Text { offsets, bytes } => {
                let mut next = Vec::with_capacity(rows + rows / 4 + 1);
                next.push(0);
                let offsets = std::mem::replace(offsets, next);
                let bytes = take(bytes);
                // SAFETY: every value appended was a `&str` or `String`, so the bytes are
                // UTF-8 and each offset ends a whole value; offsets start at 0 and grow.
                Arc::new(unsafe {
                    StringArray::new_unchecked(
                        OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                        Buffer::from_vec(bytes),
                        nulls,
                    )
                })
            }
        }
    }
}

impl TableBuffer {
    pub(super) fn new(table: &Table) -> Self {
        TableBuffer {
            columns: table
                .columns
                .iter()
                .map(|c| ColumnBuffer::new(c.ty))
                .collect(),
            rows: 0,
        }
    }

    #[inline]
    pub(super) fn open_row(&mut self) {
        for column in &mut self.columns {
            column.open_row();
        }
    }

    #[inline]
    pub(super) fn close_row(&mut self) {
        for column in &mut self.columns {
            column.close_row();
        }
        self.rows += 1;
    }

    /// Drops rows (and an open row) beyond `rows`.
    pub(super) fn truncate(&mut self, rows: usize) {
        for column in &mut self.columns {
            column.truncate(rows);
        }
        self.rows = rows;
    }

    pub(super) fn append_rows(&mut self, cells: &[Cell<'_>], width: usize) {
        if width == 0 {
            return;
        }
        for row in cells.chunks_exact(width) {
            self.open_row();
            for (column, cell) in self.columns.iter_mut().zip(row) {
                column.set(cell);
            }
            self.close_row();
        }
    }

    pub(super) fn finish(&mut self, table: &Table) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .zip(&table.columns)
            .map(|(buffer, column)| buffer.finish(column.ty))
            .collect();
        self.rows = 0;
        // Building from the table's own columns cannot fail: lengths and types match.
        RecordBatch::try_new(super::arrow_schema(table), arrays)
            .unwrap_or_else(|e| panic!("normalizer built an inconsistent batch: {e}"))
    }
}
