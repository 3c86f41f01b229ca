//! The loader: Singer messages in, committed warehouse tables out.
//!
//! A [`Loader`] feeds records through the normalizer into a [`Warehouse`](observes_warehouse::Warehouse), and treats every
//! `STATE` message as a checkpoint: the rows before it, the metadata about them and the state
//! itself are committed in one transaction. The caller gets the state back only after that
//! commit, to copy it to the state store. A crash therefore loses nothing that was committed
//! and commits nothing twice: a re-run resumes from the last committed state.
//!
//! Write modes ([`WriteMode`]) share one SQL path for every warehouse, in [`modes`].
//!
//! ```
//! use observes_load::{LoadConfig, Loader};
//! use observes_singer::MessageReader;
//!
//! let input = br#"{"type":"SCHEMA","stream":"users","schema":{"properties":{"id":{"type":"integer"}}},"key_properties":["id"]}
//! {"type":"RECORD","stream":"users","record":{"id":1}}
//! {"type":"STATE","value":{"users":1}}
//! "#;
//! let mut wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
//! let mut loader = Loader::begin(wh.as_mut(), LoadConfig::new("demo", "raw")).unwrap();
//! for line in MessageReader::new(&input[..]) {
//!     let line = line.unwrap();
//!     loader.handle(line.number, line.message).unwrap();
//! }
//! let summary = loader.finish().unwrap();
//! assert_eq!(summary.streams["users"].rows, 1);
//! ```

#![warn(missing_docs, unreachable_pub)]

/// A setting spelled by name in configs and flags: `FromStr`, with an error that lists the
/// names, and `as_str` back.
macro_rules! named_setting {
    ($ty:ident, $what:literal, $($name:literal => $variant:ident),+ $(,)?) => {
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (expected {})",
                        $what,
                        $crate::one_of(&[$($name),+])
                    )),
                }
            }
        }

        impl $ty {
            /// The name configs and flags spell it with.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }
    };
}

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}
mod ahead;
pub mod input;
#[cfg(feature = "inspect")]
pub mod inspect;
pub mod metadata;
pub mod modes;

mod error;
mod loader;
mod settings;

pub use error::LoadError;
pub use loader::{LoadSummary, Loader, StreamCounts};
pub use modes::WriteMode;
pub use settings::{CommitPolicy, LoadConfig, OnInvalid, OnMissingKey, Untyped};

/// A schema name the warehouse can hold unambiguously: not empty, not one of its catalogs.
pub fn check_schema_name(
    schema: &str,
    dialect: observes_warehouse::Dialect,
) -> Result<(), LoadError> {
    let refuse = |reason: String| {
        Err(LoadError::SchemaName {
            schema: schema.to_string(),
            reason,
        })
    };
    if schema.trim().is_empty() {
        return refuse("a schema name cannot be empty".into());
    }
    if dialect
        .reserved_schemas
        .iter()
        .any(|r| r.eq_ignore_ascii_case(schema))
    {
        return refuse(format!(
            "{} reserves this name for a catalog (reserved: {}); choose another schema",
            dialect.name,
            dialect.reserved_schemas.join(", ")
        ));
    }
    Ok(())
}

/// A named crash point for the crash-safety tests: when `OBSERVES_FAILPOINT` is
/// `NAME:N`, the process kills itself with SIGKILL the N-th time it passes `NAME`.
/// Points: `flushed` (a batch sent, its checkpoint not committed), `before-commit`
/// (everything written, `COMMIT` not yet sent), `after-commit` (committed, the state
/// store not yet written). Built with the `failpoints` feature only (the CLI's tests turn
/// it on); otherwise it does nothing.
#[cfg(feature = "failpoints")]
pub fn failpoint(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let spec = std::env::var("OBSERVES_FAILPOINT").ok()?;
        let (point, n) = spec.split_once(':')?;
        Some((point.to_string(), n.parse().ok()?))
    });
    if let Some((point, n)) = target {
        if point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// Without the `failpoints` feature there are no crash points.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn failpoint(_name: &str) {}
