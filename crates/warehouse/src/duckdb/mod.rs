//! DuckDB: the embedded default warehouse, one file (`duckdb://observes.duckdb`).
//!
//! Bulk data goes in as `INSERT … SELECT` from a table function over the normalizer's
//! Arrow batches, so that DuckDB's threads compress row groups in parallel: batches of rows
//! up to about 2 KB are gathered and inserted two row groups at a time (`scan.rs`); wider
//! rows, two row groups of which would hold too much memory, are streamed into one insert
//! that runs while they come (`stream.rs`). The inserts run inside the connection's open
//! transaction, so their rows commit or roll back with everything else.

use std::sync::Arc;

use arrow_array::RecordBatch;
use observes_model::ColumnType;

use capi::{Connection, Database};

use crate::{sql, BoxError, Dialect, LoadSizes, Result, SqlValue, Warehouse, WarehouseError};

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
    load: LoadSizes {
        batch_rows: 50_000,
        // Batches wait in several places (the loader's, the queue to the warehouse's
        // thread, the stream a streaming insert reads): at 64 MiB those held 300 MB of 2 KB
        // rows, at 8 MiB 140 MB, as fast (bench/RESULTS.md).
        batch_bytes: 8 << 20,
        // Eight row groups (491,520 records). A table that gets whole row groups in a
        // transaction has them compressed as they fill, several at a time, and moved over
        // as written at commit; what is left over is appended, logged and compressed again
        // at the commit, on one thread. Fewer, larger commits leave less of that
        // (bench/RESULTS.md); a crash redoes at most this many records.
        commit_records: 8 * ROW_GROUP as u64,
        // What eight row groups of the narrow benchmark's records hold, so wider records
        // commit as often by size as those do by count.
        commit_bytes: 256 << 20,
    },
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

mod capi;
mod scan;
mod stream;

/// A DuckDB database file (or `:memory:`), through DuckDB's C API.
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
    /// The limit the loads on this connection set ([`Self::hold_memory_for`]), in bytes; 0
    /// until one inserts.
    load_limit: usize,
    /// A file attached as [`CATALOG`] (not `:memory:`).
    attached: bool,
    /// The insert reading a table's batches as they come, if one runs (see `stream`).
    streaming: Option<Streaming>,
}

/// An `INSERT … SELECT FROM observes_stream(id)` running on its own thread, on this
/// connection lent to it: nothing else runs on the connection until it has ended.
struct Streaming {
    schema: String,
    table: String,
    stream: stream::Stream,
    insert: std::thread::JoinHandle<std::result::Result<u64, String>>,
}

struct Pending {
    schema: String,
    table: String,
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Of values ([`value_bytes`]).
    bytes: usize,
}

/// The row group of the files Observes attaches (`ROW_GROUP_SIZE`), half DuckDB's default.
/// Rows are inserted in whole row groups while a transaction runs (the rest waits for the
/// next insert or the commit), so a transaction's rows land in full row groups rather than
/// in partial ones per batch. DuckDB holds each row group it fills uncompressed until it is
/// full, one per thread: at the default size, two of 2 KB rows were over 500 MB, and a
/// lower memory bound made DuckDB spill them to disk and read them back (a third longer);
/// at this size two nearly fit in that memory, and compress as well (bench/RESULTS.md).
pub const ROW_GROUP: usize = 61_440;
/// Whole row groups gathered per table before they are inserted, together: DuckDB's
/// threads then compress them at the same time (more would hold more rows in memory).
/// Compressing is most of DuckDB's work, so one row group at a time leaves a core idle:
/// 1M wide records took 8.8–10.6 s that way against 7.3–8.1 s (bench/RESULTS.md).
const ROW_GROUPS_PER_INSERT: usize = 2;
/// Rows narrow enough for two row groups of values in this ([`value_bytes`]) are gathered
/// for them; wider rows are streamed (see `stream`), which holds none of them waiting.
/// Their Arrow buffers take up to a quarter more.
const PAIR_BYTES: usize = 192 << 20;
/// Rows a batch needs for its size to say how wide they are (a few rows' buffers say
/// little: they are allocated in blocks).
const MEASURED_ROWS: usize = 1024;
/// Batches that may wait for a streaming insert's threads.
const STREAM_QUEUE_BYTES: usize = 32 << 20;

