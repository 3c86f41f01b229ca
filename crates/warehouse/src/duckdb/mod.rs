//! DuckDB: the embedded default warehouse, one file (`duckdb://observes.duckdb`).
//!
//! Bulk data goes in as `INSERT … SELECT` from a table function that scans the normalizer's
//! Arrow batches (`scan.rs`), in whole row groups, several at a time so that DuckDB's
//! threads compress them in parallel. The inserts run inside the connection's open
//! transaction, so their rows commit or roll back with everything else.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use duckdb::types::{TimeUnit, ToSqlOutput, Value};
use duckdb::{ffi, params_from_iter, Connection, ToSql};
use observes_model::ColumnType;

use crate::{sql, Dialect, Result, SqlValue, Warehouse, WarehouseError};

/// The catalog a DuckDB file is attached as. DuckDB names a file's catalog after the file,
/// so `gitlab.duckdb` with a schema `gitlab` made every `gitlab.table` ambiguous (a binder
/// error) in our SQL and in users' dashboard queries alike. Attached under this name, the
/// file's schemas are reached as `schema.table` whatever the file is called.
pub const CATALOG: &str = "observes_warehouse";

/// DuckDB's SQL dialect. Identifiers have no practical limit; 255 keeps names readable.
pub const DIALECT: Dialect = Dialect {
    name: "duckdb",
    // Catalogs of the database: a schema of one of these names is ambiguous in `x.table`.
    reserved_schemas: &[CATALOG, "memory", "system", "temp"],
    max_identifier: 255,
    max_text_bytes: None,
    alter_type_in_place: true,
    json_functions: false,
    long_text: "VARCHAR",
    type_name,
};

fn type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::BigInt => "BIGINT",
        ColumnType::Double => "DOUBLE",
        ColumnType::Text => "VARCHAR",
        ColumnType::Timestamp => "TIMESTAMPTZ",
        ColumnType::Date => "DATE",
        ColumnType::Time => "TIME",
        ColumnType::Json => "JSON",
    }
}

/// The column type of a DuckDB `data_type` as `information_schema` spells it.
fn column_type(data_type: &str) -> Option<ColumnType> {
    Some(match data_type {
        "BOOLEAN" => ColumnType::Boolean,
        "BIGINT" | "INTEGER" | "SMALLINT" | "TINYINT" => ColumnType::BigInt,
        "DOUBLE" | "FLOAT" | "REAL" => ColumnType::Double,
        "VARCHAR" => ColumnType::Text,
        "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => ColumnType::Timestamp,
        "DATE" => ColumnType::Date,
        "TIME" => ColumnType::Time,
        "JSON" => ColumnType::Json,
        _ => return None,
    })
}

mod scan;

pub struct DuckDbWarehouse {
    // Declared before `_database`: a connection closes before its database.
    conn: Connection,
    /// Appended batches not yet inserted, per table in order of arrival.
    pending: Vec<Pending>,
    /// Insertion order is left free on this session (between a parallel insert that
    /// failed and the rollback that follows).
    insertion_order_free: bool,
    /// The URL's `memory_limit` (DuckDB's default if `None`), restored after each trim.
    memory_limit: Option<String>,
    /// A file attached as [`CATALOG`] (not `:memory:`).
    attached: bool,
    _database: Arc<Database>,
}

/// A database handle of our own, shared by its connections and closed after the last:
/// registering the scan needs a connection handle that `duckdb::Connection` does not give.
struct Database(ffi::duckdb_database);

// SAFETY: a DuckDB database handle may be used and closed from any thread.
unsafe impl Send for Database {}
unsafe impl Sync for Database {}

impl Database {
    fn open(path: &str) -> std::result::Result<Database, String> {
        let c_path = CString::new(path).map_err(|e| e.to_string())?;
        let mut db: ffi::duckdb_database = std::ptr::null_mut();
        let mut error: *mut std::ffi::c_char = std::ptr::null_mut();
        // SAFETY: the out-pointers are valid; an error message is DuckDB's to free.
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
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: every connection to it is closed by now (see `DuckDbWarehouse`).
        unsafe { ffi::duckdb_close(&mut self.0) }
    }
}

struct Pending {
    schema: String,
    table: String,
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
}

/// DuckDB's row group. Rows are inserted in whole row groups while a transaction runs
/// (the rest waits for the next insert or the commit), so a transaction's rows land in
/// full row groups rather than in partial ones per batch.
pub const ROW_GROUP: usize = 122_880;
/// Whole row groups gathered per table before they are inserted, together: DuckDB's
/// threads then compress them at the same time (more would hold more rows in memory).
const ROW_GROUPS_PER_INSERT: usize = 2;
/// Wide rows are inserted sooner, whole row group or not, to keep memory flat.
const INSERT_BYTES: usize = 96 << 20;

