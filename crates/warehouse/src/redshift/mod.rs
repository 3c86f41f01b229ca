//! Amazon Redshift (`redshift://user@host:5439/db?staging=s3://bucket/prefix&iam_role=…`).
//!
//! The PostgreSQL wire protocol with Redshift's dialect and load path:
//!
//! - Bulk data is written to S3 as gzip CSV parts (their number a multiple of the
//!   cluster's slice count, so every slice loads in parallel) plus a manifest whose entries
//!   are all `"mandatory": true`, then loaded with `COPY … FROM 's3://…/manifest' MANIFEST`.
//!   A failed `COPY` reports the rows of `STL_LOAD_ERRORS`.
//! - Batches under `small_load_rows` skip S3: a multi-row `INSERT` with bound parameters.
//! - Text columns are `VARCHAR(n)` sized from the data in bytes and widened as longer values
//!   arrive (at most 65,535 bytes; a longer value is bad input for the loader, never cut).
//!   JSON goes to `SUPER`. Identifiers are at most 127 bytes.
//!
//! URL parameters: `staging` (`s3://bucket/prefix`), `iam_role` (else the `AWS_*` keys of
//! the environment are used, and never logged), `slices` (default 2), `small_load_rows`
//! (default 1,000), `sslmode` (default `require`). Test-only: `copy_via_stdin=true` makes the
//! backend read the staged parts back from S3 and feed them to `COPY … FROM STDIN`, so the
//! whole path runs against PostgreSQL, which has no `COPY FROM 's3://…'`.

mod csv;

use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::Array;
use arrow_array::RecordBatch;
use arrow_schema::DataType;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::ObjectStore;
use observes_model::normalize::JSON_FIELD_METADATA;
use observes_model::ColumnType;

use crate::postgres::{redact_url, PostgresWarehouse};
use crate::{sql, BoxError, Dialect, Result, SqlValue, Warehouse, WarehouseError};

/// Redshift stores at most this many bytes in a `VARCHAR`.
pub const MAX_VARCHAR: usize = 65_535;
/// The width a text column starts with.
const INITIAL_VARCHAR: usize = 256;

/// Redshift's SQL flavour and load sizes.
pub const DIALECT: Dialect = Dialect {
    reserved_schemas: &[],
    name: "redshift",
    max_identifier: 127,
    max_text_bytes: Some(MAX_VARCHAR),
    alter_type_in_place: false,
    json_functions: true,
    long_text: "VARCHAR(65535)",
    // PostgreSQL's sizes until a cluster measures better ones: each batch is one S3
    // upload and one COPY, each commit one of Redshift's (slow) commits.
    load: super::postgres::DIALECT.load,
    type_name,
};

fn type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::BigInt => "BIGINT",
        ColumnType::Double => "DOUBLE PRECISION",
        ColumnType::Text => "VARCHAR(256)",
        ColumnType::Timestamp => "TIMESTAMPTZ",
        ColumnType::Date => "DATE",
        ColumnType::Time => "TIME",
        ColumnType::Json => "SUPER",
    }
}

/// Settings from the `redshift://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct RedshiftOptions {
    /// `postgres://…` for the wire connection.
    pub connection_url: String,
    /// Bucket and key prefix of the staging area.
    pub staging: Option<(String, String)>,
    /// The IAM role `COPY` reads the staging area with; `None`: the connection's credentials.
    pub iam_role: Option<String>,
    /// Files written per staged batch: one per slice, so `COPY` loads them in parallel.
    pub slices: usize,
    /// Batches of at most this many rows go through a multi-row `INSERT` instead of S3.
    pub small_load_rows: usize,
    /// Stream staged files to `COPY … FROM STDIN` instead of S3 (for a PostgreSQL standing in for Redshift in tests).
    pub copy_via_stdin: bool,
    /// Test-only: a fixed name for this connection's staging folder.
    pub staging_run: Option<String>,
}

