//! The loader: Singer messages in, committed warehouse tables out.
//!
//! A [`Loader`] feeds records through the normalizer into a [`Warehouse`], and treats every
//! `STATE` message as a checkpoint: the rows before it, the metadata about them and the state
//! itself are committed in one transaction. The caller gets the state back only after that
//! commit, to copy it to the state store. A crash therefore loses nothing that was committed
//! and commits nothing twice: a re-run resumes from the last committed state.
//!
//! Write modes ([`WriteMode`]) share one SQL path for every warehouse, in [`modes`].
//!
//! ```
//! use observes_load::{LoadConfig, Loader};
//! use observes_singer::MessageReader;
//!
//! let input = br#"{"type":"SCHEMA","stream":"users","schema":{"properties":{"id":{"type":"integer"}}},"key_properties":["id"]}
//! {"type":"RECORD","stream":"users","record":{"id":1}}
//! {"type":"STATE","value":{"users":1}}
//! "#;
//! let mut wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
//! let mut loader = Loader::begin(wh.as_mut(), LoadConfig::new("demo", "raw")).unwrap();
//! for line in MessageReader::new(&input[..]) {
//!     let line = line.unwrap();
//!     loader.handle(line.number, line.message).unwrap();
//! }
//! let summary = loader.finish().unwrap();
//! assert_eq!(summary.streams["users"].rows, 1);
//! ```

/// A setting spelled by name in configs and flags: `FromStr`, with an error that lists the
/// names, and `as_str` back.
macro_rules! named_setting {
    ($ty:ident, $what:literal, $($name:literal => $variant:ident),+ $(,)?) => {
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (expected {})",
                        $what,
                        $crate::one_of(&[$($name),+])
                    )),
                }
            }
        }

        impl $ty {
            /// The name configs and flags spell it with.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }
    };
}

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

pub mod ahead;
pub mod inspect;
pub mod metadata;
pub mod modes;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use observes_model::infer::SchemaInference;
use observes_model::{
    IdAllocator, IncompatibleChange, InvalidRecord, Layout, Normalizer, SchemaChangePolicy,
    SchemaError, TableChange,
};
use observes_singer::{Message, RecordMessage, SchemaMessage};
use observes_warehouse::{sql, PendingCommit, Warehouse, WarehouseError};
use serde_json::Value;

pub use modes::WriteMode;

/// What to do with a record that contradicts its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInvalid {
    /// Stop the load; nothing of the failed checkpoint is committed.
    #[default]
    Fail,
    /// Put the record in `_observes_rejects` with its reason and load the rest.
    Quarantine,
}

named_setting!(OnInvalid, "bad-input policy", "fail" => Fail, "quarantine" => Quarantine);

/// What `merge` does with a stream whose SCHEMA has no `key_properties`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissingKey {
    /// Load the stream as `append` (with a warning), as Singer targets and dlt do: one
    /// keyless stream does not stop the tap's other streams.
    #[default]
    Append,
    /// Fail the load with a located error.
    Fail,
}

named_setting!(OnMissingKey, "missing-key policy", "append" => Append, "fail" => Fail);

/// What open places of a schema become: objects declared without properties
/// (`"additionalProperties": true`) and arrays without an item schema, as taps that infer
/// their SCHEMA send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Untyped {
    /// One JSON column (or a child table of JSON values), as declared.
    #[default]
    Json,
    /// Columns and child tables typed from the records, evolving as new keys arrive
    /// ([`observes_model::infer`]). Such streams are read off the fast path.
    Infer,
}

named_setting!(Untyped, "untyped policy", "json" => Json, "infer" => Infer);

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub pipeline: String,
    /// The warehouse schema (dataset) the tables go into.
    pub schema: String,
    pub write_mode: WriteMode,
    pub on_invalid: OnInvalid,
    /// Rows buffered per stream before they are sent to the warehouse (not committed).
    pub batch_rows: usize,
    /// What an incompatible type change does.
    pub on_schema_change: SchemaChangePolicy,
    /// When a `STATE` commits; see [`CommitPolicy`].
    pub commit: CommitPolicy,
    /// `merge` of a stream without key properties.
    pub on_missing_key: OnMissingKey,
    /// Objects and arrays the SCHEMA leaves untyped.
    pub untyped: Untyped,
}

