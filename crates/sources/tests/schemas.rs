//! Every stream's schema becomes tables on every warehouse (identifier limits 63 for
//! PostgreSQL, 127 for Redshift, DuckDB's), with its key properties as scalar columns.

use observes_model::Layout;

#[test]
fn every_stream_schema_compiles_on_every_identifier_limit() {
    let streams = observes_sources::gitlab::STREAMS
        .iter()
        .chain(observes_sources::checkly::STREAMS.iter());
    let mut count = 0;
    for stream in streams {
        count += 1;
        let keys: Vec<String> = stream
            .key_properties
            .iter()
            .map(|k| k.to_string())
            .collect();
        for max_ident in [63, 127, 255] {
            let layout = Layout::compile(stream.name, &stream.schema, &keys, max_ident)
                .unwrap_or_else(|e| panic!("{} at {max_ident}: {e}", stream.name));
            assert_eq!(layout.tables[0].name, stream.name);
            assert!(layout.tables.iter().all(|t| t.name.len() <= max_ident));
        }
        if let Some(key) = stream.replication_key {
            assert!(
                stream.schema["properties"].get(key).is_some(),
                "{}: replication key {key} is in the schema",
                stream.name
            );
        }
    }
    assert_eq!(count, 6 + 11);
}
