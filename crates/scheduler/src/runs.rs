//! `_observes_job_runs`: every finished run in the warehouse, so dashboards can show each
//! job's last success and freshness.

use observes_warehouse::sql::{qualified, quote};
use observes_warehouse::{SqlValue, Warehouse, WarehouseError};

use crate::queue::Run;

/// The schema of Observes' own tables about jobs.
pub const SCHEMA: &str = "observes";
/// One row per run: job, times, status, attempts.
pub const TABLE: &str = "_observes_job_runs";

/// Appends a finished run (idempotent: a run recorded twice keeps one row).
pub fn record(wh: &mut dyn Warehouse, run: &Run) -> Result<(), WarehouseError> {
    let text = wh.dialect().long_text;
    let table = qualified(SCHEMA, TABLE);
    wh.begin()?;
    let result = (|| {
        wh.execute(
            &format!("CREATE SCHEMA IF NOT EXISTS {}", quote(SCHEMA)),
            &[],
        )?;
        wh.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {table} (run_id {text}, job {text}, status {text}, \
                 scheduled_for TIMESTAMPTZ, started_at TIMESTAMPTZ, stopped_at TIMESTAMPTZ, \
                 attempts BIGINT, exit_code BIGINT, status_reason {text})"
            ),
            &[],
        )?;
        wh.execute(
            &format!("DELETE FROM {table} WHERE run_id = $1"),
            &[SqlValue::Text(run.id.clone())],
        )?;
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map_or(SqlValue::Null, |t| {
                SqlValue::Timestamp(t.timestamp_micros())
            })
        };
        let status = serde_json::to_value(run.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        wh.execute(
            &format!("INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            &[
                SqlValue::Text(run.id.clone()),
                SqlValue::Text(run.job.clone()),
                SqlValue::Text(status),
                time(run.scheduled_for),
                time(run.started_at),
                time(run.stopped_at),
                SqlValue::Int(run.attempts.len() as i64),
                run.exit_code()
                    .map_or(SqlValue::Null, |c| SqlValue::Int(c as i64)),
                run.status_reason
                    .clone()
                    .map_or(SqlValue::Null, SqlValue::Text),
            ],
        )?;
        Ok(())
    })();
    match result {
        Ok(()) => wh.commit(),
        Err(e) => {
            let _ = wh.rollback();
            Err(e)
        }
    }
}
