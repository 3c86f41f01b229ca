//! Writing messages as JSON lines.

use std::io::Write;

use crate::*;

/// Writes Singer messages as JSON lines.
pub struct MessageWriter<W> {
    out: W,
}

impl<W: Write> MessageWriter<W> {
    /// A writer of messages to `out`.
    pub fn new(out: W) -> Self {
        MessageWriter { out }
    }

    /// Writes a message as one JSON line.
    pub fn write(&mut self, message: &Message) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &to_json(message))?;
        self.out.write_all(b"\n")
    }

    /// Flushes `out`.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// The output back.
    pub fn into_inner(self) -> W {
        self.out
    }
}
