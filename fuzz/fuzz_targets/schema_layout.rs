//! Any JSON as a stream's schema: compiling it never panics, and a layout it gives has
//! distinct table names and distinct column names per table.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(schema) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let keys = ["id".to_string()];
    for key_properties in [&keys[..], &[][..]] {
        if let Ok(layout) = observes_model::Layout::compile("s", &schema, key_properties, 63) {
            let mut tables = std::collections::HashSet::new();
            for table in &layout.tables {
                assert!(tables.insert(&table.name), "table {} twice", table.name);
                let mut columns = std::collections::HashSet::new();
                for column in &table.columns {
                    assert!(columns.insert(&column.name), "column {} twice", column.name);
                    assert!(column.name.len() <= 63);
                }
            }
        }
    }
    let mut inference = observes_model::infer::SchemaInference::new(&schema);
    if let Some(record) = schema.as_object() {
        inference.observe(record);
        let _ = observes_model::Layout::compile("s", &inference.schema(), &[], 63);
    }
});
