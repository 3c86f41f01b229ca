//! A Singer line: the reader never panics; where the fast scanner accepts a RECORD line,
//! serde_json reads the same message from it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let parsed = observes_singer::parse_message(line);
    let scanned = observes_singer::scan_record_line(line, |_, c| c.skip_value(0).map(|_| ()));
    if let Ok(fast) = scanned {
        let Ok(observes_singer::Message::Record(record)) = &parsed else {
            panic!("the scanner took a line the reader refuses: {parsed:?}");
        };
        assert_eq!(record.stream, fast.stream);
        let slow: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
        assert_eq!(slow["stream"].as_str(), Some(fast.stream));
        let fast_record: serde_json::Value =
            serde_json::from_str(fast.record).expect("record JSON");
        assert_eq!(slow["record"], fast_record);
    }
});
