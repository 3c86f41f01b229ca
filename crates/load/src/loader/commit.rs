//! Checkpoints: the rows before a `STATE`, the metadata about them and the state itself in
//! one transaction; commits sent while loading goes on, and the end of a load.

use std::time::Instant;

use observes_runtime::chain;
use serde_json::Value;

use super::*;

impl Loader<'_> {
    /// Commits everything buffered, with the pending state. Returns that state.
    pub(super) fn checkpoint(&mut self) -> Result<Option<Value>, LoadError> {
        self.apply_buffered(false)?;
        self.commit()
    }

    /// Brings the open transaction up to date with everything received: buffered rows
    /// sent, merges applied, `ACTIVATE_VERSION`s honoured, metadata and state written; at
    /// the end of a load also the replace swap. Everything but the `COMMIT`.
    pub(super) fn apply_buffered(&mut self, end_of_load: bool) -> Result<(), LoadError> {
        let names = self.order.clone();
        for name in &names {
            self.flush_stream(name)?;
        }
        self.ensure_transaction()?;
        let schema = self.config.schema.clone();
        for name in &names {
            match self.streams[name].write_mode {
                WriteMode::Merge => self.apply_merge(name)?,
                WriteMode::Replace if end_of_load => {
                    modes::swap_in(self.wh, &schema, self.streams[name].normalizer.layout())?
                }
                WriteMode::Replace | WriteMode::Append => {}
            }
            let stream = &self.streams[name];
            if stream.activate_version && stream.write_mode != WriteMode::Replace {
                modes::drop_older_loads(
                    self.wh,
                    &schema,
                    stream.normalizer.layout(),
                    self.ids.load_id(),
                )?;
            }
        }
        self.write_metadata("running")
    }

    pub(super) fn write_metadata(&mut self, status: &str) -> Result<(), LoadError> {
        let schema = self.config.schema.clone();
        metadata::insert_rejects(
            self.wh,
            &schema,
            self.ids.load_id(),
            &std::mem::take(&mut self.rejects),
        )?;
        for name in &self.order {
            let stream = &self.streams[name];
            metadata::record_load(
                self.wh,
                &schema,
                self.ids.load_id(),
                &self.config.pipeline,
                name,
                stream.write_mode,
                stream.pending.rows,
                stream.pending.rejected,
                status,
            )?;
        }
        if let Some(state) = &self.pending_state {
            metadata::write_state(
                self.wh,
                &schema,
                &self.config.pipeline,
                state,
                self.ids.load_id(),
            )?;
        }
        Ok(())
    }

    /// Sends `COMMIT` for the open transaction. It runs while the loader goes on with the
    /// next records; its state is handed out only once it is durable (by [`Self::settle`]).
    /// Returns the state of the commit before it, which is settled first: one at a time.
    pub(super) fn commit(&mut self) -> Result<Option<Value>, LoadError> {
        let earlier = self.settle()?;
        failpoint("before-commit");
        tracing::debug!(
            records = self.records_seen - self.records_committed,
            bytes = self.bytes_sent,
            "commit sent"
        );
        let commit = self.wh.start_commit()?;
        self.in_transaction = false;
        self.records_committed = self.records_seen;
        self.bytes_sent = 0;
        self.last_commit = Instant::now();
        let counts = self
            .streams
            .iter_mut()
            .map(|(name, stream)| {
                stream.activate_version = false;
                (name.clone(), std::mem::take(&mut stream.pending))
            })
            .collect();
        self.in_flight = Some(InFlight {
            commit,
            state: self.pending_state.take(),
            counts,
            started: Instant::now(),
        });
        Ok(earlier)
    }

    /// Waits for the commit in flight, if any: its rows become committed and its state is
    /// returned, once it is durable.
    pub(super) fn settle(&mut self) -> Result<Option<Value>, LoadError> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(None);
        };
        in_flight.commit.wait()?;
        tracing::debug!(
            seconds = in_flight.started.elapsed().as_secs_f64(),
            "committed"
        );
        self.commits += 1;
        for (name, counts) in in_flight.counts {
            if let Some(stream) = self.streams.get_mut(&name) {
                stream.committed.rows += counts.rows;
                stream.committed.rejected += counts.rejected;
            }
        }
        if in_flight.state.is_some() {
            self.committed_state = in_flight.state.clone();
        }
        Ok(in_flight.state)
    }

    /// The state of the commit in flight if it has finished meanwhile (no waiting).
    pub(super) fn poll(&mut self) -> Result<Option<Value>, LoadError> {
        let finished = self
            .in_flight
            .as_mut()
            .is_some_and(|f| f.commit.is_finished());
        if finished {
            self.settle()
        } else {
            Ok(None)
        }
    }

    /// Commits what is left (with the last state seen) and marks the load completed.
    pub fn finish(mut self) -> Result<LoadSummary, LoadError> {
        self.apply_buffered(true)?;
        metadata::complete_load(
            self.wh,
            &self.config.schema,
            self.ids.load_id(),
            "completed",
        )?;
        self.commit()?;
        self.settle()?;
        let secs = self.started.elapsed().as_secs_f64();
        tracing::info!(
            load_id = self.ids.load_id(),
            records = self.records_seen,
            seconds = format!("{secs:.2}"),
            "load completed"
        );
        Ok(LoadSummary {
            load_id: self.ids.load_id(),
            streams: self
                .order
                .iter()
                .map(|n| (n.clone(), self.streams[n].committed.clone()))
                .collect(),
            state: self.committed_state.clone(),
            unreported_state: if self.committed_state != self.reported_state {
                self.committed_state.clone()
            } else {
                None
            },
            commits: self.commits,
        })
    }

    /// Abandons the load after an error: rolls back the open transaction (earlier
    /// checkpoints stay committed) and records the failure in `_observes_loads`.
    ///
    /// Returns the state of a checkpoint committed and not yet handed out (its commit was
    /// still running, or finished just before the call that failed): the caller must pass
    /// it on like any other.
    #[must_use = "a state committed during the abort must still reach the state store"]
    pub fn abort(mut self, error: &(dyn std::error::Error + 'static)) -> Option<Value> {
        // A commit already sent stands or falls on its own.
        if let Err(e) = self.settle() {
            tracing::warn!(error = %chain(&e), "the last checkpoint's commit failed");
        }
        if self.in_transaction {
            if let Err(e) = self.wh.rollback() {
                tracing::warn!(error = %chain(&e), "rollback failed");
            }
            self.in_transaction = false;
        }
        let result = (|| -> Result<(), LoadError> {
            self.wh.begin()?;
            metadata::fail_load(
                self.wh,
                &self.config.schema,
                self.ids.load_id(),
                &self.config.pipeline,
                &chain(error).to_string(),
            )?;
            self.wh.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.wh.rollback();
            tracing::warn!(error = %chain(&e), "could not record the failed load");
        }
        // Committed and not handed out: settled just now, or polled by the call that failed.
        if self.committed_state != self.reported_state {
            self.committed_state.clone()
        } else {
            None
        }
    }
}