struct Param<'a>(&'a SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(match self.0 {
            SqlValue::Null => Value::Null,
            SqlValue::Bool(b) => Value::Boolean(*b),
            SqlValue::Int(i) => Value::BigInt(*i),
            SqlValue::Float(f) => Value::Double(*f),
            SqlValue::Text(s) => Value::Text(s.clone()),
            SqlValue::Timestamp(t) => Value::Timestamp(TimeUnit::Microsecond, *t),
            SqlValue::Date(d) => Value::Date32(*d),
            SqlValue::Time(t) => Value::Time64(TimeUnit::Microsecond, *t),
        }))
    }
}

fn from_duckdb(value: Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Boolean(b) => SqlValue::Bool(b),
        Value::TinyInt(i) => SqlValue::Int(i.into()),
        Value::SmallInt(i) => SqlValue::Int(i.into()),
        Value::Int(i) => SqlValue::Int(i.into()),
        Value::BigInt(i) => SqlValue::Int(i),
        Value::HugeInt(i) => {
            i64::try_from(i).map_or_else(|_| SqlValue::Text(i.to_string()), SqlValue::Int)
        }
        Value::UTinyInt(i) => SqlValue::Int(i.into()),
        Value::USmallInt(i) => SqlValue::Int(i.into()),
        Value::UInt(i) => SqlValue::Int(i.into()),
        Value::UBigInt(i) => {
            i64::try_from(i).map_or_else(|_| SqlValue::Text(i.to_string()), SqlValue::Int)
        }
        Value::Float(f) => SqlValue::Float(f.into()),
        Value::Double(f) => SqlValue::Float(f),
        Value::Timestamp(unit, v) => SqlValue::Timestamp(match unit {
            TimeUnit::Second => v * 1_000_000,
            TimeUnit::Millisecond => v * 1_000,
            TimeUnit::Microsecond => v,
            TimeUnit::Nanosecond => v / 1_000,
        }),
        Value::Text(s) => SqlValue::Text(s),
        Value::Date32(d) => SqlValue::Text(date_text(d)),
        // DECIMAL (e.g. ROUND(CAST(x AS NUMERIC), 1)): its exact text read as a float.
        Value::Decimal(d) => d
            .to_string()
            .parse()
            .map_or_else(|_| SqlValue::Text(d.to_string()), SqlValue::Float),
        other => SqlValue::Text(format!("{other:?}")),
    }
}

fn date_text(days: i32) -> String {
    let (y, m, d) = observes_model::time::civil_from_days(days.into());
    format!("{y:04}-{m:02}-{d:02}")
}

/// DuckDB's buffer pool is trimmed to this after each commit: it otherwise keeps every
/// block of the file it has written (up to its `memory_limit`, by default 80% of the
/// machine), so a long load's memory would grow with the file (bench/RESULTS.md).
const TRIM_TO: &str = "64MB";

/// What follows `duckdb://`: `PATH[?memory_limit=SIZE]`.
#[derive(Debug, PartialEq)]
struct Target<'a> {
    path: &'a str,
    /// `None`: DuckDB's default.
    memory_limit: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn parse(target: &'a str) -> std::result::Result<Target<'a>, String> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut memory_limit = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("memory_limit", size)) if is_size(size) => memory_limit = Some(size),
                Some(("memory_limit", size)) => {
                    return Err(format!(
                        "memory_limit {size:?} is not a size such as 512MB or 4GB"
                    ))
                }
                _ => return Err(format!("unknown parameter {pair:?} (known: memory_limit)")),
            }
        }
        Ok(Target { path, memory_limit })
    }
}

/// Digits, then a unit of letters that DuckDB checks (`512MB`, `1.5GiB`): nothing that
/// could end the SQL string literal it goes into.
fn is_size(text: &str) -> bool {
    let number = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    number.starts_with(|c: char| c.is_ascii_digit())
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.len() - number.len() <= 3
}