impl RedshiftOptions {
    /// Reads the options from a `redshift://` URL's query string.
    pub fn parse(url: &str) -> Result<RedshiftOptions> {
        let bad = |source: BoxError| WarehouseError::Open {
            url: redact_url(url),
            source,
        };
        let mut parsed = url::Url::parse(url).map_err(|e| bad(e.into()))?;
        let mut options = RedshiftOptions {
            connection_url: String::new(),
            staging: None,
            iam_role: None,
            slices: 2,
            small_load_rows: 1_000,
            copy_via_stdin: false,
            staging_run: None,
        };
        let mut passthrough = Vec::new();
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "staging" => {
                    let rest = v.strip_prefix("s3://").ok_or_else(|| {
                        bad(format!("staging must be an s3:// URL, not {v:?}").into())
                    })?;
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    options.staging =
                        Some((bucket.to_string(), prefix.trim_end_matches('/').to_string()));
                }
                "iam_role" => options.iam_role = Some(v.into_owned()),
                "slices" => {
                    options.slices = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("slices must be a positive number".into()))?
                }
                "small_load_rows" => {
                    options.small_load_rows = v
                        .parse()
                        .map_err(|_| bad("small_load_rows must be a number".into()))?
                }
                "copy_via_stdin" => options.copy_via_stdin = v == "true",
                "staging_run" => options.staging_run = Some(v.into_owned()),
                _ => passthrough.push((k.into_owned(), v.into_owned())),
            }
        }
        if !passthrough.iter().any(|(k, _)| k == "sslmode") {
            passthrough.push(("sslmode".into(), "require".into()));
        }
        parsed.set_query(None);
        {
            let mut pairs = parsed.query_pairs_mut();
            for (k, v) in &passthrough {
                pairs.append_pair(k, v);
            }
        }
        let rest = parsed
            .as_str()
            .strip_prefix("redshift://")
            .unwrap_or(parsed.as_str());
        options.connection_url = format!("postgres://{rest}");
        Ok(options)
    }
}

/// An Amazon Redshift cluster, loaded through files staged in S3 and `COPY`.
pub struct RedshiftWarehouse {
    pg: PostgresWarehouse,
    options: RedshiftOptions,
    store: Option<Arc<dyn ObjectStore>>,
    /// Every `COPY` sent (credentials redacted), for tests and the debug log.
    copies: Vec<String>,
    /// `VARCHAR` widths per table, so a batch costs no catalog query. Cleared by anything
    /// that may change a table: every `execute` (all DDL goes through it) and a rollback.
    widths: std::collections::HashMap<(String, String), Vec<(String, usize)>>,
    sequence: u64,
    run: String,
}

