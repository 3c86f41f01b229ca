//! A whole input into the loader, normalized ahead on helper threads.

use std::collections::VecDeque;
use std::time::Duration;

use observes_singer::{Message, StateMessage};
use serde_json::Value;

use super::*;
use crate::ahead::{Ahead, Helpers};
use crate::input::{Input, Item, Next};

/// How long the source may be quiet before a finished commit is handed out without it.
const QUIET_SOURCE: Duration = Duration::from_millis(200);

/// Blocks of lines read ahead of the loader: enough to keep every helper busy.
const AHEAD_BLOCKS: usize = 4;

/// An item read and not loaded yet; a block is with the helpers.
enum Queued {
    Item(Item),
    Ahead(Ahead),
}

impl Loader<'_> {
    /// Loads an input to its end, calling `on_commit` with each state right after the
    /// transaction that holds it commits. Stops at the first error, leaving the open
    /// (uncommitted) checkpoint for the caller to [`abort`](Loader::abort).
    ///
    /// Blocks of lines go to helper threads that normalize their records ahead (see
    /// `ahead`) while the loader takes earlier items in order.
    pub fn drive<E: From<LoadError>>(
        &mut self,
        input: &mut impl Input,
        mut on_commit: impl FnMut(&Value) -> Result<(), E>,
    ) -> Result<(), E> {
        let helpers = Helpers::per_core(AHEAD_BLOCKS);
        let mut window: VecDeque<Queued> = VecDeque::new();
        let mut ended = false;
        loop {
            while !ended && window.len() < AHEAD_BLOCKS {
                // Wait for the source only when there is nothing else to do.
                let wait = if window.is_empty() {
                    QUIET_SOURCE
                } else {
                    Duration::ZERO
                };
                match input.next_within(wait) {
                    Next::Item(Item::Lines(block)) => {
                        window.push_back(Queued::Ahead(helpers.submit(block, self.layouts())))
                    }
                    Next::Item(item) => window.push_back(Queued::Item(item)),
                    Next::Quiet if window.is_empty() => {
                        // A commit that finished while the source is quiet is handed out
                        // now, so its state is echoed and stored when it is durable, not
                        // with the source's next message (which may be minutes away).
                        if let Some(state) = self.committed_meanwhile()? {
                            on_commit(&state)?;
                        }
                    }
                    Next::Quiet => break,
                    Next::End => ended = true,
                }
            }
            let Some(next) = window.pop_front() else {
                if ended {
                    if let Some((value, line)) = input.end_checkpoint() {
                        let message = Message::State(StateMessage { value });
                        if let Some(state) = self.handle(line + 1, message)? {
                            on_commit(&state)?;
                        }
                    }
                    break;
                }
                continue;
            };
            let state_at = |value: Value, end: u64, line: u64| input.state_at(value, end, line);
            match next {
                Queued::Item(Item::Line(line)) => {
                    if let Some(state) = self.handle(line.number, line.message)? {
                        on_commit(&state)?;
                    }
                }
                Queued::Item(Item::Lines(block)) => {
                    self.load_lines(&block, 0, state_at, &mut on_commit)?
                }
                Queued::Ahead(ahead) => {
                    let (block, prepared) = ahead.wait();
                    let mut done = 0;
                    if let Some(mut prepared) = prepared {
                        let taken = self.take_ahead(&mut prepared);
                        helpers.recycle(prepared);
                        let (lines, state) = taken?;
                        if let Some(state) = state {
                            on_commit(&state)?;
                        }
                        done = lines;
                    }
                    self.load_lines(&block, done, state_at, &mut on_commit)?;
                }
                Queued::Item(Item::Bad { error, raw }) => {
                    if !self.reject_line(error.line(), error.reason(), &raw)? {
                        return Err(LoadError::from(error).into());
                    }
                }
            }
        }
        Ok(())
    }
}
