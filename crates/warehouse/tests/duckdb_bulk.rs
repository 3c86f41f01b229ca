//! DuckDB bulk inserts that cross row groups: batches of uneven sizes are gathered, cut at
//! the row-group boundary ([`ROW_GROUP`] rows) and the rest kept for the next insert or
//! the commit; rows too wide to gather are streamed into an insert that runs while they
//! come. Every value of every type must land in its own row, whatever the cuts.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use observes_warehouse::duckdb::{DuckDbWarehouse, ROW_GROUP};
use observes_warehouse::{SqlValue, Warehouse};

/// 2026-01-01T00:00:00Z in microseconds (the SQL check below spells it as a literal).
const BASE_MICROS: i64 = 1_767_225_600_000_000;

fn name(k: i64) -> Option<String> {
    // Short (inlined by DuckDB) and long (out of line) strings, and nulls.
    (k % 11 != 0).then(|| format!("row-{k}-{}", "x".repeat((k % 23) as usize)))
}

/// Rows `start..start + len`, every column a function of the row's key `k`.
fn batch(start: i64, len: i64) -> RecordBatch {
    let keys: Vec<i64> = (start..start + len).collect();
    let schema = Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("id", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("d", DataType::Date32, true),
        Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(keys.clone())),
        Arc::new(Int64Array::from_iter(
            keys.iter().map(|&k| (k % 7 != 0).then_some(k * 3)),
        )),
        Arc::new(Float64Array::from_iter(
            keys.iter().map(|&k| (k % 5 != 0).then_some(k as f64 / 4.0)),
        )),
        Arc::new(BooleanArray::from_iter(
            keys.iter().map(|&k| (k % 13 != 0).then_some(k % 3 == 0)),
        )),
        Arc::new(StringArray::from_iter(keys.iter().map(|&k| name(k)))),
        Arc::new(
            TimestampMicrosecondArray::from_iter(
                keys.iter()
                    .map(|&k| (k % 17 != 0).then_some(BASE_MICROS + k * 1_000_001)),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Date32Array::from_iter(
            keys.iter()
                .map(|&k| (k % 19 != 0).then_some((k % 40_000) as i32)),
        )),
        Arc::new(Time64MicrosecondArray::from_iter(keys.iter().map(|&k| {
            (k % 29 != 0).then_some((k % 86_400) * 1_000_000 + k % 1000)
        }))),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// A DuckDB file in `dir` with the table `s.t` of [`batch`]'s columns; `k_check`
/// constrains `k`.
fn warehouse_with_table(dir: &tempfile::TempDir, k_check: &str) -> DuckDbWarehouse {
    let path = dir.path().join("wh.duckdb");
    let mut wh = DuckDbWarehouse::open(path.to_str().unwrap()).unwrap();
    wh.execute("CREATE SCHEMA s", &[]).unwrap();
    wh.execute(
        &format!(
            "CREATE TABLE s.t (k BIGINT NOT NULL {k_check}, id BIGINT, x DOUBLE, \
             flag BOOLEAN, name VARCHAR, ts TIMESTAMPTZ, d DATE, t TIME)"
        ),
        &[],
    )
    .unwrap();
    wh
}

/// `s.t` holds keys 0..total once each, and every column what [`batch`] made of its key.
fn assert_each_key_once_with_its_values(wh: &mut DuckDbWarehouse, total: i64) {
    assert_table_holds_keys_once_with_their_values(wh, "s.t", total);
}

/// [`assert_each_key_once_with_its_values`] for any table of [`batch`]'s columns.
fn assert_table_holds_keys_once_with_their_values(
    wh: &mut DuckDbWarehouse,
    table: &str,
    total: i64,
) {
    assert_eq!(count(wh, &format!("SELECT COUNT(*) FROM {table}")), total);
    assert_eq!(
        count(wh, &format!("SELECT COUNT(DISTINCT k) FROM {table}")),
        total
    );
    assert_eq!(
        count(wh, &format!("SELECT MAX(k) - MIN(k) + 1 FROM {table}")),
        total
    );
    // Every column holds exactly what its key says, nulls included.
    let wrong = count(
        wh,
        &format!(
            "SELECT COUNT(*) FROM {table} WHERE \
           (id IS DISTINCT FROM CASE WHEN k % 7 <> 0 THEN k * 3 END) \
        OR (x IS DISTINCT FROM CASE WHEN k % 5 <> 0 THEN k / 4 END) \
        OR (flag IS DISTINCT FROM CASE WHEN k % 13 <> 0 THEN k % 3 = 0 END) \
        OR (name IS DISTINCT FROM CASE WHEN k % 11 <> 0 \
              THEN concat('row-', k, '-', repeat('x', (k % 23)::INTEGER)) END) \
        OR (ts IS DISTINCT FROM CASE WHEN k % 17 <> 0 \
              THEN TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_microseconds(k * 1000001) END) \
        OR (d IS DISTINCT FROM CASE WHEN k % 19 <> 0 \
              THEN DATE '1970-01-01' + (k % 40000)::INTEGER END) \
        OR (t IS DISTINCT FROM CASE WHEN k % 29 <> 0 \
              THEN TIME '00:00:00' + to_microseconds((k % 86400) * 1000000 + k % 1000) END)"
        ),
    );
    assert_eq!(wrong, 0, "rows whose values are not their own");
}

fn count(wh: &mut DuckDbWarehouse, sql: &str) -> i64 {
    wh.query(sql, &[]).unwrap()[0][0].as_i64().unwrap()
}

#[test]
fn rows_cut_at_row_groups_keep_every_value_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = warehouse_with_table(&dir, "");

    // Two transactions, each with batches whose sums cross row groups at odd places; sliced
    // batches (not at offset 0) are inserted and kept across inserts.
    let mut start = 0;
    for sizes in [
        &[50_000, 70_001, 3, 90_000, 1][..],
        &[122_879, 2, 130_000, 7, 40_000][..],
    ] {
        wh.begin().unwrap();
        for &len in sizes {
            wh.bulk_append("s", "t", &batch(start, len)).unwrap();
            start += len;
        }
        wh.commit().unwrap();
    }
    let total = start;
    assert_eq!(total, 502_893);

    assert_each_key_once_with_its_values(&mut wh, total);
    // A few rows read back through the client, beside the SQL check above.
    let row = wh
        .query(
            "SELECT id, name, CAST(ts AS VARCHAR), CAST(d AS VARCHAR), CAST(t AS VARCHAR) \
             FROM s.t WHERE k = 122880",
            &[],
        )
        .unwrap();
    assert_eq!(
        row,
        vec![vec![
            SqlValue::Int(368_640),
            SqlValue::Text(name(122_880).unwrap()),
            SqlValue::Text("2026-01-02 10:08:00.12288+00".into()),
            SqlValue::Text("1977-11-20".into()),
            SqlValue::Text("10:08:00.00088".into()),
        ]]
    );
}

/// Rows per row group in `table`, in row-group order.
fn row_groups(wh: &mut DuckDbWarehouse, table: &str) -> Vec<i64> {
    wh.query(
        &format!(
            "SELECT row_group_id, MAX(count) FROM pragma_storage_info('{table}') \
             WHERE column_id = 0 GROUP BY row_group_id ORDER BY row_group_id"
        ),
        &[],
    )
    .unwrap()
    .into_iter()
    .map(|row| row[1].as_i64().unwrap())
    .collect()
}

fn preserves_insertion_order(wh: &mut DuckDbWarehouse) -> bool {
    let value = wh
        .query("SELECT current_setting('preserve_insertion_order')", &[])
        .unwrap();
    value == vec![vec![SqlValue::Bool(true)]]
}

#[test]
fn row_groups_inserted_together_land_whole() {
    // Several row groups go in per statement, split over DuckDB's threads; each thread
    // takes whole row groups, so the table holds no partial row group but the last.
    let dir = tempfile::tempdir().unwrap();
    let mut wh = warehouse_with_table(&dir, "");
    let row_group = ROW_GROUP as i64;
    let total: i64 = 5 * row_group + 1_000;
    wh.begin().unwrap();
    let mut start = 0;
    while start < total {
        let len = 50_000.min(total - start);
        wh.bulk_append("s", "t", &batch(start, len)).unwrap();
        start += len;
    }
    wh.commit().unwrap();

    let mut sizes = row_groups(&mut wh, "s.t");
    sizes.sort();
    assert_eq!(sizes, [&[1_000][..], &[row_group; 5]].concat());
    assert_each_key_once_with_its_values(&mut wh, total);
    // Order is left free for the inserts alone: the connection keeps it afterwards.
    assert!(preserves_insertion_order(&mut wh));
}

#[test]
fn a_failed_insert_of_several_row_groups_rolls_back_and_keeps_insertion_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = warehouse_with_table(&dir, "CHECK (k < 200000)");
    wh.begin().unwrap();
    let mut error = None;
    for start in (0..300_000).step_by(50_000) {
        if let Err(e) = wh.bulk_append("s", "t", &batch(start, 50_000)) {
            error = Some(observes_runtime::chain(&e).to_string());
            break;
        }
    }
    let error = match error {
        Some(error) => error,
        None => observes_runtime::chain(&wh.commit().unwrap_err()).to_string(),
    };
    assert!(error.contains("bulk load into s.t"), "{error}");
    assert!(error.contains("CHECK constraint"), "{error}");
    wh.rollback().unwrap();
    assert_eq!(count(&mut wh, "SELECT COUNT(*) FROM s.t"), 0);
    assert!(preserves_insertion_order(&mut wh));
}