impl RedshiftWarehouse {
    /// Connects to the cluster a `redshift://` URL names.
    pub fn connect(url: &str) -> Result<Self> {
        let options = RedshiftOptions::parse(url)?;
        let open_err = |source: BoxError| WarehouseError::Open {
            url: redact_url(url),
            source,
        };
        let pg = PostgresWarehouse::connect(&options.connection_url)?;
        let store: Option<Arc<dyn ObjectStore>> = match &options.staging {
            Some((bucket, _)) => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                    builder = builder
                        .with_endpoint(&endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                Some(Arc::new(builder.build().map_err(|e| open_err(e.into()))?))
            }
            None => None,
        };
        let run = options.staging_run.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis()),
                std::process::id()
            )
        });
        Ok(RedshiftWarehouse {
            pg,
            options,
            store,
            copies: Vec::new(),
            widths: std::collections::HashMap::new(),
            sequence: 0,
            run,
        })
    }

    /// The `COPY` statements sent so far (credentials redacted).
    pub fn copies(&self) -> &[String] {
        &self.copies
    }

    /// Current widths of a table's `VARCHAR` columns.
    fn varchar_widths(&mut self, schema: &str, table: &str) -> Result<Vec<(String, usize)>> {
        let key = (schema.to_string(), table.to_string());
        if let Some(widths) = self.widths.get(&key) {
            return Ok(widths.clone());
        }
        let rows = self.pg.query(
            "SELECT column_name, character_maximum_length FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 AND character_maximum_length IS NOT NULL",
            &[schema.into(), table.into()],
        )?;
        let widths: Vec<(String, usize)> = rows
            .into_iter()
            .filter_map(|r| {
                Some((
                    r[0].as_str()?.to_string(),
                    usize::try_from(r[1].as_i64()?).ok()?,
                ))
            })
            .collect();
        self.widths.insert(key, widths.clone());
        Ok(widths)
    }

    /// Widens `VARCHAR` columns of `table` that are narrower than `needed` (bytes).
    fn widen_to_fit(
        &mut self,
        schema: &str,
        table: &str,
        needed: &[(String, usize)],
    ) -> Result<()> {
        let widths = self.varchar_widths(schema, table)?;
        for (column, bytes) in needed {
            let Some((_, width)) = widths.iter().find(|(c, _)| c == column) else {
                continue;
            };
            if bytes <= width {
                continue;
            }
            // Room to grow: the next power of two, so a column widens a few times at most.
            let new = bytes
                .next_power_of_two()
                .clamp(INITIAL_VARCHAR, MAX_VARCHAR);
            let ty = format!("VARCHAR({new})");
            tracing::info!(table = %format!("{schema}.{table}"), column = %column, from = width, to = new, "widening a text column");
            for statement in sql::widen_column_to(
                DIALECT,
                schema,
                table,
                column,
                ColumnType::Text,
                ColumnType::Text,
                &ty,
            ) {
                self.pg.execute(&statement, &[])?;
            }
            let key = (schema.to_string(), table.to_string());
            if let Some(known) = self
                .widths
                .get_mut(&key)
                .and_then(|w| w.iter_mut().find(|(c, _)| c == column))
            {
                known.1 = new;
            }
        }
        Ok(())
    }

    /// Byte length of the longest value of each text column of a batch.
    fn text_widths(batch: &RecordBatch) -> Vec<(String, usize)> {
        batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| {
                f.data_type() == &DataType::Utf8 && !f.metadata().contains_key(JSON_FIELD_METADATA)
            })
            .map(|(f, a)| {
                let strings = a.as_string::<i32>();
                let longest = (0..strings.len())
                    .filter(|&i| strings.is_valid(i))
                    .map(|i| strings.value(i).len())
                    .max()
                    .unwrap_or(0);
                (f.name().clone(), longest)
            })
            .collect()
    }

    /// Small batches: one multi-row `INSERT` per chunk, values bound.
    fn insert_rows(&mut self, schema: &str, table: &str, batch: &RecordBatch) -> Result<()> {
        let fields = batch.schema().fields().clone();
        let width = fields.len().max(1);
        // PostgreSQL and Redshift take at most 32,767 parameters per statement.
        let per_statement = (30_000 / width).max(1);
        let columns = sql::column_list(fields.iter().map(|f| f.name().as_str()), None);
        let mut start = 0;
        while start < batch.num_rows() {
            let end = (start + per_statement).min(batch.num_rows());
            let mut params = Vec::with_capacity((end - start) * width);
            let mut tuples = Vec::with_capacity(end - start);
            for row in start..end {
                let mut placeholders = Vec::with_capacity(width);
                for (field, array) in fields.iter().zip(batch.columns()) {
                    params.push(csv::sql_value(array.as_ref(), row));
                    let n = params.len();
                    placeholders.push(if field.metadata().contains_key(JSON_FIELD_METADATA) {
                        sql::json_param(DIALECT, n)
                    } else {
                        format!("${n}")
                    });
                }
                tuples.push(format!("({})", placeholders.join(", ")));
            }
            let statement = format!(
                "INSERT INTO {} ({columns}) VALUES {}",
                sql::qualified(schema, table),
                tuples.join(", ")
            );
            self.pg.execute(&statement, &params)?;
            start = end;
        }
        Ok(())
    }

    /// Large batches: gzip CSV parts and a manifest in S3, then `COPY … MANIFEST`.
    fn copy_from_s3(&mut self, schema: &str, table: &str, batch: &RecordBatch) -> Result<()> {
        let err = |source: BoxError| WarehouseError::BulkLoad {
            table: format!("{schema}.{table}"),
            source,
        };
        let (Some(store), Some((bucket, prefix))) =
            (self.store.clone(), self.options.staging.clone())
        else {
            return self.insert_rows(schema, table, batch);
        };
        // Checked before anything is staged.
        let (credentials, shown) = match &self.options.iam_role {
            Some(role) => {
                let c = format!("IAM_ROLE {}", sql::literal(role));
                (c.clone(), c)
            }
            None => {
                let (Ok(key), Ok(secret)) = (
                    std::env::var("AWS_ACCESS_KEY_ID"),
                    std::env::var("AWS_SECRET_ACCESS_KEY"),
                ) else {
                    return Err(err(
                        "COPY from S3 needs credentials: set iam_role in the warehouse \
                         URL, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                            .into(),
                    ));
                };
                let mut c = format!(
                    "ACCESS_KEY_ID {} SECRET_ACCESS_KEY {}",
                    sql::literal(&key),
                    sql::literal(&secret)
                );
                if let Ok(token) = std::env::var("AWS_SESSION_TOKEN") {
                    c.push_str(&format!(" SESSION_TOKEN {}", sql::literal(&token)));
                }
                (c, "ACCESS_KEY_ID '***' SECRET_ACCESS_KEY '***'".to_string())
            }
        };
        self.sequence += 1;
        let folder = format!(
            "{}{}/{schema}/{table}/{:06}",
            if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            self.run,
            self.sequence
        );
        let parts = csv::encode_parts(batch, self.options.slices).map_err(|e| err(e.into()))?;
        let mut entries = Vec::new();
        for (i, part) in parts.into_iter().enumerate() {
            let key = format!("{folder}/part-{i:04}.csv.gz");
            let length = part.len();
            observes_runtime::block_on(
                store.put(&Path::from(key.as_str()), Bytes::from(part).into()),
            )
            .map_err(|e| err(e.into()))?
            .map_err(|e| err(staging(format!("s3://{bucket}/{key}"), e)))?;
            entries.push(serde_json::json!({
                "url": format!("s3://{bucket}/{key}"),
                "mandatory": true,
                "meta": {"content_length": length},
            }));
        }
        let manifest_key = format!("{folder}/manifest");
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({ "entries": entries }))
            .unwrap_or_default();
        observes_runtime::block_on(store.put(
            &Path::from(manifest_key.as_str()),
            Bytes::from(manifest).into(),
        ))
        .map_err(|e| err(e.into()))?
        .map_err(|e| err(staging(format!("s3://{bucket}/{manifest_key}"), e)))?;

        let columns = sql::column_list(
            batch.schema().fields().iter().map(|f| f.name().as_str()),
            None,
        );
        let target = sql::qualified(schema, table);
        let options = "FORMAT AS CSV GZIP NULL AS '\\\\N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF";
        let manifest_url = format!("s3://{bucket}/{manifest_key}");
        let copy = |creds: &str| {
            format!(
                "COPY {target} ({columns}) FROM {} {creds} MANIFEST {options}",
                sql::literal(&manifest_url)
            )
        };
        let shown = copy(&shown);
        self.copies.push(shown.clone());
        tracing::debug!(copy = %shown, "loading from S3");
        if self.options.copy_via_stdin {
            return self.feed_staged_parts(schema, table, &columns, &store, &manifest_key, &shown);
        }
        match self.pg.execute(&copy(&credentials), &[]) {
            Ok(_) => Ok(()),
            Err(e) => Err(err(Box::new(CopyFailed {
                statement: shown,
                load_errors: self.load_errors(&format!("s3://{bucket}/{folder}/")),
                source: without_sql(e),
            }))),
        }
    }

    /// The test-only path: what `COPY … MANIFEST` would read, fed through `COPY FROM STDIN`.
    fn feed_staged_parts(
        &mut self,
        schema: &str,
        table: &str,
        columns: &str,
        store: &Arc<dyn ObjectStore>,
        manifest_key: &str,
        shown: &str,
    ) -> Result<()> {
        let err = |source: BoxError| WarehouseError::BulkLoad {
            table: format!("{schema}.{table}"),
            source,
        };
        let manifest = observes_runtime::block_on(async {
            store.get(&Path::from(manifest_key)).await?.bytes().await
        })
        .map_err(|e| err(e.into()))?
        .map_err(|e| err(e.into()))?;
        let manifest: serde_json::Value =
            serde_json::from_slice(&manifest).map_err(|e| err(e.into()))?;
        let statement = format!(
            "COPY {} ({columns}) FROM STDIN (FORMAT csv, NULL '\\N')",
            sql::qualified(schema, table)
        );
        let client = self.pg.client();
        let mut writer = client.copy_in(&statement).map_err(|e| err(e.into()))?;
        for entry in manifest["entries"].as_array().into_iter().flatten() {
            let url = entry["url"].as_str().unwrap_or_default();
            let key = url.splitn(4, '/').nth(3).unwrap_or_default();
            let gz = observes_runtime::block_on(async {
                store.get(&Path::from(key)).await?.bytes().await
            })
            .map_err(|e| err(e.into()))?
            .map_err(|e| err(staging(url.to_string(), e)))?;
            let mut decoder = flate2::read::GzDecoder::new(&gz[..]);
            std::io::copy(&mut decoder, &mut writer)
                .map_err(|e| err(staging(url.to_string(), e)))?;
        }
        writer.flush().map_err(|e| err(e.into()))?;
        writer.finish().map_err(|e| {
            err(Box::new(CopyFailed {
                statement: format!("COPY FROM STDIN standing in for {shown}"),
                load_errors: String::new(),
                source: crate::postgres::PgError(e).into(),
            }))
        })?;
        Ok(())
    }

    /// The rows `STL_LOAD_ERRORS` has for the files of a failed `COPY`, as a sentence for its
    /// error. Read on a second connection: the failed `COPY` aborted this one's transaction.
    fn load_errors(&mut self, folder: &str) -> String {
        let lookup = || -> Result<Vec<Vec<SqlValue>>> {
            let mut other = PostgresWarehouse::connect(&self.options.connection_url)?;
            other.query(
                "SELECT line_number, TRIM(colname), TRIM(err_reason), TRIM(raw_field_value) FROM stl_load_errors \
                 WHERE filename LIKE $1 ORDER BY starttime DESC, line_number LIMIT 5",
                &[format!("{folder}%").into()],
            )
        };
        match lookup() {
            Ok(rows) if !rows.is_empty() => {
                let lines: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "line {}, column {}: {} (value {:?})",
                            r[0].as_i64().unwrap_or(0),
                            r[1].as_str().unwrap_or("?"),
                            r[2].as_str().unwrap_or("?"),
                            r[3].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                format!("; STL_LOAD_ERRORS: {}", lines.join("; "))
            }
            Ok(_) => String::new(),
            Err(e) => format!(
                "; STL_LOAD_ERRORS could not be read: {}",
                observes_runtime::chain(&e)
            ),
        }
    }
}

