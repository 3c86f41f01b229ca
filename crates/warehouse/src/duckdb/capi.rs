//! The part of DuckDB's C API the warehouse uses, made safe: a database, its connections,
//! statements with bound parameters, and results read chunk by chunk.
//!
//! Why not duckdb-rs: it brings the whole of arrow (cast, ord, arith, …; minutes of a cold
//! build) for what is here a few hundred lines, and the bulk path (`scan.rs`) needed the C
//! API anyway.

use std::ffi::{c_char, CStr, CString};
use std::sync::Arc;

use libduckdb_sys as ffi;

use crate::SqlValue;

/// An open database, closed after the last connection to it.
pub(super) struct Database(ffi::duckdb_database);

// SAFETY: a DuckDB database handle may be used and closed from any thread.
unsafe impl Send for Database {}
unsafe impl Sync for Database {}

impl Database {
    /// Opens `path` (`:memory:` for an in-memory database).
    pub(super) fn open(path: &str) -> Result<Database, String> {
        let c_path = c_string(path)?;
        let mut db: ffi::duckdb_database = std::ptr::null_mut();
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: the out-pointers are valid; an error message is ours to free.
        unsafe {
            if ffi::duckdb_open_ext(c_path.as_ptr(), &mut db, std::ptr::null_mut(), &mut error)
                != ffi::DuckDBSuccess
            {
                let message = if error.is_null() {
                    "cannot open the database".to_string()
                } else {
                    let message = CStr::from_ptr(error).to_string_lossy().into_owned();
                    ffi::duckdb_free(error.cast());
                    message
                };
                return Err(message);
            }
        }
        Ok(Database(db))
    }

    pub(super) fn raw(&self) -> ffi::duckdb_database {
        self.0
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: the last connection (which holds an `Arc` of this) is closed by now.
        unsafe { ffi::duckdb_close(&mut self.0) }
    }
}

/// A connection handle, closed when the last of its [`Connection`] and interrupters goes:
/// an interrupt never reaches a closed connection.
struct Handle {
    raw: ffi::duckdb_connection,
    // Dropped after `raw` is closed (fields drop after `Drop::drop`).
    _database: Arc<Database>,
}

// SAFETY: DuckDB connections may move between threads; `Connection` is not `Sync`, so one
// thread at a time runs statements, and `duckdb_interrupt` is meant for other threads.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle is open and nothing else closes it.
        unsafe { ffi::duckdb_disconnect(&mut self.raw) }
    }
}

