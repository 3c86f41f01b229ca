//! How an error becomes text where it leaves the program: the CLI's last line, a failed
//! load's record in the warehouse, a job's report, a log field.

use std::error::Error;
use std::fmt;

/// An error and its causes on one line, `error: cause: cause`.
///
/// Observes' errors leave their cause out of their own message and hand it on as
/// [`Error::source`], as the Rust API guidelines ask; text is made here, once. Some
/// libraries' errors print their cause as well, after a colon (tokio-postgres, object_store,
/// arrow): a cause whose text ends the error just before it is not said twice.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

/// [`Chain`] of an error.
pub fn chain<'a>(error: &'a (dyn Error + 'static)) -> Chain<'a> {
    Chain(error)
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = self.0.to_string();
        f.write_str(&said)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            let repeated = said == text
                || said
                    .strip_suffix(text.as_str())
                    .is_some_and(|head| head.ends_with(": "));
            if !repeated {
                write!(f, ": {text}")?;
            }
            said = text;
            cause = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("loading {0}")]
    struct Outer(&'static str, #[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("line 4")]
    struct Middle(#[source] std::io::Error);

    /// An error in the other convention: its text holds its cause's.
    #[derive(Debug, thiserror::Error)]
    #[error("storage failed: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn every_cause_is_said_once_in_order() {
        let e = Outer("jobs", Middle(std::io::Error::other("disk full")));
        assert_eq!(chain(&e).to_string(), "loading jobs: line 4: disk full");
        let e = Repeats(std::io::Error::other("disk full"));
        assert_eq!(chain(&e).to_string(), "storage failed: disk full");
        let alone = std::io::Error::other("disk full");
        assert_eq!(chain(&alone).to_string(), "disk full");
    }

    #[test]
    fn a_cause_that_only_looks_alike_is_still_said() {
        // "loading line 4" ends with "line 4", but not after a colon.
        let e = Outer("line 4", Middle(std::io::Error::other("disk full")));
        assert_eq!(chain(&e).to_string(), "loading line 4: line 4: disk full");
    }
}