/// The cause of a failed statement without the statement (which may hold credentials).
fn without_sql(e: WarehouseError) -> BoxError {
    match e {
        WarehouseError::Sql { source, .. } => source,
        other => Box::new(other),
    }
}

/// An object of the staging area that could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("staging {url}")]
struct StagingError {
    url: String,
    #[source]
    source: BoxError,
}

fn staging(url: String, source: impl Into<BoxError>) -> BoxError {
    Box::new(StagingError {
        url,
        source: source.into(),
    })
}

/// A `COPY` of staged files that Redshift refused, with the rows it logged about them.
#[derive(Debug, thiserror::Error)]
#[error("running {statement}{load_errors}")]
struct CopyFailed {
    /// The statement, credentials masked.
    statement: String,
    /// `; STL_LOAD_ERRORS: …`, or nothing.
    load_errors: String,
    #[source]
    source: BoxError,
}

impl Warehouse for RedshiftWarehouse {
    fn dialect(&self) -> Dialect {
        DIALECT
    }

    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64> {
        self.widths.clear();
        self.pg.execute(sql, params)
    }

    fn query_with_columns(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<(Vec<String>, Vec<Vec<SqlValue>>)> {
        self.pg.query_with_columns(sql, params)
    }

    fn begin(&mut self) -> Result<()> {
        self.pg.begin()
    }

    fn commit(&mut self) -> Result<()> {
        self.pg.commit()
    }

    fn rollback(&mut self) -> Result<()> {
        self.widths.clear();
        self.pg.rollback()
    }

    fn table_columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, ColumnType)>>> {
        self.pg.table_columns(schema, table)
    }