/// When a checkpoint (a `STATE`) is committed: once at least `records` records arrived
/// since the last commit, or `interval` has passed since it, whichever comes first; the
/// last checkpoint always commits. Until then later states supersede earlier ones (the
/// commit carries the latest), as Singer targets batch them. `records = 0` commits every
/// checkpoint as it comes.
///
/// Commits are what make data visible and resumable; they also cost every warehouse a
/// round of work (DuckDB writes its log, Redshift its blocks), so a tap that checkpoints
/// every few hundred records would otherwise spend its time committing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommitPolicy {
    pub records: u64,
    pub interval: std::time::Duration,
}

impl Default for CommitPolicy {
    fn default() -> Self {
        CommitPolicy {
            // Four DuckDB row groups. A table that gets whole row groups in a transaction
            // has them compressed as they fill, several at a time, and moved over as
            // written at commit; what is left over is appended, logged and compressed again
            // at the commit, on one thread. Fewer, larger commits leave less of that
            // (bench/RESULTS.md); a crash redoes at most this many records.
            records: 4 * observes_warehouse::duckdb::ROW_GROUP as u64,
            interval: std::time::Duration::from_secs(30),
        }
    }
}

impl CommitPolicy {
    /// Every checkpoint commits as it comes.
    pub fn every_checkpoint() -> Self {
        CommitPolicy {
            records: 0,
            interval: std::time::Duration::ZERO,
        }
    }
}

impl LoadConfig {
    pub fn new(pipeline: &str, schema: &str) -> Self {
        LoadConfig {
            pipeline: pipeline.to_string(),
            schema: schema.to_string(),
            write_mode: WriteMode::Append,
            on_invalid: OnInvalid::Fail,
            batch_rows: 50_000,
            on_schema_change: SchemaChangePolicy::Fail,
            commit: CommitPolicy::default(),
            on_missing_key: OnMissingKey::Append,
            untyped: Untyped::Json,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("line {line}, stream {stream:?}: {source}")]
    InvalidRecord {
        line: u64,
        stream: String,
        #[source]
        source: InvalidRecord,
    },
    #[error("line {line}: {source}")]
    Schema {
        line: u64,
        #[source]
        source: SchemaError,
    },
    #[error("line {line}: {source}")]
    Incompatible {
        line: u64,
        #[source]
        source: IncompatibleChange,
    },
    #[error("line {line}, stream {stream:?}: RECORD before the stream's SCHEMA")]
    RecordBeforeSchema { line: u64, stream: String },
    #[error("line {line}, stream {stream:?}: write mode \"merge\" needs key_properties, and the SCHEMA has none")]
    MergeWithoutKeys { line: u64, stream: String },
    #[error("schema {schema:?}: {reason}")]
    SchemaName { schema: String, reason: String },
    #[error(
        "line {line}, stream {stream:?}: table {table:?} {holder}; two streams never share a table"
    )]
    TableTaken {
        line: u64,
        stream: String,
        table: String,
        /// Who holds it, in words.
        holder: String,
    },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// Bytes buffered per stream before they are sent to the warehouse, whatever the row count
/// (wide or text-heavy records).
const BATCH_BYTES: usize = 64 << 20;

/// Per-stream counts of a load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Root rows (records) committed.
    pub rows: u64,
    /// Records put in `_observes_rejects`.
    pub rejected: u64,
}

