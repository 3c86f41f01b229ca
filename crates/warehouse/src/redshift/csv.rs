//! Rows of an Arrow batch as Redshift `COPY` reads them: CSV, `\N` for NULL (unquoted, so a
//! text `\N` stays text), gzip-compressed, split into parts.

use std::io::{self, Write};

use arrow_array::cast::AsArray;
use arrow_array::Array;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, TimeUnit};
use flate2::write::GzEncoder;
use flate2::Compression;
use observes_model::time::civil_from_days;

use crate::SqlValue;

fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn clock_text(micros: i64) -> String {
    let secs = micros / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        micros % 1_000_000
    )
}

/// One value, as SQL sees it (for bound parameters).
pub(super) fn sql_value(array: &dyn Array, row: usize) -> SqlValue {
    if array.is_null(row) {
        return SqlValue::Null;
    }
    match array.data_type() {
        DataType::Boolean => SqlValue::Bool(array.as_boolean().value(row)),
        DataType::Int64 => SqlValue::Int(
            array
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(row),
        ),
        DataType::Float64 => SqlValue::Float(
            array
                .as_primitive::<arrow_array::types::Float64Type>()
                .value(row),
        ),
        DataType::Utf8 => SqlValue::Text(array.as_string::<i32>().value(row).to_string()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => SqlValue::Timestamp(
            array
                .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                .value(row),
        ),
        DataType::Date32 => SqlValue::Date(
            array
                .as_primitive::<arrow_array::types::Date32Type>()
                .value(row),
        ),
        DataType::Time64(TimeUnit::Microsecond) => SqlValue::Time(
            array
                .as_primitive::<arrow_array::types::Time64MicrosecondType>()
                .value(row),
        ),
        _ => SqlValue::Null,
    }
}

fn write_field(out: &mut Vec<u8>, array: &dyn Array, row: usize) {
    if array.is_null(row) {
        out.extend_from_slice(b"\\N");
        return;
    }
    match sql_value(array, row) {
        SqlValue::Null => out.extend_from_slice(b"\\N"),
        SqlValue::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        SqlValue::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        SqlValue::Float(f) => out.extend_from_slice(f.to_string().as_bytes()),
        SqlValue::Text(s) => {
            out.push(b'"');
            for &b in s.as_bytes() {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        }
        SqlValue::Timestamp(micros) => {
            let days = micros.div_euclid(86_400_000_000);
            let rem = micros.rem_euclid(86_400_000_000);
            out.extend_from_slice(format!("{} {}+00", date_text(days), clock_text(rem)).as_bytes());
        }
        SqlValue::Date(d) => out.extend_from_slice(date_text(d.into()).as_bytes()),
        SqlValue::Time(t) => out.extend_from_slice(clock_text(t).as_bytes()),
    }
}

/// The batch as `parts` gzip CSV files of (nearly) equal row counts.
pub(super) fn encode_parts(batch: &RecordBatch, parts: usize) -> io::Result<Vec<Vec<u8>>> {
    let parts = parts.max(1);
    let rows = batch.num_rows();
    let per_part = rows.div_ceil(parts);
    let mut out = Vec::with_capacity(parts);
    for p in 0..parts {
        let start = (p * per_part).min(rows);
        let end = ((p + 1) * per_part).min(rows);
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        let mut line = Vec::with_capacity(1024);
        for row in start..end {
            line.clear();
            for (i, column) in batch.columns().iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                write_field(&mut line, column.as_ref(), row);
            }
            line.push(b'\n');
            gz.write_all(&line)?;
        }
        out.push(gz.finish()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    #[test]
    fn csv_quotes_text_and_marks_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![
                    Some("a \"b\", c"),
                    None,
                    Some("\\N"),
                ])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_500_000), None, Some(0)])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let parts = encode_parts(&batch, 2).unwrap();
        assert_eq!(parts.len(), 2);
        let text: Vec<String> = parts
            .iter()
            .map(|p| {
                let mut s = String::new();
                flate2::read::GzDecoder::new(&p[..])
                    .read_to_string(&mut s)
                    .unwrap();
                s
            })
            .collect();
        assert_eq!(
            text[0],
            "1,\"a \"\"b\"\", c\",1970-01-01 00:00:01.500000+00\n2,\\N,\\N\n"
        );
        assert_eq!(text[1], "3,\"\\N\",1970-01-01 00:00:00.000000+00\n");
    }
}
