//! A table function that scans Arrow batches held in this process, so a bulk load is one
//! `INSERT … SELECT` instead of the appender's row-at-a-time path.
//!
//! `observes_scan(id)` reads the batches registered under `id` by [`Registration`]; a
//! registration lives as long as its guard, which outlives the statement that reads it.
//!
//! The rows are handed out in units of one DuckDB row group: each of DuckDB's threads
//! claims whole units, so when insertion order is not kept (see `DuckDbWarehouse::insert`)
//! every thread fills complete row groups and compresses them itself, in parallel, and
//! DuckDB moves them into the table as written. A unit split over threads would leave each
//! a partial row group to append a second time.
//!
//! A unit is claimed per thread, with the thread-local init state of DuckDB's C API.
//!
//! A batch is released as soon as DuckDB has taken all its rows: DuckDB copies a chunk's
//! values into its own storage when the chunk is inserted, before the thread asks for its
//! next one. So an insert of two row groups does not hold its rows twice (ours and
//! DuckDB's) while DuckDB compresses them.

use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type};
use arrow_array::RecordBatch;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use libduckdb_sys as ffi;
use observes_model::normalize::JSON_FIELD_METADATA;

use super::ROW_GROUP;

pub(super) const FUNCTION: &str = "observes_scan";

/// Rows DuckDB takes per call (its vector size).
pub(super) const CHUNK_ROWS: usize = 2048;

/// A registered batch, and how many of its rows DuckDB has not taken yet.
struct Held {
    batch: Mutex<Option<RecordBatch>>,
    rows: usize,
    left: AtomicUsize,
}

type Batches = Arc<Vec<Held>>;

static REGISTRY: Registry<Batches> = Registry::new();

/// What a table function's calls read, each under the id the call names.
pub(super) struct Registry<T> {
    entries: LazyLock<Mutex<HashMap<u64, T>>>,
    next_id: AtomicU64,
}

