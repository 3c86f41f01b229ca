//! Where a pipeline's Singer messages come from.
//!
//! - `singer-file`: a file of Singer JSON lines (read again in full on every run).
//! - `command`: any Singer tap, run as a child process; the committed state is handed to
//!   it as `--state FILE`, as Singer taps expect.
//! - `synthetic`: the built-in generator of CI-job-like records ([`synthetic`]).
//! - `code`: the commits of git repositories ([`observes_sources::code`]), run like the
//!   API sources.
//! - `gitlab`, `checkly`: the built-in API sources ([`observes_sources`]), run on their
//!   own thread and runtime, resuming from the committed state.

pub mod synthetic;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use observes_singer::{Line, LineBlock, LineBlocks, ReadError};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    SingerFile {
        path: PathBuf,
    },
    Command {
        command: Vec<String>,
    },
    Synthetic(synthetic::SyntheticConfig),
    /// `gitlab`, `checkly`, `code`.
    Builtin(observes_sources::Builtin),
}

impl SourceConfig {
    pub(crate) fn resolve(self, base: &Path) -> SourceConfig {
        match self {
            SourceConfig::SingerFile { path } if path.is_relative() => SourceConfig::SingerFile {
                path: base.join(path),
            },
            other => other,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting tap {program:?}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tap {program:?} exited with {status}")]
    TapFailed { program: String, status: String },
    #[error("source \"command\" needs a non-empty command")]
    EmptyCommand,
    #[error("writing the state file for the tap: {0}")]
    StateFile(#[source] std::io::Error),
    #[error("source {source_name}: {error}")]
    Api {
        source_name: &'static str,
        error: Box<observes_sources::SourceError>,
    },
}

/// One item from a source: a message, lines of Singer text not parsed yet (the loader
/// reads each where it uses it), or input that is not one (with its raw bytes, so a
/// quarantine policy can keep it).
pub enum Item {
    Line(Line),
    Lines(LineBlock),
    Bad { error: ReadError, raw: Vec<u8> },
}

/// Messages read on their own thread (parsing JSON runs beside normalizing and loading),
/// handed over in chunks through a bounded channel so memory stays flat.
pub struct MessageStream {
    rx: mpsc::Receiver<Vec<Item>>,
    chunk: std::vec::IntoIter<Item>,
    child: Option<(String, Child)>,
    _temp: Option<tempfile_path::TempPath>,
    /// Where an in-process source leaves its error.
    failure: Option<Arc<Mutex<Option<SourceError>>>>,
}

mod tempfile_path {
    /// A file removed when dropped (the state handed to a tap).
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

const CHUNK: usize = 512;

/// Sends items in chunks (one channel operation per chunk, not per message).
struct ChunkSender {
    tx: mpsc::SyncSender<Vec<Item>>,
    chunk: Vec<Item>,
}

impl ChunkSender {
    /// False when the receiver is gone (the load stopped): the producer should stop too.
    fn push(&mut self, item: Item) -> bool {
        self.chunk.push(item);
        if self.chunk.len() < CHUNK {
            return true;
        }
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.tx.send(full).is_ok()
    }

    /// Sends what is gathered and `item`, in its own chunk (for items that are chunks
    /// already).
    fn push_now(&mut self, item: Item) -> bool {
        if !self.chunk.is_empty() {
            let gathered = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            if self.tx.send(gathered).is_err() {
                return false;
            }
        }
        self.tx.send(vec![item]).is_ok()
    }

    fn finish(self) {
        let _ = self.tx.send(self.chunk);
    }
}

impl MessageStream {
    /// Runs `produce` on its own thread, feeding the stream through a bounded channel.
    fn spawn(produce: impl FnOnce(&mut ChunkSender) + Send + 'static) -> MessageStream {
        let (tx, rx) = mpsc::sync_channel::<Vec<Item>>(8);
        thread::spawn(move || {
            let mut sender = ChunkSender {
                tx,
                chunk: Vec::with_capacity(CHUNK),
            };
            produce(&mut sender);
            sender.finish();
        });
        MessageStream {
            rx,
            chunk: Vec::new().into_iter(),
            child: None,
            _temp: None,
            failure: None,
        }
    }

    /// Runs an API source on its own thread and runtime; its messages are numbered in
    /// order, and its error (if any) is reported by [`MessageStream::finish`].
    fn from_api<F>(source_name: &'static str, run: F) -> MessageStream
    where
        F: for<'s> FnOnce(
                &'s mut dyn observes_sources::Sink,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<Output = Result<(), observes_sources::SourceError>>
                        + 's,
                >,
            > + Send
            + 'static,
    {
        let failure = Arc::new(Mutex::new(None));
        let slot = failure.clone();
        let mut stream = MessageStream::spawn(move |out| {
            let mut number = 0u64;
            let mut sink = |message: observes_singer::Message| {
                number += 1;
                out.push(Item::Line(Line { number, message }))
            };
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    observes_sources::SourceError::Config(format!("starting a runtime: {e}"))
                })
                .and_then(|rt| rt.block_on(run(&mut sink)));
            match result {
                Ok(()) | Err(observes_sources::SourceError::Stopped) => {}
                Err(error) => {
                    if let Ok(mut slot) = slot.lock() {
                        *slot = Some(SourceError::Api {
                            source_name,
                            error: Box::new(error),
                        });
                    }
                }
            }
        });
        stream.failure = Some(failure);
        stream
    }

    /// Reads Singer lines from any reader on a background thread, in blocks of whole
    /// lines that the loader parses (so each line is scanned once, where it is used).
    /// The reader is buffered here; pass it unbuffered.
    pub fn from_reader<R: Read + Send + 'static>(input: R) -> MessageStream {
        MessageStream::from_reader_in_blocks(input, 1 << 20)
    }

    /// [`MessageStream::from_reader`] with blocks of about `block_bytes` (whole lines).
    pub fn from_reader_in_blocks<R: Read + Send + 'static>(
        input: R,
        block_bytes: usize,
    ) -> MessageStream {
        MessageStream::spawn(move |out| {
            let mut blocks = LineBlocks::new(input, block_bytes);
            loop {
                let item = match blocks.next_block() {
                    Ok(Some(block)) => Item::Lines(block),
                    Ok(None) => return,
                    Err(error) => {
                        let _ = out.push_now(Item::Bad {
                            error,
                            raw: Vec::new(),
                        });
                        return;
                    }
                };
                if !out.push_now(item) {
                    return;
                }
            }
        })
    }

    /// Messages produced in-process (numbered as lines would be).
    pub fn from_messages<I>(messages: I) -> MessageStream
    where
        I: Iterator<Item = observes_singer::Message> + Send + 'static,
    {
        MessageStream::spawn(move |out| {
            for (i, message) in messages.enumerate() {
                let line = Line {
                    number: i as u64 + 1,
                    message,
                };
                if !out.push(Item::Line(line)) {
                    return;
                }
            }
        })
    }

    /// Opens a configured source, resuming from `state`.
    pub fn open(
        source: &SourceConfig,
        state: Option<&Value>,
    ) -> Result<MessageStream, SourceError> {
        match source {
            SourceConfig::SingerFile { path } => {
                let file = std::fs::File::open(path).map_err(|source| SourceError::Open {
                    path: path.clone(),
                    source,
                })?;
                Ok(MessageStream::from_reader(file))
            }
            SourceConfig::Synthetic(config) => Ok(MessageStream::from_messages(
                synthetic::messages(config, synthetic::position(state)),
            )),
            SourceConfig::Builtin(source) => {
                let source = source.clone();
                let state = state.cloned();
                Ok(MessageStream::from_api(source.name(), move |sink| {
                    Box::pin(async move { source.run(state.as_ref(), sink).await })
                }))
            }
            SourceConfig::Command { command } => {
                let (program, args) = command.split_first().ok_or(SourceError::EmptyCommand)?;
                let mut cmd = Command::new(program);
                cmd.args(args).stdout(Stdio::piped()).stdin(Stdio::null());
                let mut temp = None;
                if let Some(state) = state {
                    let path = std::env::temp_dir().join(format!(
                        "observes-state-{}-{}.json",
                        std::process::id(),
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos())
                    ));
                    std::fs::write(&path, state.to_string()).map_err(SourceError::StateFile)?;
                    cmd.arg("--state").arg(&path);
                    temp = Some(tempfile_path::TempPath(path));
                }
                let mut child = cmd.spawn().map_err(|source| SourceError::Spawn {
                    program: program.clone(),
                    source,
                })?;
                let stdout = child.stdout.take().ok_or_else(|| SourceError::Spawn {
                    program: program.clone(),
                    source: std::io::Error::other("no stdout"),
                })?;
                let mut stream = MessageStream::from_reader(stdout);
                stream.child = Some((program.clone(), child));
                stream._temp = temp;
                Ok(stream)
            }
        }
    }

