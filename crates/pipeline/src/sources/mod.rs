//! Where a pipeline's Singer messages come from.
//!
//! - `singer-file`: a file of Singer JSON lines (read again in full on every run).
//! - `command`: any Singer tap, run as a child process; the committed state is handed to
//!   it as `--state FILE`, as Singer taps expect.
//! - `synthetic`: the built-in generator of CI-job-like records ([`synthetic`]).
//! - the built-in sources ([`observes_sources::SOURCES`]: the APIs and `code`), run on
//!   their own thread and runtime, resuming from the committed state.

pub mod singer_file;
pub mod synthetic;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use observes_load::input::{Input, Item, Next};
use observes_singer::{Line, LineBlocks, ReadError};
use serde_json::Value;

/// Where a pipeline's messages come from, as configured.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A file of Singer lines.
    SingerFile {
        /// The file.
        path: PathBuf,
    },
    /// A Singer tap run as a child process.
    Command {
        /// The program and its arguments.
        command: Vec<String>,
        /// Where the tap runs: the config file's folder, so that its relative arguments
        /// mean what they meant beside the file.
        dir: Option<PathBuf>,
    },
    /// The built-in generator of CI-job-like records.
    Synthetic(synthetic::SyntheticConfig),
    /// A source of the registry ([`observes_sources::SOURCES`]), its settings read.
    Builtin(Arc<dyn observes_sources::Source>),
}

impl SourceConfig {
    /// A built-in source's settings as `T` (its settings type), for a job that works with
    /// them; `None` for any other source.
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        match self {
            SourceConfig::Builtin(source) => source.settings().downcast_ref::<T>(),
            _ => None,
        }
    }

    pub(crate) fn resolve(self, base: &Path) -> SourceConfig {
        match self {
            SourceConfig::SingerFile { path } if path.is_relative() => SourceConfig::SingerFile {
                path: base.join(path),
            },
            SourceConfig::Command { mut command, .. } => {
                // `./tap.sh` names a file beside the config; `tap-gitlab` is looked up on PATH.
                if let Some(program) = command.first_mut() {
                    if program.contains('/') && Path::new(program.as_str()).is_relative() {
                        *program = base.join(&*program).display().to_string();
                    }
                }
                SourceConfig::Command {
                    command,
                    dir: Some(base.to_path_buf()),
                }
            }
            other => other,
        }
    }
}

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file could not be opened.
    #[error("{path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tap could not be started.
    #[error("starting tap {program:?}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tap exited with a failure.
    #[error("tap {program:?} exited with {status}")]
    TapFailed {
        /// The program.
        program: String,
        /// How it exited.
        status: String,
    },
    /// A `command` source with no command.
    #[error("source \"command\" needs a non-empty command")]
    EmptyCommand,
    /// The state file handed to a tap could not be written.
    #[error("writing the state file for the tap")]
    StateFile(#[source] std::io::Error),
    /// A built-in source failed.
    #[error("source {source_name}")]
    Api {
        /// The source's name.
        source_name: &'static str,
        /// Why.
        #[source]
        error: Box<observes_sources::SourceError>,
    },
}

/// An in-process source's sink: its messages numbered as lines, its notices kept.
struct NumberingSink<'a> {
    out: &'a mut ChunkSender,
    number: u64,
    notices: Arc<Mutex<Vec<observes_sources::Notice>>>,
}

impl observes_sources::Sink for NumberingSink<'_> {
    fn send(&mut self, message: observes_singer::Message) -> bool {
        self.number += 1;
        self.out.push(Item::Line(Line {
            number: self.number,
            message,
        }))
    }

    fn notice(&mut self, notice: observes_sources::Notice) {
        if let Ok(mut notices) = self.notices.lock() {
            notices.push(notice);
        }
    }
}

/// Messages read on their own thread (parsing JSON runs beside normalizing and loading),
/// handed over in chunks through a bounded channel so memory stays flat.
pub struct MessageStream {
    rx: mpsc::Receiver<Vec<Item>>,
    chunk: std::vec::IntoIter<Item>,
    child: Option<(String, Child)>,
    _temp: Option<tempfile::TempPath>,
    /// Where an in-process source leaves its error.
    failure: Option<Arc<Mutex<Option<SourceError>>>>,
    /// Where an in-process source leaves its notices for the run's report.
    notices: Arc<Mutex<Vec<observes_sources::Notice>>>,
    /// A `singer-file` source: where the file's checkpoints are ([`singer_file`]).
    file: Option<singer_file::FileCursor>,
}

/// Sends the input's blocks on; at its end, returns where it ended (bytes, lines). `None`
/// when reading failed or the loader stopped first.
fn send_blocks<R: Read>(mut blocks: LineBlocks<R>, out: &mut ChunkSender) -> Option<(u64, u64)> {
    loop {
        let item = match blocks.next_block() {
            Ok(Some(block)) => Item::Lines(block),
            Ok(None) => return Some(blocks.position()),
            Err(error) => {
                let _ = out.push_now(Item::Bad {
                    error,
                    raw: Vec::new(),
                });
                return None;
            }
        };
        if !out.push_now(item) {
            return None;
        }
    }
}

