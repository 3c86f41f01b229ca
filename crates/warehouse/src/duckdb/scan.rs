//! A table function that scans Arrow batches held in this process, so a bulk load is one
//! `INSERT … SELECT` that DuckDB runs on all its threads (compressing row groups as it
//! goes) instead of the appender's single-threaded path.
//!
//! `observes_scan(id)` reads the batches registered under `id` by [`Registration`]; a
//! registration lives as long as its guard, which outlives the statement that reads it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Date32Type, Float64Type};
use arrow::record_batch::RecordBatch;
use duckdb::core::{DataChunkHandle, LogicalTypeHandle, LogicalTypeId};
use duckdb::ffi;
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use observes_model::normalize::JSON_FIELD_METADATA;

pub const FUNCTION: &str = "observes_scan";

/// Rows DuckDB takes per call (its vector size).
const CHUNK_ROWS: usize = 2048;

type Batches = Arc<Vec<RecordBatch>>;

static REGISTRY: LazyLock<Mutex<HashMap<u64, Batches>>> = LazyLock::new(Default::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn registry() -> std::sync::MutexGuard<'static, HashMap<u64, Batches>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Batches visible to `observes_scan(id)` until dropped.
pub struct Registration {
    pub id: u64,
}

impl Registration {
    pub fn new(batches: Vec<RecordBatch>) -> Registration {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        registry().insert(id, Arc::new(batches));
        Registration { id }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        registry().remove(&self.id);
    }
}

pub struct BatchScan;

pub struct Bound {
    batches: Batches,
    /// Every (batch, offset, rows) a call emits, in order.
    slices: Vec<(usize, usize, usize)>,
}

pub struct Cursor {
    next: AtomicUsize,
}

impl VTab for BatchScan {
    type InitData = Cursor;
    type BindData = Bound;

    fn bind(bind: &BindInfo) -> Result<Bound, Box<dyn std::error::Error>> {
        let id = bind.get_parameter(0).to_uint64();
        let batches = registry()
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("{FUNCTION}({id}): no such batches"))?;
        let Some(first) = batches.first() else {
            return Err(format!("{FUNCTION}({id}): no batches").into());
        };
        for field in first.schema().fields() {
            bind.add_result_column(field.name(), logical_type(field)?);
        }
        let mut slices = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            let mut offset = 0;
            while offset < batch.num_rows() {
                let rows = CHUNK_ROWS.min(batch.num_rows() - offset);
                slices.push((b, offset, rows));
                offset += rows;
            }
        }
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        bind.set_cardinality(total as u64, true);
        Ok(Bound { batches, slices })
    }

    fn init(init: &InitInfo) -> Result<Cursor, Box<dyn std::error::Error>> {
        let bound = init.get_bind_data::<Bound>();
        // SAFETY: DuckDB hands init the bind data this function's bind set.
        let slices = unsafe { bound.as_ref() }.map_or(1, |b| b.slices.len());
        init.set_max_threads(slices.clamp(1, 64) as u64);
        Ok(Cursor {
            next: AtomicUsize::new(0),
        })
    }

    fn func(
        func: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let bound = func.get_bind_data();
        let i = func.get_init_data().next.fetch_add(1, Ordering::Relaxed);
        let Some(&(b, offset, rows)) = bound.slices.get(i) else {
            output.set_len(0);
            return Ok(());
        };
        let batch = &bound.batches[b];
        let chunk = output.get_ptr();
        for (i, column) in batch.columns().iter().enumerate() {
            // SAFETY: the chunk has one vector per bound column, of the bound type, with
            // room for CHUNK_ROWS rows; `column` holds at least offset + rows values.
            unsafe {
                let vector = ffi::duckdb_data_chunk_get_vector(chunk, i as u64);
                fill_vector(column, offset, rows, vector)?;
            }
        }
        output.set_len(rows);
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![LogicalTypeHandle::from(LogicalTypeId::UBigint)])
    }
}

