//! The serde walk: the reference reading of a record, and the only one that says why a
//! record is invalid. Rows go to a scratch buffer first, so a bad record leaves none.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::buffer::Cell;
use super::{IdAllocator, InvalidRecord};
use crate::layout::{Accepts, Field, Layout};
use crate::time;
use crate::types::ColumnType;

/// Walks one record with `de`, writing its rows into `scratch`.
pub(super) fn fill<'de, D>(
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
pub(super) enum Scalar<'de> {
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
pub(super) fn convert<'de>(
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
pub(super) const MAX_BATCH_TEXT: usize = 1 << 30;

/// A text value longer than the warehouse stores is bad input, never cut.
pub(super) fn fits(cell: Cell<'_>, max_bytes: Option<usize>) -> Result<Cell<'_>, InvalidRecord> {
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