/// What a row group of rows like these holds, estimated from the batches once they hold
/// enough rows to say (a few rows' buffers say little: they are allocated in blocks).
fn row_group_bytes(batches: &[RecordBatch]) -> usize {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows < ROW_GROUP / 8 {
        return 0;
    }
    let bytes: usize = batches.iter().map(value_bytes).sum();
    bytes / rows * ROW_GROUP
}

/// DuckDB's threads (its default: one per core), each filling a row group of its own.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The bytes of a batch's rows, about as DuckDB holds them before compressing: neither its
/// buffers' spare room nor the rows outside a slice. With them, the last few thousand rows
/// before a commit (in buffers sized for a whole batch) looked five times as wide: they
/// were streamed, under a bound for such rows (1M wide records with a STATE every
/// 100,000: 475 MiB, and a 480–500 MB peak).
fn value_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// DuckDB's buffer pool is trimmed to this after each commit: it otherwise keeps every
/// block of the file it has written (up to its `memory_limit`, by default 80% of the
/// machine), so a long load's memory would grow with the file (bench/RESULTS.md).
const TRIM_TO: &str = "64MB";

/// Once a load inserts, DuckDB may keep in memory at most this much, or
/// [`LOAD_MEMORY_PER_COLUMN`] per column of the widest table inserted into and the values
/// of the row groups its threads fill at once (`insert`, `start_stream`) if that is more;
/// the rest of a transaction's blocks go to the file (whole row groups, written as
/// they fill) or to its temporary folder. Without a bound DuckDB keeps them all in memory
/// until the commit, up to 80% of the machine: memory would grow with a checkpoint's size.
/// The bound stays after the commits, for the checkpoints DuckDB runs at a later commit or
/// at close, which otherwise took 2.7 GB at 5M records (bench/RESULTS.md). Under the row
/// groups being filled, DuckDB spills them; above, it only keeps more of the file cached.
const LOAD_MEMORY: usize = 100 << 20;
/// Memory DuckDB keeps for its blocks once it used it, never giving it back (DuckDB's
/// `block_allocator_memory`; it cannot be lowered once set). Mostly memory the load's
/// bound lets DuckDB use anyway: 1M wide records peaked 8 MB higher.
const BLOCK_ALLOCATOR: &str = "128MB";
/// An insert pins a block of 256 KiB per column for each of DuckDB's threads and for the
/// row group being gathered: a fixed limit would fail tables of thousands of columns.
const LOAD_MEMORY_PER_COLUMN: usize = 1 << 20;

/// What follows `duckdb://`: `PATH[?memory_limit=SIZE&lock_wait=SECONDS]`.
#[derive(Debug, PartialEq)]
struct Target<'a> {
    path: &'a str,
    /// `None`: DuckDB's default.
    memory_limit: Option<&'a str>,
    /// How long to wait for another process's lock on the file.
    lock_wait: std::time::Duration,
}

/// A DuckDB file has one writing process at a time. Two runs of a queue on one file (two
/// pipelines, say) take turns rather than fail; the wait is bounded, and logged.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

