//! The process's one async runtime. Observes is sync where it moves data (the loader, the
//! warehouses' bulk paths) and async where it waits on the network (object storage, the
//! API sources, HTTP calls); sync code waits on async work here, on one runtime built on
//! first use, instead of building its own. It also holds the one way an error and its
//! causes become text ([`chain`]), which every part of the process shares in the same way.

#![warn(missing_docs, unreachable_pub)]

mod chain;

pub use chain::{chain, Chain};

use std::future::Future;
use std::sync::LazyLock;

use tokio::runtime::Runtime;

/// The runtime could not be built (the process is out of threads or file descriptors).
#[derive(Debug, thiserror::Error)]
#[error("starting the async runtime")]
pub struct RuntimeError(#[source] std::io::Error);

/// The runtime, built on first use and never dropped.
pub fn runtime() -> Result<&'static Runtime, RuntimeError> {
    static RUNTIME: LazyLock<std::io::Result<Runtime>> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("observes-async")
            .enable_all()
            .build()
    });
    RUNTIME
        .as_ref()
        .map_err(|e| RuntimeError(std::io::Error::new(e.kind(), e.to_string())))
}

/// Waits for `future` on [`runtime`], from sync code. Never call it from async code: that
/// panics, as tokio's `block_on` does.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, RuntimeError> {
    Ok(runtime()?.block_on(future))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_call_gets_the_same_runtime() {
        let a = super::runtime().unwrap() as *const _;
        let b = super::runtime().unwrap() as *const _;
        assert_eq!(a, b);
        assert_eq!(super::block_on(async { 7 }).unwrap(), 7);
    }
}
