//! `observes.toml` and dashboard files: loading never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = observes_app::Config::parse(std::path::Path::new("/fuzz/observes.toml"), text);
    let _ = observes_dashboards::spec::Dashboard::parse(
        "fuzz",
        std::path::Path::new("/fuzz/dashboards/fuzz.toml"),
        text,
    );
});