/// The name of the state file handed to a tap starts with this and the process id.
const STATE_FILE_PREFIX: &str = "observes-state-";

/// Writes the state handed to a tap to a file removed when the run ends. A run killed
/// before that leaves it behind: the next run sweeps those whose process is gone.
fn state_file(state: &Value) -> std::io::Result<tempfile::TempPath> {
    let dir = std::env::temp_dir();
    sweep_state_files(&dir);
    let mut file = tempfile::Builder::new()
        .prefix(&format!("{STATE_FILE_PREFIX}{}-", std::process::id()))
        .suffix(".json")
        .tempfile_in(&dir)?;
    std::io::Write::write_all(&mut file, state.to_string().as_bytes())?;
    Ok(file.into_temp_path())
}

/// Removes the state files of runs whose process no longer exists.
fn sweep_state_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STATE_FILE_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
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
            notices: Arc::default(),
            file: None,
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
        let notices: Arc<Mutex<Vec<observes_sources::Notice>>> = Arc::default();
        let kept = notices.clone();
        let mut stream = MessageStream::spawn(move |out| {
            let mut sink = NumberingSink {
                out,
                number: 0,
                notices: kept,
            };
            let result = observes_state::block_on(run(&mut sink))
                .map_err(observes_sources::SourceError::setting("running the source"))
                .and_then(|ran| ran);
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
        stream.notices = notices;
        stream
    }

    /// The notices an in-process source has reported so far.
    pub fn notices(&self) -> Vec<observes_sources::Notice> {
        self.notices.lock().map(|n| n.clone()).unwrap_or_default()
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
            send_blocks(LineBlocks::new(input, block_bytes), out);
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
                let opened =
                    singer_file::open(path, state).map_err(|source| SourceError::Open {
                        path: path.clone(),
                        source,
                    })?;
                let end = opened.cursor.end_slot();
                let (offset, line) = (opened.offset, opened.line);
                let mut file = opened.file;
                let mut stream = MessageStream::spawn(move |out| {
                    if offset > 0 {
                        let replayed = singer_file::replay_schemas(&mut file, offset, |line| {
                            out.push(Item::Line(line))
                        });
                        if let Err(error) = replayed {
                            let _ = out.push_now(Item::Bad {
                                error: ReadError::Io {
                                    line: 0,
                                    source: error,
                                },
                                raw: Vec::new(),
                            });
                            return;
                        }
                    }
                    let blocks = LineBlocks::resume(file, 1 << 20, offset, line);
                    if let Some(position) = send_blocks(blocks, out) {
                        if let Ok(mut end) = end.lock() {
                            *end = Some(position);
                        }
                    }
                });
                stream.file = Some(opened.cursor);
                Ok(stream)
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
            SourceConfig::Command { command, dir } => {
                let (program, args) = command.split_first().ok_or(SourceError::EmptyCommand)?;
                let mut cmd = Command::new(program);
                cmd.args(args).stdout(Stdio::piped()).stdin(Stdio::null());
                if let Some(dir) = dir {
                    cmd.current_dir(dir);
                }
                let mut temp = None;
                if let Some(state) = state {
                    let path = state_file(state).map_err(SourceError::StateFile)?;
                    cmd.arg("--state").arg(&path);
                    temp = Some(path);
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

impl Input for MessageStream {
    fn next_within(&mut self, wait: std::time::Duration) -> Next {
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

    fn state_at(&mut self, value: Value, end: u64, line: u64) -> Value {
        match &mut self.file {
            Some(file) => file.wrap(value, end, line),
            None => value,
        }
    }

    fn end_checkpoint(&self) -> Option<(Value, u64)> {
        self.file.as_ref().and_then(|f| f.at_end())
    }
}

impl Drop for MessageStream {
    fn drop(&mut self) {
        if let Some((_, child)) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_of_dead_runs_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = {
            let mut child = Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            pid
        };
        let names = [
            format!("{STATE_FILE_PREFIX}{dead}-a1b2.json"),
            format!("{STATE_FILE_PREFIX}{}-c3d4.json", std::process::id()),
            "unrelated.json".to_string(),
            format!("{STATE_FILE_PREFIX}notapid-x.json"),
        ];
        for name in &names {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        sweep_state_files(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = names[1..].to_vec();
        expected.sort();
        assert_eq!(left, expected);
    }

    #[test]
    fn a_state_file_holds_the_state_and_goes_with_its_run() {
        let path = state_file(&serde_json::json!({"at": 1})).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with(&format!("{STATE_FILE_PREFIX}{}-", std::process::id()))
                && name.ends_with(".json"),
            "{name}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), r#"{"at":1}"#);
        let kept = path.to_path_buf();
        drop(path);
        assert!(!kept.exists());
    }
}
