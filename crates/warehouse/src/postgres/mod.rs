//! PostgreSQL (`postgres://user@host:port/db`): the self-hosted warehouse.
//!
//! Bulk data goes in with `COPY … FROM STDIN (FORMAT binary)`, encoded straight from the
//! Arrow batches (no text round trip, no per-row statements). Connection settings come
//! from the URL, then from the `PG*` environment variables for whatever it leaves out.
//! `sslmode` means what it means to libpq: `disable`; `prefer` (the default: TLS when the
//! server offers it); `require` (TLS, certificate not checked); `verify-ca`/`verify-full`
//! (TLS, certificate checked against the system's roots). TLS is rustls.

mod copy;
mod tls;

use std::error::Error as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use bytes::BytesMut;
use observes_model::ColumnType;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, Config, NoTls};

use crate::{sql, BoxError, Dialect, LoadSizes, Result, SqlValue, Warehouse, WarehouseError};

/// PostgreSQL's SQL flavour and load sizes.
pub const DIALECT: Dialect = Dialect {
    reserved_schemas: &[],
    name: "postgres",
    max_identifier: 63,
    max_text_bytes: None,
    alter_type_in_place: true,
    json_functions: false,
    long_text: "TEXT",
    // The sizes the PostgreSQL benchmark (bench/RESULTS.md) was measured with.
    load: LoadSizes {
        batch_rows: 50_000,
        batch_bytes: 64 << 20,
        commit_records: 491_520,
        commit_bytes: 256 << 20,
    },
    type_name,
};

fn type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::BigInt => "BIGINT",
        ColumnType::Double => "DOUBLE PRECISION",
        ColumnType::Text => "TEXT",
        ColumnType::Timestamp => "TIMESTAMPTZ",
        ColumnType::Date => "DATE",
        ColumnType::Time => "TIME",
        ColumnType::Json => "JSONB",
    }
}

