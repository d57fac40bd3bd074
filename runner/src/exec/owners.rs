//! Owners of local storage that cases create (`{"new": {"cgroup": "a"}}`), and the runner's
//! own: a cgroup is a directory in a private part of the cgroup2 hierarchy, its fd the key of
//! user-space calls, its id (the directory's inode number) what programs find it by.
//!
//! Owns: finding (or privately mounting) the cgroup2 hierarchy, the runner's private directory
//! `bpfcase-<pid>-<tid>` at its root (removed when the executor goes; ones left by runners
//! that died are removed when the next one starts), making and removing cgroups in it, moving
//! children into them. Must not: touch any cgroup outside that directory, or move the runner.

use std::cell::OnceCell;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::bpf::Errno;

/// Where cgroups are made: found (or mounted) the first time an instance needs one.
#[derive(Default)]
pub struct Cgroups {
    root: OnceCell<Result<CgroupRoot, Errno>>,
}

pub struct CgroupRoot {
    /// The runner's private directory, at the root of the hierarchy.
    base: PathBuf,
    /// The cgroup the runner's process is in.
    own: PathBuf,
}

impl Cgroups {
    pub fn root(&self) -> Result<&CgroupRoot, Errno> {
        self.root
            .get_or_init(CgroupRoot::new)
            .as_ref()
            .map_err(|e| *e)
    }
}

impl CgroupRoot {
    fn new() -> Result<CgroupRoot, Errno> {
        let (mount, root) = match find_cgroup2() {
            Some(m) => m,
            None => {
                super::fs::mount_private("cgroup2", "/sys/fs/cgroup")?;
                (PathBuf::from("/sys/fs/cgroup"), "/".to_string())
            }
        };
        let own = own_cgroup(&mount, &root);
        sweep(&mount);
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let base = mount.join(format!("bpfcase-{}-{tid}", std::process::id()));
        match std::fs::create_dir(&base) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_errno(&e)),
        }
        Ok(CgroupRoot { base, own })
    }

    /// The runner's own cgroup: its directory, opened.
    pub fn own_fd(&self) -> Result<OwnedFd, Errno> {
        open_dir(&self.own)
    }

    /// The id of the runner's own cgroup.
    pub fn own_id(&self) -> Result<u64, Errno> {
        std::fs::metadata(&self.own)
            .map(|m| m.ino())
            .map_err(|e| io_errno(&e))
    }
}

impl Drop for CgroupRoot {
    fn drop(&mut self) {
        remove_tree(&self.base);
    }
}

/// A created owner, alive until the instance ends.
pub struct Owner {
    pub name: String,
    /// The owner's fd: a user-space key names it.
    pub fd: OwnedFd,
    /// What programs find it by.
    pub id: u64,
    path: PathBuf,
    removed: bool,
}

impl Owner {
    /// A new cgroup named `name` in the runner's private directory.
    pub fn cgroup(root: &CgroupRoot, name: &str) -> Result<Owner, Errno> {
        let path = root.base.join(name);
        // Left by an instance that could not clean up: start afresh.
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).map_err(|e| io_errno(&e))?;
        let made = (|| {
            let fd = open_dir(&path)?;
            let id = std::fs::metadata(&path).map_err(|e| io_errno(&e))?.ino();
            Ok((fd, id))
        })();
        match made {
            Ok((fd, id)) => Ok(Owner {
                name: name.to_string(),
                fd,
                id,
                path,
                removed: false,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                Err(e)
            }
        }
    }

    /// Removes the cgroup (its fd stays open).
    pub fn free(&mut self) -> Result<(), Errno> {
        if self.removed {
            return Err(Errno(libc::ENOENT));
        }
        std::fs::remove_dir(&self.path).map_err(|e| io_errno(&e))?;
        self.removed = true;
        Ok(())
    }

    /// Moves process `pid` into this cgroup.
    pub fn enter(&self, pid: i32) -> Result<(), Errno> {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string()).map_err(|e| io_errno(&e))
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if !self.removed {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// The mount point of a cgroup2 hierarchy in this thread's mount namespace, and the cgroup
/// path the mount shows at its top.
fn find_cgroup2() -> Option<(PathBuf, String)> {
    let table = std::fs::read_to_string("/proc/thread-self/mountinfo").ok()?;
    cgroup2_in(&table)
}

fn cgroup2_in(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        // `id parent major:minor root mount-point options... - fstype source super-options`
        let mut fields = line.split(' ');
        let root = fields.nth(3)?;
        let point = fields.next()?;
        let fstype = line.split(" - ").nth(1)?.split(' ').next()?;
        (fstype == "cgroup2").then(|| {
            (
                PathBuf::from(super::fs::unescape(point)),
                super::fs::unescape(root),
            )
        })
    })
}

/// The directory of the cgroup2 cgroup this process is in (`0::/path` of /proc/self/cgroup),
/// under a mount whose top is cgroup `root`; the mount's top when it cannot be told.
fn own_cgroup(mount: &Path, root: &str) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    own_in(mount, root, path)
}

fn own_in(mount: &Path, root: &str, path: &str) -> PathBuf {
    let rel = Path::new(path).strip_prefix(root).unwrap_or(Path::new(""));
    let dir = mount.join(rel);
    if dir.is_dir() {
        dir
    } else {
        mount.to_path_buf()
    }
}

/// Removes the private directories of runners that are gone (`bpfcase-<pid>-<tid>` whose
/// process does not exist).
fn sweep(mount: &Path) {
    let Ok(entries) = std::fs::read_dir(mount) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("bpfcase-"))
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_tree(&e.path());
        }
    }
}

/// Removes a cgroup directory and the cgroups below it (cgroups are removed with rmdir,
/// deepest first; their control files go with them).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: a valid NUL-terminated path; the fd returned is new and ours.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ));
    }
    // SAFETY: open succeeded: the fd is valid and owned by nobody else.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The raw fd of an owner, for a key.
pub fn raw(o: &Owner) -> i32 {
    o.fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_the_mount_table() {
        let table = "\
25 1 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw
26 25 0:23 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
35 25 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup2_in(table),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
        );
        assert_eq!(
            cgroup2_in("25 1 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"),
            None
        );
    }

    #[test]
    fn the_own_cgroup_is_under_the_mount() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::create_dir(tmp.path().join("b")).unwrap();
        assert_eq!(own_in(tmp.path(), "/", "/a/b"), tmp.path().join("a/b"));
        // A mount showing cgroup /a at its top.
        assert_eq!(own_in(tmp.path(), "/a", "/a/b"), tmp.path().join("b"));
        // Not under the mount, or not there: the mount's top.
        assert_eq!(own_in(tmp.path(), "/x", "/a/b"), tmp.path());
        assert_eq!(own_in(tmp.path(), "/", "/gone"), tmp.path());
    }
}
