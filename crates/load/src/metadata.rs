//! The metadata tables a user can query beside the data:
//!
//! - `_observes_loads`: one row per load and stream: pipeline, rows, rejected, status
//!   (`running`, `completed`, `failed`, `aborted`), started, finished, error, and the
//!   write mode the stream was loaded with (`append` for a keyless stream under `merge`).
//! - `_observes_state`: the last committed state per pipeline (authoritative).
//! - `_observes_schema_versions`: each distinct schema a stream was loaded with.
//! - `_observes_rejects`: quarantined records: stream, input line, reason, the raw record.

use std::time::{SystemTime, UNIX_EPOCH};

use observes_model::{Column, ColumnType, Layout};
use observes_warehouse::sql::{create_table_with, json_param, json_text, qualified, quote};
use observes_warehouse::{Result, SqlValue, Warehouse};
use serde_json::{json, Value};

/// One row per load: when, which pipeline, how it ended.
pub const LOADS: &str = "_observes_loads";
/// Per pipeline, the state committed last.
pub const STATE: &str = "_observes_state";
/// Per stream, each layout its tables had.
pub const SCHEMA_VERSIONS: &str = "_observes_schema_versions";
/// Records quarantined by `on_invalid = "quarantine"`, with the reason.
pub const REJECTS: &str = "_observes_rejects";

/// Metadata columns holding free text of any length.
const LONG_TEXT: &[&str] = &["error", "reason", "record"];

/// A quarantined record, kept until its checkpoint commits.
#[derive(Debug, Clone)]
pub struct Reject {
    /// The stream (empty for a line that is not a message).
    pub stream: String,
    /// The input line, from 1.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The line's text.
    pub record: String,
}