/// The column type of a PostgreSQL `data_type` as `information_schema` spells it.
fn column_type(data_type: &str) -> Option<ColumnType> {
    Some(match data_type {
        "boolean" => ColumnType::Boolean,
        "bigint" | "integer" | "smallint" => ColumnType::BigInt,
        "double precision" | "real" => ColumnType::Double,
        "text" | "character varying" | "character" => ColumnType::Text,
        "timestamp with time zone" => ColumnType::Timestamp,
        "date" => ColumnType::Date,
        "time without time zone" => ColumnType::Time,
        "jsonb" | "json" => ColumnType::Json,
        _ => return None,
    })
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
pub(crate) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
pub(crate) const PG_EPOCH_DAYS: i32 = 10_957;

/// A URL with its password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A PostgreSQL database, loaded with binary `COPY`.
pub struct PostgresWarehouse {
    client: Client,
    /// The TLS the connection was opened with. A cancel request goes the same way: under
    /// `sslmode=require` the driver will not send one without TLS.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// `jsonb`, or a domain over it (how tests stand in for Redshift's `SUPER`).
fn is_jsonb(ty: &Type) -> bool {
    *ty == Type::JSONB
        || matches!(ty.kind(), postgres::types::Kind::Domain(base) if *base == Type::JSONB)
}

/// A parameter written in whatever binary form the server inferred for it.
#[derive(Debug)]
struct Param<'a>(&'a SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mismatch = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("cannot bind {:?} as {ty}", self.0).into()
        };
        match self.0 {
            SqlValue::Null => return Ok(IsNull::Yes),
            SqlValue::Bool(b) => out.extend_from_slice(&[u8::from(*b)]),
            SqlValue::Int(i) => match *ty {
                Type::INT8 => out.extend_from_slice(&i.to_be_bytes()),
                Type::INT4 => {
                    out.extend_from_slice(&i32::try_from(*i).map_err(|_| mismatch())?.to_be_bytes())
                }
                Type::INT2 => {
                    out.extend_from_slice(&i16::try_from(*i).map_err(|_| mismatch())?.to_be_bytes())
                }
                Type::FLOAT8 => out.extend_from_slice(&(*i as f64).to_be_bytes()),
                Type::TEXT | Type::VARCHAR => out.extend_from_slice(i.to_string().as_bytes()),
                _ => return Err(mismatch()),
            },
            SqlValue::Float(f) => match *ty {
                Type::FLOAT8 => out.extend_from_slice(&f.to_be_bytes()),
                Type::FLOAT4 => out.extend_from_slice(&(*f as f32).to_be_bytes()),
                _ => return Err(mismatch()),
            },
            SqlValue::Text(s) => {
                if is_jsonb(ty) {
                    out.extend_from_slice(&[1]);
                }
                // text, varchar, name, json and domains over them share this form.
                out.extend_from_slice(s.as_bytes());
            }
            SqlValue::Timestamp(micros) => match *ty {
                Type::TIMESTAMPTZ | Type::TIMESTAMP => {
                    out.extend_from_slice(&(micros - PG_EPOCH_MICROS).to_be_bytes())
                }
                _ => return Err(mismatch()),
            },
            SqlValue::Date(days) => match *ty {
                Type::DATE => out.extend_from_slice(&(days - PG_EPOCH_DAYS).to_be_bytes()),
                _ => return Err(mismatch()),
            },
            SqlValue::Time(micros) => match *ty {
                Type::TIME => out.extend_from_slice(&micros.to_be_bytes()),
                _ => return Err(mismatch()),
            },
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn from_row(row: &postgres::Row, i: usize) -> std::result::Result<SqlValue, postgres::Error> {
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(SqlValue::Null, SqlValue::Bool),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(SqlValue::Null, SqlValue::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(SqlValue::Null, |v| SqlValue::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map_or(SqlValue::Null, |v| SqlValue::Int(v.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)?
            .map_or(SqlValue::Null, SqlValue::Float),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map_or(SqlValue::Null, |v| SqlValue::Float(v.into())),
        Type::TIMESTAMPTZ | Type::TIMESTAMP => {
            row.try_get::<_, Option<SystemTime>>(i)?
                .map_or(SqlValue::Null, |t| {
                    SqlValue::Timestamp(match t.duration_since(UNIX_EPOCH) {
                        Ok(d) => d.as_micros() as i64,
                        Err(e) => -(e.duration().as_micros() as i64),
                    })
                })
        }
        Type::DATE => row
            .try_get::<_, Option<PgDate>>(i)?
            .map_or(SqlValue::Null, |d| SqlValue::Date(d.0)),
        Type::NUMERIC => row
            .try_get::<_, Option<Numeric>>(i)?
            .map_or(SqlValue::Null, |n| SqlValue::Float(n.0)),
        ref t if is_jsonb(t) || *t == Type::JSON => row
            .try_get::<_, Option<Json>>(i)?
            .map_or(SqlValue::Null, |j| SqlValue::Text(j.0)),
        _ => row
            .try_get::<_, Option<String>>(i)?
            .map_or(SqlValue::Null, SqlValue::Text),
    })
}

/// A `DATE` as days since the Unix epoch (PostgreSQL counts from 2000-01-01).
struct PgDate(i32);

impl<'a> postgres::types::FromSql<'a> for PgDate {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 4] = raw.try_into().map_err(|_| "a DATE is 4 bytes")?;
        Ok(PgDate(i32::from_be_bytes(bytes).saturating_add(10_957)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }
}

/// A `NUMERIC` read as a float (what aggregates like `ROUND(AVG(x), 1)` return).
struct Numeric(f64);

impl<'a> postgres::types::FromSql<'a> for Numeric {
    /// The binary form: digit count, weight (of the first digit, base 10,000), sign,
    /// display scale, then the base-10,000 digits, all big-endian 16-bit.
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> std::result::Result<u16, String> {
            raw.get(i * 2..i * 2 + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "a short NUMERIC".to_string())
        };
        let (count, weight, sign) = (word(0)? as usize, word(1)? as i16, word(2)?);
        if sign == 0xC000 {
            return Ok(Numeric(f64::NAN));
        }
        let mut value = 0.0;
        for d in 0..count {
            let digit = word(4 + d)? as f64;
            value += digit * 10_000f64.powi(weight as i32 - d as i32);
        }
        Ok(Numeric(if sign == 0x4000 { -value } else { value }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// JSON read as its text.
struct Json(String);

impl<'a> postgres::types::FromSql<'a> for Json {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = if is_jsonb(ty) {
            raw.get(1..).unwrap_or_default()
        } else {
            raw
        };
        Ok(Json(std::str::from_utf8(text)?.to_string()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || is_jsonb(ty)
    }
}

/// The whole error chain of a database error (the server's message, detail and hint).
/// tokio-postgres' error as Observes reports it: the server's severity, message, detail
/// and hint on one line. tokio-postgres' own text repeats its cause (and puts a server's
/// detail on lines of their own), so this one stands for the whole chain and has no source.
#[derive(Debug)]
pub(crate) struct PgError(pub(crate) postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.0;
        if let Some(db) = e.as_db_error() {
            write!(f, "{}: {}", db.severity(), db.message())?;
            if let Some(detail) = db.detail() {
                write!(f, " (detail: {detail})")?;
            }
            if let Some(hint) = db.hint() {
                write!(f, " (hint: {hint})")?;
            }
            return Ok(());
        }
        match e.source() {
            Some(source) if !e.to_string().ends_with(&source.to_string()) => {
                write!(f, "{e}: {source}")
            }
            _ => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PgError {}

impl PostgresWarehouse {
    /// Connects to `postgres://…` (or `postgresql://…`); what the URL leaves out comes
    /// from `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and `PGDATABASE`.
    pub fn connect(url: &str) -> Result<Self> {
        let open_err = |source: BoxError| WarehouseError::Open {
            url: redact_url(url),
            source,
        };
        // sslmode as libpq reads it: tokio-postgres parses only disable/prefer/require.
        let mut parsed = url::Url::parse(url).map_err(|e| open_err(e.into()))?;
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        let ssl_mode = pairs
            .iter()
            .find(|(k, _)| k == "sslmode")
            .map_or("prefer", |(_, v)| v.as_str())
            .to_string();
        parsed.set_query(None);
        if pairs.iter().any(|(k, _)| k != "sslmode") {
            let mut query = parsed.query_pairs_mut();
            for (k, v) in pairs.iter().filter(|(k, _)| k != "sslmode") {
                query.append_pair(k, v);
            }
        }
        let mut config: Config = parsed
            .as_str()
            .parse()
            .map_err(|e: postgres::Error| open_err(PgError(e).into()))?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if config.get_hosts().is_empty() {
            config.host(env("PGHOST").as_deref().unwrap_or("localhost"));
        }
        if config.get_ports().is_empty() {
            if let Some(port) = env("PGPORT").and_then(|p| p.parse().ok()) {
                config.port(port);
            }
        }
        if config.get_user().is_none() {
            config.user(
                env("PGUSER")
                    .or_else(|| env("USER"))
                    .as_deref()
                    .unwrap_or("postgres"),
            );
        }
        if config.get_password().is_none() {
            if let Some(password) = env("PGPASSWORD") {
                config.password(password);
            }
        }
        if config.get_dbname().is_none() {
            if let Some(db) = env("PGDATABASE") {
                config.dbname(&db);
            }
        }
        config.connect_timeout(Duration::from_secs(30));
        config.application_name("observes");
        use postgres::config::SslMode;
        let (mode, tls) = match ssl_mode.as_str() {
            "disable" => (SslMode::Disable, None),
            "allow" | "prefer" => (SslMode::Prefer, Some(tls::connector(false))),
            "require" => (SslMode::Require, Some(tls::connector(false))),
            "verify-ca" | "verify-full" => (SslMode::Require, Some(tls::connector(true))),
            other => return Err(open_err(format!("unknown sslmode {other:?}").into())),
        };
        config.ssl_mode(mode);
        let client = match &tls {
            Some(tls) => config.connect(tls.clone()),
            None => config.connect(NoTls),
        }
        .map_err(|e| open_err(PgError(e).into()))?;
        let mut wh = PostgresWarehouse { client, tls };
        wh.client
            .batch_execute("SET TimeZone = 'UTC'")
            .map_err(|e| open_err(PgError(e).into()))?;
        Ok(wh)
    }

    /// The connection itself (for the Redshift backend's COPY paths).
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn sql_err(sql: &str, e: postgres::Error) -> WarehouseError {
        WarehouseError::Sql {
            sql: sql.to_string(),
            source: PgError(e).into(),
        }
    }
}

fn params<'a>(values: &'a [SqlValue]) -> Vec<Param<'a>> {
    values.iter().map(Param).collect()
}

fn refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Warehouse for PostgresWarehouse {
    /// Best effort: PostgreSQL's cancel request, on a new connection made the way this one
    /// was (TLS or not).
    fn interrupt_handle(&self) -> Option<crate::Interrupt> {
        let token = self.client.cancel_token();
        let tls = self.tls.clone();
        Some(crate::Interrupt::new(move || {
            let _ = match &tls {
                Some(tls) => token.cancel_query(tls.clone()),
                None => token.cancel_query(NoTls),
            };
        }))
    }

    fn dialect(&self) -> Dialect {
        DIALECT
    }

    fn execute(&mut self, sql: &str, values: &[SqlValue]) -> Result<u64> {
        let p = params(values);
        self.client
            .execute(sql, &refs(&p))
            .map_err(|e| Self::sql_err(sql, e))
    }

    fn query_with_columns(
        &mut self,
        sql: &str,
        values: &[SqlValue],
    ) -> Result<(Vec<String>, Vec<Vec<SqlValue>>)> {
        let p = params(values);
        let stmt = self
            .client
            .prepare(sql)
            .map_err(|e| Self::sql_err(sql, e))?;
        let columns = stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let rows = self
            .client
            .query(&stmt, &refs(&p))
            .map_err(|e| Self::sql_err(sql, e))?;
        let rows = rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| from_row(row, i))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Self::sql_err(sql, e))?;
        Ok((columns, rows))
    }

    fn begin(&mut self) -> Result<()> {
        self.client
            .batch_execute("BEGIN")
            .map_err(|e| Self::sql_err("BEGIN", e))
    }

    fn commit(&mut self) -> Result<()> {
        self.client
            .batch_execute("COMMIT")
            .map_err(|e| Self::sql_err("COMMIT", e))
    }

    fn rollback(&mut self) -> Result<()> {
        self.client
            .batch_execute("ROLLBACK")
            .map_err(|e| Self::sql_err("ROLLBACK", e))
    }

    fn table_columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, ColumnType)>>> {
        let rows = self.query(sql::TABLE_COLUMNS, &[schema.into(), table.into()])?;
        sql::columns_from_rows(schema, table, rows, column_type)
    }

    fn bulk_append(&mut self, schema: &str, table: &str, batch: &RecordBatch) -> Result<()> {
        let columns = sql::column_list(
            batch.schema().fields().iter().map(|f| f.name().as_str()),
            None,
        );
        let statement = format!(
            "COPY {} ({columns}) FROM STDIN (FORMAT binary)",
            sql::qualified(schema, table)
        );
        let err = |source: BoxError| WarehouseError::BulkLoad {
            table: format!("{schema}.{table}"),
            source,
        };
        let mut writer = self
            .client
            .copy_in(&statement)
            .map_err(|e| err(PgError(e).into()))?;
        copy::write_binary(&mut writer, batch).map_err(|e| err(e.into()))?;
        writer.finish().map_err(|e| err(PgError(e).into()))?;
        Ok(())
    }
}