/// The DuckDB type a column of a normalizer batch is read as.
fn logical_type(
    field: &arrow::datatypes::Field,
) -> Result<LogicalTypeHandle, Box<dyn std::error::Error>> {
    let id = match field.data_type() {
        DataType::Boolean => LogicalTypeId::Boolean,
        DataType::Int64 => LogicalTypeId::Bigint,
        DataType::Float64 => LogicalTypeId::Double,
        DataType::Utf8 => LogicalTypeId::Varchar,
        DataType::Timestamp(_, _) => LogicalTypeId::TimestampTZ,
        DataType::Date32 => LogicalTypeId::Date,
        DataType::Time64(_) => LogicalTypeId::Time,
        other => {
            return Err(format!(
                "column {:?}: Arrow type {other} is not loaded",
                field.name()
            )
            .into())
        }
    };
    let mut ty = LogicalTypeHandle::from(id);
    if field.metadata().contains_key(JSON_FIELD_METADATA) {
        // The column's own type, so DuckDB does not parse every value to cast it.
        ty.set_alias("JSON");
    }
    Ok(ty)
}

/// Copies `rows` values of `column` from `offset` into a DuckDB vector. Text is not
/// copied: each value points into the batch's buffer, which outlives the statement
/// (DuckDB copies strings into its storage when it inserts them).
unsafe fn fill_vector(
    column: &ArrayRef,
    offset: usize,
    rows: usize,
    vector: ffi::duckdb_vector,
) -> Result<(), Box<dyn std::error::Error>> {
    let data = ffi::duckdb_vector_get_data(vector);
    match column.data_type() {
        DataType::Int64 | DataType::Timestamp(_, _) | DataType::Time64(_) => {
            // `buffer` starts at the array's own offset (a sliced array's first value).
            let values = column.to_data();
            let values: &[i64] = &values.buffer::<i64>(0)[offset..][..rows];
            std::ptr::copy_nonoverlapping(values.as_ptr(), data.cast::<i64>(), rows);
        }
        DataType::Float64 => {
            let values = &column.as_primitive::<Float64Type>().values()[offset..offset + rows];
            std::ptr::copy_nonoverlapping(values.as_ptr(), data.cast::<f64>(), rows);
        }
        DataType::Date32 => {
            let values = &column.as_primitive::<Date32Type>().values()[offset..offset + rows];
            std::ptr::copy_nonoverlapping(values.as_ptr(), data.cast::<i32>(), rows);
        }
        DataType::Boolean => {
            let values = column.as_boolean().values();
            let out = data.cast::<u8>();
            for row in 0..rows {
                *out.add(row) = values.value(offset + row) as u8;
            }
        }
        DataType::Utf8 => {
            let strings = column.as_string::<i32>();
            let offsets = strings.value_offsets();
            let bytes = strings.values().as_ptr();
            let out = data.cast::<ffi::duckdb_string_t>();
            for row in 0..rows {
                let start = offsets[offset + row] as usize;
                let len = offsets[offset + row + 1] as usize - start;
                *out.add(row) = string_t(bytes.add(start), len);
            }
        }
        other => return Err(format!("Arrow type {other} is not loaded").into()),
    }
    if column.null_count() > 0 {
        if let Some(nulls) = column.nulls() {
            ffi::duckdb_vector_ensure_validity_writable(vector);
            let mask = ffi::duckdb_vector_get_validity(vector);
            let words = rows.div_ceil(64);
            std::ptr::write_bytes(mask, 0, words);
            for row in 0..rows {
                if nulls.is_valid(offset + row) {
                    *mask.add(row / 64) |= 1 << (row % 64);
                }
            }
        }
    }
    Ok(())
}

/// DuckDB's string value: up to 12 bytes inline, else a 4-byte prefix and a pointer.
unsafe fn string_t(bytes: *const u8, len: usize) -> ffi::duckdb_string_t {
    let mut value: ffi::duckdb_string_t = std::mem::zeroed();
    if len <= 12 {
        value.value.inlined.length = len as u32;
        std::ptr::copy_nonoverlapping(bytes, value.value.inlined.inlined.as_mut_ptr().cast(), len);
    } else {
        value.value.pointer.length = len as u32;
        std::ptr::copy_nonoverlapping(bytes, value.value.pointer.prefix.as_mut_ptr().cast(), 4);
        value.value.pointer.ptr = bytes as *mut _;
    }
    value
}