    /// The next item, or [`Next::Quiet`] once `wait` passed without one.
    pub fn next_within(&mut self, wait: std::time::Duration) -> Next {
        loop {
            if let Some(item) = self.chunk.next() {
                return Next::Item(item);
            }
            match self.rx.recv_timeout(wait) {
                Ok(chunk) => self.chunk = chunk.into_iter(),
                Err(mpsc::RecvTimeoutError::Timeout) => return Next::Quiet,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Next::End,
            }
        }
    }

    /// After the last item: a tap that exited non-zero is an error.
    pub fn finish(mut self) -> Result<(), SourceError> {
        if let Some(failure) = self.failure.take() {
            if let Some(error) = failure.lock().ok().and_then(|mut f| f.take()) {
                return Err(error);
            }
        }
        if let Some((program, mut child)) = self.child.take() {
            let status = child.wait().map_err(|source| SourceError::Spawn {
                program: program.clone(),
                source,
            })?;
            if !status.success() {
                return Err(SourceError::TapFailed {
                    program,
                    status: status.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// What waiting for a stream's next item brought.
pub enum Next {
    Item(Item),
    /// Nothing came within the wait: the source is quiet (or slow).
    Quiet,
    End,
}

impl Drop for MessageStream {
    fn drop(&mut self) {
        if let Some((_, child)) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