impl DuckDbWarehouse {
    /// Opens (or creates) a DuckDB file, `PATH[?memory_limit=SIZE]`; `:memory:` for an
    /// in-memory database.
    pub fn open(target: &str) -> Result<Self> {
        let open_err = |message: String| WarehouseError::Open {
            url: format!("duckdb://{target}"),
            message,
        };
        let Target { path, memory_limit } = Target::parse(target).map_err(open_err)?;
        if path != ":memory:" {
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| open_err(e.to_string()))?;
                }
            }
        }
        // A file is attached to an in-memory database under a fixed catalog name
        // ([`CATALOG`]); its spill files go beside it, not into the working directory.
        let database = Arc::new(Database::open(":memory:").map_err(open_err)?);
        // SAFETY: the handle is open, and `database` outlives the connection.
        let conn = unsafe { Connection::open_from_raw(database.0) }
            .map_err(|e| open_err(e.to_string()))?;
        let attached = path != ":memory:";
        if attached {
            conn.execute_batch(&format!(
                "SET temp_directory = {}; ATTACH {} AS {}; USE {};",
                sql::literal(&format!("{path}.tmp")),
                sql::literal(path),
                sql::quote(CATALOG),
                sql::quote(CATALOG),
            ))
            .map_err(|e| open_err(e.to_string()))?;
        }
        // Offline machines must never try to download an extension mid-load. A load's
        // row groups are compressed and written as soon as each is complete, not held
        // uncompressed (by default up to five per table) until its COMMIT: less memory,
        // and a shorter COMMIT holding up the loader (bench/RESULTS.md).
        conn.execute_batch(
            "SET autoinstall_known_extensions = false; \
             SET write_buffer_row_group_count = 1;",
        )
        .map_err(|e| open_err(e.to_string()))?;
        if let Some(size) = memory_limit {
            conn.execute_batch(&format!("SET memory_limit = '{size}'"))
                .map_err(|e| open_err(e.to_string()))?;
        }
        // Timestamps are stored in UTC; show them in UTC too, whatever the machine's zone.
        // The setting comes with the ICU extension; a DuckDB built without it (the
        // `bundled` feature) has no zones and shows UTC anyway.
        let has_zones: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM duckdb_settings() WHERE name = 'TimeZone'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| open_err(e.to_string()))?;
        if has_zones {
            conn.execute_batch("SET TimeZone = 'UTC'")
                .map_err(|e| open_err(e.to_string()))?;
        }
        scan::register(database.0).map_err(open_err)?;
        Ok(DuckDbWarehouse {
            conn,
            pending: Vec::new(),
            insertion_order_free: false,
            memory_limit: memory_limit.map(str::to_string),
            attached,
            _database: database,
        })
    }

    /// Another connection to the same database (for readers running beside a load).
    pub fn try_clone(&self) -> Result<Self> {
        let open_err = |e: duckdb::Error| WarehouseError::Open {
            url: "duckdb (clone)".into(),
            message: e.to_string(),
        };
        let conn = self.conn.try_clone().map_err(open_err)?;
        // The default catalog is per connection.
        if self.attached {
            conn.execute_batch(&format!("USE {};", sql::quote(CATALOG)))
                .map_err(open_err)?;
        }
        Ok(DuckDbWarehouse {
            conn,
            pending: Vec::new(),
            insertion_order_free: false,
            memory_limit: self.memory_limit.clone(),
            attached: self.attached,
            _database: self._database.clone(),
        })
    }

    /// Drops the file's blocks that DuckDB keeps cached (they are on disk) by lowering its
    /// memory limit for a moment: lowering it evicts at once. A limit that cannot be met
    /// (a reader on another connection holds more) is refused by DuckDB, which then keeps
    /// the old one; either way the limit is put back. The commit before stands regardless.
    fn trim_buffer_pool(&self) {
        if let Err(e) = self
            .conn
            .execute_batch(&format!("SET memory_limit = '{TRIM_TO}'"))
        {
            tracing::debug!(error = %e, "the buffer pool was not trimmed");
        }
        let restore = match &self.memory_limit {
            Some(size) => format!("SET memory_limit = '{size}'"),
            None => "RESET memory_limit".to_string(),
        };
        if let Err(e) = self.conn.execute_batch(&restore) {
            tracing::warn!(error = %e, "DuckDB's memory limit was not restored after a trim");
        }
    }

    /// Inserts every gathered batch, table by table.
    fn flush(&mut self) -> Result<()> {
        for pending in std::mem::take(&mut self.pending) {
            self.insert(pending)?;
        }
        Ok(())
    }

    /// Inserts the whole row groups of a table's gathered rows and keeps the rest.
    fn insert_row_groups(&mut self, at: usize) -> Result<()> {
        let pending = &mut self.pending[at];
        let take = pending.rows - pending.rows % ROW_GROUP;
        let mut batches = Vec::new();
        let mut kept = Vec::new();
        let mut taken = 0;
        for batch in std::mem::take(&mut pending.batches) {
            let n = batch.num_rows();
            if taken + n <= take {
                batches.push(batch);
            } else if taken < take {
                let head = take - taken;
                batches.push(batch.slice(0, head));
                kept.push(batch.slice(head, n - head));
            } else {
                kept.push(batch);
            }
            taken += n;
        }
        pending.rows -= take;
        pending.bytes = kept.iter().map(RecordBatch::get_array_memory_size).sum();
        pending.batches = kept;
        let head = Pending {
            schema: pending.schema.clone(),
            table: pending.table.clone(),
            batches,
            rows: take,
            bytes: 0,
        };
        self.insert(head)
    }

    /// One `INSERT … SELECT` of a table's batches. Of more than one row group, DuckDB's
    /// threads each take whole row groups and compress them in parallel, which needs
    /// insertion order left free for the statement; nothing depends on the physical order
    /// (rows are told apart and ordered by `_observes_id`).
    fn insert(&mut self, pending: Pending) -> Result<()> {
        let Some(first) = pending.batches.first() else {
            return Ok(());
        };
        let columns = sql::column_list(
            first.schema().fields().iter().map(|f| f.name().as_str()),
            None,
        );
        let registration = scan::Registration::new(pending.batches);
        let statement = format!(
            "INSERT INTO {} ({columns}) SELECT {columns} FROM {}({}::UBIGINT)",
            sql::qualified(&pending.schema, &pending.table),
            scan::FUNCTION,
            registration.id
        );
        let err = |e: duckdb::Error| WarehouseError::BulkLoad {
            table: format!("{}.{}", pending.schema, pending.table),
            message: e.to_string(),
        };
        let started = std::time::Instant::now();
        if registration.units > 1 {
            self.conn
                .execute_batch("SET SESSION preserve_insertion_order = false")
                .map_err(err)?;
            self.insertion_order_free = true;
            let inserted = self.conn.execute(&statement, []).map_err(err);
            // After a failure the transaction is aborted and refuses even a RESET; the
            // rollback that must follow resets it then.
            self.keep_insertion_order();
            inserted?;
        } else {
            self.conn.execute(&statement, []).map_err(err)?;
        }
        tracing::debug!(
            table = %pending.table,
            rows = pending.rows,
            seconds = started.elapsed().as_secs_f64(),
            "inserted"
        );
        drop(registration);
        Ok(())
    }

    /// Back to DuckDB's default once a parallel insert is over (see `insert`).
    fn keep_insertion_order(&mut self) {
        if self.insertion_order_free
            && self
                .conn
                .execute_batch("RESET SESSION preserve_insertion_order")
                .is_ok()
        {
            self.insertion_order_free = false;
        }
    }

    fn sql_err(sql: &str, e: duckdb::Error) -> WarehouseError {
        WarehouseError::Sql {
            sql: sql.to_string(),
            message: e.to_string(),
        }
    }
}

