//! A record against a schema with every kind of column: the fast path and the serde walk
//! accept the same records, with the same errors and the same rows.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use observes_model::{IdAllocator, Layout, Normalizer};
use observes_singer::{RawRecord, Record};

fn layout() -> Arc<Layout> {
    let schema = serde_json::json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "score": {"type": ["null", "number"]},
        "ok": {"type": ["null", "boolean"]},
        "at": {"type": ["null", "string"], "format": "date-time"},
        "day": {"type": ["null", "string"], "format": "date"},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "free": {"type": ["null", "object"]},
        "user": {"type": ["null", "object"], "properties": {
            "id": {"type": "integer"}, "a.b": {"type": ["null", "string"]}}},
        "items": {"type": ["null", "array"], "items": {"type": "object", "properties": {
            "k": {"type": ["null", "string"]},
            "tags": {"type": ["null", "array"], "items": {"type": ["null", "string"]}}}}},
        "tags": {"type": ["null", "array"], "items": {"type": ["null", "integer"]}}
    }});
    Arc::new(Layout::compile("jobs", &schema, &["id".into()], 63).unwrap())
}

fuzz_target!(|text: &str| {
    let Ok(raw) = RawRecord::parse(text) else {
        return;
    };
    let record = Record::Raw(raw);
    let layout = layout();
    let (mut fast, mut slow) = (Normalizer::new(layout.clone()), Normalizer::new(layout));
    let (mut fast_ids, mut slow_ids) = (IdAllocator::new(1), IdAllocator::new(1));
    let got = fast.push(&record, &mut fast_ids);
    let want = slow.push_slow(&record, &mut slow_ids);
    assert_eq!(got, want, "{text}");
    assert_eq!(fast.take_batches(), slow.take_batches(), "{text}");
});
