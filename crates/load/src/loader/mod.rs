//! The [`Loader`]: one run of Singer messages into a warehouse schema. Messages come in
//! here; schemas are applied in [`schema`], lines read straight from their text in
//! [`lines`], and checkpoints committed in [`commit`].

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use observes_model::infer::SchemaInference;
use observes_model::{IdAllocator, Normalizer};
use observes_singer::{Message, RecordMessage, SchemaMessage};
use observes_warehouse::{sql, LoadSizes, PendingCommit, Warehouse};
use serde_json::Value;

use crate::{
    ahead, check_schema_name, failpoint, metadata, modes, LoadConfig, LoadError, OnInvalid,
    OnMissingKey, Untyped, WriteMode,
};

mod commit;
mod drive;
mod lines;
mod schema;

/// Per-stream counts of a load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Root rows (records) committed.
    pub rows: u64,
    /// Records put in `_observes_rejects`.
    pub rejected: u64,
}

/// What a load did, when it finished.
#[derive(Debug, Clone, Default)]
pub struct LoadSummary {
    /// The load's id (`_observes_loads`, and every row's `_observes_load_id`).
    pub load_id: i64,
    /// Per stream, its counts.
    pub streams: BTreeMap<String, StreamCounts>,
    /// The last state committed by this load.
    pub state: Option<Value>,
    /// That state, when [`Loader::handle`] has not handed it out yet (the final checkpoint's
    /// commit is confirmed by `finish`): a Singer target still has to emit it.
    pub unreported_state: Option<Value>,
    /// Transactions committed.
    pub commits: u64,
}

/// A commit sent and not yet confirmed, with what it makes durable.
struct InFlight {
    commit: PendingCommit,
    state: Option<Value>,
    counts: Vec<(String, StreamCounts)>,
    started: Instant,
}

struct Stream {
    normalizer: Normalizer,
    /// The write mode this stream is loaded with: the load's, except that `merge` of a
    /// stream without key properties is `append`.
    write_mode: WriteMode,
    /// Tables prepared in the warehouse for this layout (in this transaction or before).
    prepared: bool,
    /// Records committed / pending in the open transaction.
    committed: StreamCounts,
    pending: StreamCounts,
    /// A merge stage holds rows for this stream in the open transaction.
    staged: bool,
    /// Replace: the aside tables were created in this load.
    aside_ready: bool,
    activate_version: bool,
    schema_hash: String,
    raw_schema: Value,
    /// With `untyped = "infer"`, the types of the schema's open places seen so far.
    inference: Option<SchemaInference>,
}

/// A SCHEMA with open places, held until its first record shows what they hold.
struct HeldSchema {
    line: u64,
    message: SchemaMessage,
    hash: String,
    inference: SchemaInference,
}

/// Loads one run of Singer messages into a warehouse schema.
pub struct Loader<'w> {
    wh: &'w mut dyn Warehouse,
    config: LoadConfig,
    /// The warehouse's sizes with the config's overrides.
    sizes: LoadSizes,
    ids: IdAllocator,
    streams: HashMap<String, Stream>,
    /// Streams whose latest SCHEMA waits for a record to type its open places.
    held: HashMap<String, HeldSchema>,
    /// Which stream holds which table (read at the first SCHEMA).
    owners: Option<metadata::TableOwners>,
    order: Vec<String>,
    in_transaction: bool,
    in_flight: Option<InFlight>,
    pending_state: Option<Value>,
    /// The last state handed out by `handle`.
    reported_state: Option<Value>,
    committed_state: Option<Value>,
    previous_state: Option<Value>,
    rejects: Vec<metadata::Reject>,
    commits: u64,
    started: Instant,
    last_progress: Instant,
    records_seen: u64,
    /// `records_seen` at the last commit, and when it was sent.
    records_committed: u64,
    last_commit: Instant,
    /// Bytes of normalized rows sent to the warehouse since the last commit.
    bytes_sent: u64,
}

