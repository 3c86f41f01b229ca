//! Warehouses behind one trait.
//!
//! A [`Warehouse`] is a connection that can run SQL in a transaction and bulk-append Arrow
//! batches the fastest way its engine allows. Everything a load does beyond that (creating
//! and evolving tables, the write modes, metadata tables) is SQL shared by all warehouses
//! and lives in [`sql`], built with the one identifier quoting function, [`sql::quote`].
//!
//! Backends: [`duckdb`] (the embedded default, `duckdb://path/to/file.duckdb`) and
//! [`postgres`] (`postgres://user@host:port/db`) and [`redshift`]
//! (`redshift://user@host:5439/db?staging=s3://bucket/prefix`).
//!
//! ```
//! use observes_warehouse::{connect, SqlValue};
//! let mut wh = connect("duckdb://:memory:").unwrap();
//! wh.execute("CREATE TABLE t (x BIGINT)", &[]).unwrap();
//! wh.execute("INSERT INTO t VALUES ($1)", &[SqlValue::Int(7)]).unwrap();
//! assert_eq!(wh.query("SELECT x FROM t", &[]).unwrap(), vec![vec![SqlValue::Int(7)]]);
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod duckdb;
pub mod pipelined;
pub mod postgres;
pub mod redshift;
pub mod sql;

use arrow_array::RecordBatch;
use observes_model::ColumnType;

/// A value bound to a SQL parameter or read from a result.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// Text.
    Text(String),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// Days since the Unix epoch.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
}

impl SqlValue {
    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}

impl From<i64> for SqlValue {
    fn from(i: i64) -> Self {
        SqlValue::Int(i)
    }
}

/// What a warehouse's SQL looks like.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The backend's name, as users write it (`duckdb`, `postgres`, `redshift`).
    pub name: &'static str,
    /// Names a schema cannot take here (they would be ambiguous with a catalog).
    pub reserved_schemas: &'static [&'static str],
    /// Longest identifier, in bytes.
    pub max_identifier: usize,
    /// Longest text value, in bytes (`None`: no practical limit). A longer value is bad
    /// input, never cut.
    pub max_text_bytes: Option<usize>,
    /// `ALTER COLUMN … TYPE` works inside a transaction (not in Redshift).
    pub alter_type_in_place: bool,
    /// The type of free text in Observes' own metadata tables (errors, rejected records).
    pub long_text: &'static str,
    /// JSON columns take `JSON_PARSE(text)` and read back with `JSON_SERIALIZE(column)`
    /// (Redshift's `SUPER`); elsewhere text goes in and comes out as it is.
    pub json_functions: bool,
    /// How this warehouse is best loaded: the loader's defaults, which a pipeline may
    /// override.
    pub load: LoadSizes,
    type_name: fn(ColumnType) -> &'static str,
}

/// The sizes a load works in, per warehouse (as dlt's destination capabilities are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSizes {
    /// Rows a stream buffers before they are sent (not committed).
    pub batch_rows: usize,
    /// Bytes a stream buffers before they are sent, whatever the row count (wide or
    /// text-heavy records).
    pub batch_bytes: usize,
    /// Records a checkpoint gathers before its `STATE` commits.
    pub commit_records: u64,
    /// Bytes of normalized rows a checkpoint gathers before its `STATE` commits, whatever
    /// the record count: what bounds a transaction of wide records.
    pub commit_bytes: u64,
}

impl Dialect {
    /// The SQL type of a column type.
    pub fn type_name(&self, ty: ColumnType) -> &'static str {
        (self.type_name)(ty)
    }
}