impl<'a> Target<'a> {
    fn parse(target: &'a str) -> std::result::Result<Target<'a>, String> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut memory_limit = None;
        let mut lock_wait = LOCK_WAIT;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("lock_wait", seconds)) => {
                    lock_wait = seconds
                        .parse()
                        .map(std::time::Duration::from_secs)
                        .map_err(|_| format!("lock_wait {seconds:?} is not a number of seconds"))?
                }
                Some(("memory_limit", size)) if is_size(size) => memory_limit = Some(size),
                Some(("memory_limit", size)) => {
                    return Err(format!(
                        "memory_limit {size:?} is not a size such as 512MB or 4GB"
                    ))
                }
                _ => {
                    return Err(format!(
                        "unknown parameter {pair:?} (known: memory_limit, lock_wait)"
                    ))
                }
            }
        }
        Ok(Target {
            path,
            memory_limit,
            lock_wait,
        })
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
    /// Opens (or creates) a DuckDB file, `PATH[?memory_limit=SIZE&lock_wait=SECONDS]`;
    /// `:memory:` for an in-memory database. A file another process holds is waited for,
    /// `lock_wait` seconds at most (600 by default; 0 fails at once).
    pub fn open(target: &str) -> Result<Self> {
        let open_err = |source: BoxError| WarehouseError::Open {
            url: format!("duckdb://{target}"),
            source,
        };
        let Target {
            path,
            memory_limit,
            lock_wait,
        } = Target::parse(target).map_err(|e| open_err(e.into()))?;
        if path != ":memory:" {
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| open_err(e.into()))?;
                }
            }
        }
        // A file is attached to an in-memory database under a fixed catalog name
        // ([`CATALOG`]); its spill files go beside it, not into the working directory.
        let database = Arc::new(Database::open(":memory:").map_err(|e| open_err(e.into()))?);
        let conn = Connection::open(&database).map_err(|e| open_err(e.into()))?;
        let attached = path != ":memory:";
        if attached {
            let attach = format!(
                "SET temp_directory = {}; ATTACH {} AS {} (ROW_GROUP_SIZE {ROW_GROUP}); USE {};",
                sql::literal(&format!("{path}.tmp")),
                sql::literal(path),
                sql::quote(CATALOG),
                sql::quote(CATALOG),
            );
            let started = std::time::Instant::now();
            let mut pause = std::time::Duration::from_millis(50);
            let mut said = false;
            loop {
                match conn.execute_batch(&attach) {
                    Ok(()) => break,
                    Err(e)
                        if e.contains("Could not set lock on file")
                            && started.elapsed() < lock_wait =>
                    {
                        if !said {
                            // DuckDB names the process holding the lock.
                            tracing::info!(file = path, holder = %e, "waiting for another process's lock on the warehouse file");
                            said = true;
                        }
                        std::thread::sleep(pause.min(lock_wait.saturating_sub(started.elapsed())));
                        pause = (pause * 2).min(std::time::Duration::from_secs(2));
                    }
                    Err(e) if e.contains("Could not set lock on file") && !lock_wait.is_zero() => {
                        return Err(open_err(
                            format!(
                                "{e} (waited {} s; the URL's lock_wait sets how long)",
                                started.elapsed().as_secs()
                            )
                            .into(),
                        ))
                    }
                    Err(e) => return Err(open_err(e.into())),
                }
            }
        }
        // Offline machines must never try to download an extension mid-load. A load's
        // row groups are compressed and written as soon as each is complete, not held
        // uncompressed (by default up to five per table) until its COMMIT: less memory,
        // and a shorter COMMIT holding up the loader (bench/RESULTS.md). DuckDB's blocks
        // come from memory it keeps (up to [`BLOCK_ALLOCATOR`]) rather than from the
        // allocator, which gave them back to the kernel as they were freed and faulted
        // them in again at the next row group: 1M wide records, 230,000 page faults
        // instead of 410,000 and about 5% less CPU (bench/RESULTS.md).
        conn.execute_batch(&format!(
            "SET autoinstall_known_extensions = false; \
             SET write_buffer_row_group_count = 1; \
             SET block_allocator_memory = '{BLOCK_ALLOCATOR}';"
        ))
        .map_err(|e| open_err(e.into()))?;
        if let Some(size) = memory_limit {
            conn.execute_batch(&format!("SET memory_limit = '{size}'"))
                .map_err(|e| open_err(e.into()))?;
        }
        // Timestamps are stored in UTC; show them in UTC too, whatever the machine's zone.
        // The setting comes with the ICU extension; a DuckDB built without it (the
        // `bundled` feature) has no zones and shows UTC anyway.
        let (_, zones) = conn
            .query(
                "SELECT count(*) > 0 FROM duckdb_settings() WHERE name = 'TimeZone'",
                &[],
            )
            .map_err(|e| open_err(e.into()))?;
        let has_zones = zones == [[SqlValue::Bool(true)]];
        if has_zones {
            conn.execute_batch("SET TimeZone = 'UTC'")
                .map_err(|e| open_err(e.into()))?;
        }
        scan::register(database.raw()).map_err(|e| open_err(e.into()))?;
        stream::register(database.raw()).map_err(|e| open_err(e.into()))?;
        Ok(DuckDbWarehouse {
            conn,
            pending: Vec::new(),
            insertion_order_free: false,
            memory_limit: memory_limit.map(str::to_string),
            load_limit: 0,
            attached,
            streaming: None,
        })
    }

    /// Another connection to the same database (for readers running beside a load).
    pub fn try_clone(&self) -> Result<Self> {
        let open_err = |source: BoxError| WarehouseError::Open {
            url: "duckdb (clone)".into(),
            source,
        };
        let conn = self.conn.reopen().map_err(|e| open_err(e.into()))?;
        // The default catalog is per connection.
        if self.attached {
            conn.execute_batch(&format!("USE {};", sql::quote(CATALOG)))
                .map_err(|e| open_err(e.into()))?;
        }
        Ok(DuckDbWarehouse {
            conn,
            pending: Vec::new(),
            insertion_order_free: false,
            memory_limit: self.memory_limit.clone(),
            load_limit: 0,
            attached: self.attached,
            streaming: None,
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
        if let Err(e) = self.conn.execute_batch(&self.memory_setting()) {
            tracing::warn!(error = %e, "DuckDB's memory limit was not restored after a trim");
        }
    }

    /// Bounds the memory DuckDB holds, given the columns of a table about to be inserted
    /// into and the values DuckDB holds of its rows uncompressed while it inserts them (see
    /// [`LOAD_MEMORY`]): a bound below that makes DuckDB spill the row groups it fills and
    /// read them back to compress them. Raised, never lowered. A `memory_limit` in the URL
    /// is the user's and stays.
    fn hold_memory_for(&mut self, columns: usize, in_flight_bytes: usize) -> Result<()> {
        if self.memory_limit.is_some() {
            return Ok(());
        }
        let limit = LOAD_MEMORY.max(columns * LOAD_MEMORY_PER_COLUMN + in_flight_bytes);
        if limit <= self.load_limit {
            return Ok(());
        }
        let previous = std::mem::replace(&mut self.load_limit, limit);
        tracing::debug!(mib = limit >> 20, "DuckDB's memory bound raised");
        let statement = self.memory_setting();
        self.conn.execute_batch(&statement).map_err(|e| {
            self.load_limit = previous;
            Self::sql_err(&statement, e)
        })
    }

    /// The statement that sets DuckDB's limit to what this connection holds it at: the
    /// URL's, else the load's bound once one inserted, else DuckDB's default.
    fn memory_setting(&self) -> String {
        match (&self.memory_limit, self.load_limit) {
            (Some(size), _) => format!("SET memory_limit = '{size}'"),
            (None, 0) => "RESET memory_limit".to_string(),
            (None, bytes) => format!("SET memory_limit = '{}MiB'", bytes >> 20),
        }
    }

    /// Ends the streaming insert, if one runs, and inserts every gathered batch, table by
    /// table.
    fn flush(&mut self) -> Result<()> {
        self.end_stream()?;
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
        pending.bytes = kept.iter().map(value_bytes).sum();
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
        self.end_stream()?;
        let columns = sql::column_list(
            first.schema().fields().iter().map(|f| f.name().as_str()),
            None,
        );
        let column_count = first.num_columns();
        // Each of DuckDB's threads fills a row group of its own, uncompressed until it is
        // full: a bound under them all made DuckDB spill them to its temporary file and read
        // them back (1M wide records: 180 MB written, 5% slower).
        let threads = threads();
        let row_group = row_group_bytes(&pending.batches);
        let registration = scan::Registration::new(pending.batches);
        self.hold_memory_for(column_count, row_group * registration.units.min(threads))?;
        let statement = format!(
            "INSERT INTO {} ({columns}) SELECT {columns} FROM {}({}::UBIGINT)",
            sql::qualified(&pending.schema, &pending.table),
            scan::FUNCTION,
            registration.id
        );
        let err = |source: BoxError| WarehouseError::BulkLoad {
            table: format!("{}.{}", pending.schema, pending.table),
            source,
        };
        let started = std::time::Instant::now();
        if registration.units > 1 {
            self.conn
                .execute_batch("SET SESSION preserve_insertion_order = false")
                .map_err(|e| err(e.into()))?;
            self.insertion_order_free = true;
            let inserted = self
                .conn
                .execute(&statement, &[])
                .map_err(|e| err(e.into()));
            // After a failure the transaction is aborted and refuses even a RESET; the
            // rollback that must follow resets it then.
            self.keep_insertion_order();
            inserted?;
        } else {
            self.conn
                .execute(&statement, &[])
                .map_err(|e| err(e.into()))?;
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

    /// Streams `batch` into its table: into the insert that runs for it, or into one
    /// started now (ending one that runs for another table).
    fn stream(&mut self, schema: &str, table: &str, batch: &RecordBatch) -> Result<()> {
        let same = |s: &Streaming| {
            s.schema == schema && s.table == table && *s.stream.schema() == batch.schema()
        };
        if !self.streaming.as_ref().is_some_and(same) {
            self.end_stream()?;
            self.start_stream(schema, table, batch)?;
        }
        let Some(streaming) = &self.streaming else {
            return Ok(());
        };
        if streaming.stream.push(batch.clone()).is_err() {
            // The insert ended early: its error says why.
            self.end_stream()?;
            return Err(WarehouseError::BulkLoad {
                table: format!("{schema}.{table}"),
                source: "the streaming insert ended before its rows did".into(),
            });
        }
        Ok(())
    }

    /// Starts an insert into `schema.table` of the batches streamed to it, on the
    /// connection lent to a thread of its own. DuckDB's threads each fill and compress
    /// row groups of their own, which needs insertion order left free (rows are told apart
    /// and ordered by `_observes_id`), and memory for the row group each fills.
    fn start_stream(&mut self, schema: &str, table: &str, batch: &RecordBatch) -> Result<()> {
        let threads = threads();
        let row_bytes = value_bytes(batch) / batch.num_rows().max(1);
        // Three quarters of a row group per thread: DuckDB spills a little of each, which
        // cost less time than the memory of whole ones (1M 2 KB rows: 467 MB; whole row
        // groups were over 550 MB; half row groups were a fifth slower, bench/RESULTS.md).
        self.hold_memory_for(batch.num_columns(), row_bytes * ROW_GROUP * threads * 3 / 4)?;
        let columns = sql::column_list(
            batch.schema().fields().iter().map(|f| f.name().as_str()),
            None,
        );
        let stream = stream::Stream::new(batch.schema(), STREAM_QUEUE_BYTES);
        let statement = format!(
            "INSERT INTO {} ({columns}) SELECT {columns} FROM {}({}::UBIGINT)",
            sql::qualified(schema, table),
            stream::FUNCTION,
            stream.id
        );
        let err = |source: BoxError| WarehouseError::BulkLoad {
            table: format!("{schema}.{table}"),
            source,
        };
        // Each of DuckDB's threads ends the insert with a partial row group of its own,
        // which its checkpoints would merge with their neighbours, recompressing up to
        // three whole row groups on one thread: 2.5 s of a 7.5 s load, and 87 MB of the
        // file left free (bench/RESULTS.md). They stay as they are; row groups emptied by
        // deletes are still dropped. A global setting: this process's database alone.
        self.conn
            .execute_batch(
                "SET SESSION preserve_insertion_order = false; SET GLOBAL max_vacuum_tasks = 0",
            )
            .map_err(|e| err(e.into()))?;
        self.insertion_order_free = true;
        let conn = self.conn.lend();
        let stopped = stream.stopper();
        let insert = std::thread::Builder::new()
            .name("duckdb-insert".into())
            .spawn(move || {
                let inserted = conn.execute(&statement, &[]);
                stopped();
                inserted
            })
            .map_err(|e| err(e.into()))?;
        self.streaming = Some(Streaming {
            schema: schema.to_string(),
            table: table.to_string(),
            stream,
            insert,
        });
        Ok(())
    }

    /// Ends the streaming insert, if one runs: no more batches, and its result once
    /// DuckDB has taken those waiting.
    fn end_stream(&mut self) -> Result<()> {
        let Some(streaming) = self.streaming.take() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        streaming.stream.close();
        let inserted = streaming
            .insert
            .join()
            .unwrap_or_else(|_| Err("the inserting thread panicked".into()));
        // After a failure the transaction is aborted and refuses even a RESET; the
        // rollback that must follow resets it then.
        self.keep_insertion_order();
        let rows = inserted.map_err(|e| WarehouseError::BulkLoad {
            table: format!("{}.{}", streaming.schema, streaming.table),
            source: e.into(),
        })?;
        tracing::debug!(
            table = %streaming.table,
            rows,
            seconds = started.elapsed().as_secs_f64(),
            "streamed"
        );
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

    fn sql_err(sql: &str, message: String) -> WarehouseError {
        WarehouseError::Sql {
            sql: sql.to_string(),
            source: message.into(),
        }
    }
}

impl Warehouse for DuckDbWarehouse {
    fn interrupt_handle(&self) -> Option<crate::Interrupt> {
        Some(crate::Interrupt::new(self.conn.interrupter()))
    }

    fn dialect(&self) -> Dialect {
        DIALECT
    }

    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64> {
        self.flush()?;
        self.conn
            .execute(sql, params)
            .map_err(|e| Self::sql_err(sql, e))
    }

    fn query_with_columns(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<(Vec<String>, Vec<Vec<SqlValue>>)> {
        self.flush()?;
        self.conn
            .query(sql, params)
            .map_err(|e| Self::sql_err(sql, e))
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
        if let Err(e) = self.end_stream() {
            tracing::debug!(error = %e, "the streaming insert failed before the rollback");
        }
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
        // A table that streams goes on streaming (a batch a little narrower would end the
        // insert, leaving a partial row group per thread); others stream once their rows
        // are too wide to gather two row groups of.
        let streams_here = self
            .streaming
            .as_ref()
            .is_some_and(|s| s.schema == schema && s.table == table);
        let values = value_bytes(batch);
        let row_bytes = values / batch.num_rows();
        let measured = batch.num_rows() >= MEASURED_ROWS;
        if streams_here || measured && row_bytes * ROW_GROUP * ROW_GROUPS_PER_INSERT > PAIR_BYTES {
            return self.stream(schema, table, batch);
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
        pending.bytes += values;
        if pending.bytes >= PAIR_BYTES {
            let all = self.pending.remove(at);
            self.insert(all)?;
        } else if pending.rows >= ROW_GROUP * ROW_GROUPS_PER_INSERT {
            self.insert_row_groups(at)?;
        }
        Ok(())
    }
}

impl Drop for DuckDbWarehouse {
    fn drop(&mut self) {
        // The insert's thread holds the connection: it ends (uncommitted) before we close.
        let _ = self.end_stream();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_batch(text_bytes: usize, rows: usize) -> RecordBatch {
        let values = arrow_array::StringArray::from_iter_values(
            (0..rows).map(|i| format!("{i:0>width$}", width = text_bytes)),
        );
        RecordBatch::try_from_iter([("v", Arc::new(values) as arrow_array::ArrayRef)]).unwrap()
    }

    #[test]
    fn rows_too_wide_to_gather_are_streamed_and_the_stream_ends_at_the_commit() {
        let mut wh = DuckDbWarehouse::open(":memory:").unwrap();
        wh.execute("CREATE TABLE wide (v VARCHAR)", &[]).unwrap();
        wh.execute("CREATE TABLE narrow (v VARCHAR)", &[]).unwrap();
        wh.begin().unwrap();
        // A few wide rows say too little of their width to stream.
        wh.bulk_append("main", "wide", &text_batch(3_000, 100))
            .unwrap();
        assert!(wh.streaming.is_none());
        wh.bulk_append("main", "wide", &text_batch(3_000, 2_000))
            .unwrap();
        assert_eq!(
            wh.streaming.as_ref().map(|s| s.table.as_str()),
            Some("wide")
        );
        // Narrow rows are gathered beside the stream, which goes on, even for a batch of
        // the streaming table narrower than the rest.
        wh.bulk_append("main", "narrow", &text_batch(10, 100))
            .unwrap();
        wh.bulk_append("main", "wide", &text_batch(10, 100))
            .unwrap();
        assert_eq!(
            wh.streaming.as_ref().map(|s| s.table.as_str()),
            Some("wide")
        );
        assert_eq!(wh.pending.len(), 2);
        wh.commit().unwrap();
        assert!(wh.streaming.is_none() && wh.pending.is_empty());
        let rows = wh
            .query(
                "SELECT (SELECT count(*) FROM wide), (SELECT count(*) FROM narrow)",
                &[],
            )
            .unwrap();
        assert_eq!(rows, [[SqlValue::Int(2_200), SqlValue::Int(100)]]);
    }

    #[test]
    fn urls_set_the_memory_limit_or_get_the_default() {
        let parse = |t| Target::parse(t);
        let file = |path, memory_limit| {
            Ok(Target {
                path,
                memory_limit,
                lock_wait: LOCK_WAIT,
            })
        };
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
            Err(r#"unknown parameter "memory=1GB" (known: memory_limit, lock_wait)"#.into())
        );
        assert_eq!(
            parse("a.duckdb?lock_wait=0&memory_limit=1GB"),
            Ok(Target {
                path: "a.duckdb",
                memory_limit: Some("1GB"),
                lock_wait: std::time::Duration::ZERO
            })
        );
        assert_eq!(
            parse("a.duckdb?lock_wait=soon"),
            Err(r#"lock_wait "soon" is not a number of seconds"#.into())
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
        let one = |wh: &DuckDbWarehouse, sql: &str| -> SqlValue {
            wh.conn.query(sql, &[]).unwrap().1.remove(0).remove(0)
        };
        let default = one(
            &DuckDbWarehouse::open(":memory:").unwrap(),
            "SELECT current_setting('memory_limit')",
        );
        let mib = SqlValue::Text("953.6 MiB".into());
        for (query, limit) in [("", &default), ("?memory_limit=1GB", &mib)] {
            let target = format!("{}{query}", dir.path().join("wh.duckdb").display());
            let mut wh = DuckDbWarehouse::open(&target).unwrap();
            assert_eq!(&one(&wh, "SELECT current_setting('memory_limit')"), limit);
            wh.begin().unwrap();
            // About 260 MB of hex digits: blocks DuckDB would keep cached.
            wh.execute(
                "CREATE OR REPLACE TABLE t AS SELECT md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS h \
                 FROM range(4000000) r(i)",
                &[],
            )
            .unwrap();
            wh.commit().unwrap();
            let SqlValue::Int(cached) = one(
                &wh,
                "SELECT sum(memory_usage_bytes)::BIGINT FROM duckdb_memory()",
            ) else {
                panic!("not a number")
            };
            assert!(
                cached <= 64 << 20,
                "{cached} bytes still cached after the commit"
            );
            assert_eq!(&one(&wh, "SELECT current_setting('memory_limit')"), limit);
            assert_eq!(one(&wh, "SELECT count(*) FROM t"), SqlValue::Int(4_000_000));
        }
        let err = DuckDbWarehouse::open(&format!(
            "{}/x.duckdb?memory_limit=5XB",
            dir.path().display()
        ))
        .err()
        .unwrap();
        assert!(
            observes_runtime::chain(&err)
                .to_string()
                .starts_with(&format!(
                    "opening duckdb://{}/x.duckdb?memory_limit=5XB: ",
                    dir.path().display()
                )),
            "{err}"
        );
    }

    #[test]
    fn inserts_bound_duckdbs_memory_by_the_widest_table_for_the_connections_life() {
        use arrow_array::{ArrayRef, Int64Array};
        use arrow_schema::{Field, Schema};
        let dir = tempfile::tempdir().unwrap();
        let limit = |wh: &DuckDbWarehouse| -> SqlValue {
            wh.conn
                .query("SELECT current_setting('memory_limit')", &[])
                .unwrap()
                .1
                .remove(0)
                .remove(0)
        };
        let batch = |columns: usize| {
            let fields: Vec<Field> = (0..columns)
                .map(|i| Field::new(format!("c{i}"), arrow_schema::DataType::Int64, true))
                .collect();
            let arrays: Vec<ArrayRef> = (0..columns)
                .map(|_| Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef)
                .collect();
            RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
        };
        let create = |columns: usize, table: &str| {
            let list: Vec<String> = (0..columns).map(|i| format!("c{i} BIGINT")).collect();
            format!("CREATE TABLE {table} ({})", list.join(", "))
        };
        let (narrow, wide) = (3, 300);

        let path = dir.path().join("wh.duckdb");
        let mut wh = DuckDbWarehouse::open(&path.display().to_string()).unwrap();
        let default = limit(&wh);
        assert_ne!(default, SqlValue::Text("100.0 MiB".into()));
        wh.execute("CREATE SCHEMA s", &[]).unwrap();
        wh.execute(&create(narrow, "s.n"), &[]).unwrap();
        wh.execute(&create(wide, "s.w"), &[]).unwrap();
        wh.begin().unwrap();
        wh.bulk_append("s", "n", &batch(narrow)).unwrap();
        wh.flush().unwrap();
        assert_eq!(limit(&wh), SqlValue::Text("100.0 MiB".into()));
        wh.bulk_append("s", "w", &batch(wide)).unwrap();
        wh.flush().unwrap();
        assert_eq!(limit(&wh), SqlValue::Text("300.0 MiB".into()));
        // A narrower table after it does not lower the bound the wide one needs.
        wh.bulk_append("s", "n", &batch(narrow)).unwrap();
        wh.flush().unwrap();
        assert_eq!(limit(&wh), SqlValue::Text("300.0 MiB".into()));
        wh.commit().unwrap();
        // Kept after the commit (and its trim), for the checkpoints DuckDB runs later.
        assert_eq!(limit(&wh), SqlValue::Text("300.0 MiB".into()));
        assert_eq!(
            wh.conn.query("SELECT count(*) FROM s.w", &[]).unwrap().1,
            vec![vec![SqlValue::Int(3)]]
        );

        wh.begin().unwrap();
        wh.bulk_append("s", "w", &batch(wide)).unwrap();
        wh.flush().unwrap();
        wh.rollback().unwrap();
        assert_eq!(limit(&wh), SqlValue::Text("300.0 MiB".into()));
        drop(wh);
        let wh = DuckDbWarehouse::open(&path.display().to_string()).unwrap();
        assert_eq!(limit(&wh), default);
        drop(wh);

        // The URL's limit is the user's: a transaction leaves it as it is.
        let url = format!("{}?memory_limit=1GB", path.display());
        let mut wh = DuckDbWarehouse::open(&url).unwrap();
        wh.begin().unwrap();
        wh.bulk_append("s", "w", &batch(wide)).unwrap();
        wh.flush().unwrap();
        assert_eq!(limit(&wh), SqlValue::Text("953.6 MiB".into()));
        wh.commit().unwrap();
    }

    #[test]
    fn an_insert_of_row_groups_bounds_duckdb_by_all_the_row_groups_it_fills_at_once() {
        let mut wh = DuckDbWarehouse::open(":memory:").unwrap();
        wh.execute("CREATE TABLE t (v VARCHAR)", &[]).unwrap();
        wh.begin().unwrap();
        let batch = text_batch(1_000, ROW_GROUP);
        let row_group = row_group_bytes(std::slice::from_ref(&batch));
        assert!(row_group * 2 > LOAD_MEMORY && row_group * 2 < PAIR_BYTES);
        wh.bulk_append("main", "t", &batch).unwrap();
        assert_eq!(wh.load_limit, 0, "one row group waits for the next");
        wh.bulk_append("main", "t", &batch).unwrap();
        let threads = threads();
        assert_eq!(
            wh.load_limit,
            LOAD_MEMORY.max(LOAD_MEMORY_PER_COLUMN + row_group * threads.min(2))
        );
        wh.commit().unwrap();
        let rows = wh.query("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(rows, [[SqlValue::Int(2 * ROW_GROUP as i64)]]);
    }

    #[test]
    fn rows_in_buffers_with_room_to_spare_are_measured_by_their_values() {
        // The last rows before a commit come in buffers sized for a whole batch.
        let mut values = arrow_array::builder::StringBuilder::with_capacity(2_000, 64 << 20);
        for i in 0..2_000 {
            values.append_value(format!("{i:0>10}"));
        }
        let values = Arc::new(values.finish()) as arrow_array::ArrayRef;
        let batch = RecordBatch::try_from_iter([("v", values)]).unwrap();
        assert!(batch.get_array_memory_size() / 2_000 * ROW_GROUP * 2 > PAIR_BYTES);
        let mut wh = DuckDbWarehouse::open(":memory:").unwrap();
        wh.execute("CREATE TABLE t (v VARCHAR)", &[]).unwrap();
        wh.begin().unwrap();
        wh.bulk_append("main", "t", &batch).unwrap();
        assert!(
            wh.streaming.is_none(),
            "narrow rows are gathered, not streamed"
        );
        wh.commit().unwrap();
        assert_eq!(wh.load_limit, LOAD_MEMORY);
        let rows = wh.query("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(rows, [[SqlValue::Int(2_000)]]);
    }

    #[test]
    fn a_row_group_is_estimated_from_enough_rows_only() {
        use arrow_array::{ArrayRef, StringArray};
        let batch = |rows: usize| {
            let text: ArrayRef = Arc::new(StringArray::from(vec!["x".repeat(100); rows]));
            RecordBatch::try_from_iter([("t", text)]).unwrap()
        };
        assert_eq!(row_group_bytes(&[batch(3)]), 0);
        let estimate = row_group_bytes(&[batch(10_000), batch(10_000)]);
        // 100 bytes of text and a 4-byte offset a row, whatever the allocation rounds up.
        assert!(
            (104 * ROW_GROUP..=110 * ROW_GROUP).contains(&estimate),
            "{estimate}"
        );
    }

    #[test]
    fn dates_print_as_iso() {
        use capi::date_text;
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(19_782), "2024-02-29");
        assert_eq!(date_text(-1), "1969-12-31");
    }
}
