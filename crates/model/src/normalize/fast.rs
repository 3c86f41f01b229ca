//! The fast walk: a record's JSON text read once, along a plan compiled from the layout,
//! straight into the column buffers.

use std::borrow::Cow;

use observes_singer::json::{self, Bail};

use super::buffer::{Cell, TableBuffer};
use super::walk::{convert, fits, Scalar, MAX_BATCH_TEXT};
use super::IdAllocator;
use crate::layout::{Accepts, Field, Layout};
use crate::time;
use crate::types::ColumnType;

/// How the fast path reads a field: the layout's [`Field`] with what it looks up
/// resolved ahead (the column's type; keys as bytes).
pub(super) enum Plan {
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

    pub(super) fn object(layout: &Layout, table: usize, properties: &[(String, Field)]) -> Plan {
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
pub(super) struct Fast<'a> {
    pub(super) layout: &'a Layout,
    pub(super) plan: &'a Plan,
    pub(super) ids: &'a mut IdAllocator,
    pub(super) buffers: &'a mut [TableBuffer],
}

impl Fast<'_> {
    /// The record object at the cursor, which ends up just past it.
    pub(super) fn record(&mut self, c: &mut json::Cursor<'_>) -> json::Fast<()> {
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
