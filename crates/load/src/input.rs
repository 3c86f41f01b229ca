//! What a [`Loader`](crate::Loader) reads: items of Singer input from any source (a file,
//! a tap's stdout, an in-process source), behind one trait, so that `observes target` and
//! `observes run` feed a load the same way ([`Loader::drive`](crate::Loader::drive)).

use std::time::Duration;

use observes_singer::{Line, LineBlock, ReadError};
use serde_json::Value;

/// One item of input: a message, lines of Singer text not parsed yet (the loader reads
/// each where it uses it), or input that is not one (with its raw bytes, so a quarantine
/// policy can keep it).
pub enum Item {
    /// A message already parsed (in-process sources, or a line read alone).
    Line(Line),
    /// Lines of text, read in blocks.
    Lines(LineBlock),
    /// Input that could not be read as a message.
    Bad {
        /// Why, and on which line.
        error: ReadError,
        /// The bytes, for the quarantine.
        raw: Vec<u8>,
    },
}

/// What waiting for the input's next item brought.
pub enum Next {
    /// The next item.
    Item(Item),
    /// Nothing came within the wait: the source is quiet (or slow).
    Quiet,
    /// The input ended.
    End,
}

/// A source of Singer input for [`Loader::drive`](crate::Loader::drive).
pub trait Input {
    /// The next item, or [`Next::Quiet`] once `wait` passed without one.
    fn next_within(&mut self, wait: Duration) -> Next;

    /// The value a `STATE` read from text is committed as, given where its line ends
    /// (`end` bytes into the input, line `line`). As sent, unless the source keeps its
    /// own place in it (a file wraps it with its offset).
    fn state_at(&mut self, value: Value, _end: u64, _line: u64) -> Value {
        value
    }

    /// The checkpoint the end of the input stands for, with its line, if any: the end of
    /// a file is its last checkpoint, even with no `STATE` of its own.
    fn end_checkpoint(&self) -> Option<(Value, u64)> {
        None
    }
}
