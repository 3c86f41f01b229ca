//! Merge, as a property (proptest): any stream of records, duplicates and checkpoints
//! anywhere, merged into DuckDB, leaves exactly its last-wins form: one row per key, the
//! last record's values, and the last record's child rows only.

use std::collections::BTreeMap;

use observes_load::{CommitPolicy, LoadConfig, Loader, WriteMode};
use observes_warehouse::SqlValue;
use proptest::prelude::*;

const SCHEMA: &str = r#"{"type":"SCHEMA","stream":"jobs","key_properties":["id"],"schema":{"type":"object","properties":{"id":{"type":"integer"},"v":{"type":["null","integer"]},"tags":{"type":["null","array"],"items":{"type":"string"}}}}}"#;

#[derive(Debug, Clone)]
enum Step {
    Record {
        id: u8,
        v: Option<i64>,
        tags: Vec<String>,
    },
    State,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..6, proptest::option::of(-5i64..5), prop::collection::vec("[a-c]", 0..3))
            .prop_map(|(id, v, tags)| Step::Record { id, v, tags }),
        1 => Just(Step::State),
    ]
}

fn text(values: &[SqlValue]) -> Vec<String> {
    values
        .iter()
        .map(|v| match v {
            SqlValue::Null => "NULL".to_string(),
            SqlValue::Int(i) => i.to_string(),
            SqlValue::Text(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merge_leaves_the_last_wins_form(steps in prop::collection::vec(step(), 1..40), every_checkpoint in any::<bool>()) {
        let mut wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
        let mut config = LoadConfig::new("p", "raw");
        config.write_mode = WriteMode::Merge;
        config.batch_rows = Some(3); // several batches, and merges across them
        if every_checkpoint {
            config.commit = CommitPolicy::every_checkpoint();
        }
        let mut loader = Loader::begin(wh.as_mut(), config).unwrap();
        let mut line = 1;
        loader.handle(line, observes_singer::parse_message(SCHEMA.as_bytes()).unwrap()).unwrap();
        let mut last: BTreeMap<u8, (Option<i64>, Vec<String>)> = BTreeMap::new();
        for step in &steps {
            line += 1;
            let text = match step {
                Step::Record { id, v, tags } => {
                    last.insert(*id, (*v, tags.clone()));
                    serde_json::json!({"type": "RECORD", "stream": "jobs",
                        "record": {"id": id, "v": v, "tags": tags}}).to_string()
                }
                Step::State => format!(r#"{{"type":"STATE","value":{{"line":{line}}}}}"#),
            };
            loader.handle(line, observes_singer::parse_message(text.as_bytes()).unwrap()).unwrap();
        }
        loader.finish().unwrap();

        let rows: Vec<Vec<String>> = wh
            .query(
                "SELECT j.id, j.v, (SELECT string_agg(t.value, ',' ORDER BY t._observes_list_idx) \
                 FROM raw.jobs__tags t WHERE t._observes_parent_id = j._observes_id) \
                 FROM raw.jobs j ORDER BY j.id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| text(r))
            .collect();
        let expected: Vec<Vec<String>> = last
            .iter()
            .map(|(id, (v, tags))| {
                vec![
                    id.to_string(),
                    v.map_or("NULL".into(), |v| v.to_string()),
                    if tags.is_empty() { "NULL".into() } else { tags.join(",") },
                ]
            })
            .collect();
        prop_assert_eq!(rows, expected);
        // No orphaned child rows: every tag belongs to a row that is there.
        let orphans = wh
            .query(
                "SELECT COUNT(*) FROM raw.jobs__tags t WHERE t._observes_parent_id NOT IN (SELECT _observes_id FROM raw.jobs)",
                &[],
            )
            .unwrap();
        prop_assert_eq!(text(&orphans[0]), vec!["0".to_string()]);
    }
}