impl<'w> Loader<'w> {
    /// Starts a load: creates the metadata tables, marks loads of this pipeline that died
    /// as `aborted`, takes a new load id and reads the last committed state.
    pub fn begin(wh: &'w mut dyn Warehouse, config: LoadConfig) -> Result<Self, LoadError> {
        check_schema_name(&config.schema, wh.dialect())?;
        wh.begin()?;
        let prepared = metadata::prepare(wh, &config.schema, &config.pipeline);
        let (load_id, previous_state) = match prepared {
            Ok(v) => v,
            Err(e) => {
                let _ = wh.rollback();
                return Err(e.into());
            }
        };
        wh.commit()?;
        tracing::info!(pipeline = %config.pipeline, schema = %config.schema, load_id, mode = ?config.write_mode, "load started");
        let defaults = wh.dialect().load;
        let sizes = LoadSizes {
            batch_rows: config.batch_rows.unwrap_or(defaults.batch_rows).max(1),
            commit_records: config.commit.records.unwrap_or(defaults.commit_records),
            commit_bytes: config.commit.bytes.unwrap_or(defaults.commit_bytes),
            ..defaults
        };
        Ok(Loader {
            wh,
            config,
            sizes,
            ids: IdAllocator::new(load_id),
            streams: HashMap::new(),
            held: HashMap::new(),
            owners: None,
            order: Vec::new(),
            in_transaction: false,
            in_flight: None,
            pending_state: None,
            reported_state: None,
            committed_state: None,
            previous_state,
            rejects: Vec::new(),
            commits: 0,
            started: Instant::now(),
            last_progress: Instant::now(),
            records_seen: 0,
            records_committed: 0,
            last_commit: Instant::now(),
            bytes_sent: 0,
        })
    }

    /// The load's id.
    pub fn load_id(&self) -> i64 {
        self.ids.load_id()
    }

    /// The state the warehouse held when this load began (where a source resumes from).
    pub fn previous_state(&self) -> Option<&Value> {
        self.previous_state.as_ref()
    }