#[derive(Debug, Clone, Default)]
pub struct LoadSummary {
    pub load_id: i64,
    pub streams: BTreeMap<String, StreamCounts>,
    /// The last state committed by this load.
    pub state: Option<Value>,
    /// That state, when [`Loader::handle`] has not handed it out yet (the final checkpoint's
    /// commit is confirmed by `finish`): a Singer target still has to emit it.
    pub unreported_state: Option<Value>,
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
        Ok(Loader {
            wh,
            config,
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
        })
    }

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
    pub fn committed_meanwhile(&mut self) -> Result<Option<Value>, LoadError> {
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
                let policy = self.config.commit;
                if self.records_seen - self.records_committed >= policy.records
                    || self.last_commit.elapsed() >= policy.interval
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

    fn schema(&mut self, line: u64, message: SchemaMessage) -> Result<(), LoadError> {
        let hash = schema_hash(&message.schema, &message.key_properties);
        let name = &message.stream;
        let repeated = match self.held.get(name) {
            Some(held) => held.hash == hash,
            None => self
                .streams
                .get(name)
                .is_some_and(|s| s.schema_hash == hash),
        };
        if repeated {
            return Ok(()); // Taps repeat their SCHEMA; nothing changed.
        }
        if self.config.untyped == Untyped::Infer {
            let inference = SchemaInference::new(&message.schema);
            if inference.is_open() {
                // A schema that cannot be loaded fails at its own line, record or not.
                let max = self.wh.dialect().max_identifier;
                Layout::compile(name, &message.schema, &message.key_properties, max)
                    .map_err(|source| LoadError::Schema { line, source })?;
                self.held.insert(
                    name.clone(),
                    HeldSchema {
                        line,
                        message,
                        hash,
                        inference,
                    },
                );
                return Ok(());
            }
        }
        self.held.remove(name);
        self.apply_schema(line, message, hash, None)
    }

    /// Fits the tables to a stream's (new) schema: creates or evolves them, and switches the
    /// stream's rows over to it.
    fn apply_schema(
        &mut self,
        line: u64,
        message: SchemaMessage,
        hash: String,
        inference: Option<SchemaInference>,
    ) -> Result<(), LoadError> {
        let dialect = self.wh.dialect();
        let mut layout = self.compile_layout(line, &message)?;
        layout.max_text_bytes = dialect.max_text_bytes;
        let write_mode = match self.config.write_mode {
            WriteMode::Merge if layout.key_properties.is_empty() => {
                if self.config.on_missing_key == OnMissingKey::Fail {
                    return Err(LoadError::MergeWithoutKeys {
                        line,
                        stream: message.stream,
                    });
                }
                WriteMode::Append
            }
            mode => mode,
        };
        let previous = self.streams.get(&message.stream);
        if write_mode != self.config.write_mode
            && previous.is_none_or(|s| s.write_mode != write_mode)
        {
            tracing::warn!(
                stream = %message.stream,
                line,
                "the SCHEMA has no key_properties: the stream is loaded as append, not merge \
                 (on_missing_key = \"fail\" refuses such a stream)"
            );
        }
        if let Some(existing) = previous {
            let from = &existing.normalizer.layout().key_properties;
            if self.config.write_mode == WriteMode::Merge && *from != layout.key_properties {
                // The key evolved: what came under the old key is merged on it, and the
                // records from here on are merged on the new one.
                tracing::warn!(
                    stream = %message.stream,
                    line,
                    from = ?from,
                    to = ?layout.key_properties,
                    "the stream's key properties changed: records from this line on are merged on the new key"
                );
            }
            // The old layout's rows go to the warehouse before the tables change under them.
            self.flush_stream(&message.stream)?;
            self.apply_merge(&message.stream)?;
        } else {
            self.order.push(message.stream.clone());
        }
        let aside_ready = self
            .streams
            .get(&message.stream)
            .is_some_and(|s| s.aside_ready);
        let committed = self
            .streams
            .get(&message.stream)
            .map(|s| s.committed.clone())
            .unwrap_or_default();
        let pending = self
            .streams
            .get(&message.stream)
            .map(|s| s.pending.clone())
            .unwrap_or_default();
        let activate_version = self
            .streams
            .get(&message.stream)
            .is_some_and(|s| s.activate_version);
        let mut stream = Stream {
            normalizer: Normalizer::new(Arc::new(layout.clone())),
            write_mode,
            prepared: false,
            committed,
            pending,
            staged: false,
            aside_ready,
            activate_version,
            schema_hash: hash,
            raw_schema: message.schema,
            inference,
        };
        // Fit the layout to the tables as they are now, so batches match them column for
        // column.
        self.ensure_transaction()?;
        let layout = self.prepare_tables(line, layout, &mut stream)?;
        stream.normalizer = Normalizer::new(Arc::new(layout));
        stream.prepared = true;
        self.streams.insert(message.stream.clone(), stream);
        Ok(())
    }

    /// Compiles a stream's layout into tables no other stream holds. Names are normalized,
    /// so streams `fooBar` and `foo_bar`, or `Jobs` and `jobs`, would both be `foo_bar` or
    /// `jobs`, and a stream `jobs__artifacts` would be the child table of `jobs`'s array.
    /// The first stream keeps the plain name; a later one gets the name with a hash of its
    /// own (recorded, so it keeps it on every later load).
    fn compile_layout(&mut self, line: u64, message: &SchemaMessage) -> Result<Layout, LoadError> {
        let max = self.wh.dialect().max_identifier;
        if self.owners.is_none() {
            self.owners = Some(metadata::table_owners(self.wh, &self.config.schema)?);
        }
        let owners = self.owners.get_or_insert_with(Default::default);
        let stream = &message.stream;
        let compile = |root: &str| {
            Layout::compile_as(stream, root, &message.schema, &message.key_properties, max)
                .map_err(|source| LoadError::Schema { line, source })
        };
        let recorded = owners.root(stream).map(str::to_string);
        let mut layout = compile(
            &recorded
                .clone()
                .unwrap_or_else(|| Layout::root_table_name(stream, max)),
        )?;
        if recorded.is_none() && owners.conflict(&layout).is_some() {
            let distinct = Layout::distinct_root_table_name(stream, max);
            tracing::warn!(
                stream = %stream,
                table = %distinct,
                "the stream's name normalizes to a table another stream holds: it is loaded into its own table"
            );
            layout = compile(&distinct)?;
        }
        if let Some((table, owner)) = owners.conflict(&layout) {
            return Err(LoadError::TableTaken {
                line,
                stream: stream.clone(),
                table,
                holder: if owner.is_empty() {
                    "is one of Observes' own".into()
                } else {
                    format!("already holds stream {owner:?}")
                },
            });
        }
        owners.claim(&layout);
        Ok(layout)
    }

    /// Creates or evolves the tables a layout writes to; returns the layout fitted to them.
    fn prepare_tables(
        &mut self,
        line: u64,
        mut layout: Layout,
        stream: &mut Stream,
    ) -> Result<Layout, LoadError> {
        let schema = self.config.schema.clone();
        let dialect = self.wh.dialect();
        self.wh.execute(&sql::create_schema(&schema), &[])?;
        let replace = self.config.write_mode == WriteMode::Replace;
        for i in 0..layout.tables.len() {
            let name = layout.tables[i].name.clone();
            let target = if replace {
                modes::aside_name(&name)
            } else {
                name.clone()
            };
            if replace && !stream.aside_ready {
                // A full reload starts from empty tables, whatever was left by a dead run.
                self.wh.execute(&sql::drop_table(&schema, &target), &[])?;
            }
            match self.wh.table_columns(&schema, &target)? {
                None => {
                    self.wh.execute(
                        &sql::create_table(dialect, &schema, &target, &layout.tables[i].columns),
                        &[],
                    )?;
                }
                Some(existing) => {
                    let changes = layout
                        .reconcile(i, &existing, self.config.on_schema_change)
                        .map_err(|source| LoadError::Incompatible { line, source })?;
                    for change in changes {
                        let statements = match &change {
                            TableChange::AddColumn { column } => {
                                vec![sql::add_column(dialect, &schema, &target, column)]
                            }
                            TableChange::WidenColumn { column, from, to } => {
                                sql::widen_column(dialect, &schema, &target, column, *from, *to)
                            }
                        };
                        tracing::info!(table = %target, change = ?change, "schema change");
                        for statement in statements {
                            self.wh.execute(&statement, &[])?;
                        }
                    }
                }
            }
        }
        if replace {
            stream.aside_ready = true;
        }
        metadata::record_schema_version(
            self.wh,
            &schema,
            &layout,
            // The schema the tables follow (with `untyped = "infer"`, not the one sent).
            &schema_hash(&stream.raw_schema, &layout.key_properties),
            &stream.raw_schema,
            self.ids.load_id(),
        )?;
        Ok(layout)
    }

    /// Handles a `RECORD` line straight from its text, where it is the common case (see
    /// [`observes_singer::scan_record_line`]): the line is scanned once and its record
    /// normalized on the way. `None` when the line is not for this path: the caller parses
    /// it and calls [`Loader::handle`], which then decides everything (errors included).
    pub fn handle_record_line(&mut self, bytes: &[u8]) -> Result<Option<Option<Value>>, LoadError> {
        let streams = &mut self.streams;
        let held = &self.held;
        let ids = &mut self.ids;
        let mut started: Option<(&str, observes_model::Mark)> = None;
        let scanned = observes_singer::scan_record_line(bytes, |name, c| {
            let stream = streams
                .get_mut(name)
                .filter(|s| s.inference.is_none() && !held.contains_key(name))
                .ok_or(observes_singer::json::Bail)?;
            started = Some((name, stream.normalizer.mark(ids)));
            stream.normalizer.push_json(c, ids)
        });
        match scanned {
            Ok(line) => {
                let name = line.stream;
                if let Some(stream) = self.streams.get_mut(name) {
                    stream.pending.rows += 1;
                }
                self.records_seen += 1;
                self.after_record(name)?;
                let finished = self.poll()?;
                Ok(Some(self.report(finished)))
            }
            Err(_) => {
                if let Some((name, mark)) = started {
                    if let Some(stream) = self.streams.get_mut(name) {
                        stream.normalizer.undo(mark, &mut self.ids);
                    }
                }
                Ok(None)
            }
        }
    }

    /// The streams' layouts now, for [`ahead::prepare`].
    pub fn layouts(&self) -> Arc<ahead::Layouts> {
        Arc::new(ahead::Layouts {
            load_id: self.ids.load_id(),
            // Streams typed from their records are read here, never ahead.
            streams: self
                .streams
                .iter()
                .filter(|(name, s)| s.inference.is_none() && !self.held.contains_key(*name))
                .map(|(name, stream)| (name.clone(), stream.normalizer.layout().clone()))
                .collect(),
        })
    }

    /// Takes over records a helper normalized ahead, as if their lines were read here: all
    /// of them, or none when a stream's layout changed since ([`ahead`]). Returns how many
    /// leading lines of their block that covers (the caller reads the rest) and, as
    /// [`Loader::handle`] does, a state that became durable.
    pub fn take_ahead(
        &mut self,
        prepared: &mut ahead::Prepared,
    ) -> Result<(usize, Option<Value>), LoadError> {
        let current = prepared.streams.iter().all(|(name, normalizer, _)| {
            self.streams
                .get(name)
                .is_some_and(|s| Arc::ptr_eq(s.normalizer.layout(), normalizer.layout()))
        });
        if !current || prepared.lines == 0 {
            return Ok((0, None));
        }
        let shift = self.ids.take_over(&prepared.ids);
        for (name, normalizer, records) in prepared.streams.iter_mut() {
            if let Some(stream) = self.streams.get_mut(name.as_str()) {
                stream.normalizer.absorb(normalizer, shift);
                stream.pending.rows += *records;
            }
            self.records_seen += *records;
        }
        for (name, ..) in &prepared.streams {
            self.flush_if_full(name)?;
        }
        self.progress();
        let finished = self.poll()?;
        Ok((prepared.lines, self.report(finished)))
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

    fn flush_if_full(&mut self, name: &str) -> Result<(), LoadError> {
        let full = self.streams.get(name).is_some_and(|s| {
            s.normalizer.buffered_rows() >= self.config.batch_rows
                || s.normalizer.buffered_bytes() >= BATCH_BYTES
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

    /// Quarantines input that is not even a message (malformed JSON), when the policy allows.
    pub fn reject_line(
        &mut self,
        line: u64,
        reason: String,
        raw: &[u8],
    ) -> Result<bool, LoadError> {
        if self.config.on_invalid != OnInvalid::Quarantine {
            return Ok(false);
        }
        self.rejects.push(metadata::Reject {
            stream: String::new(),
            line,
            reason,
            record: String::from_utf8_lossy(raw).into_owned(),
        });
        Ok(true)
    }

    /// Sends a stream's buffered rows to the warehouse (inside the open transaction).
    fn flush_stream(&mut self, name: &str) -> Result<(), LoadError> {
        let Some(stream) = self.streams.get_mut(name) else {
            return Ok(());
        };
        let batches = stream.normalizer.take_batches();
        if batches.is_empty() {
            return Ok(());
        }
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

    /// Commits everything buffered, with the pending state. Returns that state.
    fn checkpoint(&mut self) -> Result<Option<Value>, LoadError> {
        self.apply_buffered(false)?;
        self.commit()
    }

    /// Brings the open transaction up to date with everything received: buffered rows
    /// sent, merges applied, `ACTIVATE_VERSION`s honoured, metadata and state written; at
    /// the end of a load also the replace swap. Everything but the `COMMIT`.
    fn apply_buffered(&mut self, end_of_load: bool) -> Result<(), LoadError> {
        let names = self.order.clone();
        for name in &names {
            self.flush_stream(name)?;
        }
        self.ensure_transaction()?;
        let schema = self.config.schema.clone();
        for name in &names {
            match self.streams[name].write_mode {
                WriteMode::Merge => self.apply_merge(name)?,
                WriteMode::Replace if end_of_load => {
                    modes::swap_in(self.wh, &schema, self.streams[name].normalizer.layout())?
                }
                WriteMode::Replace | WriteMode::Append => {}
            }
            let stream = &self.streams[name];
            if stream.activate_version && stream.write_mode != WriteMode::Replace {
                modes::drop_older_loads(
                    self.wh,
                    &schema,
                    stream.normalizer.layout(),
                    self.ids.load_id(),
                )?;
            }
        }
        self.write_metadata("running")
    }

    fn write_metadata(&mut self, status: &str) -> Result<(), LoadError> {
        let schema = self.config.schema.clone();
        metadata::insert_rejects(
            self.wh,
            &schema,
            self.ids.load_id(),
            &std::mem::take(&mut self.rejects),
        )?;
        for name in &self.order {
            let stream = &self.streams[name];
            metadata::record_load(
                self.wh,
                &schema,
                self.ids.load_id(),
                &self.config.pipeline,
                name,
                stream.write_mode,
                stream.pending.rows,
                stream.pending.rejected,
                status,
            )?;
        }
        if let Some(state) = &self.pending_state {
            metadata::write_state(
                self.wh,
                &schema,
                &self.config.pipeline,
                state,
                self.ids.load_id(),
            )?;
        }
        Ok(())
    }

    /// Sends `COMMIT` for the open transaction. It runs while the loader goes on with the
    /// next records; its state is handed out only once it is durable (by [`Self::settle`]).
    /// Returns the state of the commit before it, which is settled first: one at a time.
    fn commit(&mut self) -> Result<Option<Value>, LoadError> {
        let earlier = self.settle()?;
        failpoint("before-commit");
        let commit = self.wh.start_commit()?;
        self.in_transaction = false;
        self.records_committed = self.records_seen;
        self.last_commit = Instant::now();
        let counts = self
            .streams
            .iter_mut()
            .map(|(name, stream)| {
                stream.activate_version = false;
                (name.clone(), std::mem::take(&mut stream.pending))
            })
            .collect();
        self.in_flight = Some(InFlight {
            commit,
            state: self.pending_state.take(),
            counts,
            started: Instant::now(),
        });
        Ok(earlier)
    }

    /// Waits for the commit in flight, if any: its rows become committed and its state is
    /// returned, once it is durable.
    fn settle(&mut self) -> Result<Option<Value>, LoadError> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(None);
        };
        in_flight.commit.wait()?;
        tracing::debug!(
            seconds = in_flight.started.elapsed().as_secs_f64(),
            "committed"
        );
        self.commits += 1;
        for (name, counts) in in_flight.counts {
            if let Some(stream) = self.streams.get_mut(&name) {
                stream.committed.rows += counts.rows;
                stream.committed.rejected += counts.rejected;
            }
        }
        if in_flight.state.is_some() {
            self.committed_state = in_flight.state.clone();
        }
        Ok(in_flight.state)
    }

    /// The state of the commit in flight if it has finished meanwhile (no waiting).
    fn poll(&mut self) -> Result<Option<Value>, LoadError> {
        let finished = self
            .in_flight
            .as_mut()
            .is_some_and(|f| f.commit.is_finished());
        if finished {
            self.settle()
        } else {
            Ok(None)
        }
    }

    /// Commits what is left (with the last state seen) and marks the load completed.
    pub fn finish(mut self) -> Result<LoadSummary, LoadError> {
        self.apply_buffered(true)?;
        metadata::complete_load(
            self.wh,
            &self.config.schema,
            self.ids.load_id(),
            "completed",
        )?;
        self.commit()?;
        self.settle()?;
        let secs = self.started.elapsed().as_secs_f64();
        tracing::info!(
            load_id = self.ids.load_id(),
            records = self.records_seen,
            seconds = format!("{secs:.2}"),
            "load completed"
        );
        Ok(LoadSummary {
            load_id: self.ids.load_id(),
            streams: self
                .order
                .iter()
                .map(|n| (n.clone(), self.streams[n].committed.clone()))
                .collect(),
            state: self.committed_state.clone(),
            unreported_state: if self.committed_state != self.reported_state {
                self.committed_state.clone()
            } else {
                None
            },
            commits: self.commits,
        })
    }

    /// Abandons the load after an error: rolls back the open transaction (earlier
    /// checkpoints stay committed) and records the failure in `_observes_loads`.
    ///
    /// Returns the state of a checkpoint committed and not yet handed out (its commit was
    /// still running, or finished just before the call that failed): the caller must pass
    /// it on like any other.
    #[must_use = "a state committed during the abort must still reach the state store"]
    pub fn abort(mut self, error: &str) -> Option<Value> {
        // A commit already sent stands or falls on its own.
        if let Err(e) = self.settle() {
            tracing::warn!(error = %e, "the last checkpoint's commit failed");
        }
        if self.in_transaction {
            if let Err(e) = self.wh.rollback() {
                tracing::warn!(error = %e, "rollback failed");
            }
            self.in_transaction = false;
        }
        let result = (|| -> Result<(), LoadError> {
            self.wh.begin()?;
            metadata::fail_load(
                self.wh,
                &self.config.schema,
                self.ids.load_id(),
                &self.config.pipeline,
                error,
            )?;
            self.wh.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.wh.rollback();
            tracing::warn!(error = %e, "could not record the failed load");
        }
        // Committed and not handed out: settled just now, or polled by the call that failed.
        if self.committed_state != self.reported_state {
            self.committed_state.clone()
        } else {
            None
        }
    }
}

/// Identifies a schema and its key, to tell a repeated SCHEMA from a changed one.
fn schema_hash(schema: &Value, key_properties: &[String]) -> String {
    observes_model::ident::short_hash(&schema.to_string())
        + &observes_model::ident::short_hash(&format!("{key_properties:?}"))
}

/// A schema name the warehouse can hold unambiguously: not empty, not one of its catalogs.
pub fn check_schema_name(
    schema: &str,
    dialect: observes_warehouse::Dialect,
) -> Result<(), LoadError> {
    let refuse = |reason: String| {
        Err(LoadError::SchemaName {
            schema: schema.to_string(),
            reason,
        })
    };
    if schema.trim().is_empty() {
        return refuse("a schema name cannot be empty".into());
    }
    if dialect
        .reserved_schemas
        .iter()
        .any(|r| r.eq_ignore_ascii_case(schema))
    {
        return refuse(format!(
            "{} reserves this name for a catalog (reserved: {}); choose another schema",
            dialect.name,
            dialect.reserved_schemas.join(", ")
        ));
    }
    Ok(())
}

/// A named crash point for the crash-safety tests: when `OBSERVES_FAILPOINT` is
/// `NAME:N`, the process kills itself with SIGKILL the N-th time it passes `NAME`.
/// Points: `flushed` (a batch sent, its checkpoint not committed), `before-commit`
/// (everything written, `COMMIT` not yet sent), `after-commit` (committed, the state
/// store not yet written).
pub fn failpoint(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let spec = std::env::var("OBSERVES_FAILPOINT").ok()?;
        let (point, n) = spec.split_once(':')?;
        Some((point.to_string(), n.parse().ok()?))
    });
    if let Some((point, n)) = target {
        if point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(err.to_string().starts_with("line 4: "), "{err}");
        assert_eq!(
            loader.abort(&err.to_string()),
            Some(serde_json::json!({"at": 1}))
        );
    }
}