    fn bulk_append(&mut self, schema: &str, table: &str, batch: &RecordBatch) -> Result<()> {
        let widths = Self::text_widths(batch);
        self.widen_to_fit(schema, table, &widths)?;
        // A merge stage feeds its table: the table must hold what the stage holds.
        if let Some(target) = table.strip_suffix("__observes_stage") {
            self.widen_to_fit(schema, target, &widths)?;
        }
        if batch.num_rows() < self.options.small_load_rows || self.store.is_none() {
            return self.insert_rows(schema, table, batch);
        }
        self.copy_from_s3(schema, table, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_the_url() {
        let o = RedshiftOptions::parse(
            "redshift://loader:s3cret@example.redshift.amazonaws.com:5439/dev?staging=s3://b/observes/&iam_role=arn:aws:iam::1:role/r&slices=4",
        )
        .unwrap();
        assert_eq!(
            o.connection_url,
            "postgres://loader:s3cret@example.redshift.amazonaws.com:5439/dev?sslmode=require"
        );
        assert_eq!(o.staging, Some(("b".into(), "observes".into())));
        assert_eq!(o.iam_role.as_deref(), Some("arn:aws:iam::1:role/r"));
        assert_eq!(o.slices, 4);
        let err = observes_runtime::chain(
            &RedshiftOptions::parse("redshift://u:pw@h/db?staging=gs://x").unwrap_err(),
        )
        .to_string();
        assert_eq!(err, "opening redshift://u:***@h/db?staging=gs://x: staging must be an s3:// URL, not \"gs://x\"");
    }
}
