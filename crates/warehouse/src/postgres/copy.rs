//! PostgreSQL's binary `COPY` format, written from Arrow arrays.
//!
//! A header, then per row a field count and per field a length (-1 for NULL) and the value
//! in the type's binary send format; a `-1` trailer ends the data.

use std::io::{self, Write};

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, TimeUnit};

use super::{PG_EPOCH_DAYS, PG_EPOCH_MICROS};

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// A column ready to encode, downcast once per batch.
enum Encoder<'a> {
    Bool(&'a BooleanArray),
    Int(&'a Int64Array),
    Float(&'a Float64Array),
    /// Text, or JSON when `jsonb` (which prefixes its version byte).
    Text(&'a StringArray, bool),
    Timestamp(&'a TimestampMicrosecondArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
}

fn encoder<'a>(array: &'a ArrayRef, jsonb: bool) -> io::Result<Encoder<'a>> {
    Ok(match array.data_type() {
        DataType::Boolean => Encoder::Bool(array.as_boolean()),
        DataType::Int64 => Encoder::Int(array.as_primitive()),
        DataType::Float64 => Encoder::Float(array.as_primitive()),
        DataType::Utf8 => Encoder::Text(array.as_string(), jsonb),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Encoder::Timestamp(array.as_primitive()),
        DataType::Date32 => Encoder::Date(array.as_primitive()),
        DataType::Time64(TimeUnit::Microsecond) => Encoder::Time(array.as_primitive()),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no binary COPY encoding for Arrow type {other}"),
            ))
        }
    })
}

/// Writes a batch in binary COPY format (JSON columns, marked in the Arrow field metadata,
/// as `jsonb`).
pub(super) fn write_binary(out: &mut impl Write, batch: &RecordBatch) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    buf.extend_from_slice(HEADER);
    let encoders = batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .map(|(array, field)| {
            encoder(
                array,
                field
                    .metadata()
                    .contains_key(observes_model::normalize::JSON_FIELD_METADATA),
            )
        })
        .collect::<io::Result<Vec<_>>>()?;
    let width = (encoders.len() as i16).to_be_bytes();
    for row in 0..batch.num_rows() {
        buf.extend_from_slice(&width);
        for encoder in &encoders {
            encode(&mut buf, encoder, row);
        }
        if buf.len() >= 1 << 20 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    out.write_all(&buf)
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn encode(buf: &mut Vec<u8>, encoder: &Encoder<'_>, row: usize) {
    let null = match encoder {
        Encoder::Bool(a) => a.is_null(row),
        Encoder::Int(a) => a.is_null(row),
        Encoder::Float(a) => a.is_null(row),
        Encoder::Text(a, _) => a.is_null(row),
        Encoder::Timestamp(a) => a.is_null(row),
        Encoder::Date(a) => a.is_null(row),
        Encoder::Time(a) => a.is_null(row),
    };
    if null {
        buf.extend_from_slice(&(-1i32).to_be_bytes());
        return;
    }
    match encoder {
        Encoder::Bool(a) => field(buf, &[u8::from(a.value(row))]),
        Encoder::Int(a) => field(buf, &a.value(row).to_be_bytes()),
        Encoder::Float(a) => field(buf, &a.value(row).to_be_bytes()),
        Encoder::Text(a, jsonb) => {
            let text = a.value(row).as_bytes();
            if *jsonb {
                buf.extend_from_slice(&(text.len() as i32 + 1).to_be_bytes());
                buf.push(1);
                buf.extend_from_slice(text);
            } else {
                field(buf, text);
            }
        }
        Encoder::Timestamp(a) => field(buf, &(a.value(row) - PG_EPOCH_MICROS).to_be_bytes()),
        Encoder::Date(a) => field(buf, &(a.value(row) - PG_EPOCH_DAYS).to_be_bytes()),
        Encoder::Time(a) => field(buf, &a.value(row).to_be_bytes()),
    }
}
