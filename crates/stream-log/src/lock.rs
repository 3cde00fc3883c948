//! The exclusive lock on a data directory: one process at a time owns a data directory, so two
//! servers started on the same `--data-dir` cannot append to (and corrupt) the same logs.
//!
//! `<data_dir>/.lock` is `flock`ed exclusively and without blocking, then its content is
//! replaced by the owner's pid (for the message a second process prints). The lock is held as
//! long as the [`DataDirLock`] lives; the OS releases it when the process exits however it
//! exits (SIGKILL included), so a stale lock file never keeps a directory locked.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, LogError, Result};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a data directory, held until dropped (or the process exits).
#[derive(Debug)]
pub struct DataDirLock {
    path: PathBuf,
    // Kept open: closing the last descriptor of the open file description releases the flock.
    _file: File,
}

impl DataDirLock {
    /// Takes the lock on `data_dir` (which must exist). `LogError::DirInUse` when another
    /// process (or another `DataDirLock` in this one) holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock> {
        let path = data_dir.join(LOCK_FILE);
        // Not truncated on open: the content is the current owner's pid until we own it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx("open lock file", &path)?;
        // SAFETY: flock(2) on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LogError::DirInUse {
                    dir: data_dir.to_path_buf(),
                    pid: text.trim().parse().ok(),
                    lock_file: path,
                });
            }
            return Err(LogError::io("lock", &path, err));
        }
        file.set_len(0).ctx("truncate lock file", &path)?;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .ctx("write lock file", &path)?;
        Ok(DataDirLock { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(d.path()).unwrap();
        let pid = std::fs::read_to_string(first.path()).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        let e = DataDirLock::acquire(d.path()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, LogError::DirInUse { pid: Some(p), .. } if p == std::process::id()));
        assert!(msg.contains(&d.path().display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        DataDirLock::acquire(d.path()).unwrap();
    }
}
