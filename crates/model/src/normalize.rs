//! The normalizer: records of one stream into rows of its tables, as Arrow batches.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field as ArrowField, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
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

    /// Normalizes one record into the buffers. On error nothing is buffered.
    pub fn push(&mut self, record: &Record, ids: &mut IdAllocator) -> Result<(), InvalidRecord> {
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
            .unwrap_or_else(|| InvalidRecord::new(e.to_string())));
    }
    for (&col, key) in layout.key_columns.iter().zip(&layout.key_properties) {
        if ctx.scratch[0][row + col] == Cell::Null {
            return Err(InvalidRecord {
                field: key.clone(),
                reason: "key property is missing or null".into(),
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
    fn within<E>(
        &mut self,
        result: Result<(), E>,
        segment: impl FnOnce(InvalidRecord) -> InvalidRecord,
    ) -> Result<(), E> {
        if result.is_err() {
            if let Some(e) = self.error.take() {
                self.error = Some(segment(e));
            }
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
            let integral = f.fract() == 0.0 && f.abs() < 9.2e18;
            if !(accepts.has(Accepts::NUM) || (accepts.has(Accepts::INT) && integral)) {
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

/// A text value longer than the warehouse stores is bad input, never cut.
fn fits(cell: Cell<'_>, max_bytes: Option<usize>) -> Result<Cell<'_>, InvalidRecord> {
    let len = match (&cell, max_bytes) {
        (Cell::Str(s), Some(_)) => s.len(),
        (Cell::Owned(s), Some(_)) => s.len(),
        _ => return Ok(cell),
    };
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
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let Some(index) = self.properties.iter().position(|(name, _)| *name == key) else {
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
                    field.with_metadata(
                        [(JSON_FIELD_METADATA.to_string(), "true".to_string())].into(),
                    )
                } else {
                    field
                }
            })
            .collect::<Vec<_>>(),
    ))
}
