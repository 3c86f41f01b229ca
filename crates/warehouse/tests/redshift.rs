//! Redshift mode against PostgreSQL and the S3 test server: what is staged, the manifest
//! and the COPY statement, asserted exactly; text columns sized from the data.

use std::io::Read;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{Int64Array, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use observes_model::{Column, ColumnType};
use observes_warehouse::redshift::RedshiftWarehouse;
use observes_warehouse::{sql, SqlValue, Warehouse};

fn batch(names: &[Option<&str>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("doc", DataType::Utf8, true).with_metadata(std::collections::HashMap::from([(
            "observes.json".to_string(),
            "true".to_string(),
        )])),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]));
    let n = names.len();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from((1..=n as i64).collect::<Vec<_>>())),
            Arc::new(StringArray::from(names.to_vec())),
            Arc::new(StringArray::from(
                (0..n)
                    .map(|i| Some(format!("{{\"k\":{i}}}")))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    (0..n)
                        .map(|i| Some(i as i64 * 1_000_000))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

fn columns() -> Vec<Column> {
    let c = |name: &str, ty| Column {
        name: name.into(),
        ty,
        metadata: false,
    };
    vec![
        c("id", ColumnType::BigInt),
        c("name", ColumnType::Text),
        c("doc", ColumnType::Json),
        c("at", ColumnType::Timestamp),
    ]
}

fn bucket_of(url: &str) -> String {
    url.split("staging=s3://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn large_batches_are_staged_in_s3_and_copied_with_a_manifest() {
    let db = observes_testkit::TestDatabase::create();
    let url = db.redshift_url(5);
    let bucket = bucket_of(&url);
    let mut wh = RedshiftWarehouse::connect(&url).unwrap();
    let names = [
        Some("ada"),
        None,
        Some("say \"hi\""),
        Some("\\N"),
        Some("grace"),
        Some("linus"),
    ];
    wh.execute(&sql::create_schema("raw"), &[]).unwrap();
    wh.execute(
        &sql::create_table(wh.dialect(), "raw", "t", &columns()),
        &[],
    )
    .unwrap();
    wh.begin().unwrap();
    wh.bulk_append("raw", "t", &batch(&names)).unwrap();
    wh.commit().unwrap();

    let rt = observes_runtime::runtime().unwrap();
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(&bucket)
        .build()
        .unwrap();
    let mut keys: Vec<String> = rt
        .block_on(
            store
                .list(None)
                .map_ok(|m| m.location.to_string())
                .try_collect::<Vec<_>>(),
        )
        .unwrap();
    keys.sort();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let folder = keys[2]
        .strip_suffix("/part-0001.csv.gz")
        .unwrap()
        .to_string();
    assert!(
        folder.starts_with("staging/") && folder.ends_with("/raw/t/000001"),
        "{folder}"
    );
    assert_eq!(
        keys,
        vec![
            format!("{folder}/manifest"),
            format!("{folder}/part-0000.csv.gz"),
            format!("{folder}/part-0001.csv.gz")
        ]
    );

    let get = |key: String| {
        rt.block_on(async { store.get(&key.into()).await.unwrap().bytes().await.unwrap() })
    };
    let mut parts = Vec::new();
    for i in 0..2 {
        let gz = get(format!("{folder}/part-000{i}.csv.gz"));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        parts.push((text, gz.len()));
    }
    assert_eq!(
        parts[0].0,
        "1,\"ada\",\"{\"\"k\"\":0}\",1970-01-01 00:00:00.000000+00\n2,\\N,\"{\"\"k\"\":1}\",1970-01-01 00:00:01.000000+00\n3,\"say \"\"hi\"\"\",\"{\"\"k\"\":2}\",1970-01-01 00:00:02.000000+00\n"
    );
    assert_eq!(
        parts[1].0,
        "4,\"\\N\",\"{\"\"k\"\":3}\",1970-01-01 00:00:03.000000+00\n5,\"grace\",\"{\"\"k\"\":4}\",1970-01-01 00:00:04.000000+00\n6,\"linus\",\"{\"\"k\"\":5}\",1970-01-01 00:00:05.000000+00\n"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(format!("{folder}/manifest"))).unwrap();
    assert_eq!(
        manifest,
        serde_json::json!({"entries": [
            {"url": format!("s3://{bucket}/{folder}/part-0000.csv.gz"), "mandatory": true, "meta": {"content_length": parts[0].1}},
            {"url": format!("s3://{bucket}/{folder}/part-0001.csv.gz"), "mandatory": true, "meta": {"content_length": parts[1].1}},
        ]})
    );
    assert_eq!(
        wh.copies(),
        [format!(
            "COPY \"raw\".\"t\" (\"id\", \"name\", \"doc\", \"at\") FROM 's3://{bucket}/{folder}/manifest' \
             ACCESS_KEY_ID '***' SECRET_ACCESS_KEY '***' MANIFEST FORMAT AS CSV GZIP NULL AS '\\\\N' \
             TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF"
        )]
    );

    let rows = wh
        .query(
            "SELECT id, name, JSON_SERIALIZE(doc) FROM raw.t ORDER BY id",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows[1],
        vec![
            SqlValue::Int(2),
            SqlValue::Null,
            SqlValue::Text("{\"k\": 1}".into())
        ]
    );
    assert_eq!(
        rows[3][1],
        SqlValue::Text("\\N".into()),
        "a text \\N is not NULL"
    );
    // A small batch takes the INSERT path: no new COPY.
    wh.begin().unwrap();
    wh.bulk_append("raw", "t", &batch(&[Some("small")]))
        .unwrap();
    wh.commit().unwrap();
    assert_eq!(wh.copies().len(), 1);
}

#[test]
fn text_columns_grow_with_the_data() {
    observes_testkit::s3_endpoint();
    let db = observes_testkit::TestDatabase::create();
    let mut wh = RedshiftWarehouse::connect(&db.redshift_url(1_000)).unwrap();
    wh.execute(&sql::create_schema("raw"), &[]).unwrap();
    wh.execute(
        &sql::create_table(wh.dialect(), "raw", "t", &columns()),
        &[],
    )
    .unwrap();
    let width = |wh: &mut RedshiftWarehouse| {
        wh.query(
            "SELECT character_maximum_length FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = 't' AND column_name = 'name'",
            &[],
        )
        .unwrap()[0][0]
            .clone()
    };
    assert_eq!(width(&mut wh), SqlValue::Int(256));
    let long = "é".repeat(150); // 300 bytes, 150 characters: sized in bytes
    wh.begin().unwrap();
    wh.bulk_append("raw", "t", &batch(&[Some("short"), Some(&long)]))
        .unwrap();
    wh.commit().unwrap();
    assert_eq!(width(&mut wh), SqlValue::Int(512));
    let names = wh.query("SELECT name FROM raw.t ORDER BY id", &[]).unwrap();
    assert_eq!(
        names,
        vec![
            vec![SqlValue::Text("short".into())],
            vec![SqlValue::Text(long)]
        ]
    );
}

/// A failed COPY says why, from STL_LOAD_ERRORS (read on a second connection, since the
/// failure aborted the load's transaction). PostgreSQL cannot run Redshift's COPY, which
/// makes it fail; the test database has a stand-in STL_LOAD_ERRORS with the row Redshift
/// would have logged for the staged file.
#[test]
fn a_failed_copy_reports_stl_load_errors() {
    let db = observes_testkit::TestDatabase::create();
    let url = db
        .redshift_url(1)
        .replace("&copy_via_stdin=true", "&staging_run=fixed");
    let bucket = bucket_of(&url);
    let mut wh = RedshiftWarehouse::connect(&url).unwrap();
    wh.execute(
        "CREATE TABLE stl_load_errors (line_number BIGINT, colname CHAR(127), err_reason CHAR(100), \
         raw_field_value CHAR(1024), filename CHAR(256), starttime TIMESTAMP)",
        &[],
    )
    .unwrap();
    wh.execute(
        "INSERT INTO stl_load_errors VALUES (2, 'name', 'String length exceeds DDL length', 'ada lovelace', $1, now())",
        &[format!("s3://{bucket}/staging/fixed/raw/t/000001/part-0000.csv.gz").into()],
    )
    .unwrap();
    wh.execute(&sql::create_schema("raw"), &[]).unwrap();
    wh.execute(
        &sql::create_table(wh.dialect(), "raw", "t", &columns()),
        &[],
    )
    .unwrap();
    wh.begin().unwrap();
    let err = observes_runtime::chain(
        &wh.bulk_append("raw", "t", &batch(&[Some("ada"), Some("ada lovelace")]))
            .unwrap_err(),
    )
    .to_string();
    wh.rollback().unwrap();
    assert!(
        err.starts_with("bulk load into raw.t: running COPY \"raw\".\"t\""),
        "{err}"
    );
    assert!(
        err.contains("; STL_LOAD_ERRORS: line 2, column name: String length exceeds DDL length (value \"ada lovelace\"): ERROR: syntax error"),
        "{err}"
    );
    assert!(
        err.contains("ACCESS_KEY_ID '***' SECRET_ACCESS_KEY '***'"),
        "{err}"
    );
    assert!(
        !err.contains("observes-test-secret"),
        "credentials never reach an error: {err}"
    );
}
