//! A table function that reads Arrow batches while they are still being pushed, so one
//! `INSERT … SELECT` runs for as long as a table's rows keep coming.
//!
//! `observes_stream(id)` reads the [`Stream`] registered under `id`. The warehouse pushes
//! batches into it from its own thread while another thread runs the insert; DuckDB's
//! threads each take 2,048-row slices of the front batch, fill and compress row groups of
//! their own, and write each as it fills. So normalizing and compressing go on at the same
//! time on every core, and neither side holds more than a few batches: DuckDB its row
//! groups being filled, the stream at most [`Stream::new`]'s bound of batches waiting.
//!
//! A slice's values are not copied: they point into the batch, which the thread keeps until
//! it asks for its next slice (DuckDB has copied the slice into its storage by then).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use libduckdb_sys as ffi;

use super::scan::{
    bind_columns, bind_id, contained, fill_chunk, register_function, set_bind_data, set_init_data,
    Callbacks, Registry, CHUNK_ROWS,
};

pub(super) const FUNCTION: &str = "observes_stream";

/// The shared end of a stream: batches waiting, and whether either side has stopped.
struct Queue {
    schema: SchemaRef,
    state: Mutex<QueueState>,
    changed: Condvar,
    /// Bytes of batches that may wait (one batch always goes, whatever its size).
    limit: usize,
}

