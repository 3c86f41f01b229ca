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

/// Columns of a table in order: `(column_name, data_type)`, parameters schema and table.
pub const TABLE_COLUMNS: &str = "SELECT column_name, data_type FROM information_schema.columns \
     WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position";

pub fn create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema))
}

pub fn create_table(dialect: Dialect, schema: &str, table: &str, columns: &[Column]) -> String {
    let cols = columns
        .iter()
        .map(|c| {
            let not_null = if c.metadata { " NOT NULL" } else { "" };
            format!("{} {}{not_null}", quote(&c.name), dialect.type_name(c.ty))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({cols})",
        qualified(schema, table)
    )
}

pub fn add_column(dialect: Dialect, schema: &str, table: &str, column: &Column) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        qualified(schema, table),
        quote(&column.name),
        dialect.type_name(column.ty)
    )
}

/// Widens a column in place. Numbers becoming text keep the text a source would have sent
/// (`10`, not `10.0`), the same in every engine.
pub fn widen_column(
    dialect: Dialect,
    schema: &str,
    table: &str,
    column: &str,
    from: ColumnType,
    to: ColumnType,
) -> String {
    let ty = dialect.type_name(to);
    let c = quote(column);
    let value = match (from, to) {
        (ColumnType::Double, ColumnType::Text) => format!(
            "CASE WHEN {c} = TRUNC({c}) AND ABS({c}) < 1e15 THEN CAST(CAST({c} AS BIGINT) AS {ty}) ELSE CAST({c} AS {ty}) END"
        ),
        _ => format!("CAST({c} AS {ty})"),
    };
    format!(
        "ALTER TABLE {} ALTER COLUMN {c} TYPE {ty} USING {value}",
        qualified(schema, table)
    )
}

pub fn drop_table(schema: &str, table: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", qualified(schema, table))
}

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
