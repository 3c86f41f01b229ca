//! The write modes, as SQL shared by every warehouse.
//!
//! - `append`: rows go straight into the tables (inside the checkpoint's transaction).
//! - `merge`: rows go to `<table>__observes_stage`; at the checkpoint the last staged
//!   record per key replaces the table's row for that key, and the child rows of every
//!   replaced record are replaced with it (`DELETE … USING` + `INSERT`, one transaction).
//! - `replace`: the whole load is built in `<table>__observes_new` and swapped in by
//!   renames in the final transaction; the previous version stays as
//!   `<table>__observes_backup` until the next reload.

use observes_model::layout::{ID, LOAD_ID, ROOT_ID};
use observes_model::Layout;
use observes_warehouse::sql::{column_list, qualified, quote};
use observes_warehouse::{sql, Result, SqlValue, Warehouse};

/// How a load's rows are committed to their tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Rows are added.
    #[default]
    Append,
    /// Rows replace those with the same key (the stream's key properties).
    Merge,
    /// The load's rows replace the whole table, swapped in at the last commit.
    Replace,
}

named_setting!(WriteMode, "write mode", "append" => Append, "merge" => Merge, "replace" => Replace);

impl std::fmt::Display for WriteMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stage table a merge loads into before it merges.
pub fn stage_name(table: &str) -> String {
    format!("{table}__observes_stage")
}

/// Where a replace's new table is built.
pub fn aside_name(table: &str) -> String {
    format!("{table}__observes_new")
}

/// Where a replace keeps the old table while it swaps.
pub fn backup_name(table: &str) -> String {
    format!("{table}__observes_backup")
}

/// Applies a stream's merge stage to its tables and drops the stage.
pub fn merge(wh: &mut dyn Warehouse, schema: &str, layout: &Layout) -> Result<()> {
    let root = &layout.tables[0];
    let target = qualified(schema, &root.name);
    let stage = qualified(schema, &stage_name(&root.name));
    let keys = layout.key_column_names();
    let join = |left: &str, right: &str| {
        keys.iter()
            .map(|k| format!("{left}.{k} = {right}.{k}", k = quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let id = quote(ID);
    // The last staged record per key wins (ids grow in input order).
    let winners = format!(
        "SELECT {id} FROM (SELECT {id}, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {id} DESC) AS observes_rank \
         FROM {stage}) observes_ranked WHERE observes_rank = 1",
        keys = column_list(keys.iter().map(String::as_str), None),
    );
    for child in &layout.tables[1..] {
        wh.execute(
            &format!(
                "DELETE FROM {c} WHERE {root_id} IN (SELECT t.{id} FROM {target} t JOIN {stage} s ON {on})",
                c = qualified(schema, &child.name),
                root_id = quote(ROOT_ID),
                on = join("t", "s"),
            ),
            &[],
        )?;
    }
    wh.execute(
        &format!(
            "DELETE FROM {target} USING {stage} s WHERE {}",
            join(&target, "s")
        ),
        &[],
    )?;
    for (i, table) in layout.tables.iter().enumerate() {
        let cols = column_list(table.columns.iter().map(|c| c.name.as_str()), None);
        let link = if i == 0 { id.clone() } else { quote(ROOT_ID) };
        wh.execute(
            &format!(
                "INSERT INTO {t} ({cols}) SELECT {cols} FROM {s} WHERE {link} IN ({winners})",
                t = qualified(schema, &table.name),
                s = qualified(schema, &stage_name(&table.name)),
            ),
            &[],
        )?;
    }
    for table in layout.tables.iter().rev() {
        wh.execute(&sql::drop_table(schema, &stage_name(&table.name)), &[])?;
    }
    Ok(())
}

/// Swaps a replace load's aside tables in, keeping the previous tables as backups.
pub fn swap_in(wh: &mut dyn Warehouse, schema: &str, layout: &Layout) -> Result<()> {
    for table in &layout.tables {
        let backup = backup_name(&table.name);
        wh.execute(&sql::drop_table(schema, &backup), &[])?;
        if wh.table_columns(schema, &table.name)?.is_some() {
            wh.execute(&sql::rename_table(schema, &table.name, &backup), &[])?;
        }
        wh.execute(
            &sql::rename_table(schema, &aside_name(&table.name), &table.name),
            &[],
        )?;
    }
    Ok(())
}

/// `ACTIVATE_VERSION`: the stream's rows from earlier loads are gone from the source.
pub fn drop_older_loads(
    wh: &mut dyn Warehouse,
    schema: &str,
    layout: &Layout,
    load_id: i64,
) -> Result<()> {
    let root = qualified(schema, &layout.tables[0].name);
    for child in &layout.tables[1..] {
        wh.execute(
            &format!(
                "DELETE FROM {c} WHERE {root_id} IN (SELECT {id} FROM {root} WHERE {load} <> $1)",
                c = qualified(schema, &child.name),
                root_id = quote(ROOT_ID),
                id = quote(ID),
                load = quote(LOAD_ID),
            ),
            &[SqlValue::Int(load_id)],
        )?;
    }
    wh.execute(
        &format!("DELETE FROM {root} WHERE {} <> $1", quote(LOAD_ID)),
        &[SqlValue::Int(load_id)],
    )?;
    Ok(())
}