impl Warehouse for DuckDbWarehouse {
    fn interrupt_handle(&self) -> Option<crate::Interrupt> {
        let handle = self.conn.interrupt_handle();
        Some(crate::Interrupt::new(move || handle.interrupt()))
    }

    fn dialect(&self) -> Dialect {
        DIALECT
    }

    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64> {
        self.flush()?;
        let mut stmt = self.conn.prepare(sql).map_err(|e| Self::sql_err(sql, e))?;
        let n = stmt
            .execute(params_from_iter(params.iter().map(Param)))
            .map_err(|e| Self::sql_err(sql, e))?;
        Ok(n as u64)
    }

    fn query_with_columns(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<(Vec<String>, Vec<Vec<SqlValue>>)> {
        self.flush()?;
        let mut stmt = self.conn.prepare(sql).map_err(|e| Self::sql_err(sql, e))?;
        let mut rows = stmt
            .query(params_from_iter(params.iter().map(Param)))
            .map_err(|e| Self::sql_err(sql, e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| Self::sql_err(sql, e))? {
            let width = row.as_ref().column_count();
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                let v: Value = row.get(i).map_err(|e| Self::sql_err(sql, e))?;
                values.push(from_duckdb(v));
            }
            out.push(values);
        }
        drop(rows);
        Ok((stmt.column_names(), out))
    }

    fn begin(&mut self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN TRANSACTION")
            .map_err(|e| Self::sql_err("BEGIN TRANSACTION", e))
    }

    fn commit(&mut self) -> Result<()> {
        self.flush()?;
        let started = std::time::Instant::now();
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| Self::sql_err("COMMIT", e))?;
        // DuckDB compresses each table's last row group of the transaction here, on this one
        // thread (the complete ones were written as the inserts went).
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "COMMIT");
        self.trim_buffer_pool();
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        self.pending.clear();
        self.conn
            .execute_batch("ROLLBACK")
            .map_err(|e| Self::sql_err("ROLLBACK", e))?;
        self.keep_insertion_order();
        Ok(())
    }

    fn table_columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, ColumnType)>>> {
        let rows = self.query(sql::TABLE_COLUMNS, &[schema.into(), table.into()])?;
        sql::columns_from_rows(schema, table, rows, column_type)
    }

    fn bulk_append(&mut self, schema: &str, table: &str, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let at = match self
            .pending
            .iter()
            .position(|p| p.schema == schema && p.table == table)
        {
            Some(at) => at,
            None => {
                self.pending.push(Pending {
                    schema: schema.to_string(),
                    table: table.to_string(),
                    batches: Vec::new(),
                    rows: 0,
                    bytes: 0,
                });
                self.pending.len() - 1
            }
        };
        let pending = &mut self.pending[at];
        pending.batches.push(batch.clone());
        pending.rows += batch.num_rows();
        pending.bytes += batch.get_array_memory_size();
        if pending.bytes >= INSERT_BYTES {
            let all = self.pending.remove(at);
            self.insert(all)?;
        } else if pending.rows >= ROW_GROUP * ROW_GROUPS_PER_INSERT {
            self.insert_row_groups(at)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_set_the_memory_limit_or_get_the_default() {
        let parse = |t| Target::parse(t);
        let file = |path, memory_limit| Ok(Target { path, memory_limit });
        assert_eq!(parse("a.duckdb"), file("a.duckdb", None));
        assert_eq!(parse(":memory:"), file(":memory:", None));
        assert_eq!(
            parse("a.duckdb?memory_limit=4GB"),
            file("a.duckdb", Some("4GB"))
        );
        assert_eq!(
            parse(":memory:?memory_limit=1.5GiB"),
            file(":memory:", Some("1.5GiB"))
        );
        assert_eq!(
            parse("a.duckdb?memory=1GB"),
            Err(r#"unknown parameter "memory=1GB" (known: memory_limit)"#.into())
        );
        for bad in ["1GB'; DROP TABLE t; --", "GB", "", "1 GB", "12 TERABYTES"] {
            let target = format!("a.duckdb?memory_limit={bad}");
            assert_eq!(
                Target::parse(&target),
                Err(format!(
                    "memory_limit {bad:?} is not a size such as 512MB or 4GB"
                )),
            );
        }
    }

    #[test]
    fn a_commit_leaves_the_buffer_pool_trimmed_and_the_memory_limit_as_set() {
        let dir = tempfile::tempdir().unwrap();
        let one = |wh: &DuckDbWarehouse, sql: &str| -> String {
            wh.conn.query_row(sql, [], |row| row.get(0)).unwrap()
        };
        let default = one(
            &DuckDbWarehouse::open(":memory:").unwrap(),
            "SELECT current_setting('memory_limit')",
        );
        for (query, limit) in [("", default.as_str()), ("?memory_limit=1GB", "953.6 MiB")] {
            let target = format!("{}{query}", dir.path().join("wh.duckdb").display());
            let mut wh = DuckDbWarehouse::open(&target).unwrap();
            assert_eq!(one(&wh, "SELECT current_setting('memory_limit')"), limit);
            wh.begin().unwrap();
            // About 260 MB of hex digits: blocks DuckDB would keep cached.
            wh.execute(
                "CREATE OR REPLACE TABLE t AS SELECT md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS h \
                 FROM range(4000000) r(i)",
                &[],
            )
            .unwrap();
            wh.commit().unwrap();
            let cached: i64 = wh
                .conn
                .query_row(
                    "SELECT sum(memory_usage_bytes)::BIGINT FROM duckdb_memory()",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert!(
                cached <= 64 << 20,
                "{cached} bytes still cached after the commit"
            );
            assert_eq!(one(&wh, "SELECT current_setting('memory_limit')"), limit);
            assert_eq!(one(&wh, "SELECT count(*)::VARCHAR FROM t"), "4000000");
        }
        let err = DuckDbWarehouse::open(&format!(
            "{}/x.duckdb?memory_limit=5XB",
            dir.path().display()
        ))
        .err()
        .unwrap();
        assert!(
            err.to_string().starts_with(&format!(
                "opening duckdb://{}/x.duckdb?memory_limit=5XB: ",
                dir.path().display()
            )),
            "{err}"
        );
    }

    #[test]
    fn dates_print_as_iso() {
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(19_782), "2024-02-29");
        assert_eq!(date_text(-1), "1969-12-31");
    }
}
