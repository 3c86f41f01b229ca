//! A schema's tables as plain text: columns with their types, then rows in load order.
//! Golden tests compare it; it works the same on every warehouse.

use observes_model::layout::ID;
use observes_warehouse::sql::{qualified, quote};
use observes_warehouse::{Result, SqlValue, Warehouse};

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

fn render(value: &SqlValue, quoted: bool) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Text(s) if quoted => serde_json::Value::from(s.as_str()).to_string(),
        SqlValue::Text(s) => s.clone(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Float(f) => f.to_string(),
        SqlValue::Bool(b) => b.to_string(),
        SqlValue::Timestamp(t) => t.to_string(),
    }
}

/// Every table of `schema` (in name order; merge stages and replace asides left out).
pub fn dump_schema(wh: &mut dyn Warehouse, schema: &str) -> Result<String> {
    let tables = wh.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
        &[schema.into()],
    )?;
    let mut out = String::new();
    for row in tables {
        let Some(table) = row.first().and_then(SqlValue::as_str).map(str::to_string) else {
            continue;
        };
        if table.ends_with("__observes_stage") || table.ends_with("__observes_new") {
            continue;
        }
        let columns = wh.table_columns(schema, &table)?.unwrap_or_default();
        let dialect = wh.dialect();
        let shown: Vec<(String, observes_model::ColumnType)> = match metadata_columns(&table) {
            Some(keep) => columns
                .into_iter()
                .filter(|(n, _)| keep.contains(&n.as_str()))
                .collect(),
            None => columns,
        };
        out.push_str(&format!("== {table}\n"));
        out.push_str(
            &shown
                .iter()
                .map(|(n, t)| format!("{n} {}", dialect.type_name(*t)))
                .collect::<Vec<_>>()
                .join(" | "),
        );
        out.push('\n');
        let select = shown
            .iter()
            .map(|(n, _)| format!("CAST({} AS VARCHAR)", quote(n)))
            .collect::<Vec<_>>()
            .join(", ");
        let order = if shown.iter().any(|(n, _)| n == ID) {
            quote(ID)
        } else {
            (1..=shown.len().min(4))
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rows = wh.query(
            &format!(
                "SELECT {select} FROM {} ORDER BY {order}",
                qualified(schema, &table)
            ),
            &[],
        )?;
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&shown)
                .map(|(v, (_, ty))| {
                    let quoted = matches!(
                        ty,
                        observes_model::ColumnType::Text | observes_model::ColumnType::Json
                    );
                    render(v, quoted)
                })
                .collect();
            out.push_str(&cells.join(" | "));
            out.push('\n');
        }
        out.push('\n');
    }
    Ok(out)
}
