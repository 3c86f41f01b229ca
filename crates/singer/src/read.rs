//! Reading input: lines in blocks for the loader, or messages one at a time.

use std::io::{BufRead, BufReader, Read};

use crate::*;

/// Lines of Singer input read in blocks (for readers that parse each line where it is
/// used): each line with its 1-based number, trimmed, blank lines left out.
#[derive(Debug, Default)]
pub struct LineBlock {
    bytes: Vec<u8>,
    /// (line number, start, end, next) in `bytes`: the text, and where the next line
    /// starts (past this one's newline).
    lines: Vec<(u64, usize, usize, usize)>,
    /// Where `bytes` starts in the input.
    offset: u64,
}

impl LineBlock {
    /// The lines with where each ends in the input (past its newline): reading resumed
    /// from there goes on with the next line.
    pub fn lines_with_end(&self) -> impl Iterator<Item = (u64, &[u8], u64)> + '_ {
        self.lines.iter().map(move |&(number, start, end, next)| {
            (number, &self.bytes[start..end], self.offset + next as u64)
        })
    }

    /// The lines with their numbers.
    pub fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.lines
            .iter()
            .map(|&(number, start, end, _)| (number, &self.bytes[start..end]))
    }

    /// Whether the block holds no line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Splits input into [`LineBlock`]s of about `block_bytes` each, in constant memory (a
/// block holds whole lines; one longer line makes its block longer).
///
/// A block also ends where the input has nothing more at hand, so lines reach the loader
/// when they are written, not once a block fills: a slow tap's `STATE` is committed (and
/// its rows made visible) on time. A fast source fills whole blocks, since its reads rarely
/// end exactly at a line's end.
pub struct LineBlocks<R> {
    input: BufReader<R>,
    block_bytes: usize,
    line: u64,
    /// Bytes of the input read so far (from where reading started, see `resume`).
    offset: u64,
    done: bool,
}

impl<R: Read> LineBlocks<R> {
    /// Blocks of `input` from its start.
    pub fn new(input: R, block_bytes: usize) -> Self {
        LineBlocks::resume(input, block_bytes, 0, 0)
    }

    /// Blocks of an input positioned at byte `offset`, right after line `line` of the
    /// whole (for a file read again from where a run stopped): offsets and line numbers
    /// go on from there.
    pub fn resume(input: R, block_bytes: usize, offset: u64, line: u64) -> Self {
        let block_bytes = block_bytes.max(1);
        LineBlocks {
            input: BufReader::with_capacity(block_bytes.max(8 << 10), input),
            block_bytes,
            line,
            offset,
            done: false,
        }
    }

    /// Bytes and lines read so far (where the input ends, once it has).
    pub fn position(&self) -> (u64, u64) {
        (self.offset, self.line)
    }

    /// The next block; `Ok(None)` at the end of the input.
    pub fn next_block(&mut self) -> Result<Option<LineBlock>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let mut block = LineBlock {
            bytes: Vec::with_capacity(self.block_bytes + 4096),
            lines: Vec::new(),
            offset: self.offset,
        };
        while block.bytes.len() < self.block_bytes {
            let start = block.bytes.len();
            let n = self
                .input
                .read_until(b'\n', &mut block.bytes)
                .map_err(|source| ReadError::Io {
                    line: self.line + 1,
                    source,
                })?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.line += 1;
            self.offset += n as u64;
            let text = line_text(&block.bytes[start..], self.line);
            if !text.is_empty() {
                let offset = text.as_ptr() as usize - block.bytes.as_ptr() as usize;
                block
                    .lines
                    .push((self.line, offset, offset + text.len(), block.bytes.len()));
            }
            if self.input.buffer().is_empty() && !block.lines.is_empty() {
                // The next read may wait for the source: hand over what came so far.
                break;
            }
        }
        if block.lines.is_empty() && self.done {
            return Ok(None);
        }
        Ok(Some(block))
    }
}

/// Reads Singer messages from JSON lines, one at a time, in constant memory.
/// Blank lines are skipped (they still count for line numbers).
pub struct MessageReader<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
}

impl<R: BufRead> MessageReader<R> {
    /// Messages of `input` from its start.
    pub fn new(input: R) -> Self {
        MessageReader {
            input,
            buf: Vec::with_capacity(64 * 1024),
            line: 0,
        }
    }

    /// The next message, `Ok(None)` at the end of the input.
    pub fn next_message(&mut self) -> Result<Option<Line>, ReadError> {
        loop {
            self.buf.clear();
            self.line += 1;
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| ReadError::Io {
                    line: self.line,
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            let text = line_text(&self.buf, self.line);
            if text.is_empty() {
                continue;
            }
            return parse_message(text)
                .map(|message| {
                    Some(Line {
                        number: self.line,
                        message,
                    })
                })
                .map_err(|source| ReadError::Line {
                    line: self.line,
                    source,
                });
        }
    }

    /// The raw bytes of the last line read (without surrounding white space), for
    /// quarantining input that could not be parsed.
    pub fn last_line(&self) -> &[u8] {
        line_text(&self.buf, self.line)
    }
}

impl<R: BufRead> Iterator for MessageReader<R> {
    type Item = Result<Line, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_message().transpose()
    }
}

/// A line without surrounding white space and, on the first line, without a UTF-8 byte
/// order mark (files saved by some Windows editors and tools start with one).
fn line_text(bytes: &[u8], line: u64) -> &[u8] {
    let text = bytes.trim_ascii();
    match text.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) if line == 1 => rest.trim_ascii(),
        _ => text,
    }
}
