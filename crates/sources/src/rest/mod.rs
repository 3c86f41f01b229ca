//! Declarative REST sources: a service described by a TOML definition (its client and
//! streams, [`definition`]) instead of Rust, run by the shared HTTP toolkit and the
//! stream model ([`run`]). `observes source check DEF.toml` checks a definition;
//! `observes tap rest --config CFG.toml` runs one as a Singer tap.
//!
//! A pipeline reads one with `source = "rest"` and a config naming the definition; the
//! definitions in `sources/rest/` ship with Observes ([`SHIPPED`]), each with a notes file
//! of the API facts it relies on, and the demo runs each against its fake
//! (`observes_fakes::rest`).

pub mod definition;
pub mod run;

pub use definition::{Definition, DefinitionError};
pub use run::{RestConfig, RestSource};

/// The definitions shipped in `sources/rest/`: (name, the file's text).
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "bugsnag",
        include_str!("../../../../sources/rest/bugsnag.toml"),
    ),
    (
        "mailchimp",
        include_str!("../../../../sources/rest/mailchimp.toml"),
    ),
    (
        "delighted",
        include_str!("../../../../sources/rest/delighted.toml"),
    ),
    (
        "matomo",
        include_str!("../../../../sources/rest/matomo.toml"),
    ),
];

impl crate::registry::Source for RestSource {
    fn name(&self) -> &'static str {
        "rest"
    }

    fn run<'a>(
        &'a self,
        state: Option<&'a serde_json::Value>,
        sink: &'a mut dyn crate::Sink,
    ) -> crate::registry::Running<'a> {
        Box::pin(RestSource::run(self, state, sink))
    }

    fn settings(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_shipped_definition_passes_its_checks() {
        for (name, text) in super::SHIPPED {
            let file = std::path::PathBuf::from(format!("sources/rest/{name}.toml"));
            if let Err(e) = super::Definition::parse(&file, text) {
                panic!("{e}");
            }
        }
    }
}
