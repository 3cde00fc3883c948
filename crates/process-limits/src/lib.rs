//! Process resource limits the servers set for themselves at start, and
//! [`LazyHugeAlloc`] (module [`huge_alloc`]), the allocator that keeps a decoder's claimed
//! length from aborting the process.
//!
//! A container runtime or a login shell hands a process a soft open-files limit (often 1024)
//! below the hard limit the host allows. A server that holds one file descriptor per connection
//! raises its own soft limit to the hard one, so that no deployment file needs to ask for a
//! `ulimit` that some hosts refuse (Docker fails to start a container whose `nofile` exceeds the
//! host's hard limit). Only the soft limit moves: raising it up to the hard limit needs no
//! privilege.

#![warn(missing_docs)]

pub mod huge_alloc;
pub use huge_alloc::LazyHugeAlloc;

use std::io;

/// The open-files limit of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit (the ceiling of the soft one).
    pub hard: u64,
    /// The soft limit before [`raise_open_files`] raised it, when it did.
    pub raised_from: Option<u64>,
}

impl OpenFiles {
    /// Connections that fit in the soft limit after `reserve` descriptors for everything else
    /// the process keeps open (listeners, log files, the runtime's own).
    pub fn connections(&self, reserve: u64) -> u64 {
        self.soft.saturating_sub(reserve)
    }
}

impl std::fmt::Display for OpenFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "open-files limit {}", self.soft)?;
        match self.raised_from {
            Some(old) => write!(f, " (raised from {old})"),
            None if self.soft < self.hard => write!(f, " (hard limit {})", self.hard),
            None => Ok(()),
        }
    }
}

/// Raises the soft open-files limit (RLIMIT_NOFILE) to the hard limit and returns the result.
/// An infinite hard limit is capped at the kernel's per-process maximum (`fs.nr_open`), which
/// is what setrlimit accepts.
pub fn raise_open_files() -> io::Result<OpenFiles> {
    let mut lim = get()?;
    let before = lim.rlim_cur;
    let target = if lim.rlim_max == libc::RLIM_INFINITY {
        nr_open().unwrap_or(1 << 20)
    } else {
        lim.rlim_max
    };
    if before != libc::RLIM_INFINITY && before < target {
        lim.rlim_cur = target;
        // SAFETY: setrlimit reads the struct we pass; no memory is shared.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let now = get()?;
    Ok(OpenFiles {
        soft: now.rlim_cur as u64,
        hard: now.rlim_max as u64,
        raised_from: (now.rlim_cur != before).then_some(before as u64),
    })
}

/// The open-files limit in force now, without changing it.
pub fn open_files() -> io::Result<OpenFiles> {
    let now = get()?;
    Ok(OpenFiles {
        soft: now.rlim_cur as u64,
        hard: now.rlim_max as u64,
        raised_from: None,
    })
}

/// File descriptors this process has open now (None where /proc is not mounted).
pub fn open_descriptors() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

fn get() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

fn nr_open() -> Option<libc::rlim_t> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_soft_limit_to_the_hard_one() {
        // Lower the soft limit first, as a container runtime would hand it over.
        let mut lim = get().unwrap();
        let hard = lim.rlim_max;
        lim.rlim_cur = 256.min(hard);
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
        let got = raise_open_files().unwrap();
        assert_eq!(got.hard, hard as u64);
        if hard != libc::RLIM_INFINITY && hard > 256 {
            assert_eq!(got.soft, hard as u64);
            assert_eq!(got.raised_from, Some(256));
            assert!(got.to_string().contains("raised from 256"), "{got}");
        }
        // A second call has nothing left to raise.
        assert_eq!(raise_open_files().unwrap().raised_from, None);
    }

    #[test]
    fn counts_open_descriptors() {
        let before = open_descriptors().unwrap();
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(open_descriptors().unwrap(), before + 1);
        drop(f);
    }

    #[test]
    fn connections_leave_the_reserve() {
        let f = OpenFiles {
            soft: 1024,
            hard: 1024,
            raised_from: None,
        };
        assert_eq!(f.connections(64), 960);
        assert_eq!(f.connections(5000), 0);
    }
}
