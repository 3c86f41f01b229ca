//! Deterministic repositories of any size, written with `git fast-import`: for the demo,
//! the tests that compare the code ETL with `git log`, and the benchmark.
//!
//! History: a main line of commits by a handful of authors (one with a non-ASCII name,
//! one also committing under an old address that `.mailmap` maps), each touching one to
//! three files, with a side branch merged back every `merge_every` commits.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

/// A deterministic sample repository for the demo and the tests.
#[derive(Debug, Clone)]
pub struct SampleRepo {
    /// Commits to make.
    pub commits: usize,
    /// The seed of names, paths and changes.
    pub seed: u64,
    /// Author time of the first commit (seconds since the epoch); one hour between commits.
    pub start: i64,
    /// A side branch is merged every this many commits (0: never).
    pub merge_every: usize,
}

impl Default for SampleRepo {
    fn default() -> Self {
        SampleRepo {
            commits: 100,
            seed: 1,
            start: 1_767_225_600, // 2026-01-01T00:00:00Z
            merge_every: 10,
        }
    }
}

/// The authors commits are spread over: (name, email).
pub const AUTHORS: [(&str, &str); 5] = [
    ("Ada Lovelace", "ada@example.com"),
    ("José Núñez", "jose@example.com"),
    ("Grace Hopper", "grace@example.com"),
    ("Linus Pauling", "linus@example.com"),
    ("Ada Lovelace", "ada@old.example.com"),
];

const FILES: usize = 64;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn data(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("data {}\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.push(b'\n');
}

/// Creates a repository at `path` (which must not exist yet) with `spec`'s history on
/// `main`.
pub fn build(path: &Path, spec: &SampleRepo) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
    super::git::output({
        let mut c = super::git::git(path);
        c.args(["init", "-q", "-b", "main"]);
        c
    })?;
    let mut child = super::git::git(path)
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting git fast-import: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("git fast-import: no stdin")?;
    let spec = spec.clone();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut rng = Rng(spec.seed.max(1));
        let mut lines: Vec<usize> = vec![0; FILES];
        let mut out = Vec::with_capacity(1 << 20);
        let mut mark = 0usize;
        for i in 0..spec.commits {
            let time = spec.start + 3600 * i as i64;
            let (name, email) = AUTHORS[rng.below(AUTHORS.len())];
            let merge_now = spec.merge_every > 0 && i > 0 && i % spec.merge_every == 0;
            let side_mark = if merge_now {
                // A commit on a side branch off the current main, merged below.
                mark += 1;
                out.extend_from_slice(b"commit refs/heads/side\n");
                out.extend_from_slice(format!("mark :{mark}\n").as_bytes());
                let who = format!("{name} <{email}> {time} +0000\n");
                out.extend_from_slice(format!("author {who}committer {who}").as_bytes());
                data(&mut out, format!("Side work {i}").as_bytes());
                out.extend_from_slice(format!("from :{}\n", mark - 1).as_bytes());
                out.extend_from_slice(b"M 100644 inline side.txt\n");
                data(&mut out, format!("side {i}\n").as_bytes());
                Some(mark)
            } else {
                None
            };
            mark += 1;
            out.extend_from_slice(b"commit refs/heads/main\n");
            out.extend_from_slice(format!("mark :{mark}\n").as_bytes());
            let who = format!("{name} <{email}> {time} -0300\n");
            out.extend_from_slice(format!("author {who}committer {who}").as_bytes());
            match side_mark {
                Some(side) => {
                    data(&mut out, format!("Merge branch 'side' ({i})").as_bytes());
                    out.extend_from_slice(format!("from :{}\n", side - 1).as_bytes());
                    out.extend_from_slice(format!("merge :{side}\n").as_bytes());
                    out.extend_from_slice(b"M 100644 inline side.txt\n");
                    data(&mut out, format!("side {i}\n").as_bytes());
                }
                None => {
                    data(
                        &mut out,
                        format!("Change {i}\n\nTouches a few files of the sample.\n").as_bytes(),
                    );
                    if i == 0 {
                        out.extend_from_slice(b"M 100644 inline .mailmap\n");
                        data(
                            &mut out,
                            b"Ada Lovelace <ada@example.com> <ada@old.example.com>\n",
                        );
                    }
                    for _ in 0..1 + rng.below(3) {
                        let f = rng.below(FILES);
                        // Grow a file, or start it over once it is long.
                        lines[f] = if lines[f] >= 24 {
                            1
                        } else {
                            lines[f] + 1 + rng.below(3)
                        };
                        let mut content = String::new();
                        for l in 0..lines[f] {
                            content.push_str(&format!("line {l} of {f} at {i}\n"));
                        }
                        out.extend_from_slice(
                            format!("M 100644 inline src/m{}/f{f}.txt\n", f % 8).as_bytes(),
                        );
                        data(&mut out, content.as_bytes());
                    }
                }
            }
            if out.len() > (1 << 20) {
                stdin.write_all(&out)?;
                out.clear();
            }
        }
        out.extend_from_slice(b"done\n");
        stdin.write_all(&out)?;
        Ok(())
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("git fast-import: {e}"))?;
    let written = writer
        .join()
        .map_err(|_| "git fast-import: writer panicked")?;
    if !out.status.success() {
        return Err(super::git::stderr_message(&out.stderr, out.status));
    }
    written.map_err(|e| format!("git fast-import: {e}"))?;
    let mut reset = super::git::git(path);
    reset.args(["reset", "-q", "--hard", "main"]);
    super::git::output(reset)?;
    Ok(())
}