/// A connection to a [`Database`].
pub(super) struct Connection {
    handle: Arc<Handle>,
    // Not `Sync`: statements run from one thread at a time.
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl Connection {
    pub(super) fn open(database: &Arc<Database>) -> Result<Connection, String> {
        let mut raw: ffi::duckdb_connection = std::ptr::null_mut();
        // SAFETY: the database is open (it lives as long as `database`).
        if unsafe { ffi::duckdb_connect(database.raw(), &mut raw) } != ffi::DuckDBSuccess {
            return Err("cannot connect to the database".into());
        }
        Ok(Connection {
            handle: Arc::new(Handle {
                raw,
                _database: database.clone(),
            }),
            _not_sync: std::marker::PhantomData,
        })
    }

    /// Another connection to the same database.
    pub(super) fn reopen(&self) -> Result<Connection, String> {
        Connection::open(&self.handle._database)
    }

    /// The same connection, for one statement to run on another thread. Statements on a
    /// connection run one at a time (DuckDB waits for the one running), so its owner runs
    /// none until the statement given to the lent one has ended.
    pub(super) fn lend(&self) -> Connection {
        Connection {
            handle: self.handle.clone(),
            _not_sync: std::marker::PhantomData,
        }
    }

    /// Runs every statement of `sql`, with no parameters and no result.
    pub(super) fn execute_batch(&self, sql: &str) -> Result<(), String> {
        let c_sql = c_string(sql)?;
        let mut result = QueryResult::empty();
        // SAFETY: the connection is open; the result is destroyed by its guard.
        let state = unsafe { ffi::duckdb_query(self.handle.raw, c_sql.as_ptr(), &mut result.0) };
        if state != ffi::DuckDBSuccess {
            return Err(result.error());
        }
        Ok(())
    }

    /// Runs one statement with its parameters and returns the rows it changed.
    pub(super) fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, String> {
        let mut result = self.run(sql, params)?;
        // SAFETY: a successful result.
        Ok(unsafe { ffi::duckdb_rows_changed(&mut result.0) })
    }

    /// Runs one statement with its parameters and returns its column names and rows.
    pub(super) fn query(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<(Vec<String>, Vec<Vec<SqlValue>>), String> {
        let mut result = self.run(sql, params)?;
        result.read()
    }

    /// A function that interrupts whatever this connection runs, from any thread.
    pub(super) fn interrupter(&self) -> impl Fn() + Send + Sync + 'static {
        let handle = self.handle.clone();
        // SAFETY: the handle stays open while the closure holds it.
        move || unsafe { ffi::duckdb_interrupt(handle.raw) }
    }

    fn run(&self, sql: &str, params: &[SqlValue]) -> Result<QueryResult, String> {
        let c_sql = c_string(sql)?;
        let mut statement = Prepared(std::ptr::null_mut());
        // SAFETY: the connection is open; the statement and result are destroyed by their
        // guards (DuckDB wants both destroyed even when they failed).
        unsafe {
            if ffi::duckdb_prepare(self.handle.raw, c_sql.as_ptr(), &mut statement.0)
                != ffi::DuckDBSuccess
            {
                return Err(statement.error());
            }
            let expected = ffi::duckdb_nparams(statement.0) as usize;
            if expected != params.len() {
                return Err(format!(
                    "the statement takes {expected} parameters, and {} were given",
                    params.len()
                ));
            }
            for (i, value) in params.iter().enumerate() {
                statement.bind(i as u64 + 1, value)?;
            }
            let mut result = QueryResult::empty();
            if ffi::duckdb_execute_prepared(statement.0, &mut result.0) != ffi::DuckDBSuccess {
                return Err(result.error());
            }
            Ok(result)
        }
    }
}

fn c_string(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| "the text holds a NUL byte, which DuckDB cannot take".into())
}

struct Prepared(ffi::duckdb_prepared_statement);

impl Prepared {
    unsafe fn error(&self) -> String {
        message(
            ffi::duckdb_prepare_error(self.0),
            "the statement cannot be prepared",
        )
    }

    unsafe fn bind(&mut self, index: u64, value: &SqlValue) -> Result<(), String> {
        let s = self.0;
        let state = match value {
            SqlValue::Null => ffi::duckdb_bind_null(s, index),
            SqlValue::Bool(b) => ffi::duckdb_bind_boolean(s, index, *b),
            SqlValue::Int(i) => ffi::duckdb_bind_int64(s, index, *i),
            SqlValue::Float(f) => ffi::duckdb_bind_double(s, index, *f),
            SqlValue::Text(t) => {
                ffi::duckdb_bind_varchar_length(s, index, t.as_ptr().cast(), t.len() as ffi::idx_t)
            }
            SqlValue::Timestamp(micros) => {
                ffi::duckdb_bind_timestamp(s, index, ffi::duckdb_timestamp { micros: *micros })
            }
            SqlValue::Date(days) => {
                ffi::duckdb_bind_date(s, index, ffi::duckdb_date { days: *days })
            }
            SqlValue::Time(micros) => {
                ffi::duckdb_bind_time(s, index, ffi::duckdb_time { micros: *micros })
            }
        };
        if state != ffi::DuckDBSuccess {
            return Err(format!("parameter {index}: {}", self.error()));
        }
        Ok(())
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: null or a statement of ours; DuckDB accepts both.
        unsafe { ffi::duckdb_destroy_prepare(&mut self.0) }
    }
}

