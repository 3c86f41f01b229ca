//! Running `git` and reading its machine-readable output.
//!
//! Every git process goes through [`git`]: arguments as a list (never a shell string),
//! no terminal prompts, and the C locale so messages are stable. The commit walk reads
//! `git log -z --numstat` as it streams: one header per commit (fields split by `\x1f`,
//! the message last so it may hold anything but NUL), then its file changes.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A `git` command in `repo` (`-C repo`), prompts off.
pub fn git(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    cmd
}

/// Runs a git command to completion; its stdout, or its stderr as the error.
pub fn output(mut cmd: Command) -> Result<Vec<u8>, String> {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("starting git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(stderr_message(&out.stderr, out.status))
    }
}

/// Git's complaint, on one line.
pub fn stderr_message(stderr: &[u8], status: std::process::ExitStatus) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        format!("git exited with {status}")
    } else {
        text
    }
}

/// Whether `path` is a git repository (a work tree or a bare one).
pub fn is_repository(path: &Path) -> bool {
    path.join(".git").exists() || (path.join("HEAD").is_file() && path.join("objects").is_dir())
}

/// The commits branches and tags point at, sorted (tags peeled to their commits).
pub fn tips(repo: &Path) -> Result<Vec<String>, String> {
    let mut cmd = git(repo);
    cmd.args([
        "for-each-ref",
        "--format=%(objectname) %(*objectname)",
        "refs/heads",
        "refs/tags",
    ]);
    let out = output(cmd)?;
    let mut tips: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| {
            let (object, peeled) = line.split_once(' ').unwrap_or((line, ""));
            let tip = if peeled.is_empty() { object } else { peeled };
            (!tip.is_empty()).then(|| tip.to_string())
        })
        .collect();
    tips.sort();
    tips.dedup();
    Ok(tips)
}

/// Those of `hashes` that name commits present in `repo`.
pub fn present(repo: &Path, hashes: &[String]) -> Result<Vec<String>, String> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let mut child = git(repo)
        .args(["cat-file", "--batch-check=%(objectname) %(objecttype)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting git: {e}"))?;
    let input = hashes.join("\n") + "\n";
    let mut stdin = child.stdin.take().ok_or("git cat-file: no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("git cat-file: {e}"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(stderr_message(&out.stderr, out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(" commit"))
        .map(str::to_string)
        .collect())
}

/// The header of `git log` for one commit; the fields of [`LogEntry`] in order.
const FORMAT: &str =
    "--format=%x1e%H%x1f%an%x1f%ae%x1f%aN%x1f%aE%x1f%at%x1f%cN%x1f%cE%x1f%ct%x1f%B";
const FIELDS: usize = 10;

/// One commit as `git log` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The commit's hash.
    pub hash: String,
    /// As written in the commit (the content hash uses these).
    pub raw_author_name: String,
    /// The author's email as written.
    pub raw_author_email: String,
    /// After `.mailmap`.
    pub author_name: String,
    /// The author's email after `.mailmap`.
    pub author_email: String,
    /// Seconds since the epoch.
    pub author_time: i64,
    /// The committer's name.
    pub committer_name: String,
    /// The committer's email.
    pub committer_email: String,
    /// The commit time, seconds since the epoch.
    pub committer_time: i64,
    /// The message.
    pub message: String,
    /// The files it changed.
    pub files: Vec<FileChange>,
}

/// One file of a commit's `--numstat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The path.
    pub path: String,
    /// The path before a rename.
    pub old_path: Option<String>,
    /// `None` for a binary file (git counts no lines).
    pub insertions: Option<u64>,
    /// Lines deleted; `None` for a binary file.
    pub deletions: Option<u64>,
}

/// A malformed `git log` stream: what and after which commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected git log output {after}: {message}")]
pub struct LogError {
    after: String,
    message: String,
}

/// Reads `git log -z --numstat` output with `FORMAT` headers, one commit at a time.
pub struct LogReader<R> {
    input: R,
    token: Vec<u8>,
    /// A header read ahead (the end of the previous commit's files).
    pending: Option<Vec<u8>>,
    last_hash: Option<String>,
}

impl<R: BufRead> LogReader<R> {
    /// A reader of `git log` output in the format [`CommitWalk`] asks for.
    pub fn new(input: R) -> Self {
        LogReader {
            input,
            token: Vec::new(),
            pending: None,
            last_hash: None,
        }
    }