fn col(name: &str, ty: ColumnType, required: bool) -> Column {
    Column {
        name: name.to_string(),
        ty,
        metadata: required,
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn tables() -> [(&'static str, Vec<Column>); 4] {
    use ColumnType::*;
    [
        (
            LOADS,
            vec![
                col("load_id", BigInt, true),
                col("pipeline", Text, true),
                col("stream", Text, false),
                col("rows", BigInt, true),
                col("rejected", BigInt, true),
                col("status", Text, true),
                col("started_at", Timestamp, true),
                col("finished_at", Timestamp, false),
                col("error", Text, false),
                col("write_mode", Text, false),
            ],
        ),
        (
            STATE,
            vec![
                col("pipeline", Text, true),
                col("state", Json, true),
                col("load_id", BigInt, true),
                col("updated_at", Timestamp, true),
            ],
        ),
        (
            SCHEMA_VERSIONS,
            vec![
                col("stream", Text, true),
                col("version", BigInt, true),
                col("schema_hash", Text, true),
                col("tables", Json, true),
                col("schema", Json, true),
                col("load_id", BigInt, true),
                col("inserted_at", Timestamp, true),
            ],
        ),
        (
            REJECTS,
            vec![
                col("load_id", BigInt, true),
                col("stream", Text, true),
                col("line", BigInt, true),
                col("reason", Text, true),
                col("record", Text, true),
                col("rejected_at", Timestamp, true),
            ],
        ),
    ]
}

/// Creates the metadata tables, marks this pipeline's dead loads `aborted`, and returns a
/// new load id and the pipeline's committed state.
pub fn prepare(
    wh: &mut dyn Warehouse,
    schema: &str,
    pipeline: &str,
) -> Result<(i64, Option<Value>)> {
    let dialect = wh.dialect();
    wh.execute(&observes_warehouse::sql::create_schema(schema), &[])?;
    for (name, columns) in tables() {
        wh.execute(
            &create_table_with(dialect, schema, name, &columns, LONG_TEXT),
            &[],
        )?;
        // Tables made by an older version gain the columns added since (nullable ones).
        let existing = wh.table_columns(schema, name)?.unwrap_or_default();
        for column in columns
            .iter()
            .filter(|c| !existing.iter().any(|(name, _)| *name == c.name))
        {
            wh.execute(
                &observes_warehouse::sql::add_column(dialect, schema, name, column),
                &[],
            )?;
        }
    }
    // Only one run of a pipeline holds its lock, so any load still `running` has died.
    wh.execute(
        &format!(
            "UPDATE {} SET {status} = 'aborted', {finished} = $1 WHERE {p} = $2 AND {status} = 'running'",
            qualified(schema, LOADS),
            status = quote("status"),
            finished = quote("finished_at"),
            p = quote("pipeline"),
        ),
        &[SqlValue::Timestamp(now_micros()), pipeline.into()],
    )?;
    let rows = wh.query(
        &format!(
            "SELECT COALESCE(MAX({}), 0) + 1 FROM {}",
            quote("load_id"),
            qualified(schema, LOADS)
        ),
        &[],
    )?;
    let load_id = rows
        .first()
        .and_then(|r| r.first())
        .and_then(SqlValue::as_i64)
        .unwrap_or(1);
    Ok((load_id, read_state(wh, schema, pipeline)?))
}

/// The pipeline's committed state in the warehouse.
pub fn read_state(wh: &mut dyn Warehouse, schema: &str, pipeline: &str) -> Result<Option<Value>> {
    if wh.table_columns(schema, STATE)?.is_none() {
        return Ok(None);
    }
    let dialect = wh.dialect();
    let rows = wh.query(
        &format!(
            "SELECT {} FROM {} WHERE {} = $1",
            json_text(dialect, "state"),
            qualified(schema, STATE),
            quote("pipeline")
        ),
        &[pipeline.into()],
    )?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(SqlValue::as_str)
        .and_then(|s| serde_json::from_str(s).ok()))
}

/// Replaces the pipeline's committed state (inside the caller's transaction).
pub fn write_state(
    wh: &mut dyn Warehouse,
    schema: &str,
    pipeline: &str,
    state: &Value,
    load_id: i64,
) -> Result<()> {
    clear_state(wh, schema, pipeline)?;
    let dialect = wh.dialect();
    wh.execute(
        &format!(
            "INSERT INTO {} ({}, {}, {}, {}) VALUES ($1, {}, $3, $4)",
            qualified(schema, STATE),
            quote("pipeline"),
            quote("state"),
            quote("load_id"),
            quote("updated_at"),
            json_param(dialect, 2)
        ),
        &[
            pipeline.into(),
            state.to_string().into(),
            SqlValue::Int(load_id),
            SqlValue::Timestamp(now_micros()),
        ],
    )?;
    Ok(())
}

/// Removes a pipeline's committed state (`observes state clear`), in the open transaction.
pub fn clear_state(wh: &mut dyn Warehouse, schema: &str, pipeline: &str) -> Result<()> {
    if wh.table_columns(schema, STATE)?.is_none() {
        return Ok(());
    }
    wh.execute(
        &format!(
            "DELETE FROM {} WHERE {} = $1",
            qualified(schema, STATE),
            quote("pipeline")
        ),
        &[pipeline.into()],
    )?;
    Ok(())
}

/// Adds a checkpoint's counts to the load's row for a stream.
#[allow(clippy::too_many_arguments)]
pub fn record_load(
    wh: &mut dyn Warehouse,
    schema: &str,
    load_id: i64,
    pipeline: &str,
    stream: &str,
    write_mode: crate::WriteMode,
    rows: u64,
    rejected: u64,
    status: &str,
) -> Result<()> {
    let table = qualified(schema, LOADS);
    let updated = wh.execute(
        &format!(
            "UPDATE {table} SET {r} = {r} + $1, {j} = {j} + $2, {m} = $5 WHERE {l} = $3 AND {s} = $4",
            r = quote("rows"),
            j = quote("rejected"),
            l = quote("load_id"),
            s = quote("stream"),
            m = quote("write_mode"),
        ),
        &[
            SqlValue::Int(rows as i64),
            SqlValue::Int(rejected as i64),
            SqlValue::Int(load_id),
            stream.into(),
            write_mode.as_str().into(),
        ],
    )?;
    if updated == 0 {
        insert_load(
            wh,
            schema,
            load_id,
            pipeline,
            Some(stream),
            Some(write_mode),
            rows,
            rejected,
            status,
            None,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_load(
    wh: &mut dyn Warehouse,
    schema: &str,
    load_id: i64,
    pipeline: &str,
    stream: Option<&str>,
    write_mode: Option<crate::WriteMode>,
    rows: u64,
    rejected: u64,
    status: &str,
    error: Option<&str>,
) -> Result<()> {
    let finished = if status == "running" {
        SqlValue::Null
    } else {
        SqlValue::Timestamp(now_micros())
    };
    wh.execute(
        &format!(
            "INSERT INTO {} ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            qualified(schema, LOADS),
            quote("load_id"),
            quote("pipeline"),
            quote("stream"),
            quote("rows"),
            quote("rejected"),
            quote("status"),
            quote("started_at"),
            quote("finished_at"),
            quote("error"),
            quote("write_mode"),
        ),
        &[
            SqlValue::Int(load_id),
            pipeline.into(),
            stream.map_or(SqlValue::Null, SqlValue::from),
            SqlValue::Int(rows as i64),
            SqlValue::Int(rejected as i64),
            status.into(),
            SqlValue::Timestamp(now_micros()),
            finished,
            error.map_or(SqlValue::Null, SqlValue::from),
            write_mode.map_or(SqlValue::Null, |m| m.as_str().into()),
        ],
    )?;
    Ok(())
}

/// Marks every row of a load with its final status.
pub fn complete_load(
    wh: &mut dyn Warehouse,
    schema: &str,
    load_id: i64,
    status: &str,
) -> Result<u64> {
    wh.execute(
        &format!(
            "UPDATE {} SET {} = $1, {} = $2 WHERE {} = $3",
            qualified(schema, LOADS),
            quote("status"),
            quote("finished_at"),
            quote("load_id")
        ),
        &[
            status.into(),
            SqlValue::Timestamp(now_micros()),
            SqlValue::Int(load_id),
        ],
    )
}

/// Records a failed load (its committed checkpoints stay; the row says it did not finish).
pub fn fail_load(
    wh: &mut dyn Warehouse,
    schema: &str,
    load_id: i64,
    pipeline: &str,
    error: &str,
) -> Result<()> {
    let updated = wh.execute(
        &format!(
            "UPDATE {} SET {} = 'failed', {} = $1, {} = $2 WHERE {} = $3",
            qualified(schema, LOADS),
            quote("status"),
            quote("finished_at"),
            quote("error"),
            quote("load_id")
        ),
        &[
            SqlValue::Timestamp(now_micros()),
            error.into(),
            SqlValue::Int(load_id),
        ],
    )?;
    if updated == 0 {
        insert_load(
            wh,
            schema,
            load_id,
            pipeline,
            None,
            None,
            0,
            0,
            "failed",
            Some(error),
        )?;
    }
    Ok(())
}

/// Text for a metadata column of a warehouse that stores at most `max` bytes: whole when it
/// fits, else a prefix with a marker saying how long it was.
fn fit_text(text: &str, max: Option<usize>) -> String {
    match max {
        Some(max) if text.len() > max => {
            let marker = format!(" ... [cut for this table: {} bytes in all]", text.len());
            let mut end = max.saturating_sub(marker.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}{marker}", &text[..end])
        }
        _ => text.to_string(),
    }
}

/// Writes quarantined records into `_observes_rejects`.
pub fn insert_rejects(
    wh: &mut dyn Warehouse,
    schema: &str,
    load_id: i64,
    rejects: &[Reject],
) -> Result<()> {
    let statement = format!(
        "INSERT INTO {} ({}, {}, {}, {}, {}, {}) VALUES ($1, $2, $3, $4, $5, $6)",
        qualified(schema, REJECTS),
        quote("load_id"),
        quote("stream"),
        quote("line"),
        quote("reason"),
        quote("record"),
        quote("rejected_at"),
    );
    let max = wh.dialect().max_text_bytes;
    for r in rejects {
        wh.execute(
            &statement,
            &[
                SqlValue::Int(load_id),
                r.stream.clone().into(),
                SqlValue::Int(r.line as i64),
                fit_text(&r.reason, max).into(),
                fit_text(&r.record, max).into(),
                SqlValue::Timestamp(now_micros()),
            ],
        )?;
    }
    Ok(())
}

/// Which stream holds which tables of a schema, as `_observes_schema_versions` records it:
/// every table any version of a stream wrote to, and the root table of its latest version.
#[derive(Debug, Default, Clone)]
pub struct TableOwners {
    /// Table → stream.
    by_table: std::collections::HashMap<String, String>,
    /// Stream → its root table.
    roots: std::collections::HashMap<String, String>,
}

/// Tables no stream may write to: Observes' own.
fn reserved_table(table: &str) -> bool {
    [LOADS, STATE, SCHEMA_VERSIONS, REJECTS, "_observes_job_runs"].contains(&table)
        || ["__observes_stage", "__observes_new", "__observes_backup"]
            .iter()
            .any(|suffix| table.ends_with(suffix))
}

impl TableOwners {
    /// The root table recorded for a stream.
    pub fn root(&self, stream: &str) -> Option<&str> {
        self.roots.get(stream).map(String::as_str)
    }

    /// A table of `layout` that is not its stream's to write: held by another stream
    /// (`Some(stream)`), or Observes' own (`Some("")`).
    pub fn conflict(&self, layout: &Layout) -> Option<(String, String)> {
        layout.tables.iter().find_map(|t| {
            if reserved_table(&t.name) {
                return Some((t.name.clone(), String::new()));
            }
            match self.by_table.get(&t.name) {
                Some(owner) if *owner != layout.stream => Some((t.name.clone(), owner.clone())),
                _ => None,
            }
        })
    }

    /// Records that `layout`'s stream holds its tables.
    pub fn claim(&mut self, layout: &Layout) {
        for t in &layout.tables {
            self.by_table.insert(t.name.clone(), layout.stream.clone());
        }
        self.roots
            .insert(layout.stream.clone(), layout.tables[0].name.clone());
    }
}

/// The owners of a schema's tables, as recorded.
pub fn table_owners(wh: &mut dyn Warehouse, schema: &str) -> Result<TableOwners> {
    let rows = wh.query(
        &format!(
            "SELECT {s}, {t} FROM {table} ORDER BY {s}, {v}",
            s = quote("stream"),
            t = json_text(wh.dialect(), "tables"),
            v = quote("version"),
            table = qualified(schema, SCHEMA_VERSIONS),
        ),
        &[],
    )?;
    let mut owners = TableOwners::default();
    for row in rows {
        let (Some(stream), Some(tables)) = (row[0].as_str(), row[1].as_str()) else {
            continue;
        };
        let tables: Vec<Value> = serde_json::from_str(tables).unwrap_or_default();
        let names: Vec<&str> = tables
            .iter()
            .filter_map(|t| t.get("table").and_then(Value::as_str))
            .collect();
        for name in &names {
            owners
                .by_table
                .entry((*name).to_string())
                .or_insert_with(|| stream.to_string());
        }
        if let Some(root) = names.first() {
            owners.roots.insert(stream.to_string(), (*root).to_string());
        }
    }
    Ok(owners)
}

/// Records a stream's schema when it differs from the last one recorded.
pub fn record_schema_version(
    wh: &mut dyn Warehouse,
    schema: &str,
    layout: &Layout,
    hash: &str,
    raw_schema: &Value,
    load_id: i64,
) -> Result<()> {
    let table = qualified(schema, SCHEMA_VERSIONS);
    let rows = wh.query(
        &format!(
            "SELECT {h}, {v} FROM {table} WHERE {s} = $1 ORDER BY {v} DESC LIMIT 1",
            h = quote("schema_hash"),
            v = quote("version"),
            s = quote("stream"),
        ),
        &[layout.stream.as_str().into()],
    )?;
    let (last_hash, last_version) = match rows.first() {
        Some(r) => (
            r[0].as_str().map(str::to_string),
            r[1].as_i64().unwrap_or(0),
        ),
        None => (None, 0),
    };
    if last_hash.as_deref() == Some(hash) {
        return Ok(());
    }
    let tables: Vec<Value> = layout
        .tables
        .iter()
        .map(|t| {
            json!({
                "table": t.name,
                "columns": t.columns.iter().map(|c| json!({"name": c.name, "type": c.ty.name()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    wh.execute(
        &format!(
            "INSERT INTO {table} ({}, {}, {}, {}, {}, {}, {}) VALUES ($1, $2, $3, {}, {}, $6, $7)",
            quote("stream"),
            quote("version"),
            quote("schema_hash"),
            quote("tables"),
            quote("schema"),
            quote("load_id"),
            quote("inserted_at"),
            json_param(wh.dialect(), 4),
            json_param(wh.dialect(), 5),
        ),
        &[
            layout.stream.as_str().into(),
            SqlValue::Int(last_version + 1),
            hash.into(),
            Value::Array(tables).to_string().into(),
            raw_schema.to_string().into(),
            SqlValue::Int(load_id),
            SqlValue::Timestamp(now_micros()),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fit_text;

    #[test]
    fn long_metadata_text_is_cut_with_a_marker() {
        assert_eq!(fit_text("short", Some(100)), "short");
        let cut = fit_text(&"é".repeat(100), Some(60));
        assert!(cut.len() <= 60, "{}", cut.len());
        assert!(
            cut.ends_with(" ... [cut for this table: 200 bytes in all]"),
            "{cut}"
        );
    }
}
