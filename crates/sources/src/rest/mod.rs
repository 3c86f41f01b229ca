//! Declarative REST sources: a service described by a TOML definition (its client and
//! streams, [`definition`]) instead of Rust. This round holds the definition and its
//! checks (`observes source check DEF.toml`); running one is still to come.

pub mod definition;

pub use definition::{Definition, DefinitionError};
