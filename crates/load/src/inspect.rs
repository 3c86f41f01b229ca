//! A schema's tables as plain text: columns with their types, then rows in load order.
//!
//! The text is the same whatever the warehouse: types by their Observes names, values
//! rendered here (not by the engine's casts), JSON with its keys sorted (PostgreSQL's
//! `jsonb` reorders them), tables and metadata rows sorted bytewise (collations differ).
//! Golden tests compare it across backends.

use observes_model::layout::ID;
use observes_model::time::civil_from_days;
use observes_model::ColumnType;
use observes_warehouse::sql::{qualified, quote};
use observes_warehouse::{Result, SqlValue, Warehouse};
use serde_json::Value;

use crate::metadata::{LOADS, REJECTS, SCHEMA_VERSIONS, STATE};

/// Columns shown for metadata tables: the ones that do not change from run to run.
fn metadata_columns(table: &str) -> Option<&'static [&'static str]> {
    match table {
        LOADS => Some(&[
            "load_id", "pipeline", "stream", "rows", "rejected", "status", "error",
        ]),
        STATE => Some(&["pipeline", "state", "load_id"]),
        SCHEMA_VERSIONS => Some(&["stream", "version", "tables", "load_id"]),
        REJECTS => Some(&["load_id", "stream", "line", "reason", "record"]),
        _ => None,
    }
}

/// JSON with object keys sorted, compact.
fn canonical_json(text: &str) -> String {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sort).collect()),
            other => other,
        }
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => sort(v).to_string(),
        Err(_) => text.to_string(),
    }
}

/// `2026-11-25 08:00:00.5+00`.
pub fn timestamp_text(micros: i64) -> String {
    let (days, rem) = (
        micros.div_euclid(86_400_000_000),
        micros.rem_euclid(86_400_000_000),
    );
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    let mut text = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let f = format!(".{frac:06}");
        text.push_str(f.trim_end_matches('0'));
    }
    text + "+00"
}

fn render(value: &SqlValue, ty: ColumnType) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Text(s) if ty == ColumnType::Json => Value::from(canonical_json(s)).to_string(),
        SqlValue::Text(s) if ty == ColumnType::Text => Value::from(s.as_str()).to_string(),
        SqlValue::Text(s) => s.clone(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Float(f) => f.to_string(),
        SqlValue::Bool(b) => b.to_string(),
        SqlValue::Timestamp(t) => timestamp_text(*t),
        SqlValue::Date(d) => {
            let (y, m, day) = civil_from_days((*d).into());
            format!("{y:04}-{m:02}-{day:02}")
        }
        SqlValue::Time(t) => t.to_string(),
    }
}

/// Every table of `schema` (in name order; merge stages and replace asides left out).
pub fn dump_schema(wh: &mut dyn Warehouse, schema: &str) -> Result<String> {
    let rows = wh.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
        &[schema.into()],
    )?;
    let mut tables: Vec<String> = rows
        .iter()
        .filter_map(|r| r.first().and_then(SqlValue::as_str).map(str::to_string))
        .filter(|t| !t.ends_with("__observes_stage") && !t.ends_with("__observes_new"))
        .collect();
    tables.sort();
    let mut out = String::new();
    for table in tables {
        let columns = wh.table_columns(schema, &table)?.unwrap_or_default();
        let is_metadata = metadata_columns(&table).is_some();
        let shown: Vec<(String, ColumnType)> = match metadata_columns(&table) {
            Some(keep) => columns
                .into_iter()
                .filter(|(n, _)| keep.contains(&n.as_str()))
                .collect(),
            None => columns,
        };
        out.push_str(&format!("== {table}\n"));
        let header: Vec<String> = shown
            .iter()
            .map(|(n, t)| format!("{n} {}", t.name()))
            .collect();
        out.push_str(&header.join(" | "));
        out.push('\n');
        let select = shown
            .iter()
            .map(|(n, t)| match t {
                // Dates and times read back as text the same way in every engine.
                ColumnType::Date | ColumnType::Time => format!("CAST({} AS VARCHAR)", quote(n)),
                _ => quote(n),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let order = if shown.iter().any(|(n, _)| n == ID) {
            format!(" ORDER BY {}", quote(ID))
        } else {
            String::new()
        };
        let rows = wh.query(
            &format!("SELECT {select} FROM {}{order}", qualified(schema, &table)),
            &[],
        )?;
        let mut lines: Vec<String> = rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&shown)
                    .map(|(v, (_, ty))| render(v, *ty))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect();
        if is_metadata {
            lines.sort();
        }
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_timestamps_and_json_canonically() {
        assert_eq!(timestamp_text(0), "1970-01-01 00:00:00+00");
        assert_eq!(timestamp_text(1_500_000), "1970-01-01 00:00:01.5+00");
        assert_eq!(timestamp_text(-1), "1969-12-31 23:59:59.999999+00");
        assert_eq!(
            canonical_json(r#"{"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": null}}"#),
            r#"{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}"#
        );
    }
}
