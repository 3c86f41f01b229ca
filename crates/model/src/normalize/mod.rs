//! The normalizer: records of one stream into rows of its tables, as Arrow batches.
//!
//! One record goes in by one of two walks that must agree exactly: the fast one
//! (`fast`) reads the JSON text straight into the column buffers (`buffer`) along a
//! plan compiled from the layout; the serde one (`walk`) is the reference, and the
//! only one that words errors. The fast walk bails on anything it does not handle
//! exactly as the serde walk does, undoes its own writes, and the record goes the serde
//! way. Callers see one call per shape of input: [`push_line`] for a Singer line's text,
//! [`Normalizer::push`] for a parsed message.

use std::fmt;
use std::sync::Arc;

use ::arrow_schema::{Field as ArrowField, Schema, SchemaRef};
use arrow_array::RecordBatch;
use observes_singer::json::{self, Bail};
use observes_singer::{Record, RecordLine};

use crate::layout::{Layout, Table};
use crate::types::ColumnType;

mod buffer;
mod fast;
mod walk;

use buffer::{recycle, Cell, ColumnBuffer, TableBuffer};
use fast::{Fast, Plan};
use walk::fill;

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

    /// Ids of load `load_id`, from the first.
    pub fn new(load_id: i64) -> Self {
        IdAllocator {
            load_id,
            next: load_id << Self::ROW_BITS,
        }
    }

    /// The load these ids are of.
    pub fn load_id(&self) -> i64 {
        self.load_id
    }

    pub(super) fn next(&mut self) -> i64 {
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
    /// Why it is invalid.
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
    pub(super) fn new(reason: String) -> Self {
        InvalidRecord {
            field: String::new(),
            reason,
            column: None,
        }
    }

    /// A serde_json error met while reading the record's JSON, with its position taken out
    /// of the text (serde's own `at line 1 column N` counts within the record).
    pub(super) fn unreadable(message: &str) -> Self {
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
    pub(super) fn within(self, property: &str) -> Self {
        self.prefixed(property)
    }

    /// Prefixes the field path with an array index (`[2]` + `size` → `[2].size`).
    pub(super) fn at_index(self, i: usize) -> Self {
        self.prefixed(&format!("[{i}]"))
    }

    pub(super) fn prefixed(mut self, segment: &str) -> Self {
        if !(self.field.is_empty() || self.field.starts_with('[')) {
            self.field.insert(0, '.');
        }
        self.field.insert_str(0, segment);
        self
    }
}

/// Where a [`Normalizer`] stood before a fast-path attempt, to undo it.
#[derive(Debug, Clone)]
struct Mark {
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

impl Normalizer {
    /// A normalizer with empty buffers.
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

    /// The layout it normalizes into.
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

    /// The fast path: reads the record object at the cursor straight into the buffers,
    /// checking its JSON as strictly as the cursor does. On a bail the caller must
    /// [`Normalizer::undo`] to a [`Normalizer::mark`] taken before, then push the record
    /// the slow way (which decides whether it is valid and why not).
    fn push_json(&mut self, c: &mut json::Cursor<'_>, ids: &mut IdAllocator) -> json::Fast<()> {
        Fast {
            layout: &self.layout,
            plan: &self.plan,
            ids,
            buffers: &mut self.buffers,
        }
        .record(c)
    }

    /// Where the buffers and ids stand, to [`Normalizer::undo`] a failed fast path.
    fn mark(&self, ids: &IdAllocator) -> Mark {
        Mark {
            rows: self.buffers.iter().map(|b| b.rows).collect(),
            next_id: ids.next,
        }
    }

    /// Drops everything buffered since `mark`.
    fn undo(&mut self, mark: Mark, ids: &mut IdAllocator) {
        for (buffer, rows) in self.buffers.iter_mut().zip(mark.rows) {
            buffer.truncate(rows);
        }
        ids.next = mark.next_id;
    }

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

/// A line the fast path did not take whole; nothing it wrote is left behind. The caller
/// parses the line and hands its message over the slow way, which decides whether it is
/// valid and words why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFast;

/// Normalizes a Singer `RECORD` line straight from its text, scanning it once
/// ([`observes_singer::scan_record_line`]): the common case of a load.
/// `normalizer_for(stream)` gives the stream's normalizer, or `None` to leave the line to
/// the slow path. On [`NotFast`] the normalizer is as it was before the call.
pub fn push_line<'a, 'n>(
    line: &'a [u8],
    ids: &mut IdAllocator,
    normalizer_for: impl FnOnce(&'a str) -> Option<&'n mut Normalizer>,
) -> Result<RecordLine<'a>, NotFast> {
    let mut lookup = Some(normalizer_for);
    let mut started: Option<(&'n mut Normalizer, Mark)> = None;
    let scanned = observes_singer::scan_record_line(line, |stream, c| {
        let normalizer = lookup.take().and_then(|f| f(stream)).ok_or(Bail)?;
        let mark = normalizer.mark(ids);
        let (normalizer, _) = started.insert((normalizer, mark));
        normalizer.push_json(c, ids)
    });
    match scanned {
        Ok(line) => Ok(line),
        Err(Bail) => {
            if let Some((normalizer, mark)) = started {
                normalizer.undo(mark, ids);
            }
            Err(NotFast)
        }
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
mod tests;
