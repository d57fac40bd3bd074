//! Owners of local storage that cases create (`{"new": {"cgroup": "a"}}`), and the runner's
//! own: a cgroup is a directory in a private part of the cgroup2 hierarchy, its fd the key of
//! user-space calls, its id (the directory's inode number) what programs find it by; a file is
//! a new file on a tmpfs of the runner's own, a socket a new TCP socket, each keyed by its fd.
//!
//! Owns: finding (or privately mounting) the cgroup2 hierarchy, the runner's private directory
//! `bpfcase-<pid>-<tid>` at its root (removed when the executor goes; ones left by runners
//! that died are removed when the next one starts), making and removing cgroups in it, moving
//! children into them; the files and sockets. Must not: touch any cgroup outside that
//! directory, or move the runner.

use std::cell::OnceCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::bpf::Errno;
use crate::tables::{self, Made, OwnerKind};

/// Where owners are made: the cgroup2 hierarchy, found (or mounted) the first time an instance
/// needs a cgroup; a tmpfs of the runner's own for files.
#[derive(Default)]
pub struct Places {
    root: OnceCell<Result<CgroupRoot, Errno>>,
    files: OnceCell<Result<FilesDir, Errno>>,
}

/// Where files are made: a tmpfs mounted on a new temporary directory in a mount namespace
/// private to the runner's thread (where mounting is allowed), so that what a file's inode does
/// is the same whatever filesystem the machine's temporary directory is on. Unmounted (and the
/// directory removed) when the executor goes.
struct FilesDir {
    dir: PathBuf,
    mounted: bool,
}

impl FilesDir {
    /// `bpfcase-files-<pid>-<tid>` in the temporary directory, a tmpfs mounted on it.
    fn new() -> Result<FilesDir, Errno> {
        let dir = private_dir(&std::env::temp_dir(), "bpfcase-files-")?;
        // Where mounting is refused (no CAP_SYS_ADMIN), the directory itself: what an inode's
        // storage does does not depend on the filesystem, the tmpfs only keeps the machine's
        // own out of the picture.
        let mounted = dir
            .to_str()
            .is_some_and(|t| super::fs::mount_private("tmpfs", t).is_ok());
        Ok(FilesDir { dir, mounted })
    }
}

