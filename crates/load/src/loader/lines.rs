//! Lines read straight from their text: the fast path for `RECORD` lines, records a
//! helper normalized ahead, and input that is not even a message.

use std::sync::Arc;

use observes_singer::{LineBlock, Message, ReadError};
use serde_json::Value;

use super::*;

impl Loader<'_> {
    /// Loads the lines of a block from the `skip`th on, in order: a `RECORD` line the fast
    /// path takes goes straight into its normalizer ([`observes_model::push_line`]); any
    /// other line is parsed and handled as a message, which decides everything, errors
    /// included. `on_state(value, end, line)` gives a `STATE`'s value before it is handled
    /// (a file source wraps it with where in the file it ends); `on_commit` gets each state
    /// once the transaction that holds it is durable. A line that is not a message is
    /// quarantined or stops the load, as the load's `on_invalid` says.
    pub(crate) fn load_lines<E: From<LoadError>>(
        &mut self,
        block: &LineBlock,
        skip: usize,
        mut on_state: impl FnMut(Value, u64, u64) -> Value,
        on_commit: &mut impl FnMut(&Value) -> Result<(), E>,
    ) -> Result<(), E> {
        for (number, text, end) in block.lines_with_end().skip(skip) {
            let state = match self.record_line(text)? {
                Some(state) => state,
                None => match observes_singer::parse_message(text) {
                    Ok(Message::State(mut state)) => {
                        state.value = on_state(state.value, end, number);
                        self.handle(number, Message::State(state))?
                    }
                    Ok(message) => self.handle(number, message)?,
                    Err(source) => {
                        let error = ReadError::Line {
                            line: number,
                            source,
                        };
                        if !self.reject_line(number, error.reason(), text)? {
                            return Err(LoadError::from(error).into());
                        }
                        None
                    }
                },
            };
            if let Some(state) = state {
                on_commit(&state)?;
            }
        }
        Ok(())
    }

    /// A `RECORD` line the fast path takes whole, with the state that became durable
    /// meanwhile; `None` when the line is for the slow path.
    fn record_line(&mut self, bytes: &[u8]) -> Result<Option<Option<Value>>, LoadError> {
        let (streams, held) = (&mut self.streams, &self.held);
        let pushed = observes_model::push_line(bytes, &mut self.ids, |name| {
            streams
                .get_mut(name)
                .filter(|s| s.inference.is_none() && !held.contains_key(name))
                .map(|s| &mut s.normalizer)
        });
        let Ok(line) = pushed else {
            return Ok(None);
        };
        let name = line.stream;
        if let Some(stream) = self.streams.get_mut(name) {
            stream.pending.rows += 1;
        }
        self.records_seen += 1;
        self.after_record(name)?;
        let finished = self.poll()?;
        Ok(Some(self.report(finished)))
    }

    /// The streams' layouts now, for the helpers ([`ahead`]).
    pub(crate) fn layouts(&self) -> Arc<ahead::Layouts> {
        Arc::new(ahead::Layouts {
            load_id: self.ids.load_id(),
            // Streams typed from their records are read here, never ahead.
            streams: self
                .streams
                .iter()
                .filter(|(name, s)| s.inference.is_none() && !self.held.contains_key(*name))
                .map(|(name, stream)| (name.clone(), stream.normalizer.layout().clone()))
                .collect(),
        })
    }

    /// Takes over records a helper normalized ahead, as if their lines were read here: all
    /// of them, or none when a stream's layout changed since ([`ahead`]). Returns how many
    /// leading lines of their block that covers (the caller reads the rest) and, as
    /// [`Loader::handle`] does, a state that became durable.
    pub(crate) fn take_ahead(
        &mut self,
        prepared: &mut ahead::Prepared,
    ) -> Result<(usize, Option<Value>), LoadError> {
        let current = prepared.streams.iter().all(|(name, normalizer, _)| {
            self.streams
                .get(name)
                .is_some_and(|s| Arc::ptr_eq(s.normalizer.layout(), normalizer.layout()))
        });
        if !current || prepared.lines == 0 {
            return Ok((0, None));
        }
        let shift = self.ids.take_over(&prepared.ids);
        for (name, normalizer, records) in prepared.streams.iter_mut() {
            if let Some(stream) = self.streams.get_mut(name.as_str()) {
                stream.normalizer.absorb(normalizer, shift);
                stream.pending.rows += *records;
            }
            self.records_seen += *records;
        }
        for (name, ..) in &prepared.streams {
            self.flush_if_full(name)?;
        }
        self.progress();
        let finished = self.poll()?;
        Ok((prepared.lines, self.report(finished)))
    }

    /// Quarantines input that is not even a message (malformed JSON), when the policy allows.
    pub(crate) fn reject_line(
        &mut self,
        line: u64,
        reason: String,
        raw: &[u8],
    ) -> Result<bool, LoadError> {
        if self.config.on_invalid != OnInvalid::Quarantine {
            return Ok(false);
        }
        self.rejects.push(metadata::Reject {
            stream: String::new(),
            line,
            reason,
            record: String::from_utf8_lossy(raw).into_owned(),
        });
        Ok(true)
    }
}