    fn ensure_transaction(&mut self) -> Result<(), LoadError> {
        if !self.in_transaction {
            self.wh.begin()?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Handles one message. Returns a state once the transaction that holds it is durable
    /// (the caller copies it to the state store): checkpoints commit while loading goes on,
    /// so the state of one checkpoint may come back with a later message.
    pub fn handle(&mut self, line: u64, message: Message) -> Result<Option<Value>, LoadError> {
        let finished = self.poll()?;
        let committed = self.handle_message(line, message)?;
        // At most one commit is in flight, so at most one of these is a state.
        Ok(self.report(committed.or(finished)))
    }

    /// The state of a commit that finished while no message came (a quiet source), so the
    /// caller can hand it out now rather than with the source's next message.
    pub(crate) fn committed_meanwhile(&mut self) -> Result<Option<Value>, LoadError> {
        let finished = self.poll()?;
        Ok(self.report(finished))
    }

    /// Notes a state handed out to the caller.
    fn report(&mut self, state: Option<Value>) -> Option<Value> {
        if state.is_some() {
            self.reported_state = state.clone();
        }
        state
    }

    fn handle_message(&mut self, line: u64, message: Message) -> Result<Option<Value>, LoadError> {
        match message {
            Message::Schema(schema) => {
                self.schema(line, schema)?;
                Ok(None)
            }
            Message::Record(record) => {
                self.record(line, record)?;
                Ok(None)
            }
            Message::State(state) => {
                self.pending_state = Some(state.value);
                if self.config.write_mode == WriteMode::Replace {
                    // A full reload commits its state with the swap, at the end.
                    return Ok(None);
                }
                if self.records_seen - self.records_committed >= self.sizes.commit_records
                    || self.bytes_since_commit() >= self.sizes.commit_bytes
                    || self.last_commit.elapsed() >= self.config.commit.interval
                {
                    self.checkpoint()
                } else {
                    Ok(None)
                }
            }
            Message::ActivateVersion(av) => {
                match self.streams.get_mut(&av.stream) {
                    Some(stream) => stream.activate_version = true,
                    None => {
                        return Err(LoadError::RecordBeforeSchema {
                            line,
                            stream: av.stream,
                        })
                    }
                }
                Ok(None)
            }
        }
    }

    /// With `untyped = "infer"`: types the stream's open places from this record, and
    /// evolves its tables first when the record shows something new.
    fn infer(&mut self, line: u64, message: &RecordMessage) -> Result<(), LoadError> {
        let name = &message.stream;
        // A held SCHEMA is applied with its first record (and its errors are reported at
        // its own line); a stream already loading evolves only when the record shows more.
        let (held_at, schema, hash, mut inference) = match self.held.remove(name) {
            Some(held) => (Some(held.line), held.message, held.hash, held.inference),
            None => match self.streams.get_mut(name) {
                Some(stream) => match stream.inference.take() {
                    Some(inference) => (
                        None,
                        SchemaMessage {
                            stream: name.clone(),
                            schema: Value::Null, // replaced by the inferred schema below
                            key_properties: stream.normalizer.layout().key_properties.clone(),
                            bookmark_properties: Vec::new(),
                        },
                        stream.schema_hash.clone(),
                        inference,
                    ),
                    None => return Ok(()),
                },
                None => return Ok(()),
            },
        };
        let record = match &message.record {
            observes_singer::Record::Parsed(map) => std::borrow::Cow::Borrowed(map),
            raw => match raw.to_value() {
                Value::Object(map) => std::borrow::Cow::Owned(map),
                _ => std::borrow::Cow::Owned(serde_json::Map::new()),
            },
        };
        let changed = inference.observe(&record);
        if changed || held_at.is_some() {
            if changed {
                tracing::info!(stream = %name, line, "new keys or types in untyped objects: the tables evolve");
            }
            let message = SchemaMessage {
                schema: inference.schema(),
                ..schema
            };
            self.apply_schema(held_at.unwrap_or(line), message, hash, Some(inference))
        } else {
            if let Some(stream) = self.streams.get_mut(name) {
                stream.inference = Some(inference);
            }
            Ok(())
        }
    }

    fn record(&mut self, line: u64, message: RecordMessage) -> Result<(), LoadError> {
        if self.config.untyped == Untyped::Infer {
            self.infer(line, &message)?;
        }
        let Some(stream) = self.streams.get_mut(&message.stream) else {
            if self.config.on_invalid == OnInvalid::Quarantine {
                self.rejects.push(metadata::Reject {
                    reason: "RECORD before the stream's SCHEMA".into(),
                    record: message.record.to_json_string(),
                    stream: message.stream,
                    line,
                });
                return Ok(());
            }
            return Err(LoadError::RecordBeforeSchema {
                line,
                stream: message.stream,
            });
        };
        self.records_seen += 1;
        match stream.normalizer.push(&message.record, &mut self.ids) {
            Ok(()) => stream.pending.rows += 1,
            Err(mut source) => {
                // Columns of unreadable JSON count from the start of the input line.
                if let (Some(column), observes_singer::Record::Raw(raw)) =
                    (&mut source.column, &message.record)
                {
                    *column += raw.offset();
                }
                match self.config.on_invalid {
                    OnInvalid::Fail => {
                        return Err(LoadError::InvalidRecord {
                            line,
                            stream: message.stream,
                            source,
                        })
                    }
                    OnInvalid::Quarantine => {
                        stream.pending.rejected += 1;
                        self.rejects.push(metadata::Reject {
                            stream: message.stream.clone(),
                            line,
                            reason: source.to_string(),
                            record: message.record.to_json_string(),
                        });
                    }
                }
            }
        }
        self.after_record(&message.stream)
    }

    /// Sends a stream's rows on when enough are buffered, and logs progress now and then.
    fn after_record(&mut self, name: &str) -> Result<(), LoadError> {
        self.flush_if_full(name)?;
        if self.records_seen.is_multiple_of(1024) {
            self.progress();
        }
        Ok(())
    }

    /// Bytes of normalized rows since the last commit: sent, and still buffered.
    fn bytes_since_commit(&self) -> u64 {
        let buffered: usize = self
            .streams
            .values()
            .map(|s| s.normalizer.buffered_bytes())
            .sum();
        self.bytes_sent + buffered as u64
    }

    fn flush_if_full(&mut self, name: &str) -> Result<(), LoadError> {
        let full = self.streams.get(name).is_some_and(|s| {
            s.normalizer.buffered_rows() >= self.sizes.batch_rows
                || s.normalizer.buffered_bytes() >= self.sizes.batch_bytes
        });
        if full {
            self.flush_stream(name)?;
        }
        Ok(())
    }

    fn progress(&mut self) {
        if self.last_progress.elapsed().as_secs() >= 5 {
            self.last_progress = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            tracing::info!(
                records = self.records_seen,
                per_second = (self.records_seen as f64 / secs) as u64,
                "loading"
            );
        }
    }

    /// Sends a stream's buffered rows to the warehouse (inside the open transaction).
    fn flush_stream(&mut self, name: &str) -> Result<(), LoadError> {
        let Some(stream) = self.streams.get_mut(name) else {
            return Ok(());
        };
        let bytes = stream.normalizer.buffered_bytes() as u64;
        let batches = stream.normalizer.take_batches();
        if batches.is_empty() {
            return Ok(());
        }
        self.bytes_sent += bytes;
        let layout = stream.normalizer.layout().clone();
        if !self.in_transaction {
            self.wh.begin()?;
            self.in_transaction = true;
        }
        let schema = self.config.schema.clone();
        let write_mode = stream.write_mode;
        if write_mode == WriteMode::Merge && !stream.staged {
            for table in &layout.tables {
                let stage = modes::stage_name(&table.name);
                self.wh.execute(&sql::drop_table(&schema, &stage), &[])?;
                self.wh
                    .execute(&sql::create_table_like(&schema, &stage, &table.name), &[])?;
            }
            stream.staged = true;
        }
        for (index, batch) in batches {
            let table = &layout.tables[index].name;
            let target = match write_mode {
                WriteMode::Append => table.clone(),
                WriteMode::Merge => modes::stage_name(table),
                WriteMode::Replace => modes::aside_name(table),
            };
            self.wh.bulk_append(&schema, &target, &batch)?;
        }
        failpoint("flushed");
        Ok(())
    }

    fn apply_merge(&mut self, name: &str) -> Result<(), LoadError> {
        let Some(stream) = self.streams.get_mut(name) else {
            return Ok(());
        };
        if !stream.staged {
            return Ok(());
        }
        let layout = stream.normalizer.layout().clone();
        stream.staged = false;
        modes::merge(self.wh, &self.config.schema, &layout)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CommitPolicy;

    fn handle(loader: &mut Loader<'_>, line: u64, text: &str) -> Result<Option<Value>, LoadError> {
        loader.handle(
            line,
            observes_singer::parse_message(text.as_bytes()).unwrap(),
        )
    }

    #[test]
    fn a_checkpoint_committed_before_a_failing_message_is_still_handed_out() {
        // Not pipelined: each commit is done when started, so the next call finds it so.
        let mut wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
        let mut config = LoadConfig::new("p", "raw");
        config.commit = CommitPolicy::every_checkpoint();
        let mut loader = Loader::begin(wh.as_mut(), config).unwrap();
        let schema = |ty: &str| {
            format!(
                r#"{{"type":"SCHEMA","stream":"a","key_properties":["id"],"schema":{{"type":"object","properties":{{"id":{{"type":"integer"}},"x":{{"type":"{ty}"}}}}}}}}"#
            )
        };
        handle(&mut loader, 1, &schema("boolean")).unwrap();
        handle(
            &mut loader,
            2,
            r#"{"type":"RECORD","stream":"a","record":{"id":1,"x":true}}"#,
        )
        .unwrap();
        let sent = handle(&mut loader, 3, r#"{"type":"STATE","value":{"at":1}}"#).unwrap();
        assert_eq!(sent, None, "handed out once the commit is seen done");
        // The SCHEMA fails (boolean → integer); the commit before it had finished.
        let err = handle(&mut loader, 4, &schema("integer")).unwrap_err();
        let said = observes_runtime::chain(&err).to_string();
        assert!(said.starts_with("line 4: "), "{said}");
        assert_eq!(
            err.to_string(),
            "line 4",
            "the cause is the source, not in the text"
        );
        assert_eq!(loader.abort(&err), Some(serde_json::json!({"at": 1})));
    }

    #[test]
    fn sizes_are_the_warehouses_unless_the_load_sets_them() {
        let duckdb = observes_warehouse::duckdb::DIALECT.load;
        let mut wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
        let loader = Loader::begin(wh.as_mut(), LoadConfig::new("p", "raw")).unwrap();
        assert_eq!(loader.sizes, duckdb);
        assert_eq!(duckdb.commit_records, 491_520);
        assert_eq!(duckdb.commit_bytes, 256 << 20);
        drop(loader);
        let mut config = LoadConfig::new("p", "raw");
        config.batch_rows = Some(0);
        config.commit.records = Some(7);
        config.commit.bytes = Some(1000);
        let loader = Loader::begin(wh.as_mut(), config).unwrap();
        let want = LoadSizes {
            batch_rows: 1,
            commit_records: 7,
            commit_bytes: 1000,
            ..duckdb
        };
        assert_eq!(loader.sizes, want);
    }
}
