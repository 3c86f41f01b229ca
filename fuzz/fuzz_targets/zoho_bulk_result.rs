//! Zoho bulk-read results: arbitrary bytes as the ZIP, and arbitrary bytes as the CSV of a
//! valid ZIP, read against a schema of every cell kind. Errors are fine; a panic, or a
//! record without its id, is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|bytes: &[u8]| {
    let schema = json!({"type": "object", "properties": {
        "N": {"type": ["null", "integer"]}, "X": {"type": ["null", "number"]},
        "B": {"type": ["null", "boolean"]}, "L": {"type": ["null", "object"]},
        "M": {"type": ["null", "array"]}, "T": {"type": ["null", "string"]}}});
    let read = |zip: Vec<u8>| {
        let _ = observes_sources::zoho::bulk::read_result(
            std::io::Cursor::new(zip),
            "Fuzz",
            1,
            &schema,
            |record| {
                assert!(record.contains_key("id"), "{record:?}");
                Ok(())
            },
        );
    };
    read(bytes.to_vec());
    let mut csv = b"Id,N,X,B,L,M,T\n".to_vec();
    csv.extend_from_slice(bytes);
    if let Ok(zip) = observes_sources::zoho::bulk::zip_of(&csv) {
        read(zip);
    }
});
