//! Locks on the shared cache, so that bpfcase processes sharing one cache (two terminals,
//! parallel CI jobs) never run apt on the same private state at once nor write one cache entry
//! twice: `flock(2)` on files in `<cache>/locks/`, released when the holder drops the lock or
//! dies. Locks are per resource and held only while resolving, never while a guest runs:
//!
//! - `apt`: the private apt state (sources, lists, package cache) and downloads through it;
//! - `<package>_<version>`: one cache entry, while it is checked or stored;
//! - `warm-<snapshot>`: one saved guest (`vm::snapshot`), while it is checked, stored or
//!   removed; `warm-<snapshot>.save` while a guest is being saved under that name (only ever
//!   tried, never waited for: another process saving it means this one does not).
//!
//! Order: `apt` before an entry, never the reverse, so two holders cannot deadlock.
//!
//! A cache this process cannot write (read-only, another user's) cannot be changed by it
//! either: there, resolution goes on without a lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::{io_err, KernelError};

/// An exclusive lock on one resource of the cache; None when the cache is not writable here.
pub(crate) struct CacheLock {
    _lock: Option<Flock<File>>,
}

/// The lock of the private apt state.
pub(super) fn apt(cache: &Path) -> Result<CacheLock, KernelError> {
    lock(cache, "apt")
}

/// The lock of one cache entry.
pub(super) fn entry(cache: &Path, package: &str, version: &str) -> Result<CacheLock, KernelError> {
    // Package names and versions are checked to be safe file names (`spec::valid_name`).
    lock(cache, &format!("{package}_{version}"))
}

/// The lock of one saved guest (`name`: its file name, safe by construction).
pub(crate) fn warm(cache: &Path, name: &str) -> Result<CacheLock, KernelError> {
    lock(cache, &format!("warm-{name}"))
}

/// The right to save a guest under `name`: None when another process holds it (or the cache
/// is not writable here).
pub(crate) fn try_warm_save(cache: &Path, name: &str) -> Result<Option<CacheLock>, KernelError> {
    let path = cache.join("locks").join(format!("warm-{name}.save"));
    let file = fs::create_dir_all(cache.join("locks")).and_then(|()| {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
    });
    let file = match file {
        Ok(f) => f,
        Err(e) if read_only(&e) => return Ok(None),
        Err(e) => return Err(io_err(format!("opening the lock {}", path.display()))(e)),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(CacheLock { _lock: Some(l) })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(KernelError::Io {
            what: format!("locking {}", path.display()),
            source: io::Error::from(e),
        }),
    }
}

/// Waits for the exclusive lock `<cache>/locks/<name>`.
fn lock(cache: &Path, name: &str) -> Result<CacheLock, KernelError> {
    let dir = cache.join("locks");
    let path = dir.join(name);
    let file = fs::create_dir_all(&dir).and_then(|()| {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
    });
    let file = match file {
        Ok(f) => f,
        Err(e) if read_only(&e) => return Ok(CacheLock { _lock: None }),
        Err(e) => return Err(io_err(format!("opening the lock {}", path.display()))(e)),
    };
    match Flock::lock(file, FlockArg::LockExclusive) {
        Ok(l) => Ok(CacheLock { _lock: Some(l) }),
        Err((_, e)) => Err(KernelError::Io {
            what: format!("locking {}", path.display()),
            source: io::Error::from(e),
        }),
    }
}

fn read_only(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_lock_excludes_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().to_path_buf();
        let held = apt(&cache).unwrap();
        assert!(cache.join("locks/apt").is_file());
        let (tx, rx) = mpsc::channel();
        let c = cache.clone();
        let t = std::thread::spawn(move || {
            // flock locks belong to the open file: another open waits like another process.
            let _l = apt(&c).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        // Another resource is not held up.
        drop(entry(&cache, "linux-image-6.1", "6.1.192-2").unwrap());
        drop(held);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn a_save_is_tried_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_warm_save(dir.path(), "k.vmstate").unwrap();
        assert!(first.is_some());
        assert!(try_warm_save(dir.path(), "k.vmstate").unwrap().is_none());
        assert!(try_warm_save(dir.path(), "other.vmstate")
            .unwrap()
            .is_some());
        // Saving and checking are separate resources.
        drop(warm(dir.path(), "k.vmstate").unwrap());
        drop(first);
        assert!(try_warm_save(dir.path(), "k.vmstate").unwrap().is_some());
    }
}