impl Drop for FilesDir {
    fn drop(&mut self) {
        // The files go with the tmpfs (or, unmounted, with the instances that made them); then
        // the empty directory.
        if self.mounted {
            let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

pub struct CgroupRoot {
    /// The runner's private directory, at the root of the hierarchy.
    base: PathBuf,
    /// The cgroup the runner's process is in.
    own: PathBuf,
}

impl Places {
    pub fn root(&self) -> Result<&CgroupRoot, Errno> {
        self.root
            .get_or_init(CgroupRoot::new)
            .as_ref()
            .map_err(|e| *e)
    }

    fn files(&self) -> Result<&Path, Errno> {
        self.files
            .get_or_init(FilesDir::new)
            .as_ref()
            .map(|d| d.dir.as_path())
            .map_err(|e| *e)
    }

    /// Makes ready the place where owners of `kind` are made (the cgroup2 hierarchy, the
    /// tmpfs of files): its errno is the environment's, not an owner's.
    pub fn prepare(&self, kind: &'static OwnerKind) -> Result<(), Errno> {
        match kind.made {
            Made::Cgroup => self.root().map(drop),
            Made::File => self.files().map(drop),
            Made::Socket | Made::Child => Ok(()),
        }
    }

    /// A new owner of `kind` named `name`.
    pub fn make(&self, kind: &'static OwnerKind, name: &str) -> Result<Owner, Errno> {
        let held = match kind.made {
            Made::Cgroup => Held::cgroup(&self.root()?.base.join(name))?,
            Made::File => Held::file(self.files()?.join(name))?,
            Made::Socket => Held::Socket(Some(socket(libc::SOCK_STREAM)?)),
            // Children are spawned, not made.
            Made::Child => return Err(Errno(libc::EINVAL)),
        };
        Ok(Owner {
            name: name.to_string(),
            held,
            removed: false,
        })
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
        let base = private_dir(&mount, "bpfcase-")?;
        Ok(CgroupRoot { base, own })
    }

    /// The runner's own cgroup: its directory, opened.
    pub fn own_fd(&self) -> Result<OwnedFd, Errno> {
        Ok(std::fs::File::open(&self.own)?.into())
    }

    /// The id of the runner's own cgroup.
    pub fn own_id(&self) -> Result<u64, Errno> {
        Ok(std::fs::metadata(&self.own)?.ino())
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
    held: Held,
    removed: bool,
}

/// What the runner holds of an owner: the fd a user-space key names, and where it is.
enum Held {
    /// A cgroup's directory (open), and its id: what programs find it by.
    Cgroup {
        path: PathBuf,
        fd: OwnedFd,
        id: u64,
    },
    File {
        path: PathBuf,
        fd: OwnedFd,
    },
    /// None once it is closed.
    Socket(Option<OwnedFd>),
}

impl Held {
    /// A new cgroup at `path`, open.
    fn cgroup(path: &Path) -> Result<Held, Errno> {
        // Left by an instance that could not clean up: start afresh.
        let _ = std::fs::remove_dir(path);
        std::fs::create_dir(path)?;
        let opened = std::fs::File::open(path).and_then(|d| Ok((d.metadata()?.ino(), d)));
        match opened {
            Ok((id, dir)) => Ok(Held::Cgroup {
                path: path.to_path_buf(),
                fd: dir.into(),
                id,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(path);
                Err(e.into())
            }
        }
    }

    /// A new empty file at `path`, open for reading and writing.
    fn file(path: PathBuf) -> Result<Held, Errno> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(Held::File { path, fd: f.into() })
    }
}

impl Owner {
    /// What programs find it by: a cgroup's id (0 for kinds programs meet otherwise).
    pub fn id(&self) -> u64 {
        match &self.held {
            Held::Cgroup { id, .. } => *id,
            _ => 0,
        }
    }

    /// The raw fd a key holds: -1 once it is closed.
    pub fn raw_fd(&self) -> i32 {
        match &self.held {
            Held::Cgroup { fd, .. } | Held::File { fd, .. } => fd.as_raw_fd(),
            Held::Socket(fd) => fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
        }
    }

    /// Removes the owner from where others find it: rmdir of a cgroup, unlink of a file (the
    /// runner's fd stays open, as a process's would), close of a socket.
    pub fn free(&mut self) -> Result<(), Errno> {
        if self.removed {
            return Err(Errno(libc::ENOENT));
        }
        match &mut self.held {
            Held::Cgroup { path, .. } => std::fs::remove_dir(path)?,
            Held::File { path, .. } => std::fs::remove_file(path)?,
            Held::Socket(fd) => *fd = None,
        }
        self.removed = true;
        Ok(())
    }

    /// Moves process `pid` into this cgroup.
    pub fn enter(&self, pid: i32) -> Result<(), Errno> {
        match &self.held {
            Held::Cgroup { path, .. } => {
                Ok(std::fs::write(path.join("cgroup.procs"), pid.to_string())?)
            }
            _ => Err(Errno(libc::EINVAL)),
        }
    }

    /// Does `what` to the owner from the calling thread: open (and close) a file by its path,
    /// unlink it (then it is removed), getsockopt(SO_TYPE) on a socket.
    pub fn act(&mut self, what: tables::Trigger) -> Result<(), Errno> {
        use tables::Trigger;
        match (what, &self.held) {
            (Trigger::OpenFile, Held::File { path, .. }) => {
                Ok(std::fs::File::open(path).map(drop)?)
            }
            (Trigger::Unlink, Held::File { .. }) => self.free(),
            (Trigger::Getsockopt, Held::Socket(_)) => getsockopt_type(self.raw_fd()),
            _ => Err(Errno(libc::EINVAL)),
        }
    }
}

/// A new AF_INET socket of `kind` (`SOCK_STREAM`, `SOCK_DGRAM`).
pub fn socket(kind: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: socket(2) with constant arguments; the fd returned is new and ours.
    let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: socket succeeded: the fd is valid and owned by nobody else.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// getsockopt(fd, SOL_SOCKET, SO_TYPE).
pub fn getsockopt_type(fd: i32) -> Result<(), Errno> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid out pointer and its length.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

impl Drop for Owner {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        match &self.held {
            Held::Cgroup { path, .. } => drop(std::fs::remove_dir(path)),
            Held::File { path, .. } => drop(std::fs::remove_file(path)),
            Held::Socket(_) => {}
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

/// `<prefix><pid>-<tid>` in `parent`, made if it is not there, after removing those of runners
/// that are gone (a runner that ends without dropping its executor leaves its own behind).
fn private_dir(parent: &Path, prefix: &str) -> Result<PathBuf, Errno> {
    sweep_dead(parent, prefix);
    let dir = parent.join(format!(
        "{prefix}{}-{}",
        std::process::id(),
        nix::unistd::gettid()
    ));
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(e.into()),
    }
}

/// Removes the entries `<prefix><pid>-<tid>` of `dir` whose process does not exist: the
/// private directories of runners that are gone.
fn sweep_dead(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
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