    fn error(&self, message: impl Into<String>) -> LogError {
        LogError {
            after: match &self.last_hash {
                Some(h) => format!("in commit {h}"),
                None => "at the start".into(),
            },
            message: message.into(),
        }
    }

    /// The next NUL-terminated token, `None` at the end.
    fn next_token(&mut self) -> Result<Option<Vec<u8>>, LogError> {
        self.token.clear();
        let n = self
            .input
            .read_until(0, &mut self.token)
            .map_err(|e| self.error(format!("reading: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        if self.token.last() == Some(&0) {
            self.token.pop();
        }
        Ok(Some(std::mem::take(&mut self.token)))
    }

    /// The next commit, or `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<LogEntry>, LogError> {
        let header = match self.pending.take() {
            Some(h) => h,
            None => match self.next_token()? {
                None => return Ok(None),
                Some(t) => t,
            },
        };
        let Some(header) = header.strip_prefix(b"\x1e") else {
            return Err(self.error(format!(
                "expected a commit header, got {:?}",
                preview(&header)
            )));
        };
        let text = String::from_utf8_lossy(header);
        let fields: Vec<&str> = text.splitn(FIELDS, '\x1f').collect();
        if fields.len() != FIELDS {
            return Err(self.error(format!(
                "a commit header has {} fields, expected {FIELDS}: {:?}",
                fields.len(),
                preview(header)
            )));
        }
        let hash = fields[0].to_string();
        if hash.len() < 40 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error(format!("{hash:?} is not a commit hash")));
        }
        self.last_hash = Some(hash.clone());
        let time = |field: &str, what: &str| {
            field
                .parse::<i64>()
                .map_err(|_| self.error(format!("{what} {field:?} is not a timestamp")))
        };
        let mut entry = LogEntry {
            raw_author_name: fields[1].to_string(),
            raw_author_email: fields[2].to_string(),
            author_name: fields[3].to_string(),
            author_email: fields[4].to_string(),
            author_time: time(fields[5], "author time")?,
            committer_name: fields[6].to_string(),
            committer_email: fields[7].to_string(),
            committer_time: time(fields[8], "committer time")?,
            message: fields[9].to_string(),
            files: Vec::new(),
            hash,
        };
        while let Some(token) = self.next_token()? {
            if token.first() == Some(&0x1e) {
                self.pending = Some(token);
                break;
            }
            // The first numstat line follows a newline that ends the header.
            let line = token.strip_prefix(b"\n").unwrap_or(&token);
            entry.files.push(self.file_change(line)?);
        }
        Ok(Some(entry))
    }

    /// `added\tdeleted\tpath`, or `added\tdeleted\t` then the old and new paths (a rename).
    fn file_change(&mut self, line: &[u8]) -> Result<FileChange, LogError> {
        let mut parts = line.splitn(3, |b| *b == b'\t');
        let (Some(added), Some(deleted), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(self.error(format!("a numstat line {:?}", preview(line))));
        };
        let count = |text: &[u8]| -> Result<Option<u64>, LogError> {
            if text == b"-" {
                return Ok(None);
            }
            std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse().ok())
                .map(Some)
                .ok_or_else(|| self.error(format!("a line count {:?}", preview(text))))
        };
        let insertions = count(added)?;
        let deletions = count(deleted)?;
        if !path.is_empty() {
            return Ok(FileChange {
                path: String::from_utf8_lossy(path).into_owned(),
                old_path: None,
                insertions,
                deletions,
            });
        }
        let (Some(old), Some(new)) = (self.next_token()?, self.next_token()?) else {
            return Err(self.error("a rename without its two paths"));
        };
        Ok(FileChange {
            path: String::from_utf8_lossy(&new).into_owned(),
            old_path: Some(String::from_utf8_lossy(&old).into_owned()),
            insertions,
            deletions,
        })
    }
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    crate::truncate(&text, 80).to_string()
}

