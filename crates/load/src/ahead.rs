//! Normalizing ahead: blocks of Singer lines normalized on helper threads while the loader
//! works on earlier ones, then taken over by the loader in input order.
//!
//! A helper normalizes a block's leading run of `RECORD` lines with the layouts the loader
//! had when the block was handed out, and stops at the first line that is anything else (a
//! `SCHEMA`, a `STATE`, a record off the fast path, bad input). The loader takes the run
//! over only if its streams still have those very layouts, renumbering the ids to continue
//! its own sequence ([`crate::Loader::take_ahead`]); the rest of the block, or all of it,
//! it reads itself. So tables, ids, errors and line numbers are exactly those of reading
//! every line in order; the helpers only move the normalizing off the loader's thread,
//! which then keeps both cores busy while the warehouse waits for rows.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use observes_model::{IdAllocator, Layout, Normalizer};
use observes_singer::LineBlock;

/// The streams' layouts as the loader had them, and the load's id.
#[derive(Debug)]
pub(crate) struct Layouts {
    pub(crate) load_id: i64,
    pub(crate) streams: HashMap<String, Arc<Layout>>,
}

/// A block's leading records, normalized.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// Leading lines of the block read (all of them `RECORD`s on the fast path).
    pub(crate) lines: usize,
    pub(crate) ids: IdAllocator,
    /// Per stream: its rows, and how many records they came from.
    pub(crate) streams: Vec<(String, Normalizer, u64)>,
}

/// Normalizers taken over and emptied, kept for the next blocks: buffers that grew on a
/// helper are reused there rather than freed on the loader's thread (which leaves memory
/// held by the allocator for a while).
#[derive(Default)]
struct Spares(Mutex<Vec<Normalizer>>);

impl Spares {
    /// Enough for the blocks in flight (each holds a block's rows at most).
    const MAX: usize = 16;

    fn take(&self, layout: &Arc<Layout>) -> Normalizer {
        let mut spares = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match spares.iter().position(|n| Arc::ptr_eq(n.layout(), layout)) {
            Some(at) => spares.swap_remove(at),
            None => Normalizer::new(layout.clone()),
        }
    }

    fn keep(&self, normalizers: impl Iterator<Item = Normalizer>) {
        let mut spares = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for mut normalizer in normalizers {
            // Not taken over (a layout changed meanwhile): its rows go.
            normalizer.clear();
            if spares.len() == Self::MAX {
                spares.remove(0);
            }
            spares.push(normalizer);
        }
    }
}

/// Normalizes the leading run of `RECORD` lines of `block` that the fast path reads.
fn prepare_with(block: &LineBlock, layouts: &Layouts, spares: &Spares) -> Prepared {
    let mut ids = IdAllocator::new(layouts.load_id);
    let mut streams: Vec<(String, Normalizer, u64)> = Vec::new();
    let mut lines = 0;
    for (_, text) in block.lines() {
        let mut index = None;
        let pushed = observes_model::push_line(text, &mut ids, |name| {
            let i = match streams.iter().position(|(n, ..)| n == name) {
                Some(i) => i,
                None => {
                    let layout = layouts.streams.get(name)?;
                    streams.push((name.to_string(), spares.take(layout), 0));
                    streams.len() - 1
                }
            };
            index = Some(i);
            Some(&mut streams[i].1)
        });
        match (pushed, index) {
            (Ok(_), Some(i)) => streams[i].2 += 1,
            _ => break,
        }
        lines += 1;
    }
    Prepared {
        lines,
        ids,
        streams,
    }
}

type Job = (Arc<LineBlock>, Arc<Layouts>, mpsc::SyncSender<Prepared>);

/// Threads that normalize blocks handed to them ([`prepare_with`]).
pub(crate) struct Helpers {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<thread::JoinHandle<()>>,
    spares: Arc<Spares>,
}

