//! The fast path must read every record exactly as the serde walk does: the same rows
//! when both accept it, and no acceptance where the serde walk refuses.

use super::*;
use serde_json::json;

/// A deterministic generator (xorshift), so a failure names a seed that repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn schema() -> serde_json::Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "score": {"type": ["null", "number"]},
        "count": {"type": ["integer", "null"]},
        "ok": {"type": ["null", "boolean"]},
        "at": {"type": ["null", "string"], "format": "date-time"},
        "day": {"type": ["null", "string"], "format": "date"},
        "clock": {"type": ["null", "string"], "format": "time"},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "free": {"type": ["null", "object"]},
        "userName": {"type": ["null", "object"], "properties": {
            "id": {"type": "integer"},
            "First Name": {"type": ["null", "string"]},
            "deep": {"type": ["null", "object"], "properties": {"x": {"type": ["null", "number"]}}}
        }},
        "items": {"type": ["null", "array"], "items": {"type": "object", "properties": {
            "k": {"type": ["null", "string"]},
            "n": {"type": ["null", "integer"]},
            "tags": {"type": ["null", "array"], "items": {"type": ["null", "string"]}}
        }}},
        "tags": {"type": ["null", "array"], "items": {"type": ["null", "integer"]}}
    }})
}

/// A JSON text that is sometimes the right type, sometimes not, sometimes odd.
fn value(rng: &mut Rng, depth: u32) -> String {
    let scalars = [
        "null",
        "true",
        "false",
        "0",
        "-0",
        "1",
        "-17",
        "42",
        "3.5",
        "-2.5e3",
        "1E2",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "18446744073709551616",
        "1e400",
        "0.1",
        "12345678901234567890123",
        "\"\"",
        "\"plain\"",
        "\"with \\\"escapes\\\" \\n\\t\\u00e9\\/\"",
        "\"é中😀\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud800\"",
        "\"2024-03-05T14:15:22Z\"",
        "\"2024-03-05T14:15:22.123456+05:30\"",
        "\"2024-03-05 14:15:22\"",
        "\"2024-02-30T00:00:00Z\"",
        "\"2024-03-05\"",
        "\"14:15:22\"",
        "\"14:15:22.5\"",
        "\"25:00:00\"",
        "\"12\"",
        "\"3.5\"",
        "\"true\"",
        "\"not a date\"",
    ];
    match rng.below(if depth > 2 { 1 } else { 6 }) {
        0..=2 => rng.pick(&scalars).to_string(),
        3 => {
            let n = rng.below(4);
            let items: Vec<String> = (0..n).map(|_| value(rng, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => object(
            rng,
            depth + 1,
            &["k", "n", "tags", "id", "First Name", "x", "deep"],
        ),
    }
}

fn object(rng: &mut Rng, depth: u32, keys: &[&str]) -> String {
    let n = rng.below(keys.len() as u64 + 1);
    let mut fields = Vec::new();
    for _ in 0..n {
        let key = rng.pick(keys);
        fields.push(format!("\"{key}\":{}", value(rng, depth)));
    }
    format!("{{{}}}", fields.join(","))
}

fn good_record(rng: &mut Rng, id: u64) -> String {
    let items: Vec<String> = (0..rng.below(3))
        .map(|i| format!(r#"{{"k":"item {i}","n":{i},"tags":["a","b\u00e9",null]}}"#))
        .collect();
    format!(
        r#"{{"id":{id},"name":"job \"{id}\"","score":{}.25,"count":null,"ok":true,"at":"2026-01-01T00:00:{:02}.5Z","day":"2026-01-02","clock":"10:11:12","either":{},"free":{{"a":[1,{{"b":null}}],"c":"d"}},"userName":{{"id":7,"First Name":"Ada","deep":{{"x":1}}}},"items":[{}],"tags":[1,2,null]}}"#,
        id,
        id % 60,
        if id.is_multiple_of(2) {
            "\"text\"".to_string()
        } else {
            id.to_string()
        },
        items.join(",")
    )
}

/// A record of the schema's keys with random values, or a good one mutated.
fn record(rng: &mut Rng, id: u64) -> String {
    let keys = [
        "id", "name", "score", "count", "ok", "at", "day", "clock", "either", "free", "userName",
        "items", "tags", "extra",
    ];
    match rng.below(4) {
        0 => good_record(rng, id),
        1 => {
            // A good record with one byte changed, dropped or doubled.
            let mut text = good_record(rng, id).into_bytes();
            let at = rng.below(text.len() as u64) as usize;
            match rng.below(3) {
                0 => text[at] = b" {}[]\",:0a\\e-.n"[rng.below(15) as usize],
                1 => {
                    text.remove(at);
                }
                _ => text.insert(at, text[at]),
            }
            String::from_utf8(text).unwrap_or_else(|_| good_record(rng, id))
        }
        2 => {
            // Keys repeated, whitespace around everything.
            let a = good_record(rng, id);
            let field = format!("\"{}\" : {} ", rng.pick(&keys), value(rng, 1));
            format!("{{ {field},{}", &a[1..])
        }
        _ => {
            let mut fields = vec![format!("\"id\":{id}")];
            for _ in 0..rng.below(8) {
                let key = rng.pick(&keys);
                let v = match key {
                    "userName" => object(rng, 1, &["id", "First Name", "deep", "x"]),
                    "items" => format!("[{}]", object(rng, 1, &["k", "n", "tags"])),
                    _ => value(rng, 0),
                };
                fields.push(format!("\"{key}\":{v}"));
            }
            format!("{{{}}}", fields.join(","))
        }
    }
}

fn normalizers(max_text_bytes: Option<usize>) -> (Normalizer, Normalizer) {
    let mut layout = Layout::compile("jobs", &schema(), &["id".into()], 63).unwrap();
    layout.max_text_bytes = max_text_bytes;
    let layout = Arc::new(layout);
    (Normalizer::new(layout.clone()), Normalizer::new(layout))
}

#[test]
fn the_fast_path_reads_every_record_as_the_serde_walk_does() {
    for (seed, max_text) in [
        (0x9e37_79b9_7f4a_7c15, None),
        (0x2545_f491_4f6c_dd1d, Some(8)),
    ] {
        let mut rng = Rng(seed);
        let (mut fast, mut reference) = normalizers(max_text);
        let (mut fast_ids, mut reference_ids) = (IdAllocator::new(1), IdAllocator::new(1));
        let (mut accepted, mut refused) = (0, 0);
        for id in 0..20_000 {
            let text = record(&mut rng, id);
            let Ok(raw) = observes_singer::RawRecord::parse(&text) else {
                continue; // not one JSON object: the Singer reader refuses the line
            };
            let record = Record::Raw(raw);
            let got = fast.push(&record, &mut fast_ids);
            let want = reference.push_slow(&record, &mut reference_ids);
            assert_eq!(got, want, "record {id}: {text}");
            match got {
                Ok(()) => accepted += 1,
                Err(_) => refused += 1,
            }
            if id % 1000 == 999 {
                assert_eq!(fast.take_batches(), reference.take_batches(), "up to {id}");
            }
        }
        assert_eq!(fast.take_batches(), reference.take_batches());
        // The generator reaches both sides (a tight text limit refuses most records).
        assert!(accepted > 800 && refused > 2_000, "{accepted} {refused}");
    }
}

#[test]
fn a_bail_leaves_nothing_behind() {
    let (mut n, _) = normalizers(None);
    let mut ids = IdAllocator::new(1);
    let good = good_record(&mut Rng(3), 1);
    // Valid up to a late type error inside a child row: rows were opened, then undone.
    let bad = good.replace(r#""tags":[1,2,null]"#, r#""tags":[1,"x"]"#);
    assert!(n
        .push(
            &Record::Raw(observes_singer::RawRecord::parse(&bad).unwrap()),
            &mut ids
        )
        .is_err());
    assert_eq!(n.buffered_rows(), 0);
    n.push(
        &Record::Raw(observes_singer::RawRecord::parse(&good).unwrap()),
        &mut ids,
    )
    .unwrap();
    let (mut alone, _) = normalizers(None);
    let mut alone_ids = IdAllocator::new(1);
    let good = Record::Raw(observes_singer::RawRecord::parse(&good).unwrap());
    alone.push(&good, &mut alone_ids).unwrap();
    let rows = |n: &mut Normalizer| -> Vec<usize> {
        n.take_batches().iter().map(|(_, b)| b.num_rows()).collect()
    };
    assert_eq!(rows(&mut n), rows(&mut alone));
}

#[test]
fn generated_good_records_take_the_fast_path() {
    let (mut n, _) = normalizers(None);
    let mut ids = IdAllocator::new(1);
    let mut rng = Rng(7);
    for id in 0..50 {
        let text = good_record(&mut rng, id);
        // On the fast path itself, not only through its fallback.
        let mut c = json::Cursor::new(&text);
        assert!(
            n.push_json(&mut c, &mut ids).is_ok() && c.at_end(),
            "{text}"
        );
    }
}

#[test]
fn rows_normalized_ahead_and_absorbed_equal_rows_read_in_order() {
    let parse = |text: &str| Record::Raw(observes_singer::RawRecord::parse(text).unwrap());
    let mut rng = Rng(11);
    let records: Vec<Record> = (0..60)
        .map(|id| parse(&good_record(&mut rng, id)))
        .collect();
    let (mut in_order, mut taking_over) = normalizers(None);
    let mut ahead = Normalizer::new(taking_over.layout().clone());
    let (mut in_order_ids, mut ids) = (IdAllocator::new(5), IdAllocator::new(5));
    for record in &records {
        in_order.push(record, &mut in_order_ids).unwrap();
    }
    // The first 20 read here, the next 30 on "another thread" with fresh ids.
    for record in &records[..20] {
        taking_over.push(record, &mut ids).unwrap();
    }
    let mut ahead_ids = IdAllocator::new(5);
    for record in &records[20..50] {
        ahead.push(record, &mut ahead_ids).unwrap();
    }
    let shift = ids.take_over(&ahead_ids);
    assert!(taking_over.absorb(&mut ahead, shift));
    assert_eq!(ahead.buffered_rows(), 0);
    // Ids continue after the absorbed ones, as if all had been read here.
    for record in &records[50..] {
        taking_over.push(record, &mut ids).unwrap();
    }
    let (want, got) = (in_order.take_batches(), taking_over.take_batches());
    assert_eq!(got, want);
    assert!(want.len() >= 3, "child tables too: {}", want.len());
    assert_eq!(ids.next, in_order_ids.next);
}

#[test]
fn rows_normalized_with_another_layout_are_not_absorbed() {
    let (mut n, _) = normalizers(None);
    // Equal content, another layout (a SCHEMA message came meanwhile).
    let mut other = Normalizer::new(Arc::new((**n.layout()).clone()));
    let mut ids = IdAllocator::new(5);
    let text = good_record(&mut Rng(3), 1);
    other
        .push(
            &Record::Raw(observes_singer::RawRecord::parse(&text).unwrap()),
            &mut ids,
        )
        .unwrap();
    assert!(!n.absorb(&mut other, 0));
    assert_eq!((n.buffered_rows(), other.buffered_rows() > 0), (0, true));
}

#[test]
fn push_line_takes_a_whole_record_line_or_leaves_the_normalizer_as_it_was() {
    let (mut n, _) = normalizers(None);
    let mut ids = IdAllocator::new(1);
    let good = good_record(&mut Rng(3), 1);
    let line = |record: &str| format!(r#"{{"type":"RECORD","stream":"jobs","record":{record}}}"#);
    let text = line(&good);
    let pushed = push_line(text.as_bytes(), &mut ids, |s| {
        (s == "jobs").then_some(&mut n)
    });
    assert_eq!(
        pushed.map(|l| (l.stream, l.record)),
        Ok(("jobs", good.as_str()))
    );
    let (rows, next) = (n.buffered_rows(), ids.next);
    assert!(rows >= 1);

    // Valid up to a late type error inside a child row: what was written is taken back.
    let bad = good.replace(r#""tags":[1,2,null]"#, r#""tags":[1,"x"]"#);
    assert_ne!(bad, good);
    let text = line(&bad);
    assert_eq!(
        push_line(text.as_bytes(), &mut ids, |_| Some(&mut n)),
        Err(NotFast)
    );
    assert_eq!((n.buffered_rows(), ids.next), (rows, next));

    // Lines the fast path leaves alone, before any write.
    let other = r#"{"type":"RECORD","stream":"other","record":{"id":1}}"#;
    let state = r#"{"type":"STATE","value":{"at":1}}"#;
    let broken = r#"{"type":"RECORD","stream":"jobs","record":{"id":1}"#;
    assert_eq!(
        push_line(other.as_bytes(), &mut ids, |_| None),
        Err(NotFast)
    );
    for text in [state, broken] {
        assert_eq!(
            push_line(text.as_bytes(), &mut ids, |_| Some(&mut n)),
            Err(NotFast)
        );
    }
    assert_eq!((n.buffered_rows(), ids.next), (rows, next));
}
