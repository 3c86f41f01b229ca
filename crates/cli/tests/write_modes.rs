//! What the write modes do with the streams real taps send: streams without a key under
//! `merge`, keys that change, and a DuckDB file named like the schema it holds.

mod common;

use common::*;

const EVENTS_SCHEMA: &str = r#"{"type":"SCHEMA","stream":"events","schema":{"properties":{"kind":{"type":"string"}}},"key_properties":[]}"#;
const JOBS_SCHEMA: &str = r#"{"type":"SCHEMA","stream":"jobs","schema":{"properties":{"id":{"type":"integer"},"n":{"type":"integer"}}},"key_properties":["id"]}"#;

fn event(kind: &str) -> String {
    format!(r#"{{"type":"RECORD","stream":"events","record":{{"kind":"{kind}"}}}}"#)
}

fn job(id: u32, n: u32) -> String {
    format!(r#"{{"type":"RECORD","stream":"jobs","record":{{"id":{id},"n":{n}}}}}"#)
}

const STATE: &str = r#"{"type":"STATE","value":{"at":1}}"#;

fn target(db: &std::path::Path, schema: &str, extra: &[&str], input: &str) -> std::process::Output {
    let url = format!("duckdb://{}", db.display());
    let mut args = vec!["target", &url, "--schema", schema];
    args.extend_from_slice(extra);
    run_with_input(&args, input)
}

#[test]
fn a_stream_without_key_under_merge_loads_as_append_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    // The keyless SCHEMA is repeated, then evolved: still one warning for the stream.
    let evolved = r#"{"type":"SCHEMA","stream":"events","schema":{"properties":{"kind":{"type":"string"},"at":{"type":"integer"}}}}"#;
    let input = [
        EVENTS_SCHEMA,
        JOBS_SCHEMA,
        &event("push"),
        &event("push"),
        &job(1, 1),
        &job(1, 2),
        EVENTS_SCHEMA,
        evolved,
        &event("tag"),
        STATE,
    ]
    .join("\n");
    let out = target(&db, "raw", &["--write", "merge"], &input);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("the SCHEMA has no key_properties: the stream is loaded as append")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("stream=events"), "{err}");
    assert_eq!(
        query(&db, "SELECT kind FROM raw.events ORDER BY kind"),
        rows(&[&["push"], &["push"], &["tag"]]),
        "appended: both identical events are kept"
    );
    assert_eq!(
        query(&db, "SELECT id, n FROM raw.jobs"),
        rows(&[&["1", "2"]]),
        "the keyed stream is still merged"
    );
    assert_eq!(
        query(
            &db,
            "SELECT stream, write_mode, rows FROM raw._observes_loads ORDER BY stream"
        ),
        rows(&[&["events", "append", "3"], &["jobs", "merge", "2"]])
    );
}

#[test]
fn on_missing_key_fail_keeps_the_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let input = [
        JOBS_SCHEMA,
        &job(1, 1),
        STATE,
        EVENTS_SCHEMA,
        &event("x"),
        STATE,
    ]
    .join("\n");
    let out = target(
        &db,
        "raw",
        &[
            "--write",
            "merge",
            "--on-missing-key",
            "fail",
            "--commit-records",
            "0",
        ],
        &input,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "line 4, stream \"events\": write mode \"merge\" needs key_properties, and the SCHEMA has none"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        query(&db, "SELECT id, n FROM raw.jobs"),
        rows(&[&["1", "1"]]),
        "the checkpoint before the error stays committed"
    );
    let out = target(&db, "raw", &["--on-missing-key", "sometimes"], "");
    assert!(
        stderr(&out).contains("unknown missing-key policy \"sometimes\" (expected append or fail)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_changed_key_is_merged_on_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let by_id = r#"{"type":"SCHEMA","stream":"jobs","schema":{"properties":{"id":{"type":"integer"},"ext":{"type":"string"},"n":{"type":"integer"}}},"key_properties":["id"]}"#;
    let by_ext = by_id.replace(r#""key_properties":["id"]"#, r#""key_properties":["ext"]"#);
    let rec = |id: u32, ext: &str, n: u32| {
        format!(
            r#"{{"type":"RECORD","stream":"jobs","record":{{"id":{id},"ext":"{ext}","n":{n}}}}}"#
        )
    };
    let input = [
        by_id.to_string(),
        rec(1, "a", 1),
        rec(1, "b", 2), // same id: replaces the first
        rec(2, "c", 1),
        by_ext.clone(),
        rec(3, "b", 3), // same ext as id 1: replaces it
        rec(4, "d", 1),
        rec(5, "d", 2), // same ext: the last wins
        STATE.to_string(),
    ]
    .join("\n");
    let out = target(&db, "raw", &["--write", "merge"], &input);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "the stream's key properties changed: records from this line on are merged on the new key"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        query(&db, "SELECT id, ext, n FROM raw.jobs ORDER BY id"),
        rows(&[&["2", "c", "1"], &["3", "b", "3"], &["5", "d", "2"]])
    );
    // A later load keeps merging on the new key.
    let again = [by_ext, rec(6, "c", 9), STATE.to_string()].join("\n");
    let out = target(&db, "raw", &["--write", "merge"], &again);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query(&db, "SELECT id, ext, n FROM raw.jobs ORDER BY id"),
        rows(&[&["3", "b", "3"], &["5", "d", "2"], &["6", "c", "9"]])
    );
}

