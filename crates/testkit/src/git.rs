//! Real git repositories for tests: commits with chosen authors, dates and files.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A repository with a work tree, on `main`.
pub struct TestRepo {
    /// The work tree.
    pub path: PathBuf,
}

/// An author or committer: name (any bytes: git takes them as given), email, time.
pub struct Who<'a> {
    /// The name, as bytes.
    pub name: &'a [u8],
    /// The email address.
    pub email: &'a str,
    /// `git` date format, e.g. `2026-10-03T10:00:00Z`.
    pub date: &'a str,
}

impl TestRepo {
    /// `git init` at `path` (created), on branch `main`.
    pub fn init(path: &Path) -> TestRepo {
        std::fs::create_dir_all(path).unwrap();
        let repo = TestRepo {
            path: path.to_path_buf(),
        };
        repo.git(["init", "-q", "-b", "main"]);
        repo.git(["config", "user.name", "Test"]);
        repo.git(["config", "user.email", "test@example.com"]);
        repo.git(["config", "commit.gpgsign", "false"]);
        repo
    }

    /// Runs git here; panics with its stderr on failure; returns its stdout.
    pub fn git<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.path).args(args);
        run(cmd)
    }

    /// Writes files (relative path, bytes) and commits everything as `who`.
    pub fn commit(&self, who: &Who, message: &str, files: &[(&str, &[u8])]) -> String {
        self.commit_with(who, message, files, &[])
    }

    /// As [`TestRepo::commit`], with extra `git` options before `commit` (e.g. `-c`, `…`).
    pub fn commit_with(
        &self,
        who: &Who,
        message: &str,
        files: &[(&str, &[u8])],
        options: &[&str],
    ) -> String {
        for (file, content) in files {
            let path = self.path.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        self.git(["add", "-A"]);
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.path).args(options);
        cmd.args(["commit", "-q", "--allow-empty", "-m", message]);
        use std::os::unix::ffi::OsStrExt;
        cmd.env("GIT_AUTHOR_NAME", OsStr::from_bytes(who.name))
            .env("GIT_AUTHOR_EMAIL", who.email)
            .env("GIT_AUTHOR_DATE", who.date)
            .env("GIT_COMMITTER_NAME", OsStr::from_bytes(who.name))
            .env("GIT_COMMITTER_EMAIL", who.email)
            .env("GIT_COMMITTER_DATE", who.date);
        run(cmd);
        self.git(["rev-parse", "HEAD"]).trim().to_string()
    }
}

/// Runs a command; panics with its stderr on failure; returns its stdout.
pub fn run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