impl Helpers {
    /// `count` helper threads (none if `count` is 0: every block is then read in order by
    /// the loader).
    pub(crate) fn new(count: usize) -> Helpers {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let spares = Arc::new(Spares::default());
        let threads = (0..count)
            .filter_map(|i| {
                let rx = rx.clone();
                let spares = spares.clone();
                thread::Builder::new()
                    .name(format!("normalize-{i}"))
                    .spawn(move || loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok((block, layouts, reply)) = job else {
                            return;
                        };
                        let _ = reply.send(prepare_with(&block, &layouts, &spares));
                    })
                    .ok()
            })
            .collect();
        Helpers {
            jobs: Some(jobs),
            threads,
            spares,
        }
    }

    /// One helper per core, at most `max`.
    pub(crate) fn per_core(max: usize) -> Helpers {
        Helpers::new(thread::available_parallelism().map_or(1, |n| n.get().min(max)))
    }

    /// Hands `block` to a helper.
    pub(crate) fn submit(&self, block: LineBlock, layouts: Arc<Layouts>) -> Ahead {
        let block = Arc::new(block);
        let (reply, prepared) = mpsc::sync_channel(1);
        // Without helpers the job is refused and dropped with its reply: `wait` gives None.
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send((block.clone(), layouts, reply));
        }
        Ahead { block, prepared }
    }

    /// Gives back the normalizers of records taken over, for later blocks.
    pub(crate) fn recycle(&self, prepared: Prepared) {
        self.spares.keep(
            prepared
                .streams
                .into_iter()
                .map(|(_, normalizer, _)| normalizer),
        );
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A block in a helper's hands.
pub(crate) struct Ahead {
    block: Arc<LineBlock>,
    prepared: mpsc::Receiver<Prepared>,
}

impl Ahead {
    /// The block, and its prepared records unless no helper got to them.
    pub(crate) fn wait(self) -> (Arc<LineBlock>, Option<Prepared>) {
        let prepared = self.prepared.recv().ok();
        (self.block, prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoadConfig, Loader};
    use observes_singer::LineBlocks;

    const SCHEMA: &str = r#"{"type":"SCHEMA","stream":"a","key_properties":["id"],"schema":{"type":"object","properties":{"id":{"type":"integer"},"tags":{"type":["null","array"],"items":{"type":"string"}}}}}"#;

    fn record(id: u64) -> String {
        format!(r#"{{"type":"RECORD","stream":"a","record":{{"id":{id},"tags":["x","y"]}}}}"#)
    }

    fn block(lines: &[&str]) -> LineBlock {
        let text = lines.join("\n");
        LineBlocks::new(text.as_bytes(), 1 << 20)
            .next_block()
            .unwrap()
            .unwrap()
    }

    fn handle(loader: &mut Loader<'_>, line: &str) {
        let message = observes_singer::parse_message(line.as_bytes()).unwrap();
        loader.handle(1, message).unwrap();
    }

    #[test]
    fn a_helper_stops_at_the_first_line_it_leaves_to_the_loader() {
        let mut wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
        let mut loader = Loader::begin(wh.as_mut(), LoadConfig::new("p", "raw")).unwrap();
        handle(&mut loader, SCHEMA);
        let layouts = loader.layouts();
        let (r1, r2) = (record(1), record(2));
        let other_stream = r#"{"type":"RECORD","stream":"b","record":{"id":3}}"#;
        let state = r#"{"type":"STATE","value":{"at":1}}"#;
        let bad = r#"{"type":"RECORD","stream":"a","record":{"id":"three"}}"#;
        let no_key = r#"{"type":"RECORD","stream":"a","record":{"tags":[]}}"#;
        for (lines, prepared) in [
            (vec![&r1[..], &r2, &r1], 3),
            (vec![&r1[..], &r2, other_stream, &r1], 2),
            (vec![&r1[..], state, &r2], 1),
            (vec![&r1[..], bad, &r2], 1),
            (vec![no_key, &r1], 0),
            (vec![SCHEMA, &r1], 0),
        ] {
            let got = prepare_with(&block(&lines), &layouts, &Spares::default());
            assert_eq!(got.lines, prepared, "{lines:?}");
            let rows: u64 = got.streams.iter().map(|(_, _, records)| records).sum();
            assert_eq!(rows, prepared as u64);
            // A record that bailed half-way left no rows behind (two tags per record).
            let buffered: usize = got.streams.iter().map(|(_, n, _)| n.buffered_rows()).sum();
            assert_eq!(buffered, prepared * 3, "{lines:?}");
        }
    }

    #[test]
    fn records_prepared_with_a_layout_since_replaced_are_left_to_the_loader() {
        let mut wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
        let mut loader = Loader::begin(wh.as_mut(), LoadConfig::new("p", "raw")).unwrap();
        handle(&mut loader, SCHEMA);
        let lines = [record(1), record(2)];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let mut current = prepare_with(&block(&lines), &loader.layouts(), &Spares::default());
        let mut stale = prepare_with(&block(&lines), &loader.layouts(), &Spares::default());
        assert_eq!(loader.take_ahead(&mut current).unwrap(), (2, None));
        // A SCHEMA comes before the next block: its records were read with the old layout.
        handle(&mut loader, &SCHEMA.replace(r#""tags""#, r#""labels""#));
        assert_eq!(loader.take_ahead(&mut stale).unwrap(), (0, None));
        let summary = loader.finish().unwrap();
        assert_eq!(summary.streams["a"].rows, 2);
        let rows = wh
            .query(
                "SELECT id, _observes_id - (_observes_load_id << 36) FROM raw.a ORDER BY id",
                &[],
            )
            .unwrap();
        // Ids as if read in order: record 1, its two tags, record 2.
        use observes_warehouse::SqlValue::Int;
        assert_eq!(rows, vec![vec![Int(1), Int(1)], vec![Int(2), Int(4)]]);
    }
}
