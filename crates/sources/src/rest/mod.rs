//! Declarative REST sources: a service described by a TOML definition (its client and
//! streams, [`definition`]) instead of Rust, run by the shared HTTP toolkit and the
//! stream model ([`run`]). `observes source check DEF.toml` checks a definition;
//! `observes tap rest --config CFG.toml` runs one as a Singer tap.
//!
//! Not yet: a `source = "rest"` pipeline kind in the registry (with its fake and demo
//! pipeline), OAuth2 and time windows in definitions, and shipped definitions.

pub mod definition;
pub mod run;

pub use definition::{Definition, DefinitionError};
pub use run::{RestConfig, RestSource};

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