/// DuckDB names a file's catalog after the file: `gitlab.duckdb` holding a schema `gitlab`
/// was ambiguous in every `gitlab.table`.
#[test]
fn a_duckdb_file_named_like_its_schema_loads_in_every_write_mode() {
    for mode in ["append", "merge", "replace"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gitlab.duckdb");
        for run in 1..=2 {
            let input = [
                JOBS_SCHEMA.to_string(),
                job(1, run),
                job(2, run),
                STATE.to_string(),
            ]
            .join("\n");
            let out = target(&db, "gitlab", &["--write", mode], &input);
            assert!(out.status.success(), "{mode}, run {run}: {}", stderr(&out));
        }
        let expected: &[&[&str]] = match mode {
            "append" => &[&["1", "1"], &["1", "2"], &["2", "1"], &["2", "2"]],
            _ => &[&["1", "2"], &["2", "2"]],
        };
        // A user's (or a dashboard's) query names the schema alone.
        assert_eq!(
            query(&db, "SELECT id, n FROM gitlab.jobs ORDER BY id, n"),
            rows(expected),
            "{mode}"
        );
        assert_eq!(
            query(
                &db,
                "SELECT COUNT(*) FROM gitlab._observes_loads WHERE status = 'completed'"
            ),
            rows(&[&["2"]]),
            "{mode}"
        );
        assert_eq!(
            query(
                &db,
                "SELECT CAST(state AS VARCHAR) FROM gitlab._observes_state WHERE pipeline = 'target'"
            ),
            rows(&[&[r#"{"at":1}"#]]),
            "{mode}"
        );
    }
}

#[test]
fn a_schema_name_that_cannot_be_held_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    let input = [JOBS_SCHEMA, &job(1, 1), STATE].join("\n");
    let out = target(&db, "", &[], &input);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("schema \"\": a schema name cannot be empty"),
        "{}",
        stderr(&out)
    );
    let out = target(&db, "System", &[], &input);
    assert!(
        stderr(&out).contains(
            "schema \"System\": duckdb reserves this name for a catalog (reserved: observes_warehouse, memory, system, temp); choose another schema"
        ),
        "{}",
        stderr(&out)
    );
}

/// Taps on the Meltano SDK send untyped objects (`additionalProperties`, no properties)
/// and arrays (`items: {}`). With `--untyped infer` they load into the same tables and
/// columns as the same records under a fully declared schema.
#[test]
fn untyped_objects_are_inferred_into_the_tables_a_declared_schema_gives() {
    let sdk = r#"{"type":"SCHEMA","stream":"jobs","key_properties":["id"],"schema":{"type":"object","properties":{"id":{"type":["integer"]},"status":{"type":["null","string"]},"user":{"type":["null","object"],"additionalProperties":true},"artifacts":{"type":["null","array"],"items":{}},"tags":{"type":["null","array"],"items":{}}}}}"#;
    let declared = r#"{"type":"SCHEMA","stream":"jobs","key_properties":["id"],"schema":{"type":"object","properties":{"id":{"type":["integer"]},"status":{"type":["null","string"]},"user":{"type":["null","object"],"properties":{"name":{"type":["null","string"]},"bot":{"type":["null","boolean"]},"team":{"type":["null","object"],"properties":{"id":{"type":["null","integer"]}}},"score":{"type":["null","number"]}}},"artifacts":{"type":["null","array"],"items":{"type":["null","object"],"properties":{"file":{"type":["null","string"]},"size":{"type":["null","integer"]}}}},"tags":{"type":["null","array"],"items":{"type":["null","string"]}}}}}"#;
    let records = [
        r#"{"type":"RECORD","stream":"jobs","record":{"id":1,"status":"ok","user":{"name":"ana","bot":false},"artifacts":[],"tags":["a","b"]}}"#,
        r#"{"type":"RECORD","stream":"jobs","record":{"id":2,"status":null,"user":null,"artifacts":[{"file":"log","size":10}],"tags":[]}}"#,
        // New keys arrive later: a nested object, and an integer that turns fractional.
        r#"{"type":"RECORD","stream":"jobs","record":{"id":3,"status":"failed","user":{"name":"bo","team":{"id":7},"score":1},"artifacts":[{"file":"a"},{"size":2}],"tags":["c"]}}"#,
        r#"{"type":"RECORD","stream":"jobs","record":{"id":4,"user":{"score":2.5},"artifacts":null}}"#,
        // Merged on its key: its old child rows go.
        r#"{"type":"RECORD","stream":"jobs","record":{"id":1,"status":"ok","user":{"name":"ana","bot":true},"artifacts":[{"file":"z","size":1}],"tags":["a"]}}"#,
    ];
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wh.duckdb");
    for (schema, first, extra) in [
        ("inferred", sdk, &["--untyped", "infer"][..]),
        ("declared", declared, &[][..]),
    ] {
        let mut lines = vec![first];
        lines.extend(records);
        lines.push(STATE);
        let mut args = vec!["--write", "merge"];
        args.extend_from_slice(extra);
        let out = target(&db, schema, &args, &lines.join("\n"));
        assert!(out.status.success(), "{schema}: {}", stderr(&out));
    }
    let layout = |schema: &str| {
        query(
            &db,
            &format!(
                "SELECT table_name, column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = '{schema}' AND table_name NOT LIKE '\\_observes%' ESCAPE '\\' \
                 ORDER BY table_name, column_name"
            ),
        )
    };
    let inferred = layout("inferred");
    assert_eq!(inferred, layout("declared"));
    assert!(
        inferred.contains(&vec![
            "jobs".to_string(),
            "user__team__id".to_string(),
            "BIGINT".to_string()
        ]) && inferred.contains(&vec![
            "jobs".to_string(),
            "user__score".to_string(),
            "DOUBLE".to_string()
        ]),
        "{inferred:?}"
    );
    let data = |schema: &str| {
        query(
            &db,
            &format!(
                "SELECT j.id, j.status, j.user__name, j.user__bot, j.user__team__id, j.user__score, \
                   (SELECT string_agg(coalesce(a.file, '-') || ':' || coalesce(CAST(a.size AS VARCHAR), '-'), ',' ORDER BY a._observes_list_idx) \
                      FROM {schema}.jobs__artifacts a WHERE a._observes_parent_id = j._observes_id), \
                   (SELECT string_agg(t.value, ',' ORDER BY t._observes_list_idx) \
                      FROM {schema}.jobs__tags t WHERE t._observes_parent_id = j._observes_id) \
                 FROM {schema}.jobs j ORDER BY j.id"
            ),
        )
    };
    let rows_inferred = data("inferred");
    assert_eq!(rows_inferred, data("declared"));
    assert_eq!(
        rows_inferred,
        rows(&[
            &["1", "ok", "ana", "true", "NULL", "NULL", "z:1", "a"],
            &["2", "NULL", "NULL", "NULL", "NULL", "NULL", "log:10", "NULL"],
            &["3", "failed", "bo", "NULL", "7", "1", "a:-,-:2", "c"],
            &["4", "NULL", "NULL", "NULL", "NULL", "2.5", "NULL", "NULL"],
        ])
    );
    let out = target(&db, "x", &["--untyped", "guess"], "");
    assert!(
        stderr(&out).contains("unknown untyped policy \"guess\" (expected json or infer)"),
        "{}",
        stderr(&out)
    );
}