#[derive(Default)]
struct QueueState {
    batches: VecDeque<RecordBatch>,
    /// Rows of the front batch already handed out.
    front_taken: usize,
    bytes: usize,
    /// No more batches will come: the scan ends once the queue is empty.
    closed: bool,
    /// The insert is over (done or failed): pushes are refused.
    stopped: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next slice of rows for a scanning thread, waiting for a batch if none is
    /// there; `None` once the stream is closed and empty.
    fn next_slice(&self) -> Option<(RecordBatch, usize, usize)> {
        let mut state = self.lock();
        loop {
            if let Some(front) = state.batches.front() {
                let (batch, offset) = (front.clone(), state.front_taken);
                let rows = CHUNK_ROWS.min(batch.num_rows() - offset);
                state.front_taken += rows;
                if state.front_taken == batch.num_rows() {
                    state.batches.pop_front();
                    state.front_taken = 0;
                    state.bytes = state.bytes.saturating_sub(batch.get_array_memory_size());
                    self.changed.notify_all();
                }
                return Some((batch, offset, rows));
            }
            if state.closed || state.stopped {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        state.batches.clear();
        state.bytes = 0;
        self.changed.notify_all();
    }
}

static REGISTRY: Registry<Arc<Queue>> = Registry::new();

/// Batches of one schema pushed to `observes_stream(id)`, visible to it until dropped.
pub(super) struct Stream {
    pub id: u64,
    queue: Arc<Queue>,
}

/// The insert reading the stream ended before the stream was closed.
#[derive(Debug)]
pub(super) struct Stopped;

impl Stream {
    /// A stream of batches of `schema`, `limit` bytes of which may wait for DuckDB.
    pub(super) fn new(schema: SchemaRef, limit: usize) -> Stream {
        let queue = Arc::new(Queue {
            schema,
            state: Mutex::new(QueueState::default()),
            changed: Condvar::new(),
            limit,
        });
        let id = REGISTRY.insert(queue.clone());
        Stream { id, queue }
    }

    pub(super) fn schema(&self) -> &SchemaRef {
        &self.queue.schema
    }

    /// Adds a batch, waiting while the batches before it hold the bound.
    pub(super) fn push(&self, batch: RecordBatch) -> Result<(), Stopped> {
        let bytes = batch.get_array_memory_size();
        let mut state = self.queue.lock();
        while !state.stopped && state.bytes > 0 && state.bytes + bytes > self.queue.limit {
            state = self
                .queue
                .changed
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        if state.stopped {
            return Err(Stopped);
        }
        state.bytes += bytes;
        state.batches.push_back(batch);
        self.queue.changed.notify_all();
        Ok(())
    }

    /// No more batches: the insert ends once DuckDB has taken those waiting.
    pub(super) fn close(&self) {
        self.queue.lock().closed = true;
        self.queue.changed.notify_all();
    }

    /// For the thread that runs the insert, once it is over: batches waiting are dropped
    /// and pushes refused (so a failed insert does not leave the pusher waiting).
    pub(super) fn stopper(&self) -> impl FnOnce() + Send + 'static {
        let queue = self.queue.clone();
        move || queue.stop()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.queue.stop();
        REGISTRY.remove(self.id);
    }
}

/// One thread's place: the batch of the slice it handed out last, kept until DuckDB has
/// taken that slice (the thread's next call).
struct Place {
    held: Option<RecordBatch>,
}

/// Registers `observes_stream` in the database's system catalog. `db` is an open database.
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

unsafe extern "C" fn bind(info: ffi::duckdb_bind_info) {
    contained(
        FUNCTION,
        |m| ffi::duckdb_bind_set_error(info, m.as_ptr()),
        || {
            let id = bind_id(info);
            let queue = REGISTRY
                .get(id)
                .ok_or_else(|| format!("{FUNCTION}({id}): no such stream"))?;
            bind_columns(info, &queue.schema)?;
            set_bind_data(info, queue);
            Ok(())
        },
    );
}

unsafe extern "C" fn init(info: ffi::duckdb_init_info) {
    contained(
        FUNCTION,
        |m| ffi::duckdb_init_set_error(info, m.as_ptr()),
        || {
            // As many threads as DuckDB runs: each fills row groups of its own.
            ffi::duckdb_init_set_max_threads(info, 64);
            Ok(())
        },
    );
}

unsafe extern "C" fn local_init(info: ffi::duckdb_init_info) {
    contained(
        FUNCTION,
        |m| ffi::duckdb_init_set_error(info, m.as_ptr()),
        || {
            set_init_data(info, Place { held: None });
            Ok(())
        },
    );
}

unsafe extern "C" fn scan(info: ffi::duckdb_function_info, output: ffi::duckdb_data_chunk) {
    contained(
        FUNCTION,
        |m| ffi::duckdb_function_set_error(info, m.as_ptr()),
        || {
            // SAFETY: DuckDB hands each call the data this function's bind and local init
            // set; the local place belongs to the calling thread alone.
            let queue = &*ffi::duckdb_function_get_bind_data(info).cast::<Arc<Queue>>();
            let place = &mut *ffi::duckdb_function_get_local_init_data(info).cast::<Place>();
            // The slice handed out last has been taken.
            place.held = None;
            let Some((batch, offset, rows)) = queue.next_slice() else {
                ffi::duckdb_data_chunk_set_size(output, 0);
                return Ok(());
            };
            if batch.schema() != queue.schema {
                return Err(format!("{FUNCTION}: a batch of another schema was pushed"));
            }
            fill_chunk(&batch, offset, rows, output)?;
            place.held = Some(batch);
            Ok(())
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array};

    fn batch(values: Vec<i64>) -> RecordBatch {
        let column: ArrayRef = Arc::new(Int64Array::from(values));
        RecordBatch::try_from_iter([("k", column)]).unwrap()
    }

    #[test]
    fn slices_come_in_order_of_pushing_and_end_once_closed_and_empty() {
        let first = batch((0..3000).collect());
        let stream = Stream::new(first.schema(), 1 << 20);
        stream.push(first).unwrap();
        stream.push(batch(vec![7])).unwrap();
        stream.close();
        let slices: Vec<(usize, usize, usize)> = std::iter::from_fn(|| stream.queue.next_slice())
            .map(|(b, offset, rows)| (b.num_rows(), offset, rows))
            .collect();
        assert_eq!(slices, [(3000, 0, 2048), (3000, 2048, 952), (1, 0, 1)]);
        assert_eq!(stream.queue.lock().bytes, 0);
    }

    #[test]
    fn a_push_after_the_insert_stopped_is_refused() {
        let first = batch(vec![1]);
        let stream = Stream::new(first.schema(), 1);
        stream.push(first).unwrap();
        // Over the bound: waits for room until the insert stops.
        let stopper = stream.stopper();
        let waiting = std::thread::scope(|s| {
            let pushed = s.spawn(|| stream.push(batch(vec![2])));
            std::thread::sleep(std::time::Duration::from_millis(50));
            stopper();
            pushed.join().unwrap()
        });
        assert!(waiting.is_err());
        assert!(stream.queue.next_slice().is_none());
    }
}
