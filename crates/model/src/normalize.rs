//! The normalizer: records of one stream into rows of its tables, as Arrow batches.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ::arrow_schema::{Field as ArrowField, Schema, SchemaRef};
use arrow_array::RecordBatch;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use std::borrow::Cow;

use observes_singer::json::{self, Bail};
use observes_singer::Record;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

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

    /// Continues this allocator's sequence with the ids `ahead` handed out: `ahead` is a
    /// new allocator of the same load that normalized later records on another thread.
    /// Returns what to add to its ids (see [`Normalizer::absorb`]).
    pub fn take_over(&mut self, ahead: &IdAllocator) -> i64 {
        debug_assert_eq!(self.load_id, ahead.load_id);
        let start = self.load_id << Self::ROW_BITS;
        let shift = self.next - start;
        self.next += ahead.next - start;
        shift
    }
}

/// A record that contradicts its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidRecord {
    /// Where in the record (`user.created_at`, `artifacts[2].size`).
    pub field: String,
    pub reason: String,
    /// For JSON that cannot be read (a number out of range, nesting too deep): the byte
    /// column where reading stopped, 1-based, counted from the start of the record's text
    /// (the loader counts it from the start of the input line).
    pub column: Option<usize>,
}

impl std::fmt::Display for InvalidRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {:?}: {}", self.field, self.reason)?;
        if let Some(column) = self.column {
            write!(f, " at column {column}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidRecord {}

impl InvalidRecord {
    fn new(reason: String) -> Self {
        InvalidRecord {
            field: String::new(),
            reason,
            column: None,
        }
    }

    /// A serde_json error met while reading the record's JSON, with its position taken out
    /// of the text (serde's own `at line 1 column N` counts within the record).
    fn unreadable(message: &str) -> Self {
        let (reason, column) = match message.rsplit_once(" at line ") {
            Some((reason, position)) => {
                let column = position
                    .split_once(" column ")
                    .and_then(|(_, c)| c.parse::<usize>().ok());
                (reason.to_string(), column)
            }
            None => (message.to_string(), None),
        };
        InvalidRecord {
            field: String::new(),
            reason,
            column,
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

/// Where a [`Normalizer`] stood, to undo a record (see [`Normalizer::push_json`]).
#[derive(Debug, Clone)]
pub struct Mark {
    rows: Vec<usize>,
    next_id: i64,
}

/// Accumulates the rows of every table of one stream.
pub struct Normalizer {
    layout: Arc<Layout>,
    plan: Plan,
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

/// Empties a scratch buffer and gives it a new lifetime for its cells: sound because an
/// empty vector holds no borrow (and the in-place collect keeps the allocation).
fn recycle<'b>(rows: Vec<Vec<Cell<'_>>>) -> Vec<Vec<Cell<'b>>> {
    rows.into_iter()
        .map(|mut v| {
            v.clear();
            v.into_iter().map(|_| Cell::Null).collect()
        })
        .collect()
}

impl Normalizer {
    pub fn new(layout: Arc<Layout>) -> Self {
        let buffers = layout.tables.iter().map(TableBuffer::new).collect();
        let scratch = layout.tables.iter().map(|_| Vec::new()).collect();
        Normalizer {
            plan: Plan::object(&layout, 0, &layout.properties),
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

    /// Bytes the buffered rows take, roughly (what they will take as Arrow arrays).
    pub fn buffered_bytes(&self) -> usize {
        self.buffers
            .iter()
            .flat_map(|b| &b.columns)
            .map(ColumnBuffer::bytes)
            .sum()
    }

    /// Normalizes one record into the buffers. On error nothing is buffered.
    pub fn push(&mut self, record: &Record, ids: &mut IdAllocator) -> Result<(), InvalidRecord> {
        if let Record::Raw(raw) = record {
            let mark = self.mark(ids);
            let mut c = json::Cursor::new(raw.get());
            if self.push_json(&mut c, ids).is_ok() && c.at_end() {
                return Ok(());
            }
            // Off the fast path: undo what it wrote and let serde decide.
            self.undo(mark, ids);
        }
        self.push_slow(record, ids)
    }

    /// The fast path of [`Normalizer::push`]: reads the record object at the cursor
    /// straight into the buffers, checking its JSON as strictly as the cursor does. On a
    /// bail the caller must [`Normalizer::undo`] to a [`Normalizer::mark`] taken before,
    /// then push the record the slow way (which decides whether it is valid and why not).
    pub fn push_json(&mut self, c: &mut json::Cursor<'_>, ids: &mut IdAllocator) -> json::Fast<()> {
        Fast {
            layout: &self.layout,
            plan: &self.plan,
            ids,
            buffers: &mut self.buffers,
        }
        .record(c)
    }

    /// Where the buffers and ids stand, to [`Normalizer::undo`] a failed fast path.
    pub fn mark(&self, ids: &IdAllocator) -> Mark {
        Mark {
            rows: self.buffers.iter().map(|b| b.rows).collect(),
            next_id: ids.next,
        }
    }

    /// Drops everything buffered since `mark`.
    pub fn undo(&mut self, mark: Mark, ids: &mut IdAllocator) {
        for (buffer, rows) in self.buffers.iter_mut().zip(mark.rows) {
            buffer.truncate(rows);
        }
        ids.next = mark.next_id;
    }

    /// [`Normalizer::push`] by `serde`, the reference the fast path follows.
    /// [`Normalizer::push`] by the serde walk alone: the reference the fast path is held
    /// to (the differential tests and the fuzz target compare the two).
    pub fn push_slow(
        &mut self,
        record: &Record,
        ids: &mut IdAllocator,
    ) -> Result<(), InvalidRecord> {
        let mut scratch = recycle(std::mem::take(&mut self.scratch));
        let result = match record {
            Record::Raw(raw) => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                fill(&self.layout, &mut de, ids, &mut scratch)
            }
            Record::Parsed(map) => fill(&self.layout, map, ids, &mut scratch),
        };
        if result.is_ok() {
            for (table, rows) in scratch.iter().enumerate() {
                let width = self.layout.tables[table].columns.len();
                self.buffers[table].append_rows(rows, width);
            }
        }
        self.scratch = recycle(scratch);
        result
    }

    /// Appends the rows `ahead` buffered (a normalizer of the same layout, run on other
    /// records by another thread), adding `id_shift` to their ids (from
    /// [`IdAllocator::take_over`]), and empties `ahead`. The buffers end up as if this
    /// normalizer had read those records itself. `false`, with nothing moved, when the
    /// layouts differ.
    pub fn absorb(&mut self, ahead: &mut Normalizer, id_shift: i64) -> bool {
        if !Arc::ptr_eq(&self.layout, &ahead.layout) {
            return false;
        }
        for ((mine, theirs), meta) in self
            .buffers
            .iter_mut()
            .zip(&mut ahead.buffers)
            .zip(&self.layout.meta)
        {
            let ids = [Some(meta.id), meta.parent_id, meta.root_id];
            for (c, (column, from)) in mine.columns.iter_mut().zip(&theirs.columns).enumerate() {
                let shift = if ids.contains(&Some(c)) { id_shift } else { 0 };
                column.extend(from, shift);
            }
            mine.rows += theirs.rows;
        }
        ahead.clear();
        true
    }

    /// Drops every buffered row, keeping the buffers' room.
    pub fn clear(&mut self) {
        for buffer in &mut self.buffers {
            buffer.truncate(0);
        }
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

/// Walks one record with `de`, writing its rows into `scratch`.
fn fill<'de, D>(
    layout: &Layout,
    de: D,
    ids: &mut IdAllocator,
    scratch: &mut [Vec<Cell<'de>>],
) -> Result<(), InvalidRecord>
where
    D: Deserializer<'de>,
{
    let id = ids.next();
    let row = new_row(layout, scratch, 0, ids.load_id, id, None);
    let mut ctx = Ctx {
        layout,
        ids,
        scratch,
        error: None,
    };
    let seed = ObjectSeed {
        ctx: &mut ctx,
        properties: &layout.properties,
        table: 0,
        row,
        row_id: id,
        root_id: id,
    };
    if let Err(e) = seed.deserialize(de) {
        return Err(ctx
            .error
            .take()
            .unwrap_or_else(|| InvalidRecord::unreadable(&e.to_string())));
    }
    for (&col, key) in layout.key_columns.iter().zip(&layout.key_properties) {
        if ctx.scratch[0][row + col] == Cell::Null {
            return Err(InvalidRecord {
                field: key.clone(),
                reason: "key property is missing or null".into(),
                column: None,
            });
        }
    }
    Ok(())
}

/// Appends an all-null row for `table` with its metadata set; returns its offset.
fn new_row(
    layout: &Layout,
    scratch: &mut [Vec<Cell<'_>>],
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

/// What the walk shares: where rows go, and the first invalid value met (serde's error
/// type cannot carry it, so it waits here while the error unwinds).
struct Ctx<'c, 'de> {
    layout: &'c Layout,
    ids: &'c mut IdAllocator,
    scratch: &'c mut [Vec<Cell<'de>>],
    error: Option<InvalidRecord>,
}

impl Ctx<'_, '_> {
    fn fail<E: de::Error>(&mut self, invalid: InvalidRecord) -> E {
        self.error = Some(invalid);
        E::custom("invalid record")
    }

    /// Adds a path segment to the pending error as it unwinds through a property.
    fn within<E: fmt::Display>(
        &mut self,
        result: Result<(), E>,
        segment: impl FnOnce(InvalidRecord) -> InvalidRecord,
    ) -> Result<(), E> {
        if let Err(e) = &result {
            // Either ours (set where it arose) or the JSON reader's, met inside this
            // property: both get the property's path as they unwind.
            let inner = self
                .error
                .take()
                .unwrap_or_else(|| InvalidRecord::unreadable(&e.to_string()));
            self.error = Some(segment(inner));
        }
        result
    }
}

/// A JSON value as the scalar visitor sees it.
enum Scalar<'de> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(&'de str),
    String(String),
    Object,
    Array,
}

impl Scalar<'_> {
    fn describe(&self) -> String {
        let (kind, text) = match self {
            Scalar::Null => return "null".into(),
            Scalar::Bool(b) => ("boolean", b.to_string()),
            Scalar::I64(i) => ("integer", i.to_string()),
            Scalar::U64(u) => ("integer", u.to_string()),
            Scalar::F64(f) => (
                "number",
                serde_json::Number::from_f64(*f).map_or_else(|| f.to_string(), |n| n.to_string()),
            ),
            Scalar::Str(s) => ("string", serde_json::Value::from(*s).to_string()),
            Scalar::String(s) => ("string", serde_json::Value::from(s.as_str()).to_string()),
            Scalar::Object => return "an object".into(),
            Scalar::Array => return "an array".into(),
        };
        let mut text = text;
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
}

fn mismatch(accepts: Accepts, value: &Scalar<'_>) -> InvalidRecord {
    InvalidRecord::new(format!(
        "expected {}, got {}",
        accepts.describe(),
        value.describe()
    ))
}

/// Checks a scalar against the types its schema allows and converts it to the column's
/// storage type (which may be wider than the schema's after schema evolution).
fn convert<'de>(
    value: Scalar<'de>,
    accepts: Accepts,
    ty: ColumnType,
) -> Result<Cell<'de>, InvalidRecord> {
    match value {
        Scalar::Null => Ok(Cell::Null),
        Scalar::Bool(b) => {
            if !accepts.has(Accepts::BOOL) {
                return Err(mismatch(accepts, &value));
            }
            Ok(match ty {
                ColumnType::Boolean => Cell::Bool(b),
                ColumnType::Json | ColumnType::Text => Cell::Owned(b.to_string()),
                _ => return Err(mismatch(accepts, &value)),
            })
        }
        Scalar::I64(i) => {
            if !accepts.has(Accepts::INT) {
                return Err(mismatch(accepts, &value));
            }
            Ok(match ty {
                ColumnType::BigInt => Cell::Int(i),
                ColumnType::Double => Cell::Float(i as f64),
                _ => Cell::Owned(i.to_string()),
            })
        }
        Scalar::U64(u) => {
            if !accepts.has(Accepts::INT) {
                return Err(mismatch(accepts, &value));
            }
            match ty {
                ColumnType::BigInt => Err(InvalidRecord::new(format!(
                    "integer {u} is out of range for a 64-bit integer column"
                ))),
                ColumnType::Double => Ok(Cell::Float(u as f64)),
                _ => Ok(Cell::Owned(u.to_string())),
            }
        }
        Scalar::F64(f) => {
            // Written with a fraction or an exponent (`3.0`, `1e3`): an integer only where
            // every integer is a double, so the value read is the value written. Past 2^53
            // `9007199254740993.0` reads as ...992: a silently changed number.
            let integral = f.fract() == 0.0 && f.abs() < EXACT_DOUBLE_INTEGERS;
            if !(accepts.has(Accepts::NUM) || (accepts.has(Accepts::INT) && integral)) {
                if accepts.has(Accepts::INT) && f.fract() == 0.0 {
                    return Err(InvalidRecord::new(format!(
                        "{} cannot be read exactly as an integer: written with a fraction or an \
                         exponent, only integers below 2^53 are (write it without \".0\")",
                        value.describe()
                    )));
                }
                return Err(mismatch(accepts, &value));
            }
            Ok(match ty {
                ColumnType::BigInt if integral => Cell::Int(f as i64),
                ColumnType::BigInt => return Err(mismatch(accepts, &value)),
                ColumnType::Double => Cell::Float(f),
                _ => Cell::Owned(
                    serde_json::Number::from_f64(f)
                        .map_or_else(|| f.to_string(), |n| n.to_string()),
                ),
            })
        }
        Scalar::Str(_) | Scalar::String(_) => {
            if !accepts.has(Accepts::STR) {
                return Err(mismatch(accepts, &value));
            }
            let s: &str = match &value {
                Scalar::Str(s) => s,
                Scalar::String(s) => s,
                _ => "",
            };
            let parsed = match ty {
                ColumnType::Timestamp => time::parse_timestamp_micros(s)
                    .map(Cell::Micros)
                    .ok_or("a date-time (RFC 3339)"),
                ColumnType::Date => time::parse_date_days(s)
                    .map(Cell::Days)
                    .ok_or("a date (YYYY-MM-DD)"),
                ColumnType::Time => time::parse_time_micros(s)
                    .map(Cell::Micros)
                    .ok_or("a time (HH:MM:SS)"),
                ColumnType::Json => Ok(Cell::Owned(serde_json::Value::from(s).to_string())),
                _ => Err(""),
            };
            match parsed {
                Ok(cell) => Ok(cell),
                Err("") => Ok(match value {
                    Scalar::Str(s) => Cell::Str(s),
                    Scalar::String(s) => Cell::Owned(s),
                    _ => Cell::Null,
                }),
                Err(what) => Err(InvalidRecord::new(format!(
                    "expected {what}, got {}",
                    value.describe()
                ))),
            }
        }
        Scalar::Object | Scalar::Array => Err(mismatch(accepts, &value)),
    }
}

/// 2^53: below it every integer is exactly a double.
const EXACT_DOUBLE_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// Longest text value a batch takes (Arrow's offsets are 32-bit).
const MAX_BATCH_TEXT: usize = 1 << 30;

/// A text value longer than the warehouse stores is bad input, never cut.
fn fits(cell: Cell<'_>, max_bytes: Option<usize>) -> Result<Cell<'_>, InvalidRecord> {
    let len = match &cell {
        Cell::Str(s) => s.len(),
        Cell::Owned(s) => s.len(),
        _ => return Ok(cell),
    };
    let max_bytes = Some(max_bytes.map_or(MAX_BATCH_TEXT, |m| m.min(MAX_BATCH_TEXT)));
    match max_bytes {
        Some(max) if len > max => Err(InvalidRecord::new(format!(
            "a text of {len} bytes is longer than the warehouse stores ({max} bytes)"
        ))),
        _ => Ok(cell),
    }
}

/// Reads one scalar (an object or array is reported as such, not read).
struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(i64::try_from(v).map_or(Scalar::U64(v), Scalar::I64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::String(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
}

/// Objects with more properties than this are looked up by a hash index when a record
/// lists them out of schema order.
const WIDE_OBJECT: usize = 32;

/// A key, borrowed from the input when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// One value of a field, written where the field says.
struct FieldSeed<'x, 'c, 'de> {
    ctx: &'x mut Ctx<'c, 'de>,
    field: &'c Field,
    table: usize,
    row: usize,
    row_id: i64,
    root_id: i64,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let FieldSeed {
            ctx,
            field,
            table,
            row,
            row_id,
            root_id,
        } = self;
        match field {
            Field::Scalar { column, accepts } => {
                let ty = ctx.layout.tables[table].columns[*column].ty;
                let value = d.deserialize_any(ScalarVisitor)?;
                match convert(value, *accepts, ty)
                    .and_then(|cell| fits(cell, ctx.layout.max_text_bytes))
                {
                    Ok(cell) => {
                        ctx.scratch[table][row + column] = cell;
                        Ok(())
                    }
                    Err(invalid) => Err(ctx.fail(invalid)),
                }
            }
            Field::Json { column } => {
                let value = serde_json::Value::deserialize(d)?;
                if !value.is_null() {
                    ctx.scratch[table][row + column] = Cell::Owned(value.to_string());
                }
                Ok(())
            }
            Field::Object { properties } => d.deserialize_any(ObjectSeed {
                ctx,
                properties,
                table,
                row,
                row_id,
                root_id,
            }),
            Field::Array { table: child, item } => d.deserialize_any(ArrayVisitor {
                ctx,
                item,
                table: *child,
                parent_id: row_id,
                root_id,
            }),
        }
    }
}

/// An object flattened into the current row.
struct ObjectSeed<'x, 'c, 'de> {
    ctx: &'x mut Ctx<'c, 'de>,
    properties: &'c [(String, Field)],
    table: usize,
    row: usize,
    row_id: i64,
    root_id: i64,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen_nested = Vec::new();
        // Records mostly list properties in schema order: the next one is tried first. A
        // wide object out of order gets a hash index, so a record of n keys costs O(n),
        // not O(n^2) (a SaaS object can have thousands of fields).
        let mut hint = 0;
        let mut by_name: Option<HashMap<&str, usize>> = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let found = match self.properties.get(hint) {
                Some((name, _)) if *name == key => Some(hint),
                _ if self.properties.len() > WIDE_OBJECT => by_name
                    .get_or_insert_with(|| {
                        self.properties
                            .iter()
                            .enumerate()
                            .map(|(i, (name, _))| (name.as_str(), i))
                            .collect()
                    })
                    .get(&*key)
                    .copied(),
                _ => self.properties.iter().position(|(name, _)| *name == key),
            };
            if let Some(i) = found {
                hint = i + 1;
            }
            let Some(index) = found else {
                // Properties the schema does not declare are not loaded.
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let field = &self.properties[index].1;
            if !matches!(field, Field::Scalar { .. } | Field::Json { .. }) {
                if seen_nested.contains(&index) {
                    return Err(self
                        .ctx
                        .fail(InvalidRecord::new("duplicate key in object".into()).within(&key)));
                }
                seen_nested.push(index);
            }
            let result = map.next_value_seed(FieldSeed {
                ctx: &mut *self.ctx,
                field,
                table: self.table,
                row: self.row,
                row_id: self.row_id,
                root_id: self.root_id,
            });
            self.ctx.within(result, |e| e.within(&key))?;
        }
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.not_an_object(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.not_an_object(Scalar::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.not_an_object(Scalar::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.not_an_object(Scalar::F64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.not_an_object(Scalar::String(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        self.not_an_object(Scalar::Array)
    }
}

impl ObjectSeed<'_, '_, '_> {
    fn not_an_object<E: de::Error>(self, value: Scalar<'_>) -> Result<(), E> {
        Err(self.ctx.fail(InvalidRecord::new(format!(
            "expected object or null, got {}",
            value.describe()
        ))))
    }
}

/// An array: one child row per element.
struct ArrayVisitor<'x, 'c, 'de> {
    ctx: &'x mut Ctx<'c, 'de>,
    item: &'c Field,
    table: usize,
    parent_id: i64,
    root_id: i64,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let element = ElementSeed {
                ctx: &mut *self.ctx,
                item: self.item,
                table: self.table,
                parent_id: self.parent_id,
                root_id: self.root_id,
                index,
            };
            let result = seq.next_element_seed(element);
            match result {
                Ok(Some(())) => index += 1,
                Ok(None) => return Ok(()),
                Err(e) => {
                    return self.ctx.within(Err(e), |err| err.at_index(index));
                }
            }
        }
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.not_an_array(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.not_an_array(Scalar::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.not_an_array(Scalar::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.not_an_array(Scalar::F64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.not_an_array(Scalar::String(v.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        self.not_an_array(Scalar::Object)
    }
}

impl ArrayVisitor<'_, '_, '_> {
    fn not_an_array<E: de::Error>(self, value: Scalar<'_>) -> Result<(), E> {
        Err(self.ctx.fail(InvalidRecord::new(format!(
            "expected array or null, got {}",
            value.describe()
        ))))
    }
}

/// One array element: its child row is made only when the element exists.
struct ElementSeed<'x, 'c, 'de> {
    ctx: &'x mut Ctx<'c, 'de>,
    item: &'c Field,
    table: usize,
    parent_id: i64,
    root_id: i64,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for ElementSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let ctx = self.ctx;
        let id = ctx.ids.next();
        let load_id = ctx.ids.load_id;
        let row = new_row(
            ctx.layout,
            ctx.scratch,
            self.table,
            load_id,
            id,
            Some((self.parent_id, self.root_id, self.index)),
        );
        FieldSeed {
            ctx,
            field: self.item,
            table: self.table,
            row,
            row_id: id,
            root_id: self.root_id,
        }
        .deserialize(d)
    }
}

/// How the fast path reads a field: the layout's [`Field`] with what it looks up
/// resolved ahead (the column's type; keys as bytes).
enum Plan {
    Scalar {
        column: usize,
        accepts: Accepts,
        ty: ColumnType,
    },
    Json {
        column: usize,
    },
    Object {
        properties: Vec<(Box<[u8]>, Plan)>,
    },
    Array {
        table: usize,
        item: Box<Plan>,
    },
}

impl Plan {
    fn of(layout: &Layout, table: usize, field: &Field) -> Plan {
        match field {
            Field::Scalar { column, accepts } => Plan::Scalar {
                column: *column,
                accepts: *accepts,
                ty: layout.tables[table].columns[*column].ty,
            },
            Field::Json { column } => Plan::Json { column: *column },
            Field::Object { properties } => Plan::object(layout, table, properties),
            Field::Array { table: child, item } => Plan::Array {
                table: *child,
                item: Box::new(Plan::of(layout, *child, item)),
            },
        }
    }

    fn object(layout: &Layout, table: usize, properties: &[(String, Field)]) -> Plan {
        Plan::Object {
            properties: properties
                .iter()
                .map(|(name, field)| {
                    (
                        name.as_bytes().to_vec().into_boxed_slice(),
                        Plan::of(layout, table, field),
                    )
                })
                .collect(),
        }
    }
}

/// Byte equality without a library call for the short strings keys are.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The fast path of [`Normalizer::push`] for records as read: the JSON text is walked
/// once by the layout, values go straight into the column buffers. Anything it does not
/// handle exactly as the serde walk does (an error of any kind, escaped keys, duplicate
/// keys) bails, and the caller undoes its writes and runs the serde walk.
struct Fast<'a> {
    layout: &'a Layout,
    plan: &'a Plan,
    ids: &'a mut IdAllocator,
    buffers: &'a mut [TableBuffer],
}

impl Fast<'_> {
    /// The record object at the cursor, which ends up just past it.
    fn record(&mut self, c: &mut json::Cursor<'_>) -> json::Fast<()> {
        let id = self.ids.next();
        self.open_row(0, id, None);
        if c.peek() != Some(b'{') {
            return Err(Bail);
        }
        let Plan::Object { properties } = self.plan else {
            return Err(Bail);
        };
        self.object(c, properties, 0, id, id, 1)?;
        // A missing key is an error the serde walk words.
        for &col in &self.layout.key_columns {
            if !self.buffers[0].columns[col].is_set() {
                return Err(Bail);
            }
        }
        self.buffers[0].close_row();
        Ok(())
    }

    #[inline]
    fn open_row(&mut self, table: usize, id: i64, child: Option<(i64, i64, usize)>) {
        let buffer = &mut self.buffers[table];
        buffer.open_row();
        let meta = &self.layout.meta[table];
        buffer.columns[meta.load_id].set_int(self.ids.load_id);
        buffer.columns[meta.id].set_int(id);
        if let Some((parent_id, root_id, idx)) = child {
            if let Some(c) = meta.parent_id {
                buffer.columns[c].set_int(parent_id);
            }
            if let Some(c) = meta.root_id {
                buffer.columns[c].set_int(root_id);
            }
            if let Some(c) = meta.list_idx {
                buffer.columns[c].set_int(idx as i64);
            }
        }
    }

    /// An object flattened into the open row of `table`; the cursor is at its `{`.
    fn object(
        &mut self,
        c: &mut json::Cursor<'_>,
        properties: &[(Box<[u8]>, Plan)],
        table: usize,
        row_id: i64,
        root_id: i64,
        depth: usize,
    ) -> json::Fast<()> {
        if depth > json::MAX_DEPTH || properties.len() > 256 {
            return Err(Bail);
        }
        c.expect(b'{')?;
        if c.eat(b'}') {
            return Ok(());
        }
        let mut seen = [0u64; 4];
        let mut hint = 0;
        loop {
            let key = c.plain_string()?.as_bytes();
            c.expect(b':')?;
            // Records mostly list properties in schema order: try the next one first.
            let index = match properties.get(hint) {
                Some((name, _)) if same(name, key) => Some(hint),
                _ => properties.iter().position(|(name, _)| same(name, key)),
            };
            match index {
                None => {
                    c.skip_value(depth)?;
                }
                Some(i) => {
                    let bit = 1u64 << (i % 64);
                    if seen[i / 64] & bit != 0 {
                        return Err(Bail);
                    }
                    seen[i / 64] |= bit;
                    hint = i + 1;
                    self.field(c, &properties[i].1, table, row_id, root_id, depth)?;
                }
            }
            if !c.eat(b',') {
                return c.expect(b'}');
            }
        }
    }

    #[inline]
    fn field(
        &mut self,
        c: &mut json::Cursor<'_>,
        plan: &Plan,
        table: usize,
        row_id: i64,
        root_id: i64,
        depth: usize,
    ) -> json::Fast<()> {
        match plan {
            Plan::Scalar {
                column,
                accepts,
                ty,
            } => self.scalar(c, table, *column, *accepts, *ty),
            Plan::Json { column } => {
                let start = c.skip_value(depth)?;
                let text = c.slice(start, c.pos());
                if text != "null" {
                    // Exactly what the serde walk stores: the value re-serialized.
                    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| Bail)?;
                    let cell = fits(Cell::Owned(value.to_string()), self.layout.max_text_bytes)
                        .map_err(|_| Bail)?;
                    self.buffers[table].columns[*column].set(&cell);
                }
                Ok(())
            }
            Plan::Object { properties } => match c.peek() {
                Some(b'{') => self.object(c, properties, table, row_id, root_id, depth + 1),
                Some(b'n') if c.literal(b"null") => Ok(()),
                _ => Err(Bail),
            },
            Plan::Array { table: child, item } => match c.peek() {
                Some(b'[') if depth < json::MAX_DEPTH => {
                    c.expect(b'[')?;
                    if c.eat(b']') {
                        return Ok(());
                    }
                    let mut index = 0;
                    loop {
                        let id = self.ids.next();
                        self.open_row(*child, id, Some((row_id, root_id, index)));
                        self.field(c, item, *child, id, root_id, depth + 1)?;
                        self.buffers[*child].close_row();
                        index += 1;
                        if !c.eat(b',') {
                            return c.expect(b']');
                        }
                    }
                }
                Some(b'n') if c.literal(b"null") => Ok(()),
                _ => Err(Bail),
            },
        }
    }

    /// One scalar. The common pairs of JSON value and column type are stored directly;
    /// every other pair goes through `convert`, like the serde walk.
    #[inline]
    fn scalar(
        &mut self,
        c: &mut json::Cursor<'_>,
        table: usize,
        column: usize,
        accepts: Accepts,
        ty: ColumnType,
    ) -> json::Fast<()> {
        let max_text = self.layout.max_text_bytes;
        let out = &mut self.buffers[table].columns[column];
        let value = match c.peek() {
            Some(b'"') => {
                let text = c.string()?;
                if accepts.has(Accepts::STR) {
                    match ty {
                        ColumnType::Text => {
                            if text.len() > max_text.unwrap_or(MAX_BATCH_TEXT).min(MAX_BATCH_TEXT) {
                                return Err(Bail);
                            }
                            out.set_text(&text);
                            return Ok(());
                        }
                        ColumnType::Timestamp => {
                            out.set_int(time::parse_timestamp_micros(&text).ok_or(Bail)?);
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                match text {
                    Cow::Borrowed(s) => Scalar::Str(s),
                    Cow::Owned(s) => Scalar::String(s),
                }
            }
            Some(b'n') if c.literal(b"null") => return Ok(()),
            Some(b't') if c.literal(b"true") => Scalar::Bool(true),
            Some(b'f') if c.literal(b"false") => Scalar::Bool(false),
            Some(b'{' | b'[') | None => return Err(Bail),
            Some(_) => match c.number()? {
                json::Number::I64(i) => {
                    if accepts.has(Accepts::INT) {
                        match ty {
                            ColumnType::BigInt => {
                                out.set_int(i);
                                return Ok(());
                            }
                            ColumnType::Double => {
                                out.set_float(i as f64);
                                return Ok(());
                            }
                            _ => {}
                        }
                    }
                    Scalar::I64(i)
                }
                json::Number::U64(u) => Scalar::U64(u),
                json::Number::F64(f) => {
                    if ty == ColumnType::Double && accepts.has(Accepts::NUM) {
                        out.set_float(f);
                        return Ok(());
                    }
                    Scalar::F64(f)
                }
            },
        };
        let cell = convert(value, accepts, ty)
            .and_then(|cell| fits(cell, max_text))
            .map_err(|_| Bail)?;
        out.set(&cell);
        Ok(())
    }
}

/// The rows of one table, column by column, as they will become Arrow arrays. At most one
/// row is open at a time (rows of a table are made one after another), and rows can be
/// taken back, so an invalid record leaves nothing behind.
struct TableBuffer {
    columns: Vec<ColumnBuffer>,
    /// Finished rows (an open row is not counted).
    rows: usize,
}

struct ColumnBuffer {
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
    fn new(ty: ColumnType) -> Self {
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
    fn open_row(&mut self) {
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
    fn set(&mut self, cell: &Cell<'_>) {
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
    fn close_row(&mut self) {
        if let Values::Text { offsets, bytes } = &mut self.values {
            // The loader takes batches long before a column nears 2 GiB (and `fits`
            // refuses any one value near it), so the offset fits Arrow's i32.
            offsets.push(bytes.len() as i32);
        }
    }

    #[inline]
    fn set_int(&mut self, value: i64) {
        if let (Values::Int(v), Some(valid)) = (&mut self.values, self.valid.last_mut()) {
            if let Some(slot) = v.last_mut() {
                *slot = value;
                *valid = true;
            }
        }
    }

    #[inline]
    fn set_float(&mut self, value: f64) {
        if let (Values::Float(v), Some(valid)) = (&mut self.values, self.valid.last_mut()) {
            if let Some(slot) = v.last_mut() {
                *slot = value;
                *valid = true;
            }
        }
    }

    #[inline]
    fn set_text(&mut self, text: &str) {
        if let (Values::Text { bytes, .. }, Some(valid)) = (&mut self.values, self.valid.last_mut())
        {
            bytes.extend_from_slice(text.as_bytes());
            *valid = true;
        }
    }

    fn is_set(&self) -> bool {
        self.valid.last().copied().unwrap_or(false)
    }

    /// Appends the finished rows of `other`, a buffer of the same type, adding `shift` to
    /// integer values (ids); neither may have an open row.
    fn extend(&mut self, other: &ColumnBuffer, shift: i64) {
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

    fn truncate(&mut self, rows: usize) {
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

    fn bytes(&self) -> usize {
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

    fn finish(&mut self, ty: ColumnType) -> ArrayRef {
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

    #[inline]
    fn open_row(&mut self) {
        for column in &mut self.columns {
            column.open_row();
        }
    }

    #[inline]
    fn close_row(&mut self) {
        for column in &mut self.columns {
            column.close_row();
        }
        self.rows += 1;
    }

    /// Drops rows (and an open row) beyond `rows`.
    fn truncate(&mut self, rows: usize) {
        for column in &mut self.columns {
            column.truncate(rows);
        }
        self.rows = rows;
    }

    fn append_rows(&mut self, cells: &[Cell<'_>], width: usize) {
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

    fn finish(&mut self, table: &Table) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .zip(&table.columns)
            .map(|(buffer, column)| buffer.finish(column.ty))
            .collect();
        self.rows = 0;
        // Building from the table's own columns cannot fail: lengths and types match.
        RecordBatch::try_new(arrow_schema(table), arrays)
            .unwrap_or_else(|e| panic!("normalizer built an inconsistent batch: {e}"))
    }
}

/// Field metadata marking JSON columns (Arrow has no JSON type; both are Utf8).
pub const JSON_FIELD_METADATA: &str = "observes.json";

/// The Arrow schema of a table's batches.
pub fn arrow_schema(table: &Table) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .columns
            .iter()
            .map(|c| {
                let field = ArrowField::new(&c.name, c.ty.arrow_type(), !c.metadata);
                if c.ty == ColumnType::Json {
                    field.with_metadata(std::collections::HashMap::from([(
                        JSON_FIELD_METADATA.to_string(),
                        "true".to_string(),
                    )]))
                } else {
                    field
                }
            })
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    //! The fast path must read every record exactly as the serde walk does: the same rows
    //! when both accept it, and no acceptance where the serde walk refuses.

    use super::*;
    use serde_json::json;

    /// A deterministic generator (xorshift), so a failure names a seed that repeats.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }
    }

    fn schema() -> serde_json::Value {
        json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["null", "string"]},
            "score": {"type": ["null", "number"]},
            "count": {"type": ["integer", "null"]},
            "ok": {"type": ["null", "boolean"]},
            "at": {"type": ["null", "string"], "format": "date-time"},
            "day": {"type": ["null", "string"], "format": "date"},
            "clock": {"type": ["null", "string"], "format": "time"},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "free": {"type": ["null", "object"]},
            "userName": {"type": ["null", "object"], "properties": {
                "id": {"type": "integer"},
                "First Name": {"type": ["null", "string"]},
                "deep": {"type": ["null", "object"], "properties": {"x": {"type": ["null", "number"]}}}
            }},
            "items": {"type": ["null", "array"], "items": {"type": "object", "properties": {
                "k": {"type": ["null", "string"]},
                "n": {"type": ["null", "integer"]},
                "tags": {"type": ["null", "array"], "items": {"type": ["null", "string"]}}
            }}},
            "tags": {"type": ["null", "array"], "items": {"type": ["null", "integer"]}}
        }})
    }

    /// A JSON text that is sometimes the right type, sometimes not, sometimes odd.
    fn value(rng: &mut Rng, depth: u32) -> String {
        let scalars = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1",
            "-17",
            "42",
            "3.5",
            "-2.5e3",
            "1E2",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "18446744073709551616",
            "1e400",
            "0.1",
            "12345678901234567890123",
            "\"\"",
            "\"plain\"",
            "\"with \\\"escapes\\\" \\n\\t\\u00e9\\/\"",
            "\"é中😀\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "\"2024-03-05T14:15:22Z\"",
            "\"2024-03-05T14:15:22.123456+05:30\"",
            "\"2024-03-05 14:15:22\"",
            "\"2024-02-30T00:00:00Z\"",
            "\"2024-03-05\"",
            "\"14:15:22\"",
            "\"14:15:22.5\"",
            "\"25:00:00\"",
            "\"12\"",
            "\"3.5\"",
            "\"true\"",
            "\"not a date\"",
        ];
        match rng.below(if depth > 2 { 1 } else { 6 }) {
            0..=2 => rng.pick(&scalars).to_string(),
            3 => {
                let n = rng.below(4);
                let items: Vec<String> = (0..n).map(|_| value(rng, depth + 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => object(
                rng,
                depth + 1,
                &["k", "n", "tags", "id", "First Name", "x", "deep"],
            ),
        }
    }

    fn object(rng: &mut Rng, depth: u32, keys: &[&str]) -> String {
        let n = rng.below(keys.len() as u64 + 1);
        let mut fields = Vec::new();
        for _ in 0..n {
            let key = rng.pick(keys);
            fields.push(format!("\"{key}\":{}", value(rng, depth)));
        }
        format!("{{{}}}", fields.join(","))
    }

    fn good_record(rng: &mut Rng, id: u64) -> String {
        let items: Vec<String> = (0..rng.below(3))
            .map(|i| format!(r#"{{"k":"item {i}","n":{i},"tags":["a","b\u00e9",null]}}"#))
            .collect();
        format!(
            r#"{{"id":{id},"name":"job \"{id}\"","score":{}.25,"count":null,"ok":true,"at":"2026-01-01T00:00:{:02}.5Z","day":"2026-01-02","clock":"10:11:12","either":{},"free":{{"a":[1,{{"b":null}}],"c":"d"}},"userName":{{"id":7,"First Name":"Ada","deep":{{"x":1}}}},"items":[{}],"tags":[1,2,null]}}"#,
            id,
            id % 60,
            if id.is_multiple_of(2) {
                "\"text\"".to_string()
            } else {
                id.to_string()
            },
            items.join(",")
        )
    }

    /// A record of the schema's keys with random values, or a good one mutated.
    fn record(rng: &mut Rng, id: u64) -> String {
        let keys = [
            "id", "name", "score", "count", "ok", "at", "day", "clock", "either", "free",
            "userName", "items", "tags", "extra",
        ];
        match rng.below(4) {
            0 => good_record(rng, id),
            1 => {
                // A good record with one byte changed, dropped or doubled.
                let mut text = good_record(rng, id).into_bytes();
                let at = rng.below(text.len() as u64) as usize;
                match rng.below(3) {
                    0 => text[at] = b" {}[]\",:0a\\e-.n"[rng.below(15) as usize],
                    1 => {
                        text.remove(at);
                    }
                    _ => text.insert(at, text[at]),
                }
                String::from_utf8(text).unwrap_or_else(|_| good_record(rng, id))
            }
            2 => {
                // Keys repeated, whitespace around everything.
                let a = good_record(rng, id);
                let field = format!("\"{}\" : {} ", rng.pick(&keys), value(rng, 1));
                format!("{{ {field},{}", &a[1..])
            }
            _ => {
                let mut fields = vec![format!("\"id\":{id}")];
                for _ in 0..rng.below(8) {
                    let key = rng.pick(&keys);
                    let v = match key {
                        "userName" => object(rng, 1, &["id", "First Name", "deep", "x"]),
                        "items" => format!("[{}]", object(rng, 1, &["k", "n", "tags"])),
                        _ => value(rng, 0),
                    };
                    fields.push(format!("\"{key}\":{v}"));
                }
                format!("{{{}}}", fields.join(","))
            }
        }
    }

    fn normalizers(max_text_bytes: Option<usize>) -> (Normalizer, Normalizer) {
        let mut layout = Layout::compile("jobs", &schema(), &["id".into()], 63).unwrap();
        layout.max_text_bytes = max_text_bytes;
        let layout = Arc::new(layout);
        (Normalizer::new(layout.clone()), Normalizer::new(layout))
    }

    #[test]
    fn the_fast_path_reads_every_record_as_the_serde_walk_does() {
        for (seed, max_text) in [
            (0x9e37_79b9_7f4a_7c15, None),
            (0x2545_f491_4f6c_dd1d, Some(8)),
        ] {
            let mut rng = Rng(seed);
            let (mut fast, mut reference) = normalizers(max_text);
            let (mut fast_ids, mut reference_ids) = (IdAllocator::new(1), IdAllocator::new(1));
            let (mut accepted, mut refused) = (0, 0);
            for id in 0..20_000 {
                let text = record(&mut rng, id);
                let Ok(raw) = observes_singer::RawRecord::parse(&text) else {
                    continue; // not one JSON object: the Singer reader refuses the line
                };
                let record = Record::Raw(raw);
                let got = fast.push(&record, &mut fast_ids);
                let want = reference.push_slow(&record, &mut reference_ids);
                assert_eq!(got, want, "record {id}: {text}");
                match got {
                    Ok(()) => accepted += 1,
                    Err(_) => refused += 1,
                }
                if id % 1000 == 999 {
                    assert_eq!(fast.take_batches(), reference.take_batches(), "up to {id}");
                }
            }
            assert_eq!(fast.take_batches(), reference.take_batches());
            // The generator reaches both sides (a tight text limit refuses most records).
            assert!(accepted > 800 && refused > 2_000, "{accepted} {refused}");
        }
    }

    #[test]
    fn a_bail_leaves_nothing_behind() {
        let (mut n, _) = normalizers(None);
        let mut ids = IdAllocator::new(1);
        let good = good_record(&mut Rng(3), 1);
        // Valid up to a late type error inside a child row: rows were opened, then undone.
        let bad = good.replace(r#""tags":[1,2,null]"#, r#""tags":[1,"x"]"#);
        assert!(n
            .push(
                &Record::Raw(observes_singer::RawRecord::parse(&bad).unwrap()),
                &mut ids
            )
            .is_err());
        assert_eq!(n.buffered_rows(), 0);
        n.push(
            &Record::Raw(observes_singer::RawRecord::parse(&good).unwrap()),
            &mut ids,
        )
        .unwrap();
        let (mut alone, _) = normalizers(None);
        let mut alone_ids = IdAllocator::new(1);
        let good = Record::Raw(observes_singer::RawRecord::parse(&good).unwrap());
        alone.push(&good, &mut alone_ids).unwrap();
        let rows = |n: &mut Normalizer| -> Vec<usize> {
            n.take_batches().iter().map(|(_, b)| b.num_rows()).collect()
        };
        assert_eq!(rows(&mut n), rows(&mut alone));
    }

    #[test]
    fn generated_good_records_take_the_fast_path() {
        let (mut n, _) = normalizers(None);
        let mut ids = IdAllocator::new(1);
        let mut rng = Rng(7);
        for id in 0..50 {
            let text = good_record(&mut rng, id);
            // On the fast path itself, not only through its fallback.
            let mut c = json::Cursor::new(&text);
            assert!(
                n.push_json(&mut c, &mut ids).is_ok() && c.at_end(),
                "{text}"
            );
        }
    }

    #[test]
    fn rows_normalized_ahead_and_absorbed_equal_rows_read_in_order() {
        let parse = |text: &str| Record::Raw(observes_singer::RawRecord::parse(text).unwrap());
        let mut rng = Rng(11);
        let records: Vec<Record> = (0..60)
            .map(|id| parse(&good_record(&mut rng, id)))
            .collect();
        let (mut in_order, mut taking_over) = normalizers(None);
        let mut ahead = Normalizer::new(taking_over.layout().clone());
        let (mut in_order_ids, mut ids) = (IdAllocator::new(5), IdAllocator::new(5));
        for record in &records {
            in_order.push(record, &mut in_order_ids).unwrap();
        }
        // The first 20 read here, the next 30 on "another thread" with fresh ids.
        for record in &records[..20] {
            taking_over.push(record, &mut ids).unwrap();
        }
        let mut ahead_ids = IdAllocator::new(5);
        for record in &records[20..50] {
            ahead.push(record, &mut ahead_ids).unwrap();
        }
        let shift = ids.take_over(&ahead_ids);
        assert!(taking_over.absorb(&mut ahead, shift));
        assert_eq!(ahead.buffered_rows(), 0);
        // Ids continue after the absorbed ones, as if all had been read here.
        for record in &records[50..] {
            taking_over.push(record, &mut ids).unwrap();
        }
        let (want, got) = (in_order.take_batches(), taking_over.take_batches());
        assert_eq!(got, want);
        assert!(want.len() >= 3, "child tables too: {}", want.len());
        assert_eq!(ids.next, in_order_ids.next);
    }

    #[test]
    fn rows_normalized_with_another_layout_are_not_absorbed() {
        let (mut n, _) = normalizers(None);
        // Equal content, another layout (a SCHEMA message came meanwhile).
        let mut other = Normalizer::new(Arc::new((**n.layout()).clone()));
        let mut ids = IdAllocator::new(5);
        let text = good_record(&mut Rng(3), 1);
        other
            .push(
                &Record::Raw(observes_singer::RawRecord::parse(&text).unwrap()),
                &mut ids,
            )
            .unwrap();
        assert!(!n.absorb(&mut other, 0));
        assert_eq!((n.buffered_rows(), other.buffered_rows() > 0), (0, true));
    }
}