/// A running `git log` over the commits reachable from `include` and not from `exclude`
/// (merges left out), newest first.
pub struct CommitWalk {
    child: Child,
    /// The commits, as they come.
    pub reader: LogReader<BufReader<ChildStdout>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl CommitWalk {
    /// Starts `git log` in `repo`.
    pub fn start(repo: &Path, include: &[String], exclude: &[String]) -> Result<Self, String> {
        let mut child = git(repo)
            .args([
                "-c",
                "log.showSignature=false",
                "log",
                "--no-merges",
                "-z",
                "--numstat",
                "-M",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--use-mailmap",
                FORMAT,
                "--stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting git: {e}"))?;
        // Revisions through stdin: no limit on how many tips a repository has.
        let mut revs = String::new();
        for tip in include {
            revs.push_str(tip);
            revs.push('\n');
        }
        if !exclude.is_empty() {
            revs.push_str("--not\n");
            for tip in exclude {
                revs.push_str(tip);
                revs.push('\n');
            }
        }
        let mut stdin = child.stdin.take().ok_or("git log: no stdin")?;
        stdin
            .write_all(revs.as_bytes())
            .map_err(|e| format!("git log: writing revisions: {e}"))?;
        drop(stdin);
        let stdout = child.stdout.take().ok_or("git log: no stdout")?;
        let mut stderr = child.stderr.take().ok_or("git log: no stderr")?;
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        Ok(CommitWalk {
            child,
            reader: LogReader::new(BufReader::with_capacity(1 << 20, stdout)),
            stderr: Some(stderr),
        })
    }

    /// Waits for git; its complaint if it failed.
    pub fn finish(mut self) -> Result<(), String> {
        let status = self.child.wait().map_err(|e| format!("git log: {e}"))?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(stderr_message(&stderr, status))
        }
    }
}

impl Drop for CommitWalk {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "1111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222";

    fn header(hash: &str, message: &str) -> String {
        format!(
            "\x1e{hash}\x1fAl\x1fal@x\x1fAl B\x1fal@y\x1f100\x1fCo\x1fco@x\x1f200\x1f{message}\0"
        )
    }

    fn read_all(input: &[u8]) -> Result<Vec<LogEntry>, LogError> {
        let mut reader = LogReader::new(input);
        let mut out = Vec::new();
        while let Some(e) = reader.next_entry()? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn reads_headers_numstat_renames_and_binaries() {
        let input = format!(
            "{}\n3\t1\tsrc/a.rs\0-\t-\timg.png\0{}\n0\t0\t\0old name\0new\x1fname\0{}",
            header(H1, "Fix\n\nbody with \x1f inside\n"),
            header(H2, "rename"),
            header(H1, "empty")
        );
        let entries = read_all(input.as_bytes()).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].message, "Fix\n\nbody with \x1f inside\n");
        assert_eq!(entries[0].author_name, "Al B");
        assert_eq!(entries[0].raw_author_email, "al@x");
        assert_eq!(entries[0].committer_time, 200);
        assert_eq!(
            entries[0].files,
            vec![
                FileChange {
                    path: "src/a.rs".into(),
                    old_path: None,
                    insertions: Some(3),
                    deletions: Some(1)
                },
                FileChange {
                    path: "img.png".into(),
                    old_path: None,
                    insertions: None,
                    deletions: None
                }
            ]
        );
        assert_eq!(
            entries[1].files,
            vec![FileChange {
                path: "new\x1fname".into(),
                old_path: Some("old name".into()),
                insertions: Some(0),
                deletions: Some(0)
            }]
        );
        assert!(entries[2].files.is_empty());
    }

    #[test]
    fn malformed_output_is_located() {
        let cases: Vec<(String, &str)> = vec![
            ("garbage\0".into(), "unexpected git log output at the start: expected a commit header, got \"garbage\""),
            ("\x1eabc\x1fx\0".into(), "unexpected git log output at the start: a commit header has 2 fields, expected 10: \"abc\\u{1f}x\""),
            (
                "\x1exyz\x1fa\x1fb\x1fc\x1fd\x1f1\x1fe\x1ff\x1f2\x1fm\0".into(),
                "unexpected git log output at the start: \"xyz\" is not a commit hash",
            ),
            (
                header(H1, "m").replace("\x1f100\x1f", "\x1fsoon\x1f"),
                "unexpected git log output in commit 1111111111111111111111111111111111111111: author time \"soon\" is not a timestamp",
            ),
            (
                format!("{}\nx\ty\tpath\0", header(H1, "m")),
                "unexpected git log output in commit 1111111111111111111111111111111111111111: a line count \"x\"",
            ),
            (
                format!("{}\n12 no tabs\0", header(H1, "m")),
                "unexpected git log output in commit 1111111111111111111111111111111111111111: a numstat line \"12 no tabs\"",
            ),
            (
                format!("{}\n1\t2\t\0only-old\0", header(H1, "m")),
                "unexpected git log output in commit 1111111111111111111111111111111111111111: a rename without its two paths",
            ),
        ];
        for (input, expected) in cases {
            let err = read_all(input.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), expected, "input {input:?}");
        }
    }
}
