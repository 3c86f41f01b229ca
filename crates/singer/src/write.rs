//! Writing messages as JSON lines.

use std::io::Write;

use crate::*;

/// Writes Singer messages as JSON lines.
pub struct MessageWriter<W> {
    out: W,
}

impl<W: Write> MessageWriter<W> {
    pub fn new(out: W) -> Self {
        MessageWriter { out }
    }

    pub fn write(&mut self, message: &Message) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &to_json(message))?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
