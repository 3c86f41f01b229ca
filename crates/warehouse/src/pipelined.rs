//! A warehouse whose bulk appends run on their own thread, so the loader normalizes the
//! next batch while the engine stores the last one.
//!
//! Every other call waits until the appends before it are done (calls are executed in
//! order on one connection), so a transaction sees its appends before it commits, and an
//! append that failed fails the next call: the load stops before its commit.

use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;

use arrow_array::RecordBatch;
use observes_model::ColumnType;

use crate::{Dialect, Result, SqlValue, Warehouse, WarehouseError};

/// Work for the connection's thread. The `Option` is the first append failure not yet
/// reported: while it is set, nothing but a rollback runs (so no `COMMIT` can follow a lost
/// batch).
type Job = Box<dyn FnOnce(&mut dyn Warehouse, &mut Option<WarehouseError>) + Send>;

/// A warehouse whose writes run on their own thread, queued in order, so that normalizing goes on while the warehouse inserts; reads wait for the writes before them.
pub struct Pipelined {
    dialect: Dialect,
    jobs: Option<mpsc::SyncSender<Job>>,
    worker: Option<thread::JoinHandle<()>>,
    queued: Arc<Budget>,
}

/// Bytes of batches waiting for the worker: a sender waits while they would exceed the
/// limit (one batch always goes, whatever its size).
struct Budget {
    used: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

impl Budget {
    fn acquire(&self, bytes: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used > 0 && *used + bytes > self.limit {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += bytes;
    }

    fn release(&self, bytes: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(bytes);
        self.freed.notify_all();
    }
}

impl Pipelined {
    /// Moves `inner` to a worker thread. Appends wait in line up to `queued_bytes` of
    /// batches (so the memory stays flat however far the loader runs ahead).
    pub fn new(mut inner: Box<dyn Warehouse>, queued_bytes: usize) -> Pipelined {
        let dialect = inner.dialect();
        // Calls are few; the byte budget is what bounds the appends.
        let (jobs, rx) = mpsc::sync_channel::<Job>(1024);
        let worker = thread::Builder::new()
            .name("warehouse".into())
            .spawn(move || {
                let mut failed = None;
                for job in rx {
                    job(inner.as_mut(), &mut failed);
                }
            })
            .ok();
        Pipelined {
            dialect,
            jobs: Some(jobs),
            worker,
            queued: Arc::new(Budget {
                used: Mutex::new(0),
                freed: Condvar::new(),
                limit: queued_bytes,
            }),
        }
    }

    /// Runs `f` on the worker after everything queued, and waits for its result. A failed
    /// append before it is returned instead, and `f` does not run.
    fn call<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn Warehouse) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Box::new(move |wh, failed| {
            let result = match failed.take() {
                Some(error) => Err(error),
                None => f(wh),
            };
            let _ = tx.send(result);
        }))?;
        rx.recv().map_err(|_| Self::gone())?
    }

    fn send(&mut self, job: Job) -> Result<()> {
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|_| Self::gone()),
            None => Err(Self::gone()),
        }
    }

    fn gone() -> WarehouseError {
        WarehouseError::Sql {
            sql: String::new(),
            source: "the warehouse connection's thread stopped".into(),
        }
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Warehouse for Pipelined {
    fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64> {
        let (sql, params) = (sql.to_string(), params.to_vec());
        self.call(move |wh| wh.execute(&sql, &params))
    }

    fn query_with_columns(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<(Vec<String>, Vec<Vec<SqlValue>>)> {
        let (sql, params) = (sql.to_string(), params.to_vec());
        self.call(move |wh| wh.query_with_columns(&sql, &params))
    }

    fn begin(&mut self) -> Result<()> {
        // Queued, not awaited: it may wait behind a commit still running. A failure stops
        // every later call, like a failed append.
        self.send(Box::new(|wh, failed| {
            if failed.is_none() {
                if let Err(e) = wh.begin() {
                    *failed = Some(e);
                }
            }
        }))
    }

    fn start_commit(&mut self) -> Result<crate::PendingCommit> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Box::new(move |wh, failed| {
            let result = match failed.take() {
                Some(error) => Err(error),
                None => wh.commit(),
            };
            // A failed commit also stops what was queued after it. Its error goes to its
            // own caller; what comes after it is told in words.
            if let Err(e) = &result {
                *failed = Some(WarehouseError::Sql {
                    sql: "COMMIT".into(),
                    source: format!("an earlier commit failed: {}", observes_runtime::chain(e))
                        .into(),
                });
            }
            let _ = tx.send(result);
        }))?;
        Ok(crate::PendingCommit::running(rx))
    }

    fn commit(&mut self) -> Result<()> {
        self.call(|wh| wh.commit())
    }

    fn rollback(&mut self) -> Result<()> {
        // A failed append is moot once its transaction is rolled back.
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Box::new(move |wh, failed| {
            *failed = None;
            let _ = tx.send(wh.rollback());
        }))?;
        rx.recv().map_err(|_| Self::gone())?
    }

    fn table_columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, ColumnType)>>> {
        let (schema, table) = (schema.to_string(), table.to_string());
        self.call(move |wh| wh.table_columns(&schema, &table))
    }

    fn bulk_append(&mut self, schema: &str, table: &str, batch: &RecordBatch) -> Result<()> {
        let (schema, table, batch) = (schema.to_string(), table.to_string(), batch.clone());
        let bytes = batch.get_array_memory_size();
        self.queued.acquire(bytes);
        let queued = self.queued.clone();
        let sent = self.send(Box::new(move |wh, failed| {
            if failed.is_none() {
                if let Err(e) = wh.bulk_append(&schema, &table, &batch) {
                    *failed = Some(e);
                }
            }
            drop(batch);
            queued.release(bytes);
        }));
        if sent.is_err() {
            self.queued.release(bytes);
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};

    fn batch(column: &str) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap()
    }

    #[test]
    fn appends_land_before_later_calls_and_a_failed_append_blocks_the_commit() {
        let inner = crate::connect("duckdb://:memory:").unwrap();
        let mut wh = Pipelined::new(inner, 1 << 20);
        wh.execute("CREATE TABLE t (x BIGINT)", &[]).unwrap();
        wh.begin().unwrap();
        wh.bulk_append("main", "t", &batch("x")).unwrap();
        assert_eq!(
            wh.query("SELECT SUM(x) FROM t", &[]).unwrap(),
            vec![vec![SqlValue::Int(6)]]
        );
        // An append into a table that does not exist fails on the worker...
        wh.bulk_append("main", "missing", &batch("x")).unwrap();
        // ...and the commit after it is refused with that error, not run.
        let err = observes_runtime::chain(&wh.commit().unwrap_err()).to_string();
        assert!(err.starts_with("bulk load into main.missing:"), "{err}");
        wh.rollback().unwrap();
        assert_eq!(
            wh.query("SELECT COUNT(*) FROM t", &[]).unwrap(),
            vec![vec![SqlValue::Int(0)]]
        );
    }
}