impl<T: Clone> Registry<T> {
    pub(super) const fn new() -> Registry<T> {
        Registry {
            entries: LazyLock::new(Default::default),
            next_id: AtomicU64::new(1),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, T>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `value` under a new id.
    pub(super) fn insert(&self, value: T) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.entries().insert(id, value);
        id
    }

    pub(super) fn get(&self, id: u64) -> Option<T> {
        self.entries().get(&id).cloned()
    }

    pub(super) fn remove(&self, id: u64) {
        self.entries().remove(&id);
    }
}

/// Batches visible to `observes_scan(id)` until dropped.
pub(super) struct Registration {
    pub id: u64,
    /// Row-group units the scan hands out: more than one lets DuckDB insert in parallel.
    pub units: usize,
}

impl Registration {
    pub(super) fn new(batches: Vec<RecordBatch>) -> Registration {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let held = batches
            .into_iter()
            .map(|batch| Held {
                rows: batch.num_rows(),
                left: AtomicUsize::new(batch.num_rows()),
                batch: Mutex::new(Some(batch)),
            })
            .collect();
        let id = REGISTRY.insert(Arc::new(held));
        Registration {
            id,
            units: rows.div_ceil(ROW_GROUP),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        REGISTRY.remove(self.id);
    }
}

/// One row group's worth of rows: the (batch, offset, rows) of each call, in order.
type Unit = Vec<(usize, usize, usize)>;

struct Bound {
    batches: Batches,
    units: Vec<Unit>,
}

/// Shared by the threads of one scan: the next unit to claim.
struct Claims {
    next: AtomicUsize,
}

/// One thread's place: the unit it claimed, the next call within it, and the rows it
/// handed out last (batch, rows), taken by DuckDB once the thread calls again.
struct Place {
    unit: usize,
    call: usize,
    taken: Option<(usize, usize)>,
}

impl Held {
    /// The batch, while DuckDB has rows of it to take.
    fn get(&self) -> Option<RecordBatch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// DuckDB took `rows` more rows; the last ones release the batch.
    fn taken(&self, rows: usize) {
        if self.left.fetch_sub(rows, Ordering::AcqRel) == rows {
            *self.batch.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

/// Registers `observes_scan` in the database's system catalog, where every connection
/// to the database finds it. `db` is an open database.
pub(super) fn register(db: ffi::duckdb_database) -> Result<(), String> {
    register_function(
        db,
        FUNCTION,
        Callbacks {
            bind,
            init,
            local_init,
            scan,
        },
    )
}

/// A table function of one `UBIGINT` parameter (the id of what it reads).
pub(super) struct Callbacks {
    pub bind: unsafe extern "C" fn(ffi::duckdb_bind_info),
    pub init: unsafe extern "C" fn(ffi::duckdb_init_info),
    pub local_init: unsafe extern "C" fn(ffi::duckdb_init_info),
    pub scan: unsafe extern "C" fn(ffi::duckdb_function_info, ffi::duckdb_data_chunk),
}

/// Registers a table function `name(id UBIGINT)` in the database's system catalog.
pub(super) fn register_function(
    db: ffi::duckdb_database,
    name: &str,
    callbacks: Callbacks,
) -> Result<(), String> {
    let c_name = CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: plain C API calls on handles created here; each is released before returning.
    unsafe {
        let mut con: ffi::duckdb_connection = std::ptr::null_mut();
        if ffi::duckdb_connect(db, &mut con) != ffi::DuckDBSuccess {
            return Err(format!("registering {name}: cannot connect"));
        }
        let mut function = ffi::duckdb_create_table_function();
        ffi::duckdb_table_function_set_name(function, c_name.as_ptr());
        let mut id_type = ffi::duckdb_create_logical_type(ffi::DUCKDB_TYPE_DUCKDB_TYPE_UBIGINT);
        ffi::duckdb_table_function_add_parameter(function, id_type);
        ffi::duckdb_destroy_logical_type(&mut id_type);
        ffi::duckdb_table_function_set_bind(function, Some(callbacks.bind));
        ffi::duckdb_table_function_set_init(function, Some(callbacks.init));
        ffi::duckdb_table_function_set_local_init(function, Some(callbacks.local_init));
        ffi::duckdb_table_function_set_function(function, Some(callbacks.scan));
        let state = ffi::duckdb_register_table_function(con, function);
        ffi::duckdb_destroy_table_function(&mut function);
        ffi::duckdb_disconnect(&mut con);
        if state != ffi::DuckDBSuccess {
            return Err(format!("registering {name} failed"));
        }
    }
    Ok(())
}

pub(super) unsafe extern "C" fn drop_boxed<T>(data: *mut c_void) {
    drop(Box::from_raw(data.cast::<T>()));
}

/// Runs a callback's body, turning an error or a panic (which must not cross into C++)
/// into the message DuckDB reports.
pub(super) fn contained(
    function: &str,
    report: impl FnOnce(&CStr),
    body: impl FnOnce() -> Result<(), String>,
) {
    let message = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return,
        Ok(Err(message)) => message,
        Err(_) => format!("{function}: panicked"),
    };
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    report(&message);
}

unsafe extern "C" fn bind(info: ffi::duckdb_bind_info) {
    contained(
        FUNCTION,
        |m| ffi::duckdb_bind_set_error(info, m.as_ptr()),
        || {
            let bound = bind_batches(info, bind_id(info))?;
            set_bind_data(info, bound);
            Ok(())
        },
    );
}

/// # Safety
/// `info` is the bind info of a call to `bind`.
unsafe fn bind_batches(info: ffi::duckdb_bind_info, id: u64) -> Result<Bound, String> {
    let batches = REGISTRY
        .get(id)
        .ok_or_else(|| format!("{FUNCTION}({id}): no such batches"))?;
    let Some(first) = batches.first().and_then(Held::get) else {
        return Err(format!("{FUNCTION}({id}): no batches"));
    };
    bind_columns(info, &first.schema())?;
    let mut units: Vec<Unit> = Vec::new();
    let mut in_unit = ROW_GROUP;
    for (b, held) in batches.iter().enumerate() {
        let mut offset = 0;
        while offset < held.rows {
            if in_unit == ROW_GROUP {
                units.push(Vec::new());
                in_unit = 0;
            }
            let rows = CHUNK_ROWS.min(held.rows - offset).min(ROW_GROUP - in_unit);
            if let Some(unit) = units.last_mut() {
                unit.push((b, offset, rows));
            }
            offset += rows;
            in_unit += rows;
        }
    }
    let total: usize = batches.iter().map(|h| h.rows).sum();
    ffi::duckdb_bind_set_cardinality(info, total as u64, true);
    Ok(Bound { batches, units })
}

unsafe extern "C" fn init(info: ffi::duckdb_init_info) {
    contained(
        FUNCTION,
        |m| ffi::duckdb_init_set_error(info, m.as_ptr()),
        || {
            // SAFETY: the bind data is the `Bound` this function's bind set.
            let bound = &*ffi::duckdb_init_get_bind_data(info).cast::<Bound>();
            ffi::duckdb_init_set_max_threads(info, bound.units.len().clamp(1, 64) as u64);
            let claims = Claims {
                next: AtomicUsize::new(0),
            };
            set_init_data(info, claims);
            Ok(())
        },
    );
}

unsafe extern "C" fn local_init(info: ffi::duckdb_init_info) {
    contained(
        FUNCTION,
        |m| ffi::duckdb_init_set_error(info, m.as_ptr()),
        || {
            let place = Place {
                unit: usize::MAX,
                call: 0,
                taken: None,
            };
            set_init_data(info, place);
            Ok(())
        },
    );
}

unsafe extern "C" fn scan(info: ffi::duckdb_function_info, output: ffi::duckdb_data_chunk) {
    contained(
        FUNCTION,
        |m| ffi::duckdb_function_set_error(info, m.as_ptr()),
        || {
            // SAFETY: DuckDB hands each call the data this function's bind, init and local
            // init set; the local place belongs to the calling thread alone.
            let bound = &*ffi::duckdb_function_get_bind_data(info).cast::<Bound>();
            let claims = &*ffi::duckdb_function_get_init_data(info).cast::<Claims>();
            let place = &mut *ffi::duckdb_function_get_local_init_data(info).cast::<Place>();
            if let Some((b, rows)) = place.taken.take() {
                bound.batches[b].taken(rows);
            }
            let slice = loop {
                if let Some(&slice) = bound.units.get(place.unit).and_then(|u| u.get(place.call)) {
                    place.call += 1;
                    break Some(slice);
                }
                let next = claims.next.fetch_add(1, Ordering::Relaxed);
                if next >= bound.units.len() {
                    break None;
                }
                place.unit = next;
                place.call = 0;
            };
            let Some((b, offset, rows)) = slice else {
                ffi::duckdb_data_chunk_set_size(output, 0);
                return Ok(());
            };
            let batch = bound.batches[b].get().ok_or_else(|| {
                format!("{FUNCTION}: batch {b} was released while rows were left")
            })?;
            place.taken = Some((b, rows));
            fill_chunk(&batch, offset, rows, output)
        },
    );
}

/// The id a call names, its one parameter.
///
/// # Safety
/// `info` is the bind info of a call to a function registered by [`register_function`].
pub(super) unsafe fn bind_id(info: ffi::duckdb_bind_info) -> u64 {
    let mut parameter = ffi::duckdb_bind_get_parameter(info, 0);
    let id = ffi::duckdb_get_uint64(parameter);
    ffi::duckdb_destroy_value(&mut parameter);
    id
}

/// Adds a result column for each field of `schema`.
///
/// # Safety
/// `info` is the bind info of a call to a table function's bind.
pub(super) unsafe fn bind_columns(
    info: ffi::duckdb_bind_info,
    schema: &arrow_schema::Schema,
) -> Result<(), String> {
    for field in schema.fields() {
        let name = CString::new(field.name().as_str()).map_err(|e| e.to_string())?;
        let mut ty = logical_type(field)?;
        ffi::duckdb_bind_add_result_column(info, name.as_ptr(), ty);
        ffi::duckdb_destroy_logical_type(&mut ty);
    }
    Ok(())
}

/// Gives DuckDB `value` as a bind's data, freed by DuckDB (with [`drop_boxed`]).
///
/// # Safety
/// `info` is the bind info of a call to a table function's bind.
pub(super) unsafe fn set_bind_data<T>(info: ffi::duckdb_bind_info, value: T) {
    ffi::duckdb_bind_set_bind_data(
        info,
        Box::into_raw(Box::new(value)).cast(),
        Some(drop_boxed::<T>),
    );
}

/// Gives DuckDB `value` as a (global or thread-local) init's data, freed by DuckDB.
///
/// # Safety
/// `info` is the init info of a call to a table function's init or local init.
pub(super) unsafe fn set_init_data<T>(info: ffi::duckdb_init_info, value: T) {
    ffi::duckdb_init_set_init_data(
        info,
        Box::into_raw(Box::new(value)).cast(),
        Some(drop_boxed::<T>),
    );
}

/// Fills `output` with `rows` rows of `batch` from `offset`.
///
/// # Safety
/// `output` is the chunk of a scan call of a function bound to `batch`'s schema
/// ([`bind_columns`]), with room for [`CHUNK_ROWS`] rows; `rows` is at most that.
pub(super) unsafe fn fill_chunk(
    batch: &RecordBatch,
    offset: usize,
    rows: usize,
    output: ffi::duckdb_data_chunk,
) -> Result<(), String> {
    for (i, column) in batch.columns().iter().enumerate() {
        // SAFETY: the chunk has one vector per bound column, of the bound type, with room
        // for CHUNK_ROWS rows; `column` holds at least offset + rows values.
        let vector = ffi::duckdb_data_chunk_get_vector(output, i as u64);
        fill_vector(column, offset, rows, vector)?;
    }
    ffi::duckdb_data_chunk_set_size(output, rows as u64);
    Ok(())
}

/// The DuckDB type a column of a normalizer batch is read as; the caller destroys it.
pub(super) unsafe fn logical_type(
    field: &arrow_schema::Field,
) -> Result<ffi::duckdb_logical_type, String> {
    let id = match field.data_type() {
        DataType::Boolean => ffi::DUCKDB_TYPE_DUCKDB_TYPE_BOOLEAN,
        DataType::Int64 => ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT,
        DataType::Float64 => ffi::DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE,
        DataType::Utf8 => ffi::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR,
        DataType::Timestamp(_, _) => ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_TZ,
        DataType::Date32 => ffi::DUCKDB_TYPE_DUCKDB_TYPE_DATE,
        DataType::Time64(_) => ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIME,
        other => {
            return Err(format!(
                "column {:?}: Arrow type {other} is not loaded",
                field.name()
            ))
        }
    };
    let ty = ffi::duckdb_create_logical_type(id);
    if field.metadata().contains_key(JSON_FIELD_METADATA) {
        // The column's own type, so DuckDB does not parse every value to cast it.
        ffi::duckdb_logical_type_set_alias(ty, c"JSON".as_ptr());
    }
    Ok(ty)
}

/// Copies `rows` values of `column` from `offset` into a DuckDB vector. Text is not
/// copied: each value points into the batch's buffer, which outlives the statement
/// (DuckDB copies strings into its storage when it inserts them).
pub(super) unsafe fn fill_vector(
    column: &ArrayRef,
    offset: usize,
    rows: usize,
    vector: ffi::duckdb_vector,
) -> Result<(), String> {
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
        other => return Err(format!("Arrow type {other} is not loaded")),
    }
    if column.null_count() > 0 {
        if let Some(nulls) = column.nulls() {
            ffi::duckdb_vector_ensure_validity_writable(vector);
            let mask = ffi::duckdb_vector_get_validity(vector);
            // Both are bitmaps of 64-bit words, lowest bit first, a set bit for a value.
            // DuckDB's mask holds the words of a vector's rows and no more: `iter_padded`
            // ends with a word for the remainder even when there is none.
            let valid = nulls.inner().slice(offset, rows);
            let words = valid.bit_chunks().iter_padded().take(rows.div_ceil(64));
            for (i, word) in words.enumerate() {
                *mask.add(i) = word;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_released_once_duckdb_has_taken_all_its_rows() {
        let column: ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3, 4, 5]));
        let batch = RecordBatch::try_from_iter([("k", column)]).unwrap();
        let held = Held {
            rows: 5,
            left: AtomicUsize::new(5),
            batch: Mutex::new(Some(batch)),
        };
        held.taken(2);
        assert_eq!(held.get().map(|b| b.num_rows()), Some(5));
        held.taken(3);
        assert!(held.get().is_none());
    }
}
