//! SQL shared by every warehouse. Values are always bound (`$1`, `$2`, …); identifiers
//! always go through [`quote`], the one quoting function.

use observes_model::{Column, ColumnType};

use crate::Dialect;

/// Quotes an identifier (doubling embedded quotes), the same in DuckDB, PostgreSQL and
/// Redshift.
///
/// ```
/// use observes_warehouse::sql::quote;
/// assert_eq!(quote("order"), "\"order\"");
/// assert_eq!(quote("a\"b"), "\"a\"\"b\"");
/// ```
pub fn quote(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push('"');
    for c in ident.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A string literal (doubling embedded quotes), for the few statements that take no bound
/// parameters (`ATTACH`, `SET`).
///
/// ```
/// use observes_warehouse::sql::literal;
/// assert_eq!(literal("it's"), "'it''s'");
/// ```
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A statement as an error names it: on one line, cut after 160 characters (a `MERGE` or a
/// `CREATE TABLE` of a wide table runs to many lines; the cause that follows is what matters).
///
/// ```
/// use observes_warehouse::sql::summary;
/// assert_eq!(summary("SELECT 1\n  FROM t"), "SELECT 1 FROM t");
/// assert_eq!(summary(&"x".repeat(200)).chars().count(), 161);
/// ```
pub fn summary(sql: &str) -> String {
    const SHOWN: usize = 160;
    let mut out = String::new();
    for (i, word) in sql.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    match out.char_indices().nth(SHOWN) {
        Some((cut, _)) => {
            out.truncate(cut);
            out.push('…');
            out
        }
        None => out,
    }
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// A comma-separated list of quoted column names, optionally prefixed with a table alias.
pub fn column_list<'a>(names: impl IntoIterator<Item = &'a str>, alias: Option<&str>) -> String {
    names
        .into_iter()
        .map(|n| match alias {
            Some(a) => format!("{a}.{}", quote(n)),
            None => quote(n),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The placeholder for JSON text bound as parameter `n` into a JSON column.
pub fn json_param(dialect: Dialect, n: usize) -> String {
    if dialect.json_functions {
        format!("JSON_PARSE(${n})")
    } else {
        format!("${n}")
    }
}

/// An expression reading a JSON column as JSON text.
pub fn json_text(dialect: Dialect, column: &str) -> String {
    if dialect.json_functions {
        format!("JSON_SERIALIZE({})", quote(column))
    } else {
        format!("CAST({} AS VARCHAR)", quote(column))
    }
}

/// Columns of a table in order: `(column_name, data_type)`, parameters schema and table.
pub const TABLE_COLUMNS: &str = "SELECT column_name, data_type FROM information_schema.columns \
     WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position";

/// The rows of [`TABLE_COLUMNS`] as columns, read with the engine's type names; `None`
/// when the table does not exist.
pub fn columns_from_rows(
    schema: &str,
    table: &str,
    rows: Vec<Vec<crate::SqlValue>>,
    column_type: fn(&str) -> Option<ColumnType>,
) -> crate::Result<Option<Vec<(String, ColumnType)>>> {
    if rows.is_empty() {
        return Ok(None);
    }
    rows.into_iter()
        .map(|row| {
            let name = row[0].as_str().unwrap_or_default().to_string();
            let found = row[1].as_str().unwrap_or_default().to_string();
            let ty = column_type(&found).ok_or_else(|| {
                crate::WarehouseError::UnsupportedColumnType {
                    table: format!("{schema}.{table}"),
                    column: name.clone(),
                    found,
                }
            })?;
            Ok((name, ty))
        })
        .collect::<crate::Result<Vec<_>>>()
        .map(Some)
}

/// `CREATE SCHEMA IF NOT EXISTS`.
pub fn create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema))
}

/// `CREATE TABLE IF NOT EXISTS` with the columns' types in this dialect.
pub fn create_table(dialect: Dialect, schema: &str, table: &str, columns: &[Column]) -> String {
    create_table_with(dialect, schema, table, columns, &[])
}

/// [`create_table`], with the columns named in `long_text` as the dialect's long text
/// (metadata tables keep whole error messages and rejected records).
pub fn create_table_with(
    dialect: Dialect,
    schema: &str,
    table: &str,
    columns: &[Column],
    long_text: &[&str],
) -> String {
    let cols = columns
        .iter()
        .map(|c| {
            let not_null = if c.metadata { " NOT NULL" } else { "" };
            let ty = if long_text.contains(&c.name.as_str()) {
                dialect.long_text
            } else {
                dialect.type_name(c.ty)
            };
            format!("{} {ty}{not_null}", quote(&c.name))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({cols})",
        qualified(schema, table)
    )
}

/// `ALTER TABLE … ADD COLUMN` for one column.
pub fn add_column(dialect: Dialect, schema: &str, table: &str, column: &Column) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        qualified(schema, table),
        quote(&column.name),
        dialect.type_name(column.ty)
    )
}

/// Statements that widen a column. Numbers becoming text keep the text a source would have
/// sent (`10`, not `10.0`), the same in every engine. Engines that cannot change a type in
/// place inside a transaction (Redshift) get a new column, filled, swapped in by renames;
/// the column then moves to the end of the table, which no load path depends on.
pub fn widen_column(
    dialect: Dialect,
    schema: &str,
    table: &str,
    column: &str,
    from: ColumnType,
    to: ColumnType,
) -> Vec<String> {
    widen_column_to(
        dialect,
        schema,
        table,
        column,
        from,
        to,
        dialect.type_name(to),
    )
}

/// [`widen_column`] to an explicit SQL type (e.g. a longer `VARCHAR(n)`).
pub fn widen_column_to(
    dialect: Dialect,
    schema: &str,
    table: &str,
    column: &str,
    from: ColumnType,
    to: ColumnType,
    ty: &str,
) -> Vec<String> {
    let c = quote(column);
    let value = match (from, to) {
        (ColumnType::Double, ColumnType::Text) => format!(
            "CASE WHEN {c} = TRUNC({c}) AND ABS({c}) < 1e15 THEN CAST(CAST({c} AS BIGINT) AS {ty}) ELSE CAST({c} AS {ty}) END"
        ),
        _ => format!("CAST({c} AS {ty})"),
    };
    let t = qualified(schema, table);
    if dialect.alter_type_in_place {
        return vec![format!(
            "ALTER TABLE {t} ALTER COLUMN {c} TYPE {ty} USING {value}"
        )];
    }
    let temp = quote(&format!("{column}__observes_widen"));
    vec![
        format!("ALTER TABLE {t} ADD COLUMN {temp} {ty}"),
        format!("UPDATE {t} SET {temp} = {value}"),
        format!("ALTER TABLE {t} DROP COLUMN {c}"),
        format!("ALTER TABLE {t} RENAME COLUMN {temp} TO {c}"),
    ]
}

/// `DROP TABLE IF EXISTS`.
pub fn drop_table(schema: &str, table: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", qualified(schema, table))
}

/// `ALTER TABLE … RENAME TO`, within the schema.
pub fn rename_table(schema: &str, from: &str, to: &str) -> String {
    format!(
        "ALTER TABLE {} RENAME TO {}",
        qualified(schema, from),
        quote(to)
    )
}

/// An empty copy of a table's columns (no constraints), for staging.
pub fn create_table_like(schema: &str, table: &str, like: &str) -> String {
    format!(
        "CREATE TABLE {} AS SELECT * FROM {} WHERE 1 = 0",
        qualified(schema, table),
        qualified(schema, like)
    )
}
