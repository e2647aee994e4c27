//! Where stages may read and write files, and how they open them safely.
//!
//! `eegd run` reads and writes where its pipeline file says. The daemon takes pipeline files
//! from the network, so it confines them to its data directory ([`confine_to`], once, at
//! start-up):
//!
//! - **Reading** (`file_source`): the path is relative to the data directory, without `..`;
//!   it is resolved (symlinks included) and must still lie inside it, **before** anything is
//!   opened. Everywhere, only a regular file is opened, and without blocking: a FIFO, a device
//!   (`/dev/zero`) or a directory is refused from its metadata.
//! - **Writing** (every sink with a `path`, checked by the daemon with [`confine_write`]): the
//!   path is relative, without `..`; its folder must exist and resolve (symlinks included)
//!   inside the data directory, and must not be, or lie inside, a session folder (one holding
//!   `session_meta.json`); an existing file there may be replaced only if it is a regular file,
//!   never through a symlink.
//!
//! Errors never say whether something outside the data directory exists.
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

/// The file that marks a session folder.
pub const SESSION_MARKER: &str = "session_meta.json";

/// Longest line a CSV replay reads; a longer one is an error, not an unbounded allocation.
pub const MAX_LINE_BYTES: usize = 1 << 20;

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Confines every file a stage reads to `root` (canonical), for the rest of the process.
/// Returns false if another root was set before.
pub fn confine_to(root: &Path) -> bool {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    ROOT.get_or_init(|| root.clone()) == &root
}

/// The directory reads are confined to, if any.
pub fn root() -> Option<&'static Path> {
    ROOT.get().map(PathBuf::as_path)
}

/// A non-empty relative path without `..`, `/` at its start or other odd parts.
fn plain_relative(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The file `path` names for reading: inside the data directory when reads are confined,
/// and a regular file. Nothing is opened.
pub fn resolve_read(path: &Path) -> Result<PathBuf, String> {
    resolve_read_in(root(), path)
}

/// [`resolve_read`] with reads confined to `root` (canonical), or not at all.
pub fn resolve_read_in(root: Option<&Path>, path: &Path) -> Result<PathBuf, String> {
    let full = match root {
        Some(root) => {
            let outside = || {
                format!(
                    "`{}` is not a file inside the data directory; give a path relative to it, without `..`",
                    path.display()
                )
            };
            if !plain_relative(path) {
                return Err(outside());
            }
            match root.join(path).canonicalize() {
                Ok(c) if c.starts_with(root) => c,
                _ => return Err(outside()),
            }
        }
        None => path.to_path_buf(),
    };
    let meta = std::fs::metadata(&full).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("`{}` is not a regular file", path.display()));
    }
    Ok(full)
}

/// Opens `path` for reading under the rules of [`resolve_read`], never blocking (a FIFO
/// swapped in after the check is still refused).
pub fn open_read(path: &Path) -> Result<File, String> {
    let full = resolve_read(path)?;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&full)
        .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        _ => Err(format!("`{}` is not a regular file", path.display())),
    }
}

/// Where a sink may write `path`, inside `root` (canonical), under the rules in the module doc.
pub fn confine_write(root: &Path, path: &Path) -> Result<PathBuf, String> {
    let shown = path.display();
    if !plain_relative(path) {
        return Err(format!(
            "`{shown}`: files the daemon writes lie inside its data directory; give a path relative \
             to it, without `..`"
        ));
    }
    let joined = root.join(path);
    let (Some(parent), Some(name)) = (joined.parent(), joined.file_name()) else {
        return Err(format!("`{shown}` names no file"));
    };
    let folder = match parent.canonicalize() {
        Ok(f) if f.starts_with(root) && f.is_dir() => f,
        Ok(_) => return Err(format!("`{shown}`: its folder leaves the data directory")),
        Err(_) => return Err(format!("`{shown}`: its folder does not exist in the data directory")),
    };
    if let Some(session) =
        folder.ancestors().take_while(|a| a.starts_with(root)).find(|a| a.join(SESSION_MARKER).exists())
    {
        let rel = session.strip_prefix(root).unwrap_or(session);
        return Err(format!(
            "`{shown}` is inside the recorded session `{}`; sessions are never written into",
            rel.display()
        ));
    }
    let target = folder.join(name);
    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.file_type().is_symlink() => Err(format!("`{shown}` is a symbolic link")),
        Ok(m) if !m.is_file() => Err(format!("`{shown}` exists and is not a regular file")),
        _ => Ok(target),
    }
}