unsafe fn message(text: *const c_char, otherwise: &str) -> String {
    if text.is_null() {
        otherwise.to_string()
    } else {
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}

struct QueryResult(ffi::duckdb_result);

impl QueryResult {
    fn empty() -> QueryResult {
        // SAFETY: DuckDB's result struct is plain data, zeroed before DuckDB fills it.
        QueryResult(unsafe { std::mem::zeroed() })
    }

    fn error(&mut self) -> String {
        // SAFETY: a result DuckDB filled (its message lives until the result is destroyed).
        unsafe {
            message(
                ffi::duckdb_result_error(&mut self.0),
                "the statement failed",
            )
        }
    }

    fn read(&mut self) -> Result<(Vec<String>, Vec<Vec<SqlValue>>), String> {
        // SAFETY: a successful result; each logical type and chunk is destroyed here.
        unsafe {
            let width = ffi::duckdb_column_count(&mut self.0);
            let mut names = Vec::with_capacity(width as usize);
            let mut readers = Vec::with_capacity(width as usize);
            for col in 0..width {
                let name = message(ffi::duckdb_column_name(&mut self.0, col), "");
                let mut ty = ffi::duckdb_column_logical_type(&mut self.0, col);
                let reader = Reader::of(ty, &name);
                ffi::duckdb_destroy_logical_type(&mut ty);
                readers.push(reader?);
                names.push(name);
            }
            let mut rows = Vec::new();
            loop {
                let mut chunk = ffi::duckdb_fetch_chunk(self.0);
                if chunk.is_null() {
                    break;
                }
                let size = ffi::duckdb_data_chunk_get_size(chunk) as usize;
                let first = rows.len();
                rows.extend((0..size).map(|_| Vec::with_capacity(readers.len())));
                for (col, reader) in readers.iter().enumerate() {
                    let vector = ffi::duckdb_data_chunk_get_vector(chunk, col as ffi::idx_t);
                    let data = ffi::duckdb_vector_get_data(vector);
                    let validity = ffi::duckdb_vector_get_validity(vector);
                    for (row, out) in rows[first..].iter_mut().enumerate() {
                        let valid = validity.is_null()
                            || ffi::duckdb_validity_row_is_valid(validity, row as ffi::idx_t);
                        out.push(if valid {
                            reader.read(data, row)
                        } else {
                            SqlValue::Null
                        });
                    }
                }
                ffi::duckdb_destroy_data_chunk(&mut chunk);
            }
            Ok((names, rows))
        }
    }
}

impl Drop for QueryResult {
    fn drop(&mut self) {
        // SAFETY: zeroed or filled by DuckDB; destroying either is allowed.
        unsafe { ffi::duckdb_destroy_result(&mut self.0) }
    }
}

/// How a result column's values are read from its vectors.
enum Reader {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    I128,
    U128,
    F32,
    F64,
    /// VARCHAR (JSON too) and BLOB.
    Text,
    /// Timestamps, by how many of their units make a microsecond (or the reverse).
    Timestamp {
        micros_per_unit: i64,
        units_per_micro: i64,
    },
    Date,
    Time,
    Decimal {
        scale: u32,
        storage: Box<Reader>,
    },
    Enum {
        storage: Box<Reader>,
        labels: Vec<String>,
    },
    Uuid,
    Interval,
    Null,
}

impl Reader {
    unsafe fn of(ty: ffi::duckdb_logical_type, column: &str) -> Result<Reader, String> {
        let id = ffi::duckdb_get_type_id(ty);
        Ok(match id {
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_DECIMAL => Reader::Decimal {
                scale: ffi::duckdb_decimal_scale(ty).into(),
                storage: Box::new(Reader::plain(ffi::duckdb_decimal_internal_type(ty))),
            },
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_ENUM => {
                let size = ffi::duckdb_enum_dictionary_size(ty);
                let mut labels = Vec::with_capacity(size as usize);
                for i in 0..size {
                    let text = ffi::duckdb_enum_dictionary_value(ty, i.into());
                    labels.push(message(text, ""));
                    ffi::duckdb_free(text.cast());
                }
                Reader::Enum {
                    storage: Box::new(Reader::plain(ffi::duckdb_enum_internal_type(ty))),
                    labels,
                }
            }
            other => match Reader::plain(other) {
                Reader::Null if other != ffi::DUCKDB_TYPE_DUCKDB_TYPE_SQLNULL => {
                    return Err(format!(
                        "column {column:?} is of type {}, which Observes does not read: \
                         cast it in the query (to VARCHAR, for example)",
                        type_name(other)
                    ))
                }
                reader => reader,
            },
        })
    }

    /// The reader of a type with no parameters; `Null` for one it does not read.
    fn plain(id: ffi::duckdb_type) -> Reader {
        match id {
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_BOOLEAN => Reader::Bool,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_TINYINT => Reader::I8,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_SMALLINT => Reader::I16,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTEGER => Reader::I32,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT => Reader::I64,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_UTINYINT => Reader::U8,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_USMALLINT => Reader::U16,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_UINTEGER => Reader::U32,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_UBIGINT => Reader::U64,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_HUGEINT => Reader::I128,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_UHUGEINT => Reader::U128,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_FLOAT => Reader::F32,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE => Reader::F64,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR | ffi::DUCKDB_TYPE_DUCKDB_TYPE_BLOB => {
                Reader::Text
            }
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP | ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_TZ => {
                Reader::Timestamp {
                    micros_per_unit: 1,
                    units_per_micro: 1,
                }
            }
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_S => Reader::Timestamp {
                micros_per_unit: 1_000_000,
                units_per_micro: 1,
            },
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_MS => Reader::Timestamp {
                micros_per_unit: 1_000,
                units_per_micro: 1,
            },
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_NS
            | ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_TZ_NS => Reader::Timestamp {
                micros_per_unit: 1,
                units_per_micro: 1_000,
            },
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_DATE => Reader::Date,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIME => Reader::Time,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_UUID => Reader::Uuid,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTERVAL => Reader::Interval,
            _ => Reader::Null,
        }
    }

    /// The value at `row` of a vector's data. `data` holds this reader's type.
    unsafe fn read(&self, data: *mut std::ffi::c_void, row: usize) -> SqlValue {
        fn at<T: Copy>(data: *mut std::ffi::c_void, row: usize) -> T {
            // SAFETY: the caller's promise: `data` is an array of T with a value at `row`.
            unsafe { *data.cast::<T>().add(row) }
        }
        let int = |v: i128| {
            i64::try_from(v).map_or_else(|_| SqlValue::Text(v.to_string()), SqlValue::Int)
        };
        match self {
            Reader::Bool => SqlValue::Bool(at::<bool>(data, row)),
            Reader::I8 => SqlValue::Int(at::<i8>(data, row).into()),
            Reader::I16 => SqlValue::Int(at::<i16>(data, row).into()),
            Reader::I32 => SqlValue::Int(at::<i32>(data, row).into()),
            Reader::I64 => SqlValue::Int(at::<i64>(data, row)),
            Reader::U8 => SqlValue::Int(at::<u8>(data, row).into()),
            Reader::U16 => SqlValue::Int(at::<u16>(data, row).into()),
            Reader::U32 => SqlValue::Int(at::<u32>(data, row).into()),
            Reader::U64 => int(at::<u64>(data, row).into()),
            Reader::I128 => int(hugeint(at(data, row))),
            Reader::U128 => {
                let v: ffi::duckdb_uhugeint = at(data, row);
                let v = (u128::from(v.upper) << 64) | u128::from(v.lower);
                i64::try_from(v).map_or_else(|_| SqlValue::Text(v.to_string()), SqlValue::Int)
            }
            Reader::F32 => SqlValue::Float(at::<f32>(data, row).into()),
            Reader::F64 => SqlValue::Float(at::<f64>(data, row)),
            Reader::Text => {
                let mut s: ffi::duckdb_string_t = at(data, row);
                let len = ffi::duckdb_string_t_length(s) as usize;
                let ptr = ffi::duckdb_string_t_data(&mut s);
                let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
                SqlValue::Text(String::from_utf8_lossy(bytes).into_owned())
            }
            Reader::Timestamp {
                micros_per_unit,
                units_per_micro,
            } => SqlValue::Timestamp(
                at::<i64>(data, row).saturating_mul(*micros_per_unit) / units_per_micro,
            ),
            // As text, the way the dashboards and tests have always read DuckDB dates.
            Reader::Date => SqlValue::Text(date_text(at::<i32>(data, row))),
            Reader::Time => SqlValue::Time(at::<i64>(data, row)),
            Reader::Decimal { scale, storage } => {
                let unscaled: i128 = match storage.read(data, row) {
                    SqlValue::Int(i) => i.into(),
                    SqlValue::Text(t) => t.parse().unwrap_or_default(),
                    _ => 0,
                };
                SqlValue::Float(decimal(unscaled, *scale))
            }
            Reader::Enum { storage, labels } => match storage.read(data, row) {
                SqlValue::Int(i) => usize::try_from(i)
                    .ok()
                    .and_then(|i| labels.get(i))
                    .map_or(SqlValue::Null, |l| SqlValue::Text(l.clone())),
                _ => SqlValue::Null,
            },
            Reader::Uuid => {
                // Stored with the top bit flipped, so that UUIDs sort as their text does.
                let v = hugeint(at(data, row)) as u128 ^ (1u128 << 127);
                let hex = format!("{v:032x}");
                SqlValue::Text(format!(
                    "{}-{}-{}-{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                ))
            }
            Reader::Interval => {
                let v: ffi::duckdb_interval = at(data, row);
                SqlValue::Text(format!(
                    "{} months {} days {} microseconds",
                    v.months, v.days, v.micros
                ))
            }
            Reader::Null => SqlValue::Null,
        }
    }
}

fn hugeint(v: ffi::duckdb_hugeint) -> i128 {
    (i128::from(v.upper) << 64) | i128::from(v.lower)
}

/// A DECIMAL's value as the nearest double: its exact text, parsed.
fn decimal(unscaled: i128, scale: u32) -> f64 {
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}0")
        .parse()
        .unwrap_or(f64::NAN)
}

pub(super) fn date_text(days: i32) -> String {
    let (y, m, d) = observes_model::time::civil_from_days(days.into());
    format!("{y:04}-{m:02}-{d:02}")
}

fn type_name(id: ffi::duckdb_type) -> String {
    match id {
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_LIST => "LIST".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_STRUCT => "STRUCT".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_MAP => "MAP".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_ARRAY => "ARRAY".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_UNION => "UNION".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIT => "BIT".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIME_TZ => "TIMETZ".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIME_NS => "TIME_NS".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGNUM => "BIGNUM".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_GEOMETRY => "GEOMETRY".into(),
        ffi::DUCKDB_TYPE_DUCKDB_TYPE_VARIANT => "VARIANT".into(),
        other => format!("number {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Connection {
        Connection::open(&Arc::new(Database::open(":memory:").unwrap())).unwrap()
    }

    #[test]
    fn results_read_every_common_type() {
        let conn = memory();
        let (names, rows) = conn
            .query(
                "SELECT true AS b, 1::TINYINT AS i8, -2::SMALLINT AS i16, 3::INTEGER AS i32, \
                 -4::BIGINT AS i64, 5::UTINYINT AS u8, 18446744073709551615::UBIGINT AS u64, \
                 170141183460469231731687303715884105727::HUGEINT AS i128, 1.5::FLOAT AS f32, \
                 2.25::DOUBLE AS f64, 'a longer text than twelve' AS long, 'short' AS short, \
                 '{\"a\":1}'::JSON AS json, TIMESTAMPTZ '2026-01-02 03:04:05.678901+00' AS tz, \
                 TIMESTAMP_S '1970-01-01 00:00:01' AS ts_s, TIMESTAMP_NS '1970-01-01 00:00:00.000002' AS ts_ns, \
                 DATE '2024-02-29' AS d, TIME '01:00:00.5' AS t, 12.345::DECIMAL(10,3) AS dec, \
                 -0.05::DECIMAL(30,2) AS big_dec, 'b'::ENUM('a','b') AS e, \
                 '550e8400-e29b-41d4-a716-446655440000'::UUID AS u, NULL AS n, \
                 NULL::VARCHAR AS null_text",
                &[],
            )
            .unwrap();
        assert_eq!(names.len(), 24);
        assert_eq!(names[0], "b");
        assert_eq!(
            rows,
            vec![vec![
                SqlValue::Bool(true),
                SqlValue::Int(1),
                SqlValue::Int(-2),
                SqlValue::Int(3),
                SqlValue::Int(-4),
                SqlValue::Int(5),
                SqlValue::Text("18446744073709551615".into()),
                SqlValue::Text("170141183460469231731687303715884105727".into()),
                SqlValue::Float(1.5),
                SqlValue::Float(2.25),
                SqlValue::Text("a longer text than twelve".into()),
                SqlValue::Text("short".into()),
                SqlValue::Text("{\"a\":1}".into()),
                SqlValue::Timestamp(1_767_323_045_678_901),
                SqlValue::Timestamp(1_000_000),
                SqlValue::Timestamp(2),
                SqlValue::Text("2024-02-29".into()),
                SqlValue::Time(3_600_500_000),
                SqlValue::Float(12.345),
                SqlValue::Float(-0.05),
                SqlValue::Text("b".into()),
                SqlValue::Text("550e8400-e29b-41d4-a716-446655440000".into()),
                SqlValue::Null,
                SqlValue::Null,
            ]]
        );
    }

    #[test]
    fn parameters_bind_and_results_span_chunks() {
        let conn = memory();
        conn.execute_batch(
            "CREATE TABLE t (i BIGINT, s VARCHAR, ts TIMESTAMPTZ); CREATE TABLE u (x INT);",
        )
        .unwrap();
        let params = [
            SqlValue::Int(7),
            SqlValue::Text("it's ok; -- not SQL".into()),
            SqlValue::Timestamp(1_000_000),
        ];
        assert_eq!(
            conn.execute("INSERT INTO t VALUES (?, ?, ?)", &params)
                .unwrap(),
            1
        );
        let (_, rows) = conn
            .query("SELECT * FROM t WHERE s = ?", &params[1..2])
            .unwrap();
        assert_eq!(rows, vec![params.to_vec()]);
        // More rows than one chunk (2,048), with NULLs among them.
        let (_, rows) = conn
            .query(
                "SELECT CASE WHEN i % 1000 = 0 THEN NULL ELSE i END FROM range(5000) r(i)",
                &[],
            )
            .unwrap();
        assert_eq!(rows.len(), 5000);
        assert_eq!(rows[0], vec![SqlValue::Null]);
        assert_eq!(rows[4999], vec![SqlValue::Int(4999)]);
        assert_eq!(rows.iter().filter(|r| r[0] == SqlValue::Null).count(), 5);
    }

    #[test]
    fn errors_are_duckdbs_own_messages() {
        let conn = memory();
        let err = conn.execute("SELECT * FROM missing", &[]).unwrap_err();
        assert!(
            err.starts_with("Catalog Error: Table with name missing does not exist!"),
            "{err}"
        );
        let err = conn.execute_batch("CREATE TABLE").unwrap_err();
        assert!(err.starts_with("Parser Error:"), "{err}");
        assert_eq!(
            conn.execute("SELECT ?", &[]).unwrap_err(),
            "the statement takes 1 parameters, and 0 were given"
        );
        assert_eq!(
            conn.execute("SELECT '\0'", &[]).unwrap_err(),
            "the text holds a NUL byte, which DuckDB cannot take"
        );
        let err = conn.query("SELECT [1, 2] AS l", &[]).unwrap_err();
        assert_eq!(
            err,
            "column \"l\" is of type LIST, which Observes does not read: cast it in the query (to VARCHAR, for example)"
        );
    }

    #[test]
    fn an_interrupt_stops_a_running_statement() {
        let conn = memory();
        let interrupt = conn.interrupter();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            interrupt();
        });
        let err = conn
            .query(
                "SELECT count(*) FROM range(10000000000) a, range(1000) b",
                &[],
            )
            .unwrap_err();
        stopper.join().unwrap();
        assert!(err.contains("Interrupt"), "{err}");
        // The connection still works.
        assert_eq!(
            conn.query("SELECT 1", &[]).unwrap().1,
            vec![vec![SqlValue::Int(1)]]
        );
    }

    #[test]
    fn decimals_read_exactly_then_round_once() {
        assert_eq!(decimal(12345, 3), 12.345);
        assert_eq!(decimal(-5, 2), -0.05);
        assert_eq!(decimal(7, 0), 7.0);
        assert_eq!(decimal(1, 18), 1e-18);
    }
}
