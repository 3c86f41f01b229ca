//! `git log -z --numstat` output: the reader never panics and never loops.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mut reader = observes_sources::code::git::LogReader::new(bytes);
    for _ in 0..10_000 {
        match reader.next_entry() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
    panic!("more entries than the input can hold");
});