/// A reader that refuses a line longer than `max` bytes instead of handing it on (so a file
/// with no line breaks cannot make a CSV reader buffer all of it).
pub struct LineCap<R> {
    inner: R,
    max: usize,
    since_newline: usize,
}

impl<R> LineCap<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineCap { inner, max, since_newline: 0 }
    }
}

impl<R: Read> Read for LineCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.since_newline = 0;
            } else {
                self.since_newline += 1;
                if self.since_newline > self.max {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a line longer than {} bytes", self.max),
                    ));
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stay_inside_and_out_of_sessions() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(root.join("2026Z_p/sub")).unwrap();
        std::fs::write(root.join("2026Z_p/session_meta.json"), "{}").unwrap();
        std::fs::write(root.join("2026Z_p/recording.bdf"), "data").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), root.join("link.csv")).unwrap();

        assert_eq!(confine_write(&root, Path::new("run/x.csv")).unwrap(), root.join("run/x.csv"));
        assert_eq!(confine_write(&root, Path::new("x.csv")).unwrap(), root.join("x.csv"));
        for (bad, why) in [
            ("../x.csv", "without `..`"),
            ("/etc/x", "without `..`"),
            ("", "without `..`"),
            ("missing/x.csv", "does not exist"),
            ("escape/x.csv", "leaves the data directory"),
            ("link.csv", "symbolic link"),
            ("run", "not a regular file"),
            ("2026Z_p/recording.bdf", "recorded session `2026Z_p`"),
            ("2026Z_p/session_meta.json", "recorded session"),
            ("2026Z_p/new.csv", "recorded session"),
            ("2026Z_p/sub/new.csv", "recorded session"),
        ] {
            let e = confine_write(&root, Path::new(bad)).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(std::fs::read_to_string(root.join("2026Z_p/recording.bdf")).unwrap(), "data");
    }

    #[test]
    fn reads_only_regular_files_without_blocking() {
        for special in ["/dev/zero", "/dev/null", "/tmp"] {
            let e = open_read(Path::new(special)).unwrap_err();
            assert!(e.contains("not a regular file"), "{special}: {e}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo.csv");
        nix_mkfifo(&fifo);
        // Would block forever in `open` if it were opened.
        assert!(open_read(&fifo).unwrap_err().contains("not a regular file"));
    }

    fn nix_mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(status.success());
    }

    #[test]
    fn confined_reads_resolve_inside_the_root_before_opening() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("2026Z_p")).unwrap();
        std::fs::write(root.join("2026Z_p/recording.csv"), "timestamp,a\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.csv")).unwrap();
        let r = Some(root.as_path());
        assert_eq!(
            resolve_read_in(r, Path::new("2026Z_p/recording.csv")).unwrap(),
            root.join("2026Z_p/recording.csv")
        );
        let outside = resolve_read_in(r, Path::new("/etc/passwd")).unwrap_err();
        for bad in ["../x.csv", "passwd.csv", "missing.csv", "/etc/hostname"] {
            let e = resolve_read_in(r, Path::new(bad)).unwrap_err();
            assert!(e.contains("not a file inside the data directory"), "{bad}: {e}");
            // The same words whether or not it exists: nothing outside leaks.
            assert_eq!(e.replace(bad, "X"), outside.replace("/etc/passwd", "X"));
        }
    }

    #[test]
    fn caps_line_length() {
        let mut ok = LineCap::new(&b"a,b\n1,2\n"[..], 4);
        let mut s = String::new();
        ok.read_to_string(&mut s).unwrap();
        assert_eq!(s, "a,b\n1,2\n");
        let mut long = LineCap::new(&b"abcdef\n"[..], 4);
        assert!(long.read_to_string(&mut String::new()).is_err());
    }
}