/// What [`wide`] pads a row with: 2,400 bytes, a function of its key.
fn pad(k: i64) -> String {
    format!("{k:>12}-").repeat(200)
}

/// [`batch`]'s rows with a `pad` column, too wide for two row groups to be gathered.
fn wide(start: i64, len: i64) -> RecordBatch {
    let narrow = batch(start, len);
    let mut fields: Vec<Field> = narrow
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("pad", DataType::Utf8, false));
    let mut columns = narrow.columns().to_vec();
    columns.push(Arc::new(StringArray::from_iter_values(
        (start..start + len).map(pad),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// [`warehouse_with_table`] and a table `s.w` of [`wide`]'s columns; `k_check`
/// constrains `k` there.
fn warehouse_with_wide_table(dir: &tempfile::TempDir, k_check: &str) -> DuckDbWarehouse {
    let mut wh = warehouse_with_table(dir, "");
    wh.execute(
        &format!(
            "CREATE TABLE s.w (k BIGINT NOT NULL {k_check}, id BIGINT, x DOUBLE, \
             flag BOOLEAN, name VARCHAR, ts TIMESTAMPTZ, d DATE, t TIME, pad VARCHAR)"
        ),
        &[],
    )
    .unwrap();
    wh
}

fn pads_that_are_not_their_own(wh: &mut DuckDbWarehouse) -> i64 {
    count(
        wh,
        "SELECT COUNT(*) FROM s.w WHERE pad IS DISTINCT FROM repeat(lpad(k::VARCHAR, 12, ' ') || '-', 200)",
    )
}

#[test]
fn wide_rows_stream_into_one_insert_beside_gathered_ones_and_land_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = warehouse_with_wide_table(&dir, "");
    let sizes = [1, 4_999, 20_000, 30_000, 15_000, 777];
    // More than a row group, so DuckDB's threads write whole ones as they fill; a
    // narrow table's batch in the middle ends the stream, which starts again after it.
    wh.begin().unwrap();
    let mut start = 0;
    for (i, &len) in sizes.iter().enumerate() {
        wh.bulk_append("s", "w", &wide(start, len)).unwrap();
        if i == 2 {
            wh.bulk_append("s", "t", &batch(0, 1_000)).unwrap();
        }
        start += len;
    }
    wh.commit().unwrap();
    assert!(start > ROW_GROUP as i64);
    assert_table_holds_keys_once_with_their_values(&mut wh, "s.w", start);
    assert_eq!(pads_that_are_not_their_own(&mut wh), 0);
    assert_each_key_once_with_its_values(&mut wh, 1_000);
    assert!(preserves_insertion_order(&mut wh));

    // A second transaction streams on after the first's rows.
    wh.begin().unwrap();
    wh.bulk_append("s", "w", &wide(start, 2_000)).unwrap();
    wh.commit().unwrap();
    assert_table_holds_keys_once_with_their_values(&mut wh, "s.w", start + 2_000);
}

#[test]
fn a_streaming_insert_that_fails_rolls_back_and_leaves_the_connection_usable() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = warehouse_with_wide_table(&dir, "CHECK (k < 30000)");
    wh.begin().unwrap();
    let mut error = None;
    for start in (0..60_000).step_by(5_000) {
        if let Err(e) = wh.bulk_append("s", "w", &wide(start, 5_000)) {
            error = Some(observes_runtime::chain(&e).to_string());
            break;
        }
    }
    let error = match error {
        Some(error) => error,
        None => observes_runtime::chain(&wh.commit().unwrap_err()).to_string(),
    };
    assert!(error.contains("bulk load into s.w"), "{error}");
    assert!(error.contains("CHECK constraint"), "{error}");
    wh.rollback().unwrap();
    assert_eq!(count(&mut wh, "SELECT COUNT(*) FROM s.w"), 0);
    assert!(preserves_insertion_order(&mut wh));

    wh.begin().unwrap();
    wh.bulk_append("s", "w", &wide(0, 3_000)).unwrap();
    wh.commit().unwrap();
    assert_table_holds_keys_once_with_their_values(&mut wh, "s.w", 3_000);
}

#[test]
fn rows_streamed_and_not_committed_are_gone_after_a_rollback_or_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = warehouse_with_wide_table(&dir, "");
    wh.begin().unwrap();
    wh.bulk_append("s", "w", &wide(0, 4_000)).unwrap();
    wh.rollback().unwrap();
    assert_eq!(count(&mut wh, "SELECT COUNT(*) FROM s.w"), 0);

    // Closed while the insert runs, as a process that stops between checkpoints.
    wh.begin().unwrap();
    wh.bulk_append("s", "w", &wide(0, 4_000)).unwrap();
    drop(wh);
    let path = dir.path().join("wh.duckdb");
    let mut wh = DuckDbWarehouse::open(path.to_str().unwrap()).unwrap();
    assert_eq!(count(&mut wh, "SELECT COUNT(*) FROM s.w"), 0);
}
