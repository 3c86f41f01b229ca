//! What a load is told: its pipeline and schema, write mode, policies and commit size.

use observes_model::SchemaChangePolicy;

use crate::WriteMode;

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

/// How a load writes: its pipeline, schema, write mode and policies.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The pipeline's name (its state's key).
    pub pipeline: String,
    /// The warehouse schema (dataset) the tables go into.
    pub schema: String,
    /// How rows are written.
    pub write_mode: WriteMode,
    /// What an invalid record does.
    pub on_invalid: OnInvalid,
    /// Rows buffered per stream before they are sent to the warehouse (not committed);
    /// `None`: the warehouse's ([`observes_warehouse::LoadSizes`]).
    pub batch_rows: Option<usize>,
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
/// since the last commit, or `bytes` bytes of normalized rows (`None`: the warehouse's
/// numbers, [`observes_warehouse::LoadSizes`]), or `interval` has passed since it,
/// whichever comes first; the last checkpoint always commits. Until then later states
/// supersede earlier ones (the commit carries the latest), as Singer targets batch them.
/// `records = 0` commits every checkpoint as it comes.
///
/// Commits are what make data visible and resumable; they also cost every warehouse a
/// round of work (DuckDB writes its log, Redshift its blocks), so a tap that checkpoints
/// every few hundred records would otherwise spend its time committing. The byte bound
/// keeps a transaction of wide records as small as one of narrow records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommitPolicy {
    /// Commit once this many records arrived since the last commit.
    pub records: Option<u64>,
    /// Commit once this many bytes of normalized rows wait.
    pub bytes: Option<u64>,
    /// Commit once this long passed since the last commit.
    pub interval: std::time::Duration,
}

impl Default for CommitPolicy {
    fn default() -> Self {
        CommitPolicy {
            records: None,
            bytes: None,
            interval: std::time::Duration::from_secs(30),
        }
    }
}

impl CommitPolicy {
    /// Every checkpoint commits as it comes.
    pub fn every_checkpoint() -> Self {
        CommitPolicy {
            records: Some(0),
            bytes: None,
            interval: std::time::Duration::ZERO,
        }
    }
}

impl LoadConfig {
    /// The defaults, for a pipeline loading into `schema`.
    pub fn new(pipeline: &str, schema: &str) -> Self {
        LoadConfig {
            pipeline: pipeline.to_string(),
            schema: schema.to_string(),
            write_mode: WriteMode::Append,
            on_invalid: OnInvalid::Fail,
            batch_rows: None,
            on_schema_change: SchemaChangePolicy::Fail,
            commit: CommitPolicy::default(),
            on_missing_key: OnMissingKey::Append,
            untyped: Untyped::Json,
        }
    }
}