/// A cause, boxed: a backend's own error, or a message where it has none (`String` and
/// `&str` convert with `into()`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a warehouse call failed.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// A URL no backend takes.
    #[error(
        "unsupported warehouse URL {0:?} (expected duckdb://PATH, postgres://USER@HOST:PORT/DB or redshift://USER@HOST:PORT/DB?staging=s3://BUCKET/PREFIX)"
    )]
    UnsupportedUrl(String),
    /// The warehouse could not be opened or reached.
    #[error("opening {url}")]
    Open {
        /// The URL, credentials redacted.
        url: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A statement failed.
    #[error("running {}", sql::summary(sql))]
    Sql {
        /// The statement.
        sql: String,
        /// The warehouse's error.
        #[source]
        source: BoxError,
    },
    /// Rows could not be bulk loaded into a table.
    #[error("bulk load into {table}")]
    BulkLoad {
        /// The table, qualified.
        table: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A column's type in the warehouse is not one Observes maps back to a column type.
    #[error("column {column:?} of {table} has type {found:?}, which Observes does not load into")]
    UnsupportedColumnType {
        /// The table, qualified.
        table: String,
        /// The column.
        column: String,
        /// The type the warehouse reports.
        found: String,
    },
}

/// A warehouse call's result.
pub type Result<T, E = WarehouseError> = std::result::Result<T, E>;

/// A connection to a warehouse.
pub trait Warehouse: Send {
    /// The SQL flavour and sizes of this backend.
    fn dialect(&self) -> Dialect;

    /// Runs a statement with bound parameters (`$1`, `$2`, …); returns rows changed.
    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64>;

    /// Runs a query and returns all its rows (for small results: metadata, state).
    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>> {
        Ok(self.query_with_columns(sql, params)?.1)
    }

    /// Runs a query and returns its column names and all its rows.
    fn query_with_columns(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<(Vec<String>, Vec<Vec<SqlValue>>)>;

    /// Opens a transaction.
    fn begin(&mut self) -> Result<()>;
    /// Commits the open transaction.
    fn commit(&mut self) -> Result<()>;
    /// Rolls back the open transaction.
    fn rollback(&mut self) -> Result<()>;

    /// Starts a commit and returns at once where the engine allows, so the caller can
    /// prepare more work while it runs; [`PendingCommit::wait`] gives its outcome. Calls made
    /// meanwhile run after it. By default the commit happens here and now.
    fn start_commit(&mut self) -> Result<PendingCommit> {
        self.commit()?;
        Ok(PendingCommit::done())
    }

    /// The columns of a table in order, or `None` when it does not exist.
    fn table_columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, ColumnType)>>>;

    /// Appends a batch to an existing table whose columns match the batch's, inside the
    /// open transaction, by the engine's bulk path.
    fn bulk_append(&mut self, schema: &str, table: &str, batch: &RecordBatch) -> Result<()>;

    /// A way to stop this connection's running statement from another thread (a query
    /// given up by its caller), where the engine has one.
    fn interrupt_handle(&self) -> Option<Interrupt> {
        None
    }
}

/// Stops a connection's running statement; the statement then fails.
pub struct Interrupt(Box<dyn Fn() + Send + Sync>);

impl Interrupt {
    /// An interrupt that calls `stop`.
    pub fn new(stop: impl Fn() + Send + Sync + 'static) -> Interrupt {
        Interrupt(Box::new(stop))
    }

    /// Stops the running statement.
    pub fn interrupt(&self) {
        (self.0)()
    }
}

/// A commit that may still be running.
#[derive(Debug)]
pub struct PendingCommit {
    running: Option<std::sync::mpsc::Receiver<Result<()>>>,
    outcome: Option<Result<()>>,
}

impl PendingCommit {
    /// A commit that already finished, successfully.
    pub fn done() -> PendingCommit {
        PendingCommit {
            running: None,
            outcome: Some(Ok(())),
        }
    }

    pub(crate) fn running(outcome: std::sync::mpsc::Receiver<Result<()>>) -> PendingCommit {
        PendingCommit {
            running: Some(outcome),
            outcome: None,
        }
    }

    fn gone() -> WarehouseError {
        WarehouseError::Sql {
            sql: "COMMIT".into(),
            source: "the warehouse connection's thread stopped".into(),
        }
    }

    /// Whether it has finished, without waiting.
    pub fn is_finished(&mut self) -> bool {
        if self.outcome.is_none() {
            if let Some(rx) = &self.running {
                match rx.try_recv() {
                    Ok(result) => self.outcome = Some(result),
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        self.outcome = Some(Err(Self::gone()))
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => {}
                }
            }
        }
        self.outcome.is_some()
    }

    /// Waits for the commit; `Ok` once it is durable.
    pub fn wait(self) -> Result<()> {
        match (self.outcome, self.running) {
            (Some(result), _) => result,
            (None, Some(rx)) => rx.recv().unwrap_or_else(|_| Err(Self::gone())),
            (None, None) => Ok(()),
        }
    }
}

/// Batches a loader may have waiting for the warehouse's thread. With normalizing on
/// helper threads the loader rarely waits long for room; a larger queue mostly adds to
/// the peak memory at the end of a transaction (bench/RESULTS.md).
const QUEUED_BYTES: usize = 16 << 20;

/// Opens the warehouse a URL names, with bulk appends on their own thread (see
/// [`pipelined`]): the connection to load with.
pub fn connect_pipelined(url: &str) -> Result<Box<dyn Warehouse>> {
    Ok(Box::new(pipelined::Pipelined::new(
        connect(url)?,
        QUEUED_BYTES,
    )))
}

/// `n` connections (at least one) for queries run side by side: for DuckDB, one open
/// file and more connections to it (a process holds a file once); elsewhere, `n`
/// sessions.
pub fn connect_readers(url: &str, n: usize) -> Result<Vec<Box<dyn Warehouse>>> {
    let n = n.max(1);
    if let Some(path) = url.strip_prefix("duckdb://") {
        let first = duckdb::DuckDbWarehouse::open(path)?;
        let mut out: Vec<Box<dyn Warehouse>> = Vec::with_capacity(n);
        for _ in 1..n {
            out.push(Box::new(first.try_clone()?));
        }
        out.push(Box::new(first));
        return Ok(out);
    }
    (0..n).map(|_| connect(url)).collect()
}

/// Opens the warehouse a URL names.
pub fn connect(url: &str) -> Result<Box<dyn Warehouse>> {
    if let Some(path) = url.strip_prefix("duckdb://") {
        return Ok(Box::new(duckdb::DuckDbWarehouse::open(path)?));
    }
    if url.starts_with("redshift://") {
        return Ok(Box::new(redshift::RedshiftWarehouse::connect(url)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PostgresWarehouse::connect(url)?));
    }
    Err(WarehouseError::UnsupportedUrl(postgres::redact_url(url)))
}
